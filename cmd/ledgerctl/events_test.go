package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledgertest"
)

// lockedBuffer is an output the command writes while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// activity gives the workspace a few events: settings, a credit, a
// fund, a hold created. A reference that could forge an output line is
// refused by the ledger and writes no event.
func activity(t *testing.T, f *ledgertest.Server) {
	t.Helper()
	mustCtl(t, f.Addr, "settings", "set", "--credit-payments", "on") // 1
	if _, errOut, code := ctl(t, f.Addr, "credit", "--account", "client-1", "--amount", "100", "--reference", "ok\nFAKE\u202e",
		"--idempotency-key", "k0"); code != exitRefused || !strings.Contains(errOut, "INVALID_ARGUMENT") {
		t.Fatalf("a credit with a hostile reference: exit %d %q, want it refused", code, errOut)
	}
	mustCtl(t, f.Addr, "credit", "--account", "client-1", "--amount", "100", "--reference", "invoice:INV-1", "--idempotency-key", "k1") // 2
	f.Fund(t, ws, "client-2", 5)                                                                                                        // 3
	mustCtl(t, f.Addr, "holds", "create", "--account", "client-1", "--amount", "30", "--idempotency-key", "h1",
		"--reference", "order:1") // 4
}

func TestEventsList(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	activity(t, f)

	out := mustCtl(t, f.Addr, "events", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "SEQ") {
		t.Fatalf("events list:\n%s", out)
	}
	for i, want := range []string{
		`^1 .* settings\.updated +- +credit payments enabled$`,
		`^2 .* transaction\.posted +client-1 +IN 100 PURCHASE, balance 100, ref invoice:INV-1$`,
		`^3 .* transaction\.posted +client-2 +IN 5 ADJUSTMENT, balance 5, ref ledgertest:fund$`,
		`^4 .* hold\.created +client-1 +hold \S+ ACTIVE, 30 credits, expires \S+, ref order:1$`,
	} {
		if !regexp.MustCompile(want).MatchString(lines[i+1]) {
			t.Errorf("row %d = %q, want %s", i+1, lines[i+1], want)
		}
	}

	out = mustCtl(t, f.Addr, "events", "list", "--type", "transaction.posted,hold.created", "--account", "client-1", "--after", "2")
	if rows := strings.Split(strings.TrimSpace(out), "\n"); len(rows) != 2 || !strings.HasPrefix(rows[1], "4 ") {
		t.Errorf("filtered list:\n%s", out)
	}
	out, errOut, code := ctl(t, f.Addr, "events", "list", "--limit", "2")
	if code != 0 || strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "continue with --after 2") {
		t.Errorf("--limit 2: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := ctl(t, f.Addr, "events", "list", "--type", "hold.exploded"); code != exitUsage || !strings.Contains(errOut, "unknown event type") {
		t.Errorf("unknown type: exit %d %q", code, errOut)
	}
}

// The tail prints each event once, in order, across a broken stream and
// refused reconnections, says so once on stderr, and ends cleanly when
// interrupted.
func TestEventsTailFollowsAndResumes(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	activity(t, f)
	var stdout, stderr lockedBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	env := map[string]string{"LEDGER_ADDR": f.Addr, "LEDGER_WORKSPACE": ws}
	go func() {
		done <- run(ctx, []string{"events", "tail", "--after", "1", "--type", "transaction.posted"}, func(k string) string { return env[k] }, &stdout, &stderr)
	}()
	waitLines := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(stdout.String(), "\n") < n {
			if time.Now().After(deadline) {
				t.Fatalf("want %d lines; stdout:\n%s\nstderr:\n%s", n, stdout.String(), stderr.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLines(2) // sequences 2 and 3
	unavailable := ledgertest.Fault{Code: codes.Unavailable}
	f.InjectFault("WatchEvents", unavailable, unavailable)
	f.BreakWatches()
	f.Fund(t, ws, "client-3", 7) // 5
	waitLines(3)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("tail interrupted: %v, want a clean end", err)
	}

	var seqs []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		seqs = append(seqs, strings.Fields(l)[0])
	}
	if fmt.Sprint(seqs) != "[2 3 5]" {
		t.Errorf("sequences %v, want [2 3 5]:\n%s", seqs, stdout.String())
	}
	if e := stderr.String(); strings.Count(e, "event stream broken") != 1 || strings.Count(e, "resumed after sequence 3") != 1 {
		t.Errorf("stderr, want one outage and one resumption:\n%s", e)
	}
	var afters []int64
	for _, c := range f.Calls("WatchEvents") {
		if c.Code == codes.OK {
			afters = append(afters, c.Request.(*pb.WatchEventsRequest).GetAfterSequence())
		}
	}
	if fmt.Sprint(afters) != "[1 3]" {
		t.Errorf("watches after %v, want [1 3]", afters)
	}
}

// A tail's line cannot be forged by the text an event carries, should a
// ledger ever store it (the ledger refuses it: see activity).
func TestEventLineEscapesHostileText(t *testing.T) {
	t.Parallel()
	line := eventLine(&pb.Event{Sequence: 2, Type: "transaction.posted", Account: "client-1", Data: &pb.Event_Transaction{Transaction: &pb.Transaction{
		Type: pb.TransactionType_TRANSACTION_TYPE_IN, Kind: pb.TransactionKind_TRANSACTION_KIND_PURCHASE, Amount: 100, BalanceAfter: 100,
		Reference: "ok\nFAKE\u202e",
	}}})
	if !strings.HasSuffix(line, `ref ok\u000aFAKE\u202e`+"\n") || strings.Count(line, "\n") != 1 || strings.ContainsRune(line, '\u202e') {
		t.Errorf("line %q: want the reference escaped on one line", line)
	}
}

func TestEventsTailFailsFast(t *testing.T) {
	t.Parallel()
	if _, errOut, code := ctl(t, "127.0.0.1:1", "events", "tail"); code != exitUnavailable {
		t.Errorf("ledger down: exit %d %q, want %d", code, errOut, exitUnavailable)
	}
	f := ledgertest.Start(t, ledgertest.WithAuth())
	env := map[string]string{"LEDGER_ADDR": f.Addr, "LEDGER_WORKSPACE": ws, "LEDGER_TOKEN": "wrong"}
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"events", "tail"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if exitCode(err) != exitRefused || !strings.Contains(describe(err), "UNAUTHENTICATED") {
		t.Errorf("a refused token: %v (exit %d)", err, exitCode(err))
	}
}

// An explicit --timeout bounds the tail; it then ends cleanly.
func TestEventsTailTimeout(t *testing.T) {
	t.Parallel()
	f := ledgertest.Start(t)
	f.Fund(t, ws, "client-1", 1)
	// Long enough to read the backlog on a loaded machine.
	out, errOut, code := ctl(t, f.Addr, "events", "tail", "--timeout", "2s")
	if code != 0 || !strings.Contains(out, "transaction.posted") {
		t.Errorf("tail --timeout: exit %d\n%s%s", code, out, errOut)
	}
}
