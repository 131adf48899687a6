package e2e

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// Fault tests: the real ledgerd against a real PostgreSQL while the
// connection between them is cut at COMMIT, while PostgreSQL is SIGKILLed,
// with two replicas racing on a few accounts, and with a reader paging the
// request queue while requests commit. The contract (SPEC §4 idempotency,
// §8 write path): a client only ever hears OK, a business refusal true of
// the committed state, or UNAVAILABLE (retry with the same key resolves it);
// the ledger holds exactly what the clients were told; no deadlock; lists
// page in commit order. Every test ends with `ledgerd verify`.

// faultEnvVar adds ledgerd settings (space-separated NAME=value) to every
// ledgerd the fault tests start, e.g. E2E_FAULT_LEDGERD_ENV=LEDGER_BATCH_PER_WORKSPACE=4
// to hold an opt-in write path to the same contract. The tests themselves
// run the default configuration: the one production runs.
const faultEnvVar = "E2E_FAULT_LEDGERD_ENV"

func faultEnv() []string { return strings.Fields(os.Getenv(faultEnvVar)) }

const (
	cutWorkers  = 16
	cutAccounts = 4
	cutOneIn    = 6  // one write COMMIT in cutOneIn is cut, after or before at random
	cutMinEach  = 20 // cuts of each kind a run must reach
	cutMinLoad  = 4 * time.Second
	cutMaxLoad  = 30 * time.Second
)

// TestFaultCommitCut cuts ledgerd's database connections at COMMIT, just
// before it (the transaction is lost) and just after it (the transaction
// commits, the answer is lost), many times under concurrent credits and
// debits. Clients retry every UNAVAILABLE with the same key. Asserts: both
// kinds of cut happened at least cutMinEach times; no client saw a code
// other than OK, FAILED_PRECONDITION INSUFFICIENT_CREDITS, UNAVAILABLE or
// ABORTED IDEMPOTENCY_KEY_IN_USE; some answers lost after COMMIT came back
// as replays; the audit (exactly once, refusals true of committed state,
// conservation) and `ledgerd verify` pass.
func TestFaultCommitCut(t *testing.T) {
	dbURL := postgresDatabase(t)
	ledgerdCmd(t, dbURL, "migrate")
	proxy, proxyURL := startPGProxy(t, dbURL)
	faultCommitCut(t, dbURL, proxy, startLedgerd(t, proxyURL, faultEnv()...))
}

// faultCommitCut is TestFaultCommitCut's load and checks, with ledgerd p
// serving the database at dbURL (the owner's, direct) through proxy.
func faultCommitCut(t *testing.T, dbURL string, proxy *pgProxy, p *proc) {
	t.Helper()
	c := dialFault(t, p.field(t, "grpc_addr"))
	r := newFaultRun(t, "fault-cut", cutAccounts, c)
	r.setup()

	proxy.set(proxyCutEither, cutOneIn)
	stopLoad, done := r.loadUntilStopped(cutWorkers)
	defer stopLoad()
	start := time.Now()
	for {
		time.Sleep(50 * time.Millisecond)
		enough := proxy.cutsAfter.Load() >= cutMinEach+5 && proxy.cutsBefore.Load() >= cutMinEach+5 && time.Since(start) >= cutMinLoad
		if enough || time.Since(start) > cutMaxLoad || isDone(done) {
			break
		}
		if time.Since(start) >= cutMinLoad {
			// A slow write path: cut more often, the load still flows.
			proxy.set(proxyCutEither, 2)
		}
	}
	proxy.set(proxyPass, 1)
	stopLoad()
	<-done
	st := r.stats()
	t.Logf("%v of load: %s", time.Since(start).Round(time.Millisecond), proxy.counts())
	t.Logf("%s", st)
	r.requireCleanAnswers()
	if n := proxy.cutsAfter.Load(); n < cutMinEach {
		t.Errorf("only %d COMMITs cut after being sent; want ≥ %d", n, cutMinEach)
	}
	if n := proxy.cutsBefore.Load(); n < cutMinEach {
		t.Errorf("only %d COMMITs cut before being sent; want ≥ %d", n, cutMinEach)
	}
	if proxy.afterCommit.Load() > 0 && st.replayed == 0 {
		t.Errorf("the server committed %d transactions whose answers were cut, yet no retry was answered as a replay", proxy.afterCommit.Load())
	}
	r.audit(c)
	verifyLedger(t, dbURL)
}

const (
	killWorkers  = 16
	killAccounts = 4
	killRounds   = 2
	killDowntime = time.Second
	// killRecovery bounds the time from PostgreSQL accepting connections
	// again to ledgerd's first acknowledged write.
	killRecovery = 20 * time.Second
)

// TestFaultPostgresKill SIGKILLs PostgreSQL (a durable cluster of the
// test's own) under concurrent credits and debits, and starts it again on
// the same data directory a second later; ledgerd keeps running. Asserts:
// every call made while the server was down was answered UNAVAILABLE (and
// there were some); after each restart a write is acknowledged within
// killRecovery; no client saw a code outside the contract; the audit and
// `ledgerd verify` pass.
func TestFaultPostgresKill(t *testing.T) {
	cluster := startDurableCluster(t)
	dbURL := cluster.createDatabase(t, "ledger")
	ledgerdCmd(t, dbURL, "migrate")
	faultPostgresKill(t, cluster, dbURL, startLedgerd(t, dbURL, faultEnv()...), false)
}

// faultPostgresKill is TestFaultPostgresKill's load, kills and checks,
// with ledgerd p serving the database at dbURL (the owner's, direct) of
// cluster. held says that a pooler stands in between, which holds the
// transactions that begin while the server is down until it is back (up
// to its query_wait_timeout): then calls are answered after the outage
// rather than during it, and some must have waited through it.
func faultPostgresKill(t *testing.T, cluster *pgCluster, dbURL string, p *proc, held bool) {
	t.Helper()
	c := dialFault(t, p.field(t, "grpc_addr"))
	r := newFaultRun(t, "fault-kill", killAccounts, c)
	r.setup()

	stopLoad, done := r.loadUntilStopped(killWorkers)
	defer stopLoad()
	// down: every process of the server is gone; restart: pg_ctl start is
	// run (nothing can succeed before); up: it reports the server ready.
	type outage struct{ down, restart, up, recovered time.Time }
	var outages []outage
	for round := 1; round <= killRounds; round++ {
		time.Sleep(time.Second) // load flows
		cluster.kill(t)
		o := outage{down: time.Now()}
		time.Sleep(killDowntime)
		o.restart = time.Now()
		cluster.start(t)
		o.up = time.Now()
		var err error
		if o.recovered, err = r.firstAckAfter(o.up, killRecovery, done); err != nil {
			t.Fatalf("round %d, after PostgreSQL's restart: %v\n%s", round, err, p.logs)
		}
		t.Logf("round %d: PostgreSQL killed, restarted after %v, ready %v later; first write acknowledged %v after that",
			round, o.restart.Sub(o.down).Round(time.Millisecond), o.up.Sub(o.restart).Round(time.Millisecond),
			o.recovered.Sub(o.up).Round(time.Millisecond))
		outages = append(outages, o)
	}
	time.Sleep(time.Second)
	stopLoad()
	<-done

	// Calls made entirely while no server ran: UNAVAILABLE only.
	r.mu.Lock()
	during, spanned, wrong := 0, 0, map[string]int{}
	for _, a := range r.attempts {
		for _, o := range outages {
			if a.start.Before(o.down) && a.end.After(o.up) {
				spanned++
			}
			if a.start.After(o.down) && a.end.Before(o.restart) {
				during++
				if a.code != codes.Unavailable {
					wrong[a.code.String()+" "+a.reason]++
				}
			}
		}
	}
	r.mu.Unlock()
	switch {
	case !held && during == 0:
		t.Errorf("no call was made while PostgreSQL was down: the outage was not exercised")
	case held && spanned == 0:
		t.Errorf("no call waited through an outage: the outage was not exercised")
	case held && r.stats().byCode[codes.Unavailable.String()] == 0:
		t.Errorf("no call was answered UNAVAILABLE: no transaction was in flight when PostgreSQL was killed")
	}
	if len(wrong) > 0 {
		t.Errorf("calls made while PostgreSQL was down were answered other than UNAVAILABLE: %v", wrong)
	}
	t.Logf("%d calls made while PostgreSQL was down, %d in flight from before it went down to after it was up; %s", during, spanned, r.stats())
	r.requireCleanAnswers()
	r.audit(c)
	verifyLedger(t, dbURL)
}

const (
	deadlockWorkers  = 32
	deadlockAccounts = 4
	deadlockLoad     = 5 * time.Second
	deadlockSubmit   = 6   // percent of operations that submit (then decide) a credit request
	deadlockMinAcked = 500 // acknowledged operations in deadlockLoad: a floor, not a benchmark
)

// TestFaultNoDeadlocks runs two ledgerd replicas on one database, 32
// clients spread over both on 4 accounts, mixing credits, debits, credit
// requests and their decisions. Asserts: PostgreSQL detected no deadlock
// (pg_stat_database.deadlocks unchanged: locks are taken in one global
// order); at least deadlockMinAcked operations were acknowledged; no client
// saw a code outside the contract; the audit and `ledgerd verify` pass.
func TestFaultNoDeadlocks(t *testing.T) {
	env := faultEnv()
	dbURL := postgresDatabase(t)
	ledgerdCmd(t, dbURL, "migrate")
	direct := pgConnect(t, dbURL)
	before := deadlocks(t, direct)
	p1, p2 := startLedgerd(t, dbURL, env...), startLedgerd(t, dbURL, env...)
	c1, c2 := dialFault(t, p1.field(t, "grpc_addr")), dialFault(t, p2.field(t, "grpc_addr"))
	r := newFaultRun(t, "fault-deadlock", deadlockAccounts, c1, c2)
	r.setup()

	stop, stopLoad := context.WithTimeout(t.Context(), deadlockLoad)
	defer stopLoad()
	start := time.Now()
	r.load(stop, deadlockWorkers, deadlockSubmit, true)
	elapsed := time.Since(start)
	st := r.stats()
	t.Logf("%v of load on two replicas: %s", elapsed.Round(time.Millisecond), st)
	r.requireCleanAnswers()
	if st.acked < deadlockMinAcked {
		t.Errorf("only %d operations acknowledged in %v; want ≥ %d", st.acked, elapsed.Round(time.Millisecond), deadlockMinAcked)
	}
	r.audit(c1)

	// A backend reports its deadlocks to the statistics when it exits at
	// the latest: stop both replicas, wait for their sessions to end.
	for _, p := range []*proc{p1, p2} {
		if code := p.stop(t); code != 0 {
			t.Errorf("ledgerd exited %d on SIGTERM:\n%s", code, p.logs)
		}
	}
	waitNoSessions(t, direct)
	if after := deadlocks(t, direct); after != before {
		t.Errorf("PostgreSQL detected %d deadlocks during the load", after-before)
	}
	verifyLedger(t, dbURL)
}

// deadlocks reads the database's deadlock counter.
func deadlocks(t testing.TB, c *pgx.Conn) int64 {
	t.Helper()
	var n int64
	if err := c.QueryRow(t.Context(), `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		t.Fatalf("read deadlocks: %v", err)
	}
	return n
}

// waitNoSessions waits until c's is the only session on its database.
func waitNoSessions(t testing.TB, c *pgx.Conn) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still on the database 30s after ledgerd stopped", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const (
	queueSubmitters = 8
	queueLoad       = 4 * time.Second
	queuePageSize   = 5
)

// TestFaultRequestQueuePaging submits credit requests concurrently through
// two replicas while a reader on each pages the agency's queue (whole
// workspace, oldest first, 5 per page), following next_page_token and, on
// the last page, polling its token again for new requests. Asserts (SPEC
// §8: lists page in commit order): each reader sees every acknowledged
// request exactly once, nothing else, and never a new request ahead of
// ones it already read on a page; no client saw a code outside the
// contract; the audit and `ledgerd verify` pass.
func TestFaultRequestQueuePaging(t *testing.T) {
	env := faultEnv()
	dbURL := postgresDatabase(t)
	ledgerdCmd(t, dbURL, "migrate")
	p1, p2 := startLedgerd(t, dbURL, env...), startLedgerd(t, dbURL, env...)
	c1, c2 := dialFault(t, p1.field(t, "grpc_addr")), dialFault(t, p2.field(t, "grpc_addr"))
	r := newFaultRun(t, "fault-queue", 8, c1, c2)
	r.setup()

	readers := []*queueReader{newQueueReader(c1, r.ws), newQueueReader(c2, r.ws)}
	stop, stopLoad := context.WithTimeout(t.Context(), queueLoad)
	defer stopLoad()
	var wg sync.WaitGroup
	for _, q := range readers {
		wg.Go(func() {
			for stop.Err() == nil {
				if err := q.poll(t.Context()); err != nil {
					t.Errorf("reader: %v", err)
					return
				}
			}
		})
	}
	r.load(stop, queueSubmitters, 100, false)
	wg.Wait()
	// Everything acknowledged has committed: a reader catches up from
	// where it is, never from the start.
	for _, q := range readers {
		for quiet := 0; quiet < 2; {
			n := len(q.seen)
			if err := q.poll(t.Context()); err != nil {
				t.Fatalf("reader: %v", err)
			}
			if len(q.seen) == n && q.pageSeen != nil {
				quiet++
			}
		}
	}
	r.requireCleanAnswers()
	st := r.stats()
	acked := map[string]string{} // request → key
	r.mu.Lock()
	for _, o := range r.ops {
		if o.kind == opSubmit && o.acked {
			acked[o.reqID] = o.key
		}
	}
	r.mu.Unlock()
	t.Logf("%s", st)
	for i, q := range readers {
		missed, dup, unknown := 0, 0, 0
		for id, key := range acked {
			switch q.seen[id] {
			case 0:
				missed++
				if missed <= 5 {
					t.Errorf("reader %d never saw acknowledged request %s (key %s)", i, id, key)
				}
			case 1:
			default:
				dup++
				if dup <= 5 {
					t.Errorf("reader %d saw request %s %d times", i, id, q.seen[id])
				}
			}
		}
		for id := range q.seen {
			if _, ok := acked[id]; !ok {
				unknown++
				t.Errorf("reader %d saw request %s nobody was told about", i, id)
			}
		}
		t.Logf("reader %d: %d polls, %d requests seen of %d acknowledged; %d missed, %d seen twice, %d unknown, %d arrived ahead of requests already read",
			i, q.polls, len(q.seen), len(acked), missed, dup, unknown, q.ahead)
		if q.ahead > 0 {
			t.Errorf("reader %d: %d requests appeared on a page ahead of requests it had already read there: the queue is not in commit order", i, q.ahead)
		}
	}
	if len(acked) < 100 {
		t.Errorf("only %d requests acknowledged: too little load to test paging", len(acked))
	}
	r.audit(c1)
	verifyLedger(t, dbURL)
}

// queueReader pages the agency's queue as a portal would: it follows
// next_page_token; on the last page it asks for the same page again.
type queueReader struct {
	c        ledgerConn
	ws       string
	token    string   // the page being read ("" is the first)
	pageSeen []string // requests already taken from that page, in order
	seen     map[string]int
	polls    int
	ahead    int // new requests listed before ones already read on the page
}

func newQueueReader(c ledgerConn, ws string) *queueReader {
	return &queueReader{c: c, ws: ws, seen: map[string]int{}}
}

func (q *queueReader) poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, faultAttemptTimeout)
	defer cancel()
	res, err := q.c.ledger.ListRequests(ctx, &pb.ListRequestsRequest{Workspace: q.ws, PageSize: queuePageSize, PageToken: q.token})
	if err != nil {
		return err
	}
	q.polls++
	known := map[string]bool{}
	for _, id := range q.pageSeen {
		known[id] = true
	}
	lastKnown := -1
	for i, req := range res.GetRequests() {
		if known[req.GetId()] {
			lastKnown = i
		}
	}
	for i, req := range res.GetRequests() {
		id := req.GetId()
		if known[id] {
			continue
		}
		if i < lastKnown {
			q.ahead++
		}
		q.seen[id]++
		q.pageSeen = append(q.pageSeen, id)
	}
	if next := res.GetNextPageToken(); next != "" {
		q.token, q.pageSeen = next, nil
	} else if q.pageSeen == nil {
		q.pageSeen = []string{} // on the last page, even if empty
	}
	return nil
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
