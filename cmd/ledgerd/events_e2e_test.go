package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// watchUnderLoad: writers post credits through every replica while a
// reader watches the workspace's events over gRPC, leaves twice in the
// middle of the load (staying away while writes go on), and resumes each
// time from the last sequence it received. It must see every event exactly
// once, in order: sequences 1..n without a gap or a repeat, one
// transaction.posted per acknowledged credit. Then a REST watch from the
// middle streams the rest as newline-delimited JSON.
func watchUnderLoad(t *testing.T, replicas ...*ledgerd) {
	t.Helper()
	const ws = "watch"
	first := replicas[0]
	if r := first.rest(t, "PATCH", "/v1/workspaces/"+ws+"/settings", "", `{"creditPaymentsEnabled":true}`); r.code != 200 {
		t.Fatalf("settings: %d %s", r.code, r.raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var acked atomic.Int64
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 6 {
		writers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := replicas[(w+i)%len(replicas)].ledger.Credit(ctx, &pb.CreditRequest{
					Workspace: ws, Account: fmt.Sprintf("acct-%d", i%7), Amount: 1, IdempotencyKey: fmt.Sprintf("load-%d-%d", w, i),
				})
				if err != nil {
					t.Errorf("credit: %v", err)
					return
				}
				acked.Add(1)
			}
		})
	}

	var seen []*pb.Event
	last := int64(0)
	// watch reads until it has n more events, or until caught is true and
	// it has every event up to want.
	watch := func(via *ledgerd, n int, want int64) {
		t.Helper()
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		st, err := via.ledger.WatchEvents(wctx, &pb.WatchEventsRequest{Workspace: ws, AfterSequence: last})
		if err != nil {
			t.Fatalf("WatchEvents: %v", err)
		}
		for got := 0; (n > 0 && got < n) || (want > 0 && last < want); got++ {
			msg, err := st.Recv()
			if err != nil {
				t.Fatalf("watch after %d: %v", last, err)
			}
			e := msg.GetEvent()
			if e.GetSequence() != last+1 {
				t.Fatalf("watch after %d received sequence %d: a gap or a repeat", last, e.GetSequence())
			}
			last = e.GetSequence()
			seen = append(seen, e)
		}
	}
	watch(first, 40, 0)
	time.Sleep(300 * time.Millisecond) // away while the writers go on
	watch(replicas[len(replicas)-1], 40, 0)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	writers.Wait()
	if t.Failed() {
		return
	}
	// Every acknowledged credit, and the settings change, is an event.
	total := acked.Load() + 1
	watch(first, 0, total)
	if int64(len(seen)) != total {
		t.Fatalf("watched %d events, want %d", len(seen), total)
	}
	txs := map[string]bool{}
	for _, e := range seen[1:] {
		id := e.GetTransaction().GetId()
		if e.GetType() != "transaction.posted" || id == "" || txs[id] {
			t.Fatalf("unexpected or repeated event: %v", e)
		}
		txs[id] = true
	}

	// ListEvents pages agree, and the REST watch streams from the middle.
	page, err := first.ledger.ListEvents(ctx, &pb.ListEventsRequest{Workspace: ws, AfterSequence: total - 3})
	if err != nil || len(page.GetEvents()) != 3 || page.GetLastSequence() != total {
		t.Fatalf("ListEvents after %d: %v, %v", total-3, page, err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	req, err := http.NewRequestWithContext(rctx, "GET", first.base+"/v1/workspaces/"+ws+"/events:watch?afterSequence="+strconv.FormatInt(total-2, 10), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := first.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("REST watch: %d", resp.StatusCode)
	}
	lines := bufio.NewScanner(resp.Body)
	for want := total - 1; want <= total; want++ {
		if !lines.Scan() {
			t.Fatalf("REST watch ended before sequence %d: %v", want, lines.Err())
		}
		var msg struct {
			Result struct {
				Event struct {
					ID       string `json:"id"`
					Sequence string `json:"sequence"`
					Type     string `json:"type"`
				} `json:"event"`
			} `json:"result"`
		}
		if err := json.Unmarshal(lines.Bytes(), &msg); err != nil {
			t.Fatalf("REST watch line %q: %v", lines.Text(), err)
		}
		if msg.Result.Event.Sequence != strconv.FormatInt(want, 10) || msg.Result.Event.ID == "" {
			t.Fatalf("REST watch line %q, want sequence %d", lines.Text(), want)
		}
	}
	// A credit now reaches the open REST stream at once.
	if _, err := first.ledger.Credit(ctx, &pb.CreditRequest{Workspace: ws, Account: "late", Amount: 5, IdempotencyKey: "late"}); err != nil {
		t.Fatal(err)
	}
	if !lines.Scan() {
		t.Fatalf("REST watch: no line for a new credit: %v", lines.Err())
	}
	if err := lines.Err(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

func TestWatchEventsEmbedded(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, []string{"--data-dir", t.TempDir()}, map[string]string{"LEDGER_AUTH": "none", "LEDGER_RATE_LIMIT_SUBJECT_WRITES": "0", "LEDGER_RATE_LIMIT_SUBJECT": "0", "LEDGER_RATE_LIMIT_WORKSPACE": "0"})
	watchUnderLoad(t, d)
}

// TestWatchEventsTwoReplicasPostgres: on one database, the writes of the
// other replica reach a watch too (by its poll), in the same order.
func TestWatchEventsTwoReplicasPostgres(t *testing.T) {
	t.Parallel()
	owner, runtime := postgresURLs(t)
	env := map[string]string{
		"LEDGER_AUTH": "none", "LEDGER_RATE_LIMIT_SUBJECT_WRITES": "0", "LEDGER_RATE_LIMIT_SUBJECT": "0", "LEDGER_RATE_LIMIT_WORKSPACE": "0", "LEDGER_DATABASE_URL": runtime, "LEDGER_MIGRATE_DATABASE_URL": owner, "LEDGER_MIGRATE_ON_START": "true",
	}
	watchUnderLoad(t, startLedgerd(t, nil, env), startLedgerd(t, nil, env))
}

// TestWatchEndsWhenLedgerdStops: a drain ends the open watches at once
// (UNAVAILABLE: resume elsewhere) rather than waiting for their callers
// until the shutdown timeout.
func TestWatchEndsWhenLedgerdStops(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, []string{"--data-dir", t.TempDir()}, map[string]string{"LEDGER_AUTH": "none", "LEDGER_SHUTDOWN_TIMEOUT": "30s"})
	st, err := d.ledger.WatchEvents(t.Context(), &pb.WatchEventsRequest{Workspace: "quiet"})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := st.Recv()
		ended <- err
	}()
	time.Sleep(100 * time.Millisecond) // the watch is waiting
	start := time.Now()
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("ledgerd took %v to stop with a watch open", took)
	}
	select {
	case err := <-ended:
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("the watch ended with %v, want UNAVAILABLE", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end")
	}
}
