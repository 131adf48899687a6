package ledgerclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"

	"github.com/creditledger/creditledger/internal/grpcserver"
	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/store/sqlite"
	"github.com/creditledger/creditledger/internal/token"
)

// exampleLedger is what Example talks to: the real gRPC server, with TLS
// and bearer-token authentication, over the embedded store in a temporary
// directory, with credit payments on in workspace "acme".
type exampleLedger struct {
	Addr   string // the gRPC address
	CAFile string // the CA that signs the server's certificate
	Token  string // a service token with the ledger:write scope for "acme"
	stop   func()
}

// Stop shuts the server down and removes its files.
func (l *exampleLedger) Stop() { l.stop() }

// startExampleLedger panics on failure: an Example has no testing.TB, and
// a setup failure must not pass for a wrong output.
func startExampleLedger() *exampleLedger {
	l, err := newExampleLedger()
	if err != nil {
		panic(fmt.Sprintf("example ledger: %v", err))
	}
	return l
}

func newExampleLedger() (_ *exampleLedger, err error) {
	dir, err := os.MkdirTemp("", "ledgerclient-example-")
	if err != nil {
		return nil, err
	}
	var cleanup []func()
	stop := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		_ = os.RemoveAll(dir)
	}
	defer func() {
		if err != nil {
			stop()
		}
	}()

	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"), sqlite.Options{})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = store.Close() })
	svc := ledger.NewService(store)
	if _, err := svc.UpdateSettings(ctx, "acme", ledger.Settings{CreditPaymentsEnabled: true}, []string{"credit_payments_enabled"}); err != nil {
		return nil, err
	}

	secret := make([]byte, token.MinSecretLength)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	verifier, err := token.NewVerifier(token.VerifierOptions{DevSecret: secret})
	if err != nil {
		return nil, err
	}
	tok, err := token.MintDev(secret, token.New(token.DefaultIssuer, token.DefaultAudience, token.RoleService,
		"checkout", "acme", "", []string{token.ScopeLedgerWrite, token.ScopeLedgerRead}, time.Now(), time.Hour))
	if err != nil {
		return nil, err
	}

	caFile := filepath.Join(dir, "ca.pem")
	serverCert, err := writeExampleCA(caFile)
	if err != nil {
		return nil, err
	}
	srv, err := grpcserver.NewServer(svc, grpcserver.Options{
		Logger: zap.NewNop(), Registerer: prometheus.NewRegistry(),
		Authorizer: grpcserver.NewTokenAuth(verifier),
		Creds:      credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
	})
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	cleanup = append(cleanup, srv.Stop)
	return &exampleLedger{Addr: lis.Addr().String(), CAFile: caFile, Token: tok, stop: stop}, nil
}

// writeExampleCA writes a throwaway CA certificate to caFile and returns a
// server certificate for 127.0.0.1 signed by it.
func writeExampleCA(caFile string) (tls.Certificate, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "example CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ledgerd"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
