package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"

	"github.com/creditledger/creditledger/internal/config"
	"github.com/creditledger/creditledger/internal/tlsreload"
)

// tlsOffWarning is logged at start while the listeners are plaintext.
const tlsOffWarning = "TLS is OFF: gRPC and REST are served in plaintext (tokens and amounts readable on the network). " +
	"Development only; set LEDGER_TLS_CERT_FILE and LEDGER_TLS_KEY_FILE in any shared environment."

// transport is the TLS side of ledgerd's listeners; all nil when TLS is off.
type transport struct {
	grpc    credentials.TransportCredentials // the gRPC port (mTLS when a client CA is set)
	http    *tls.Config                      // the REST port (no client certificates)
	gateway *tls.Config                      // the gateway's connection to the gRPC port
}

// newTransport loads the certificate files of cfg. The server certificate
// (and the gateway's, when it has its own) is re-read when its files
// change; the client CA file is read once.
//
// With LEDGER_TLS_CLIENT_CA_FILE, the gRPC port requires a verified client
// certificate (RequireAndVerifyClientCert): its callers are internal
// services, each with a certificate, and a bearer token alone — stolen
// from a log or a portal — must not reach it. The REST port never asks for
// one: portal backends authenticate with tokens.
//
// The gateway dials ledgerd's own gRPC port and accepts only the
// certificate this process serves (the current one or the one it just
// replaced): no CA is needed to verify itself, and no other server can
// stand in. Towards an mTLS gRPC port it presents the gateway certificate,
// or the server's own when none is configured.
func newTransport(cfg config.Config, log *zap.Logger) (transport, error) {
	if !cfg.TLS() {
		log.Warn(tlsOffWarning)
		return transport{}, nil
	}
	load := func(what, certFile, keyFile string) (*tlsreload.Cert, error) {
		c, err := tlsreload.Load(certFile, keyFile,
			tlsreload.WithErrorFunc(func(err error) {
				log.Error("TLS certificate files changed but cannot be loaded; serving the previous certificate",
					zap.String("certificate", what), zap.Error(err))
			}),
			tlsreload.WithReloadFunc(func(leaf *x509.Certificate) {
				log.Info("TLS certificate reloaded", zap.String("certificate", what),
					zap.String("subject", leaf.Subject.String()), zap.Time("not_after", leaf.NotAfter))
			}),
		)
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", what, err)
		}
		return c, nil
	}
	server, err := load("server", cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return transport{}, err
	}
	base := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: server.GetCertificate}
	grpcCfg, httpCfg := base.Clone(), base.Clone()

	gwCfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is VerifyConnection's pin to our own certificate,
		// which is stricter than any CA: only this process's certificate passes.
		InsecureSkipVerify: true, //nolint:gosec // G402: replaced by the pin in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !server.IsCurrent(cs.PeerCertificates[0].Raw) {
				return errors.New("the gRPC port presented a certificate that is not this ledgerd's own")
			}
			return nil
		},
	}
	if cfg.TLSClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSClientCAFile)
		if err != nil {
			return transport{}, fmt.Errorf("%s: %w", config.EnvTLSClientCAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return transport{}, fmt.Errorf("%s: no PEM certificate in %s", config.EnvTLSClientCAFile, cfg.TLSClientCAFile)
		}
		grpcCfg.ClientCAs, grpcCfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
		gwCfg.GetClientCertificate = server.GetClientCertificate
		if cfg.TLSGatewayCertFile != "" {
			gw, err := load("gateway", cfg.TLSGatewayCertFile, cfg.TLSGatewayKeyFile)
			if err != nil {
				return transport{}, err
			}
			gwCfg.GetClientCertificate = gw.GetClientCertificate
		}
	}
	log.Info("TLS is on", zap.Bool("grpc_client_certificates_required", cfg.TLSClientCAFile != ""),
		zap.String("subject", server.Certificate().Leaf.Subject.String()),
		zap.Time("not_after", server.Certificate().Leaf.NotAfter))
	return transport{grpc: credentials.NewTLS(grpcCfg), http: httpCfg, gateway: gwCfg}, nil
}
