package main

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/creditledger/creditledger/gen/creditledger/v1"
	"github.com/creditledger/creditledger/internal/tlstest"
)

// TestTLSAndMTLS runs ledgerd with TLS on both doors and client
// certificates required on gRPC: a caller with a certificate of the client
// CA is served, one without (or in plaintext) is not; REST is HTTPS
// without a client certificate and reaches gRPC through the gateway's own
// mTLS connection; renewed certificate files are served without a restart;
// metrics answer on their own plaintext listener only.
func TestTLSAndMTLS(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	env := map[string]string{
		"LEDGER_AUTH":               "none",
		"LEDGER_TLS_CERT_FILE":      p.ServerCert,
		"LEDGER_TLS_KEY_FILE":       p.ServerKey,
		"LEDGER_TLS_CLIENT_CA_FILE": p.CAFile,
	}
	d := startLedgerdTLS(t, []string{"--data-dir", t.TempDir()}, env, p.ClientConfig(t, true))
	ctx := testCtx(t)

	// gRPC with the client certificate.
	if _, err := d.ledger.Credit(ctx, &pb.CreditRequest{Workspace: "w", Account: "a", Amount: 7, IdempotencyKey: "k1"}); err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	// gRPC over TLS without a client certificate, and in plaintext: refused.
	for name, creds := range map[string]credentials.TransportCredentials{
		"no client certificate": credentials.NewTLS(p.ClientConfig(t, false)),
		"plaintext":             insecure.NewCredentials(),
	} {
		conn, err := grpc.NewClient(d.grpcAddr, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = pb.NewCreditLedgerClient(conn).GetBalance(cctx, &pb.GetBalanceRequest{Workspace: "w", Account: "a"})
		cancel()
		_ = conn.Close()
		if status.Code(err) != codes.Unavailable && status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("gRPC with %s: %v, want the connection refused", name, err)
		}
	}

	// REST over HTTPS, no client certificate needed; the gateway's call to
	// gRPC goes over its own mTLS connection.
	d.http = &http.Client{Transport: &http.Transport{TLSClientConfig: p.ClientConfig(t, false), ForceAttemptHTTP2: true}}
	t.Cleanup(d.http.CloseIdleConnections)
	if r := d.rest(t, "GET", "/v1/workspaces/w/accounts/a/balance", "", ""); r.code != 200 || r.body["balance"] != "7" {
		t.Fatalf("REST balance over https: %d %s", r.code, r.raw)
	}
	if r := d.rest(t, "POST", "/v1/workspaces/w/accounts/a:credit", "", `{"amount":"3","idempotencyKey":"k2"}`); r.code != 200 || r.body["balance"] != "10" {
		t.Fatalf("REST credit over https: %d %s", r.code, r.raw)
	}

	// Renewed files are served without a restart, on both ports.
	if cn := servedCN(t, d.httpAddr, p.ClientConfig(t, false)); cn != "ledgerd" {
		t.Fatalf("REST serves CN %q before renewal", cn)
	}
	p.IssueServer(t, p.ServerCert, p.ServerKey, "ledgerd-renewed")
	deadline := time.Now().Add(20 * time.Second)
	for servedCN(t, d.httpAddr, p.ClientConfig(t, false)) != "ledgerd-renewed" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate is not served on the REST port after 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cn := servedCN(t, d.grpcAddr, p.ClientConfig(t, true)); cn != "ledgerd-renewed" {
		t.Errorf("gRPC serves CN %q after renewal", cn)
	}
	// The gateway accepts the renewed certificate on new connections too.
	if r := d.rest(t, "GET", "/v1/workspaces/w/accounts/a/balance", "", ""); r.code != 200 || r.body["balance"] != "10" {
		t.Fatalf("REST after renewal: %d %s", r.code, r.raw)
	}
	lines, _ := d.logs.all()
	reloaded := false
	for _, l := range lines {
		reloaded = reloaded || l["msg"] == "TLS certificate reloaded"
	}
	if !reloaded {
		t.Error("no log line for the reload")
	}
	// The request log line names the service of the client certificate.
	peers := map[string]bool{}
	for _, l := range lines {
		if l["msg"] == "request" && l["method"] == "/creditledger.v1.CreditLedger/Credit" {
			peers[str(l["peer_service"])] = true
		}
	}
	if !peers[tlstest.ClientURI] {
		t.Errorf("Credit log lines name peers %v, want %q", peers, tlstest.ClientURI)
	}

	// Metrics on their own listener; not on the REST port.
	if r := d.scrape(t); !strings.Contains(r.raw, `creditledger_grpc_server_handled_total{grpc_code="OK",grpc_method="Credit"`) {
		t.Errorf("metrics listener lacks the Credit counter:\n%.2000s", r.raw)
	}
	if r := d.rest(t, "GET", "/metrics", "", ""); r.code != 404 {
		t.Errorf("/metrics on the REST port: %d, want 404", r.code)
	}
}

// servedCN returns the common name of the certificate served at addr.
func servedCN(t *testing.T, addr string, cfg *tls.Config) string {
	t.Helper()
	cfg.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	conn, err := d.DialContext(testCtx(t), "tcp", addr)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Subject.CommonName
}
