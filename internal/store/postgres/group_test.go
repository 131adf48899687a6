package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// txid returns the database transaction fn runs in.
func txid(ctx context.Context, tx ledger.Tx) (int64, error) {
	var id int64
	err := tx.(*writeTx).one(ctx, `SELECT txid_current()`, nil, &id)
	return id, err
}

// inOneGroup runs fns as concurrent Update calls that the store applies in
// one group: a first call holds the only worker until all of fns are queued.
func inOneGroup(t *testing.T, s *Store, fns []func(ctx context.Context, tx ledger.Tx) error) []error {
	t.Helper()
	hold, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held
	errs := make([]error, len(fns))
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("panic: %v", p)
				}
			}()
			errs[i] = s.Update(context.Background(), fn)
		}()
		// Queue in order.
		for deadline := time.Now().Add(5 * time.Second); len(s.group.queue) < i+1; {
			if time.Now().After(deadline) {
				t.Fatalf("call %d never queued", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
	close(hold)
	wg.Wait()
	return errs
}

// groupStore is a store with group commit and a single worker.
func groupStore(t *testing.T) *Store {
	t.Helper()
	return newStore(t, Options{GroupCommit: true, MaxConns: 2})
}

func setting(ws string) func(ctx context.Context, tx ledger.Tx) error {
	return func(ctx context.Context, tx ledger.Tx) error {
		return tx.PutSettings(ctx, ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: t0})
	}
}

func enabled(t *testing.T, s *Store, ws string) bool {
	t.Helper()
	var on bool
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		st, err := tx.Settings(ctx, ws)
		on = st.CreditPaymentsEnabled
		return err
	})
	return on
}

func TestGroupCommitGivesEachCallItsOutcome(t *testing.T) {
	t.Parallel()
	s := groupStore(t)
	seed(t, s)
	mine := errors.New("mine")
	var mu sync.Mutex
	ids := map[string][]int64{}
	record := func(name string, ctx context.Context, tx ledger.Tx) error {
		id, err := txid(ctx, tx)
		mu.Lock()
		ids[name] = append(ids[name], id)
		mu.Unlock()
		return err
	}
	conflicted := false
	errs := inOneGroup(t, s, []func(ctx context.Context, tx ledger.Tx) error{
		func(ctx context.Context, tx ledger.Tx) error { // commits
			if err := record("ok1", ctx, tx); err != nil {
				return err
			}
			return setting("ok1")(ctx, tx)
		},
		func(ctx context.Context, tx ledger.Tx) error { // fn's error: its write is undone
			if err := setting("failed")(ctx, tx); err != nil {
				return err
			}
			return mine
		},
		func(ctx context.Context, tx ledger.Tx) error { // a failed statement, then commits nothing
			if err := setting("dup")(ctx, tx); err != nil {
				return err
			}
			return tx.InsertPackage(ctx, ledger.Package{
				Workspace: "ws", ID: "p1", DisplayName: "Again", Credits: 1, Price: ledger.Money{Currency: "USD"}, Active: true, CreateTime: t0,
			})
		},
		func(ctx context.Context, tx ledger.Tx) error { // conflicts once, then runs alone
			if err := record("conflict", ctx, tx); err != nil {
				return err
			}
			if err := setting("conflict")(ctx, tx); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			if !conflicted {
				conflicted = true
				return ledger.ErrConflict
			}
			return nil
		},
		func(ctx context.Context, tx ledger.Tx) error { // sees the writes before it in the group
			if err := record("ok2", ctx, tx); err != nil {
				return err
			}
			st, err := tx.Settings(ctx, "ok1")
			if err != nil {
				return err
			}
			if !st.CreditPaymentsEnabled {
				return errors.New("the earlier call's write is not visible")
			}
			if st, _ := tx.Settings(ctx, "failed"); st.CreditPaymentsEnabled {
				return errors.New("the failed call's write is visible")
			}
			return setting("ok2")(ctx, tx)
		},
	})
	if errs[0] != nil || errs[4] != nil || errs[3] != nil {
		t.Fatalf("errors %v", errs)
	}
	if errs[1] != mine { //nolint:errorlint // the very same value
		t.Fatalf("fn's error: %v", errs[1])
	}
	if !errors.Is(errs[2], ledger.ErrAlreadyExists) {
		t.Fatalf("duplicate package: %v", errs[2])
	}
	for ws, want := range map[string]bool{"ok1": true, "ok2": true, "conflict": true, "failed": false, "dup": false} {
		if got := enabled(t, s, ws); got != want {
			t.Errorf("%s enabled %v, want %v", ws, got, want)
		}
	}
	if ids["ok1"][0] != ids["ok2"][0] || ids["ok1"][0] != ids["conflict"][0] {
		t.Errorf("not one group: %v", ids)
	}
	if len(ids["conflict"]) != 2 || ids["conflict"][1] == ids["conflict"][0] {
		t.Errorf("the conflicted call did not run again alone: %v", ids)
	}
	verifyLedger(t, s)
}

func TestGroupCommitFailureReachesEveryCall(t *testing.T) {
	t.Parallel()
	s := groupStore(t)
	seed(t, s)
	errs := inOneGroup(t, s, []func(ctx context.Context, tx ledger.Tx) error{
		setting("a"),
		func(ctx context.Context, tx ledger.Tx) error {
			// Fine now, refused by the deferred check at commit.
			_, err := tx.(*writeTx).exec(ctx, `UPDATE accounts SET balance = balance + 5, version = version + 1 WHERE workspace = 'ws' AND id = 'a'`)
			return err
		},
		setting("b"),
	})
	for i, err := range errs {
		if err == nil || pgCode(err) != codeCheckViolation {
			t.Errorf("call %d: %v, want the commit's failure", i, err)
		}
	}
	for _, ws := range []string{"a", "b"} {
		if enabled(t, s, ws) {
			t.Errorf("%s committed", ws)
		}
	}
	verifyLedger(t, s)
}

func TestGroupCommitCancelledCallerDoesNotHurtOthers(t *testing.T) {
	t.Parallel()
	s := groupStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := inOneGroup(t, s, []func(ctx context.Context, tx ledger.Tx) error{
		setting("a"),
		func(_ context.Context, tx ledger.Tx) error {
			cancel() // the caller gives up halfway
			return setting("cancelled")(ctx, tx)
		},
		setting("b"),
	})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if !errors.Is(errs[1], context.Canceled) {
		t.Fatalf("cancelled call: %v", errs[1])
	}
	if !enabled(t, s, "a") || !enabled(t, s, "b") || enabled(t, s, "cancelled") {
		t.Fatal("wrong writes survived")
	}
}

func TestGroupCommitPanicReachesItsCaller(t *testing.T) {
	t.Parallel()
	s := groupStore(t)
	errs := inOneGroup(t, s, []func(ctx context.Context, tx ledger.Tx) error{
		setting("a"),
		func(ctx context.Context, tx ledger.Tx) error {
			if err := setting("panicked")(ctx, tx); err != nil {
				return err
			}
			panic("boom")
		},
		setting("b"),
	})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("errors %v", errs)
	}
	if errs[1] == nil || errs[1].Error() != "panic: boom" {
		t.Fatalf("panicking call: %v", errs[1])
	}
	if !enabled(t, s, "a") || !enabled(t, s, "b") || enabled(t, s, "panicked") {
		t.Fatal("wrong writes survived")
	}
}

func TestGroupCommitManyCallers(t *testing.T) {
	t.Parallel()
	s := newStore(t, Options{GroupCommit: true, MaxConns: 3})
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- s.Update(context.Background(), func(ctx context.Context, tx ledger.Tx) error {
				if i%10 == 0 {
					return fmt.Errorf("refused %d", i)
				}
				return setting(fmt.Sprintf("w%03d", i))(ctx, tx)
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != n/10 {
		t.Fatalf("%d calls failed, want %d", failed, n/10)
	}
	var count int
	if err := s.Pool().QueryRow(context.Background(), `SELECT count(*) FROM settings`).Scan(&count); err != nil || count != n-n/10 {
		t.Fatalf("%d settings rows, want %d (%v)", count, n-n/10, err)
	}
}

func TestSwallowedStatementErrorIsNotCommitted(t *testing.T) {
	t.Parallel()
	swallow := func(ctx context.Context, tx ledger.Tx) error {
		if err := setting("swallowed")(ctx, tx); err != nil {
			return err
		}
		_ = tx.InsertPackage(ctx, ledger.Package{ // fails: p1 exists
			Workspace: "ws", ID: "p1", DisplayName: "Again", Credits: 1, Price: ledger.Money{Currency: "USD"}, Active: true, CreateTime: t0,
		})
		return nil
	}
	t.Run("alone", func(t *testing.T) {
		t.Parallel()
		s := newStore(t, Options{})
		seed(t, s)
		if err := s.Update(context.Background(), swallow); err == nil {
			t.Fatal("Update succeeded")
		}
		if enabled(t, s, "swallowed") {
			t.Fatal("committed")
		}
	})
	t.Run("group", func(t *testing.T) {
		t.Parallel()
		s := groupStore(t)
		seed(t, s)
		errs := inOneGroup(t, s, []func(ctx context.Context, tx ledger.Tx) error{setting("a"), swallow, setting("b")})
		if errs[0] != nil || errs[1] == nil || errs[2] != nil {
			t.Fatalf("errors %v", errs)
		}
		if !enabled(t, s, "a") || !enabled(t, s, "b") || enabled(t, s, "swallowed") {
			t.Fatal("wrong writes survived")
		}
	})
}
