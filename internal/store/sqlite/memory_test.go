package sqlite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Each Memory store is a database of its own, shared by all of the
// store's connections, and gone once the store is closed.
func TestMemoryStoresArePrivateAndVanishAtClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, err := Open(ctx, Memory, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() }) // a second Close is harmless
	b := openAt(t, Memory, Options{})
	seed(t, a)
	if a.Path() == b.Path() || a.Path() == Memory {
		t.Errorf("paths %q and %q: want two distinct files", a.Path(), b.Path())
	}
	// Written through the writer, read through the readers' pool.
	mustView(t, a, func(ctx context.Context, tx ledger.ReadTx) error {
		if acct, err := tx.Account(ctx, "ws", "a"); err != nil || acct.Balance != 120 || acct.Version != 3 {
			t.Errorf("seeded account read back as %+v, %v", acct, err)
		}
		return nil
	})
	mustView(t, b, func(ctx context.Context, tx ledger.ReadTx) error {
		if acct, err := tx.Account(ctx, "ws", "a"); err != nil || acct.Version != 0 {
			t.Errorf("another in-memory store sees %+v, %v; want nothing", acct, err)
		}
		return nil
	})
	if fi, err := os.Stat(filepath.Dir(a.Path())); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the store's directory: %v, %v; want owner-only", fi, err)
	}
	if err := a.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(a.Path())); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Close the store's directory is still there: %v", err)
	}
}

// An in-memory store has the file store's durability settings and
// connections: one writer, query-only readers that read a snapshot.
func TestMemoryStoreKeepsTheFileSemantics(t *testing.T) {
	t.Parallel()
	s := openAt(t, Memory, Options{})
	if err := checkPragmas(context.Background(), s.w); err != nil {
		t.Errorf("writer: %v", err)
	}
	if err := checkPragmas(context.Background(), s.r); err != nil {
		t.Errorf("readers: %v", err)
	}
	if n := s.w.Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer pool of %d connections, want 1", n)
	}
	seed(t, s)
	// A View open while a batch commits keeps its snapshot, without
	// waiting for the writer.
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		before, err := tx.Account(ctx, "ws", "a")
		if err != nil {
			return err
		}
		t4 := entry("t4", "a", ledger.TypeIn, 1, 121, 4)
		mustWrite(t, s, &ledger.Effects{Accounts: []ledger.AccountMove{move(3, t4)}, Transactions: []ledger.Transaction{t4}})
		if after, err := tx.Account(ctx, "ws", "a"); err != nil || after != before {
			t.Errorf("the snapshot moved: %+v → %+v (%v)", before, after, err)
		}
		return nil
	})
}

func TestMigrateRefusesMemory(t *testing.T) {
	t.Parallel()
	if err := Migrate(context.Background(), Memory); err == nil {
		t.Error("Migrate(Memory) succeeded")
	}
	if _, err := os.Stat(Memory); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file named %q was created: %v", Memory, err)
	}
}
