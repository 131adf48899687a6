package grpcserver

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/grpcserver/fakestore"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/token"
)

func TestCSVCellNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                  "",
		"=HYPERLINK(\"x\")": "'=HYPERLINK(\"x\")",
		"+1":                "'+1",
		"-2+3":              "'-2+3",
		"@SUM(A1)":          "'@SUM(A1)",
		"\tcmd":             "'\tcmd",
		"\rcmd":             "'\rcmd",
		"order:1":           "order:1",
		" =1":               " =1", // not evaluated by spreadsheets
		"100":               "100",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCSVRecord(t *testing.T) {
	t.Parallel()
	got := csvRecord(ledger.Transaction{
		ID: "t2", Type: ledger.TypeIn, Kind: ledger.KindReversal, Reference: "refund, \"order\" 1", Amount: 30,
		BalanceAfter: 130, AccountVersion: 4, PackageID: "p", RequestID: "r", ReversesTransactionID: "t1", HoldID: "h",
		CreateTime: time.Date(2026, 3, 1, 13, 4, 5, 999, time.FixedZone("CET", 3600)),
	})
	want := []string{"2026-03-01T12:04:05Z", "IN", "REVERSAL", "refund, \"order\" 1", "30", "130", "t2", "4", "p", "r", "t1", "h"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if len(got) != len(csvHeader) {
		t.Errorf("%d cells for %d columns", len(got), len(csvHeader))
	}
}

// The chunks are parts of one CSV file: each ends on a row, only the
// first carries the content type, and the whole parses back to the rows
// (quoted where needed, neutralised).
func TestCSVChunker(t *testing.T) {
	t.Parallel()
	type chunk struct {
		b     []byte
		first bool
	}
	var chunks []chunk
	c := newCSVChunker(func(b []byte, first bool) error {
		chunks = append(chunks, chunk{b, first})
		return nil
	})
	rows := [][]string{csvHeader}
	for i := range 3000 {
		ref := strings.Repeat("x", i%40)
		switch i % 5 {
		case 1:
			ref = "=cmd|' /C calc'!A0"
		case 2:
			ref = "line\nbreak, \"quoted\""
		}
		rows = append(rows, []string{"2026-03-01T12:00:00Z", "OUT", "SERVICE_PURCHASE", ref, "5", "10"})
	}
	for _, r := range rows {
		if err := c.row(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.close(); err != nil {
		t.Fatal(err)
	}
	if len(chunks) < 3 {
		t.Fatalf("%d chunks; the export should stream", len(chunks))
	}
	var all bytes.Buffer
	for i, ch := range chunks {
		if ch.first != (i == 0) {
			t.Errorf("chunk %d: first = %v", i, ch.first)
		}
		if len(ch.b) > 2*exportChunkBytes || !bytes.HasSuffix(ch.b, []byte("\n")) {
			t.Errorf("chunk %d: %d bytes, ends %q", i, len(ch.b), ch.b[max(0, len(ch.b)-5):])
		}
		all.Write(ch.b)
	}
	r := csv.NewReader(&all)
	r.FieldsPerRecord = -1
	got, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("%d rows back, want %d", len(got), len(rows))
	}
	if got[2][3] != "'=cmd|' /C calc'!A0" || got[3][3] != "line\nbreak, \"quoted\"" {
		t.Errorf("rows = %q, %q", got[2], got[3])
	}

	// An empty history is the header alone, in one message.
	chunks = nil
	c = newCSVChunker(func(b []byte, first bool) error {
		chunks = append(chunks, chunk{b, first})
		return nil
	})
	if err := errors.Join(c.row(csvHeader), c.close()); err != nil {
		t.Fatal(err)
	}
	if len(chunks) != 1 || !chunks[0].first || string(chunks[0].b) != strings.Join(csvHeader, ",")+"\n" {
		t.Errorf("empty export = %+v", chunks)
	}
}

// startStreamServer serves NewServer with o on a loopback socket and logs
// into an observer.
func startStreamServer(t *testing.T, o Options) (*grpc.ClientConn, *observer.ObservedLogs, *prometheus.Registry) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	reg := prometheus.NewRegistry()
	o.Logger, o.Registerer = zap.New(core), reg
	srv, err := NewServer(ledger.NewService(fakestore.New()), o)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn, logs, reg
}

// export runs ExportTransactions to its end: the CSV, the content type of
// the first message, and the final error.
func export(ctx context.Context, c pb.CreditLedgerClient, req *pb.ExportTransactionsRequest) (string, string, error) {
	st, err := c.ExportTransactions(ctx, req)
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	ct := ""
	for i := 0; ; i++ {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return b.String(), ct, nil
		}
		if err != nil {
			return b.String(), ct, err
		}
		if i == 0 {
			ct = m.GetContentType()
		}
		b.Write(m.GetData())
	}
}

// ExportTransactions is authenticated, authorized on its request, rate
// limited, logged and counted like a unary call.
func TestExportStreamGoesThroughTheChain(t *testing.T) {
	t.Parallel()
	conn, logs, reg := startStreamServer(t, Options{
		Authorizer: NewTokenAuth(testVerifier),
		RateLimits: RateLimits{Subject: Rate{PerSecond: 0.001, Burst: 2}, Now: func() time.Time { return testNow }},
	})
	c := pb.NewCreditLedgerClient(conn)
	ctx := ctxTimeout(t)
	bearer := func(tok string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
	}
	alice := mint(t, grant{role: token.RoleClient, sub: "alice", ws: "acme", account: "alice", scopes: token.RoleScopes(token.RoleClient)})
	req := func(account string) *pb.ExportTransactionsRequest {
		return &pb.ExportTransactionsRequest{Workspace: "acme", Account: account}
	}

	if _, _, err := export(ctx, c, req("alice")); status.Code(err) != codes.Unauthenticated {
		t.Errorf("no token: %v, want UNAUTHENTICATED", err)
	}
	if _, _, err := export(bearer(alice), c, req("bob")); status.Code(err) != codes.NotFound {
		t.Errorf("another client's account: %v, want NOT_FOUND", err)
	}
	if _, _, err := export(bearer(alice), c, &pb.ExportTransactionsRequest{Workspace: "globex", Account: "alice"}); status.Code(err) != codes.NotFound {
		t.Errorf("another workspace: %v, want NOT_FOUND", err)
	}
	admin := mint(t, grant{role: token.RoleAdmin, sub: "ops", ws: "acme", scopes: []string{ScopeSettingsAdmin}})
	if _, _, err := export(bearer(admin), c, req("alice")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("without ledger:read: %v, want PERMISSION_DENIED", err)
	}

	// The client's own account: through (the two tokens of the subject's
	// bucket), then rate limited.
	csvOut, ct, err := export(bearer(alice), c, req("alice"))
	if err != nil || ct != CSVContentType || !strings.HasPrefix(csvOut, strings.Join(csvHeader, ",")+"\n") {
		t.Errorf("own account: %q, %q, %v", csvOut, ct, err)
	}
	_, _, _ = export(bearer(alice), c, req("alice"))
	_, _, err = export(bearer(alice), c, req("alice"))
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("past the subject's burst: %v, want RESOURCE_EXHAUSTED", err)
	}

	// One log line per call, with the request's names and the caller.
	lines := logs.FilterMessage("request").FilterField(zap.String("method", pb.CreditLedger_ExportTransactions_FullMethodName)).All()
	if len(lines) != 7 {
		t.Fatalf("%d log lines, want 7", len(lines))
	}
	first, bob := lines[0].ContextMap(), lines[1].ContextMap()
	if first["code"] != "Unauthenticated" || first["workspace"] != "acme" || first["request_id"] == "" {
		t.Errorf("unauthenticated call's line: %v", first)
	}
	if bob["code"] != "NotFound" || bob["account"] != "bob" || bob["subject"] != "alice" || bob["reason"] != ledger.ReasonNotFound {
		t.Errorf("refused call's line: %v", bob)
	}
	if got := lines[6].ContextMap()["reason"]; got != ledger.ReasonRateLimited {
		t.Errorf("rate-limited call's reason = %v", got)
	}
	// And counted like any call.
	for code, want := range map[string]float64{"Unauthenticated": 1, "NotFound": 2, "PermissionDenied": 1, "ResourceExhausted": 1} {
		got := counterValue(t, reg, "creditledger_grpc_server_handled_total", map[string]string{
			"grpc_method": "ExportTransactions", "grpc_type": "server_stream", "grpc_code": code,
		})
		if got != want {
			t.Errorf("handled_total{%s} = %v, want %v", code, got, want)
		}
	}
}

// fakeStream is a grpc.ServerStream with one message to receive.
type fakeStream struct {
	grpc.ServerStream
	sent int
}

func (f *fakeStream) Context() context.Context { return context.Background() }
func (f *fakeStream) RecvMsg(any) error        { return nil }
func (f *fakeStream) SendMsg(any) error        { f.sent++; return nil }

// A stream handler cannot answer before its request was received and
// authorized.
func TestStreamSendsNothingBeforeAuthorization(t *testing.T) {
	t.Parallel()
	auth := streamAuth(NoAuth{})
	info := &grpc.StreamServerInfo{FullMethod: pb.CreditLedger_ExportTransactions_FullMethodName, IsServerStream: true}

	fs := &fakeStream{}
	err := auth(nil, fs, info, func(_ any, ss grpc.ServerStream) error {
		return ss.SendMsg(&httpbody.HttpBody{})
	})
	if ledger.ErrorOf(err).Code != ledger.CodePermissionDenied || fs.sent != 0 {
		t.Errorf("send before receive: %v, %d sent", err, fs.sent)
	}

	fs = &fakeStream{}
	err = auth(nil, fs, info, func(_ any, ss grpc.ServerStream) error {
		if err := ss.RecvMsg(&pb.ExportTransactionsRequest{}); err != nil {
			return err
		}
		if _, ok := principalFrom(ss.Context()); !ok {
			return errors.New("no principal in the handler's context")
		}
		return ss.SendMsg(&httpbody.HttpBody{})
	})
	if err != nil || fs.sent != 1 {
		t.Errorf("after an authorized receive: %v, %d sent", err, fs.sent)
	}

	denied := streamAuth(NewTokenAuth(testVerifier))
	fs = &fakeStream{}
	reached := false
	err = denied(nil, fs, info, func(_ any, ss grpc.ServerStream) error {
		if err := ss.RecvMsg(&pb.ExportTransactionsRequest{Workspace: "acme", Account: "alice"}); err != nil {
			return err
		}
		reached = true
		return nil
	})
	if ledger.ErrorOf(err).Code != ledger.CodeUnauthenticated || reached {
		t.Errorf("refused receive: %v, handler went on: %v", err, reached)
	}
}
