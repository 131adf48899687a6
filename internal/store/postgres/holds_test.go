package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Holds, grants, reversals and statements (migration 0005).

// holdOf is a new ACTIVE hold of workspace/acct, created at t0.
func holdOf(workspace, id, acct string, amount int64, expire time.Time) ledger.Hold {
	return ledger.Hold{
		ID: id, Workspace: workspace, Account: acct, Amount: amount, Kind: ledger.KindServicePurchase,
		Reference: "ref-" + id, Status: ledger.HoldActive, ExpireTime: expire, IdempotencyKey: "k-" + id, CreateTime: t0,
	}
}

// grantOf is the grant that IN entry t opens, whole.
func grantOf(t ledger.Transaction) ledger.Grant {
	return ledger.Grant{
		Workspace: t.Workspace, Account: t.Account, TransactionID: t.ID, Amount: t.Amount, Remaining: t.Amount,
		ExpireTime: t.ExpireTime,
	}
}

// Keys of seedHolds.
var (
	keyG1 = ledger.PostKey("a", "k-g1")
	keyH1 = ledger.PostKey("a", "k-h1")
)

// seedHolds writes, into workspace, on account "a" (which must exist): g1,
// a credit of 40 that expires at(1000) (a grant), and h1, a hold of 30
// that expires at(500), in one batch.
func seedHolds(tb testing.TB, s *Store, workspace string) {
	tb.Helper()
	var a ledger.Account
	mustView(tb, s, func(ctx context.Context, tx ledger.ReadTx) error {
		var err error
		a, err = tx.Account(ctx, workspace, "a")
		return err
	})
	g1 := ledger.Transaction{
		ID: "g1", Workspace: workspace, Account: "a", Type: ledger.TypeIn, Kind: ledger.KindPurchase, Amount: 40,
		BalanceAfter: a.Balance + 40, AccountVersion: a.Version + 1, IdempotencyKey: "k-g1", CreateTime: at(10),
		ExpireTime: at(1000),
	}
	h1 := holdOf(workspace, "h1", "a", 30, at(500))
	moved := a
	moved.Balance, moved.Version, moved.UpdateTime, moved.Held = g1.BalanceAfter, g1.AccountVersion, g1.CreateTime, a.Held+30
	recG := record(keyG1, ledger.OpCredit, "g1", "")
	recH := ledger.IdempotencyRecord{Workspace: workspace, Key: keyH1, Operation: ledger.OpCreateHold, Fingerprint: []byte{9}, HoldID: "h1", CreateTime: t0}
	recG.Workspace = workspace
	mustWrite(tb, s, ledger.WriteSet{Workspace: workspace, Accounts: []string{"a"}, Keys: []string{keyG1, keyH1}, GrantsOf: []string{"a"}}, &ledger.Effects{
		Accounts:     []ledger.AccountMove{{Account: moved, FromVersion: a.Version}},
		Transactions: []ledger.Transaction{g1},
		NewHolds:     []ledger.Hold{h1},
		NewGrants:    []ledger.Grant{grantOf(g1)},
		Keys:         []ledger.IdempotencyRecord{recG, recH},
	})
}

// snapshotOf runs a batch that writes nothing and returns what it was shown.
func snapshotOf(tb testing.TB, s *Store, set ledger.WriteSet) *ledger.Snapshot {
	tb.Helper()
	var got *ledger.Snapshot
	if err := s.Write(context.Background(), set, func(snap *ledger.Snapshot) (*ledger.Effects, error) {
		got = snap
		return nil, nil
	}); err != nil {
		tb.Fatalf("Write: %v", err)
	}
	return got
}

// TestHoldsGrantsReversals walks a hold, a grant and a reversal through
// the batch path and reads them back.
func TestHoldsGrantsReversals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, Options{})
	seed(t, s) // a at v3, balance 120
	seedHolds(t, s, ws)
	h1 := holdOf(ws, "h1", "a", 30, at(500))
	g1 := ledger.Grant{Workspace: ws, Account: "a", TransactionID: "g1", Amount: 40, Remaining: 40, ExpireTime: at(1000)}
	a4 := ledger.Account{Workspace: ws, ID: "a", Balance: 160, Version: 4, UpdateTime: at(10), Held: 30}

	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if a, err := tx.Account(ctx, ws, "a"); err != nil || a != a4 {
			t.Errorf("account a: %+v %v, want %+v", a, err, a4)
		}
		got, err := tx.Hold(ctx, ws, "h1")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(h1, got); diff != "" {
			t.Errorf("hold (-want +got):\n%s", diff)
		}
		if _, err := tx.Hold(ctx, ws, "nope"); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("missing hold: %v", err)
		}
		grants, err := tx.Grants(ctx, ws, "a")
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]ledger.Grant{g1}, grants); diff != "" {
			t.Errorf("grants (-want +got):\n%s", diff)
		}
		tr, err := tx.Transaction(ctx, ws, "g1")
		if err != nil || !tr.ExpireTime.Equal(at(1000)) || tr.ExpireTime.Location() != time.UTC {
			t.Errorf("g1: %+v %v", tr, err)
		}
		for now, want := range map[int64]int{499: 0, 500: 1} {
			due, err := tx.DueHolds(ctx, ws, at(now), 10)
			if err != nil || len(due) != want {
				t.Errorf("due holds at %d: %+v %v, want %d", now, due, err, want)
			}
		}
		for now, want := range map[int64]int{999: 0, 1000: 1} {
			due, err := tx.DueGrants(ctx, ws, at(now), 10)
			if err != nil || len(due) != want {
				t.Errorf("due grants at %d: %+v %v, want %d", now, due, err, want)
			}
		}
		rec, found, err := tx.Idempotency(ctx, ws, keyH1)
		if err != nil || !found || rec.HoldID != "h1" || rec.Operation != ledger.OpCreateHold {
			t.Errorf("create_hold record: %+v %v %v", rec, found, err)
		}
		return nil
	})

	// Capture 25 of h1: the batch names the hold only, and is shown the
	// hold, its account and the account's open grants.
	keyC := ledger.HoldKey("h1", "c1")
	t5 := ledger.Transaction{
		ID: "t5", Workspace: ws, Account: "a", Type: ledger.TypeOut, Kind: ledger.KindServicePurchase, Amount: 25,
		BalanceAfter: 135, AccountVersion: 5, Reference: h1.Reference, IdempotencyKey: h1.IdempotencyKey,
		CreateTime: at(20), HoldID: "h1",
	}
	captured := h1
	captured.Status, captured.CapturedAmount, captured.TransactionID, captured.UpdateTime = ledger.HoldCaptured, 25, "t5", at(20)
	drawn := g1
	drawn.Remaining = 15
	err := s.Write(ctx, ledger.WriteSet{Workspace: ws, Holds: []string{"h1"}, Keys: []string{keyC}}, func(snap *ledger.Snapshot) (*ledger.Effects, error) {
		if diff := cmp.Diff(map[string]ledger.Hold{"h1": h1}, snap.Holds); diff != "" {
			t.Errorf("snapshot holds (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]ledger.Account{"a": a4}, snap.Accounts); diff != "" {
			t.Errorf("snapshot accounts (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string][]ledger.Grant{"a": {g1}}, snap.Grants); diff != "" {
			t.Errorf("snapshot grants (-want +got):\n%s", diff)
		}
		a := a4
		a.Balance, a.Version, a.UpdateTime, a.Held = 135, 5, at(20), 0
		return &ledger.Effects{
			Accounts:     []ledger.AccountMove{{Account: a, FromVersion: 4}},
			Transactions: []ledger.Transaction{t5},
			HoldUpdates:  []ledger.Hold{captured},
			GrantUpdates: []ledger.Grant{drawn},
			Keys: []ledger.IdempotencyRecord{{
				Workspace: ws, Key: keyC, Operation: ledger.OpCaptureHold, Fingerprint: []byte{7}, HoldID: "h1",
				TransactionID: "t5", CreateTime: at(20),
			}},
		}, nil
	})
	if err != nil {
		t.Fatalf("capture: %v", err)
	}

	// A replay of the capture is shown the hold and the entry its record names.
	snap := snapshotOf(t, s, ledger.WriteSet{Workspace: ws, Keys: []string{keyC}})
	if diff := cmp.Diff(captured, snap.Holds["h1"]); diff != "" {
		t.Errorf("replayed hold (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(t5, snap.Transactions["t5"]); diff != "" {
		t.Errorf("replayed entry (-want +got):\n%s", diff)
	}

	// Reverse 10 of t5: the batch names the entry only, and is shown it,
	// its account and the account's grants.
	keyR := ledger.ReverseKey("t5", "r1")
	rv1 := ledger.Transaction{
		ID: "rv1", Workspace: ws, Account: "a", Type: ledger.TypeIn, Kind: ledger.KindReversal, Amount: 10,
		BalanceAfter: 145, AccountVersion: 6, Reference: "wrong amount", IdempotencyKey: "r1", CreateTime: at(30),
		ReversesTransactionID: "t5",
	}
	err = s.Write(ctx, ledger.WriteSet{Workspace: ws, Transactions: []string{"t5"}, Keys: []string{keyR}}, func(snap *ledger.Snapshot) (*ledger.Effects, error) {
		if diff := cmp.Diff(t5, snap.Transactions["t5"]); diff != "" {
			t.Errorf("snapshot entry (-want +got):\n%s", diff)
		}
		if a := snap.Accounts["a"]; a.Version != 5 || a.Held != 0 {
			t.Errorf("snapshot account: %+v", a)
		}
		if diff := cmp.Diff(map[string][]ledger.Grant{"a": {drawn}}, snap.Grants); diff != "" {
			t.Errorf("snapshot grants (-want +got):\n%s", diff)
		}
		a := snap.Accounts["a"]
		a.Balance, a.Version, a.UpdateTime = 145, 6, at(30)
		return &ledger.Effects{
			Accounts:     []ledger.AccountMove{{Account: a, FromVersion: 5}},
			Transactions: []ledger.Transaction{rv1},
			Keys: []ledger.IdempotencyRecord{{
				Workspace: ws, Key: keyR, Operation: ledger.OpReverse, Fingerprint: []byte{7}, TransactionID: "rv1", CreateTime: at(30),
			}},
		}, nil
	})
	if err != nil {
		t.Fatalf("reverse: %v", err)
	}
	snap = snapshotOf(t, s, ledger.WriteSet{Workspace: ws, Transactions: []string{"t5"}})
	if got := snap.Transactions["t5"].ReversedAmount; got != 10 {
		t.Errorf("ReversedAmount of t5 read by a batch = %d, want 10", got)
	}

	// A hold created and one released move held alone: the version stays.
	h2 := holdOf(ws, "h2", "a", 20, at(40))
	a6 := ledger.Account{Workspace: ws, ID: "a", Balance: 145, Version: 6, UpdateTime: at(30)}
	heldOnly := func(held int64) []ledger.AccountMove {
		a := a6
		a.Held = held
		return []ledger.AccountMove{{Account: a, FromVersion: 6}}
	}
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Accounts: []string{"a"}}, &ledger.Effects{
		Accounts: heldOnly(20), NewHolds: []ledger.Hold{h2},
	})
	expired := h2
	expired.Status, expired.UpdateTime = ledger.HoldExpired, at(41)
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Holds: []string{"h2"}}, &ledger.Effects{
		Accounts: heldOnly(0), HoldUpdates: []ledger.Hold{expired},
	})

	// g1's remainder expires.
	e1 := ledger.Transaction{
		ID: "e1", Workspace: ws, Account: "a", Type: ledger.TypeOut, Kind: ledger.KindExpiry, Amount: 15,
		BalanceAfter: 130, AccountVersion: 7, Reference: "expiry:g1", CreateTime: at(1001),
	}
	closed := drawn
	closed.Remaining, closed.ExpiryTransactionID = 0, "e1"
	a7 := ledger.Account{Workspace: ws, ID: "a", Balance: 130, Version: 7, UpdateTime: at(1001)}
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Accounts: []string{"a"}, GrantsOf: []string{"a"}}, &ledger.Effects{
		Accounts: []ledger.AccountMove{{Account: a7, FromVersion: 6}}, Transactions: []ledger.Transaction{e1},
		GrantUpdates: []ledger.Grant{closed},
	})

	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if a, err := tx.Account(ctx, ws, "a"); err != nil || a != a7 {
			t.Errorf("account a: %+v %v, want %+v", a, err, a7)
		}
		got, err := tx.Transaction(ctx, ws, "t5")
		if err != nil {
			return err
		}
		want := t5
		want.ReversedAmount = 10
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("t5 (-want +got):\n%s", diff)
		}
		if got, err := tx.Transaction(ctx, ws, "rv1"); err != nil || got.ReversesTransactionID != "t5" || got.ReversedAmount != 0 {
			t.Errorf("rv1: %+v %v", got, err)
		}
		if grants, err := tx.Grants(ctx, ws, "a"); err != nil || len(grants) != 0 {
			t.Errorf("open grants after expiry: %+v %v", grants, err)
		}
		if due, err := tx.DueGrants(ctx, ws, at(2000), 10); err != nil || len(due) != 0 {
			t.Errorf("due grants after expiry: %+v %v", due, err)
		}
		if due, err := tx.DueHolds(ctx, ws, at(2000), 10); err != nil || len(due) != 0 {
			t.Errorf("due holds after the holds ended: %+v %v", due, err)
		}
		ids := func(q ledger.HoldQuery) string {
			q.Workspace, q.Account, q.Limit = ws, "a", 10
			hs, err := tx.ListHolds(ctx, q)
			if err != nil {
				t.Errorf("ListHolds %+v: %v", q, err)
			}
			var out []string
			for _, h := range hs {
				out = append(out, h.ID+":"+h.Status.String())
			}
			return strings.Join(out, ",")
		}
		for q, want := range map[ledger.HoldQuery]string{
			{}:                            "h2:EXPIRED,h1:CAPTURED",
			{BeforeID: "h2"}:              "h1:CAPTURED",
			{Status: ledger.HoldCaptured}: "h1:CAPTURED",
			{Status: ledger.HoldCaptured, BeforeID: "h1"}: "",
			{Status: ledger.HoldActive}:                   "",
			{Status: ledger.HoldExpired, BeforeID: "h3"}:  "h2:EXPIRED",
		} {
			if got := ids(q); got != want {
				t.Errorf("ListHolds %+v = %q, want %q", q, got, want)
			}
		}
		asc, err := tx.ListTransactions(ctx, ledger.TransactionQuery{Workspace: ws, Account: "a", Ascending: true, AfterVersion: 4, Limit: 2})
		if err != nil || len(asc) != 2 || asc[0].ID != "t5" || asc[1].ID != "rv1" || asc[0].ReversedAmount != 10 {
			t.Errorf("history ascending after v4: %+v %v", asc, err)
		}
		desc, err := tx.ListTransactions(ctx, ledger.TransactionQuery{Workspace: ws, Account: "a", Limit: 1})
		if err != nil || len(desc) != 1 || desc[0].ID != "e1" {
			t.Errorf("newest entry: %+v %v", desc, err)
		}
		return nil
	})
	active, held, err := s.HoldStats(ctx)
	if err != nil || active != 0 || held != 0 {
		t.Errorf("HoldStats = %d, %d, %v; want none", active, held, err)
	}
	verifyLedger(t, s)
}

// TestStatement sums an account's entries over periods.
func TestStatement(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)          // t1 +100 at(1), t2 -30 at(2), t3 +50 at(3) (REQUEST_APPROVED)
	seedHolds(t, s, ws) // g1 +40 at(10)
	line := func(typ ledger.TxType, kind ledger.Kind, amount, n int64) ledger.StatementLine {
		return ledger.StatementLine{Type: typ, Kind: kind, Amount: amount, Count: n}
	}
	for _, tc := range []struct {
		start, end time.Time
		want       ledger.Statement
	}{
		{at(0), at(100), ledger.Statement{
			OpeningBalance: 0, ClosingBalance: 160, TotalIn: 190, TotalOut: 30, Count: 4,
			Lines: []ledger.StatementLine{
				line(ledger.TypeIn, ledger.KindPurchase, 40, 1), line(ledger.TypeIn, ledger.KindRequestApproved, 50, 1),
				line(ledger.TypeIn, ledger.KindAdjustment, 100, 1), line(ledger.TypeOut, ledger.KindAdjustment, 30, 1),
			},
		}},
		{at(2), at(10), ledger.Statement{
			OpeningBalance: 100, ClosingBalance: 120, TotalIn: 50, TotalOut: 30, Count: 2,
			Lines: []ledger.StatementLine{line(ledger.TypeIn, ledger.KindRequestApproved, 50, 1), line(ledger.TypeOut, ledger.KindAdjustment, 30, 1)},
		}},
		{at(11), at(20), ledger.Statement{OpeningBalance: 160, ClosingBalance: 160}},
		{time.Time{}, time.Time{}, ledger.Statement{
			OpeningBalance: 0, ClosingBalance: 160, TotalIn: 190, TotalOut: 30, Count: 4,
			Lines: []ledger.StatementLine{
				line(ledger.TypeIn, ledger.KindPurchase, 40, 1), line(ledger.TypeIn, ledger.KindRequestApproved, 50, 1),
				line(ledger.TypeIn, ledger.KindAdjustment, 100, 1), line(ledger.TypeOut, ledger.KindAdjustment, 30, 1),
			},
		}},
	} {
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			got, err := tx.Statement(ctx, ws, "a", tc.start, tc.end)
			if err != nil {
				return err
			}
			want := tc.want
			want.Workspace, want.Account, want.Start, want.End = ws, "a", tc.start, tc.end
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("statement [%v, %v) (-want +got):\n%s", tc.start, tc.end, diff)
			}
			return nil
		})
	}
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		got, err := tx.Statement(ctx, ws, "nobody", at(0), at(100))
		if err != nil || got.OpeningBalance != 0 || got.ClosingBalance != 0 || got.Count != 0 || got.Lines != nil {
			t.Errorf("statement of an unknown account: %+v %v", got, err)
		}
		return nil
	})
}

// TestValidityRoundTrip: packages and requests keep their validity.
func TestValidityRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	p := starter
	p.Validity = 90*24*time.Hour + time.Nanosecond
	r := pending("r1", "a", 5)
	r.PackageID, r.Validity = "p1", p.Validity
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Packages: []string{"p1"}, LockPackages: true, Pending: []string{"a"}}, &ledger.Effects{
		NewPackages: []ledger.Package{p}, NewRequests: []ledger.CreditRequest{r},
	})
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		got, err := tx.Package(ctx, ws, "p1")
		if err != nil || got.Validity != p.Validity {
			t.Errorf("package validity: %v %v, want %v", got.Validity, err, p.Validity)
		}
		req, err := tx.Request(ctx, ws, "r1")
		if err != nil || req.Validity != p.Validity {
			t.Errorf("request validity: %v %v, want %v", req.Validity, err, p.Validity)
		}
		return nil
	})
	p.Validity = 0
	p.UpdateTime = at(1)
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Packages: []string{"p1"}, LockPackages: true}, &ledger.Effects{
		PackageUpdates: []ledger.Package{p},
	})
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if got, err := tx.Package(ctx, ws, "p1"); err != nil || got.Validity != 0 {
			t.Errorf("package validity after the update: %v %v", got.Validity, err)
		}
		return nil
	})
}

// TestHoldAndGrantConflicts: a hold that is no longer ACTIVE, a grant that
// is no longer open, an account moved meanwhile under a move of held alone:
// each makes the batch a conflict, and nothing of it is committed.
func TestHoldAndGrantConflicts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, Options{})
	seed(t, s)
	seedHolds(t, s, ws) // a at v4, balance 160, held 30 (h1); g1 open, 40
	// h1 voided, g1 spent whole by a debit.
	voided := holdOf(ws, "h1", "a", 30, at(500))
	voided.Status, voided.UpdateTime = ledger.HoldVoided, at(20)
	d1 := entry("d1", "a", ledger.TypeOut, 40, 120, 5)
	released := ledger.Account{Workspace: ws, ID: "a", Balance: 120, Version: 5, UpdateTime: d1.CreateTime}
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Holds: []string{"h1"}, GrantsOf: []string{"a"}}, &ledger.Effects{
		Accounts:     []ledger.AccountMove{{Account: released, FromVersion: 4}},
		Transactions: []ledger.Transaction{d1},
		HoldUpdates:  []ledger.Hold{voided},
		GrantUpdates: []ledger.Grant{{Workspace: ws, Account: "a", TransactionID: "g1", Amount: 40, Remaining: 0, ExpireTime: at(1000)}},
	})

	expired := voided
	expired.Status = ledger.HoldExpired
	for name, eff := range map[string]*ledger.Effects{
		"hold no longer active": {HoldUpdates: []ledger.Hold{expired}},
		"held moved from a version the account left": {Accounts: []ledger.AccountMove{{Account: ledger.Account{
			Workspace: ws, ID: "a", Balance: 160, Version: 4, UpdateTime: at(10), Held: 0,
		}, FromVersion: 4}}},
		"grant no longer open": {GrantUpdates: []ledger.Grant{{
			Workspace: ws, Account: "a", TransactionID: "g1", Amount: 40, Remaining: 0, ExpireTime: at(1000),
		}}},
	} {
		err := s.Write(ctx, ledger.WriteSet{Workspace: ws, Accounts: []string{"a"}, Holds: []string{"h1"}}, prepared(eff))
		if !errors.Is(err, ledger.ErrConflict) {
			t.Errorf("%s: %v, want a conflict", name, err)
		}
	}
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if a, err := tx.Account(ctx, ws, "a"); err != nil || a != released {
			t.Errorf("account a: %+v %v, want %+v", a, err, released)
		}
		if h, err := tx.Hold(ctx, ws, "h1"); err != nil || h.Status != ledger.HoldVoided {
			t.Errorf("h1: %+v %v", h, err)
		}
		return nil
	})
	verifyLedger(t, s)
}

// TestDatabaseRefusesBadHoldsAndGrants: the schema's rules of holds,
// grants and reversals, written around the store.
func TestDatabaseRefusesBadHoldsAndGrants(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	seedHolds(t, s, ws) // a at v4, balance 160, held 30 (h1, ACTIVE); g1 +40 open (expires at(1000))
	const (
		entry = `INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time,
			reverses_transaction_id, hold_id, expire_time) VALUES `
		move5 = `UPDATE accounts SET balance = %d, version = 5 WHERE id = 'a';`
		hold  = `INSERT INTO holds (workspace, id, account, amount, kind, status, expire_time, create_time) VALUES `
	)
	mv := func(balance int) string { return fmt.Sprintf(move5, balance) }
	for _, tc := range []struct {
		name, sql string
		code      string // SQLSTATE; "" means the database accepts it
	}{
		// Controls.
		// (In the order of a batch: moves, holds and grants, then entries.)
		{"capture", mv(150) + `UPDATE accounts SET held = 0 WHERE id = 'a';
			UPDATE holds SET status = 'CAPTURED', captured_amount = 10, transaction_id = 'c', update_time = now() WHERE id = 'h1';` +
			entry + `('ws', 'c', 'a', 'OUT', 'SERVICE_PURCHASE', 10, 150, 5, now(), NULL, 'h1', NULL)`, ""},
		{"void", `UPDATE holds SET status = 'VOIDED', update_time = now() WHERE id = 'h1'; UPDATE accounts SET held = 0 WHERE id = 'a'`, ""},
		{"new hold, held alone", hold + `('ws', 'h9', 'a', 5, 'ADJUSTMENT', 'ACTIVE', now(), now()); UPDATE accounts SET held = 35 WHERE id = 'a'`, ""},
		{"reversal", mv(180) + entry + `('ws', 'rv', 'a', 'IN', 'REVERSAL', 20, 180, 5, now(), 't2', NULL, NULL)`, ""},
		{"expiring credit", mv(165) + `INSERT INTO grants (workspace, transaction_id, account, amount, remaining, expire_time)
			SELECT 'ws', 'g2', 'a', 5, 5, now();` + entry + `('ws', 'g2', 'a', 'IN', 'PURCHASE', 5, 165, 5, now(), NULL, NULL, now())`, ""},
		{"expiry", `UPDATE grants SET remaining = 0, expiry_transaction_id = 'x' WHERE transaction_id = 'g1';` + mv(120) +
			entry + `('ws', 'x', 'a', 'OUT', 'EXPIRY', 40, 120, 5, now(), NULL, NULL, NULL)`, ""},
		{"debit drawing the grant", mv(130) + entry + `('ws', 'd', 'a', 'OUT', 'ADJUSTMENT', 30, 130, 5, now(), NULL, NULL, NULL);
			UPDATE grants SET remaining = 10 WHERE transaction_id = 'g1'`, ""},

		{"hold born captured", hold + `('ws', 'h9', 'a', 5, 'ADJUSTMENT', 'VOIDED', now(), now())`, "23514"},
		{"hold of a credit kind", hold + `('ws', 'h9', 'a', 5, 'PURCHASE', 'ACTIVE', now(), now())`, "23514"},
		{"hold without its held", hold + `('ws', 'h9', 'a', 5, 'ADJUSTMENT', 'ACTIVE', now(), now())`, "23514"},
		{"hold of no account", hold + `('ws', 'h9', 'zz', 5, 'ADJUSTMENT', 'ACTIVE', now(), now())`, "23514"},
		{"held without a hold", `UPDATE accounts SET held = 40 WHERE id = 'a'`, "23514"},
		{"held over the balance", `UPDATE accounts SET held = 161 WHERE id = 'a'`, "23514"},
		{"held released, hold still active", `UPDATE accounts SET held = 0 WHERE id = 'a'`, "23514"},
		{"balance changed in place", `UPDATE accounts SET balance = 150 WHERE id = 'a'`, "23514"},
		{"captured without its entry", `UPDATE holds SET status = 'CAPTURED', captured_amount = 10, transaction_id = 't1', update_time = now() WHERE id = 'h1';
			UPDATE accounts SET held = 0 WHERE id = 'a'`, "23514"},
		{"entry naming a hold it did not capture", mv(150) + entry + `('ws', 'c', 'a', 'OUT', 'SERVICE_PURCHASE', 10, 150, 5, now(), NULL, 'h1', NULL)`, "23514"},
		{"capture of another kind", mv(150) + `UPDATE accounts SET held = 0 WHERE id = 'a';
			UPDATE holds SET status = 'CAPTURED', captured_amount = 10, transaction_id = 'c', update_time = now() WHERE id = 'h1';` +
			entry + `('ws', 'c', 'a', 'OUT', 'ADJUSTMENT', 10, 150, 5, now(), NULL, 'h1', NULL)`, "23514"},
		{"hold ended twice", `UPDATE holds SET status = 'VOIDED', update_time = now() WHERE id = 'h1';
			UPDATE holds SET status = 'EXPIRED' WHERE id = 'h1'; UPDATE accounts SET held = 0 WHERE id = 'a'`, "23514"},
		{"hold amount changed", `UPDATE holds SET amount = 1, status = 'VOIDED', update_time = now() WHERE id = 'h1'; UPDATE accounts SET held = 0 WHERE id = 'a'`, "23514"},
		{"delete a hold", `DELETE FROM holds`, "23000"},
		{"truncate holds", `TRUNCATE holds CASCADE`, "23000"},
		{"capture key without its entry", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, hold_id, create_time) VALUES ('ws', 'k', 'capture_hold', '\x01', 'h1', now())`, "23514"},
		{"key naming a missing hold", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, hold_id, create_time) VALUES ('ws', 'k', 'void_hold', '\x01', 'nope', now())`, "23503"},
		{"key of an unknown operation", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, create_time) VALUES ('ws', 'k', 'nope', '\x01', 't2', now())`, "23514"},
		{"key of an unknown operation naming nothing", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, create_time) VALUES ('ws', 'k', 'nope', '\x01', now())`, "23514"},
		{"debit key naming a hold", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, hold_id, create_time) VALUES ('ws', 'k', 'debit', '\x01', 't2', 'h1', now())`, "23514"},

		{"expiring entry without its grant", mv(165) + entry + `('ws', 'g2', 'a', 'IN', 'PURCHASE', 5, 165, 5, now(), NULL, NULL, now())`, "23514"},
		{"grant without its entry", `INSERT INTO grants (workspace, transaction_id, account, amount, remaining, expire_time) VALUES ('ws', 't1', 'a', 100, 100, now())`, "23514"},
		{"grant over its entry", mv(165) + `INSERT INTO grants (workspace, transaction_id, account, amount, remaining, expire_time)
			VALUES ('ws', 'g2', 'a', 6, 6, '2030-01-01');` + entry + `('ws', 'g2', 'a', 'IN', 'PURCHASE', 5, 165, 5, now(), NULL, NULL, '2030-01-01')`, "23514"},
		{"grant raised", `UPDATE grants SET remaining = 10; UPDATE grants SET remaining = 20`, "23514"},
		{"grant refilled", `UPDATE grants SET remaining = 0; UPDATE grants SET remaining = 5`, "23514"},
		{"grant moved", `UPDATE grants SET expire_time = now()`, "23514"},
		{"expiry without its entry", `UPDATE grants SET remaining = 0, expiry_transaction_id = 't2'`, "23514"},
		{"expiry entry closing no grant", mv(120) + entry + `('ws', 'x', 'a', 'OUT', 'EXPIRY', 40, 120, 5, now(), NULL, NULL, NULL)`, "23514"},
		{"expiry of an IN", mv(200) + entry + `('ws', 'x', 'a', 'IN', 'EXPIRY', 40, 200, 5, now(), NULL, NULL, NULL)`, "23514"},
		{"open grants counted short", `UPDATE accounts SET granted = 0 WHERE id = 'a'`, "23514"},
		{"open grants over the balance", `UPDATE accounts SET granted = 161 WHERE id = 'a'`, "23514"},
		{"debit leaving the grant over the balance", mv(30) + entry + `('ws', 'd', 'a', 'OUT', 'ADJUSTMENT', 130, 30, 5, now(), NULL, NULL, NULL)`, "23514"},
		{"delete a grant", `DELETE FROM grants`, "23000"},

		{"reversal without its entry", mv(180) + entry + `('ws', 'rv', 'a', 'IN', 'REVERSAL', 20, 180, 5, now(), NULL, NULL, NULL)`, "23514"},
		{"reversal of the same type", mv(140) + entry + `('ws', 'rv', 'a', 'OUT', 'REVERSAL', 20, 140, 5, now(), 't2', NULL, NULL)`, "23514"},
		{"reversal over the amount", mv(191) + entry + `('ws', 'rv', 'a', 'IN', 'REVERSAL', 31, 191, 5, now(), 't2', NULL, NULL)`, "23514"},
		{"reversals over the amount together", `UPDATE accounts SET balance = 200, version = 6 WHERE id = 'a';` + entry +
			`('ws', 'rv', 'a', 'IN', 'REVERSAL', 20, 180, 5, now(), 't2', NULL, NULL), ('ws', 'rv2', 'a', 'IN', 'REVERSAL', 20, 200, 6, now(), 't2', NULL, NULL)`, "23514"},
		{"reversal of a missing entry", mv(180) + entry + `('ws', 'rv', 'a', 'IN', 'REVERSAL', 20, 180, 5, now(), 'nope', NULL, NULL)`, "23514"},
		{"reversal of a reversal", `UPDATE accounts SET balance = 175, version = 6 WHERE id = 'a';` + entry +
			`('ws', 'rv', 'a', 'IN', 'REVERSAL', 20, 180, 5, now(), 't2', NULL, NULL), ('ws', 'rv2', 'a', 'OUT', 'REVERSAL', 5, 175, 6, now(), 'rv', NULL, NULL)`, "23514"},
		{"non-reversal naming an entry", mv(180) + entry + `('ws', 'rv', 'a', 'IN', 'REFUND', 20, 180, 5, now(), 't2', NULL, NULL)`, "23514"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == "" {
				if err := rawCheck(s, tc.sql); err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			err := rawTx(s, tc.sql)
			if got := pgCode(err); got != tc.code {
				t.Fatalf("got %v (SQLSTATE %q), want SQLSTATE %s", err, got, tc.code)
			}
		})
	}
	verifyLedger(t, s)
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		want := ledger.Account{Workspace: ws, ID: "a", Balance: 160, Version: 4, UpdateTime: at(10), Held: 30}
		if a, err := tx.Account(ctx, ws, "a"); err != nil || a != want {
			t.Errorf("account a: %+v %v", a, err)
		}
		return nil
	})
}
