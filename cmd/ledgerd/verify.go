package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/ledger"
)

// errInconsistent is returned when verification found problems; the
// process exits non-zero.
var errInconsistent = errors.New("the ledger is NOT consistent")

// integrityChecker is implemented by stores with a physical check of their
// files (the embedded store).
type integrityChecker interface {
	IntegrityCheck(ctx context.Context) error
}

// verifyCmd checks every invariant of the ledger, each workspace in a
// consistent snapshot of its own (ledger.Verify): each account's balance equals the sum of its
// entries, every balance_after chain is unbroken with versions 1..n, every
// idempotency key points at what it recorded, every accepted request at its
// transaction. It prints a summary on stdout and every problem found.
func verifyCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.LoadForMigrate(args, getenv, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	// Any role may verify: the runtime role reads workspace by workspace,
	// the owner too.
	store, _, err := openStoreAs(ctx, cfg, log, false)
	if err != nil {
		return err
	}
	defer func() { _ = store.Close() }()
	if ic, ok := store.(integrityChecker); ok {
		if err := ic.IntegrityCheck(ctx); err != nil {
			_, _ = fmt.Fprintf(stdout, "integrity check FAILED: %v\n", err)
			return fmt.Errorf("%w: %w", errInconsistent, err)
		}
		_, _ = fmt.Fprintln(stdout, "integrity check: ok")
	}
	rep, err := ledger.Verify(ctx, store)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	_, _ = fmt.Fprintf(stdout, "workspaces %d, accounts %d, transactions %d, requests %d, idempotency keys %d, events %d\n",
		rep.Workspaces, rep.Accounts, rep.Transactions, rep.Requests, rep.Keys, rep.Events)
	for _, p := range rep.Problems {
		_, _ = fmt.Fprintln(stdout, "PROBLEM:", p)
	}
	if !rep.OK() {
		_, _ = fmt.Fprintf(stdout, "%d problem(s): the ledger is NOT consistent\n", len(rep.Problems))
		return errInconsistent
	}
	_, _ = fmt.Fprintln(stdout, "ok: every balance equals the sum of its entries; every chain, key and request is consistent")
	return nil
}
