package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// TestFaultRefusalNeverPersists holds the real ledgerd, on a real
// PostgreSQL, to SPEC §8 "a refusal never persists", deterministically:
// with one batch per workspace, a batch is stuck before its BEGIN reaches
// the server (proxy held) while two operations queue behind it (the queue
// gauge says when), so that they are decided together in the next batch,
// one posted and one refused because of the first; that batch's COMMIT
// alone is cut (proxy armed). Asserts, per scenario:
//
//   - debits: a COMMIT cut before it is sent: both debits (the posted
//     100 and the refused 1) are answered UNAVAILABLE, not
//     INSUFFICIENT_CREDITS; the balance is still 100 at version 1; the
//     same keys then resolve to outcomes true of the committed state
//     (the 1 posts, balance 99; the 100 is refused naming balance 99).
//   - decisions: the same with an ACCEPT and a REJECT of one request:
//     both UNAVAILABLE, not REQUEST_ALREADY_DECIDED; the request is still
//     PENDING; retried, the ACCEPT posts, the REJECT is refused as
//     already ACCEPTED (now true).
//   - ambiguous: the COMMIT is forwarded and the answer lost; the server
//     committed: both debits UNAVAILABLE all the same; the retried 100 is
//     a replay of the committed transaction, the retried 1 is refused
//     afresh naming balance 0 (a refusal is not remembered).
//
// Each scenario ends with `ledgerd verify`.
func TestFaultRefusalNeverPersists(t *testing.T) {
	dbURL := postgresDatabase(t)
	ledgerdCmd(t, dbURL, "migrate")
	proxy, proxyURL := startPGProxy(t, dbURL)
	p := startLedgerd(t, proxyURL, append(faultEnv(), envKV("LEDGER_BATCH_PER_WORKSPACE", "1"))...)
	h := &refusalHarness{
		t: t, proxy: proxy, c: dialFault(t, p.field(t, "grpc_addr")),
		metrics: "http://" + p.field(t, "metrics_addr") + "/metrics",
	}

	t.Run("debits", func(t *testing.T) {
		start := time.Now()
		s := h.scenario(t, "refusal-debits")
		s.credit("acct-a", 100, "fund-a")
		occupied := s.occupy()
		all := s.queue(1, func(ctx context.Context) error { _, err := s.debit(ctx, "acct-a", 100, "d-all"); return err })
		one := s.queue(2, func(ctx context.Context) error { _, err := s.debit(ctx, "acct-a", 1, "d-one"); return err })
		cut := proxy.arm(1, proxyCutBefore) // the occupying batch's COMMIT passes, the debits' is cut
		proxy.release()

		s.wantOK("the occupying credit", occupied)
		s.wantUnavailable("debit 100 (posted in the cut batch)", all)
		s.wantUnavailable("debit 1 (refused in the cut batch)", one)
		if r := waitCut(t, cut); r.mode != proxyCutBefore {
			t.Fatalf("the armed cut: %s; want cut before", r)
		}
		s.wantBalance("acct-a", 100, 1)

		// The same keys resolve it, each evaluated afresh: debit 1 first.
		res, err := s.debit(t.Context(), "acct-a", 1, "d-one")
		if err != nil || res.GetReplayed() || res.GetBalance() != 99 || res.GetTransaction().GetAmount() != 1 {
			t.Fatalf("retry of debit 1: %v, %v; want posted, balance 99", res, err)
		}
		_, err = s.debit(t.Context(), "acct-a", 100, "d-all")
		s.wantRefused("retry of debit 100 after debit 1", err, codes.FailedPrecondition, "INSUFFICIENT_CREDITS", "balance", "99")
		s.wantBalance("acct-a", 99, 2)
		verifyLedger(t, dbURL)
		t.Logf("scenario took %v; %s", time.Since(start).Round(time.Millisecond), proxy.counts())
	})

	t.Run("decisions", func(t *testing.T) {
		start := time.Now()
		s := h.scenario(t, "refusal-decisions")
		ctx, cancel := context.WithTimeout(t.Context(), faultAttemptTimeout)
		sub, err := s.h.c.ledger.SubmitRequest(ctx, &pb.SubmitRequestRequest{
			Workspace: s.ws, Account: "acct-c", Amount: 50, IdempotencyKey: "submit-c",
			PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, PaymentReference: "wire-c",
		})
		cancel()
		if err != nil {
			t.Fatalf("submit request: %v", err)
		}
		reqID := sub.GetRequest().GetId()
		occupied := s.occupy()
		acc := s.queue(1, func(ctx context.Context) error {
			_, err := s.decide(ctx, reqID, pb.Decision_DECISION_ACCEPT, "acc")
			return err
		})
		rej := s.queue(2, func(ctx context.Context) error {
			_, err := s.decide(ctx, reqID, pb.Decision_DECISION_REJECT, "rej")
			return err
		})
		cut := proxy.arm(1, proxyCutBefore)
		proxy.release()

		s.wantOK("the occupying credit", occupied)
		s.wantUnavailable("accept (decided in the cut batch)", acc)
		s.wantUnavailable("reject (refused as already decided in the cut batch)", rej)
		if r := waitCut(t, cut); r.mode != proxyCutBefore {
			t.Fatalf("the armed cut: %s; want cut before", r)
		}
		s.wantRequest(reqID, pb.RequestStatus_REQUEST_STATUS_PENDING, "")
		s.wantBalance("acct-c", 0, 0)

		res, err := s.decide(t.Context(), reqID, pb.Decision_DECISION_ACCEPT, "acc")
		tx := res.GetTransaction()
		if err != nil || res.GetReplayed() || res.GetRequest().GetStatus() != pb.RequestStatus_REQUEST_STATUS_ACCEPTED ||
			tx.GetId() == "" || tx.GetAmount() != 50 || tx.GetBalanceAfter() != 50 || tx.GetAccount() != "acct-c" {
			t.Fatalf("retry of accept: %v, %v; want ACCEPTED with a transaction of 50", res, err)
		}
		_, err = s.decide(t.Context(), reqID, pb.Decision_DECISION_REJECT, "rej")
		s.wantRefused("retry of reject after the accept", err, codes.FailedPrecondition, "REQUEST_ALREADY_DECIDED", "status", "ACCEPTED")
		s.wantRequest(reqID, pb.RequestStatus_REQUEST_STATUS_ACCEPTED, tx.GetId())
		s.wantBalance("acct-c", 50, 1)
		verifyLedger(t, dbURL)
		t.Logf("scenario took %v; %s", time.Since(start).Round(time.Millisecond), proxy.counts())
	})

	t.Run("ambiguous", func(t *testing.T) {
		start := time.Now()
		s := h.scenario(t, "refusal-ambiguous")
		s.credit("acct-a", 100, "fund-a")
		occupied := s.occupy()
		all := s.queue(1, func(ctx context.Context) error { _, err := s.debit(ctx, "acct-a", 100, "d-all"); return err })
		one := s.queue(2, func(ctx context.Context) error { _, err := s.debit(ctx, "acct-a", 1, "d-one"); return err })
		cut := proxy.arm(1, proxyCutAfter)
		proxy.release()

		s.wantOK("the occupying credit", occupied)
		s.wantUnavailable("debit 100 (posted in the batch whose answer was lost)", all)
		s.wantUnavailable("debit 1 (refused in the batch whose answer was lost)", one)
		r := waitCut(t, cut)
		if r.mode != proxyCutAfter || !r.verdict {
			t.Fatalf("the armed cut: %s; want cut after, with the server's verdict", r)
		}
		if !r.committed {
			// ledgerd's driver, finding its connection broken mid-query,
			// sends the server a cancel request: it can win the race with
			// the COMMIT. Then nothing was committed, and the same keys
			// are decided afresh.
			t.Logf("the server did not commit (the driver's cancel request won): %s", r)
			s.wantBalance("acct-a", 100, 1)
			res, err := s.debit(t.Context(), "acct-a", 100, "d-all")
			if err != nil || res.GetReplayed() || res.GetBalance() != 0 {
				t.Fatalf("retry of debit 100 after a commit that did not happen: %v, %v; want it posted afresh", res, err)
			}
			_, err = s.debit(t.Context(), "acct-a", 1, "d-one")
			s.wantRefused("retry of debit 1", err, codes.FailedPrecondition, "INSUFFICIENT_CREDITS", "balance", "0")
			s.wantBalance("acct-a", 0, 2)
			verifyLedger(t, dbURL)
			return
		}
		// What the server committed: the debit of 100, nothing of the 1.
		s.wantBalance("acct-a", 0, 2)
		history := listHistory(t, s.h.c, s.ws, "acct-a")
		if len(history) != 2 || history[1].GetIdempotencyKey() != "d-all" || history[1].GetAmount() != 100 {
			t.Fatalf("history of acct-a after the ambiguous commit: %v; want the credit and the debit of 100", history)
		}

		res, err := s.debit(t.Context(), "acct-a", 100, "d-all")
		if err != nil || !res.GetReplayed() || res.GetTransaction().GetId() != history[1].GetId() || res.GetBalance() != 0 {
			t.Fatalf("retry of debit 100: %v, %v; want a replay of %s", res, err, history[1].GetId())
		}
		_, err = s.debit(t.Context(), "acct-a", 1, "d-one")
		s.wantRefused("retry of debit 1", err, codes.FailedPrecondition, "INSUFFICIENT_CREDITS", "balance", "0")
		s.wantBalance("acct-a", 0, 2)
		verifyLedger(t, dbURL)
		t.Logf("scenario took %v; %s", time.Since(start).Round(time.Millisecond), proxy.counts())
	})
}

// refusalHarness is one ledgerd (one batch per workspace) behind the proxy.
type refusalHarness struct {
	t       *testing.T
	proxy   *pgProxy
	c       ledgerConn
	metrics string // the metrics listener's /metrics
}

// refusalScenario is one scenario, on a workspace of its own.
type refusalScenario struct {
	t  *testing.T
	h  *refusalHarness
	ws string
}

// scenario enables credit payments on ws (debits and requests need them);
// when the scenario ends, the proxy passes everything again, whatever
// state a failure left it in.
func (h *refusalHarness) scenario(t *testing.T, ws string) *refusalScenario {
	t.Helper()
	t.Cleanup(func() {
		h.proxy.disarm()
		h.proxy.release()
	})
	ctx, cancel := context.WithTimeout(t.Context(), faultAttemptTimeout)
	defer cancel()
	if _, err := h.c.settings.UpdateSettings(ctx, &pb.UpdateSettingsRequest{
		Workspace: ws, Settings: &pb.Settings{CreditPaymentsEnabled: true},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
	}); err != nil {
		t.Fatalf("enable credit payments: %v", err)
	}
	return &refusalScenario{t: t, h: h, ws: ws}
}

func (s *refusalScenario) credit(account string, amount int64, key string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), faultAttemptTimeout)
	defer cancel()
	if _, err := s.h.c.ledger.Credit(ctx, &pb.CreditRequest{Workspace: s.ws, Account: account, Amount: amount, IdempotencyKey: key}); err != nil {
		s.t.Fatalf("credit %s %d: %v", account, amount, err)
	}
}

func (s *refusalScenario) debit(ctx context.Context, account string, amount int64, key string) (*pb.DebitResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, faultAttemptTimeout)
	defer cancel()
	return s.h.c.ledger.Debit(ctx, &pb.DebitRequest{Workspace: s.ws, Account: account, Amount: amount, IdempotencyKey: key})
}

func (s *refusalScenario) decide(ctx context.Context, reqID string, d pb.Decision, key string) (*pb.DecideRequestResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, faultAttemptTimeout)
	defer cancel()
	return s.h.c.ledger.DecideRequest(ctx, &pb.DecideRequestRequest{
		Workspace: s.ws, RequestId: reqID, Decision: d, DecidedBy: "refusal-test", IdempotencyKey: key,
	})
}

// occupy holds the proxy and sends a credit of 1 to another account of the
// workspace in the background; it returns once that credit's batch is
// stuck before its BEGIN reaches the server, so that whatever the
// workspace receives next queues behind it (one batch per workspace).
func (s *refusalScenario) occupy() <-chan error {
	s.t.Helper()
	if n := s.h.queued(s.t); n != 0 {
		s.t.Fatalf("%d ops queued before the scenario", n)
	}
	s.h.proxy.hold()
	out := s.background(func(ctx context.Context) error {
		_, err := s.h.c.ledger.Credit(ctx, &pb.CreditRequest{Workspace: s.ws, Account: "acct-b", Amount: 1, IdempotencyKey: "occupy"})
		return err
	})
	waitUntil(s.t, "the occupying batch stopped at its BEGIN", func() bool { return s.h.proxy.heldBegins.Load() == 1 })
	return out
}

// queue sends call in the background and returns once the write queue
// holds n ops (this one the n-th).
func (s *refusalScenario) queue(n int, call func(ctx context.Context) error) <-chan error {
	s.t.Helper()
	out := s.background(call)
	waitUntil(s.t, strconv.Itoa(n)+" ops queued", func() bool { return s.h.queued(s.t) == n })
	return out
}

func (s *refusalScenario) background(call func(ctx context.Context) error) <-chan error {
	out := make(chan error, 1)
	ctx := s.t.Context()
	go func() {
		ctx, cancel := context.WithTimeout(ctx, faultAttemptTimeout)
		defer cancel()
		out <- call(ctx)
	}()
	return out
}

// answer waits for a background call's answer.
func (s *refusalScenario) answer(what string, ch <-chan error) error {
	s.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(faultAttemptTimeout + 5*time.Second):
		s.t.Fatalf("%s: no answer", what)
		return nil
	}
}

func (s *refusalScenario) wantOK(what string, ch <-chan error) {
	s.t.Helper()
	if err := s.answer(what, ch); err != nil {
		s.t.Fatalf("%s: %v; want OK", what, err)
	}
}

func (s *refusalScenario) wantUnavailable(what string, ch <-chan error) {
	s.t.Helper()
	err := s.answer(what, ch)
	if code, reason, md := statusOf(err); code != codes.Unavailable {
		s.t.Errorf("%s: answered %s %s %v (%v); want UNAVAILABLE: the batch did not commit", what, code, reason, md, err)
	}
}

// wantRefused requires a refusal with the given code and reason whose
// ErrorInfo metadata has key = value.
func (s *refusalScenario) wantRefused(what string, err error, code codes.Code, reason, key, value string) {
	s.t.Helper()
	gotCode, gotReason, md := statusOf(err)
	if gotCode != code || gotReason != reason || md[key] != value {
		s.t.Fatalf("%s: answered %s %s %v (%v); want %s %s with %s=%s", what, gotCode, gotReason, md, err, code, reason, key, value)
	}
}

func (s *refusalScenario) wantBalance(account string, balance, version int64) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), faultAttemptTimeout)
	defer cancel()
	b, err := s.h.c.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: s.ws, Account: account})
	if err != nil || b.GetBalance().GetBalance() != balance || b.GetBalance().GetVersion() != version {
		s.t.Fatalf("balance of %s: %v, %v; want %d at version %d", account, b.GetBalance(), err, balance, version)
	}
}

func (s *refusalScenario) wantRequest(id string, st pb.RequestStatus, txID string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.t.Context(), faultAttemptTimeout)
	defer cancel()
	r, err := s.h.c.ledger.GetRequest(ctx, &pb.GetRequestRequest{Workspace: s.ws, RequestId: id})
	if err != nil || r.GetRequest().GetStatus() != st || r.GetRequest().GetTransactionId() != txID {
		s.t.Fatalf("request %s: %v, %v; want %s with transaction %q", id, r.GetRequest(), err, st, txID)
	}
}

// statusOf is an error's gRPC code, ErrorInfo reason and metadata.
func statusOf(err error) (codes.Code, string, map[string]string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), ei.GetReason(), ei.GetMetadata()
		}
	}
	return st.Code(), "", nil
}

// queued reads the gauge creditledger_write_queue_ops: the ops waiting for
// a batch, all workspaces.
func (h *refusalHarness) queued(t testing.TB) int {
	t.Helper()
	for line := range strings.SplitSeq(scrape(t, h.metrics), "\n") {
		v, ok := strings.CutPrefix(line, "creditledger_write_queue_ops ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("creditledger_write_queue_ops %q: %v", v, err)
		}
		return int(f)
	}
	t.Fatalf("%s has no creditledger_write_queue_ops", h.metrics)
	return 0
}
