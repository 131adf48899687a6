package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
)

// exportStub answers ExportTransactions by the account's name: "ok" three
// chunks, "denied" UNAUTHENTICATED, "limited" RESOURCE_EXHAUSTED with a
// retry delay, "broken" one chunk then UNAVAILABLE.
type exportStub struct {
	pb.UnimplementedCreditLedgerServer
}

var stubChunks = []string{"date,type\n", "2026-03-01T12:00:00Z,IN\n", "2026-03-02T12:00:00Z,OUT\n"}

func (exportStub) ExportTransactions(r *pb.ExportTransactionsRequest, s grpc.ServerStreamingServer[httpbody.HttpBody]) error {
	switch r.GetAccount() {
	case "denied":
		return status.Error(codes.Unauthenticated, "missing bearer token")
	case "limited":
		st, _ := status.New(codes.ResourceExhausted, "too many requests").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(1500 * time.Millisecond)})
		return st.Err()
	case "broken":
		if err := s.Send(&httpbody.HttpBody{ContentType: "text/csv; charset=utf-8", Data: []byte(stubChunks[0])}); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "store unavailable")
	}
	for i, c := range stubChunks {
		m := &httpbody.HttpBody{Data: []byte(c)}
		if i == 0 {
			m.ContentType = "text/csv; charset=utf-8"
		}
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// A streamed HttpBody reaches a REST caller as the body itself: the
// chunks concatenated, with their content type, no JSON and no
// delimiters; errors are the API's usual JSON status with its headers;
// an error after the body began cuts the response short.
func TestRESTStreamsHttpBodyRaw(t *testing.T) {
	t.Parallel()
	srv := grpc.NewServer()
	pb.RegisterCreditLedgerServer(srv, exportStub{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	gw, err := New(context.Background(), Options{GRPCAddr: lis.Addr().String(), Logger: zap.NewNop(), Ping: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close() })
	hs := httptest.NewServer(gw)
	t.Cleanup(hs.Close)

	type answer struct {
		StatusCode int
		Header     http.Header
	}
	get := func(account string) (answer, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/v1/workspaces/acme/accounts/"+account+"/transactions:export", nil)
		res, err := testClient.Do(req)
		if err != nil {
			return answer{}, "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return answer{res.StatusCode, res.Header}, string(b), err
	}

	res, body, err := get("ok")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "text/csv; charset=utf-8" || body != strings.Join(stubChunks, "") {
		t.Errorf("export: %d %q\n%q", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	res, body, err = get("denied")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if jerr := json.Unmarshal([]byte(body), &st); jerr != nil || res.StatusCode != http.StatusUnauthorized ||
		st["code"] != float64(codes.Unauthenticated) || st["message"] != "missing bearer token" ||
		res.Header.Get("WWW-Authenticate") != `Bearer realm="creditledger"` || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Errorf("refused export: %d %v %q", res.StatusCode, res.Header, body)
	}

	res, _, err = get("limited")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") != "2" {
		t.Errorf("rate-limited export: %d Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}

	// After the first chunk, an error must not look like the end of a
	// good file.
	_, body, err = get("broken")
	if err == nil {
		t.Errorf("an export failing midway ended cleanly: %q", body)
	}
	if strings.Contains(body, "{") {
		t.Errorf("JSON appended to the CSV: %q", body)
	}
}
