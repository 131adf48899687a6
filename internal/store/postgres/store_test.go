package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/migration"
)

// t0 is the tests' clock: UTC with microseconds, as the store keeps times.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// ws is the workspace most tests write to.
const ws = "ws"

func at(sec int64) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

// entry builds an entry of ws/acct, created at t0 + version seconds.
func entry(id, acct string, typ ledger.TxType, amount, after, version int64) ledger.Transaction {
	return ledger.Transaction{
		ID: id, Workspace: ws, Account: acct, Type: typ, Kind: ledger.KindAdjustment, Amount: amount,
		BalanceAfter: after, AccountVersion: version, IdempotencyKey: "k-" + id, CreateTime: at(version),
	}
}

// moveTo is an existing account's move from the version read to its new state.
func moveTo(acct string, balance, version, from int64) ledger.AccountMove {
	return ledger.AccountMove{
		Account:     ledger.Account{Workspace: ws, ID: acct, Balance: balance, Version: version, UpdateTime: at(version)},
		FromVersion: from,
	}
}

// create is a new account's state after the batch.
func create(acct string, balance, version int64) ledger.AccountMove {
	m := moveTo(acct, balance, version, 0)
	m.Create = true
	return m
}

// Keys of seed and of the tests around it, as the domain scopes them.
var (
	keyT1  = ledger.PostKey("a", "k-t1")
	keyT2  = ledger.PostKey("a", "k-t2")
	keyBad = ledger.PostKey("a", "k-bad")
	keyR1  = ledger.SubmitKey("a", "s-r1")
	keyR2  = ledger.SubmitKey("a", "s-r2")
	keyD1  = ledger.DecideKey("r1", "d-r1")
	keyD2  = ledger.DecideKey("r2", "d-r2")
)

// record is an idempotency record of ws created at t0.
func record(key string, op ledger.Operation, txID, reqID string) ledger.IdempotencyRecord {
	return ledger.IdempotencyRecord{
		Workspace: ws, Key: key, Operation: op, Fingerprint: []byte{1, 2, 3}, TransactionID: txID, RequestID: reqID, CreateTime: t0,
	}
}

// pending is a new PENDING request of ws submitted at t0 under key "s-"+id.
func pending(id, acct string, amount int64) ledger.CreditRequest {
	return ledger.CreditRequest{
		ID: id, Workspace: ws, Account: acct, Amount: amount, PaymentMethod: ledger.MethodBankTransfer,
		Status: ledger.StatusPending, IdempotencyKey: "s-" + id, CreateTime: t0,
	}
}

func decimal(tb testing.TB, s string) ledger.Decimal {
	tb.Helper()
	d, err := ledger.ParseDecimal(s)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// prepared is a decide function that returns eff whatever it is shown.
func prepared(eff *ledger.Effects) func(*ledger.Snapshot) (*ledger.Effects, error) {
	return func(*ledger.Snapshot) (*ledger.Effects, error) { return eff, nil }
}

func mustWrite(tb testing.TB, s *Store, set ledger.WriteSet, eff *ledger.Effects) {
	tb.Helper()
	if err := s.Write(context.Background(), set, prepared(eff)); err != nil {
		tb.Fatalf("Write: %v", err)
	}
}

func mustView(tb testing.TB, s *Store, fn func(ctx context.Context, tx ledger.ReadTx) error) {
	tb.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		tb.Fatalf("View: %v", err)
	}
}

// seed writes a small consistent ledger into ws, in two batches: account
// "a" at v3 (t1 +100, t2 -30, t3 +50 accepting r2), pending request r1
// (seq 1), accepted r2 (seq 2), an active USD rate 10 replacing 8, and
// package p1.
func seed(tb testing.TB, s *Store) {
	tb.Helper()
	t1, t2 := entry("t1", "a", ledger.TypeIn, 100, 100, 1), entry("t2", "a", ledger.TypeOut, 30, 70, 2)
	mustWrite(tb, s, ledger.WriteSet{
		Workspace: ws, Accounts: []string{"a"}, Keys: []string{keyT1, keyT2, keyR1, keyR2},
		Packages: []string{"p1"}, Currencies: []string{"USD"},
	}, &ledger.Effects{
		Accounts:     []ledger.AccountMove{create("a", 70, 2)},
		Transactions: []ledger.Transaction{t1, t2},
		NewRequests:  []ledger.CreditRequest{pending("r1", "a", 50), pending("r2", "a", 50)},
		Keys: []ledger.IdempotencyRecord{
			record(keyT1, ledger.OpCredit, "t1", ""), record(keyT2, ledger.OpDebit, "t2", ""),
			record(keyR1, ledger.OpSubmitRequest, "", "r1"), record(keyR2, ledger.OpSubmitRequest, "", "r2"),
		},
		NewPackages: []ledger.Package{starter},
		Rates: []ledger.ConversionRate{
			{Workspace: ws, Currency: "USD", Rate: decimal(tb, "8"), Active: true, CreateTime: t0},
			{Workspace: ws, Currency: "USD", Rate: decimal(tb, "10"), Active: true, CreateTime: t0},
		},
	})
	t3 := entry("t3", "a", ledger.TypeIn, 50, 120, 3)
	t3.Kind, t3.RequestID, t3.IdempotencyKey = ledger.KindRequestApproved, "r2", "d-r2"
	r2 := pending("r2", "a", 50)
	r2.Status, r2.DecidedBy, r2.DecideTime, r2.TransactionID = ledger.StatusAccepted, "admin", t0, "t3"
	mustWrite(tb, s, ledger.WriteSet{Workspace: ws, Requests: []string{"r2"}, Keys: []string{keyD2}}, &ledger.Effects{
		Accounts:     []ledger.AccountMove{moveTo("a", 120, 3, 2)},
		Transactions: []ledger.Transaction{t3},
		Decisions:    []ledger.CreditRequest{r2},
		Keys:         []ledger.IdempotencyRecord{record(keyD2, ledger.OpDecideRequest, "t3", "r2")},
	})
}

var starter = ledger.Package{
	Workspace: ws, ID: "p1", DisplayName: "Starter", Credits: 100,
	Price: ledger.Money{Currency: "USD", Units: 9, Nanos: 990_000_000}, Active: true, CreateTime: t0, UpdateTime: t0,
}

// seeded is account "a" as seed leaves it.
var seeded = ledger.Account{Workspace: ws, ID: "a", Balance: 120, Version: 3, UpdateTime: at(3)}

func verifyLedger(tb testing.TB, s ledger.Store) ledger.VerifyReport {
	tb.Helper()
	rep, err := ledger.Verify(context.Background(), s)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		tb.Fatalf("Verify: %v", rep.Problems)
	}
	return rep
}

// rawTx runs sql (several statements allowed) in one transaction and
// commits: deferred checks run at the commit.
func rawTx(s *Store, sql string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ownerURL(s))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql)
		return err
	})
}

// rawCheck runs sql in a transaction, fires the deferred checks, and rolls
// back: nil means the database would have committed it.
func rawCheck(s *Store, sql string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, ownerURL(s))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, sql); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `SET CONSTRAINTS ALL IMMEDIATE`)
	return err
}

// queryInt runs a query that returns one integer.
func queryInt(tb testing.TB, s *Store, sql string, args ...any) int64 {
	tb.Helper()
	var n int64
	conn, err := pgx.Connect(context.Background(), ownerURL(s))
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return n
}

// ---------------------------------------------------------------------------
// Migrations

func countMigrations(tb testing.TB, url string) int {
	tb.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// embedded returns the binary's migrations.
func embedded(tb testing.TB) []migration.File {
	tb.Helper()
	all, err := loadMigrations()
	if err != nil {
		tb.Fatal(err)
	}
	return all
}

// latest is the schema version the binary needs.
func latest(tb testing.TB) int64 {
	all := embedded(tb)
	return all[len(all)-1].Version
}

func TestMigrationsOnDisk(t *testing.T) {
	t.Parallel()
	all, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range all {
		names = append(names, fmt.Sprintf("%d %s", m.Version, m.Name))
	}
	if diff := cmp.Diff([]string{
		"1 0001_init.sql", "2 0002_batches.sql", "3 0003_scoped_keys_and_approvers.sql", "4 0004_row_level_security.sql",
		"5 0005_holds_reversals_expiry.sql", "6 0006_agency_controls.sql", "7 0007_events.sql",
		"8 0008_webhooks.sql", "9 0009_key_entry_check.sql",
		"10 0010_account_check_one_probe.sql", "11 0011_event_batches.sql",
	}, names); diff != "" {
		t.Fatalf("embedded migrations (-want +got):\n%s", diff)
	}
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, "")
	ctx := context.Background()
	for i := range 2 {
		if err := Migrate(ctx, url); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	if n, want := countMigrations(t, url), len(embedded(t)); n != want {
		t.Fatalf("%d migrations recorded, want %d", n, want)
	}
	s := openURL(t, url, Options{})
	seed(t, s)
	if err := Migrate(ctx, url); err != nil { // again, with data
		t.Fatalf("Migrate with data: %v", err)
	}
	if n, want := countMigrations(t, url), len(embedded(t)); n != want {
		t.Fatalf("%d migrations recorded, want %d", n, want)
	}
	verifyLedger(t, s)
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, "")
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = Migrate(context.Background(), url)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate #%d: %v", i, err)
		}
	}
	if got, want := countMigrations(t, url), len(embedded(t)); got != want {
		t.Fatalf("%d migrations recorded, want %d", got, want)
	}
	openURL(t, url, Options{})
}

func TestOpenRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, "")
	s, err := Open(context.Background(), url, Options{})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open succeeded on an empty database")
	}
	if want := fmt.Sprintf("schema version 0, need %d: run `ledgerd migrate`", latest(t)); !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: %v; want it to say %q", err, want)
	}
}

func TestMigrateAndOpenRefuseANewerSchema(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, template)
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(context.Background(), `INSERT INTO schema_migrations (version, name, applied_time) VALUES (9999, '9999_future.sql', now())`)
	_ = conn.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(context.Background(), url); err == nil || !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("Migrate: %v", err)
	}
	if s, err := Open(context.Background(), url, Options{}); err == nil || !strings.Contains(err.Error(), "newer version") {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open: %v", err)
	}
}

// migrateToV1 migrates the empty database at url to version 1 only, as a
// release before the batched write path left it.
func migrateToV1(tb testing.TB, url string) {
	tb.Helper()
	migrateTo(tb, url, 1)
}

// migrateTo migrates the empty database at url to version v only, as the
// release that had v as its latest left it.
func migrateTo(tb testing.TB, url string, v int) {
	tb.Helper()
	ctx := context.Background()
	all, err := loadMigrations()
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, qCreateMigrations); err != nil {
		tb.Fatal(err)
	}
	for _, m := range all[:v] {
		if err := applyMigration(ctx, conn, m); err != nil {
			tb.Fatal(err)
		}
	}
}

// v1Data is a version-1 ledger with credit requests in two workspaces,
// inserted out of ID order, pending and decided; w3 has an account and no
// request. Written with version 1's rules: accounts born empty and moved one
// version at a time, each with its entry.
const v1Data = `
INSERT INTO settings (workspace, credit_payments_enabled, update_time) VALUES ('w1', true, now()), ('w3', true, now());
INSERT INTO accounts (workspace, id, balance, version) VALUES ('w1', 'acct', 0, 0), ('w2', 'acct', 0, 0), ('w3', 'acct', 0, 0);
INSERT INTO credit_requests (workspace, id, account, amount, payment_method, status, idempotency_key, create_time) VALUES
	('w1', 'r-c', 'acct', 30, 'CRYPTO', 'PENDING', 's-c', '2026-01-01T00:00:00Z'),
	('w1', 'r-a', 'acct', 10, 'BANK_TRANSFER', 'PENDING', 's-a', '2026-01-01T00:00:01Z'),
	('w1', 'r-b', 'acct', 20, 'BANK_TRANSFER', 'PENDING', 's-b', '2026-01-01T00:00:02Z'),
	('w2', 'q2', 'acct', 5, 'CRYPTO', 'PENDING', 's-q2', '2026-01-01T00:00:00Z'),
	('w2', 'q1', 'acct', 7, 'CRYPTO', 'PENDING', 's-q1', '2026-01-01T00:00:01Z');
UPDATE accounts SET balance = 20, version = 1 WHERE workspace = 'w1' AND id = 'acct';
INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, request_id, idempotency_key, create_time)
	VALUES ('w1', 't-b', 'acct', 'IN', 'REQUEST_APPROVED', 20, 20, 1, 'r-b', 'd-b', now());
UPDATE credit_requests SET status = 'ACCEPTED', decided_by = 'admin', decide_time = now(), transaction_id = 't-b'
	WHERE workspace = 'w1' AND id = 'r-b';
UPDATE credit_requests SET status = 'REJECTED', decided_by = 'admin', decision_reason = 'no transfer', decide_time = now()
	WHERE workspace = 'w1' AND id = 'r-c';
UPDATE accounts SET balance = 7, version = 1 WHERE workspace = 'w3' AND id = 'acct';
INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time)
	VALUES ('w3', 't-3', 'acct', 'IN', 'PURCHASE', 7, 7, 1, now());
INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, request_id, create_time) VALUES
	('w1', 's-a', 'submit_request', '\x01', NULL, 'r-a', now()),
	('w1', 'd-b', 'decide_request', '\x02', 't-b', 'r-b', now()),
	('w1', 'd-c', 'decide_request', '\x03', NULL, 'r-c', now()),
	('w3', 'k-3', 'credit', '\x04', 't-3', NULL, now());
`

func TestMigrationNumbersExistingRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := server.NewDatabase(t, "")
	migrateToV1(t, url)
	if s, err := Open(ctx, url, Options{}); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("schema version 1, need %d", latest(t))) {
		if s != nil {
			_ = s.Close()
		}
		t.Fatalf("Open on a version-1 database: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, v1Data)
		return err
	})
	_ = conn.Close(ctx)
	if err != nil {
		t.Fatalf("version-1 data: %v", err)
	}

	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s := openURL(t, url, Options{})

	type numbered struct {
		Workspace, ID string
		Seq           int64
	}
	rows, err := ownerPool(t, s).Query(ctx, `SELECT workspace, id, seq FROM credit_requests ORDER BY workspace, seq`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[numbered])
	if err != nil {
		t.Fatal(err)
	}
	want := []numbered{{"w1", "r-a", 1}, {"w1", "r-b", 2}, {"w1", "r-c", 3}, {"w2", "q1", 1}, {"w2", "q2", 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request seqs (-want +got):\n%s", diff)
	}
	// Version 3 scoped every key to its account or request, so that a
	// retry after the upgrade still finds its record.
	rows, err = ownerPool(t, s).Query(ctx, `SELECT workspace || '/' || key FROM idempotency_keys ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{
		"w1/" + ledger.DecideKey("r-b", "d-b"), "w1/" + ledger.DecideKey("r-c", "d-c"),
		"w1/" + ledger.SubmitKey("acct", "s-a"), "w3/" + ledger.PostKey("acct", "k-3"),
	}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("keys after the migration (-want +got):\n%s", diff)
	}
	type counter struct {
		Workspace, Name string
		Value           int64
	}
	rows, err = ownerPool(t, s).Query(ctx, `SELECT workspace, name, value FROM workspace_sequences ORDER BY workspace`)
	if err != nil {
		t.Fatal(err)
	}
	counters, err := pgx.CollectRows(rows, pgx.RowToStructByPos[counter])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]counter{{"w1", "requests", 3}, {"w2", "requests", 2}}, counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}

	// The decisions survived the renumbering.
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		for id, want := range map[string]ledger.RequestStatus{"r-a": ledger.StatusPending, "r-b": ledger.StatusAccepted, "r-c": ledger.StatusRejected} {
			r, err := tx.Request(ctx, "w1", id)
			if err != nil {
				return err
			}
			if r.Status != want || (want != ledger.StatusPending) == r.DecideTime.IsZero() {
				t.Errorf("%s: %+v, want %v", id, r, want)
			}
		}
		return nil
	})

	// The service continues each workspace's sequence, and starts one
	// where there was none; old pending requests can still be decided.
	svc := ledger.NewService(s)
	for _, tc := range []struct {
		ws      string
		wantSeq int64
	}{{"w1", 4}, {"w3", 1}, {"w1", 5}} {
		res, err := svc.SubmitRequest(ctx, ledger.SubmitInput{
			Workspace: tc.ws, Account: "acct", Amount: 3, PaymentMethod: ledger.MethodCrypto,
			IdempotencyKey: fmt.Sprintf("new-%s-%d", tc.ws, tc.wantSeq),
		})
		if err != nil {
			t.Fatalf("SubmitRequest(%s): %v", tc.ws, err)
		}
		// The result does not carry the seq: the store assigns it at commit.
		got, err := svc.GetRequest(ctx, tc.ws, res.Request.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != tc.wantSeq {
			t.Errorf("SubmitRequest(%s): seq %d, want %d", tc.ws, got.Seq, tc.wantSeq)
		}
	}
	dec, err := svc.DecideRequest(ctx, ledger.DecideInput{
		Workspace: "w1", RequestID: "r-a", Decision: ledger.DecisionAccept, DecidedBy: "admin", IdempotencyKey: "d-a",
	})
	if err != nil {
		t.Fatalf("DecideRequest(r-a): %v", err)
	}
	if dec.Request.Seq != 1 || dec.Transaction == nil || dec.Transaction.AccountVersion != 2 || dec.Transaction.BalanceAfter != 30 {
		t.Errorf("DecideRequest(r-a): %+v", dec)
	}
	rep := verifyLedger(t, s)
	if rep.Requests != 8 {
		t.Errorf("Verify saw %d requests, want 8", rep.Requests)
	}
}

// ---------------------------------------------------------------------------
// The database refuses bad writes by itself

func TestDatabaseRefusesBadWrites(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s) // a at v3, balance 120
	const cols = `INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time) VALUES `
	for _, tc := range []struct {
		name, sql string
		code      string // SQLSTATE; "" means the database accepts it
	}{
		// Controls: what the batched write path does is accepted.
		{
			"account moves several versions with its entries",
			`UPDATE accounts SET balance = 135, version = 5 WHERE id = 'a';` +
				cols + `('ws', 'ok4', 'a', 'IN', 'ADJUSTMENT', 10, 130, 4, now()), ('ws', 'ok5', 'a', 'IN', 'ADJUSTMENT', 5, 135, 5, now())`, "",
		},
		{
			"account created at its state after its entries",
			`INSERT INTO accounts (workspace, id, balance, version) VALUES ('ws', 'new', 15, 2);` +
				cols + `('ws', 'n1', 'new', 'IN', 'ADJUSTMENT', 10, 10, 1, now()), ('ws', 'n2', 'new', 'IN', 'ADJUSTMENT', 5, 15, 2, now())`, "",
		},
		{"counter of a new workspace", `INSERT INTO workspace_sequences (workspace, name, value) VALUES ('ws3', 'requests', 0)`, ""},

		{"update a transaction", `UPDATE transactions SET amount = 1 WHERE id = 't1'`, "23000"},
		{"delete a transaction", `DELETE FROM transactions WHERE id = 't2'`, "23000"},
		{"truncate transactions", `TRUNCATE transactions CASCADE`, "23000"},
		{"negative balance", `UPDATE accounts SET balance = -1, version = version + 1 WHERE id = 'a'`, "23514"},
		{"account born with credits at version 0", `INSERT INTO accounts (workspace, id, balance, version) VALUES ('ws', 'new', 5, 0)`, "23514"},
		{"account inserted at version 1 without its entry", `INSERT INTO accounts (workspace, id, balance, version) VALUES ('ws', 'new', 5, 1)`, "23514"},
		{"account moves backwards", `UPDATE accounts SET balance = 70, version = 2 WHERE id = 'a'`, "23514"},
		{"account touched without moving", `UPDATE accounts SET update_time = now() WHERE id = 'a'`, "23514"},
		{"account moves two versions without entries", `UPDATE accounts SET version = version + 2 WHERE id = 'a'`, "23514"},
		{"account moves without an entry", `UPDATE accounts SET balance = balance + 5, version = version + 1 WHERE id = 'a'`, "23514"},
		{
			"account and its entry disagree",
			`UPDATE accounts SET balance = 125, version = 4 WHERE id = 'a';` + cols + `('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 10, 130, 4, now())`, "23514",
		},
		{"delete an account", `DELETE FROM accounts WHERE id = 'a'`, "23000"},
		{
			"entry breaks the chain",
			`UPDATE accounts SET balance = 999, version = 4 WHERE id = 'a';` + cols + `('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 999, 4, now())`, "23514",
		},
		{
			"multi-entry insert breaks the chain in the middle",
			`UPDATE accounts SET balance = 1000, version = 6 WHERE id = 'a';` + cols +
				`('ws', 'b4', 'a', 'IN', 'ADJUSTMENT', 10, 130, 4, now()),
				 ('ws', 'b5', 'a', 'IN', 'ADJUSTMENT', 10, 999, 5, now()),
				 ('ws', 'b6', 'a', 'IN', 'ADJUSTMENT', 1, 1000, 6, now())`, "23514",
		},
		{
			"entry skips a version",
			`UPDATE accounts SET balance = 121, version = 5 WHERE id = 'a';` + cols + `('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 121, 5, now())`, "23514",
		},
		{"entry ahead of its account", cols + `('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 121, 4, now())`, "23514"},
		{
			"first entry of an account with a balance before it",
			`INSERT INTO accounts (workspace, id, balance, version) VALUES ('ws', 'new', 20, 1);` + cols + `('ws', 'bad', 'new', 'IN', 'ADJUSTMENT', 10, 20, 1, now())`, "23514",
		},
		{"entry of a missing account", cols + `('ws', 'bad', 'ghost', 'IN', 'ADJUSTMENT', 1, 1, 1, now())`, "23514"},
		{"zero amount", cols + `('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 0, 120, 4, now())`, "23514"},
		{"unknown kind", cols + `('ws', 'bad', 'a', 'IN', 'GIFT', 1, 121, 4, now())`, "23514"},
		{
			"metadata not a string map",
			`UPDATE accounts SET balance = 121, version = 4 WHERE id = 'a';
			 INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, metadata, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 121, 4, '{"n": 1}', now())`, "23514",
		},
		{"second active rate", `INSERT INTO conversion_rates (workspace, currency, rate, active, create_time) VALUES ('ws', 'USD', '12', true, now())`, "23505"},
		{"rate rewritten", `UPDATE conversion_rates SET rate = '11' WHERE active`, "23514"},
		{"rate reactivated", `UPDATE conversion_rates SET active = true WHERE NOT active`, "23514"},
		{"non-canonical rate", `INSERT INTO conversion_rates (workspace, currency, rate, active, create_time) VALUES ('ws', 'EUR', '9.50', true, now())`, "23514"},
		{"decide a decided request", `UPDATE credit_requests SET status = 'REJECTED', transaction_id = NULL WHERE id = 'r2'`, "23514"},
		{"request back to pending", `UPDATE credit_requests SET status = 'PENDING', transaction_id = NULL, decide_time = NULL WHERE id = 'r2'`, "23514"},
		{"accept without a transaction", `UPDATE credit_requests SET status = 'ACCEPTED', decide_time = now() WHERE id = 'r1'`, "23514"},
		{"accept with another request's entry", `UPDATE credit_requests SET status = 'ACCEPTED', decide_time = now(), transaction_id = 't3' WHERE id = 'r1'`, "23514"},
		{"change a pending request's amount", `UPDATE credit_requests SET amount = 1, status = 'REJECTED', decide_time = now() WHERE id = 'r1'`, "23514"},
		{"renumber a request while deciding it", `UPDATE credit_requests SET seq = 7, status = 'REJECTED', decide_time = now() WHERE id = 'r1'`, "23514"},
		{"request born decided", `INSERT INTO credit_requests (workspace, id, account, amount, payment_method, status, decide_time, create_time, seq)
			 VALUES ('ws', 'r9', 'a', 5, 'CRYPTO', 'REJECTED', now(), now(), 9)`, "23514"},
		{"request without a seq", `INSERT INTO credit_requests (workspace, id, account, amount, payment_method, status, create_time)
			 VALUES ('ws', 'r9', 'a', 5, 'CRYPTO', 'PENDING', now())`, "23502"},
		{"request seq taken", `INSERT INTO credit_requests (workspace, id, account, amount, payment_method, status, create_time, seq)
			 VALUES ('ws', 'r9', 'a', 5, 'CRYPTO', 'PENDING', now(), 1)`, "23505"},
		{"request seq below 1", `INSERT INTO credit_requests (workspace, id, account, amount, payment_method, status, create_time, seq)
			 VALUES ('ws', 'r9', 'a', 5, 'CRYPTO', 'PENDING', now(), 0)`, "23514"},
		{"delete a request", `DELETE FROM credit_requests WHERE id = 'r1'`, "23000"},
		{"negative counter", `INSERT INTO workspace_sequences (workspace, name, value) VALUES ('ws3', 'requests', -1)`, "23514"},
		{"unknown counter", `INSERT INTO workspace_sequences (workspace, name, value) VALUES ('ws3', 'events', 1)`, "23514"},
		{"a batch's expectation not met", `SELECT ledger_expect(2, 1, 'accounts')`, "40001"},
		{"rewrite an idempotency record", `UPDATE idempotency_keys SET fingerprint = '\x00'`, "23000"},
		{"delete an idempotency record", `DELETE FROM idempotency_keys`, "23000"},
		{"key without its outcome", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, create_time) VALUES ('ws', 'k', 'credit', '\x01', now())`, "23514"},
		{"key naming a missing transaction", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, create_time) VALUES ('ws', 'k', 'credit', '\x01', 'nope', now())`, "23503"},
		{"delete a package", `DELETE FROM packages WHERE id = 'p1'`, "23000"},
		// Agency controls (migration 0006).
		{"cancel a pending request", `UPDATE credit_requests SET status = 'CANCELLED', decide_time = now(), decided_by = 'client' WHERE id = 'r1'`, ""},
		{"cancel a decided request", `UPDATE credit_requests SET status = 'CANCELLED', transaction_id = NULL WHERE id = 'r2'`, "23514"},
		{"cancel without a decision time", `UPDATE credit_requests SET status = 'CANCELLED' WHERE id = 'r1'`, "23514"},
		{"cancel with a transaction", `UPDATE credit_requests SET status = 'CANCELLED', decide_time = now(), transaction_id = 't1' WHERE id = 'r1'`, "23514"},
		{"unknown request status", `UPDATE credit_requests SET status = 'WITHDRAWN', decide_time = now() WHERE id = 'r1'`, "23514"},
		{"cancellation key without its request", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, create_time) VALUES ('ws', 'k', 'cancel_request', '\x01', now())`, "23514"},
		{"cancellation key naming an entry", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, request_id, create_time) VALUES ('ws', 'k', 'cancel_request', '\x01', 't1', 'r1', now())`, "23514"},
		{"offer payment methods", `INSERT INTO settings (workspace, credit_payments_enabled, payment_methods, low_balance_threshold) VALUES ('ws', true, '{CRYPTO,STRIPE}', 10)`, ""},
		{"offer no payment method", `INSERT INTO settings (workspace, credit_payments_enabled, payment_methods) VALUES ('ws', true, '{}')`, ""},
		{"offer an unknown payment method", `INSERT INTO settings (workspace, credit_payments_enabled, payment_methods) VALUES ('ws', true, '{CRYPTO,CASH}')`, "23514"},
		{"offer a NULL payment method", `INSERT INTO settings (workspace, credit_payments_enabled, payment_methods) VALUES ('ws', true, '{CRYPTO,NULL}')`, "23514"},
		{"negative low-balance threshold", `INSERT INTO settings (workspace, credit_payments_enabled, low_balance_threshold) VALUES ('ws', true, -1)`, "23514"},
		{"low-balance threshold above the largest balance", `INSERT INTO settings (workspace, credit_payments_enabled, low_balance_threshold) VALUES ('ws', true, 1000000000000001)`, "23514"},
		{"package price nanos", `UPDATE packages SET price_nanos = 1000000000`, "23514"},
		{"package without credits", `UPDATE packages SET credits = 0`, "23514"},
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
	verifyLedger(t, s) // nothing changed
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if a, err := tx.Account(ctx, ws, "a"); err != nil || a != seeded {
			t.Errorf("account a: %+v %v", a, err)
		}
		return nil
	})
}

// ---------------------------------------------------------------------------
// Write

// assertSeedOnly checks that nothing but seed's batches was committed.
func assertSeedOnly(tb testing.TB, s *Store) {
	tb.Helper()
	mustView(tb, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if a, err := tx.Account(ctx, ws, "a"); err != nil || a != seeded {
			tb.Errorf("account a: %+v %v", a, err)
		}
		if n, err := tx.Account(ctx, ws, "n"); err != nil || n != (ledger.Account{Workspace: ws, ID: "n"}) {
			tb.Errorf("account n: %+v %v", n, err)
		}
		st, err := tx.Settings(ctx, ws)
		if err != nil || !cmp.Equal(st, ledger.Settings{Workspace: ws}) {
			tb.Errorf("settings: %+v %v", st, err)
		}
		if _, found, err := tx.Idempotency(ctx, ws, "k-bad"); err != nil || found {
			tb.Errorf("key k-bad: found=%v %v", found, err)
		}
		if _, err := tx.Request(ctx, ws, "r-bad"); !errors.Is(err, ledger.ErrNotFound) {
			tb.Errorf("request r-bad: %v", err)
		}
		return nil
	})
	for sql, want := range map[string]int64{
		`SELECT count(*) FROM transactions`:                                  3,
		`SELECT count(*) FROM settings`:                                      0,
		`SELECT count(*) FROM idempotency_keys`:                              5,
		`SELECT count(*) FROM credit_requests WHERE status = 'PENDING'`:      1,
		`SELECT value FROM workspace_sequences WHERE workspace = 'ws'`:       2,
		`SELECT count(*) FROM conversion_rates`:                              2,
		`SELECT count(*) FROM packages`:                                      1,
		`SELECT count(*) FROM accounts`:                                      1,
		`SELECT count(*) FROM credit_requests WHERE decided_by <> ''`:        1,
		`SELECT count(*) FROM packages WHERE display_name <> 'Starter'`:      0,
		`SELECT count(*) FROM conversion_rates WHERE active AND rate = '10'`: 1,
	} {
		if got := queryInt(tb, s, sql); got != want {
			tb.Errorf("%s = %d, want %d", sql, got, want)
		}
	}
}

// badBatch is what every case of TestWriteIsAllOrNothing writes besides its
// accounts and entries: a request, a key, settings, a package, a rate.
func badBatch(tb testing.TB, moves []ledger.AccountMove, entries []ledger.Transaction) (ledger.WriteSet, *ledger.Effects) {
	r := pending("r-bad", "a", 5)
	r.IdempotencyKey = "k-bad"
	set := ledger.WriteSet{
		Workspace: ws, LockSettings: true, Accounts: []string{"a", "n"}, Keys: []string{keyBad},
		Packages: []string{"p2"}, Currencies: []string{"USD"},
	}
	return set, &ledger.Effects{
		Accounts:     moves,
		Transactions: entries,
		NewRequests:  []ledger.CreditRequest{r},
		Keys:         []ledger.IdempotencyRecord{record(keyBad, ledger.OpCredit, "t1", "")},
		Settings:     &ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: t0},
		NewPackages:  []ledger.Package{{Workspace: ws, ID: "p2", DisplayName: "Bad", Credits: 1, Price: ledger.Money{Currency: "USD"}, Active: true, CreateTime: t0}},
		Rates:        []ledger.ConversionRate{{Workspace: ws, Currency: "USD", Rate: decimal(tb, "11"), Active: true, CreateTime: t0}},
	}
}

// TestWriteIsAllOrNothing: effects that break the ledger's rules fail the
// whole batch, at the statement or at COMMIT, and leave nothing behind.
func TestWriteIsAllOrNothing(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s) // a at v3, balance 120
	in, out := ledger.TypeIn, ledger.TypeOut
	type moves = []ledger.AccountMove
	type entries = []ledger.Transaction
	noType := entry("x4", "a", ledger.TypeUnspecified, 10, 130, 4)
	for _, tc := range []struct {
		name     string
		moves    moves
		entries  entries
		conflict bool   // ErrConflict rather than internal
		state    string // SQLSTATE of the cause; "" when the store refuses before sending
		msg      string // in the cause
	}{
		{"wrong balance after a credit", moves{moveTo("a", 131, 4, 3)}, entries{entry("x4", "a", in, 10, 131, 4)}, false, "23514", "balance chain"},
		{"wrong balance after a debit", moves{moveTo("a", 111, 4, 3)}, entries{entry("x4", "a", out, 10, 111, 4)}, false, "23514", "balance chain"},
		{"version gap", moves{moveTo("a", 130, 5, 3)}, entries{entry("x5", "a", in, 10, 130, 5)}, false, "23514", "balance chain"},
		{"chain broken in the middle of a batch", moves{moveTo("a", 1000, 6, 3)}, entries{
			entry("x4", "a", in, 10, 130, 4), entry("x5", "a", in, 10, 999, 5), entry("x6", "a", in, 1, 1000, 6),
		}, false, "23514", "balance chain"},
		{"debit below zero", moves{moveTo("a", -10, 4, 3)}, entries{entry("x4", "a", out, 130, -10, 4)}, false, "23514", "accounts_balance_check"},
		{"entry without its account move", nil, entries{entry("x4", "a", in, 10, 130, 4)}, false, "23514", "entry v4 of ws/a"},
		{"account moved without its entry (at COMMIT)", moves{moveTo("a", 130, 4, 3)}, nil, false, "23514", "without its entry"},
		{"account and entry disagree (at COMMIT)", moves{moveTo("a", 125, 4, 3)}, entries{entry("x4", "a", in, 10, 130, 4)}, false, "23514", "without its entry"},
		{"new account's first entry starts from a balance", moves{create("n", 20, 1)}, entries{entry("x1", "n", in, 10, 20, 1)}, false, "23514", "balance chain"},
		{"new account not at version 1", moves{create("n", 10, 2)}, entries{entry("x2", "n", in, 10, 10, 2)}, false, "23514", "balance chain"},
		{"new account at version 1 without its entry (at COMMIT)", moves{create("n", 10, 1)}, nil, false, "23514", "without its entry"},
		{"new account at version 0 with a balance", moves{create("n", 5, 0)}, nil, false, "23514", "version 0 has balance 0"},
		{"entry of a missing account", nil, entries{entry("x1", "ghost", in, 1, 1, 1)}, false, "23514", ""},
		{"unspecified entry type", moves{moveTo("a", 130, 4, 3)}, entries{noType}, false, "", "unspecified type"},
		{"reused transaction id", moves{moveTo("a", 130, 4, 3)}, entries{entry("t1", "a", in, 10, 130, 4)}, true, "23505", "transactions_pkey"},
		{"entry at a taken version", nil, entries{entry("x3", "a", in, 10, 130, 3)}, true, "23505", "account_version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set, eff := badBatch(t, tc.moves, tc.entries)
			err := s.Write(context.Background(), set, prepared(eff))
			switch e := ledger.ErrorOf(err); {
			case err == nil:
				t.Fatal("Write succeeded")
			case tc.conflict && !errors.Is(err, ledger.ErrConflict):
				t.Errorf("got %v, want ErrConflict", err)
			case !tc.conflict && e.Code != ledger.CodeInternal:
				t.Errorf("got %v (%v), want internal", err, e.Code)
			}
			if got := pgCode(err); got != tc.state {
				t.Errorf("SQLSTATE %q, want %q: %v", got, tc.state, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%v; want the cause to mention %q", err, tc.msg)
			}
			assertSeedOnly(t, s)
		})
	}

	// The same batch, consistent, commits; the failed batches did not use
	// up request numbers.
	set, eff := badBatch(t, []ledger.AccountMove{moveTo("a", 135, 5, 3), create("n", 10, 1)}, []ledger.Transaction{
		entry("x4", "a", in, 10, 130, 4), entry("x5", "a", in, 5, 135, 5), entry("y1", "n", in, 10, 10, 1),
	})
	mustWrite(t, s, set, eff)
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		r, err := tx.Request(ctx, ws, "r-bad")
		if err != nil || r.Seq != 3 {
			t.Errorf("request r-bad: %+v %v, want seq 3", r, err)
		}
		a, err := tx.Account(ctx, ws, "a")
		if err != nil || a.Version != 5 || a.Balance != 135 {
			t.Errorf("account a: %+v %v", a, err)
		}
		return nil
	})
	verifyLedger(t, s)
}

// TestWriteOnChangedStateIsAConflict: a batch whose conditional writes find
// the state changed since it was read (an account at another version, one
// already created, a request already decided) is a conflict, decided again
// by the service, and nothing of it is committed.
func TestWriteOnChangedStateIsAConflict(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s) // a at v3, r2 accepted, r1 pending
	rejected := func(id string) ledger.CreditRequest {
		r := pending(id, "a", 50)
		r.Status, r.DecisionReason, r.DecidedBy, r.DecideTime = ledger.StatusRejected, "no transfer", "admin", at(9)
		return r
	}
	for _, tc := range []struct {
		name string
		eff  ledger.Effects
	}{
		{"stale from_version", ledger.Effects{
			Accounts: []ledger.AccountMove{moveTo("a", 130, 4, 2)}, Transactions: []ledger.Transaction{entry("x4", "a", ledger.TypeIn, 10, 130, 4)},
		}},
		{"from_version ahead", ledger.Effects{
			Accounts: []ledger.AccountMove{moveTo("a", 130, 5, 4)}, Transactions: []ledger.Transaction{entry("x5", "a", ledger.TypeIn, 10, 130, 5)},
		}},
		{"moving an account that does not exist", ledger.Effects{
			Accounts: []ledger.AccountMove{moveTo("n", 10, 1, 0)}, Transactions: []ledger.Transaction{entry("y1", "n", ledger.TypeIn, 10, 10, 1)},
		}},
		{"creating an account that exists", ledger.Effects{
			Accounts: []ledger.AccountMove{create("a", 130, 4)}, Transactions: []ledger.Transaction{entry("x4", "a", ledger.TypeIn, 10, 130, 4)},
		}},
		{"deciding a decided request", ledger.Effects{Decisions: []ledger.CreditRequest{rejected("r2")}}},
		{"deciding an unknown request", ledger.Effects{Decisions: []ledger.CreditRequest{rejected("nope")}}},
		{"deciding one request twice", ledger.Effects{Decisions: []ledger.CreditRequest{rejected("r1"), rejected("r1")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eff := tc.eff
			eff.Keys = []ledger.IdempotencyRecord{record(keyBad, ledger.OpCredit, "t1", "")}
			eff.Settings = &ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: t0}
			err := s.Write(context.Background(), ledger.WriteSet{
				Workspace: ws, Accounts: []string{"a", "n"}, Requests: []string{"r1", "r2"}, Keys: []string{keyBad},
			}, prepared(&eff))
			if !errors.Is(err, ledger.ErrConflict) {
				t.Fatalf("got %v, want ErrConflict", err)
			}
			assertSeedOnly(t, s)
		})
	}
	// Deciding the pending request from the state read commits.
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, Requests: []string{"r1"}, Keys: []string{keyD1}}, &ledger.Effects{
		Decisions: []ledger.CreditRequest{rejected("r1")},
		Keys:      []ledger.IdempotencyRecord{record(keyD1, ledger.OpDecideRequest, "", "r1")},
	})
	verifyLedger(t, s)
}

// barrier lets n goroutines wait until all of them arrived.
type barrier struct {
	mu   sync.Mutex
	n    int
	done chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, done: make(chan struct{})} }

// wait returns once every party arrived, or an error after a while (so that
// a party that never comes fails the test instead of hanging it).
func (b *barrier) wait() error {
	b.mu.Lock()
	b.n--
	if b.n == 0 {
		close(b.done)
	}
	b.mu.Unlock()
	select {
	case <-b.done:
		return nil
	case <-time.After(20 * time.Second):
		return errors.New("barrier: the other party never came")
	}
}

// race runs two Writes, one per store, that both decide on what they read
// before either writes, and returns their errors.
func race(s1, s2 *Store, set1, set2 ledger.WriteSet, eff1, eff2 *ledger.Effects) (err1, err2 error) {
	b := newBarrier(2)
	decide := func(eff *ledger.Effects) func(*ledger.Snapshot) (*ledger.Effects, error) {
		return func(*ledger.Snapshot) (*ledger.Effects, error) {
			if err := b.wait(); err != nil {
				return nil, err
			}
			return eff, nil
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { err1 = s1.Write(context.Background(), set1, decide(eff1)) })
	wg.Go(func() { err2 = s2.Write(context.Background(), set2, decide(eff2)) })
	wg.Wait()
	return err1, err2
}

// credit is a batch crediting a new account with one entry under key.
func credit(acct, txID, key string, amount int64) (ledger.WriteSet, *ledger.Effects) {
	t := entry(txID, acct, ledger.TypeIn, amount, amount, 1)
	t.IdempotencyKey = key
	return ledger.WriteSet{Workspace: ws, Accounts: []string{acct}, Keys: []string{key}}, &ledger.Effects{
		Accounts:     []ledger.AccountMove{create(acct, amount, 1)},
		Transactions: []ledger.Transaction{t},
		Keys:         []ledger.IdempotencyRecord{record(key, ledger.OpCredit, txID, "")},
	}
}

// TestWritesRacing: two replicas decide on the same state and write what
// only one of them may: exactly one commits, the other gets ErrConflict
// (and is decided again by its service).
func TestWritesRacing(t *testing.T) {
	t.Parallel()
	withPackage := func(set ledger.WriteSet, eff *ledger.Effects, name string) (ledger.WriteSet, *ledger.Effects) {
		set.Packages = []string{"p9"}
		eff.NewPackages = []ledger.Package{{Workspace: ws, ID: "p9", DisplayName: name, Credits: 5, Price: ledger.Money{Currency: "EUR", Units: 1}, Active: true, CreateTime: t0}}
		return set, eff
	}
	for _, tc := range []struct {
		name   string
		batch1 func() (ledger.WriteSet, *ledger.Effects)
		batch2 func() (ledger.WriteSet, *ledger.Effects)
	}{
		{
			name:   "same new account",
			batch1: func() (ledger.WriteSet, *ledger.Effects) { return credit("n", "tx-1", "key-1", 10) },
			batch2: func() (ledger.WriteSet, *ledger.Effects) { return credit("n", "tx-2", "key-2", 20) },
		},
		{
			name:   "same idempotency key",
			batch1: func() (ledger.WriteSet, *ledger.Effects) { return credit("n1", "tx-1", "key", 10) },
			batch2: func() (ledger.WriteSet, *ledger.Effects) { return credit("n2", "tx-2", "key", 20) },
		},
		{
			name: "same new package",
			batch1: func() (ledger.WriteSet, *ledger.Effects) {
				set, eff := credit("n1", "tx-1", "key-1", 10)
				return withPackage(set, eff, "First")
			},
			batch2: func() (ledger.WriteSet, *ledger.Effects) {
				set, eff := credit("n2", "tx-2", "key-2", 20)
				return withPackage(set, eff, "Second")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := server.NewDatabase(t, template)
			s1, s2 := openURL(t, url, Options{}), openURL(t, url, Options{})
			set1, eff1 := tc.batch1()
			set2, eff2 := tc.batch2()
			err1, err2 := race(s1, s2, set1, set2, eff1, eff2)
			winner := eff1
			switch {
			case err1 == nil && errors.Is(err2, ledger.ErrConflict):
			case err2 == nil && errors.Is(err1, ledger.ErrConflict):
				winner = eff2
			default:
				t.Fatalf("want one commit and one ErrConflict; got %v and %v", err1, err2)
			}
			rep := verifyLedger(t, s1)
			if rep.Transactions != 1 || rep.Keys != 1 {
				t.Errorf("Verify: %+v, want the winner's entry and key only", rep)
			}
			mustView(t, s2, func(ctx context.Context, tx ledger.ReadTx) error {
				want := winner.Transactions[0]
				got, err := tx.Transaction(ctx, ws, want.ID)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("winner's entry (-want +got):\n%s", diff)
				}
				rec, found, err := tx.Idempotency(ctx, ws, winner.Keys[0].Key)
				if err != nil || !found || rec.TransactionID != want.ID {
					t.Errorf("key: %+v found=%v %v, want it to name %s", rec, found, err, want.ID)
				}
				for _, p := range winner.NewPackages {
					got, err := tx.Package(ctx, ws, p.ID)
					if err != nil || got.DisplayName != p.DisplayName {
						t.Errorf("package %s: %+v %v, want the winner's", p.ID, got, err)
					}
				}
				return nil
			})
		})
	}
}

// TestOpposingKeyOrdersDoNotDeadlock: two batches that record the same two
// idempotency keys, listed in opposite orders, must not deadlock (SPEC §8:
// "two batches cannot deadlock"); the later one is a plain conflict. A
// test-only trigger holds each batch between its two key inserts, so that
// the interleaving is certain.
func TestOpposingKeyOrdersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := server.NewDatabase(t, template)
	s1, s2 := openURL(t, url, Options{}), openURL(t, url, Options{})
	// The workspace exists already: the first batches of a new one wait for
	// each other at its registration, before either inserts a key.
	set0, eff0 := credit("n0", "tx-0", "K0", 1)
	mustWrite(t, s1, set0, eff0)
	const gateKey = 4242
	if err := rawTx(s1, `
		CREATE FUNCTION test_gate() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM pg_advisory_xact_lock_shared(4242);
			RETURN NEW;
		END;
		$$;
		CREATE TRIGGER test_gate BEFORE INSERT ON idempotency_keys FOR EACH ROW
			WHEN ((NEW.key = 'K2' AND NEW.fingerprint = '\xaa') OR (NEW.key = 'K1' AND NEW.fingerprint = '\xbb'))
			EXECUTE FUNCTION test_gate()`); err != nil {
		t.Fatal(err)
	}
	gate, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gate.Close(ctx) }()
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_lock($1)`, gateKey); err != nil {
		t.Fatal(err)
	}

	batch := func(acct, txID string, fp byte, keys ...string) (ledger.WriteSet, *ledger.Effects) {
		set, eff := credit(acct, txID, keys[0], 10)
		set.Keys = []string{"K1", "K2"}
		eff.Keys = nil
		for _, k := range keys {
			rec := record(k, ledger.OpCredit, txID, "")
			rec.Fingerprint = []byte{fp}
			eff.Keys = append(eff.Keys, rec)
		}
		return set, eff
	}
	set1, eff1 := batch("n1", "tx-1", 0xaa, "K1", "K2")
	set2, eff2 := batch("n2", "tx-2", 0xbb, "K2", "K1")
	var err1, err2 error
	var wg sync.WaitGroup
	wg.Go(func() { err1 = s1.Write(ctx, set1, prepared(eff1)) })
	wg.Go(func() { err2 = s2.Write(ctx, set2, prepared(eff2)) })
	// Open the gate once both batches wait at it (or one is done: the gate
	// fires only for the second key a batch inserts).
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := gate.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1 AND NOT granted`,
			gateKey).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d batches reached the gate", waiting)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := gate.Exec(ctx, `SELECT pg_advisory_unlock($1)`, gateKey); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, err := range []error{err1, err2} {
		if pgCode(err) == codeDeadlockDetected {
			t.Errorf("batch %d: deadlock: %v", i+1, err)
		}
	}
	if (err1 == nil) == (err2 == nil) || !errors.Is(errors.Join(err1, err2), ledger.ErrConflict) {
		t.Errorf("want one commit and one ErrConflict; got %v and %v", err1, err2)
	}
	verifyLedger(t, s1)
}

func TestWriteDecide(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	ctx := context.Background()
	settingsRows := func() int64 { return queryInt(t, s, `SELECT count(*) FROM settings`) }

	t.Run("reads and locks what the set names", func(t *testing.T) {
		set := ledger.WriteSet{
			Workspace: ws, LockSettings: true, Requests: []string{"nope", "r1"}, Accounts: []string{"a", "nobody"},
			Keys: []string{keyD2, keyT1, "nope", keyR1}, Packages: []string{"nope", "p1"}, LockPackages: true,
			Currencies: []string{"EUR", "USD"},
		}
		var got *ledger.Snapshot
		calls := 0
		err := s.Write(ctx, set, func(snap *ledger.Snapshot) (*ledger.Effects, error) {
			calls++
			got = snap
			return &ledger.Effects{}, nil
		})
		if err != nil || calls != 1 {
			t.Fatalf("Write: %v after %d calls of decide", err, calls)
		}
		var t1, t3 ledger.Transaction
		var r1, r2 ledger.CreditRequest
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			var err error
			t1, _ = tx.Transaction(ctx, ws, "t1")
			t3, _ = tx.Transaction(ctx, ws, "t3")
			r1, _ = tx.Request(ctx, ws, "r1")
			r2, err = tx.Request(ctx, ws, "r2")
			return err
		})
		want := &ledger.Snapshot{
			Settings: ledger.Settings{Workspace: ws},
			Accounts: map[string]ledger.Account{"a": seeded},
			Keys: map[string]ledger.IdempotencyRecord{
				keyD2: record(keyD2, ledger.OpDecideRequest, "t3", "r2"),
				keyT1: record(keyT1, ledger.OpCredit, "t1", ""),
				keyR1: record(keyR1, ledger.OpSubmitRequest, "", "r1"),
			},
			Transactions: map[string]ledger.Transaction{"t1": t1, "t3": t3},
			Requests:     map[string]ledger.CreditRequest{"r1": r1, "r2": r2},
			Packages:     map[string]ledger.Package{"p1": starter},
			Rates:        map[string]ledger.ConversionRate{"USD": {Workspace: ws, Currency: "USD", Rate: decimal(t, "10"), Active: true, CreateTime: t0}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("snapshot (-want +got):\n%s", diff)
		}
		if t1.ID != "t1" || t3.ID != "t3" || r1.Seq != 1 || r2.Seq != 2 {
			t.Errorf("read back %+v %+v %+v %+v", t1, t3, r1, r2)
		}
	})
	t.Run("the accounts of locked requests are read", func(t *testing.T) {
		var got map[string]ledger.Account
		err := s.Write(ctx, ledger.WriteSet{Workspace: ws, Requests: []string{"r1"}}, func(snap *ledger.Snapshot) (*ledger.Effects, error) {
			got = snap.Accounts
			return &ledger.Effects{}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]ledger.Account{"a": seeded}, got); diff != "" {
			t.Errorf("accounts (-want +got):\n%s", diff)
		}
	})
	t.Run("empty effects write nothing", func(t *testing.T) {
		err := s.Write(ctx, ledger.WriteSet{Workspace: "ws9", LockSettings: true, Accounts: []string{"a"}}, prepared(&ledger.Effects{}))
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		if n := settingsRows(); n != 0 {
			t.Errorf("%d settings rows: the lock's default row was committed", n)
		}
	})
	t.Run("decide's error comes back unchanged and nothing is written", func(t *testing.T) {
		mine := errors.New("mine")
		err := s.Write(ctx, ledger.WriteSet{Workspace: ws, LockSettings: true, Accounts: []string{"a"}}, func(*ledger.Snapshot) (*ledger.Effects, error) {
			return nil, mine
		})
		if err != mine { //nolint:errorlint // the very same value
			t.Fatalf("got %v", err)
		}
		if n := settingsRows(); n != 0 {
			t.Errorf("%d settings rows", n)
		}
		// A domain error too, with its code.
		refused := ledger.NotFoundError("package", "p9")
		if err := s.Write(ctx, ledger.WriteSet{Workspace: ws}, func(*ledger.Snapshot) (*ledger.Effects, error) { return nil, refused }); err != refused { //nolint:errorlint // the very same value
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the locks are released after each outcome", func(t *testing.T) {
		// Every Write above rolled back or committed: a batch locking
		// everything again does not wait.
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := s.Write(wctx, ledger.WriteSet{
			Workspace: ws, LockSettings: true, Accounts: []string{"a"}, Requests: []string{"r1"},
			Packages: []string{"p1"}, LockPackages: true, Currencies: []string{"USD"},
		}, prepared(&ledger.Effects{}))
		if err != nil {
			t.Fatal(err)
		}
	})
	assertSeedOnly(t, s)
}

// ---------------------------------------------------------------------------
// Error mapping

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	ctx := context.Background()

	t.Run("duplicate idempotency key is a conflict", func(t *testing.T) {
		err := s.Write(ctx, ledger.WriteSet{Workspace: ws, Keys: []string{keyT1}}, prepared(&ledger.Effects{
			Keys: []ledger.IdempotencyRecord{record(keyT1, ledger.OpCredit, "t2", "")},
		}))
		if !errors.Is(err, ledger.ErrConflict) {
			t.Fatalf("got %v", err)
		}
		if msg := ledger.ErrorOf(err).Message; strings.Contains(msg, "idempotency_keys") || strings.Contains(msg, "duplicate") {
			t.Fatalf("SQL leaked into the message: %q", msg)
		}
	})
	t.Run("same package id in another workspace is fine", func(t *testing.T) {
		p := starter
		p.Workspace = "ws2"
		mustWrite(t, s, ledger.WriteSet{Workspace: "ws2", Packages: []string{"p1"}}, &ledger.Effects{NewPackages: []ledger.Package{p}})
	})
	t.Run("unknown rows", func(t *testing.T) {
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			for name, fn := range map[string]func() error{
				"transaction":             func() error { _, err := tx.Transaction(ctx, ws, "nope"); return err },
				"other workspace tx":      func() error { _, err := tx.Transaction(ctx, "ws2", "t1"); return err },
				"request":                 func() error { _, err := tx.Request(ctx, ws, "nope"); return err },
				"other workspace request": func() error { _, err := tx.Request(ctx, "ws2", "r1"); return err },
				"package":                 func() error { _, err := tx.Package(ctx, ws, "nope"); return err },
				"rate":                    func() error { _, err := tx.ActiveRate(ctx, ws, "EUR"); return err },
			} {
				if err := fn(); !errors.Is(err, ledger.ErrNotFound) {
					t.Errorf("%s: got %v, want ErrNotFound", name, err)
				}
			}
			a, err := tx.Account(ctx, ws, "nobody")
			if err != nil || a != (ledger.Account{Workspace: ws, ID: "nobody"}) {
				t.Errorf("unknown account: %+v %v", a, err)
			}
			st, err := tx.Settings(ctx, ws)
			if err != nil || !cmp.Equal(st, ledger.Settings{Workspace: ws}) {
				t.Errorf("default settings: %+v %v", st, err)
			}
			_, found, err := tx.Idempotency(ctx, ws, "nope")
			if err != nil || found {
				t.Errorf("unknown key: %v %v", found, err)
			}
			return nil
		})
	})
	t.Run("a cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		called := false
		err := s.Write(cctx, ledger.WriteSet{Workspace: ws}, func(*ledger.Snapshot) (*ledger.Effects, error) {
			called = true
			return &ledger.Effects{}, nil
		})
		if !errors.Is(err, context.Canceled) || called {
			t.Fatalf("Write: %v (decide called: %v)", err, called)
		}
		err = s.View(cctx, func(context.Context, ledger.ReadTx) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("View: %v", err)
		}
	})
	t.Run("a deadline while waiting for a lock", func(t *testing.T) {
		hold := make(chan struct{})
		locked := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- s.Write(ctx, ledger.WriteSet{Workspace: ws, Accounts: []string{"a"}}, func(*ledger.Snapshot) (*ledger.Effects, error) {
				close(locked)
				<-hold
				return &ledger.Effects{}, nil
			})
		}()
		<-locked
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		called := false
		err := s.Write(dctx, ledger.WriteSet{Workspace: ws, Accounts: []string{"a"}}, func(*ledger.Snapshot) (*ledger.Effects, error) {
			called = true
			return &ledger.Effects{}, nil
		})
		close(hold)
		if !errors.Is(err, context.DeadlineExceeded) || called {
			t.Fatalf("got %v (decide called: %v)", err, called)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a deadline while waiting to write", func(t *testing.T) {
		// Another transaction holds key "held" uncommitted: the batch's
		// insert waits with its COMMIT queued behind it. The deadline breaks
		// the connection, so the outcome is unknown (unavailable): the
		// server may still commit the batch once the key is free, and what
		// it does is all or nothing.
		tx, err := ownerPool(t, s).Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, create_time)
			VALUES ('ws', 'held', 'credit', '\x01', 't1', now())`); err != nil {
			t.Fatal(err)
		}
		dctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		err = s.Write(dctx, ledger.WriteSet{Workspace: ws, LockSettings: true, Keys: []string{"held"}}, prepared(&ledger.Effects{
			Settings: &ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: t0},
			Keys:     []ledger.IdempotencyRecord{record("held", ledger.OpCredit, "t1", "")},
		}))
		if e := ledger.ErrorOf(err); e.Code != ledger.CodeUnavailable || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v (%v), want unavailable, caused by the deadline", err, e.Code)
		}
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		// Wait for the orphaned batch to end, whichever way.
		for deadline := time.Now().Add(20 * time.Second); ; {
			busy := queryInt(t, s, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`)
			if busy == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions still busy", busy)
			}
			time.Sleep(10 * time.Millisecond)
		}
		settings := queryInt(t, s, `SELECT count(*) FROM settings WHERE workspace = 'ws'`)
		keys := queryInt(t, s, `SELECT count(*) FROM idempotency_keys WHERE key = 'held'`)
		if settings != keys {
			t.Errorf("half a batch committed: %d settings rows, %d keys", settings, keys)
		}
		t.Logf("the batch whose outcome was unknown committed: %v", keys == 1)
	})
	t.Run("an unreachable server is unavailable", func(t *testing.T) {
		_, err := Open(ctx, "postgres://postgres@/postgres?host=/nonexistent&port=1&connect_timeout=2", Options{})
		if e := ledger.ErrorOf(err); e.Code != ledger.CodeUnavailable {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a bad URL does not leak", func(t *testing.T) {
		_, err := Open(ctx, "postgres://user:s3cret@host:notaport/db", Options{})
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("got %v", err)
		}
	})
	verifyLedger(t, s)
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	called := false
	for name, err := range map[string]error{
		"write": s.Write(context.Background(), ledger.WriteSet{Workspace: ws}, func(*ledger.Snapshot) (*ledger.Effects, error) {
			called = true
			return &ledger.Effects{}, nil
		}),
		"view": s.View(context.Background(), func(context.Context, ledger.ReadTx) error { return nil }),
		"ping": s.Ping(context.Background()),
	} {
		if e := ledger.ErrorOf(err); e.Code != ledger.CodeUnavailable {
			t.Errorf("%s: %v, want unavailable", name, err)
		}
	}
	if called {
		t.Error("decide was called on a closed store")
	}
}

func TestMapErr(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	pg := func(code, constraint string) error {
		return fmt.Errorf("exec: %w", &pgconn.PgError{Code: code, ConstraintName: constraint, Message: "secret SQL detail"})
	}
	for _, tc := range []struct {
		name   string
		ctx    context.Context
		err    error
		want   error // errors.Is target; nil means internal
		unavai bool
	}{
		{"unique on idempotency key", bg, pg("23505", "idempotency_keys_pkey"), ledger.ErrConflict, false},
		{"unique on package", bg, pg("23505", "packages_pkey"), ledger.ErrAlreadyExists, false},
		{"unique on account version", bg, pg("23505", "transactions_account_version"), ledger.ErrConflict, false},
		{"unique on account", bg, pg("23505", "accounts_pkey"), ledger.ErrConflict, false},
		{"serialization failure", bg, pg("40001", ""), ledger.ErrConflict, false},
		{"deadlock", bg, pg("40P01", ""), ledger.ErrConflict, false},
		{"lock timeout", bg, pg("55P03", ""), ledger.ErrConflict, false},
		{"admin shutdown", bg, pg("57P01", ""), nil, true},
		{"too many connections", bg, pg("53300", ""), nil, true},
		{"connection failure", bg, pg("08006", ""), nil, true},
		{"read-only standby", bg, pg("25006", ""), nil, true},
		// pgbouncer's own errors: its server connection died under the
		// client's transaction, the server cannot be reached, no server
		// connection came in time.
		{"pooler lost its server connection", bg, pg("08P01", ""), nil, true},
		{"statement timeout", bg, pg("57014", ""), nil, true},
		{"cancelled statement", cancelled, pg("57014", ""), context.Canceled, false},
		{"context error", bg, fmt.Errorf("x: %w", context.DeadlineExceeded), context.DeadlineExceeded, false},
		{"context ended under a broken read", cancelled, errors.New("read: use of closed connection"), context.Canceled, false},
		{"closed connection", bg, pgconn.ErrConnClosed, nil, true},
		{"unknown error", bg, errors.New("something else"), nil, false},
		{"check violation", bg, pg("23514", "x"), nil, false},
		{"foreign key violation", bg, pg("23503", "x"), nil, false},
		{"trigger", bg, pg("23000", ""), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := mapErr(tc.ctx, "op", tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("the cause is lost: %v", got)
			}
			e := ledger.ErrorOf(got)
			switch {
			case tc.unavai:
				if e.Code != ledger.CodeUnavailable {
					t.Errorf("got %v, want unavailable", got)
				}
			case tc.want != nil:
				if !errors.Is(got, tc.want) {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			default:
				if e.Code != ledger.CodeInternal {
					t.Errorf("got %v (%v), want internal", got, e.Code)
				}
			}
			if strings.Contains(e.Message, "secret") {
				t.Errorf("message leaks the server's text: %q", e.Message)
			}
		})
	}
	if err := mapErr(bg, "op", nil); err != nil {
		t.Errorf("mapErr(nil) = %v", err)
	}
}

// ---------------------------------------------------------------------------
// Round trips

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	ctx := context.Background()
	md := map[string]string{"order": "42", "ü": "✓", "empty": ""}

	t4 := entry("t4", "a", ledger.TypeOut, 20, 100, 4)
	t4.Kind, t4.Metadata, t4.PackageID, t4.Reference = ledger.KindInvoicePayment, md, "p1", "invoice:INV-1"
	b1 := entry("b1", "b", ledger.TypeIn, 7, 7, 1)
	b1.Kind, b1.PackageID, b1.RequestID, b1.IdempotencyKey = ledger.KindRequestApproved, "p1", "r3", "d-r3"
	r3 := ledger.CreditRequest{
		ID: "r3", Workspace: ws, Account: "b", Amount: 7, PackageID: "p1", PaymentMethod: ledger.MethodCrypto,
		PaymentReference: "0xabc", Note: "n", Status: ledger.StatusPending, Metadata: md, IdempotencyKey: "s-r3", CreateTime: at(5),
	}
	r3decided := r3
	r3decided.Status, r3decided.DecisionReason, r3decided.DecidedBy, r3decided.DecideTime, r3decided.TransactionID =
		ledger.StatusAccepted, "paid", "agent@example.com", at(6), "b1"
	r4 := pending("r4", "b", 9)
	r4.CreateTime = at(7)
	p2 := ledger.Package{
		Workspace: ws, ID: "p2", DisplayName: "Pro", Credits: 1000,
		Price: ledger.Money{Currency: "EUR", Units: 0, Nanos: 1}, Active: true, CreateTime: at(1),
	}
	p1 := starter
	p1.DisplayName, p1.Credits, p1.Price, p1.Active, p1.UpdateTime = "Starter (old)", 90, ledger.Money{Currency: "EUR", Units: 8}, false, at(8)
	settings := ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: at(9)}
	rates := []ledger.ConversionRate{
		{Workspace: ws, Currency: "EUR", Rate: decimal(t, "0.000000001"), Active: true, CreateTime: at(2)},
		{Workspace: ws, Currency: "USD", Rate: decimal(t, "12.5"), Active: true, CreateTime: at(3)},
	}
	keys := []ledger.IdempotencyRecord{
		record("d-r3", ledger.OpDecideRequest, "b1", "r3"), record("k-t4", ledger.OpDebit, "t4", ""),
		record("s-r3", ledger.OpSubmitRequest, "", "r3"), record("s-r4", ledger.OpSubmitRequest, "", "r4"),
	}
	// One batch: a request submitted and accepted in the same batch, a new
	// account, a debit with every optional field, settings, packages, rates.
	mustWrite(t, s, ledger.WriteSet{
		Workspace: ws, LockSettings: true, Accounts: []string{"a", "b"}, Keys: []string{"d-r3", "k-t4", "s-r3", "s-r4"},
		Packages: []string{"p1", "p2"}, LockPackages: true, Currencies: []string{"EUR", "USD"},
	}, &ledger.Effects{
		Accounts:       []ledger.AccountMove{moveTo("a", 100, 4, 3), create("b", 7, 1)},
		Transactions:   []ledger.Transaction{t4, b1},
		NewRequests:    []ledger.CreditRequest{r3, r4},
		Decisions:      []ledger.CreditRequest{r3decided},
		Keys:           keys,
		Settings:       &settings,
		NewPackages:    []ledger.Package{p2},
		PackageUpdates: []ledger.Package{p1},
		Rates:          rates,
	})

	r3decided.Seq, r4.Seq = 3, 4
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		for _, want := range []ledger.Transaction{t4, b1} {
			got, err := tx.Transaction(ctx, ws, want.ID)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("transaction %s (-want +got):\n%s", want.ID, diff)
			}
			if got.CreateTime.Location() != time.UTC {
				t.Errorf("create_time in %v", got.CreateTime.Location())
			}
		}
		t1, err := tx.Transaction(ctx, ws, "t1")
		if err != nil {
			return err
		}
		if diff := cmp.Diff(entry("t1", "a", ledger.TypeIn, 100, 100, 1), t1); diff != "" {
			t.Errorf("t1, with no optional field (-want +got):\n%s", diff)
		}
		hist, err := tx.ListTransactions(ctx, ledger.TransactionQuery{Workspace: ws, Account: "a", Limit: 10})
		if err != nil {
			return err
		}
		var versions []int64
		for _, h := range hist {
			versions = append(versions, h.AccountVersion)
		}
		if diff := cmp.Diff([]int64{4, 3, 2, 1}, versions); diff != "" {
			t.Errorf("history of a (-want +got):\n%s", diff)
		}

		for _, want := range []ledger.CreditRequest{r3decided, r4} {
			got, err := tx.Request(ctx, ws, want.ID)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("request %s (-want +got):\n%s", want.ID, diff)
			}
		}
		r2, err := tx.Request(ctx, ws, "r2")
		if err != nil || r2.Status != ledger.StatusAccepted || r2.TransactionID != "t3" || !r2.DecideTime.Equal(t0) || r2.Metadata != nil || r2.Seq != 2 {
			t.Errorf("decided request: %+v %v", r2, err)
		}

		pkgs, err := tx.ListPackages(ctx, ledger.PackageQuery{Workspace: ws, ShowInactive: true, Limit: 10})
		if err != nil {
			return err
		}
		if diff := cmp.Diff([]ledger.Package{p1, p2}, pkgs); diff != "" {
			t.Errorf("packages (-want +got):\n%s", diff)
		}
		active, err := tx.ListPackages(ctx, ledger.PackageQuery{Workspace: ws, Limit: 10})
		if err != nil || len(active) != 1 || active[0].ID != "p2" {
			t.Errorf("active packages: %+v %v", active, err)
		}

		history, err := tx.ListRates(ctx, ws, true)
		if err != nil {
			return err
		}
		old := func(r string) ledger.ConversionRate {
			return ledger.ConversionRate{Workspace: ws, Currency: "USD", Rate: decimal(t, r), CreateTime: t0}
		}
		if diff := cmp.Diff([]ledger.ConversionRate{rates[0], rates[1], old("10"), old("8")}, history); diff != "" {
			t.Errorf("rates with history (-want +got):\n%s", diff)
		}
		current, err := tx.ListRates(ctx, ws, false)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(rates, current); diff != "" {
			t.Errorf("active rates (-want +got):\n%s", diff)
		}
		usd, err := tx.ActiveRate(ctx, ws, "USD")
		if err != nil || usd.Rate.String() != "12.5" {
			t.Errorf("active USD rate: %+v %v", usd, err)
		}

		st, err := tx.Settings(ctx, ws)
		if err != nil {
			return err
		}
		if diff := cmp.Diff(settings, st); diff != "" {
			t.Errorf("settings (-want +got):\n%s", diff)
		}
		for _, want := range append(keys, record(keyT1, ledger.OpCredit, "t1", "")) {
			got, found, err := tx.Idempotency(ctx, ws, want.Key)
			if err != nil || !found {
				return fmt.Errorf("idempotency %s: found=%v: %w", want.Key, found, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("idempotency record %s (-want +got):\n%s", want.Key, diff)
			}
		}
		for acct, want := range map[string]int64{"a": 50, "b": 9} {
			if got, err := tx.PendingCredits(ctx, ws, acct); err != nil || got != want {
				t.Errorf("pending credits of %s: %d %v, want %d", acct, got, err, want)
			}
		}
		accts, err := tx.ListAccounts(ctx, ledger.AccountQuery{Workspace: ws, Limit: 10})
		if err != nil {
			return err
		}
		wantAccts := []ledger.Account{
			{Workspace: ws, ID: "a", Balance: 100, Version: 4, UpdateTime: at(4)},
			{Workspace: ws, ID: "b", Balance: 7, Version: 1, UpdateTime: at(1)},
		}
		if diff := cmp.Diff(wantAccts, accts); diff != "" {
			t.Errorf("accounts (-want +got):\n%s", diff)
		}
		return nil
	})
	count, oldest, err := s.PendingRequestStats(ctx)
	if err != nil || count != 2 || !oldest.Equal(t0) {
		t.Errorf("PendingRequestStats: %d %v %v", count, oldest, err)
	}
	if _, _, maxConns, _ := s.PoolStats(); maxConns < 1 {
		t.Errorf("PoolStats: max %d", maxConns)
	}
	verifyLedger(t, s)
}

func TestViewIsAReadOnlySnapshot(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		before, err := tx.Account(ctx, ws, "a")
		if err != nil {
			return err
		}
		reqsBefore, err := tx.ListRequests(ctx, ledger.RequestQuery{Workspace: ws, Limit: 10})
		if err != nil {
			return err
		}
		// A batch committed meanwhile is not seen.
		mustWrite(t, s, ledger.WriteSet{Workspace: ws, Accounts: []string{"a"}}, &ledger.Effects{
			Accounts:     []ledger.AccountMove{moveTo("a", 121, 4, 3)},
			Transactions: []ledger.Transaction{entry("t4", "a", ledger.TypeIn, 1, 121, 4)},
			NewRequests:  []ledger.CreditRequest{pending("r3", "a", 1)},
		})
		after, err := tx.Account(ctx, ws, "a")
		if err != nil {
			return err
		}
		if after != before {
			t.Errorf("snapshot moved: %+v → %+v", before, after)
		}
		if _, err := tx.Transaction(ctx, ws, "t4"); !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("t4 seen in the snapshot: %v", err)
		}
		reqsAfter, err := tx.ListRequests(ctx, ledger.RequestQuery{Workspace: ws, Limit: 10})
		if err != nil {
			return err
		}
		if diff := cmp.Diff(reqsBefore, reqsAfter); diff != "" {
			t.Errorf("requests moved in the snapshot (-before +after):\n%s", diff)
		}
		return nil
	})
	err := s.View(context.Background(), func(ctx context.Context, tx ledger.ReadTx) error {
		rows, err := tx.(*readTx).tx.Query(ctx, `UPDATE settings SET credit_payments_enabled = true RETURNING workspace`)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	if pgCode(err) != codeReadOnlyTransaction {
		t.Errorf("write in View: %v", err)
	}
	verifyLedger(t, s)
}

// ---------------------------------------------------------------------------
// Request sequence

func TestRequestSeq(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s) // r1 seq 1, r2 seq 2
	ctx := context.Background()
	// The order given, not the IDs', is the sequence's.
	mustWrite(t, s, ledger.WriteSet{Workspace: ws}, &ledger.Effects{
		NewRequests: []ledger.CreditRequest{pending("x3", "b", 1), pending("x1", "a", 2), pending("x2", "b", 3)},
	})
	other := func(id string) ledger.CreditRequest {
		r := pending(id, "a", 4)
		r.Workspace = "ws2"
		return r
	}
	mustWrite(t, s, ledger.WriteSet{Workspace: "ws2"}, &ledger.Effects{NewRequests: []ledger.CreditRequest{other("y1"), other("y2")}})
	mustWrite(t, s, ledger.WriteSet{Workspace: ws}, &ledger.Effects{NewRequests: []ledger.CreditRequest{pending("x4", "a", 5)}})

	type counter struct {
		Workspace string
		Value     int64
	}
	rows, err := ownerPool(t, s).Query(ctx, `SELECT workspace, value FROM workspace_sequences WHERE name = 'requests' ORDER BY workspace`)
	if err != nil {
		t.Fatal(err)
	}
	counters, err := pgx.CollectRows(rows, pgx.RowToStructByPos[counter])
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]counter{{ws, 6}, {"ws2", 2}}, counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}

	ids := func(rs []ledger.CreditRequest) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s:%d", r.ID, r.Seq))
		}
		return out
	}
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		for _, tc := range []struct {
			name  string
			q     ledger.RequestQuery
			pages [][]string
		}{
			{
				"ascending",
				ledger.RequestQuery{Workspace: ws, Limit: 2},
				[][]string{{"r1:1", "r2:2"}, {"x3:3", "x1:4"}, {"x2:5", "x4:6"}, {}},
			},
			{
				"descending",
				ledger.RequestQuery{Workspace: ws, Desc: true, Limit: 4},
				[][]string{{"x4:6", "x2:5", "x1:4", "x3:3"}, {"r2:2", "r1:1"}},
			},
			{"other workspace", ledger.RequestQuery{Workspace: "ws2", Limit: 5}, [][]string{{"y1:1", "y2:2"}}},
			{
				"one account",
				ledger.RequestQuery{Workspace: ws, Account: "b", Limit: 1},
				[][]string{{"x3:3"}, {"x2:5"}, {}},
			},
			{
				"one account descending",
				ledger.RequestQuery{Workspace: ws, Account: "a", Desc: true, Limit: 2},
				[][]string{{"x4:6", "x1:4"}, {"r2:2", "r1:1"}, {}},
			},
			{
				"pending, descending",
				ledger.RequestQuery{Workspace: ws, Status: ledger.StatusPending, Desc: true, Limit: 10},
				[][]string{{"x4:6", "x2:5", "x1:4", "x3:3", "r1:1"}},
			},
			{"accepted", ledger.RequestQuery{Workspace: ws, Status: ledger.StatusAccepted, Limit: 10}, [][]string{{"r2:2"}}},
		} {
			q := tc.q
			for i, want := range tc.pages {
				got, err := tx.ListRequests(ctx, q)
				if err != nil {
					return err
				}
				if diff := cmp.Diff(want, ids(got)); diff != "" {
					t.Errorf("%s, page %d (-want +got):\n%s", tc.name, i+1, diff)
				}
				if len(got) > 0 {
					q.AfterSeq = got[len(got)-1].Seq
				}
			}
		}
		// A cursor beyond every request: everything lies before it.
		got, err := tx.ListRequests(ctx, ledger.RequestQuery{Workspace: ws, Desc: true, AfterSeq: 7, Limit: 1})
		if err != nil || len(got) != 1 || got[0].Seq != 6 {
			t.Errorf("descending after 7: %v %v", ids(got), err)
		}
		return nil
	})
	verifyLedger(t, s)
}

// TestRequestSeqCursorBeyondInt32: keyset cursors are int64 like Seq.
func TestRequestSeqCursorBeyondInt32(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		for _, desc := range []bool{false, true} {
			got, err := tx.ListRequests(ctx, ledger.RequestQuery{Workspace: ws, Desc: desc, AfterSeq: 1 << 40, Limit: 5})
			if err != nil {
				t.Errorf("desc=%v: %v", desc, err)
				continue
			}
			if want := map[bool]int{false: 0, true: 2}[desc]; len(got) != want {
				t.Errorf("desc=%v: %d requests, want %d", desc, len(got), want)
			}
		}
		return nil
	})
}

// TestVerifyFindsEventGaps: the events a batch writes are gap-free (the
// database refuses to delete one); an event slipped in past the counter,
// as only the owner could, is a problem Verify reports.
func TestVerifyFindsEventGaps(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, LockSettings: true}, &ledger.Effects{
		Settings: &ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: t0},
		Events:   []ledger.Event{{Workspace: ws, Type: ledger.EventSettingsUpdated, CreateTime: t0, Settings: &ledger.Settings{Workspace: ws}}},
	})
	if rep := verifyLedger(t, s); rep.Events != 1 {
		t.Fatalf("Verify saw %d events, want 1", rep.Events)
	}
	if err := rawTx(s, `DELETE FROM event_batches`); err == nil {
		t.Fatal("an event was deleted")
	}
	if err := rawTx(s, `SET LOCAL creditledger.workspace = '`+ws+`';
		INSERT INTO event_batches (workspace, last_sequence, first_sequence, types, accounts, create_times, data)
		VALUES ('`+ws+`', 3, 3, '{settings.updated}', '{""}', ARRAY[now()], ARRAY['{}'::bytea])`); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0], "event 3 follows event 1") || !strings.Contains(rep.Problems[1], "counter is at 1") {
		t.Fatalf("Verify found %v", rep.Problems)
	}
}

// TestMigrationKeepsEvents: the events a version-10 ledger wrote one row
// each are, after version 11 puts a batch's events in one row, the same
// events, in the same order, and the next batch's follow them.
func TestMigrationKeepsEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := server.NewDatabase(t, "")
	migrateTo(t, url, 10)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SET LOCAL creditledger.workspace = '`+ws+`';
			INSERT INTO event_sequences (workspace, last) VALUES ('`+ws+`', 3);
			INSERT INTO events (workspace, sequence, type, account, create_time, data) VALUES
				('`+ws+`', 1, 'settings.updated', NULL, '2026-01-01T00:00:00Z', '{"Settings":{"CreditPaymentsEnabled":true}}'),
				('`+ws+`', 2, 'request.submitted', 'alice', '2026-01-01T00:00:01Z', '{"Request":{"ID":"r1","Account":"alice","Amount":5}}'),
				('`+ws+`', 3, 'request.submitted', 'bob', '2026-01-01T00:00:02Z', '{"Request":{"ID":"r2","Account":"bob","Amount":7}}')`)
		return err
	})
	_ = conn.Close(ctx)
	if err != nil {
		t.Fatalf("version-10 events: %v", err)
	}
	if err := Migrate(ctx, url); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s := openURL(t, url, Options{})
	list := func(q ledger.EventQuery) []string {
		t.Helper()
		q.Workspace = ws
		var got []string
		err := s.View(ctx, func(ctx context.Context, tx ledger.ReadTx) error {
			evs, err := tx.ListEvents(ctx, q)
			for _, e := range evs {
				got = append(got, fmt.Sprintf("%d %s %s", e.Sequence, e.Type, e.Account))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if diff := cmp.Diff([]string{"1 settings.updated ", "2 request.submitted alice", "3 request.submitted bob"},
		list(ledger.EventQuery{Limit: 10})); diff != "" {
		t.Fatalf("events after the migration (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"3 request.submitted bob"}, list(ledger.EventQuery{Account: "bob", Limit: 10})); diff != "" {
		t.Fatalf("bob's events (-want +got):\n%s", diff)
	}
	mustWrite(t, s, ledger.WriteSet{Workspace: ws, LockSettings: true}, &ledger.Effects{
		Settings: &ledger.Settings{Workspace: ws, UpdateTime: t0},
		Events: []ledger.Event{
			{Workspace: ws, Type: ledger.EventSettingsUpdated, CreateTime: t0, Settings: &ledger.Settings{Workspace: ws}},
			{Workspace: ws, Type: ledger.EventSettingsUpdated, CreateTime: t0, Settings: &ledger.Settings{Workspace: ws}},
		},
	})
	if diff := cmp.Diff([]string{"4 settings.updated ", "5 settings.updated "}, list(ledger.EventQuery{After: 3, Limit: 10})); diff != "" {
		t.Fatalf("the next batch's events (-want +got):\n%s", diff)
	}
	if rep := verifyLedger(t, s); rep.Events != 5 {
		t.Fatalf("Verify saw %d events, want 5", rep.Events)
	}
}
