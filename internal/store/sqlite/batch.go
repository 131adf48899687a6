package sqlite

import (
	"context"
	"fmt"
	"slices"

	"github.com/creditledger/creditledger/internal/ledger"
)

// writeTx is a batch's transaction on the writer. It starts with BEGIN
// IMMEDIATE, so it holds the database's write lock (also against other
// processes) from its first statement to its end: what the batch reads
// cannot change before it commits, and reads need no locks of their own.
// The write methods live with their resource (accounts.go, entries.go, …).
type writeTx struct {
	readTx
}

// Write implements ledger.Store: it reads the snapshot set names, calls
// decide once, writes the effects in an order the schema's checks accept,
// and commits. The commit is fsynced (synchronous=FULL) before Write
// returns nil. decide's error comes back unchanged, after a rollback.
func (s *Store) Write(ctx context.Context, set ledger.WriteSet, decide func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	tx, err := s.w.BeginTx(ctx, nil) // BEGIN IMMEDIATE (_txlock)
	if err != nil {
		return mapErr(ctx, "begin", err)
	}
	// Rolls back whatever did not commit, also when decide panics; a no-op
	// after Commit.
	defer func() { _ = tx.Rollback() }()
	t := &writeTx{readTx{tx: tx, stmts: s.ws}}
	snap, err := t.snapshot(ctx, set)
	if err != nil {
		return err
	}
	eff, err := decide(snap)
	if err != nil {
		return err
	}
	if eff != nil {
		if err := t.apply(ctx, set.Workspace, eff); err != nil {
			return err
		}
	}
	// A failed COMMIT (such as a deferred foreign key finding an account
	// without its entry) leaves nothing behind: the driver rolls back.
	if err := tx.Commit(); err != nil {
		return mapErr(ctx, "commit", err)
	}
	return nil
}

// snapshot reads what set names, one statement per kind of row. The batch
// holds the database's write lock from its first statement (BEGIN
// IMMEDIATE), so the order of the reads does not matter to what they see.
func (t *writeTx) snapshot(ctx context.Context, set ledger.WriteSet) (*ledger.Snapshot, error) {
	ws := set.Workspace
	snap := &ledger.Snapshot{
		Accounts:     map[string]ledger.Account{},
		Keys:         map[string]ledger.IdempotencyRecord{},
		Transactions: map[string]ledger.Transaction{},
		Requests:     map[string]ledger.CreditRequest{},
		Packages:     map[string]ledger.Package{},
		Rates:        map[string]ledger.ConversionRate{},
		Holds:        map[string]ledger.Hold{},
		Grants:       map[string][]ledger.Grant{},
	}
	var err error
	if snap.Settings, err = t.Settings(ctx, ws); err != nil {
		return nil, err
	}
	if err := t.keysIn(ctx, ws, set.Keys, snap.Keys); err != nil {
		return nil, err
	}
	// What the set names, and the outcomes the records name (replays).
	reqIDs := slices.Clone(set.Requests)
	txIDs := slices.Clone(set.Transactions)
	holdIDs := slices.Clone(set.Holds)
	for _, rec := range snap.Keys {
		if rec.TransactionID != "" {
			txIDs = append(txIDs, rec.TransactionID)
		}
		if rec.RequestID != "" {
			reqIDs = append(reqIDs, rec.RequestID)
		}
		if rec.HoldID != "" {
			holdIDs = append(holdIDs, rec.HoldID)
		}
	}
	if err := t.transactionsIn(ctx, ws, txIDs, snap.Transactions); err != nil {
		return nil, err
	}
	if err := t.requestsIn(ctx, ws, reqIDs, snap.Requests); err != nil {
		return nil, err
	}
	if err := t.holdsIn(ctx, ws, holdIDs, snap.Holds); err != nil {
		return nil, err
	}
	// The accounts named, and those of the requests, holds and entries
	// named.
	acctIDs := slices.Clone(set.Accounts)
	for _, id := range set.Requests {
		if r, ok := snap.Requests[id]; ok {
			acctIDs = append(acctIDs, r.Account)
		}
	}
	for _, id := range set.Holds {
		if h, ok := snap.Holds[id]; ok {
			acctIDs = append(acctIDs, h.Account)
		}
	}
	for _, id := range set.Transactions {
		if tr, ok := snap.Transactions[id]; ok {
			acctIDs = append(acctIDs, tr.Account)
		}
	}
	if err := t.accountsIn(ctx, ws, acctIDs, snap.Accounts); err != nil {
		return nil, err
	}
	// The open grants of the accounts named, and of those of the holds and
	// entries named (a capture or a reversal draws from them).
	grantsOf := slices.Clone(set.GrantsOf)
	for _, id := range set.Holds {
		if h, ok := snap.Holds[id]; ok {
			grantsOf = append(grantsOf, h.Account)
		}
	}
	for _, id := range set.Transactions {
		if tr, ok := snap.Transactions[id]; ok {
			grantsOf = append(grantsOf, tr.Account)
		}
	}
	if err := t.grantsIn(ctx, ws, grantsOf, snap.Grants); err != nil {
		return nil, err
	}
	if len(set.Pending) > 0 {
		snap.Pending = make(map[string]int, len(set.Pending))
		if err := t.pendingCountsIn(ctx, ws, set.Pending, snap.Pending); err != nil {
			return nil, err
		}
	}
	if err := t.packagesIn(ctx, ws, set.Packages, snap.Packages); err != nil {
		return nil, err
	}
	if err := t.activeRatesIn(ctx, ws, set.Currencies, snap.Rates); err != nil {
		return nil, err
	}
	return snap, nil
}

// apply writes eff. The order matters to the schema: accounts move before
// their holds and entries are inserted; a hold exists before the entry
// that captures it, and that entry before the hold's update; an IN entry
// exists before its grant, an EXPIRY entry before the grant it closes;
// requests, entries and holds exist before the decisions and idempotency
// records that name them.
func (t *writeTx) apply(ctx context.Context, ws string, eff *ledger.Effects) error {
	if err := sameWorkspace(ws, eff); err != nil {
		return err
	}
	if eff.Settings != nil {
		if err := t.putSettings(ctx, *eff.Settings); err != nil {
			return err
		}
	}
	for _, step := range []func() error{
		func() error { return t.insertPackages(ctx, eff.NewPackages) },
		func() error { return t.updatePackages(ctx, eff.PackageUpdates) },
		func() error { return t.insertRates(ctx, eff.Rates) },
		func() error { return t.insertRequests(ctx, ws, eff.NewRequests) },
		func() error { return t.moveAccounts(ctx, eff.Accounts) },
		func() error { return t.insertHolds(ctx, eff.NewHolds) },
		func() error { return t.insertTransactions(ctx, eff.Transactions) },
		func() error { return t.updateHolds(ctx, eff.HoldUpdates) },
		func() error { return t.insertGrants(ctx, eff.NewGrants) },
		func() error { return t.updateGrants(ctx, eff.GrantUpdates) },
		func() error { return t.decideRequests(ctx, eff.Decisions) },
		func() error { return t.putKeys(ctx, eff.Keys) },
		func() error { return t.insertEvents(ctx, ws, eff.Events) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// sameWorkspace refuses effects that name another workspace than the
// batch's: a batch never mixes workspaces.
func sameWorkspace(ws string, eff *ledger.Effects) error {
	var names []string
	if eff.Settings != nil {
		names = append(names, eff.Settings.Workspace)
	}
	for _, a := range eff.Accounts {
		names = append(names, a.Workspace)
	}
	for _, tr := range eff.Transactions {
		names = append(names, tr.Workspace)
	}
	for _, rs := range [][]ledger.CreditRequest{eff.NewRequests, eff.Decisions} {
		for _, r := range rs {
			names = append(names, r.Workspace)
		}
	}
	for _, rec := range eff.Keys {
		names = append(names, rec.Workspace)
	}
	for _, ps := range [][]ledger.Package{eff.NewPackages, eff.PackageUpdates} {
		for _, p := range ps {
			names = append(names, p.Workspace)
		}
	}
	for _, r := range eff.Rates {
		names = append(names, r.Workspace)
	}
	for _, hs := range [][]ledger.Hold{eff.NewHolds, eff.HoldUpdates} {
		for _, h := range hs {
			names = append(names, h.Workspace)
		}
	}
	for _, gs := range [][]ledger.Grant{eff.NewGrants, eff.GrantUpdates} {
		for _, g := range gs {
			names = append(names, g.Workspace)
		}
	}
	for _, n := range names {
		if n != ws {
			return fmt.Errorf("sqlite: a batch of workspace %q writes to workspace %q", ws, n)
		}
	}
	return nil
}
