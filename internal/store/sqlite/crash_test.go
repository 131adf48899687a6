package sqlite

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/creditledger/creditledger/internal/ledger"
)

// crashChildEnv makes the test binary a writer process for
// TestAcknowledgedWritesSurviveSIGKILL instead of running the tests.
const crashChildEnv = "CREDITLEDGER_SQLITE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(crashChildEnv); spec != "" {
		os.Exit(crashChild(spec))
	}
	os.Exit(m.Run())
}

// crashChild posts credits and debits until it is killed, printing the ID
// of every transaction whose operation returned (was acknowledged).
func crashChild(spec string) int {
	path, round, _ := strings.Cut(spec, "|")
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	svc := ledger.NewService(s)
	if _, err := svc.UpdateSettings(ctx, "crash", ledger.Settings{CreditPaymentsEnabled: true}, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	for i := 0; ; i++ {
		key := fmt.Sprintf("%s-%d", round, i)
		var res ledger.PostResult
		if i%3 == 2 {
			res, err = svc.Debit(ctx, ledger.DebitInput{Workspace: "crash", Account: "acct", Amount: 1, IdempotencyKey: key})
		} else {
			res, err = svc.Credit(ctx, ledger.CreditInput{Workspace: "crash", Account: "acct", Amount: int64(1 + i%5), IdempotencyKey: key})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 3
		}
		fmt.Printf("ack %s %d\n", res.Transaction.ID, res.Version)
	}
}

// TestAcknowledgedWritesSurviveSIGKILL kills a writer process at arbitrary
// points and checks that every write it acknowledged is in the file, that
// the ledger is consistent and that SQLite finds the file intact.
func TestAcknowledgedWritesSurviveSIGKILL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "crash.db")
	total := 0
	for round, killAfter := range []int{1, 9, 23, 40} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%d", crashChildEnv, path, round))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var acked []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			id, _, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "ack "), " ")
			if !ok {
				continue
			}
			acked = append(acked, id)
			if len(acked) == killAfter {
				_ = cmd.Process.Kill() // SIGKILL: no deferred function, no Close
			}
		}
		err = cmd.Wait()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Exited() {
			t.Fatalf("round %d: writer ended with %v, want killed by a signal; stderr: %s", round, err, stderr.String())
		}
		total += len(acked)

		s, err := Open(context.Background(), path, Options{})
		if err != nil {
			t.Fatalf("round %d: reopen after the kill: %v", round, err)
		}
		mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
			for _, id := range acked {
				if _, err := tx.Transaction(ctx, "crash", id); err != nil {
					t.Errorf("round %d: acknowledged transaction %s lost: %v", round, id, err)
				}
			}
			return nil
		})
		rep := verifyLedger(t, s)
		if err := s.IntegrityCheck(context.Background()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: killed after %d acknowledgements (%d read), %d entries in the file", round, killAfter, len(acked), rep.Transactions)
	}
	if total == 0 {
		t.Fatal("no write was acknowledged")
	}
}
