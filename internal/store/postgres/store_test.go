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
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

// entry builds a transaction of ws/acct.
func entry(id, acct string, typ ledger.TxType, amount, after, version int64) ledger.Transaction {
	return ledger.Transaction{
		ID: id, Workspace: "ws", Account: acct, Type: typ, Kind: ledger.KindAdjustment, Amount: amount,
		BalanceAfter: after, AccountVersion: version, IdempotencyKey: "k-" + id,
		CreateTime: t0.Add(time.Duration(version) * time.Second),
	}
}

func mustUpdate(t *testing.T, s *Store, fn func(ctx context.Context, tx ledger.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func mustView(t *testing.T, s *Store, fn func(ctx context.Context, tx ledger.ReadTx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// seed writes a small consistent ledger into workspace "ws": account "a"
// at v3 (t1 +100, t2 -30, t3 +50 accepting r2), a pending request r1, an
// active USD rate (10, replacing 8) and a package p1.
func seed(t *testing.T, s *Store) {
	t.Helper()
	mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
		for _, tr := range []ledger.Transaction{
			entry("t1", "a", ledger.TypeIn, 100, 100, 1),
			entry("t2", "a", ledger.TypeOut, 30, 70, 2),
		} {
			if err := tx.AppendTransaction(ctx, tr); err != nil {
				return err
			}
			op := ledger.OpCredit
			if tr.Type == ledger.TypeOut {
				op = ledger.OpDebit
			}
			if err := tx.PutIdempotency(ctx, ledger.IdempotencyRecord{
				Workspace: "ws", Key: tr.IdempotencyKey, Operation: op,
				Fingerprint: []byte{1, 2, 3}, TransactionID: tr.ID, CreateTime: tr.CreateTime,
			}); err != nil {
				return err
			}
		}
		for _, id := range []string{"r1", "r2"} {
			if err := tx.InsertRequest(ctx, ledger.CreditRequest{
				ID: id, Workspace: "ws", Account: "a", Amount: 50, PaymentMethod: ledger.MethodBankTransfer,
				Status: ledger.StatusPending, IdempotencyKey: "s-" + id, CreateTime: t0,
			}); err != nil {
				return err
			}
		}
		t3 := entry("t3", "a", ledger.TypeIn, 50, 120, 3)
		t3.Kind, t3.RequestID = ledger.KindRequestApproved, "r2"
		if err := tx.AppendTransaction(ctx, t3); err != nil {
			return err
		}
		if err := tx.DecideRequest(ctx, ledger.CreditRequest{
			ID: "r2", Workspace: "ws", Status: ledger.StatusAccepted, DecidedBy: "admin", DecideTime: t0, TransactionID: "t3",
		}); err != nil {
			return err
		}
		for _, rate := range []string{"8", "10"} {
			d, _ := ledger.ParseDecimal(rate)
			if err := tx.InsertRate(ctx, ledger.ConversionRate{Workspace: "ws", Currency: "USD", Rate: d, Active: true, CreateTime: t0}); err != nil {
				return err
			}
		}
		return tx.InsertPackage(ctx, ledger.Package{
			Workspace: "ws", ID: "p1", DisplayName: "Starter", Credits: 100,
			Price: ledger.Money{Currency: "USD", Units: 9, Nanos: 990_000_000}, Active: true, CreateTime: t0, UpdateTime: t0,
		})
	})
}

func verifyLedger(t *testing.T, s *Store) ledger.VerifyReport {
	t.Helper()
	rep, err := ledger.Verify(context.Background(), s)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("Verify: %v", rep.Problems)
	}
	return rep
}

// ---------------------------------------------------------------------------
// Migrations

func countMigrations(t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrateTwiceIsANoOp(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, "")
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if err := Migrate(ctx, url); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	all, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if n := countMigrations(t, url); n != len(all) {
		t.Fatalf("%d migrations recorded, want %d", n, len(all))
	}
	s := openURL(t, url, Options{})
	seed(t, s)
	if err := Migrate(ctx, url); err != nil { // again, with data
		t.Fatalf("Migrate with data: %v", err)
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
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			errs[i] = Migrate(context.Background(), url)
		}(i)
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Migrate #%d: %v", i, err)
		}
	}
	all, _ := loadMigrations()
	if got := countMigrations(t, url); got != len(all) {
		t.Fatalf("%d migrations recorded, want %d", got, len(all))
	}
	openURL(t, url, Options{})
}

func TestOpenRefusesAnUnmigratedDatabase(t *testing.T) {
	t.Parallel()
	url := server.NewDatabase(t, "")
	s, err := Open(context.Background(), url, Options{})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on an empty database")
	}
	if want := "schema version 0, need 1: run `ledgerd migrate`"; !strings.Contains(err.Error(), want) {
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
			s.Close()
		}
		t.Fatalf("Open: %v", err)
	}
}

// ---------------------------------------------------------------------------
// The database refuses bad writes by itself

func TestDatabaseRefusesBadWrites(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	for _, tc := range []struct {
		name, sql string
		code      string // SQLSTATE
	}{
		{"update a transaction", `UPDATE transactions SET amount = 1 WHERE id = 't1'`, "23000"},
		{"delete a transaction", `DELETE FROM transactions WHERE id = 't2'`, "23000"},
		{"truncate transactions", `TRUNCATE transactions CASCADE`, "23000"},
		{"negative balance", `UPDATE accounts SET balance = -1, version = version + 1 WHERE id = 'a'`, "23514"},
		{"account born with credits", `INSERT INTO accounts (workspace, id, balance, version) VALUES ('ws', 'new', 5, 0)`, "23514"},
		{"account skips a version", `UPDATE accounts SET version = version + 2 WHERE id = 'a'`, "23514"},
		{"account moves without an entry", `UPDATE accounts SET balance = balance + 5, version = version + 1 WHERE id = 'a'`, "23514"},
		{"delete an account", `DELETE FROM accounts WHERE id = 'a'`, "23000"},
		{
			"entry breaks the chain",
			`UPDATE accounts SET balance = 999, version = 4 WHERE id = 'a';
			 INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 999, 4, now())`, "23514",
		},
		{
			"entry skips a version",
			`INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 121, 5, now())`, "23514",
		},
		{
			"entry without its account move",
			`INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 121, 4, now())`, "23514",
		},
		{"zero amount", `INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 0, 120, 4, now())`, "23514"},
		{"unknown kind", `INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'GIFT', 1, 121, 4, now())`, "23514"},
		{"metadata not a string map", `UPDATE accounts SET balance = 121, version = 4 WHERE id = 'a';
			 INSERT INTO transactions (workspace, id, account, type, kind, amount, balance_after, account_version, metadata, create_time)
			 VALUES ('ws', 'bad', 'a', 'IN', 'ADJUSTMENT', 1, 121, 4, '{"n": 1}', now())`, "23514"},
		{"second active rate", `INSERT INTO conversion_rates (workspace, currency, rate, active, create_time) VALUES ('ws', 'USD', '12', true, now())`, "23505"},
		{"rate rewritten", `UPDATE conversion_rates SET rate = '11' WHERE active`, "23514"},
		{"rate reactivated", `UPDATE conversion_rates SET active = true WHERE NOT active`, "23514"},
		{"non-canonical rate", `INSERT INTO conversion_rates (workspace, currency, rate, active, create_time) VALUES ('ws', 'EUR', '9.50', true, now())`, "23514"},
		{"decide a decided request", `UPDATE credit_requests SET status = 'REJECTED', transaction_id = NULL WHERE id = 'r2'`, "23514"},
		{"request back to pending", `UPDATE credit_requests SET status = 'PENDING', transaction_id = NULL, decide_time = NULL WHERE id = 'r2'`, "23514"},
		{"accept without a transaction", `UPDATE credit_requests SET status = 'ACCEPTED', decide_time = now() WHERE id = 'r1'`, "23514"},
		{"accept with another request's entry", `UPDATE credit_requests SET status = 'ACCEPTED', decide_time = now(), transaction_id = 't3' WHERE id = 'r1'`, "23514"},
		{"change a pending request's amount", `UPDATE credit_requests SET amount = 1, status = 'REJECTED', decide_time = now() WHERE id = 'r1'`, "23514"},
		{"request born decided", `INSERT INTO credit_requests (workspace, id, account, amount, payment_method, status, decide_time, create_time)
			 VALUES ('ws', 'r9', 'a', 5, 'CRYPTO', 'REJECTED', now(), now())`, "23514"},
		{"delete a request", `DELETE FROM credit_requests WHERE id = 'r1'`, "23000"},
		{"rewrite an idempotency record", `UPDATE idempotency_keys SET fingerprint = '\x00'`, "23000"},
		{"delete an idempotency record", `DELETE FROM idempotency_keys`, "23000"},
		{"key without its outcome", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, create_time) VALUES ('ws', 'k', 'credit', '\x01', now())`, "23514"},
		{"key naming a missing transaction", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, create_time) VALUES ('ws', 'k', 'credit', '\x01', 'nope', now())`, "23503"},
		{"delete a package", `DELETE FROM packages WHERE id = 'p1'`, "23000"},
		{"package price nanos", `UPDATE packages SET price_nanos = 1000000000`, "23514"},
		{"package without credits", `UPDATE packages SET credits = 0`, "23514"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rawTx(s, tc.sql)
			if got := pgCode(err); got != tc.code {
				t.Fatalf("got %v (SQLSTATE %q), want SQLSTATE %s", err, got, tc.code)
			}
		})
	}
	verifyLedger(t, s) // nothing changed
}

// rawTx runs sql (several statements allowed) in one transaction and commits.
func rawTx(s *Store, sql string) error {
	ctx := context.Background()
	return pgx.BeginFunc(ctx, s.Pool(), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql)
		return err
	})
}

func TestAppendTransactionChecksTheChain(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s) // a is at v3, balance 120
	for _, tc := range []struct {
		name string
		tr   ledger.Transaction
	}{
		{"stale version", entry("x", "a", ledger.TypeIn, 10, 110, 3)},
		{"future version", entry("x", "a", ledger.TypeIn, 10, 130, 5)},
		{"wrong balance after credit", entry("x", "a", ledger.TypeIn, 10, 131, 4)},
		{"wrong balance after debit", entry("x", "a", ledger.TypeOut, 10, 111, 4)},
		{"debit below zero", entry("x", "a", ledger.TypeOut, 130, 0, 4)},
		{"first entry of a new account with a balance", entry("x", "new", ledger.TypeIn, 10, 20, 1)},
		{"new account not at version 1", entry("x", "new", ledger.TypeIn, 10, 10, 2)},
		{"reused transaction id", entry("t1", "a", ledger.TypeIn, 10, 130, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
				return tx.AppendTransaction(ctx, tc.tr)
			})
			if !errors.Is(err, ledger.ErrConflict) {
				t.Fatalf("AppendTransaction: %v, want ErrConflict", err)
			}
		})
	}
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		a, err := tx.Account(ctx, "ws", "a")
		if err != nil || a.Version != 3 || a.Balance != 120 {
			t.Fatalf("account moved: %+v %v", a, err)
		}
		n, err := tx.Account(ctx, "ws", "new")
		if err != nil || n.Version != 0 || !n.UpdateTime.IsZero() {
			t.Fatalf("new account: %+v %v", n, err)
		}
		return nil
	})
	verifyLedger(t, s)
}

func TestDecideRequestOnlyOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	err := s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
		return tx.DecideRequest(ctx, ledger.CreditRequest{
			ID: "r2", Workspace: "ws", Status: ledger.StatusRejected, DecidedBy: "x", DecideTime: t0,
		})
	})
	if !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("deciding a decided request: %v, want ErrConflict", err)
	}
	mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
		return tx.DecideRequest(ctx, ledger.CreditRequest{
			ID: "r1", Workspace: "ws", Status: ledger.StatusRejected, DecisionReason: "no transfer", DecidedBy: "x", DecideTime: t0,
		})
	})
	verifyLedger(t, s)
}

// ---------------------------------------------------------------------------
// Error mapping

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	ctx := context.Background()

	t.Run("duplicate idempotency key is a conflict", func(t *testing.T) {
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			return tx.PutIdempotency(ctx, ledger.IdempotencyRecord{
				Workspace: "ws", Key: "k-t1", Operation: ledger.OpCredit, Fingerprint: []byte{9}, TransactionID: "t1", CreateTime: t0,
			})
		})
		if !errors.Is(err, ledger.ErrConflict) {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(ledger.ErrorOf(err).Message, "idempotency_keys") {
			t.Fatalf("SQL leaked into the message: %q", ledger.ErrorOf(err).Message)
		}
	})
	t.Run("duplicate package is already exists", func(t *testing.T) {
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			return tx.InsertPackage(ctx, ledger.Package{
				Workspace: "ws", ID: "p1", DisplayName: "Again", Credits: 1, Price: ledger.Money{Currency: "USD"}, Active: true, CreateTime: t0,
			})
		})
		if !errors.Is(err, ledger.ErrAlreadyExists) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("same package id in another workspace is fine", func(t *testing.T) {
		mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
			return tx.InsertPackage(ctx, ledger.Package{
				Workspace: "ws2", ID: "p1", DisplayName: "Other", Credits: 1, Price: ledger.Money{Currency: "USD"}, Active: true, CreateTime: t0,
			})
		})
	})
	t.Run("updating an unknown package is not found", func(t *testing.T) {
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			return tx.UpdatePackage(ctx, ledger.Package{Workspace: "ws", ID: "nope", DisplayName: "x", Credits: 1, Price: ledger.Money{Currency: "USD"}})
		})
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("locking an unknown request is not found", func(t *testing.T) {
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			_, err := tx.LockRequest(ctx, "ws", "nope")
			return err
		})
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unknown rows", func(t *testing.T) {
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			for name, fn := range map[string]func() error{
				"transaction":        func() error { _, err := tx.Transaction(ctx, "ws", "nope"); return err },
				"other workspace tx": func() error { _, err := tx.Transaction(ctx, "ws2", "t1"); return err },
				"request":            func() error { _, err := tx.Request(ctx, "ws", "nope"); return err },
				"package":            func() error { _, err := tx.Package(ctx, "ws", "nope"); return err },
				"rate":               func() error { _, err := tx.ActiveRate(ctx, "ws", "EUR"); return err },
			} {
				if err := fn(); !errors.Is(err, ledger.ErrNotFound) {
					t.Errorf("%s: got %v, want ErrNotFound", name, err)
				}
			}
			a, err := tx.Account(ctx, "ws", "nobody")
			if err != nil || a != (ledger.Account{Workspace: "ws", ID: "nobody"}) {
				t.Errorf("unknown account: %+v %v", a, err)
			}
			st, err := tx.Settings(ctx, "ws")
			if err != nil || st != (ledger.Settings{Workspace: "ws"}) {
				t.Errorf("default settings: %+v %v", st, err)
			}
			_, found, err := tx.Idempotency(ctx, "ws", "nope")
			if err != nil || found {
				t.Errorf("unknown key: %v %v", found, err)
			}
			return nil
		})
	})
	t.Run("fn's error comes back unchanged and rolls back", func(t *testing.T) {
		mine := errors.New("mine")
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			if err := tx.PutSettings(ctx, ledger.Settings{Workspace: "ws9", CreditPaymentsEnabled: true, UpdateTime: t0}); err != nil {
				return err
			}
			return mine
		})
		if err != mine { //nolint:errorlint // the very same value
			t.Fatalf("got %v", err)
		}
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			if st, _ := tx.Settings(ctx, "ws9"); st.CreditPaymentsEnabled {
				t.Fatal("fn's write survived its error")
			}
			return nil
		})
	})
	t.Run("a cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Update(cctx, func(ctx context.Context, tx ledger.Tx) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Update: %v", err)
		}
		err = s.View(cctx, func(ctx context.Context, tx ledger.ReadTx) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("View: %v", err)
		}
	})
	t.Run("a deadline while waiting for a lock", func(t *testing.T) {
		hold := make(chan struct{})
		locked := make(chan struct{})
		done := make(chan error)
		go func() {
			done <- s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
				if _, err := tx.LockAccount(ctx, "ws", "a"); err != nil {
					return err
				}
				close(locked)
				<-hold
				return nil
			})
		}()
		<-locked
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		err := s.Update(dctx, func(ctx context.Context, tx ledger.Tx) error {
			_, err := tx.LockAccount(ctx, "ws", "a")
			return err
		})
		close(hold)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
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
	for _, group := range []bool{false, true} {
		s := newStore(t, Options{GroupCommit: group})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"update": s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error { return nil }),
			"view":   s.View(context.Background(), func(ctx context.Context, tx ledger.ReadTx) error { return nil }),
			"ping":   s.Ping(context.Background()),
		} {
			if e := ledger.ErrorOf(err); e.Code != ledger.CodeUnavailable {
				t.Errorf("group=%v %s: %v, want unavailable", group, name, err)
			}
		}
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
		{"unique on account version", bg, pg("23505", "transactions_workspace_account_account_version_key"), ledger.ErrConflict, false},
		{"serialization failure", bg, pg("40001", ""), ledger.ErrConflict, false},
		{"deadlock", bg, pg("40P01", ""), ledger.ErrConflict, false},
		{"lock timeout", bg, pg("55P03", ""), ledger.ErrConflict, false},
		{"admin shutdown", bg, pg("57P01", ""), nil, true},
		{"too many connections", bg, pg("53300", ""), nil, true},
		{"connection failure", bg, pg("08006", ""), nil, true},
		{"read-only standby", bg, pg("25006", ""), nil, true},
		{"statement timeout", bg, pg("57014", ""), nil, true},
		{"cancelled statement", cancelled, pg("57014", ""), context.Canceled, false},
		{"context error", bg, fmt.Errorf("x: %w", context.DeadlineExceeded), context.DeadlineExceeded, false},
		{"context ended under a broken read", cancelled, errors.New("read: use of closed connection"), context.Canceled, false},
		{"unknown error", bg, errors.New("something else"), nil, false},
		{"check violation", bg, pg("23514", "x"), nil, false},
		{"trigger", bg, pg("23000", ""), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
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
}

// ---------------------------------------------------------------------------
// Round trips

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{})
	seed(t, s)
	md := map[string]string{"order": "42", "ü": "✓"}
	mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
		tr := entry("t4", "a", ledger.TypeOut, 20, 100, 4)
		tr.Metadata, tr.PackageID, tr.Reference = md, "p1", "invoice:INV-1"
		if err := tx.AppendTransaction(ctx, tr); err != nil {
			return err
		}
		return tx.InsertRequest(ctx, ledger.CreditRequest{
			ID: "r3", Workspace: "ws", Account: "b", Amount: 7, PackageID: "p1", PaymentMethod: ledger.MethodCrypto,
			PaymentReference: "0xabc", Note: "n", Status: ledger.StatusPending, Metadata: md, IdempotencyKey: "s-r3", CreateTime: t0,
		})
	})
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		got, err := tx.Transaction(ctx, "ws", "t4")
		if err != nil {
			return err
		}
		want := entry("t4", "a", ledger.TypeOut, 20, 100, 4)
		want.Metadata, want.PackageID, want.Reference = md, "p1", "invoice:INV-1"
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("transaction (-want +got):\n%s", diff)
		}
		if got.CreateTime.Location() != time.UTC {
			t.Errorf("create_time in %v", got.CreateTime.Location())
		}
		t1, err := tx.Transaction(ctx, "ws", "t1")
		if err != nil {
			return err
		}
		if t1.Metadata != nil || t1.PackageID != "" || t1.RequestID != "" {
			t.Errorf("empty fields read back as %+v", t1)
		}
		r, err := tx.Request(ctx, "ws", "r3")
		if err != nil {
			return err
		}
		wantReq := ledger.CreditRequest{
			ID: "r3", Workspace: "ws", Account: "b", Amount: 7, PackageID: "p1", PaymentMethod: ledger.MethodCrypto,
			PaymentReference: "0xabc", Note: "n", Status: ledger.StatusPending, Metadata: md, IdempotencyKey: "s-r3", CreateTime: t0,
		}
		if diff := cmp.Diff(wantReq, r); diff != "" {
			t.Errorf("request (-want +got):\n%s", diff)
		}
		r2, err := tx.Request(ctx, "ws", "r2")
		if err != nil || r2.Status != ledger.StatusAccepted || r2.TransactionID != "t3" || !r2.DecideTime.Equal(t0) || r2.Metadata != nil {
			t.Errorf("decided request: %+v %v", r2, err)
		}
		p, err := tx.Package(ctx, "ws", "p1")
		if err != nil {
			return err
		}
		wantPkg := ledger.Package{
			Workspace: "ws", ID: "p1", DisplayName: "Starter", Credits: 100,
			Price: ledger.Money{Currency: "USD", Units: 9, Nanos: 990_000_000}, Active: true, CreateTime: t0, UpdateTime: t0,
		}
		if diff := cmp.Diff(wantPkg, p); diff != "" {
			t.Errorf("package (-want +got):\n%s", diff)
		}
		rates, err := tx.ListRates(ctx, "ws", true)
		if err != nil {
			return err
		}
		if len(rates) != 2 || rates[0].Rate.String() != "10" || !rates[0].Active || rates[1].Rate.String() != "8" || rates[1].Active {
			t.Errorf("rates: %+v", rates)
		}
		rec, found, err := tx.Idempotency(ctx, "ws", "k-t1")
		if err != nil || !found {
			return fmt.Errorf("idempotency: found=%v: %w", found, err)
		}
		wantRec := ledger.IdempotencyRecord{Workspace: "ws", Key: "k-t1", Operation: ledger.OpCredit, Fingerprint: []byte{1, 2, 3}, TransactionID: "t1", CreateTime: t0.Add(time.Second)}
		if diff := cmp.Diff(wantRec, rec); diff != "" {
			t.Errorf("idempotency record (-want +got):\n%s", diff)
		}
		pending, err := tx.PendingCredits(ctx, "ws", "a")
		if err != nil || pending != 50 {
			t.Errorf("pending credits %d %v", pending, err)
		}
		a, err := tx.Account(ctx, "ws", "a")
		if err != nil || a.Balance != 100 || a.Version != 4 || !a.UpdateTime.Equal(t0.Add(4*time.Second)) {
			t.Errorf("account %+v %v", a, err)
		}
		return nil
	})
	count, oldest, err := s.PendingRequestStats(context.Background())
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
		before, err := tx.Account(ctx, "ws", "a")
		if err != nil {
			return err
		}
		// A write committed meanwhile is not seen.
		mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
			return tx.AppendTransaction(ctx, entry("t4", "a", ledger.TypeIn, 1, 121, 4))
		})
		after, err := tx.Account(ctx, "ws", "a")
		if err != nil {
			return err
		}
		if after != before {
			t.Errorf("snapshot moved: %+v → %+v", before, after)
		}
		return nil
	})
	err := s.View(context.Background(), func(ctx context.Context, tx ledger.ReadTx) error {
		_, err := tx.(*readTx).tx.Exec(ctx, `UPDATE settings SET credit_payments_enabled = true`)
		return err
	})
	if pgCode(err) != codeReadOnlyTransaction {
		t.Errorf("write in View: %v", err)
	}
}

// ---------------------------------------------------------------------------
// Concurrency

// appendLoop posts n credits of 1..n to ws/acct, each in its own Update
// that reads the account (locked or not), builds the next entry and
// appends it, retrying on ErrConflict.
func appendLoop(ctx context.Context, s *Store, acct, prefix string, n int, lock bool) (conflicts int, err error) {
	for i := 0; i < n; i++ {
		for {
			err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
				read := tx.Account
				if lock {
					read = tx.LockAccount
				}
				a, err := read(ctx, "ws", acct)
				if err != nil {
					return err
				}
				amount := int64(i%5 + 1)
				tr := ledger.Transaction{
					ID: fmt.Sprintf("%s-%d", prefix, i), Workspace: "ws", Account: acct, Type: ledger.TypeIn,
					Kind: ledger.KindPurchase, Amount: amount, BalanceAfter: a.Balance + amount,
					AccountVersion: a.Version + 1, CreateTime: t0,
				}
				return tx.AppendTransaction(ctx, tr)
			})
			if errors.Is(err, ledger.ErrConflict) {
				conflicts++
				continue
			}
			if err != nil {
				return conflicts, err
			}
			break
		}
	}
	return conflicts, nil
}

func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		lock  bool
		group bool
	}{
		{"locked", true, false},
		{"optimistic", false, false},
		{"locked group commit", true, true},
		{"optimistic group commit", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, Options{GroupCommit: tc.group, MaxConns: 8})
			const workers, perWorker = 16, 25
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			var mu sync.Mutex
			conflicts := 0
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					// The first postings to the new account race too.
					c, err := appendLoop(context.Background(), s, "hot", fmt.Sprintf("w%d", w), perWorker, tc.lock)
					mu.Lock()
					conflicts += c
					mu.Unlock()
					if err != nil {
						errs <- err
					}
				}(w)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			rep := verifyLedger(t, s)
			if rep.Transactions != workers*perWorker {
				t.Fatalf("%d entries, want %d", rep.Transactions, workers*perWorker)
			}
			mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
				a, err := tx.Account(ctx, "ws", "hot")
				if err != nil || a.Version != workers*perWorker || a.Balance != workers*(1+2+3+4+5)*perWorker/5 {
					t.Fatalf("account %+v %v", a, err)
				}
				return nil
			})
			if tc.lock && !tc.group && conflicts != 0 {
				t.Errorf("%d conflicts although every writer locked the account", conflicts)
			}
			t.Logf("%d conflicts retried", conflicts)
		})
	}
}
