package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
)

// TestCrossWorkspaceTasksSpanEveryWorkspace: the metrics gauges and Verify
// read each workspace in a transaction of its own (more workspaces than
// one pipeline holds, here), as the runtime role under row-level security,
// and still sum over every workspace and report a problem of the last one.
func TestCrossWorkspaceTasksSpanEveryWorkspace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, Options{})
	n := workspacesPerRoundTrip + 2
	var last string
	for i := range n {
		w := fmt.Sprintf("w%03d", i)
		last = w
		req := pending("r1", "a", int64(i+1))
		req.Workspace, req.CreateTime = w, at(int64(n-i))
		eff := &ledger.Effects{NewRequests: []ledger.CreditRequest{req}}
		if i == 0 || i == n-1 {
			// An account for seedHolds.
			t1, acct := entry("t1", "a", ledger.TypeIn, 100, 100, 1), create("a", 100, 1)
			t1.Workspace, acct.Workspace = w, w
			eff.Accounts, eff.Transactions = []ledger.AccountMove{acct}, []ledger.Transaction{t1}
		}
		mustWrite(t, s, ledger.WriteSet{Workspace: w, Accounts: []string{"a"}}, eff)
	}

	count, oldest, err := s.PendingRequestStats(ctx)
	if err != nil || count != int64(n) || !oldest.Equal(at(1)) {
		t.Errorf("PendingRequestStats = %d, %v, %v; want %d, %v", count, oldest, err, n, at(1))
	}
	seedHolds(t, s, "w000")
	seedHolds(t, s, last)
	active, held, err := s.HoldStats(ctx)
	if err != nil || active != 2 || held != 60 {
		t.Errorf("HoldStats = %d, %d, %v; want 2 holds of 30 (h1 of w000 and of %s)", active, held, err, last)
	}

	if rep := verifyLedger(t, s); rep.Workspaces != n || rep.Requests != n {
		t.Fatalf("Verify saw %d workspaces and %d requests, want %d of each", rep.Workspaces, rep.Requests, n)
	}
	// An event past the counter of the last workspace, as only the owner
	// could write it.
	if err := rawTx(s, `SET LOCAL creditledger.workspace = '`+last+`';
		INSERT INTO event_batches (workspace, last_sequence, first_sequence, types, accounts, create_times, data)
		VALUES ('`+last+`', 3, 3, '{settings.updated}', '{""}', ARRAY[now()], ARRAY['{}'::bytea])`); err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Workspaces != n || len(rep.Problems) != 2 {
		t.Fatalf("Verify: %d workspaces, problems %v; want %d workspaces and 2 problems of %s", rep.Workspaces, rep.Problems, n, last)
	}
	for _, p := range rep.Problems {
		if !strings.HasPrefix(p, last+": ") {
			t.Errorf("problem %q does not name %s", p, last)
		}
	}
}
