package tlsreload

import (
	"crypto/x509"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/tlstest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestReloadOnChange(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	var errs []error
	var reloaded []string
	c, err := Load(p.ServerCert, p.ServerKey, withClock(clk.now),
		WithErrorFunc(func(err error) { errs = append(errs, err) }),
		WithReloadFunc(func(leaf *x509.Certificate) { reloaded = append(reloaded, leaf.Subject.CommonName) }),
	)
	if err != nil {
		t.Fatal(err)
	}
	cn := func() string { return c.Certificate().Leaf.Subject.CommonName }
	if got := cn(); got != "ledgerd" {
		t.Fatalf("first certificate: CN %q", got)
	}
	old := c.Certificate().Certificate[0]

	// A new pair is not looked at before the interval has passed.
	p.IssueServer(t, p.ServerCert, p.ServerKey, "ledgerd-2")
	if got := cn(); got != "ledgerd" {
		t.Fatalf("within the interval: CN %q, want the old certificate", got)
	}
	clk.add(DefaultInterval)
	if got := cn(); got != "ledgerd-2" {
		t.Fatalf("after the interval: CN %q, want ledgerd-2", got)
	}
	if !c.IsCurrent(old) || !c.IsCurrent(c.Certificate().Certificate[0]) {
		t.Error("IsCurrent must accept the current and the previous certificate")
	}

	// A broken new pair keeps the good one and is reported once.
	if err := os.WriteFile(p.ServerCert, []byte("-----BEGIN CERTIFICATE-----\ngarbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clk.add(DefaultInterval)
		if got := cn(); got != "ledgerd-2" {
			t.Fatalf("after a bad file: CN %q, want ledgerd-2 kept", got)
		}
	}
	if len(errs) != 1 {
		t.Errorf("errors reported: %v, want exactly one", errs)
	}

	// A good pair after the bad one is taken.
	p.IssueServer(t, p.ServerCert, p.ServerKey, "ledgerd-3")
	clk.add(DefaultInterval)
	if got := cn(); got != "ledgerd-3" {
		t.Fatalf("after repair: CN %q", got)
	}
	if c.IsCurrent(old) {
		t.Error("a certificate two reloads old must not be current")
	}
	if strings.Join(reloaded, ",") != "ledgerd-2,ledgerd-3" {
		t.Errorf("reloads = %v", reloaded)
	}
}

func TestLoadRefusesMissingFiles(t *testing.T) {
	t.Parallel()
	p := tlstest.New(t)
	if _, err := Load(p.ServerCert, ""); err == nil {
		t.Error("a missing key file must be refused")
	}
	if _, err := Load(p.ServerCert, p.Dir+"/nope.pem"); err == nil || !strings.Contains(err.Error(), "key file") {
		t.Errorf("err = %v", err)
	}
	if err := os.WriteFile(p.ServerKey, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p.ServerCert, p.ServerKey); err == nil {
		t.Error("an unparsable key must be refused")
	}
}
