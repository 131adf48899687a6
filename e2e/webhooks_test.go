package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/webhook"
)

// TestWebhooksUnderFaults: a workspace's events reach a webhook endpoint
// whose receiver fails, hangs past the timeout and succeeds at random,
// while the ledger is under load and one ledgerd is SIGKILLed in the
// middle (and started again). Every event must be delivered, each
// delivery signed (checked with the Standard Webhooks library), in
// sequence order, the only repeat being of the attempt the kill
// interrupted.
func TestWebhooksUnderFaults(t *testing.T) {
	bin := binaries(t)
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		webhookFaults(t, bin, 1, envKV("LEDGER_DATA_DIR", t.TempDir()))
	})
	t.Run("postgres two replicas", func(t *testing.T) {
		t.Parallel()
		webhookFaults(t, bin, 2, postgresEnv(t)...)
	})
}

// receiver is the agency's webhook endpoint: it verifies every delivery
// and answers at random.
type receiver struct {
	t      *testing.T
	mu     sync.Mutex
	secret string
	rng    *rand.Rand
	// accepted lists the sequences answered 2xx, in the order received.
	accepted []int64
	ids      map[int64]string
	failed   int
	hung     int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rc.mu.Lock()
	secret := rc.secret
	roll := rc.rng.IntN(100)
	rc.mu.Unlock()
	if err := webhook.Verify(secret, r.Header, body); err != nil {
		rc.t.Errorf("a delivery failed verification: %v (headers %v)", err, r.Header)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var ev struct {
		ID       string `json:"id"`
		Sequence string `json:"sequence"`
		Type     string `json:"type"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		rc.t.Errorf("undecodable delivery %q: %v", body, err)
		return
	}
	seq, err := strconv.ParseInt(ev.Sequence, 10, 64)
	if err != nil || ev.ID != r.Header.Get("webhook-id") {
		rc.t.Errorf("delivery %q: sequence %q, webhook-id %q", body, ev.Sequence, r.Header.Get("webhook-id"))
		return
	}
	switch {
	case roll < 15:
		rc.mu.Lock()
		rc.failed++
		rc.mu.Unlock()
		http.Error(w, "try again later", http.StatusServiceUnavailable)
	case roll < 19:
		// Hangs past the sender's timeout: the sender gives up, and the
		// receiver does not count what it never answered.
		rc.mu.Lock()
		rc.hung++
		rc.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	default:
		rc.mu.Lock()
		rc.accepted = append(rc.accepted, seq)
		if prev, ok := rc.ids[seq]; ok && prev != ev.ID {
			rc.t.Errorf("sequence %d came with two ids: %s and %s", seq, prev, ev.ID)
		}
		rc.ids[seq] = ev.ID
		rc.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

func (rc *receiver) snapshot() []int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]int64(nil), rc.accepted...)
}

func webhookFaults(t *testing.T, bin string, replicas int, storeEnv ...string) {
	const ws = "hooks"
	ledgerd := filepath.Join(bin, exe("ledgerd"))
	env := append([]string{
		envKV("LEDGER_AUTH", "none"), envKV("LEDGER_PAGE_TOKEN_KEY", "00112233445566778899aabbccddeeff"),
		envKV("LEDGER_WEBHOOK_ALLOW_PRIVATE", "true"), envKV("LEDGER_WEBHOOK_INTERVAL", "50ms"),
		envKV("LEDGER_WEBHOOK_TIMEOUT", "300ms"), envKV("LEDGER_WEBHOOK_RETRY_BASE", "20ms"), envKV("LEDGER_WEBHOOK_LEASE", "1s"),
	}, storeEnv...)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rc := &receiver{t: t, rng: rand.New(rand.NewPCG(seed, 7)), ids: map[int64]string{}} //nolint:gosec // G404: test schedule
	srv := httptest.NewServer(rc)
	defer srv.Close()

	serveArgs := []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}
	procs := make([]*proc, replicas)
	clients := make([]crashClient, replicas)
	var cmu sync.Mutex
	for i := range procs {
		procs[i] = startProc(t, ledgerd, serveArgs, env...)
		clients[i] = dialLedger(t, procs[i].field(t, "grpc_addr"))
	}
	client := func(i int) crashClient {
		cmu.Lock()
		defer cmu.Unlock()
		return clients[i%replicas]
	}
	ctx := t.Context()
	c0 := client(0)
	if _, err := pb.NewCreditSettingsClient(c0.conn).UpdateSettings(ctx, &pb.UpdateSettingsRequest{
		Workspace: ws, Settings: &pb.Settings{CreditPaymentsEnabled: true},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
	}); err != nil {
		t.Fatal(err)
	}
	created, err := pb.NewCreditWebhooksClient(c0.conn).CreateWebhookEndpoint(ctx, &pb.CreateWebhookEndpointRequest{
		Workspace: ws, WebhookEndpoint: &pb.WebhookEndpoint{Url: srv.URL + "/hooks", Description: "fault test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.secret = created.GetSecret()
	rc.mu.Unlock()
	start := created.GetWebhookEndpoint().GetDeliveredSequence() // the settings change: before the endpoint

	// The load: credits through every replica, each retried with its key
	// until acknowledged (a killed replica's callers retry elsewhere or
	// after the restart).
	const writers, each = 4, 60
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				req := &pb.CreditRequest{Workspace: ws, Account: fmt.Sprintf("acct-%d", (w+i)%5), Amount: 1, IdempotencyKey: fmt.Sprintf("w%d-%d", w, i)}
				for try := 0; ; try++ {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					_, err := client(w+try).ledger.Credit(cctx, req)
					cancel()
					if err == nil {
						break
					}
					if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded && c != codes.Canceled {
						t.Errorf("credit %s: %v", req.IdempotencyKey, err)
						return
					}
					if try > 200 {
						t.Errorf("credit %s: still failing: %v", req.IdempotencyKey, err)
						return
					}
					time.Sleep(50 * time.Millisecond)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}

	// Kill one ledgerd once deliveries are under way, then start it again.
	deadline := time.Now().Add(30 * time.Second)
	for len(rc.snapshot()) < 20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := procs[0].cmd.Process.Kill(); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	<-procs[0].done
	t.Logf("ledgerd SIGKILLed after %d accepted deliveries", len(rc.snapshot()))
	time.Sleep(200 * time.Millisecond)
	procs[0] = startProc(t, ledgerd, serveArgs, env...)
	fresh := dialLedger(t, procs[0].field(t, "grpc_addr"))
	cmu.Lock()
	clients[0] = fresh
	cmu.Unlock()
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Every event after the endpoint's creation is delivered.
	page, err := fresh.ledger.ListEvents(ctx, &pb.ListEventsRequest{Workspace: ws, AfterSequence: start, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	last := page.GetLastSequence()
	if want := start + writers*each; last != want {
		t.Fatalf("the workspace's last event is %d, want %d (one per credit)", last, want)
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		got := rc.snapshot()
		if len(got) > 0 && got[len(got)-1] == last {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s the receiver has %d deliveries, the last of sequence %v; want up to %d", len(got), got[len(got)-1:], last)
		}
		time.Sleep(50 * time.Millisecond)
	}
	got := rc.snapshot()
	repeats := 0
	for i, seq := range got {
		prev := start
		if i > 0 {
			prev = got[i-1]
		}
		switch seq {
		case prev + 1:
		case prev:
			repeats++ // the attempt a kill interrupted, delivered again
		default:
			t.Fatalf("delivery %d is sequence %d after %d: out of order, or a gap", i, seq, prev)
		}
	}
	if repeats > replicas {
		t.Errorf("%d repeated deliveries: more than the attempts the kill could interrupt", repeats)
	}
	for seq, id := range rc.ids {
		if id != ledger.EventID(ws, seq) {
			t.Errorf("sequence %d delivered as %s, want %s", seq, id, ledger.EventID(ws, seq))
		}
	}
	rc.mu.Lock()
	failed, hung := rc.failed, rc.hung
	rc.mu.Unlock()
	t.Logf("%d events delivered in order (%d accepted answers, %d repeated); the receiver failed %d and hung %d attempts",
		last-start, len(got), repeats, failed, hung)
	if failed == 0 || hung == 0 {
		t.Errorf("the receiver never failed (%d) or never hung (%d): the faults were not exercised", failed, hung)
	}

	// The log shows the failures with their status, and the successes.
	dl, err := pb.NewCreditWebhooksClient(fresh.conn).ListWebhookDeliveries(ctx, &pb.ListWebhookDeliveriesRequest{
		Workspace: ws, EndpointId: created.GetWebhookEndpoint().GetId(), PageSize: 500,
	})
	if err != nil {
		t.Fatal(err)
	}
	codesSeen := map[int32]int{}
	for _, d := range dl.GetWebhookDeliveries() {
		codesSeen[d.GetStatusCode()]++
		if d.GetSucceeded() != (d.GetStatusCode() == http.StatusNoContent) {
			t.Errorf("delivery %v: succeeded %v with status %d", d, d.GetSucceeded(), d.GetStatusCode())
		}
	}
	if codesSeen[http.StatusNoContent] == 0 || codesSeen[http.StatusServiceUnavailable] == 0 {
		t.Errorf("the delivery log's status codes %v lack successes or 503s", codesSeen)
	}
}
