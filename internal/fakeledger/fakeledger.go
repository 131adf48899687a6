// Package fakeledger is a FAKE CreditLedger for the tests of the ledger's
// consumers (ledgerclient, checkout, invoicing, ledgerctl). It is not the
// ledger: it keeps everything in memory behind one mutex, has no
// authorization policy beyond an optional fixed token, and implements just
// enough of the contract of SPEC.md for a consumer to be tested against a
// real gRPC server on a loopback socket: idempotent Credit / Debit /
// SubmitRequest / DecideRequest (replays, IDEMPOTENCY_KEY_REUSED),
// INSUFFICIENT_CREDITS, CREDIT_PAYMENTS_DISABLED, VERSION_MISMATCH,
// packages, conversion rates (exact conversion, rounded up, through the
// domain's ledger.CreditsFor), CheckCreditPayment and paginated reads,
// holds (CreateHold, CaptureHold, VoidHold, GetHold, ListHolds: available =
// balance − held, HOLD_NOT_ACTIVE, expiry on the fake's clock, see
// Advance), reversals (ReverseTransaction, GetTransaction:
// REVERSAL_EXCEEDS_ORIGINAL, NOT_REVERSIBLE, INSUFFICIENT_CREDITS) and
// events (ListEvents, WatchEvents: every change above writes its events,
// numbered per workspace; see events.go). Its errors carry
// google.rpc.ErrorInfo like the real server's.
//
// Faults can be injected per method, before or after the call takes
// effect, to simulate an unreachable store or an answer lost after COMMIT.
// The real ledger is proven by its own conformance suite and by the e2e
// tests, never by this package.
package fakeledger

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/ledger"
)

// Fault is an injected failure of one call.
type Fault struct {
	// Code and Reason of the status returned; codes.OK with a Delay only
	// delays the call.
	Code   codes.Code
	Reason string
	// After applies the call first and then fails it: the effect happened,
	// the answer is lost (a timeout or a broken connection after COMMIT).
	After bool
	// Delay waits this long before answering (after the effect, when
	// After is set), or until the caller gives up.
	Delay time.Duration
}

// Call is one call the server received.
type Call struct {
	Method         string // short name: "Debit"
	IdempotencyKey string
	Authorization  string
	Code           codes.Code    // what the caller got (a stream: OK once it started)
	Request        proto.Message // nil for a stream refused before it started
}

// Server is the fake. Create it with Start.
type Server struct {
	// Addr is the loopback address it listens on.
	Addr string

	token string
	tls   *tls.Config // nil: plaintext

	mu     sync.Mutex
	ws     map[string]*workspace
	faults map[string][]Fault
	calls  []Call
	seq    int
	now    func() time.Time
	// changed is closed (and replaced) at every event, broken by
	// BreakWatches: the open watches wait on both.
	changed, broken chan struct{}
}

type workspace struct {
	id       string
	events   []*pb.Event
	enabled  bool
	settings time.Time
	accounts map[string]*account
	keys     map[string]keyRecord
	requests map[string]*pb.CreditPurchaseRequest
	reqOrder []string
	packages map[string]*pb.CreditPackage
	rates    map[string][]*pb.ConversionRate // newest first
	holds    map[string]*pb.Hold
	holdIDs  []string                   // creation order
	txByID   map[string]*pb.Transaction // every entry of the workspace
	reversed map[string]int64           // transaction id → credits reversed so far

	// methods are the payment methods offered once chosen (methodsSet);
	// every method until then.
	methods    []pb.PaymentMethod
	methodsSet bool
	lowBalance int64
}

type account struct {
	balance, version int64
	txs              []*pb.Transaction // by version
}

type keyRecord struct {
	method      string
	fingerprint string
	response    proto.Message
}

// Option configures Start.
type Option func(*Server)

// WithToken makes the server refuse calls without "authorization: Bearer <token>".
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithServerTLS serves gRPC over TLS with cfg (set ClientAuth and
// ClientCAs in it for mTLS).
func WithServerTLS(cfg *tls.Config) Option { return func(s *Server) { s.tls = cfg } }

// New returns a fake ledger that is not serving yet; see GRPCServer.
// Tests use Start.
func New(opts ...Option) *Server {
	s := &Server{
		ws: map[string]*workspace{}, faults: map[string][]Fault{}, now: time.Now,
		changed: make(chan struct{}), broken: make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// GRPCServer returns a gRPC server serving the fake's CreditLedger and
// CreditSettings, with its fault injection and call recording.
func (s *Server) GRPCServer() *grpc.Server {
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(s.intercept), grpc.StreamInterceptor(s.interceptStream)}
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	gs := grpc.NewServer(opts...)
	pb.RegisterCreditLedgerServer(gs, ledgerService{s: s})
	pb.RegisterCreditSettingsServer(gs, settingsService{s: s})
	return gs
}

// Start runs a fake ledger on 127.0.0.1:0 until the test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := New(opts...)
	lis, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("fakeledger: listen: %v", err)
	}
	s.Addr = lis.Addr().String()
	gs := s.GRPCServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	tb.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return s
}

// InjectFault queues faults for the next calls of method (short name,
// "Debit"), one per call, in order.
func (s *Server) InjectFault(method string, faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[method] = append(s.faults[method], faults...)
}

// Calls returns the calls received for method ("" for all), in order.
func (s *Server) Calls(method string) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Call
	for _, c := range s.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Balance returns an account's balance and version.
func (s *Server) Balance(workspace, acct string) (balance, version int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.workspace(workspace).account(acct)
	return a.balance, a.version
}

// Transactions returns an account's entries by version (oldest first).
func (s *Server) Transactions(workspace, acct string) []*pb.Transaction {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*pb.Transaction
	w := s.workspace(workspace)
	for _, t := range w.account(acct).txs {
		out = append(out, w.view(t))
	}
	return out
}

// Advance moves the fake's clock forward by d: holds whose expire_time
// passed are EXPIRED at once (hold.expired), as the real server's sweeper
// releases them.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.now
	s.now = func() time.Time { return prev().Add(d) }
	for _, id := range slices.Sorted(maps.Keys(s.ws)) {
		s.expireDue(s.ws[id])
	}
}

// SetEnabled switches credit payments of a workspace (test setup shortcut).
func (s *Server) SetEnabled(workspace string, enabled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(workspace)
	w.enabled, w.settings = enabled, s.now().UTC()
	s.emit(w, ledger.EventSettingsUpdated, "", settingsOf(workspace, w))
}

// SetPaymentMethods makes the workspace offer only methods (test setup
// shortcut; none for an empty list).
func (s *Server) SetPaymentMethods(workspace string, methods ...pb.PaymentMethod) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(workspace)
	w.methods, w.methodsSet = slices.Sorted(slices.Values(methods)), true
}

// offers reports whether the workspace offers payment method m.
func (w *workspace) offers(m pb.PaymentMethod) bool {
	return !w.methodsSet || slices.Contains(w.methods, m)
}

// SetRate sets a conversion rate (test setup shortcut).
func (s *Server) SetRate(workspace, currency, rate string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(workspace)
	w.rates[currency] = append([]*pb.ConversionRate{{Workspace: workspace, CurrencyCode: currency, Rate: rate, Active: true, CreateTime: s.ts()}}, w.rates[currency]...)
}

// Fund credits an account directly (test setup shortcut).
func (s *Server) Fund(workspace, acct string, credits int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	w := s.workspace(workspace)
	s.posted(w, s.appendTx(workspace, w.account(acct), acct, pb.TransactionType_TRANSACTION_TYPE_IN,
		pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT, credits, "fakeledger:fund", fmt.Sprintf("fund-%d", s.seq), nil, "", ""))
}

func (s *Server) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	call := Call{Method: method}
	if k, ok := req.(interface{ GetIdempotencyKey() string }); ok {
		call.IdempotencyKey = k.GetIdempotencyKey()
	}
	if m, ok := req.(proto.Message); ok {
		call.Request = proto.Clone(m)
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get("authorization"); len(v) > 0 {
			call.Authorization = v[0]
		}
	}
	s.mu.Lock()
	var f *Fault
	if q := s.faults[method]; len(q) > 0 {
		f = &q[0]
		s.faults[method] = q[1:]
	}
	s.mu.Unlock()

	res, err := s.serve(ctx, req, handler, call, f)
	call.Code = status.Code(err)
	s.mu.Lock()
	s.calls = append(s.calls, call)
	s.mu.Unlock()
	return res, err
}

func (s *Server) serve(ctx context.Context, req any, handler grpc.UnaryHandler, call Call, f *Fault) (any, error) {
	if s.token != "" && call.Authorization != "Bearer "+s.token {
		return nil, fail(codes.Unauthenticated, "UNAUTHENTICATED", "missing or invalid bearer token", nil)
	}
	wait := func() error {
		if f == nil || f.Delay <= 0 {
			return nil
		}
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-t.C:
			return nil
		}
	}
	if f != nil && !f.After {
		if err := wait(); err != nil {
			return nil, err
		}
		if f.Code != codes.OK {
			return nil, fail(f.Code, f.Reason, "injected fault", nil)
		}
	}
	res, err := handler(ctx, req)
	if f != nil && f.After {
		if werr := wait(); werr != nil {
			return nil, werr
		}
		if f.Code != codes.OK {
			return nil, fail(f.Code, f.Reason, "injected fault after the call took effect", nil)
		}
	}
	return res, err
}

// fail builds a status with an ErrorInfo, like the real server.
func fail(code codes.Code, reason, msg string, md map[string]string) error {
	st := status.New(code, msg)
	if reason == "" {
		return st.Err()
	}
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: "creditledger", Reason: reason, Metadata: md})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

func invalid(field, desc string) error {
	st := status.New(codes.InvalidArgument, "invalid request: "+field+": "+desc)
	withDetails, err := st.WithDetails(
		&errdetails.ErrorInfo{Domain: "creditledger", Reason: "INVALID_ARGUMENT"},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}},
	)
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}

func notFound(what, id string) error {
	return fail(codes.NotFound, "NOT_FOUND", fmt.Sprintf("%s %q not found", what, id), map[string]string{"resource": what, "id": id})
}

func (s *Server) ts() *timestamppb.Timestamp { return timestamppb.New(s.now().UTC()) }

func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%08d", prefix, s.seq)
}

func (s *Server) workspace(id string) *workspace {
	w, ok := s.ws[id]
	if !ok {
		w = &workspace{
			id:       id,
			accounts: map[string]*account{}, keys: map[string]keyRecord{}, requests: map[string]*pb.CreditPurchaseRequest{},
			packages: map[string]*pb.CreditPackage{}, rates: map[string][]*pb.ConversionRate{},
			holds: map[string]*pb.Hold{}, txByID: map[string]*pb.Transaction{}, reversed: map[string]int64{},
		}
		s.ws[id] = w
	}
	return w
}

func (w *workspace) account(id string) *account {
	a, ok := w.accounts[id]
	if !ok {
		a = &account{}
		w.accounts[id] = a
	}
	return a
}

// fingerprint is the request's meaning: everything but the key.
func fingerprint(m proto.Message) string {
	c := proto.Clone(m)
	r := c.ProtoReflect()
	if fd := r.Descriptor().Fields().ByName("idempotency_key"); fd != nil {
		r.Clear(fd)
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	return string(b)
}

// replay looks the key up: the stored response, or IDEMPOTENCY_KEY_REUSED.
func replay(w *workspace, method, key string, req proto.Message) (proto.Message, error) {
	rec, ok := w.keys[key]
	if !ok {
		return nil, nil
	}
	if rec.method != method || rec.fingerprint != fingerprint(req) {
		return nil, fail(codes.InvalidArgument, "IDEMPOTENCY_KEY_REUSED",
			"the idempotency key was used for a different request", map[string]string{"idempotency_key": key})
	}
	return proto.Clone(rec.response), nil
}

// required checks that the named fields (name, value pairs) are set.
func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" {
			return invalid(fields[i], "is required")
		}
	}
	return nil
}

// checkKey checks an idempotency key and the named fields.
func checkKey(key string, fields ...string) error {
	if err := required(fields...); err != nil {
		return err
	}
	if key == "" || len(key) > 255 {
		return invalid("idempotency_key", "must be 1-255 printable ASCII characters")
	}
	return nil
}

func (s *Server) appendTx(ws string, a *account, acct string, typ pb.TransactionType, kind pb.TransactionKind, amount int64,
	ref, key string, md map[string]string, pkg, req string,
) *pb.Transaction {
	bal := a.balance + amount
	if typ == pb.TransactionType_TRANSACTION_TYPE_OUT {
		bal = a.balance - amount
	}
	a.balance, a.version = bal, a.version+1
	t := &pb.Transaction{
		Id: s.newID("tx"), Workspace: ws, Account: acct, Type: typ, Kind: kind, Amount: amount,
		BalanceAfter: bal, AccountVersion: a.version, Reference: ref, IdempotencyKey: key,
		Metadata: maps.Clone(md), PackageId: pkg, RequestId: req, CreateTime: s.ts(),
	}
	a.txs = append(a.txs, t)
	s.workspace(ws).txByID[t.GetId()] = t
	return t
}

func (s *Server) credits(w *workspace, price *money.Money) (int64, *pb.ConversionRate, error) {
	rates := w.rates[price.GetCurrencyCode()]
	if len(rates) == 0 {
		return 0, nil, fail(codes.FailedPrecondition, "NO_CONVERSION_RATE", "no conversion rate is set for "+price.GetCurrencyCode(),
			map[string]string{"currency_code": price.GetCurrencyCode()})
	}
	d, err := ledger.ParseDecimal(rates[0].GetRate())
	if err != nil {
		return 0, nil, fail(codes.Internal, "INTERNAL", err.Error(), nil)
	}
	c, err := ledger.CreditsFor(ledger.Money{Currency: price.GetCurrencyCode(), Units: price.GetUnits(), Nanos: price.GetNanos()}, d)
	if err != nil {
		return 0, nil, fail(codes.InvalidArgument, "AMOUNT_OVERFLOW", err.Error(), nil)
	}
	return c, rates[0], nil
}

func (s *Server) activePackage(w *workspace, id string) (*pb.CreditPackage, error) {
	p, ok := w.packages[id]
	if !ok {
		return nil, notFound("package", id)
	}
	if !p.GetActive() {
		return nil, fail(codes.FailedPrecondition, "PACKAGE_INACTIVE", "package "+id+" is archived", map[string]string{"package_id": id})
	}
	return p, nil
}

func (s *Server) balance(ws string, w *workspace, acct string) *pb.Balance {
	a := w.account(acct)
	s.expireDue(w)
	held := w.held(acct)
	b := &pb.Balance{
		Workspace: ws, Account: acct, Balance: a.balance, Version: a.version, CreditPaymentsEnabled: w.enabled,
		Held: held, Available: a.balance - held,
	}
	for _, r := range w.requests {
		if r.GetAccount() == acct && r.GetStatus() == pb.RequestStatus_REQUEST_STATUS_PENDING {
			b.PendingRequestCredits += r.GetAmount()
		}
	}
	if n := len(a.txs); n > 0 {
		b.UpdateTime = a.txs[n-1].GetCreateTime()
	}
	return b
}

// page cuts items[offset:] to size and returns the next token.
func page[T any](items []T, token string, size int32) ([]T, string, error) {
	off := 0
	if token != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(token, "fake:"))
		if err != nil || !strings.HasPrefix(token, "fake:") || n < 0 || n > len(items) {
			return nil, "", invalid("page_token", "is not a token of this listing")
		}
		off = n
	}
	if size <= 0 {
		size = 50
	}
	size = min(size, 500)
	end := min(off+int(size), len(items))
	next := ""
	if end < len(items) {
		next = "fake:" + strconv.Itoa(end)
	}
	return items[off:end], next, nil
}

type ledgerService struct {
	pb.UnimplementedCreditLedgerServer
	s *Server
}

func (l ledgerService) Credit(_ context.Context, req *pb.CreditRequest) (*pb.CreditResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	if (req.GetAmount() > 0) == (req.GetPackageId() != "") || req.GetAmount() < 0 {
		return nil, invalid("amount", "give a positive amount or a package_id")
	}
	kind := req.GetKind()
	if kind == pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED {
		kind = pb.TransactionKind_TRANSACTION_KIND_PURCHASE
	}
	if kind != pb.TransactionKind_TRANSACTION_KIND_PURCHASE && kind != pb.TransactionKind_TRANSACTION_KIND_REFUND && kind != pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT {
		return nil, invalid("kind", "must be PURCHASE, REFUND or ADJUSTMENT")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	if prev, err := replay(w, "Credit", req.GetIdempotencyKey(), req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.CreditResponse)
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	amount := req.GetAmount()
	if req.GetPackageId() != "" {
		p, err := s.activePackage(w, req.GetPackageId())
		if err != nil {
			return nil, err
		}
		amount = p.GetCredits()
	}
	a := w.account(req.GetAccount())
	if req.ExpectedVersion != nil && req.GetExpectedVersion() != a.version {
		return nil, fail(codes.Aborted, "VERSION_MISMATCH", "version mismatch", map[string]string{"current_version": strconv.FormatInt(a.version, 10)})
	}
	t := s.appendTx(req.GetWorkspace(), a, req.GetAccount(), pb.TransactionType_TRANSACTION_TYPE_IN, kind, amount,
		req.GetReference(), req.GetIdempotencyKey(), req.GetMetadata(), req.GetPackageId(), "")
	s.posted(w, t)
	res := &pb.CreditResponse{Transaction: t, Balance: a.balance, Version: a.version}
	w.keys[req.GetIdempotencyKey()] = keyRecord{method: "Credit", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) Debit(_ context.Context, req *pb.DebitRequest) (*pb.DebitResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	if req.GetAmount() <= 0 {
		return nil, invalid("amount", "must be greater than 0")
	}
	kind := req.GetKind()
	if kind == pb.TransactionKind_TRANSACTION_KIND_UNSPECIFIED {
		kind = pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE
	}
	if kind != pb.TransactionKind_TRANSACTION_KIND_SERVICE_PURCHASE && kind != pb.TransactionKind_TRANSACTION_KIND_INVOICE_PAYMENT && kind != pb.TransactionKind_TRANSACTION_KIND_ADJUSTMENT {
		return nil, invalid("kind", "must be SERVICE_PURCHASE, INVOICE_PAYMENT or ADJUSTMENT")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	if prev, err := replay(w, "Debit", req.GetIdempotencyKey(), req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.DebitResponse)
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	if !w.enabled {
		return nil, fail(codes.FailedPrecondition, "CREDIT_PAYMENTS_DISABLED", "credit payments are disabled in this workspace",
			map[string]string{"workspace": req.GetWorkspace()})
	}
	a := w.account(req.GetAccount())
	if req.ExpectedVersion != nil && req.GetExpectedVersion() != a.version {
		return nil, fail(codes.Aborted, "VERSION_MISMATCH", "version mismatch", map[string]string{"current_version": strconv.FormatInt(a.version, 10)})
	}
	if err := s.cover(w, req.GetAccount(), req.GetAmount()); err != nil {
		return nil, err
	}
	t := s.appendTx(req.GetWorkspace(), a, req.GetAccount(), pb.TransactionType_TRANSACTION_TYPE_OUT, kind, req.GetAmount(),
		req.GetReference(), req.GetIdempotencyKey(), req.GetMetadata(), "", "")
	s.posted(w, t)
	res := &pb.DebitResponse{Transaction: t, Balance: a.balance, Version: a.version}
	w.keys[req.GetIdempotencyKey()] = keyRecord{method: "Debit", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) GetBalance(_ context.Context, req *pb.GetBalanceRequest) (*pb.GetBalanceResponse, error) {
	if err := required("workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return &pb.GetBalanceResponse{Balance: l.s.balance(req.GetWorkspace(), l.s.workspace(req.GetWorkspace()), req.GetAccount())}, nil
}

func (l ledgerService) ListTransactions(_ context.Context, req *pb.ListTransactionsRequest) (*pb.ListTransactionsResponse, error) {
	if err := required("workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	var all []*pb.Transaction
	w := l.s.workspace(req.GetWorkspace())
	txs := w.account(req.GetAccount()).txs
	for i := len(txs) - 1; i >= 0; i-- {
		t := txs[i]
		if (req.GetType() != 0 && t.GetType() != req.GetType()) || (req.GetKind() != 0 && t.GetKind() != req.GetKind()) {
			continue
		}
		if req.GetStartTime() != nil && t.GetCreateTime().AsTime().Before(req.GetStartTime().AsTime()) {
			continue
		}
		if req.GetEndTime() != nil && !t.GetCreateTime().AsTime().Before(req.GetEndTime().AsTime()) {
			continue
		}
		all = append(all, w.view(t))
	}
	p, next, err := page(all, req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &pb.ListTransactionsResponse{Transactions: p, NextPageToken: next}, nil
}

func (l ledgerService) SubmitRequest(_ context.Context, req *pb.SubmitRequestRequest) (*pb.SubmitRequestResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	if req.GetPaymentMethod() != pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER && req.GetPaymentMethod() != pb.PaymentMethod_PAYMENT_METHOD_CRYPTO {
		return nil, invalid("payment_method", "must be BANK_TRANSFER or CRYPTO")
	}
	if (req.GetAmount() > 0) == (req.GetPackageId() != "") || req.GetAmount() < 0 {
		return nil, invalid("amount", "give a positive amount or a package_id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	if prev, err := replay(w, "SubmitRequest", req.GetIdempotencyKey(), req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.SubmitRequestResponse)
			r.Request = proto.CloneOf(w.requests[r.GetRequest().GetId()])
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	if !w.enabled {
		return nil, fail(codes.FailedPrecondition, "CREDIT_PAYMENTS_DISABLED", "credit payments are disabled in this workspace", nil)
	}
	if !w.offers(req.GetPaymentMethod()) {
		name := strings.TrimPrefix(req.GetPaymentMethod().String(), "PAYMENT_METHOD_")
		return nil, fail(codes.FailedPrecondition, "PAYMENT_METHOD_NOT_OFFERED", "the workspace does not offer "+name+" as a payment method",
			map[string]string{"payment_method": name})
	}
	amount := req.GetAmount()
	if req.GetPackageId() != "" {
		p, err := s.activePackage(w, req.GetPackageId())
		if err != nil {
			return nil, err
		}
		amount = p.GetCredits()
	}
	r := &pb.CreditPurchaseRequest{
		Id: s.newID("req"), Workspace: req.GetWorkspace(), Account: req.GetAccount(), Amount: amount, PackageId: req.GetPackageId(),
		PaymentMethod: req.GetPaymentMethod(), PaymentReference: req.GetPaymentReference(), Note: req.GetNote(),
		Status: pb.RequestStatus_REQUEST_STATUS_PENDING, Metadata: maps.Clone(req.GetMetadata()), CreateTime: s.ts(),
	}
	w.requests[r.GetId()] = r
	w.reqOrder = append(w.reqOrder, r.GetId())
	s.emit(w, ledger.EventRequestSubmitted, r.GetAccount(), r)
	res := &pb.SubmitRequestResponse{Request: proto.CloneOf(r)}
	w.keys[req.GetIdempotencyKey()] = keyRecord{method: "SubmitRequest", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) DecideRequest(_ context.Context, req *pb.DecideRequestRequest) (*pb.DecideRequestResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "request_id", req.GetRequestId(), "decided_by", req.GetDecidedBy()); err != nil {
		return nil, err
	}
	if req.GetDecision() != pb.Decision_DECISION_ACCEPT && req.GetDecision() != pb.Decision_DECISION_REJECT {
		return nil, invalid("decision", "must be ACCEPT or REJECT")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	if prev, err := replay(w, "DecideRequest", req.GetIdempotencyKey(), req); err != nil || prev != nil {
		if prev != nil {
			r := prev.(*pb.DecideRequestResponse)
			r.Replayed = true
			return r, nil
		}
		return nil, err
	}
	r, ok := w.requests[req.GetRequestId()]
	if !ok {
		return nil, notFound("request", req.GetRequestId())
	}
	if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_PENDING {
		return nil, fail(codes.FailedPrecondition, "REQUEST_ALREADY_DECIDED", "the request was already decided",
			map[string]string{"request_id": r.GetId(), "status": r.GetStatus().String()})
	}
	r.DecisionReason, r.DecidedBy, r.DecideTime = req.GetReason(), req.GetDecidedBy(), s.ts()
	res := &pb.DecideRequestResponse{}
	if req.GetDecision() == pb.Decision_DECISION_ACCEPT {
		a := w.account(r.GetAccount())
		t := s.appendTx(req.GetWorkspace(), a, r.GetAccount(), pb.TransactionType_TRANSACTION_TYPE_IN, pb.TransactionKind_TRANSACTION_KIND_REQUEST_APPROVED,
			r.GetAmount(), "creditRequest:"+r.GetId(), req.GetIdempotencyKey(), nil, r.GetPackageId(), r.GetId())
		r.Status, r.TransactionId = pb.RequestStatus_REQUEST_STATUS_ACCEPTED, t.GetId()
		res.Transaction = proto.CloneOf(t)
		s.posted(w, t)
	} else {
		r.Status = pb.RequestStatus_REQUEST_STATUS_REJECTED
	}
	s.emit(w, ledger.EventRequestDecided, r.GetAccount(), r)
	res.Request = proto.CloneOf(r)
	w.keys[req.GetIdempotencyKey()] = keyRecord{method: "DecideRequest", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

// CancelRequest withdraws a PENDING request. The fake has no tokens per
// account: whoever calls may cancel, recorded as "fake-canceller".
func (l ledgerService) CancelRequest(_ context.Context, req *pb.CancelRequestRequest) (*pb.CancelRequestResponse, error) {
	s := l.s
	if err := checkKey(req.GetIdempotencyKey(), "workspace", req.GetWorkspace(), "request_id", req.GetRequestId()); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspace(req.GetWorkspace())
	r, ok := w.requests[req.GetRequestId()]
	if !ok {
		return nil, notFound("credit request", req.GetRequestId())
	}
	key := "c:" + r.GetId() + ":" + req.GetIdempotencyKey() // scoped to the request, as the ledger does
	if prev, err := replay(w, "CancelRequest", key, req); err != nil || prev != nil {
		if prev != nil {
			res := prev.(*pb.CancelRequestResponse)
			res.Replayed = true
			return res, nil
		}
		return nil, err
	}
	if r.GetStatus() != pb.RequestStatus_REQUEST_STATUS_PENDING {
		status := strings.TrimPrefix(r.GetStatus().String(), "REQUEST_STATUS_")
		return nil, fail(codes.FailedPrecondition, "REQUEST_ALREADY_DECIDED", "the request was already "+strings.ToLower(status),
			map[string]string{"request_id": r.GetId(), "status": status})
	}
	r.Status, r.DecisionReason, r.DecidedBy, r.DecideTime = pb.RequestStatus_REQUEST_STATUS_CANCELLED, req.GetReason(), "fake-canceller", s.ts()
	s.emit(w, ledger.EventRequestCancelled, r.GetAccount(), r)
	res := &pb.CancelRequestResponse{Request: proto.CloneOf(r)}
	w.keys[key] = keyRecord{method: "CancelRequest", fingerprint: fingerprint(req), response: proto.Clone(res)}
	return res, nil
}

func (l ledgerService) GetRequest(_ context.Context, req *pb.GetRequestRequest) (*pb.GetRequestResponse, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	r, ok := l.s.workspace(req.GetWorkspace()).requests[req.GetRequestId()]
	if !ok {
		return nil, notFound("request", req.GetRequestId())
	}
	return &pb.GetRequestResponse{Request: proto.CloneOf(r)}, nil
}

func (l ledgerService) ListRequests(_ context.Context, req *pb.ListRequestsRequest) (*pb.ListRequestsResponse, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	w := l.s.workspace(req.GetWorkspace())
	var all []*pb.CreditPurchaseRequest
	for _, id := range w.reqOrder {
		r := w.requests[id]
		if (req.GetAccount() != "" && r.GetAccount() != req.GetAccount()) || (req.GetStatus() != 0 && r.GetStatus() != req.GetStatus()) {
			continue
		}
		all = append(all, proto.CloneOf(r))
	}
	if req.GetOrderBy() == "create_time desc" || (req.GetOrderBy() == "" && req.GetAccount() != "") {
		slices.Reverse(all)
	}
	p, next, err := page(all, req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &pb.ListRequestsResponse{Requests: p, NextPageToken: next}, nil
}

func (l ledgerService) CheckCreditPayment(_ context.Context, req *pb.CheckCreditPaymentRequest) (*pb.CheckCreditPaymentResponse, error) {
	if err := required("workspace", req.GetWorkspace(), "account", req.GetAccount()); err != nil {
		return nil, err
	}
	if req.GetPrice() == nil && req.GetCredits() <= 0 {
		return nil, invalid("credits", "must be greater than 0 (or give a price)")
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	w := l.s.workspace(req.GetWorkspace())
	a := w.account(req.GetAccount())
	l.s.expireDue(w)
	available := a.balance - w.held(req.GetAccount())
	res := &pb.CheckCreditPaymentResponse{Balance: a.balance, Version: a.version, CreditPaymentsEnabled: w.enabled, CreditsRequired: req.GetCredits()}
	noRate := false
	if req.GetPrice() != nil {
		c, _, err := l.s.credits(w, req.GetPrice())
		switch {
		case status.Code(err) == codes.FailedPrecondition:
			noRate = true
		case err != nil:
			return nil, err
		default:
			res.CreditsRequired = c
		}
	}
	switch {
	case !w.enabled:
		res.Reason = "CREDIT_PAYMENTS_DISABLED"
	case noRate:
		res.Reason = "NO_CONVERSION_RATE"
	case available < res.GetCreditsRequired():
		res.Reason = "INSUFFICIENT_CREDITS"
	default:
		res.Allowed = true
	}
	return res, nil
}

func (l ledgerService) ListAccounts(_ context.Context, req *pb.ListAccountsRequest) (*pb.ListAccountsResponse, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	w := l.s.workspace(req.GetWorkspace())
	ids := slices.Sorted(maps.Keys(w.accounts))
	var all []*pb.Balance
	for _, id := range ids {
		if w.accounts[id].version > 0 {
			all = append(all, l.s.balance(req.GetWorkspace(), w, id))
		}
	}
	p, next, err := page(all, req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &pb.ListAccountsResponse{Accounts: p, NextPageToken: next}, nil
}

type settingsService struct {
	pb.UnimplementedCreditSettingsServer
	s *Server
}

func (x settingsService) settings(ws string, w *workspace) *pb.Settings { return settingsOf(ws, w) }

func settingsOf(ws string, w *workspace) *pb.Settings {
	st := &pb.Settings{Workspace: ws, CreditPaymentsEnabled: w.enabled, LowBalanceThreshold: w.lowBalance}
	st.PaymentMethods = slices.Clone(w.methods)
	if !w.methodsSet {
		st.PaymentMethods = []pb.PaymentMethod{
			pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, pb.PaymentMethod_PAYMENT_METHOD_CRYPTO,
			pb.PaymentMethod_PAYMENT_METHOD_STRIPE, pb.PaymentMethod_PAYMENT_METHOD_PAYPAL,
		}
	}
	if !w.settings.IsZero() {
		st.UpdateTime = timestamppb.New(w.settings)
	}
	return st
}

func (x settingsService) GetSettings(_ context.Context, req *pb.GetSettingsRequest) (*pb.GetSettingsResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	return &pb.GetSettingsResponse{Settings: x.settings(req.GetWorkspace(), x.s.workspace(req.GetWorkspace()))}, nil
}

func (x settingsService) UpdateSettings(_ context.Context, req *pb.UpdateSettingsRequest) (*pb.UpdateSettingsResponse, error) {
	paths := req.GetUpdateMask().GetPaths()
	if len(paths) == 0 {
		return nil, invalid("update_mask", "is required by the fake")
	}
	in := req.GetSettings()
	for _, p := range paths {
		switch p {
		case "credit_payments_enabled":
		case "payment_methods":
			for i, m := range in.GetPaymentMethods() {
				if _, known := pb.PaymentMethod_name[int32(m)]; !known || m == pb.PaymentMethod_PAYMENT_METHOD_UNSPECIFIED ||
					slices.Contains(in.GetPaymentMethods()[:i], m) {
					return nil, invalid("settings.payment_methods", "unknown, unspecified or repeated payment method")
				}
			}
		case "low_balance_threshold":
			if in.GetLowBalanceThreshold() < 0 || in.GetLowBalanceThreshold() > ledger.MaxBalance {
				return nil, invalid("settings.low_balance_threshold", "out of range")
			}
		default:
			return nil, invalid("update_mask", "the fake does not set "+p)
		}
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	w := x.s.workspace(req.GetWorkspace())
	for _, p := range paths {
		switch p {
		case "credit_payments_enabled":
			w.enabled = in.GetCreditPaymentsEnabled()
		case "payment_methods":
			w.methods, w.methodsSet = slices.Sorted(slices.Values(in.GetPaymentMethods())), true
		case "low_balance_threshold":
			w.lowBalance = in.GetLowBalanceThreshold()
		}
	}
	w.settings = x.s.now().UTC()
	x.s.emit(w, ledger.EventSettingsUpdated, "", settingsOf(req.GetWorkspace(), w))
	return &pb.UpdateSettingsResponse{Settings: x.settings(req.GetWorkspace(), w)}, nil
}

func (x settingsService) CreatePackage(_ context.Context, req *pb.CreatePackageRequest) (*pb.CreatePackageResponse, error) {
	in := req.GetCreditPackage()
	if in.GetDisplayName() == "" || in.GetCredits() <= 0 || in.GetPrice() == nil {
		return nil, invalid("credit_package", "display_name, credits > 0 and price are required")
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	w := x.s.workspace(req.GetWorkspace())
	id := req.GetPackageId()
	if id == "" {
		id = x.s.newID("pkg")
	}
	if _, ok := w.packages[id]; ok {
		return nil, fail(codes.AlreadyExists, "ALREADY_EXISTS", "package "+id+" already exists", nil)
	}
	p := &pb.CreditPackage{
		Id: id, Workspace: req.GetWorkspace(), DisplayName: in.GetDisplayName(), Credits: in.GetCredits(),
		Price: proto.CloneOf(in.GetPrice()), Active: true, CreateTime: x.s.ts(), UpdateTime: x.s.ts(),
	}
	w.packages[id] = p
	x.s.emit(w, ledger.EventPackageUpdated, "", p)
	return &pb.CreatePackageResponse{CreditPackage: proto.CloneOf(p)}, nil
}

func (x settingsService) ListPackages(_ context.Context, req *pb.ListPackagesRequest) (*pb.ListPackagesResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	w := x.s.workspace(req.GetWorkspace())
	var all []*pb.CreditPackage
	for _, id := range slices.Sorted(maps.Keys(w.packages)) {
		if p := w.packages[id]; p.GetActive() || req.GetShowInactive() {
			all = append(all, proto.CloneOf(p))
		}
	}
	p, next, err := page(all, req.GetPageToken(), req.GetPageSize())
	if err != nil {
		return nil, err
	}
	return &pb.ListPackagesResponse{CreditPackages: p, NextPageToken: next}, nil
}

func (x settingsService) GetPackage(_ context.Context, req *pb.GetPackageRequest) (*pb.GetPackageResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	p, ok := x.s.workspace(req.GetWorkspace()).packages[req.GetPackageId()]
	if !ok {
		return nil, notFound("package", req.GetPackageId())
	}
	return &pb.GetPackageResponse{CreditPackage: proto.CloneOf(p)}, nil
}

func (x settingsService) ArchivePackage(_ context.Context, req *pb.ArchivePackageRequest) (*pb.ArchivePackageResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	w := x.s.workspace(req.GetWorkspace())
	p, ok := w.packages[req.GetPackageId()]
	if !ok {
		return nil, notFound("package", req.GetPackageId())
	}
	p.Active, p.UpdateTime = false, x.s.ts()
	x.s.emit(w, ledger.EventPackageUpdated, "", p)
	return &pb.ArchivePackageResponse{CreditPackage: proto.CloneOf(p)}, nil
}

func (x settingsService) SetConversionRate(_ context.Context, req *pb.SetConversionRateRequest) (*pb.SetConversionRateResponse, error) {
	d, err := ledger.ParseDecimal(req.GetRate())
	if err != nil || d.IsZero() {
		return nil, invalid("rate", "must be a decimal > 0")
	}
	if len(req.GetCurrencyCode()) != 3 {
		return nil, invalid("currency_code", "must be a three-letter ISO 4217 code")
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	w := x.s.workspace(req.GetWorkspace())
	for _, r := range w.rates[req.GetCurrencyCode()] {
		r.Active = false
	}
	r := &pb.ConversionRate{Workspace: req.GetWorkspace(), CurrencyCode: req.GetCurrencyCode(), Rate: d.String(), Active: true, CreateTime: x.s.ts()}
	w.rates[req.GetCurrencyCode()] = append([]*pb.ConversionRate{r}, w.rates[req.GetCurrencyCode()]...)
	return &pb.SetConversionRateResponse{ConversionRate: proto.CloneOf(r)}, nil
}

func (x settingsService) ListConversionRates(_ context.Context, req *pb.ListConversionRatesRequest) (*pb.ListConversionRatesResponse, error) {
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	w := x.s.workspace(req.GetWorkspace())
	res := &pb.ListConversionRatesResponse{}
	for _, cur := range slices.Sorted(maps.Keys(w.rates)) {
		for i, r := range w.rates[cur] {
			if i == 0 || req.GetShowHistory() {
				res.ConversionRates = append(res.ConversionRates, proto.CloneOf(r))
			}
		}
	}
	return res, nil
}

func (x settingsService) Quote(_ context.Context, req *pb.QuoteRequest) (*pb.QuoteResponse, error) {
	if req.GetPrice() == nil {
		return nil, invalid("price", "is required")
	}
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	c, rate, err := x.s.credits(x.s.workspace(req.GetWorkspace()), req.GetPrice())
	if err != nil {
		return nil, err
	}
	return &pb.QuoteResponse{Credits: c, ConversionRate: proto.CloneOf(rate), Price: proto.CloneOf(req.GetPrice())}, nil
}
