package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/type/money"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/pgtest"
	"github.com/creditledger/creditledger/internal/token"
)

// The security suite: who may call what (spec §6), what hostile input
// does (spec §11 "no input, however malformed, gives INTERNAL"), and which
// forged or broken tokens are refused, all against a running ledgerd with
// asymmetric keys from a JWKS file, over both doors.

// secKeys are the production-profile keys of a test ledgerd: the portal's
// key mints client tokens only; the operators' key mints admin and service
// tokens.
type secKeys struct {
	portal, ops token.SigningKey
	jwks        string // path of the public key set ledgerd verifies with
}

func newSecKeys(tb testing.TB) secKeys {
	tb.Helper()
	portal, err := token.GenerateKey(token.AlgEdDSA, "portal-1", []token.Role{token.RoleClient})
	if err != nil {
		tb.Fatal(err)
	}
	ops, err := token.GenerateKey(token.AlgES256, "ops-1", []token.Role{token.RoleAdmin, token.RoleService})
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := token.PublicJWKS(portal, ops)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "jwks.json")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		tb.Fatal(err)
	}
	return secKeys{portal: portal, ops: ops, jwks: path}
}

// mint signs a well-formed token of role with the key allowed that role.
func (k secKeys) mint(tb testing.TB, role token.Role, sub, ws, account string) string {
	tb.Helper()
	key := k.ops
	if role == token.RoleClient {
		key = k.portal
	}
	tok, err := token.Mint(key, token.New(token.DefaultIssuer, token.DefaultAudience, role, sub, ws, account,
		token.RoleScopes(role), time.Now(), time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// secLedgerd is a running ledgerd in token mode with keys' JWKS, plus a
// raw gRPC connection for calls named by their descriptors.
type secLedgerd struct {
	*ledgerd
	conn *grpc.ClientConn
	keys secKeys
}

// startSecLedgerd starts ledgerd like startLedgerd does, for any
// testing.TB (fuzz targets included): on the embedded store, or on
// PostgreSQL when dbURL is set.
func startSecLedgerd(tb testing.TB, keys secKeys, dbURL string) *secLedgerd {
	tb.Helper()
	env := map[string]string{
		"LEDGER_AUTH": "token", "LEDGER_AUTH_JWKS_FILE": keys.jwks,
		// Thousands of calls from a handful of subjects: authorization is
		// under test here, not the rate limits (tested on their own).
		"LEDGER_RATE_LIMIT_WORKSPACE": "0", "LEDGER_RATE_LIMIT_SUBJECT": "0",
		"LEDGER_RATE_LIMIT_SUBJECT_WRITES": "0", "LEDGER_RATE_LIMIT_SUBMIT": "0",
	}
	args := []string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"}
	if dbURL != "" {
		// Migrated as the owner, served as the runtime role.
		env["LEDGER_MIGRATE_DATABASE_URL"], env["LEDGER_DATABASE_URL"] = dbURL, pgtest.RuntimeURL(dbURL)
		env["LEDGER_MIGRATE_ON_START"] = "true"
		env["LEDGER_PAGE_TOKEN_KEY"] = "000102030405060708090a0b0c0d0e0f"
	} else {
		args = append(args, "--data-dir", tb.TempDir())
	}
	getenv := func(k string) string { return env[k] }
	logs := newLogSink()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, getenv, io.Discard, logs) }()
	d := &ledgerd{logs: logs, getenv: getenv, http: testClient}
	var once sync.Once
	d.stop = func() error {
		var err error
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(60 * time.Second):
				err = fmt.Errorf("ledgerd did not stop within 60s")
			}
		})
		return err
	}
	tb.Cleanup(func() {
		if err := d.stop(); err != nil {
			tb.Errorf("ledgerd stopped with: %v", err)
		}
	})
	select {
	case m := <-logs.listening:
		d.grpcAddr, _ = m["grpc_addr"].(string)
		d.httpAddr, _ = m["http_addr"].(string)
	case err := <-done:
		_, raw := logs.all()
		tb.Fatalf("ledgerd exited before listening: %v\n%s", err, raw)
	case <-time.After(60 * time.Second):
		tb.Fatal("no listening line within 60s")
	}
	d.base = "http://" + d.httpAddr
	conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	d.ledger, d.settings, d.webhooks = pb.NewCreditLedgerClient(conn), pb.NewCreditSettingsClient(conn), pb.NewCreditWebhooksClient(conn)
	return &secLedgerd{ledgerd: d, conn: conn, keys: keys}
}

// apiMethods are every RPC of both services, from the descriptors: a new
// RPC shows up here whether or not anybody remembered the suite.
func apiMethods() []protoreflect.MethodDescriptor {
	var out []protoreflect.MethodDescriptor
	for _, sd := range []protoreflect.ServiceDescriptor{
		pb.File_creditledger_v1_ledger_proto.Services().ByName("CreditLedger"),
		pb.File_creditledger_v1_settings_proto.Services().ByName("CreditSettings"),
		pb.File_creditledger_v1_events_proto.Services().ByName("CreditWebhooks"),
	} {
		ms := sd.Methods()
		for i := range ms.Len() {
			out = append(out, ms.Get(i))
		}
	}
	return out
}

// shortName is "CreditLedger.Credit".
func shortName(md protoreflect.MethodDescriptor) string {
	return string(md.Parent().Name()) + "." + string(md.Name())
}

// invoke calls md over gRPC with req and returns the reply.
func (s *secLedgerd) invoke(ctx context.Context, tok string, md protoreflect.MethodDescriptor, req proto.Message) (proto.Message, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		return nil, err
	}
	resp := mt.New().Interface()
	if tok != "" {
		ctx = bearer(ctx, tok)
	}
	method := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	if md.IsStreamingServer() {
		return resp, invokeStream(ctx, s.conn, method, req, func() any { return mt.New().Interface() })
	}
	err = s.conn.Invoke(ctx, method, req, resp)
	return resp, err
}

// invokeStream calls a server-streaming method with req and reads every
// message to the end; the call's error, if any.
//
// A watch (WatchEvents) never ends by itself: its first message is the
// answer, and it is given a few seconds to send it.
func invokeStream(ctx context.Context, conn *grpc.ClientConn, method string, req any, newResp func() any, opts ...grpc.CallOption) error {
	watch := strings.HasSuffix(method, "/WatchEvents")
	var cancel context.CancelFunc
	if watch {
		ctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	defer cancel()
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, opts...)
	if err != nil {
		return err
	}
	if err := st.SendMsg(req); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		if err := st.RecvMsg(newResp()); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if watch {
			return nil
		}
	}
}

// restRoute is an RPC's REST binding, read from its google.api.http option.
type restRoute struct {
	verb, template, body string
}

func routeOf(tb testing.TB, md protoreflect.MethodDescriptor) restRoute {
	tb.Helper()
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	if rule == nil {
		tb.Fatalf("%s has no google.api.http option", md.FullName())
	}
	r := restRoute{body: rule.GetBody()}
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		r.verb, r.template = http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		r.verb, r.template = http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		r.verb, r.template = http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		r.verb, r.template = http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		r.verb, r.template = http.MethodDelete, p.Delete
	default:
		tb.Fatalf("%s: unsupported pattern %T", md.FullName(), p)
	}
	return r
}

var pathVar = regexp.MustCompile(`\{([a-z_]+)\}`)

// pathVars are the fields a route's template binds.
func (r restRoute) pathVars() []string {
	var out []string
	for _, m := range pathVar.FindAllStringSubmatch(r.template, -1) {
		out = append(out, m[1])
	}
	return out
}

// fill puts segs (by field name) into the template, each escaped as one
// path segment unless raw is set (the fuzzers send hostile segments as is).
func (r restRoute) fill(segs map[string]string, raw bool) string {
	return pathVar.ReplaceAllStringFunc(r.template, func(m string) string {
		v := segs[m[1:len(m)-1]]
		if raw {
			return v
		}
		return url.PathEscape(v)
	})
}

// restRequest turns req into the HTTP request its annotation describes:
// path variables filled from req, the body as the annotation says, and
// the remaining scalar fields as query parameters.
func restRequest(tb testing.TB, md protoreflect.MethodDescriptor, req proto.Message) (verb, path, body string) {
	tb.Helper()
	r := routeOf(tb, md)
	m := req.ProtoReflect()
	fields := m.Descriptor().Fields()
	segs := map[string]string{}
	for _, name := range r.pathVars() {
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil {
			tb.Fatalf("%s: path variable %s is no field", md.FullName(), name)
		}
		segs[name] = m.Get(fd).String()
	}
	path = r.fill(segs, false)
	switch r.body {
	case "*":
		clone := proto.Clone(req).ProtoReflect()
		for name := range segs {
			clone.Clear(fields.ByName(protoreflect.Name(name)))
		}
		buf, err := protojson.Marshal(clone.Interface())
		if err != nil {
			tb.Fatal(err)
		}
		return r.verb, path, string(buf)
	case "":
		q := url.Values{}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if _, inPath := segs[string(fd.Name())]; inPath || fd.IsList() || fd.IsMap() {
				return true
			}
			if fd.Message() != nil {
				if ts, ok := v.Message().Interface().(*timestamppb.Timestamp); ok {
					q.Set(fd.JSONName(), ts.AsTime().Format(time.RFC3339Nano))
				}
				return true
			}
			if fd.Enum() != nil {
				q.Set(fd.JSONName(), string(fd.Enum().Values().ByNumber(v.Enum()).Name()))
			} else {
				q.Set(fd.JSONName(), v.String())
			}
			return true
		})
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
		return r.verb, path, ""
	default:
		fd := fields.ByName(protoreflect.Name(r.body))
		if fd == nil {
			tb.Fatalf("%s: body field %s is no field", md.FullName(), r.body)
		}
		buf, err := protojson.Marshal(m.Get(fd).Message().Interface())
		if err != nil {
			tb.Fatal(err)
		}
		return r.verb, path, string(buf)
	}
}

// rawReply is an HTTP answer, read whole.
type rawReply struct {
	code int
	ct   string
	body []byte
}

func (s *secLedgerd) do(tb testing.TB, verb, path, tok, contentType string, body []byte) rawReply {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, verb, s.base+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("%s %q: %v", verb, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		tb.Fatalf("%s %q: %v", verb, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && strings.Contains(path, "/events:watch") {
		// A watch streams for as long as the caller stays: its first
		// event (one line of JSON) is the answer.
		line, err := bufio.NewReader(resp.Body).ReadBytes('\n')
		if err != nil {
			tb.Fatalf("%s %q: first event: %v", verb, path, err)
		}
		return rawReply{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: line}
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return rawReply{code: resp.StatusCode, ct: resp.Header.Get("Content-Type"), body: raw}
}

// statusShape checks that an error reply is the gateway's JSON status:
// {"code": <gRPC code>, "message": "…", "details": [{"@type": …}]}, with
// the HTTP status grpc-gateway gives that code. It returns the gRPC code.
func statusShape(r rawReply) (codes.Code, error) {
	if !strings.HasPrefix(r.ct, "application/json") {
		return 0, fmt.Errorf("content type %q, want application/json", r.ct)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		return 0, fmt.Errorf("not a JSON object: %w", err)
	}
	for k := range m {
		if k != "code" && k != "message" && k != "details" {
			return 0, fmt.Errorf("unexpected member %q", k)
		}
	}
	var st struct {
		Code    *int              `json:"code"`
		Message *string           `json:"message"`
		Details []json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil || st.Code == nil || st.Message == nil {
		return 0, fmt.Errorf("no code and message (%w)", err)
	}
	c := codes.Code(*st.Code) //nolint:gosec // G115: checked against the known codes just below
	if c == codes.OK || c > codes.Unauthenticated {
		return 0, fmt.Errorf("code %d is no error code", *st.Code)
	}
	for _, d := range st.Details {
		var typed struct {
			Type string `json:"@type"`
		}
		if json.Unmarshal(d, &typed) != nil || !strings.HasPrefix(typed.Type, "type.googleapis.com/") {
			return 0, fmt.Errorf("detail %s has no @type", d)
		}
	}
	if want := httpStatusOf(c); r.code != want && r.code != http.StatusRequestEntityTooLarge && r.code != http.StatusMethodNotAllowed {
		return 0, fmt.Errorf("HTTP %d for code %s, want %d", r.code, c, want)
	}
	return c, nil
}

// httpStatusOf is grpc-gateway's mapping of codes to HTTP statuses.
func httpStatusOf(c codes.Code) int {
	switch c {
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// ---- Authorization matrix ----------------------------------------------

// principal is who calls, relative to the target: workspace ws, account
// "alice" in it.
type principal int

const (
	pNone          principal = iota // no Authorization header
	pClient                         // client alice of ws: the account's owner
	pOtherClient                    // client bob of ws
	pForeignClient                  // client "alice" of another workspace (same account id)
	pAdmin                          // admin of ws
	pForeignAdmin                   // admin of another workspace
	pService                        // internal service of ws
	numPrincipals
)

var principalNames = [numPrincipals]string{
	"no token", "client of the account", "client of another account", "client of another workspace",
	"admin of the workspace", "admin of another workspace", "service of the workspace",
}

// outcome is what a call may lead to, as far as authorization goes.
type outcome int

const (
	// A is allowed: the call must succeed (the fixtures make it valid).
	A outcome = iota
	// U is 401 / UNAUTHENTICATED.
	U
	// D is 403 / PERMISSION_DENIED: the caller may know the resource exists.
	D
	// H is 404 / NOT_FOUND: the resource is hidden from the caller.
	H
)

func (o outcome) String() string {
	return [...]string{"allowed", "401 UNAUTHENTICATED", "403 PERMISSION_DENIED", "404 NOT_FOUND"}[o]
}

// fixture is one seeded workspace ws (credit payments on, a rate, two
// packages, alice with credits and a pending request, bob with a pending
// request) and a foreign workspace seeded the same way, with the tokens of
// every principal.
type fixture struct {
	ws, foreign string
	tokens      [numPrincipals]string
	aliceReq    string // alice's pending request, read by the matrix
	decideReq   string // a pending request, decided by the allowed cell
	pkg         string // an active package
	archivePkg  string // archived by the allowed cell
	hold        string // alice's active hold, read by the matrix
	captureHold string // alice's active hold, captured by the allowed cell
	voidHold    string // alice's active hold, voided by the allowed cell
	aliceTx     string // alice's seed credit: read, and reversed in part by the allowed cells
	webhook     string // a webhook endpoint, read and changed by the matrix
	dropWebhook string // a webhook endpoint, deleted by the allowed cell
	// cancelReqs are alice's pending requests that the allowed cells of
	// CancelRequest cancel, one for each principal allowed to (a request
	// leaves PENDING once).
	cancelReqs map[principal]string
}

// cancelReqFor is the request the matrix call with key cancels: its
// principal's own (the key names the principal), else the client's.
func (fx *fixture) cancelReqFor(key string) string {
	for p, id := range fx.cancelReqs {
		if strings.HasSuffix(key, fmt.Sprintf("-CancelRequest-%d", p)) {
			return id
		}
	}
	return fx.cancelReqs[pClient]
}

// mutating are the RPCs that change state: a refused call must leave the
// workspace exactly as it was.
var mutating = map[string]bool{
	"CreditLedger.Credit": true, "CreditLedger.Debit": true, "CreditLedger.SubmitRequest": true,
	"CreditLedger.DecideRequest": true, "CreditLedger.CancelRequest": true, "CreditSettings.UpdateSettings": true, "CreditSettings.CreatePackage": true,
	"CreditSettings.UpdatePackage": true, "CreditSettings.ArchivePackage": true, "CreditSettings.SetConversionRate": true,
	"CreditLedger.CreateHold": true, "CreditLedger.CaptureHold": true, "CreditLedger.VoidHold": true,
	"CreditLedger.ReverseTransaction":      true,
	"CreditWebhooks.CreateWebhookEndpoint": true, "CreditWebhooks.UpdateWebhookEndpoint": true,
	"CreditWebhooks.DeleteWebhookEndpoint": true,
}

func usd(units int64, nanos int32) *money.Money {
	return &money.Money{CurrencyCode: "USD", Units: units, Nanos: nanos}
}

// matrixRow is one RPC: a valid request for the fixture, and the outcome
// for each principal, written from SPEC §6 (not read off the server's
// policy): Credit/Debit only by internal services with the write scope;
// SubmitRequest by the client itself or its agency (and services acting
// for it, as the proto's submitted_by says); DecideRequest, settings,
// packages and rates changes by the agency's admins; reads by the owning
// client, its agency or internal readers; another workspace's caller, and
// a client naming another client's resource, get NOT_FOUND, never 403.
//
// One refinement: where a client's role can never make the call at all
// (Credit, Debit, DecideRequest), the refusal is 403 whoever's account or
// request is named. That discloses nothing, provided the answer is the
// same for another client's resource as for one that does not exist:
// TestSecurityNoExistenceOracle holds the server to exactly that.
type matrixRow struct {
	build func(fx *fixture, key string) proto.Message
	want  [numPrincipals]outcome // in principal order
}

func want(o ...outcome) [numPrincipals]outcome { return [numPrincipals]outcome(o) }

var matrix = map[string]matrixRow{
	//                                                                        none client other foreignC admin foreignA service
	"CreditLedger.Credit": {func(fx *fixture, key string) proto.Message {
		return &pb.CreditRequest{Workspace: fx.ws, Account: "alice", Amount: 5, IdempotencyKey: key, Reference: "sec:credit"}
	}, want(U, D, D, H, D, H, A)},
	"CreditLedger.Debit": {func(fx *fixture, key string) proto.Message {
		return &pb.DebitRequest{Workspace: fx.ws, Account: "alice", Amount: 1, IdempotencyKey: key, Reference: "sec:debit"}
	}, want(U, D, D, H, D, H, A)},
	"CreditLedger.GetBalance": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetBalanceRequest{Workspace: fx.ws, Account: "alice"}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.ListTransactions": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListTransactionsRequest{Workspace: fx.ws, Account: "alice", PageSize: 5}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.SubmitRequest": {func(fx *fixture, key string) proto.Message {
		return &pb.SubmitRequestRequest{
			Workspace: fx.ws, Account: "alice", Amount: 7, IdempotencyKey: key,
			PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_BANK_TRANSFER, PaymentReference: "sec:transfer",
		}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.DecideRequest": {func(fx *fixture, key string) proto.Message {
		return &pb.DecideRequestRequest{
			Workspace: fx.ws, RequestId: fx.decideReq, Decision: pb.Decision_DECISION_ACCEPT,
			Reason: "paid", IdempotencyKey: key,
		}
	}, want(U, D, D, H, A, H, D)},
	// A client withdraws its own account's requests; another's is as
	// absent as an unknown one. The agency's admins and services may
	// withdraw any.
	"CreditLedger.CancelRequest": {func(fx *fixture, key string) proto.Message {
		return &pb.CancelRequestRequest{Workspace: fx.ws, RequestId: fx.cancelReqFor(key), IdempotencyKey: key, Reason: "sec:cancel"}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.GetRequest": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetRequestRequest{Workspace: fx.ws, RequestId: fx.aliceReq}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.ListRequests": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListRequestsRequest{Workspace: fx.ws, Account: "alice"}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.CheckCreditPayment": {func(fx *fixture, _ string) proto.Message {
		return &pb.CheckCreditPaymentRequest{
			Workspace: fx.ws, Account: "alice",
			Cost: &pb.CheckCreditPaymentRequest_Price{Price: usd(1, 0)},
		}
	}, want(U, A, H, H, A, H, A)},
	// The agency's view of every client: no client's business, but the
	// workspace is the caller's own, so 403 rather than 404.
	"CreditLedger.ListAccounts": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListAccountsRequest{Workspace: fx.ws}
	}, want(U, D, D, H, A, H, A)},
	// Holds are the internal services' (checkout, invoicing); a client's
	// role never makes these calls, so 403 whoever's hold is named.
	"CreditLedger.CreateHold": {func(fx *fixture, key string) proto.Message {
		return &pb.CreateHoldRequest{Workspace: fx.ws, Account: "alice", Amount: 3, IdempotencyKey: key, Reference: "sec:hold"}
	}, want(U, D, D, H, D, H, A)},
	"CreditLedger.CaptureHold": {func(fx *fixture, key string) proto.Message {
		return &pb.CaptureHoldRequest{Workspace: fx.ws, HoldId: fx.captureHold, IdempotencyKey: key}
	}, want(U, D, D, H, D, H, A)},
	"CreditLedger.VoidHold": {func(fx *fixture, key string) proto.Message {
		return &pb.VoidHoldRequest{Workspace: fx.ws, HoldId: fx.voidHold, IdempotencyKey: key}
	}, want(U, D, D, H, D, H, A)},
	"CreditLedger.GetHold": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetHoldRequest{Workspace: fx.ws, HoldId: fx.hold}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.ListHolds": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListHoldsRequest{Workspace: fx.ws, Account: "alice"}
	}, want(U, A, H, H, A, H, A)},
	// A service's refund, or the agency admins' claw-back.
	"CreditLedger.ReverseTransaction": {func(fx *fixture, key string) proto.Message {
		return &pb.ReverseTransactionRequest{Workspace: fx.ws, TransactionId: fx.aliceTx, Amount: 1, Reason: "sec:reverse", IdempotencyKey: key}
	}, want(U, D, D, H, A, H, A)},
	"CreditLedger.GetTransaction": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetTransactionRequest{Workspace: fx.ws, TransactionId: fx.aliceTx}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.GetStatement": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetStatementRequest{
			Workspace: fx.ws, Account: "alice",
			StartTime: timestamppb.New(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)),
			EndTime:   timestamppb.New(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)),
		}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.ExportTransactions": {func(fx *fixture, _ string) proto.Message {
		return &pb.ExportTransactionsRequest{Workspace: fx.ws, Account: "alice"}
	}, want(U, A, H, H, A, H, A)},
	// The workspace's events: its agency and services; a client, those of
	// its own account (TestEventsVisibleToTheirOwners).
	"CreditLedger.ListEvents": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListEventsRequest{Workspace: fx.ws, Account: "alice"}
	}, want(U, A, H, H, A, H, A)},
	"CreditLedger.WatchEvents": {func(fx *fixture, _ string) proto.Message {
		return &pb.WatchEventsRequest{Workspace: fx.ws, Account: "alice"}
	}, want(U, A, H, H, A, H, A)},
	// Webhook endpoints: the agency's admins only.
	"CreditWebhooks.CreateWebhookEndpoint": {func(fx *fixture, _ string) proto.Message {
		return &pb.CreateWebhookEndpointRequest{Workspace: fx.ws, WebhookEndpoint: &pb.WebhookEndpoint{Url: "https://hooks.example.com/new"}}
	}, want(U, D, D, H, A, H, D)},
	"CreditWebhooks.ListWebhookEndpoints": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListWebhookEndpointsRequest{Workspace: fx.ws}
	}, want(U, D, D, H, A, H, D)},
	"CreditWebhooks.UpdateWebhookEndpoint": {func(fx *fixture, _ string) proto.Message {
		return &pb.UpdateWebhookEndpointRequest{
			Workspace: fx.ws, EndpointId: fx.webhook, WebhookEndpoint: &pb.WebhookEndpoint{Description: "renamed"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"description"}},
		}
	}, want(U, D, D, H, A, H, D)},
	"CreditWebhooks.DeleteWebhookEndpoint": {func(fx *fixture, _ string) proto.Message {
		return &pb.DeleteWebhookEndpointRequest{Workspace: fx.ws, EndpointId: fx.dropWebhook}
	}, want(U, D, D, H, A, H, D)},
	"CreditWebhooks.ListWebhookDeliveries": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListWebhookDeliveriesRequest{Workspace: fx.ws, EndpointId: fx.webhook}
	}, want(U, D, D, H, A, H, D)},
	"CreditSettings.GetSettings": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetSettingsRequest{Workspace: fx.ws}
	}, want(U, A, A, H, A, H, A)},
	"CreditSettings.UpdateSettings": {func(fx *fixture, _ string) proto.Message {
		return &pb.UpdateSettingsRequest{
			Workspace: fx.ws, Settings: &pb.Settings{CreditPaymentsEnabled: true},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
		}
	}, want(U, D, D, H, A, H, D)},
	"CreditSettings.CreatePackage": {func(fx *fixture, _ string) proto.Message {
		return &pb.CreatePackageRequest{Workspace: fx.ws, CreditPackage: &pb.CreditPackage{DisplayName: "Sec pack", Credits: 50, Price: usd(5, 0)}}
	}, want(U, D, D, H, A, H, D)},
	"CreditSettings.ListPackages": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListPackagesRequest{Workspace: fx.ws}
	}, want(U, A, A, H, A, H, A)},
	"CreditSettings.GetPackage": {func(fx *fixture, _ string) proto.Message {
		return &pb.GetPackageRequest{Workspace: fx.ws, PackageId: fx.pkg}
	}, want(U, A, A, H, A, H, A)},
	"CreditSettings.UpdatePackage": {func(fx *fixture, _ string) proto.Message {
		return &pb.UpdatePackageRequest{
			Workspace: fx.ws, PackageId: fx.pkg, CreditPackage: &pb.CreditPackage{DisplayName: "Basic (renamed)"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}},
		}
	}, want(U, D, D, H, A, H, D)},
	"CreditSettings.ArchivePackage": {func(fx *fixture, _ string) proto.Message {
		return &pb.ArchivePackageRequest{Workspace: fx.ws, PackageId: fx.archivePkg}
	}, want(U, D, D, H, A, H, D)},
	"CreditSettings.SetConversionRate": {func(fx *fixture, _ string) proto.Message {
		return &pb.SetConversionRateRequest{Workspace: fx.ws, CurrencyCode: "EUR", Rate: "9.5"}
	}, want(U, D, D, H, A, H, D)},
	"CreditSettings.ListConversionRates": {func(fx *fixture, _ string) proto.Message {
		return &pb.ListConversionRatesRequest{Workspace: fx.ws}
	}, want(U, A, A, H, A, H, A)},
	"CreditSettings.Quote": {func(fx *fixture, _ string) proto.Message {
		return &pb.QuoteRequest{Workspace: fx.ws, Price: usd(3, 510000000)}
	}, want(U, A, A, H, A, H, A)},
}

// seed builds a fixture in workspaces ws and ws+"-foreign".
func (s *secLedgerd) seed(t *testing.T, ws string) *fixture {
	t.Helper()
	ctx := testCtx(t)
	fx := &fixture{ws: ws, foreign: ws + "-foreign", pkg: "basic", archivePkg: "old"}
	k := s.keys
	fx.tokens = [numPrincipals]string{
		pNone:          "",
		pClient:        k.mint(t, token.RoleClient, "alice", ws, "alice"),
		pOtherClient:   k.mint(t, token.RoleClient, "bob", ws, "bob"),
		pForeignClient: k.mint(t, token.RoleClient, "alice", fx.foreign, "alice"),
		pAdmin:         k.mint(t, token.RoleAdmin, "ann", ws, ""),
		pForeignAdmin:  k.mint(t, token.RoleAdmin, "ann", fx.foreign, ""),
		pService:       k.mint(t, token.RoleService, "checkout", ws, ""),
	}
	for _, w := range []string{fx.ws, fx.foreign} {
		admin := bearer(ctx, k.mint(t, token.RoleAdmin, "seed-admin", w, ""))
		svc := bearer(ctx, k.mint(t, token.RoleService, "seed-svc", w, ""))
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("seed %s: %s: %v", w, what, err)
			}
		}
		_, err := s.settings.UpdateSettings(admin, &pb.UpdateSettingsRequest{
			Workspace: w, Settings: &pb.Settings{CreditPaymentsEnabled: true},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"credit_payments_enabled"}},
		})
		must("settings", err)
		_, err = s.settings.SetConversionRate(admin, &pb.SetConversionRateRequest{Workspace: w, CurrencyCode: "USD", Rate: "10"})
		must("rate", err)
		for _, id := range []string{fx.pkg, fx.archivePkg} {
			_, err = s.settings.CreatePackage(admin, &pb.CreatePackageRequest{
				Workspace: w, PackageId: id,
				CreditPackage: &pb.CreditPackage{DisplayName: "Pack " + id, Credits: 100, Price: usd(10, 0)},
			})
			must("package "+id, err)
		}
		for _, acct := range []string{"alice", "bob"} {
			res, err := s.ledger.Credit(svc, &pb.CreditRequest{Workspace: w, Account: acct, Amount: 1000, IdempotencyKey: "seed-" + acct})
			must("credit "+acct, err)
			if w == fx.ws && acct == "alice" {
				fx.aliceTx = res.GetTransaction().GetId()
			}
		}
		var holds []string
		for i := range 3 {
			res, err := s.ledger.CreateHold(svc, &pb.CreateHoldRequest{
				Workspace: w, Account: "alice", Amount: 10, Ttl: durationpb.New(time.Hour), IdempotencyKey: "seed-hold-" + strconv.Itoa(i),
			})
			must("hold", err)
			holds = append(holds, res.GetHold().GetId())
		}
		if w == fx.ws {
			fx.hold, fx.captureHold, fx.voidHold = holds[0], holds[1], holds[2]
		}
		var reqs []string
		for i, acct := range []string{"alice", "alice", "bob", "alice", "alice", "alice"} {
			r, err := s.ledger.SubmitRequest(svc, &pb.SubmitRequestRequest{
				Workspace: w, Account: acct, Amount: 10,
				PaymentMethod: pb.PaymentMethod_PAYMENT_METHOD_CRYPTO, IdempotencyKey: "seed-req-" + strconv.Itoa(i),
			})
			must("request", err)
			reqs = append(reqs, r.GetRequest().GetId())
		}
		if w == fx.ws {
			fx.aliceReq, fx.decideReq = reqs[0], reqs[1]
			fx.cancelReqs = map[principal]string{pClient: reqs[3], pAdmin: reqs[4], pService: reqs[5]}
		}
		var hooks []string
		for _, name := range []string{"kept", "dropped"} {
			res, err := s.webhooks.CreateWebhookEndpoint(admin, &pb.CreateWebhookEndpointRequest{
				Workspace: w, WebhookEndpoint: &pb.WebhookEndpoint{Url: "https://hooks.example.com/" + name},
			})
			must("webhook endpoint", err)
			hooks = append(hooks, res.GetWebhookEndpoint().GetId())
		}
		if w == fx.ws {
			fx.webhook, fx.dropWebhook = hooks[0], hooks[1]
		}
	}
	return fx
}

// snapshot renders everything a refused call might have changed in ws.
func (s *secLedgerd) snapshot(t *testing.T, fx *fixture) string {
	t.Helper()
	ctx := bearer(testCtx(t), s.keys.mint(t, token.RoleAdmin, "auditor", fx.ws, ""))
	var parts []string
	add := func(m proto.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		parts = append(parts, protojson.Format(m))
	}
	add(s.ledger.ListAccounts(ctx, &pb.ListAccountsRequest{Workspace: fx.ws}))
	add(s.ledger.ListTransactions(ctx, &pb.ListTransactionsRequest{Workspace: fx.ws, Account: "alice"}))
	add(s.ledger.ListRequests(ctx, &pb.ListRequestsRequest{Workspace: fx.ws}))
	add(s.ledger.ListHolds(ctx, &pb.ListHoldsRequest{Workspace: fx.ws, Account: "alice"}))
	add(s.settings.GetSettings(ctx, &pb.GetSettingsRequest{Workspace: fx.ws}))
	add(s.settings.ListPackages(ctx, &pb.ListPackagesRequest{Workspace: fx.ws, ShowInactive: true}))
	add(s.settings.ListConversionRates(ctx, &pb.ListConversionRatesRequest{Workspace: fx.ws, ShowHistory: true}))
	add(s.webhooks.ListWebhookEndpoints(ctx, &pb.ListWebhookEndpointsRequest{Workspace: fx.ws}))
	return strings.Join(parts, "\n")
}

// TestSecurityMatrixCoversEveryRPC fails when an RPC has no row, so that
// a new RPC cannot ship without being classified.
func TestSecurityMatrixCoversEveryRPC(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, md := range apiMethods() {
		name := shortName(md)
		seen[name] = true
		if _, ok := matrix[name]; !ok {
			t.Errorf("%s is not in the authorization matrix: classify it for every principal", md.FullName())
		}
		routeOf(t, md) // every RPC has a REST route
	}
	for name := range matrix {
		if !seen[name] {
			t.Errorf("the matrix names %s, which is no RPC", name)
		}
	}
}

// TestSecurityAuthorizationMatrix runs every RPC as every principal over
// REST and over gRPC on the embedded store.
func TestSecurityAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), "")
	runMatrix(t, s)
}

// TestSecurityAuthorizationMatrixPostgres is the same matrix on PostgreSQL.
func TestSecurityAuthorizationMatrixPostgres(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), pgtest.Shared(t).NewDatabase(t, ""))
	runMatrix(t, s)
}

func runMatrix(t *testing.T, s *secLedgerd) {
	t.Helper()
	for _, door := range []string{"rest", "grpc"} {
		t.Run(door, func(t *testing.T) {
			t.Parallel()
			fx := s.seed(t, "sec-"+door)
			for _, md := range apiMethods() {
				name := shortName(md)
				row, ok := matrix[name]
				if !ok {
					continue // TestSecurityMatrixCoversEveryRPC says so
				}
				// Refusals first, so that each one is checked against the
				// untouched fixture before an allowed call changes it.
				order := make([]principal, 0, numPrincipals)
				for p := range numPrincipals {
					if row.want[p] != A {
						order = append(order, p)
					}
				}
				for p := range numPrincipals {
					if row.want[p] == A {
						order = append(order, p)
					}
				}
				for _, p := range order {
					t.Run(name+"/"+principalNames[p], func(t *testing.T) {
						req := row.build(fx, fmt.Sprintf("matrix-%s-%d", md.Name(), p))
						var before string
						if row.want[p] != A && mutating[name] {
							before = s.snapshot(t, fx)
						}
						got, detail := s.call(t, door, md, fx.tokens[p], req)
						if got != row.want[p] {
							t.Errorf("%s as %s over %s: got %s, want %s\n%s", name, principalNames[p], door, got, row.want[p], detail)
						}
						if before != "" {
							if after := s.snapshot(t, fx); after != before {
								t.Errorf("%s as %s over %s was refused but changed the workspace:\nbefore %s\nafter  %s", name, principalNames[p], door, before, after)
							}
						}
					})
				}
			}
		})
	}
}

// call makes one matrix call and classifies the answer; anything other
// than success or an authorization refusal is reported as a failure.
func (s *secLedgerd) call(t *testing.T, door string, md protoreflect.MethodDescriptor, tok string, req proto.Message) (outcome, string) {
	t.Helper()
	if door == "grpc" {
		resp, err := s.invoke(testCtx(t), tok, md, req)
		switch c := status.Code(err); c {
		case codes.OK:
			return A, "reply: " + protojson.Format(resp)
		case codes.Unauthenticated:
			return U, err.Error()
		case codes.PermissionDenied:
			return D, err.Error()
		case codes.NotFound:
			return H, err.Error()
		default:
			return -1, fmt.Sprintf("request %s\nunexpected %v", protojson.Format(req), err)
		}
	}
	verb, path, body := restRequest(t, md, req)
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	r := s.do(t, verb, path, tok, ct, []byte(body))
	detail := fmt.Sprintf("%s %s %s\n→ HTTP %d %s", verb, path, body, r.code, r.body)
	if r.code == http.StatusOK {
		return A, detail
	}
	c, err := statusShape(r)
	if err != nil {
		return -1, detail + "\nnot the gateway's JSON status: " + err.Error()
	}
	switch {
	case r.code == http.StatusUnauthorized && c == codes.Unauthenticated:
		return U, detail
	case r.code == http.StatusForbidden && c == codes.PermissionDenied:
		return D, detail
	case r.code == http.StatusNotFound && c == codes.NotFound:
		return H, detail
	}
	return -1, detail
}

// TestSecurityClientListsOnlyItsOwnRequests: a client listing the whole
// workspace's queue (no account filter) is refused or sees its own
// requests only, never bob's.
func TestSecurityClientListsOnlyItsOwnRequests(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), "")
	fx := s.seed(t, "sec-list")
	ctx := testCtx(t)
	for _, door := range []string{"rest", "grpc"} {
		var reqs []*pb.CreditPurchaseRequest
		if door == "grpc" {
			resp, err := s.ledger.ListRequests(bearer(ctx, fx.tokens[pClient]), &pb.ListRequestsRequest{Workspace: fx.ws})
			if c := status.Code(err); c == codes.PermissionDenied {
				continue
			} else if err != nil {
				t.Fatalf("gRPC: a client listing its workspace's requests: %v (want PERMISSION_DENIED or its own requests)", err)
			}
			reqs = resp.GetRequests()
		} else {
			r := s.do(t, http.MethodGet, "/v1/workspaces/"+fx.ws+"/creditRequests", fx.tokens[pClient], "", nil)
			if r.code == http.StatusForbidden {
				continue
			}
			var resp pb.ListRequestsResponse
			if r.code != http.StatusOK || protojson.Unmarshal(r.body, &resp) != nil {
				t.Fatalf("REST: a client listing its workspace's requests: HTTP %d %s (want 403 or its own requests)", r.code, r.body)
			}
			reqs = resp.GetRequests()
		}
		for _, r := range reqs {
			if r.GetAccount() != "alice" {
				t.Errorf("%s: client alice sees request %s of account %q", door, r.GetId(), r.GetAccount())
			}
		}
	}
}

// TestSecurityPathConfusion: a client naming its own account in another
// spelling, or another account through path tricks, never reaches data
// that is not its own.
func TestSecurityPathConfusion(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), "")
	fx := s.seed(t, "sec-path")
	bob := fx.tokens[pOtherClient]
	for _, path := range []string{
		"/v1/workspaces/" + fx.ws + "/accounts/ALICE/balance",
		"/v1/workspaces/" + fx.ws + "/accounts/alice%20/balance",
		"/v1/workspaces/" + fx.ws + "/accounts/bob/../alice/balance",
		"/v1/workspaces/" + fx.ws + "/accounts/bob%2F..%2Falice/balance",
		"/v1/workspaces/" + fx.ws + "/accounts/alice%00/balance",
		"/v1/workspaces/" + strings.ToUpper(fx.ws) + "/accounts/alice/balance",
		"/v1/workspaces/" + fx.foreign + "/accounts/bob/balance",
		"/v1/workspaces/" + fx.ws + "/accounts/alice/transactions?account=bob",
		"/v1/workspaces/" + fx.ws + "/creditRequests/" + fx.aliceReq,
		"/v1/workspaces/" + fx.ws + "/creditRequests?account=alice",
	} {
		r := s.do(t, http.MethodGet, path, bob, "", nil)
		if r.code == http.StatusOK {
			if !bytes.Contains(r.body, []byte(`"bob"`)) || bytes.Contains(r.body, []byte(`"alice"`)) {
				t.Errorf("GET %s as client bob: HTTP 200 %s", path, r.body)
			}
			continue
		}
		c, err := statusShape(r)
		if err != nil || !slices.Contains([]codes.Code{codes.NotFound, codes.InvalidArgument}, c) {
			t.Errorf("GET %s as client bob: HTTP %d %s (want 404 or 400)", path, r.code, r.body)
		}
	}
}

// TestSecurityNoExistenceOracle: a refused caller learns nothing about
// resources that are not its own. For every RPC and every refused
// principal, the refusal naming the real resource (alice's account,
// alice's request, a package, the workspace) is the same code and message
// as the refusal naming one that does not exist.
func TestSecurityNoExistenceOracle(t *testing.T) {
	t.Parallel()
	s := startSecLedgerd(t, newSecKeys(t), "")
	fx := s.seed(t, "sec-oracle")
	ghosts := map[string]string{
		"account": "nobody", "request_id": "01a00000-0000-7000-8000-000000000000",
		"hold_id": "01a00000-0000-7000-8000-000000000001", "transaction_id": "01a00000-0000-7000-8000-000000000002",
		"package_id": "no-such-package", "currency_code": "JPY",
	}
	for _, md := range apiMethods() {
		name := shortName(md)
		row, ok := matrix[name]
		if !ok {
			continue
		}
		for _, p := range []principal{pClient, pOtherClient, pForeignClient, pForeignAdmin, pAdmin, pService} {
			if row.want[p] == A {
				continue
			}
			real := row.build(fx, "oracle-real")
			ghost := proto.Clone(real)
			gm := ghost.ProtoReflect()
			var swapped []string
			for _, v := range routeOf(t, md).pathVars() {
				fd := gm.Descriptor().Fields().ByName(protoreflect.Name(v))
				switch {
				case v == "workspace" && (p == pForeignClient || p == pForeignAdmin):
					gm.Set(fd, protoreflect.ValueOfString("sec-ghost"))
				case v != "workspace":
					gm.Set(fd, protoreflect.ValueOfString(ghosts[v]))
				default:
					continue
				}
				swapped = append(swapped, real.ProtoReflect().Get(fd).String(), gm.Get(fd).String())
			}
			if len(swapped) == 0 {
				continue
			}
			_, errReal := s.invoke(testCtx(t), fx.tokens[p], md, real)
			_, errGhost := s.invoke(testCtx(t), fx.tokens[p], md, ghost)
			// The code, the message and the details, with the named
			// target blanked out.
			norm := func(err error) string {
				st := status.Convert(err)
				msg := st.Code().String() + ": " + st.Message()
				for _, d := range st.Details() {
					if m, ok := d.(proto.Message); ok {
						msg += " " + protojson.Format(m)
					}
				}
				for _, id := range swapped {
					msg = strings.ReplaceAll(msg, id, "<target>")
				}
				return strings.Join(strings.Fields(msg), " ")
			}
			if norm(errReal) != norm(errGhost) {
				t.Errorf("%s as %s: an existing target answers %q, a missing one %q: the refusal tells them apart",
					name, principalNames[p], norm(errReal), norm(errGhost))
			}
		}
	}
}
