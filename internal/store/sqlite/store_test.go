package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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
			if err := tx.PutIdempotency(ctx, ledger.IdempotencyRecord{
				Workspace: "ws", Key: tr.IdempotencyKey, Operation: map[ledger.TxType]ledger.Operation{ledger.TypeIn: ledger.OpCredit, ledger.TypeOut: ledger.OpDebit}[tr.Type],
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
		for _, rate := range []int64{8, 10} {
			if err := tx.InsertRate(ctx, ledger.ConversionRate{Workspace: "ws", Currency: "USD", Rate: ledger.Decimal{Mantissa: rate}, Active: true, CreateTime: t0}); err != nil {
				return err
			}
		}
		return tx.InsertPackage(ctx, ledger.Package{
			Workspace: "ws", ID: "p1", DisplayName: "Gold", Credits: 10, Price: ledger.Money{Currency: "USD", Units: 9},
			Active: true, CreateTime: t0, UpdateTime: t0,
		})
	})
}

// verifyLedger runs the domain's own consistency check over the store.
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

func TestFileCreatedOwnerOnlyAndReopenKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "ledger.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	seed(t, s)
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(name), perm)
		}
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := openAt(t, path, Options{BusyTimeout: time.Second})
	mustView(t, s2, func(ctx context.Context, tx ledger.ReadTx) error {
		a, err := tx.Account(ctx, "ws", "a")
		if err != nil {
			return err
		}
		if a.Balance != 120 || a.Version != 3 || !a.UpdateTime.Equal(t0.Add(3*time.Second)) {
			t.Errorf("account after reopen: %+v", a)
		}
		if _, err := tx.Transaction(ctx, "ws", "t2"); err != nil {
			t.Errorf("transaction after reopen: %v", err)
		}
		return nil
	})
	verifyLedger(t, s2)
}

func TestOpenRefusesEmptyPathAndDirectory(t *testing.T) {
	t.Parallel()
	if _, err := Open(context.Background(), "", Options{}); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
	if _, err := Open(context.Background(), t.TempDir(), Options{}); err == nil {
		t.Fatal("Open(directory) succeeded")
	}
}

// TestPragmasOnEveryConnection: the durability settings come from the DSN,
// so every connection database/sql opens has them, not only the first.
func TestPragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	ctx := context.Background()
	check := func(db *sql.DB, n int, queryOnly int) {
		t.Helper()
		var conns []*sql.Conn
		for i := 0; i < n; i++ {
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			var mode string
			var syncMode, fk, qo, busy int
			if err := c.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			for _, p := range []struct {
				name string
				dst  *int
			}{{"synchronous", &syncMode}, {"foreign_keys", &fk}, {"query_only", &qo}, {"busy_timeout", &busy}} {
				if err := c.QueryRowContext(ctx, "PRAGMA "+p.name).Scan(p.dst); err != nil {
					t.Fatal(err)
				}
			}
			if mode != "wal" || syncMode != 2 || fk != 1 || qo != queryOnly || busy != 5000 {
				t.Errorf("conn %d: journal_mode=%s synchronous=%d foreign_keys=%d query_only=%d busy_timeout=%d",
					i, mode, syncMode, fk, qo, busy)
			}
		}
		for _, c := range conns {
			_ = c.Close()
		}
	}
	check(s.w, 1, 0)
	check(s.r, 4, 1)
}

func TestMigrateIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	// Several "processes" migrate a new file at once: all succeed, once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = Migrate(ctx, path)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent Migrate %d: %v", i, err)
		}
	}
	if err := Migrate(ctx, path); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	s := openAt(t, path, Options{})
	all, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var schema string
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(all) {
		t.Fatalf("%d migrations recorded, want %d", n, len(all))
	}
	if err := s.r.QueryRowContext(ctx, `SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema ORDER BY name)`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accounts", "transactions", "credit_requests", "idempotency_keys", "packages", "conversion_rates", "settings", "transactions_no_update"} {
		if !strings.Contains(","+schema+",", ","+want+",") {
			t.Errorf("schema lacks %s: %s", want, schema)
		}
	}
}

func TestMigrateRefusesUnknownNewerSchema(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, name, applied_time) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	err := Migrate(context.Background(), s.Path())
	if err == nil || !strings.Contains(err.Error(), "newer version") {
		t.Fatalf("Migrate over a newer schema: %v", err)
	}
	if _, err := s.w.Exec(`DELETE FROM schema_migrations WHERE version = 9999`); err != nil {
		t.Fatal(err)
	}
}

// TestDatabaseRefusesBadWrites proves the schema itself (CHECK, UNIQUE,
// foreign keys and triggers) refuses writes that would break the ledger,
// whatever code runs them.
func TestDatabaseRefusesBadWrites(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	seed(t, s)
	for _, tc := range []struct{ name, sql string }{
		{"update a transaction", `UPDATE transactions SET amount = 1 WHERE id = 't1'`},
		{"update a transaction's metadata", `UPDATE transactions SET metadata = '{"x":"y"}' WHERE id = 't1'`},
		{"delete a transaction", `DELETE FROM transactions WHERE id = 't1'`},
		{"delete all transactions", `DELETE FROM transactions`},
		{"negative balance", `UPDATE accounts SET balance = -1, version = version + 1 WHERE id = 'a'`},
		{"version jump", `UPDATE accounts SET version = version + 2 WHERE id = 'a'`},
		{"version back", `UPDATE accounts SET version = version - 1 WHERE id = 'a'`},
		{"account born with credits", `INSERT INTO accounts VALUES ('ws', 'b', 5, 1, NULL)`},
		{"delete an account", `DELETE FROM accounts WHERE id = 'a'`},
		{"entry breaking the chain", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'REFUND', 10, 999, 4, 0)`},
		{"entry not matching its account", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'REFUND', 10, 130, 4, 0)`},
		{"duplicate version", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'REFUND', 50, 120, 3, 0)`},
		{"entry without account", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'ghost', 'IN', 'REFUND', 10, 10, 1, 0)`},
		{"zero amount", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'REFUND', 0, 120, 4, 0)`},
		{"unknown type", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'SIDEWAYS', 'REFUND', 1, 121, 4, 0)`},
		{"unknown kind", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'GIFT', 1, 121, 4, 0)`},
		{"text in an integer column (STRICT)", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'REFUND', 'one', 121, 4, 0)`},
		{"metadata not JSON", `INSERT INTO transactions (id, workspace, account, type, kind, amount, balance_after, account_version, metadata, create_time)
			VALUES ('x', 'ws', 'a', 'IN', 'REFUND', 1, 121, 4, '{oops', 0)`},
		{"second active rate", `INSERT INTO conversion_rates (workspace, currency, seq, rate, active, create_time) VALUES ('ws', 'USD', 99, '3', 1, 0)`},
		{"edit a rate", `UPDATE conversion_rates SET rate = '5' WHERE currency = 'USD'`},
		{"reactivate a rate", `UPDATE conversion_rates SET active = 1 WHERE active = 0`},
		{"delete a rate", `DELETE FROM conversion_rates`},
		{"rate not a decimal", `INSERT INTO conversion_rates (workspace, currency, seq, rate, active, create_time) VALUES ('ws', 'EUR', 1, '1e3', 1, 0)`},
		{"decide a decided request", `UPDATE credit_requests SET status = 'REJECTED', transaction_id = NULL WHERE id = 'r2'`},
		{"reopen a decided request", `UPDATE credit_requests SET status = 'PENDING', decide_time = NULL, transaction_id = NULL WHERE id = 'r2'`},
		{"edit a decided request", `UPDATE credit_requests SET decision_reason = 'changed my mind' WHERE id = 'r2'`},
		{"accept without a transaction", `UPDATE credit_requests SET status = 'ACCEPTED', decide_time = 1 WHERE id = 'r1'`},
		{"accept with someone else's transaction", `UPDATE credit_requests SET status = 'ACCEPTED', decide_time = 1, transaction_id = 't1' WHERE id = 'r1'`},
		{"reject without a decision time", `UPDATE credit_requests SET status = 'REJECTED' WHERE id = 'r1'`},
		{"change a pending request's amount", `UPDATE credit_requests SET amount = 1, status = 'REJECTED', decide_time = 1 WHERE id = 'r1'`},
		{"insert a decided request", `INSERT INTO credit_requests (id, workspace, account, amount, payment_method, status, decide_time, create_time)
			VALUES ('r9', 'ws', 'a', 5, 'CRYPTO', 'REJECTED', 1, 0)`},
		{"request with zero amount", `INSERT INTO credit_requests (id, workspace, account, amount, payment_method, status, create_time)
			VALUES ('r9', 'ws', 'a', 0, 'CRYPTO', 'PENDING', 0)`},
		{"delete a request", `DELETE FROM credit_requests WHERE id = 'r1'`},
		{"rewrite an idempotency record", `UPDATE idempotency_keys SET transaction_id = 't2' WHERE key = 'k-t1'`},
		{"delete an idempotency record", `DELETE FROM idempotency_keys`},
		{"idempotency record of a missing transaction", `INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, create_time)
			VALUES ('ws', 'k9', 'credit', x'00', 'nope', 0)`},
		{"package with zero credits", `UPDATE packages SET credits = 0 WHERE id = 'p1'`},
		{"package with a billion nanos", `UPDATE packages SET price_nanos = 1000000000 WHERE id = 'p1'`},
		{"package with a negative price", `UPDATE packages SET price_units = -1 WHERE id = 'p1'`},
		{"package with a lower-case currency", `UPDATE packages SET price_currency = 'usd' WHERE id = 'p1'`},
		{"delete a package", `DELETE FROM packages WHERE id = 'p1'`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.w.ExecContext(context.Background(), tc.sql)
			if err == nil {
				t.Fatal("the database accepted it")
			}
			if c := sqliteCode(err); c&0xff != 19 { // SQLITE_CONSTRAINT
				t.Fatalf("want a constraint violation, got %v (code %d)", err, c)
			}
		})
	}
	rep := verifyLedger(t, s)
	if rep.Transactions != 3 || rep.Requests != 2 || rep.Keys != 2 {
		t.Fatalf("the refused writes changed something: %+v", rep)
	}
}

func TestAppendTransactionChecksTheChain(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	seed(t, s) // a at v3, balance 120
	for _, tc := range []struct {
		name string
		tr   ledger.Transaction
	}{
		{"stale version", entry("x", "a", ledger.TypeIn, 10, 110, 3)},
		{"future version", entry("x", "a", ledger.TypeIn, 10, 130, 5)},
		{"wrong balance_after on IN", entry("x", "a", ledger.TypeIn, 10, 131, 4)},
		{"wrong balance_after on OUT", entry("x", "a", ledger.TypeOut, 10, 111, 4)},
		{"IN recorded as OUT", entry("x", "a", ledger.TypeOut, 10, 130, 4)},
		{"version 2 of a new account", entry("x", "new", ledger.TypeIn, 10, 10, 2)},
		{"version 1 of an existing account", entry("x", "a", ledger.TypeIn, 10, 10, 1)},
		{"new account not starting at zero", entry("x", "new", ledger.TypeIn, 10, 15, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
				err := tx.AppendTransaction(ctx, tc.tr)
				if !errors.Is(err, ledger.ErrConflict) {
					t.Errorf("AppendTransaction: %v, want ErrConflict", err)
				}
				// The refused append left nothing behind, even inside the transaction.
				if a, err := tx.Account(ctx, "ws", tc.tr.Account); err != nil || (tc.tr.Account == "new" && a.Version != 0) {
					t.Errorf("after the refused append: %+v %v", a, err)
				}
				accts, err := tx.ListAccounts(ctx, ledger.AccountQuery{Workspace: "ws", Limit: 10})
				if err != nil || len(accts) != 1 {
					t.Errorf("accounts after the refused append: %+v %v", accts, err)
				}
				return nil // commit whatever is left: there must be nothing
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	// An overdraft that "balances" is refused by CHECK (balance >= 0).
	err := s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
		return tx.AppendTransaction(ctx, entry("x", "a", ledger.TypeOut, 200, -80, 4))
	})
	if err == nil {
		t.Fatal("overdraft accepted")
	}
	// A valid append still works.
	mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
		return tx.AppendTransaction(ctx, entry("t4", "a", ledger.TypeOut, 120, 0, 4))
	})
	verifyLedger(t, s)
}

func TestDecideRequestOnlyOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	seed(t, s)
	decide := func(id string, st ledger.RequestStatus) error {
		return s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
			return tx.DecideRequest(ctx, ledger.CreditRequest{Workspace: "ws", ID: id, Status: st, DecidedBy: "b", DecideTime: t0})
		})
	}
	if err := decide("r2", ledger.StatusRejected); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("deciding an accepted request: %v, want ErrConflict", err)
	}
	if err := decide("r1", ledger.StatusRejected); err != nil {
		t.Fatalf("rejecting a pending request: %v", err)
	}
	if err := decide("r1", ledger.StatusRejected); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("rejecting twice: %v, want ErrConflict", err)
	}
	if err := decide("missing", ledger.StatusRejected); !errors.Is(err, ledger.ErrConflict) {
		t.Fatalf("deciding a missing request: %v, want ErrConflict", err)
	}
	verifyLedger(t, s)
}

func TestErrorMapping(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	seed(t, s)
	ctx := context.Background()

	t.Run("duplicate idempotency key is ErrConflict", func(t *testing.T) {
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			return tx.PutIdempotency(ctx, ledger.IdempotencyRecord{
				Workspace: "ws", Key: "k-t1", Operation: ledger.OpCredit, Fingerprint: []byte{9}, TransactionID: "t2", CreateTime: t0,
			})
		})
		if !errors.Is(err, ledger.ErrConflict) {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(ledger.ErrorOf(err).Message, "INSERT") {
			t.Fatalf("SQL text in the message: %q", ledger.ErrorOf(err).Message)
		}
	})
	t.Run("same key in another workspace is fine", func(t *testing.T) {
		mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
			if err := tx.InsertRequest(ctx, ledger.CreditRequest{
				ID: "q", Workspace: "ws2", Account: "a", Amount: 1,
				PaymentMethod: ledger.MethodCrypto, Status: ledger.StatusPending, CreateTime: t0,
			}); err != nil {
				return err
			}
			return tx.PutIdempotency(ctx, ledger.IdempotencyRecord{
				Workspace: "ws2", Key: "k-t1", Operation: ledger.OpSubmitRequest, Fingerprint: []byte{9}, RequestID: "q", CreateTime: t0,
			})
		})
	})
	t.Run("duplicate package is ErrAlreadyExists", func(t *testing.T) {
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			return tx.InsertPackage(ctx, ledger.Package{
				Workspace: "ws", ID: "p1", DisplayName: "x", Credits: 1,
				Price: ledger.Money{Currency: "EUR"}, Active: true, CreateTime: t0,
			})
		})
		if !errors.Is(err, ledger.ErrAlreadyExists) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unknown rows are ErrNotFound", func(t *testing.T) {
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			_, err1 := tx.Transaction(ctx, "ws", "nope")
			_, err2 := tx.Request(ctx, "ws", "nope")
			_, err3 := tx.Package(ctx, "ws", "nope")
			_, err4 := tx.ActiveRate(ctx, "ws", "EUR")
			_, err5 := tx.Transaction(ctx, "other", "t1") // another workspace's row
			for i, err := range []error{err1, err2, err3, err4, err5} {
				if !errors.Is(err, ledger.ErrNotFound) {
					t.Errorf("read %d: %v, want ErrNotFound", i+1, err)
				}
			}
			return nil
		})
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			return tx.UpdatePackage(ctx, ledger.Package{Workspace: "ws", ID: "nope", DisplayName: "x", Credits: 1, Price: ledger.Money{Currency: "EUR"}})
		})
		if !errors.Is(err, ledger.ErrNotFound) {
			t.Errorf("UpdatePackage of a missing package: %v", err)
		}
	})
	t.Run("unknown account and settings read as defaults", func(t *testing.T) {
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			a, err := tx.Account(ctx, "ws", "nobody")
			if err != nil || a != (ledger.Account{Workspace: "ws", ID: "nobody"}) {
				t.Errorf("unknown account: %+v %v", a, err)
			}
			st, err := tx.Settings(ctx, "ws")
			if err != nil || st != (ledger.Settings{Workspace: "ws"}) {
				t.Errorf("unset settings: %+v %v", st, err)
			}
			_, found, err := tx.Idempotency(ctx, "ws", "nope")
			if err != nil || found {
				t.Errorf("unknown key: %v %v", found, err)
			}
			return nil
		})
	})
	t.Run("fn's error comes back unchanged and rolls back", func(t *testing.T) {
		sentinel := &ledger.Error{Code: ledger.CodeFailedPrecondition, Reason: "TEST"}
		err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
			if err := tx.PutSettings(ctx, ledger.Settings{Workspace: "rolled-back", CreditPaymentsEnabled: true, UpdateTime: t0}); err != nil {
				return err
			}
			return sentinel
		})
		if err != sentinel { //nolint:errorlint // identity is the point
			t.Fatalf("got %v, want the sentinel itself", err)
		}
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			if st, _ := tx.Settings(ctx, "rolled-back"); st.CreditPaymentsEnabled {
				t.Error("fn's writes were committed")
			}
			return nil
		})
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Update(cctx, func(context.Context, ledger.Tx) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("Update: %v", err)
		}
		if err := s.View(cctx, func(context.Context, ledger.ReadTx) error { return nil }); !errors.Is(err, context.Canceled) {
			t.Errorf("View: %v", err)
		}
		cctx, cancel = context.WithCancel(ctx)
		err := s.Update(cctx, func(ctx context.Context, tx ledger.Tx) error {
			cancel()
			_, err := tx.Account(ctx, "ws", "a")
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancel inside Update: %v", err)
		}
	})
	t.Run("write lock held elsewhere is ErrConflict", func(t *testing.T) {
		impatient := openAt(t, s.Path(), Options{BusyTimeout: 20 * time.Millisecond})
		other, err := sql.Open("sqlite", dsn(s.Path(), time.Second, false))
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		hold, err := other.BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
		if err != nil {
			t.Fatal(err)
		}
		defer hold.Rollback()
		err = impatient.Update(ctx, func(ctx context.Context, tx ledger.Tx) error { return nil })
		if !errors.Is(err, ledger.ErrConflict) {
			t.Fatalf("got %v, want ErrConflict", err)
		}
		// Readers are not blocked by a writer.
		mustView(t, impatient, func(ctx context.Context, tx ledger.ReadTx) error {
			_, err := tx.Account(ctx, "ws", "a")
			return err
		})
	})
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	t.Parallel()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "c.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Ping":   s.Ping(ctx),
		"View":   s.View(ctx, func(context.Context, ledger.ReadTx) error { return nil }),
		"Update": s.Update(ctx, func(context.Context, ledger.Tx) error { return nil }),
	} {
		if e := ledger.ErrorOf(err); e.Code != ledger.CodeUnavailable {
			t.Errorf("%s after Close: %v, want unavailable", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	zone := time.FixedZone("X", 5*3600)
	tr := ledger.Transaction{
		ID: "tr", Workspace: "ws", Account: "acc", Type: ledger.TypeIn, Kind: ledger.KindPurchase, Amount: 1<<62 + 5,
		BalanceAfter: 1<<62 + 5, AccountVersion: 1, Reference: "stripe:pi_1", IdempotencyKey: "key",
		Metadata: map[string]string{"a": "1", "ü": "\"quoted\""}, PackageID: "pkg", CreateTime: t0.In(zone),
	}
	bare := ledger.Transaction{
		ID: "bare", Workspace: "ws", Account: "acc", Type: ledger.TypeOut, Kind: ledger.KindServicePurchase, Amount: 5,
		BalanceAfter: 1 << 62, AccountVersion: 2, Metadata: map[string]string{}, CreateTime: t0,
	}
	req := ledger.CreditRequest{
		ID: "req", Workspace: "ws", Account: "acc", Amount: 7, PackageID: "pkg", PaymentMethod: ledger.MethodCrypto,
		PaymentReference: "0xabc", Note: "n", Status: ledger.StatusPending, Metadata: map[string]string{"k": "v"},
		IdempotencyKey: "s", CreateTime: t0,
	}
	pkg := ledger.Package{
		Workspace: "ws", ID: "pkg", DisplayName: "Gold", Credits: 3, Price: ledger.Money{Currency: "EUR", Units: 1, Nanos: 999_999_999},
		Active: false, CreateTime: t0, UpdateTime: t0.Add(time.Microsecond),
	}
	rec := ledger.IdempotencyRecord{Workspace: "ws", Key: "key", Operation: ledger.OpCredit, Fingerprint: []byte{0, 1, 255}, TransactionID: "tr", CreateTime: t0}
	st := ledger.Settings{Workspace: "ws", CreditPaymentsEnabled: true, UpdateTime: t0}
	mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
		for _, f := range []func() error{
			func() error { return tx.AppendTransaction(ctx, tr) },
			func() error { return tx.AppendTransaction(ctx, bare) },
			func() error { return tx.InsertRequest(ctx, req) },
			func() error { return tx.InsertPackage(ctx, pkg) },
			func() error { return tx.PutIdempotency(ctx, rec) },
			func() error { return tx.PutSettings(ctx, st) },
			func() error {
				return tx.InsertRate(ctx, ledger.ConversionRate{Workspace: "ws", Currency: "EUR", Rate: ledger.Decimal{Mantissa: 95, Scale: 1}, Active: true, CreateTime: t0})
			},
			func() error {
				return tx.InsertRate(ctx, ledger.ConversionRate{Workspace: "ws", Currency: "EUR", Rate: ledger.Decimal{Mantissa: 1, Scale: 9}, Active: true, CreateTime: t0.Add(time.Second)})
			},
		} {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	})
	timeEq := cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		got, err := tx.Transaction(ctx, "ws", "tr")
		if err != nil {
			return err
		}
		if got.CreateTime.Location() != time.UTC {
			t.Errorf("create_time read back in %v, want UTC", got.CreateTime.Location())
		}
		if d := cmp.Diff(tr, got, timeEq); d != "" {
			t.Errorf("transaction (-put +got):\n%s", d)
		}
		gotBare, err := tx.Transaction(ctx, "ws", "bare")
		if err != nil {
			return err
		}
		if gotBare.Metadata != nil || gotBare.PackageID != "" || gotBare.RequestID != "" || gotBare.Reference != "" {
			t.Errorf("empty fields: %+v", gotBare)
		}
		gotReq, err := tx.Request(ctx, "ws", "req")
		if err != nil {
			return err
		}
		if d := cmp.Diff(req, gotReq, timeEq); d != "" || !gotReq.DecideTime.IsZero() {
			t.Errorf("request (-put +got):\n%s", d)
		}
		gotPkg, err := tx.Package(ctx, "ws", "pkg")
		if err != nil {
			return err
		}
		if d := cmp.Diff(pkg, gotPkg, timeEq); d != "" {
			t.Errorf("package (-put +got):\n%s", d)
		}
		gotRec, found, err := tx.Idempotency(ctx, "ws", "key")
		if err != nil || !found {
			return fmt.Errorf("idempotency (found %v): %w", found, err)
		}
		if d := cmp.Diff(rec, gotRec, timeEq); d != "" {
			t.Errorf("idempotency (-put +got):\n%s", d)
		}
		gotSt, err := tx.Settings(ctx, "ws")
		if err != nil {
			return err
		}
		if d := cmp.Diff(st, gotSt, timeEq); d != "" {
			t.Errorf("settings (-put +got):\n%s", d)
		}
		acct, err := tx.Account(ctx, "ws", "acc")
		if err != nil || acct.Balance != 1<<62 || acct.Version != 2 || !acct.UpdateTime.Equal(t0) {
			t.Errorf("account: %+v %v", acct, err)
		}
		rates, err := tx.ListRates(ctx, "ws", true)
		if err != nil {
			return err
		}
		if len(rates) != 2 || rates[0].Rate.String() != "0.000000001" || !rates[0].Active || rates[1].Rate.String() != "9.5" || rates[1].Active {
			t.Errorf("rate history: %+v", rates)
		}
		active, err := tx.ActiveRate(ctx, "ws", "EUR")
		if err != nil || active.Rate.String() != "0.000000001" || !active.CreateTime.Equal(t0.Add(time.Second)) {
			t.Errorf("active rate: %+v %v", active, err)
		}
		return nil
	})
}

// TestViewIsAReadOnlySnapshot: a View sees the database as of its first
// read, whatever commits meanwhile, and cannot write.
func TestViewIsAReadOnlySnapshot(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	seed(t, s)
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		before, err := tx.Account(ctx, "ws", "a")
		if err != nil {
			return err
		}
		mustUpdate(t, s, func(ctx context.Context, tx ledger.Tx) error {
			return tx.AppendTransaction(ctx, entry("t4", "a", ledger.TypeIn, 1, 121, 4))
		})
		after, err := tx.Account(ctx, "ws", "a")
		if err != nil {
			return err
		}
		hist, err := tx.ListTransactions(ctx, ledger.TransactionQuery{Workspace: "ws", Account: "a", Limit: 10})
		if err != nil {
			return err
		}
		if after != before || len(hist) != 3 {
			t.Errorf("the snapshot moved: %+v → %+v, %d entries", before, after, len(hist))
		}
		if _, err := tx.(*readTx).tx.ExecContext(ctx, `INSERT INTO settings VALUES ('x', 1, NULL)`); err == nil {
			t.Error("a View wrote")
		}
		return nil
	})
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		if a, err := tx.Account(ctx, "ws", "a"); err != nil || a.Version != 4 {
			t.Errorf("a new View does not see the commit: %+v %v", a, err)
		}
		return nil
	})
}

func TestIntegrityCheckFindsBrokenForeignKeys(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	seed(t, s)
	if err := s.IntegrityCheck(context.Background()); err != nil {
		t.Fatalf("fresh store: %v", err)
	}
	// A connection without foreign_keys, as a careless tool would open it.
	raw, err := sql.Open("sqlite", "file:"+s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`INSERT INTO idempotency_keys (workspace, key, operation, fingerprint, transaction_id, create_time)
		VALUES ('ws', 'orphan', 'credit', x'00', 'missing', 0)`); err != nil {
		t.Fatal(err)
	}
	if err := s.IntegrityCheck(context.Background()); err == nil || !strings.Contains(err.Error(), "idempotency_keys") {
		t.Fatalf("IntegrityCheck: %v", err)
	}
	// Repair so that the cleanup check passes: the trigger forbids DELETE,
	// so drop it for the repair only.
	if _, err := raw.Exec(`DROP TRIGGER idempotency_keys_no_delete; DELETE FROM idempotency_keys WHERE key = 'orphan'`); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentAppends: 16 goroutines, on two stores sharing one file (as
// two processes would), append to one account. Half read the account in a
// View and append optimistically (a stale read must come back as
// ErrConflict), half read it inside Update. The result is versions 1..n
// with a consistent chain.
func TestConcurrentAppends(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	stores := []*Store{openAt(t, path, Options{}), openAt(t, path, Options{})}
	const workers, perWorker = 16, 6
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	conflicts := 0
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := stores[w%2]
			optimistic := w%4 < 2
			for i := 0; i < perWorker; {
				var acct ledger.Account
				if optimistic {
					if err := s.View(ctx, func(ctx context.Context, tx ledger.ReadTx) (err error) {
						acct, err = tx.Account(ctx, "ws", "hot")
						return err
					}); err != nil {
						errs <- err
						return
					}
				}
				err := s.Update(ctx, func(ctx context.Context, tx ledger.Tx) error {
					a := acct
					if !optimistic {
						var err error
						if a, err = tx.LockAccount(ctx, "ws", "hot"); err != nil {
							return err
						}
					}
					tr := entry(fmt.Sprintf("w%d-%d", w, i), "hot", ledger.TypeIn, int64(w+1), a.Balance+int64(w+1), a.Version+1)
					if a.Balance >= int64(w+1) && i%2 == 1 {
						tr.Type, tr.BalanceAfter = ledger.TypeOut, a.Balance-int64(w+1)
					}
					return tx.AppendTransaction(ctx, tr)
				})
				switch {
				case err == nil:
					i++
				case errors.Is(err, ledger.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
					runtime.Gosched()
				default:
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep := verifyLedger(t, stores[0])
	if rep.Transactions != workers*perWorker {
		t.Fatalf("%d entries, want %d", rep.Transactions, workers*perWorker)
	}
	mustView(t, stores[1], func(ctx context.Context, tx ledger.ReadTx) error {
		a, err := tx.Account(ctx, "ws", "hot")
		if err != nil || a.Version != workers*perWorker {
			t.Errorf("account: %+v %v", a, err)
		}
		return err
	})
	t.Logf("%d conflicts retried", conflicts)
}

func TestStatsForMetrics(t *testing.T) {
	t.Parallel()
	s := newStore(t)
	n, oldest, err := s.PendingRequestStats(context.Background())
	if err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("empty store: %d %v %v", n, oldest, err)
	}
	seed(t, s) // r1 pending since t0, r2 accepted
	n, oldest, err = s.PendingRequestStats(context.Background())
	if err != nil || n != 1 || !oldest.Equal(t0) {
		t.Fatalf("seeded store: %d %v %v", n, oldest, err)
	}
	if _, _, maxConns, _ := s.PoolStats(); maxConns < 2 {
		t.Fatalf("PoolStats max connections %d", maxConns)
	}
}
