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

// Environment variables of a consumer (checkout, invoicing) that reaches
// ledgerd over TLS.
const (
	// EnvTLS turns TLS on with the system's roots ("true"); a CA file
	// turns it on by itself.
	EnvTLS = "LEDGER_TLS"
	// EnvCAFile names the CA certificates (PEM) that sign ledgerd's certificate.
	EnvCAFile = "LEDGER_CA_FILE"
	// EnvCertFile and EnvKeyFile name the client certificate and key for
	// ledgerd's mTLS gRPC port.
	EnvCertFile = "LEDGER_CLIENT_CERT_FILE"
	EnvKeyFile  = "LEDGER_CLIENT_KEY_FILE"
)

// TLSFromEnv returns the TLS configuration the variables above describe,
// or nil (plaintext) when none of them is set.
func TLSFromEnv(getenv func(string) string) (*tls.Config, error) {
	ca, cert, key := getenv(EnvCAFile), getenv(EnvCertFile), getenv(EnvKeyFile)
	on := getenv(EnvTLS)
	switch on {
	case "", "false", "0":
		if ca == "" && cert == "" && key == "" {
			return nil, nil
		}
		if on != "" {
			return nil, fmt.Errorf("%s=%s contradicts %s, %s and %s", EnvTLS, on, EnvCAFile, EnvCertFile, EnvKeyFile)
		}
	case "true", "1":
	default:
		return nil, fmt.Errorf("%s: %q is not a boolean", EnvTLS, on)
	}
	cfg, err := TLSConfigFromFiles(ca, cert, key)
	if err != nil {
		return nil, fmt.Errorf("TLS to ledgerd (%s, %s, %s): %w", EnvCAFile, EnvCertFile, EnvKeyFile, err)
	}
	return cfg, nil
}
