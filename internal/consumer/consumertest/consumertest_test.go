package consumertest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/token"
)

// The principals' tokens are what the services' verifier accepts, each
// for its own workspace and account; a fresh operators' key is not trusted.
func TestKeysMintWhatTheVerifierTrusts(t *testing.T) {
	t.Parallel()
	k := consumertest.TestKeys(t)
	for _, p := range consumertest.Principals("agency-1") {
		if p.Anonymous {
			if p.Token(t, k) != "" {
				t.Errorf("%s: a token", p.Name)
			}
			continue
		}
		c, err := k.Verifier.Verify(p.Token(t, k))
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		if c.Role != p.Role || c.Workspace != p.Workspace || c.Account != p.Account {
			t.Errorf("%s: claims %+v", p.Name, c)
		}
	}
	other, _ := consumertest.NewOpsKey(t)
	if _, err := k.Verifier.Verify(consumertest.MintWith(t, other, token.RoleAdmin, "agency-1", "")); err == nil {
		t.Error("a token of an unknown key was accepted")
	}
}

// Start returns once the service listens, with its log, and Stop returns
// what run returned.
func TestStartAndStop(t *testing.T) {
	t.Parallel()
	stopErr := errors.New("stopped as asked")
	run := func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		log := consumer.NewLogger(stderr, "svc")
		_, _ = io.WriteString(stdout, getenv("GREETING"))
		err := consumer.Serve(ctx, consumer.ServeOptions{Log: log, Addr: args[0], Handler: http.NotFoundHandler()})
		if err == nil {
			err = stopErr
		}
		return err
	}
	r := consumertest.Start(t, run, []string{"127.0.0.1:0"}, map[string]string{"GREETING": "hello"})
	conn, err := net.Dial("tcp", r.Addr) //nolint:noctx // a test's loopback probe
	if err != nil {
		t.Fatalf("not listening on %s: %v", r.Addr, err)
	}
	_ = conn.Close()
	if r.Stdout.String() != "hello" {
		t.Errorf("stdout %q", r.Stdout)
	}
	if err := r.Stop(); !errors.Is(err, stopErr) {
		t.Errorf("Stop: %v", err)
	}
	if err := r.Stop(); !errors.Is(err, stopErr) {
		t.Errorf("Stop again: %v", err)
	}
}
