package ledgerclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/creditledger/creditledger/internal/tlsreload"
)

// TLSConfigFromFiles returns the client TLS configuration for WithTLS from
// PEM files:
//
//   - caFile: the CA certificates that sign ledgerd's server certificate;
//     empty trusts the system's roots;
//   - certFile and keyFile (both or neither): the client certificate for
//     ledgerd's mTLS gRPC port. They are re-read when the files change
//     (checked at most every few seconds), so a long-running consumer
//     picks up a renewed certificate without a restart.
//
// The server's name is verified against the dial target's host; dial
// ledgerd by a name or IP its certificate carries.
func TLSConfigFromFiles(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile) //nolint:gosec // G304: the operator names the CA file
		if err != nil {
			return nil, fmt.Errorf("ledgerclient: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ledgerclient: CA file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("ledgerclient: a client certificate needs both its certificate file and its key file")
	}
	if certFile != "" {
		cert, err := tlsreload.Load(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("ledgerclient: client certificate: %w", err)
		}
		cfg.GetClientCertificate = cert.GetClientCertificate
	}
	return cfg, nil
}
