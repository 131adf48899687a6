// Package tlstest writes a throwaway certificate authority and certificates
// signed by it for tests: a server certificate for 127.0.0.1, ::1 and
// localhost, and client certificates carrying a service identity. Nothing
// here is fit for production: keys are generated per test and written
// unencrypted.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a certificate authority whose files live in a test's temporary
// directory, with one server and one client certificate already issued.
type PKI struct {
	// Dir holds every file written.
	Dir string
	// CAFile is the CA certificate (PEM); Pool trusts it.
	CAFile string
	Pool   *x509.CertPool
	// ServerCert and ServerKey: CN "ledgerd", SANs 127.0.0.1, ::1, localhost.
	ServerCert, ServerKey string
	// ClientCert and ClientKey: CN "checkout", URI SAN ClientURI.
	ClientCert, ClientKey string

	ca    *x509.Certificate
	caKey *ecdsa.PrivateKey
}

// ClientURI is the URI SAN of the client certificate New issues.
const ClientURI = "spiffe://creditledger.test/checkout"

// New creates a CA and issues the server and client certificates under
// tb.TempDir().
func New(tb testing.TB) *PKI {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "creditledger test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("tlstest: CA: %v", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("tlstest: CA: %v", err)
	}
	p := &PKI{Dir: tb.TempDir(), ca: ca, caKey: key, Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	p.CAFile = filepath.Join(p.Dir, "ca.pem")
	writePEM(tb, p.CAFile, "CERTIFICATE", der)
	p.ServerCert, p.ServerKey = filepath.Join(p.Dir, "server.pem"), filepath.Join(p.Dir, "server-key.pem")
	p.IssueServer(tb, p.ServerCert, p.ServerKey, "ledgerd")
	p.ClientCert, p.ClientKey = filepath.Join(p.Dir, "client.pem"), filepath.Join(p.Dir, "client-key.pem")
	p.IssueClient(tb, p.ClientCert, p.ClientKey, "checkout", ClientURI)
	return p
}

// IssueServer writes a server certificate for 127.0.0.1, ::1 and localhost
// with common name cn. Each file is written to a temporary name and
// renamed into place, as certificate managers do, so that a reader never
// sees half a file.
func (p *PKI) IssueServer(tb testing.TB, certFile, keyFile, cn string) *x509.Certificate {
	tb.Helper()
	return p.issue(tb, certFile, keyFile, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
}

// IssueClient writes a client certificate with common name cn and, when
// uri is not empty, that URI SAN.
func (p *PKI) IssueClient(tb testing.TB, certFile, keyFile, cn, uri string) *x509.Certificate {
	tb.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if uri != "" {
		u, err := url.Parse(uri)
		if err != nil {
			tb.Fatalf("tlstest: %v", err)
		}
		tmpl.URIs = []*url.URL{u}
	}
	return p.issue(tb, certFile, keyFile, tmpl)
}

// ServerConfig is a TLS server configuration with the server certificate
// (no client certificate requested).
func (p *PKI) ServerConfig(tb testing.TB) *tls.Config {
	tb.Helper()
	cert, err := tls.LoadX509KeyPair(p.ServerCert, p.ServerKey)
	if err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// ClientConfig is a TLS client configuration trusting the CA, presenting
// the client certificate when withCert.
func (p *PKI) ClientConfig(tb testing.TB, withCert bool) *tls.Config {
	tb.Helper()
	cfg := &tls.Config{RootCAs: p.Pool, MinVersion: tls.VersionTLS12}
	if withCert {
		cert, err := tls.LoadX509KeyPair(p.ClientCert, p.ClientKey)
		if err != nil {
			tb.Fatalf("tlstest: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg
}

func (p *PKI) issue(tb testing.TB, certFile, keyFile string, tmpl *x509.Certificate) *x509.Certificate {
	tb.Helper()
	key := newKey(tb)
	tmpl.SerialNumber = serial(tb)
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		tb.Fatalf("tlstest: issue %s: %v", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	writePEM(tb, keyFile, "PRIVATE KEY", keyDER)
	writePEM(tb, certFile, "CERTIFICATE", der)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	return cert
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("tlstest: key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		tb.Fatalf("tlstest: serial: %v", err)
	}
	return n
}

// writePEM writes one PEM block to a temporary file next to path and
// renames it into place.
func writePEM(tb testing.TB, path, typ string, der []byte) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatalf("tlstest: %v", err)
	}
}
