package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Write implements ledger.Store: one batch in one READ COMMITTED
// transaction, in two round trips (three when it spends from accounts
// with expiring credits).
//
//  1. BEGIN, the workspace for row-level security, and every read,
//     pipelined: the settings, the requests, the holds, the accounts (with
//     those of the requests, holds and entries the batch names), the
//     entries it names (a reversal's originals) and the open grants of the
//     accounts of its holds and entries, the pending-request counts of submits (under advisory
//     locks, see qLockPending), the packages and the rates, each locked
//     FOR UPDATE in ID order when the batch changes them, then the
//     idempotency records. What follows a lock is read after it, so each
//     read sees what the batches it waited for committed. A batch that
//     finds records (a replay) reads the transactions, requests and holds
//     they name in one more round trip, and a batch that spends from
//     accounts whose rows say they have open grants reads those grants
//     in one more (a plain debit's account has none, and pays nothing).
//  2. Every write and COMMIT, pipelined. A statement that fails makes the
//     server skip the rest of the pipeline, COMMIT included: an error
//     from the server means nothing was committed. An error of the
//     connection after COMMIT was sent means the outcome is unknown, and
//     is reported as unavailable.
//
// Global lock order, the same for every batch of every replica: settings,
// requests, holds, accounts, pending counts (by key), packages, rates (each
// by ID), then, first among the writes, the workspace's row in the registry
// (only a new workspace's first batches wait for it) and its request
// counter. Grants are not locked: every change of a grant holds its
// account's lock. Inserts that may wait on another batch's uncommitted row
// (a new account, a new key) come after every lock, so no cycle can form;
// a duplicate they meet is a conflict and the batch is decided again.
func (s *Store) Write(ctx context.Context, set ledger.WriteSet, decide func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapErr(ctx, "acquire connection", err)
	}
	defer pc.Release() // the pool drops a connection left in a transaction
	conn := pc.Conn()

	snap, err := readBatch(ctx, conn, set)
	if err != nil {
		abort(ctx, conn)
		return err
	}
	eff, err := decide(snap)
	if err != nil {
		abort(ctx, conn)
		return err
	}
	if eff == nil || eff.Empty() {
		// Only refusals and replays: they were decided on committed state
		// under the batch's locks; there is nothing to commit.
		abort(ctx, conn)
		return nil
	}
	_, registered := s.registered.Load(set.Workspace)
	if err := writeBatch(ctx, conn, set.Workspace, eff, !registered); err != nil {
		abort(ctx, conn)
		return err
	}
	if !registered {
		s.registered.Store(set.Workspace, struct{}{})
	}
	return nil
}

// abort rolls back whatever the connection has open, even after ctx ended.
// A connection that cannot roll back is closed by the pool on release.
func abort(ctx context.Context, conn *pgx.Conn) {
	if conn.IsClosed() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(rctx, "ROLLBACK"); err != nil {
		_ = conn.Close(rctx)
	}
}

// readBatch sends BEGIN and the batch's reads in one round trip.
func readBatch(ctx context.Context, conn *pgx.Conn, set ledger.WriteSet) (*ledger.Snapshot, error) {
	ws := set.Workspace
	snap := &ledger.Snapshot{
		Settings:     ledger.Settings{Workspace: ws},
		Accounts:     make(map[string]ledger.Account, len(set.Accounts)),
		Keys:         make(map[string]ledger.IdempotencyRecord),
		Transactions: make(map[string]ledger.Transaction),
		Requests:     make(map[string]ledger.CreditRequest, len(set.Requests)),
		Packages:     make(map[string]ledger.Package, len(set.Packages)),
		Rates:        make(map[string]ledger.ConversionRate, len(set.Currencies)),
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// The batch's one workspace, for row-level security: in the same round
	// trip, and local to the transaction (see read.go).
	b.Queue(qSetWorkspace, ws)

	qs := qSettings
	if set.LockSettings {
		b.Queue(qEnsureSettings, ws)
		qs = qLockSettings
	}
	b.Queue(qs, ws).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := scanSettings(rows, &snap.Settings); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if len(set.Requests) > 0 {
		b.Queue(qLockRequests, ws, set.Requests).Query(collect(scanRequest, func(r ledger.CreditRequest) { snap.Requests[r.ID] = r }))
	}
	if len(set.Holds) > 0 {
		snap.Holds = make(map[string]ledger.Hold, len(set.Holds))
		b.Queue(qLockHolds, ws, set.Holds).Query(collect(scanHold, func(h ledger.Hold) { snap.Holds[h.ID] = h }))
	}
	// granted: the accounts with open grants, whose grants a batch that
	// does not name holds or entries reads after its locks (below).
	var granted []string
	addAccount := func(l lockedAccount) {
		snap.Accounts[l.ID] = l.Account
		if l.granted > 0 {
			granted = append(granted, l.ID)
		}
	}
	// Holds and entries name accounts the batch learns only here.
	derived := len(set.Holds) > 0 || len(set.Transactions) > 0
	switch {
	case len(set.Requests) > 0 || derived:
		b.Queue(qLockAccountsOf, ws, nonNil(set.Accounts), nonNil(set.Requests), nonNil(set.Holds), nonNil(set.Transactions)).
			Query(collect(scanLockedAccount, addAccount))
	case len(set.Accounts) > 0:
		b.Queue(qLockAccounts, ws, set.Accounts).Query(collect(scanLockedAccount, addAccount))
	}
	// Read under the account locks: every reversal of an entry, and every
	// change of a grant, holds its account's lock.
	if len(set.Transactions) > 0 {
		b.Queue(qTransactionsByID, ws, set.Transactions).Query(collect(scanTransaction, func(t ledger.Transaction) { snap.Transactions[t.ID] = t }))
	}
	// The open grants: of the accounts of the batch's holds and entries in
	// this round trip; of the accounts it spends from only when their row
	// says they have some (a plain debit's account has none), after it.
	addGrant := func(g ledger.Grant) { snap.Grants[g.Account] = append(snap.Grants[g.Account], g) }
	if len(set.GrantsOf) > 0 || derived {
		snap.Grants = make(map[string][]ledger.Grant)
	}
	if derived {
		b.Queue(qGrantsOfAll, ws, nonNil(set.GrantsOf), nonNil(set.Holds), nonNil(set.Transactions)).Query(collect(scanGrant, addGrant))
	}
	if len(set.Pending) > 0 {
		snap.Pending = make(map[string]int, len(set.Pending))
		b.Queue(qLockPending, pendingLockKeys(ws, set.Pending))
		b.Queue(qCountPending, ws, set.Pending).Query(func(rows pgx.Rows) error {
			defer rows.Close()
			for rows.Next() {
				var id string
				var n int
				if err := rows.Scan(&id, &n); err != nil {
					return err
				}
				if n > 0 {
					snap.Pending[id] = n
				}
			}
			return rows.Err()
		})
	}
	if len(set.Packages) > 0 {
		q := qPackages
		if set.LockPackages {
			q = qLockPackages
		}
		b.Queue(q, ws, set.Packages).Query(collect(scanPackage, func(p ledger.Package) { snap.Packages[p.ID] = p }))
	}
	if len(set.Currencies) > 0 {
		b.Queue(qLockRates, ws, set.Currencies).Query(collect(scanRate, func(r ledger.ConversionRate) { snap.Rates[r.Currency] = r }))
	}
	if len(set.Keys) > 0 {
		b.Queue(qKeys, ws, set.Keys).Query(collect(scanIdempotency, func(r ledger.IdempotencyRecord) { snap.Keys[r.Key] = r }))
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, mapErr(ctx, "read batch", err)
	}
	if !derived && len(set.GrantsOf) > 0 {
		// Still under the account locks: every change of a grant holds its
		// account's lock.
		if of := grantedOf(set.GrantsOf, granted); len(of) > 0 {
			rows, err := conn.Query(ctx, qGrantsOf, ws, of)
			if err == nil {
				err = collect(scanGrant, addGrant)(rows)
			}
			if err != nil {
				return nil, mapErr(ctx, "read grants", err)
			}
		}
	}
	if len(snap.Keys) > 0 {
		if err := readReplays(ctx, conn, ws, snap); err != nil {
			return nil, err
		}
	}
	return snap, nil
}

// grantedOf returns the accounts of want that have open grants, sorted.
func grantedOf(want, granted []string) []string {
	var of []string
	for _, id := range granted {
		if slices.Contains(want, id) {
			of = append(of, id)
		}
	}
	slices.Sort(of)
	return of
}

// readReplays reads what the batch's existing idempotency records name, in
// one more round trip; only batches that replay an earlier outcome need it.
func readReplays(ctx context.Context, conn *pgx.Conn, ws string, snap *ledger.Snapshot) error {
	var txIDs, reqIDs, holdIDs []string
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
	b := &pgx.Batch{}
	if len(txIDs) > 0 {
		b.Queue(qTransactionsByID, ws, txIDs).Query(collect(scanTransaction, func(t ledger.Transaction) { snap.Transactions[t.ID] = t }))
	}
	if len(reqIDs) > 0 {
		b.Queue(qRequestsByID, ws, reqIDs).Query(collect(scanRequest, func(r ledger.CreditRequest) { snap.Requests[r.ID] = r }))
	}
	if len(holdIDs) > 0 {
		if snap.Holds == nil {
			snap.Holds = make(map[string]ledger.Hold, len(holdIDs))
		}
		b.Queue(qHoldsByID, ws, holdIDs).Query(collect(scanHold, func(h ledger.Hold) { snap.Holds[h.ID] = h }))
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return mapErr(ctx, "read replays", err)
	}
	return nil
}

// collect returns a batch callback that scans every row and hands it on.
func collect[T any](scan func(pgx.Row) (T, error), add func(T)) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			add(v)
		}
		return rows.Err()
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// qRegisterWorkspace adds the batch's workspace to the registry that
// operator tasks list (migration 0004). A registered workspace, the usual
// case, is found by the NOT EXISTS probe: no insert, no lock.
const qRegisterWorkspace = `INSERT INTO ledger_workspaces (workspace)
	SELECT $1::text WHERE NOT EXISTS (SELECT 1 FROM ledger_workspaces WHERE workspace = $1::text)
	ON CONFLICT DO NOTHING`

// writeBatch sends every effect and COMMIT in one round trip; register
// adds the workspace to the registry first, when this process has not yet
// seen it there.
func writeBatch(ctx context.Context, conn *pgx.Conn, ws string, eff *ledger.Effects, register bool) error {
	b := &pgx.Batch{}
	stale := false // an account update found its row elsewhere
	moved := func(want int) func(pgconn.CommandTag) error {
		return func(ct pgconn.CommandTag) error {
			stale = stale || ct.RowsAffected() != int64(want)
			return nil
		}
	}
	// The workspace's registry row, then its request counter: see Write.
	if register {
		b.Queue(qRegisterWorkspace, ws)
	}
	if len(eff.NewRequests) > 0 {
		if err := queueNewRequests(b, ws, eff.NewRequests); err != nil {
			return err
		}
	}
	if st := eff.Settings; st != nil {
		b.Queue(qPutSettings, ws, st.CreditPaymentsEnabled, st.RequireDistinctApprover, toTime(st.UpdateTime),
			methodNames(*st), st.LowBalanceThreshold)
	}
	// Rows that another batch may insert at the same moment (keys, new
	// packages, rates) go in one global order, so that two batches meeting
	// on them wait for each other in one direction only.
	newPackages := slices.SortedFunc(slices.Values(eff.NewPackages), func(x, y ledger.Package) int { return strings.Compare(x.ID, y.ID) })
	rates := slices.Clone(eff.Rates)
	slices.SortStableFunc(rates, func(x, y ledger.ConversionRate) int { return strings.Compare(x.Currency, y.Currency) })
	for _, p := range newPackages {
		b.Queue(qInsertPackage, ws, p.ID, p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, p.Price.Nanos,
			p.Active, toTime(p.CreateTime), toTime(p.UpdateTime), int64(p.Validity))
	}
	for _, p := range eff.PackageUpdates {
		b.Queue(qUpdatePackage, p.DisplayName, p.Credits, p.Price.Currency, p.Price.Units, p.Price.Nanos,
			p.Active, toTime(p.UpdateTime), ws, p.ID, int64(p.Validity))
	}
	for _, r := range rates {
		b.Queue(qDeactivateRate, ws, r.Currency)
		b.Queue(qInsertRate, ws, r.Currency, r.Rate.String(), toTime(r.CreateTime))
	}
	// The grants the batch draws or expires, before its accounts move: the
	// schema keeps each account's open grants within its balance at every
	// write (migration 0005).
	for _, g := range eff.GrantUpdates {
		b.Queue(qUpdateGrant, ws, g.TransactionID, g.Remaining, optText(g.ExpiryTransactionID))
	}
	queueAccountMoves(b, ws, eff.Accounts, moved)
	if len(eff.NewHolds) > 0 {
		if err := queueNewHolds(b, ws, eff.NewHolds); err != nil {
			return err
		}
	}
	// The holds the entries capture and the grants they open, before the
	// entries, which the schema checks against them (and they against the
	// entries, at COMMIT).
	for _, h := range eff.HoldUpdates {
		b.Queue(qEndHold, ws, h.ID, h.Status.String(), h.CapturedAmount, optText(h.TransactionID), toTime(h.UpdateTime))
	}
	if len(eff.NewGrants) > 0 {
		queueNewGrants(b, ws, eff.NewGrants)
	}
	if len(eff.Transactions) > 0 {
		if err := queueTransactions(b, ws, eff.Transactions); err != nil {
			return err
		}
	}
	for _, r := range eff.Decisions {
		b.Queue(qDecideRequest, ws, r.ID, r.Status.String(), r.DecisionReason, r.DecidedBy, r.DecideTime.UTC(),
			optText(r.TransactionID))
	}
	if len(eff.Keys) > 0 {
		queueKeys(b, ws, eff.Keys)
	}
	// Last: the events, numbered under the workspace's event counter,
	// whose lock is then held for the commit only (migration 0007).
	if len(eff.Events) > 0 {
		if err := queueEvents(b, ws, eff.Events); err != nil {
			return err
		}
	}
	b.Queue("COMMIT")
	err := conn.SendBatch(ctx, b).Close()
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	switch {
	case stale:
		// An account was not where the batch read it. The batch's entries
		// then always fail (they repeat an existing version, skip one, or
		// name a missing account), so COMMIT was skipped: a conflict.
		return ledger.ConflictError(fmt.Errorf("postgres: write batch: an account changed concurrently: %w", err))
	case errors.As(err, &pe) && !lostConnection(pe):
		// The server refused a statement (or the commit): nothing was
		// committed.
		merr := mapErr(ctx, "write batch", err)
		if errors.Is(merr, ledger.ErrAlreadyExists) {
			// A package ID taken meanwhile can only be another batch's
			// doing (this one read it absent): a conflict.
			return ledger.ConflictError(err)
		}
		return merr
	}
	// The connection broke (a pooler says so with an error of its own), or
	// ctx ended, with COMMIT possibly sent.
	return ledger.UnavailableError(fmt.Errorf("postgres: write batch: outcome unknown: %w", err))
}

func queueNewRequests(b *pgx.Batch, ws string, rs []ledger.CreditRequest) error {
	n := len(rs)
	ids, accts, pkgs, methods := make([]string, n), make([]string, n), make([]*string, n), make([]string, n)
	amounts, refs, notes, mds := make([]int64, n), make([]string, n), make([]string, n), make([]*string, n)
	keys, times, subs, validity := make([]string, n), make([]time.Time, n), make([]string, n), make([]int64, n)
	for i, r := range rs {
		md, err := metadataText(r.Metadata)
		if err != nil {
			return err
		}
		ids[i], accts[i], amounts[i], pkgs[i], methods[i] = r.ID, r.Account, r.Amount, optText(r.PackageID), r.PaymentMethod.String()
		refs[i], notes[i], mds[i], keys[i], times[i] = r.PaymentReference, r.Note, md, r.IdempotencyKey, r.CreateTime.UTC()
		subs[i], validity[i] = r.SubmittedBy, int64(r.Validity)
	}
	b.Queue(qInsertRequests, ws, ids, accts, amounts, pkgs, methods, refs, notes, mds, keys, times, subs, validity)
	return nil
}

// queueAccountMoves updates moved accounts one by one (moved sees each
// update's row count) and inserts the new ones together. A move of held
// alone asserts its row count itself: no entry follows it.
func queueAccountMoves(b *pgx.Batch, ws string, moves []ledger.AccountMove, moved func(want int) func(pgconn.CommandTag) error) {
	var cIDs, mIDs []string
	var cBal, cVer, cHeld, mBal, mVer, mHeld, mFrom []int64
	var cTime, mTime []time.Time
	for _, m := range moves {
		if m.Create {
			cIDs, cBal, cVer, cTime = append(cIDs, m.ID), append(cBal, m.Balance), append(cVer, m.Version), append(cTime, m.UpdateTime.UTC())
			cHeld = append(cHeld, m.Held)
			continue
		}
		if m.Version == m.FromVersion {
			b.Queue(qMoveAccountHeld, ws, m.ID, m.Balance, m.Version, toTime(m.UpdateTime), m.FromVersion, m.Held)
			continue
		}
		mIDs, mBal, mVer, mTime = append(mIDs, m.ID), append(mBal, m.Balance), append(mVer, m.Version), append(mTime, m.UpdateTime.UTC())
		mHeld, mFrom = append(mHeld, m.Held), append(mFrom, m.FromVersion)
	}
	switch len(mIDs) {
	case 0:
	case 1:
		b.Queue(qMoveAccount, ws, mIDs[0], mBal[0], mVer[0], mTime[0], mFrom[0], mHeld[0]).Exec(moved(1))
	default:
		b.Queue(qMoveAccounts, ws, mIDs, mBal, mVer, mTime, mHeld, mFrom).Exec(moved(len(mIDs)))
	}
	if len(cIDs) > 0 {
		b.Queue(qCreateAccounts, ws, cIDs, cBal, cVer, cTime, cHeld)
	}
}

func queueNewHolds(b *pgx.Batch, ws string, hs []ledger.Hold) error {
	n := len(hs)
	ids, accts, kinds, refs, keys := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	amounts, mds, expires, times := make([]int64, n), make([]*string, n), make([]time.Time, n), make([]time.Time, n)
	statuses := make([]string, n)
	for i, h := range hs {
		md, err := metadataText(h.Metadata)
		if err != nil {
			return err
		}
		ids[i], accts[i], amounts[i], kinds[i], refs[i] = h.ID, h.Account, h.Amount, h.Kind.String(), h.Reference
		mds[i], expires[i], keys[i], times[i] = md, h.ExpireTime.UTC(), h.IdempotencyKey, h.CreateTime.UTC()
		statuses[i] = h.Status.String() // ACTIVE; the schema refuses any other
	}
	b.Queue(qInsertHolds, ws, ids, accts, amounts, kinds, refs, mds, expires, keys, times, statuses)
	return nil
}

func queueNewGrants(b *pgx.Batch, ws string, gs []ledger.Grant) {
	n := len(gs)
	ids, accts, amounts, remaining, expires := make([]string, n), make([]string, n), make([]int64, n), make([]int64, n), make([]time.Time, n)
	for i, g := range gs {
		ids[i], accts[i], amounts[i], remaining[i], expires[i] = g.TransactionID, g.Account, g.Amount, g.Remaining, g.ExpireTime.UTC()
	}
	b.Queue(qInsertGrants, ws, ids, accts, amounts, remaining, expires)
}

func queueTransactions(b *pgx.Batch, ws string, ts []ledger.Transaction) error {
	n := len(ts)
	ids, accts, types, kinds := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	amounts, bals, vers := make([]int64, n), make([]int64, n), make([]int64, n)
	refs, keys, mds, pkgs, reqs := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n), make([]*string, n)
	revs, holds, expires := make([]*string, n), make([]*string, n), make([]*time.Time, n)
	times := make([]time.Time, n)
	linked := false // an entry reverses one, captures a hold or expires
	for i, t := range ts {
		if t.Type != ledger.TypeIn && t.Type != ledger.TypeOut {
			return fmt.Errorf("postgres: transaction %s: unspecified type", t.ID)
		}
		md, err := metadataText(t.Metadata)
		if err != nil {
			return err
		}
		ids[i], accts[i], types[i], kinds[i] = t.ID, t.Account, t.Type.String(), t.Kind.String()
		amounts[i], bals[i], vers[i] = t.Amount, t.BalanceAfter, t.AccountVersion
		refs[i], keys[i], mds[i], pkgs[i], reqs[i] = t.Reference, t.IdempotencyKey, md, optText(t.PackageID), optText(t.RequestID)
		revs[i], holds[i], expires[i] = optText(t.ReversesTransactionID), optText(t.HoldID), optTime(t.ExpireTime)
		linked = linked || revs[i] != nil || holds[i] != nil || expires[i] != nil
		times[i] = t.CreateTime.UTC()
	}
	if !linked {
		// Plain entries, the hot path: three arrays of NULLs less.
		b.Queue(qInsertPlainTransactions, ws, ids, accts, types, kinds, amounts, bals, vers, refs, keys, mds, pkgs, reqs, times)
		return nil
	}
	b.Queue(qInsertTransactions, ws, ids, accts, types, kinds, amounts, bals, vers, refs, keys, mds, pkgs, reqs, times,
		revs, holds, expires)
	return nil
}

func queueKeys(b *pgx.Batch, ws string, recs []ledger.IdempotencyRecord) {
	recs = slices.SortedFunc(slices.Values(recs), func(x, y ledger.IdempotencyRecord) int { return strings.Compare(x.Key, y.Key) })
	n := len(recs)
	keys, ops, txs, reqs := make([]string, n), make([]string, n), make([]*string, n), make([]*string, n)
	fps, times, holds := make([][]byte, n), make([]time.Time, n), make([]*string, n)
	for i, r := range recs {
		keys[i], ops[i], fps[i] = r.Key, string(r.Operation), r.Fingerprint
		txs[i], reqs[i], times[i] = optText(r.TransactionID), optText(r.RequestID), r.CreateTime.UTC()
		holds[i] = optText(r.HoldID)
	}
	b.Queue(qInsertKeys, ws, keys, ops, fps, txs, reqs, times, holds)
}

// optText is "" as NULL, for array parameters.
func optText(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// optTime is the zero time as NULL (else UTC), for array parameters.
func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
