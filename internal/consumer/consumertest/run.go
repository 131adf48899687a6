package consumertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"
)

// RunFunc is a service's run (consumer.RunFunc).
type RunFunc = func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error

// Running is a service's run started by Start.
type Running struct {
	// URL is "http://" + Addr, the address of its "listening" log line.
	URL, Addr string
	// Stdout is what it printed; Logs its log lines so far.
	Stdout, Logs *SyncBuffer

	once   sync.Once
	cancel context.CancelFunc
	done   chan error
	err    error
}

// Start runs a service's run in-process with args and the environment env
// (nothing else of the process's), and returns once it logged "listening"
// (with the field http_addr), failing the test if run returns before. The
// run is stopped at the end of the test, if Stop did not.
func Start(t testing.TB, run RunFunc, args []string, env map[string]string) *Running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &Running{Stdout: &SyncBuffer{}, Logs: &SyncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	pr, pw := io.Pipe()
	go func() {
		err := run(ctx, args, func(k string) string { return env[k] }, r.Stdout, io.MultiWriter(r.Logs, pw))
		_ = pw.Close()
		r.done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct {
				Msg      string `json:"msg"`
				HTTPAddr string `json:"http_addr"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.HTTPAddr
			}
		}
		close(addr)
		_, _ = io.Copy(io.Discard, pr)
	}()
	a, ok := <-addr
	if !ok {
		cancel()
		t.Fatalf("did not start: %v\n%s", <-r.done, r.Logs)
	}
	r.Addr, r.URL = a, "http://"+a
	t.Cleanup(func() {
		stopped := make(chan struct{})
		go func() { _ = r.Stop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			t.Errorf("did not stop within 20s\n%s", r.Logs)
		}
	})
	return r
}

// Stop cancels the run's context and returns what run returned; again,
// the same.
func (r *Running) Stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

// SyncBuffer is a bytes.Buffer that goroutines may write at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Go runs loop (a service's follower of the ledger's events…) in the
// background until the returned stop is called or the test ends; an
// error it returns fails the test.
func Go(t testing.TB, loop func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("background loop: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
