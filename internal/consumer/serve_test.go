package consumer

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// serving runs Serve with o until the test ends; it returns the address
// of the "listening" line, and the error Serve returned once stopped.
func serving(t *testing.T, o ServeOptions) (addr string, stop func() error) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	o.Log, o.Addr = zap.New(core), "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, o) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l := logs.FilterMessage("listening").All(); len(l) > 0 {
			addr = l[0].ContextMap()["http_addr"].(string)
			break
		}
		select {
		case err := <-done:
			t.Fatalf("Serve returned before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("never listening")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
		}
		return <-done
	}
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})
	return addr, stop
}

func get(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// A service without reconciliation nor events (a portal) is served, and
// stops cleanly.
func TestServeAnAPIAlone(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", Healthz)
	addr, stop := serving(t, ServeOptions{Handler: mux})
	if code := get(t, "http://"+addr+"/healthz"); code != 200 {
		t.Errorf("healthz: HTTP %d", code)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// The start-up reconciliation is over before the API takes its first
// call, and the follower is stopped before Serve returns (the caller
// closes the database next).
func TestServeReconcilesFirstAndStopsEverythingBeforeReturning(t *testing.T) {
	t.Parallel()
	var passes, following atomic.Int32
	reconcile := func(context.Context) error {
		passes.Add(1)
		return errors.New("the ledger is away") // logged; the start goes on
	}
	follow := func(ctx context.Context) error {
		following.Add(1)
		<-ctx.Done()
		following.Add(-1)
		return nil
	}
	mux := http.NewServeMux()
	var passesSeen atomic.Int32
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		passesSeen.Store(passes.Load())
		w.WriteHeader(http.StatusNoContent)
	})
	addr, stop := serving(t, ServeOptions{Handler: mux, Reconcile: reconcile, Every: time.Millisecond, Follow: follow})
	if code := get(t, "http://"+addr+"/"); code != http.StatusNoContent || passesSeen.Load() < 1 {
		t.Errorf("HTTP %d after %d reconciliation passes", code, passesSeen.Load())
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if n := following.Load(); n != 0 {
		t.Errorf("the follower still runs after Serve returned")
	}
}

func TestServeNeedsAPeriodToReconcile(t *testing.T) {
	t.Parallel()
	err := Serve(t.Context(), ServeOptions{Addr: "127.0.0.1:0", Handler: http.NewServeMux(), Reconcile: func(context.Context) error { return nil }})
	if err == nil {
		t.Error("served with a reconciliation pass and no period")
	}
}
