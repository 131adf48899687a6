package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/pgtest"
)

// The fault tests' load: clients post credits, debits, credit requests and
// decisions with unique idempotency keys and retry every answer that is not
// definite (UNAVAILABLE, ABORTED IDEMPOTENCY_KEY_IN_USE, DEADLINE_EXCEEDED)
// with the same key and the same request until it is. Every attempt's
// answer is recorded; any other code fails the test. The audit then holds
// the ledger to what the clients were told.

const (
	// faultAttemptTimeout bounds one attempt: generous, an answer is due
	// long before; DEADLINE_EXCEEDED would mean a stuck server.
	faultAttemptTimeout = 30 * time.Second
	// faultSettleTimeout bounds one operation from its first attempt to a
	// definite answer, across every fault.
	faultSettleTimeout = 60 * time.Second
	// faultPrefund is each account's opening credit.
	faultPrefund = 500
	// faultPageTokenKey is shared by replicas, so that tokens of one are
	// good on the other.
	faultPageTokenKey = "00112233445566778899aabbccddeeff"
)

// opKind is what an operation asks for.
type opKind int

const (
	opCredit opKind = iota
	opDebit
	opSubmit // SubmitRequest
	opDecide // DecideRequest
)

func (k opKind) String() string {
	return [...]string{"credit", "debit", "submit", "decide"}[k]
}

// faultOp is one operation a client asked for, and what it was told.
type faultOp struct {
	kind      opKind
	key       string
	account   string
	amount    int64
	requestID string // opDecide: the request decided
	accept    bool   // opDecide

	// The definite outcome: acked or refused, or neither when the client
	// gave up (which fails the test).
	done           bool
	acked          bool
	txID           string // the posted transaction (credit, debit, accepted decision)
	reqID          string // opSubmit: the request created
	replayed       bool   // the definite answer was an idempotent replay
	refused        string // reason of a business refusal
	refusedBalance int64  // INSUFFICIENT_CREDITS: the balance the refusal names
	attempts       int
	// first is when the operation was first sent; last when its definite
	// answer's attempt was sent, end when that answer came.
	first, last, end time.Time
}

// attemptRec is one call's answer.
type attemptRec struct {
	start, end time.Time
	code       codes.Code
	reason     string
}

// ledgerConn is a gRPC connection to one ledgerd.
type ledgerConn struct {
	conn     *grpc.ClientConn
	ledger   pb.CreditLedgerClient
	settings pb.CreditSettingsClient
}

func dialFault(t testing.TB, addr string) ledgerConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ledgerConn{conn: conn, ledger: pb.NewCreditLedgerClient(conn), settings: pb.NewCreditSettingsClient(conn)}
}

// faultRun is the load of one test on one workspace, against one or more
// ledgerd replicas.
type faultRun struct {
	t        *testing.T
	ws       string
	accounts []string
	conns    []ledgerConn

	mu       sync.Mutex
	ops      []*faultOp
	attempts []attemptRec
	problems []string // answers no fault explains
	seq      int

	// acked counts acknowledged operations as they happen, for a test
	// that watches the load while it runs (stats is for after it).
	acked atomic.Int64
}

func newFaultRun(t *testing.T, ws string, accounts int, conns ...ledgerConn) *faultRun {
	r := &faultRun{t: t, ws: ws, conns: conns}
	for i := range accounts {
		r.accounts = append(r.accounts, fmt.Sprintf("acct-%d", i))
	}
	return r
}

// newOp registers an operation with a fresh key.
func (r *faultRun) newOp(kind opKind, account string, amount int64) *faultOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	o := &faultOp{kind: kind, key: fmt.Sprintf("%s-%s-%06d", r.ws, kind, r.seq), account: account, amount: amount}
	r.ops = append(r.ops, o)
	return o
}

func (r *faultRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// setup enables credit payments (debits and requests need them) and
// pre-funds every account through the same path as the load.
func (r *faultRun) setup() {
	r.t.Helper()
	deadline := time.Now().Add(faultSettleTimeout)
	for {
		ctx, cancel := context.WithTimeout(r.t.Context(), faultAttemptTimeout)
		_, err := r.conns[0].settings.UpdateSettings(ctx, &pb.UpdateSettingsRequest{
			Workspace: r.ws, Settings: &pb.Settings{CreditPaymentsEnabled: true},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
		})
		cancel()
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			r.t.Fatalf("enable credit payments: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, a := range r.accounts {
		o := r.newOp(opCredit, a, faultPrefund)
		if err := r.settle(r.t.Context(), o, 0); err != nil {
			r.t.Fatalf("pre-fund %s: %v", a, err)
		}
	}
}

// post sends o, a credit or a debit, once.
func post(ctx context.Context, ws string, c ledgerConn, o *faultOp) (*pb.Transaction, bool, error) {
	ref := "fault:" + o.key
	if o.kind == opCredit {
		res, err := c.ledger.Credit(ctx, &pb.CreditRequest{Workspace: ws, Account: o.account, Amount: o.amount, IdempotencyKey: o.key, Reference: ref})
		return res.GetTransaction(), res.GetReplayed(), err
	}
	res, err := c.ledger.Debit(ctx, &pb.DebitRequest{Workspace: ws, Account: o.account, Amount: o.amount, IdempotencyKey: o.key, Reference: ref})
	return res.GetTransaction(), res.GetReplayed(), err
}

// send makes one attempt. It returns the answer's code and reason, and
// fills o's outcome when the answer is definite.
func (r *faultRun) send(ctx context.Context, c ledgerConn, o *faultOp) (codes.Code, string) {
	ctx, cancel := context.WithTimeout(ctx, faultAttemptTimeout)
	defer cancel()
	var (
		tx       *pb.Transaction
		replayed bool
		err      error
	)
	ref := "fault:" + o.key
	switch o.kind {
	case opCredit, opDebit:
		tx, replayed, err = post(ctx, r.ws, c, o)
	case opSubmit:
		var res *pb.SubmitRequestResponse
		res, err = c.ledger.SubmitRequest(ctx, &pb.SubmitRequestRequest{
			Workspace: r.ws, Account: o.account, Amount: o.amount, IdempotencyKey: o.key,
			PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, PaymentReference: ref,
		})
		if err == nil {
			req := res.GetRequest()
			if req.GetId() == "" || req.GetAccount() != o.account || req.GetAmount() != o.amount {
				r.problem("%s acknowledged with a request that does not match: %v", o.key, req)
			}
			o.reqID, replayed = req.GetId(), res.GetReplayed()
		}
	case opDecide:
		decision := pb.Decision_DECISION_REJECT
		if o.accept {
			decision = pb.Decision_DECISION_ACCEPT
		}
		var res *pb.DecideRequestResponse
		res, err = c.ledger.DecideRequest(ctx, &pb.DecideRequestRequest{
			Workspace: r.ws, RequestId: o.requestID, Decision: decision, DecidedBy: "fault-test",
			Reason: ref, IdempotencyKey: o.key,
		})
		tx, replayed = res.GetTransaction(), res.GetReplayed()
		if err == nil && (tx != nil) != o.accept {
			r.problem("%s: decision accept=%v answered with transaction %v", o.key, o.accept, tx)
		}
	}
	if err == nil {
		if tx != nil {
			if tx.GetId() == "" || tx.GetIdempotencyKey() != o.key || tx.GetAmount() != o.amount || tx.GetAccount() != o.account {
				r.problem("%s acknowledged with a transaction that does not match: %v", o.key, tx)
			}
			o.txID = tx.GetId()
		}
		if replayed && o.attempts == 1 {
			r.problem("%s: replayed on its first attempt (keys are unique)", o.key)
		}
		o.done, o.acked, o.replayed = true, true, replayed
		r.acked.Add(1)
		return codes.OK, ""
	}
	st := status.Convert(err)
	var reason string
	var md map[string]string
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			reason, md = ei.GetReason(), ei.GetMetadata()
		}
	}
	if st.Code() == codes.FailedPrecondition && reason == "INSUFFICIENT_CREDITS" && o.kind == opDebit {
		o.done, o.refused, o.refusedBalance = true, reason, -1
		if b, err := strconv.ParseInt(md["balance"], 10, 64); err == nil {
			o.refusedBalance = b
		}
	}
	return st.Code(), reason
}

// retryable reports an answer that is not definite: retried with the same key.
func retryable(code codes.Code, reason string) bool {
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	case codes.Aborted:
		return reason == "IDEMPOTENCY_KEY_IN_USE"
	}
	return false
}

// settle sends o until its answer is definite, retrying with the same key
// on the replicas in turn (starting with worker's).
func (r *faultRun) settle(ctx context.Context, o *faultOp, worker int) error {
	o.first = time.Now()
	backoff := 5 * time.Millisecond
	for {
		c := r.conns[(worker+o.attempts)%len(r.conns)]
		o.attempts++
		start := time.Now()
		code, reason := r.send(ctx, c, o)
		end := time.Now()
		r.mu.Lock()
		r.attempts = append(r.attempts, attemptRec{start: start, end: end, code: code, reason: reason})
		r.mu.Unlock()
		switch {
		case o.done:
			o.last, o.end = start, end
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%s: gave up after %d attempts: %w", o.key, o.attempts, ctx.Err())
		case !retryable(code, reason):
			r.problem("%s (%s): answered %s %s, which no fault explains", o.key, o.kind, code, reason)
			return fmt.Errorf("%s: answered %s %s", o.key, code, reason)
		case time.Since(o.first) > faultSettleTimeout:
			return fmt.Errorf("%s: no definite answer within %v (%d attempts, last %s %s)", o.key, faultSettleTimeout, o.attempts, code, reason)
		}
		time.Sleep(backoff/2 + rand.N(backoff)) //nolint:gosec // G404: jitter
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// load runs workers until stop is cancelled; each worker posts credits and
// debits on random accounts, and submits credit requests in submitPct
// percent of its operations (deciding each one it submitted when decide is
// set). An operation in flight when stop ends is settled first. It returns
// when every worker is done.
func (r *faultRun) load(stop context.Context, workers, submitPct int, decide bool) {
	var wg sync.WaitGroup
	for w := range workers {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(w))) //nolint:gosec // G404: test schedule
		wg.Go(func() {
			for stop.Err() == nil {
				account := r.accounts[rng.IntN(len(r.accounts))]
				var o *faultOp
				switch p := rng.IntN(100); {
				case p < submitPct:
					o = r.newOp(opSubmit, account, 1+rng.Int64N(50))
				case p < 50+submitPct/2:
					o = r.newOp(opCredit, account, 1+rng.Int64N(100))
				default:
					// Debits a little larger than credits keep balances
					// low, so that refusals are frequent.
					o = r.newOp(opDebit, account, 1+rng.Int64N(120))
				}
				if err := r.settle(r.t.Context(), o, w); err != nil {
					r.problem("worker %d: %v", w, err)
					return
				}
				if o.kind == opSubmit && o.acked && decide {
					d := r.newOp(opDecide, account, o.amount)
					d.requestID, d.accept = o.reqID, rng.IntN(100) < 70
					if err := r.settle(r.t.Context(), d, w); err != nil {
						r.problem("worker %d: %v", w, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// loadUntilStopped runs r.load in the background with workers that post
// credits and debits only. stopLoad ends it (so does the test's end), and
// done is closed once every worker has returned.
func (r *faultRun) loadUntilStopped(workers int) (stopLoad context.CancelFunc, done <-chan struct{}) {
	stop, stopLoad := context.WithCancel(r.t.Context())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		r.load(stop, workers, 0, false)
	}()
	return stopLoad, ch
}

// firstAckAfter waits for the first call that began after since and was
// acknowledged, and answers when that call ended. It gives up once within
// has passed since since, or when the load (done) has stopped.
func (r *faultRun) firstAckAfter(since time.Time, within time.Duration, done <-chan struct{}) (time.Time, error) {
	for {
		if time.Since(since) > within {
			return time.Time{}, fmt.Errorf("no write acknowledged within %v", within)
		}
		if isDone(done) {
			return time.Time{}, fmt.Errorf("the load stopped: %v", r.problems)
		}
		time.Sleep(10 * time.Millisecond)
		r.mu.Lock()
		for _, a := range r.attempts {
			if a.code == codes.OK && a.start.After(since) {
				r.mu.Unlock()
				return a.end, nil
			}
		}
		r.mu.Unlock()
	}
}

// faultStats sums up what the clients saw.
type faultStats struct {
	ops, acked, refused, replayed int
	byCode                        map[string]int
}

func (s faultStats) String() string {
	keys := make([]string, 0, len(s.byCode))
	for k := range s.byCode {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, s.byCode[k])
	}
	return fmt.Sprintf("%d operations: %d acknowledged (%d by replay), %d refused; answers:%s",
		s.ops, s.acked, s.replayed, s.refused, b.String())
}

func (r *faultRun) stats() faultStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := faultStats{ops: len(r.ops), byCode: map[string]int{}}
	for _, o := range r.ops {
		switch {
		case o.acked:
			s.acked++
		case o.refused != "":
			s.refused++
		}
		if o.replayed {
			s.replayed++
		}
	}
	for _, a := range r.attempts {
		k := a.code.String()
		if a.reason != "" && a.code != codes.Unavailable {
			k += "/" + a.reason
		}
		s.byCode[k]++
	}
	return s
}

// requireCleanAnswers fails the test for every answer no fault explains.
func (r *faultRun) requireCleanAnswers() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, p := range r.problems {
		if i == 20 {
			r.t.Errorf("… and %d more", len(r.problems)-i)
			break
		}
		r.t.Error(p)
	}
}

// audit holds the ledger, read through c after the load, to what the
// clients were told:
//   - every account's history is a chain (versions 1..n, running
//     balances), its balance and version are the chain's end;
//   - every acknowledged posting is in it exactly once, as acknowledged
//     (same transaction, account, amount, direction), and nothing else is:
//     no key posted twice, no refused or unknown operation posted;
//   - every INSUFFICIENT_CREDITS refusal names a balance the account really
//     had (committed, not a batch's that was rolled back) and that is
//     below the amount;
//   - every acknowledged request is listed once, decided as acknowledged;
//   - conservation: opening credits + acknowledged credits and accepted
//     requests − acknowledged debits = the sum of the balances.
func (r *faultRun) audit(c ledgerConn) {
	r.t.Helper()
	t := r.t
	r.mu.Lock()
	defer r.mu.Unlock()
	byKey := map[string]*faultOp{}
	var want int64 // what the clients were told, summed
	for _, o := range r.ops {
		byKey[o.key] = o
		if !o.done {
			t.Errorf("%s (%s) was abandoned without a definite answer", o.key, o.kind)
		}
		if !o.acked {
			continue
		}
		switch {
		case o.kind == opCredit, o.kind == opDecide && o.accept:
			want += o.amount
		case o.kind == opDebit:
			want -= o.amount
		}
	}
	var total int64
	for _, account := range r.accounts {
		txs := listHistory(t, c, r.ws, account)
		seen := map[string]bool{}
		var chain []*faultOp // the operation of each version, nil when unknown
		var balance int64
		for i, tx := range txs {
			if tx.GetAccountVersion() != int64(i+1) {
				t.Errorf("%s: entry %d has version %d: gap or duplicate", account, i, tx.GetAccountVersion())
			}
			in := tx.GetType() == pb.TransactionType_TRANSACTION_TYPE_IN
			if in {
				balance += tx.GetAmount()
			} else {
				balance -= tx.GetAmount()
			}
			if balance < 0 || tx.GetBalanceAfter() != balance {
				t.Errorf("%s v%d: balance_after %d, recomputed %d", account, tx.GetAccountVersion(), tx.GetBalanceAfter(), balance)
			}
			k := tx.GetIdempotencyKey()
			if seen[k] {
				t.Errorf("%s: key %s posted twice", account, k)
			}
			seen[k] = true
			o := byKey[k]
			chain = append(chain, o)
			switch {
			case o == nil:
				t.Errorf("%s: transaction %s with key %q nobody sent", account, tx.GetId(), k)
			case o.refused != "":
				t.Errorf("%s: %s was refused (%s) yet posted as %s", account, k, o.refused, tx.GetId())
			case !o.acked:
				t.Errorf("%s: %s was never acknowledged, yet posted as %s", account, k, tx.GetId())
			case o.txID != tx.GetId() || o.account != account || o.amount != tx.GetAmount() || in == (o.kind == opDebit):
				t.Errorf("%s: %s (%s) acknowledged as %s/%s/%d, the ledger holds %s/%s/%s/%d",
					account, k, o.kind, o.txID, o.account, o.amount, tx.GetId(), account, tx.GetType(), tx.GetAmount())
			}
		}
		for _, o := range r.ops {
			if o.account != account {
				continue
			}
			if o.acked && o.txID != "" && !seen[o.key] {
				t.Errorf("%s: acknowledged %s (%s, transaction %s) is missing", account, o.key, o.kind, o.txID)
			}
			if o.refused == "INSUFFICIENT_CREDITS" {
				switch {
				case o.refusedBalance >= o.amount:
					t.Errorf("%s: %s refused for insufficient credits with balance %d for %d", account, o.key, o.refusedBalance, o.amount)
				case !couldHaveSeen(txs, chain, o):
					t.Errorf("%s: %s refused for insufficient credits with balance %d, which the account never had in committed "+
						"state while the refusal was being decided: it was decided on writes that did not commit", account, o.key, o.refusedBalance)
				}
			}
		}
		ctx, cancel := context.WithTimeout(t.Context(), faultAttemptTimeout)
		b, err := c.ledger.GetBalance(ctx, &pb.GetBalanceRequest{Workspace: r.ws, Account: account})
		cancel()
		if err != nil {
			t.Fatalf("balance of %s: %v", account, err)
		}
		if b.GetBalance().GetBalance() != balance || b.GetBalance().GetVersion() != int64(len(txs)) {
			t.Errorf("%s: balance %d v%d, entries sum to %d over %d", account, b.GetBalance().GetBalance(), b.GetBalance().GetVersion(), balance, len(txs))
		}
		total += b.GetBalance().GetBalance()
	}
	if total != want {
		t.Errorf("conservation: the balances sum to %d, the acknowledged operations to %d", total, want)
	}

	// Requests: each acknowledged submission listed once, as decided.
	decided := map[string]*faultOp{}
	submitted := map[string]*faultOp{}
	for _, o := range r.ops {
		switch {
		case o.kind == opSubmit && o.acked:
			submitted[o.reqID] = o
		case o.kind == opDecide && o.acked:
			decided[o.requestID] = o
		}
	}
	if len(submitted) == 0 {
		return
	}
	listed := map[string]int{}
	for _, req := range listQueue(t, c, r.ws) {
		listed[req.GetId()]++
		s := submitted[req.GetId()]
		if s == nil {
			t.Errorf("request %s (%s) nobody was told about", req.GetId(), req.GetPaymentReference())
			continue
		}
		wantStatus := pb.RequestStatus_REQUEST_STATUS_PENDING
		if d := decided[req.GetId()]; d != nil {
			wantStatus = pb.RequestStatus_REQUEST_STATUS_REJECTED
			if d.accept {
				wantStatus = pb.RequestStatus_REQUEST_STATUS_ACCEPTED
				if req.GetTransactionId() != d.txID {
					t.Errorf("request %s accepted with transaction %s, the ledger says %s", req.GetId(), d.txID, req.GetTransactionId())
				}
			}
		}
		if req.GetStatus() != wantStatus || req.GetPaymentReference() != "fault:"+s.key || req.GetAmount() != s.amount {
			t.Errorf("request %s: %s %s %d, the clients were told %s fault:%s %d", req.GetId(), req.GetStatus(), req.GetPaymentReference(), req.GetAmount(), wantStatus, s.key, s.amount)
		}
	}
	for id, s := range submitted {
		if listed[id] != 1 {
			t.Errorf("acknowledged request %s (key %s) listed %d times", id, s.key, listed[id])
		}
	}
}

// couldHaveSeen reports whether a refusal's balance is one the account had
// in committed state while the refusal's attempt was in flight. Version v
// (0: the empty account) was the committed state from its commit to the
// next one; its commit came after its operation was first sent, the next
// commit before the next operation was acknowledged. So the refusal may
// have seen v if v's balance is the one it names, v's operation was sent
// before the refusal's answer came, and the next version's answer came
// after the refusal's attempt was sent. (A refusal decided within a batch
// sees the writes of the batch before it; they commit with it, so the
// same bounds hold.)
func couldHaveSeen(txs []*pb.Transaction, chain []*faultOp, refusal *faultOp) bool {
	for v := 0; v <= len(txs); v++ {
		var balance int64
		if v > 0 {
			balance = txs[v-1].GetBalanceAfter()
		}
		if balance != refusal.refusedBalance {
			continue
		}
		if v > 0 && chain[v-1] != nil && chain[v-1].first.After(refusal.end) {
			continue // v was not even asked for yet
		}
		if v < len(txs) && chain[v] != nil && chain[v].end.Before(refusal.last) {
			continue // v had been superseded already
		}
		return true
	}
	return false
}

// listHistory reads an account's whole history, oldest first.
func listHistory(t testing.TB, c ledgerConn, ws, account string) []*pb.Transaction {
	t.Helper()
	var all []*pb.Transaction
	token := ""
	for {
		ctx, cancel := context.WithTimeout(t.Context(), faultAttemptTimeout)
		res, err := c.ledger.ListTransactions(ctx, &pb.ListTransactionsRequest{Workspace: ws, Account: account, PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			t.Fatalf("list %s: %v", account, err)
		}
		all = append(all, res.GetTransactions()...)
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	slices.Reverse(all) // newest first → oldest first
	return all
}

// listQueue reads the workspace's whole request queue, oldest first.
func listQueue(t testing.TB, c ledgerConn, ws string) []*pb.CreditPurchaseRequest {
	t.Helper()
	var all []*pb.CreditPurchaseRequest
	token := ""
	for {
		ctx, cancel := context.WithTimeout(t.Context(), faultAttemptTimeout)
		res, err := c.ledger.ListRequests(ctx, &pb.ListRequestsRequest{Workspace: ws, PageSize: 500, PageToken: token})
		cancel()
		if err != nil {
			t.Fatalf("list requests: %v", err)
		}
		all = append(all, res.GetRequests()...)
		if token = res.GetNextPageToken(); token == "" {
			return all
		}
	}
}

// ledgerdBin is the path of the built ledgerd.
func ledgerdBin(t testing.TB) string {
	t.Helper()
	return filepath.Join(binaries(t), exe("ledgerd"))
}

// ledgerdCmd runs a one-shot ledgerd subcommand against dbURL and returns
// its stdout; a non-zero exit fails the test.
func ledgerdCmd(t testing.TB, dbURL string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ledgerdBin(t), args...) //nolint:gosec // the binary this test built
	// Migrations as the owner (dbURL), everything else as the runtime role.
	cmd.Env = append(baseEnv(), envKV("LEDGER_MIGRATE_DATABASE_URL", dbURL), envKV("LEDGER_DATABASE_URL", pgtest.RuntimeURL(dbURL)))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var xe *exec.ExitError
		if errors.As(err, &xe) {
			t.Fatalf("ledgerd %s: exit %d\n%s\n%s", strings.Join(args, " "), xe.ExitCode(), out, stderr.String())
		}
		t.Fatalf("ledgerd %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// verifyLedger runs `ledgerd verify` on the database: exit 0 and its ok line.
func verifyLedger(t testing.TB, dbURL string) {
	t.Helper()
	out := ledgerdCmd(t, dbURL, "verify")
	if !strings.Contains(out, "ok:") {
		t.Fatalf("ledgerd verify printed no ok line:\n%s", out)
	}
	t.Logf("ledgerd verify: %s", strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]))
}

// startLedgerd serves the database at dbURL (already migrated) as the
// runtime role, with authentication off and the shared page-token key, plus env.
func startLedgerd(t *testing.T, dbURL string, env ...string) *proc {
	t.Helper()
	env = append([]string{
		envKV("LEDGER_DATABASE_URL", pgtest.RuntimeURL(dbURL)), envKV("LEDGER_AUTH", "none"),
		envKV("LEDGER_PAGE_TOKEN_KEY", faultPageTokenKey),
	}, env...)
	return startProc(t, ledgerdBin(t), []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}, env...)
}
