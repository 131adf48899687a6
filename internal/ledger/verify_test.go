package ledger_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/sqlite"
)

// auditedStore is a store Verify can walk.
type auditedStore interface {
	ledger.Store
	ledger.Auditor
}

// viewSpy wraps a store: it records which workspaces each View read, and
// reports the accounts of one workspace (skew) one credit richer than they
// are, as a corrupted row would be read.
type viewSpy struct {
	auditedStore
	skew string

	mu    sync.Mutex
	views [][]string // per View, the workspaces it read
}

func (s *viewSpy) View(ctx context.Context, fn func(context.Context, ledger.ReadTx) error) error {
	var seen []string
	err := s.auditedStore.View(ctx, func(ctx context.Context, tx ledger.ReadTx) error {
		st := &spyTx{ReadTx: tx, skew: s.skew}
		err := fn(ctx, st)
		seen = st.seen
		return err
	})
	s.mu.Lock()
	s.views = append(s.views, seen)
	s.mu.Unlock()
	return err
}

func (s *viewSpy) Workspaces(ctx context.Context, tx ledger.ReadTx) ([]string, error) {
	return s.auditedStore.Workspaces(ctx, tx.(*spyTx).ReadTx)
}

func (s *viewSpy) IdempotencyRecords(ctx context.Context, tx ledger.ReadTx, ws string, fn func(ledger.IdempotencyRecord) error) error {
	st := tx.(*spyTx)
	st.saw(ws)
	return s.auditedStore.IdempotencyRecords(ctx, st.ReadTx, ws, fn)
}

// spyTx records the workspaces of the reads Verify makes per workspace.
type spyTx struct {
	ledger.ReadTx
	skew string
	seen []string
}

func (t *spyTx) saw(ws string) {
	if !slices.Contains(t.seen, ws) {
		t.seen = append(t.seen, ws)
	}
}

func (t *spyTx) ListAccounts(ctx context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	t.saw(q.Workspace)
	accts, err := t.ReadTx.ListAccounts(ctx, q)
	if q.Workspace == t.skew {
		for i := range accts {
			accts[i].Balance++
		}
	}
	return accts, err
}

func (t *spyTx) ListRequests(ctx context.Context, q ledger.RequestQuery) ([]ledger.CreditRequest, error) {
	t.saw(q.Workspace)
	return t.ReadTx.ListRequests(ctx, q)
}

func (t *spyTx) ListEvents(ctx context.Context, q ledger.EventQuery) ([]ledger.Event, error) {
	t.saw(q.Workspace)
	return t.ReadTx.ListEvents(ctx, q)
}

func (t *spyTx) LastEventSequence(ctx context.Context, ws string) (int64, error) {
	t.saw(ws)
	return t.ReadTx.LastEventSequence(ctx, ws)
}

// TestVerifyChecksEachWorkspaceInItsOwnView: Verify lists the workspaces in
// one View, then checks each in a View of its own that reads nothing of
// another workspace, and still reports a problem of the last workspace it
// checks, named by its workspace.
func TestVerifyChecksEachWorkspaceInItsOwnView(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Memory, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	svc := ledger.NewService(st)
	for _, ws := range []string{"ws-a", "ws-b"} {
		for _, acct := range []string{"x", "y"} {
			if _, err := svc.Credit(ctx, ledger.CreditInput{Workspace: ws, Account: acct, Amount: 10, IdempotencyKey: "fund"}); err != nil {
				t.Fatal(err)
			}
		}
	}

	clean := &viewSpy{auditedStore: st}
	rep, err := ledger.Verify(ctx, clean)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify: %+v, %v", rep, err)
	}
	if rep.Workspaces != 2 || rep.Accounts != 4 || rep.Transactions != 4 || rep.Keys != 4 {
		t.Errorf("Verify counted %+v, want 2 workspaces, 4 accounts, 4 transactions, 4 keys", rep)
	}
	// The listing reads no workspace's rows; then one View per workspace.
	if diff := cmp.Diff([][]string{nil, {"ws-a"}, {"ws-b"}}, clean.views); diff != "" {
		t.Errorf("workspaces read per View (-want +got):\n%s", diff)
	}

	skewed := &viewSpy{auditedStore: st, skew: "ws-b"}
	rep, err = ledger.Verify(ctx, skewed)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Workspaces != 2 || len(rep.Problems) != 2 {
		t.Fatalf("Verify of a ledger with ws-b skewed: %+v, want 2 workspaces and 2 problems", rep)
	}
	for _, p := range rep.Problems {
		if !strings.HasPrefix(p, "ws-b/") {
			t.Errorf("problem %q does not name ws-b", p)
		}
	}
}
