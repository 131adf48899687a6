package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// testClient has a connection pool of its own (.golangci.yml's forbidigo
// rule says why tests need one).
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// startTimeout bounds how long a process may take to log "listening".
const startTimeout = 90 * time.Second

// moduleRoot is the repository root (the directory of go.mod).
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.CommandContext(context.Background(), "go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(gomod)
}

var built struct {
	once sync.Once
	dir  string
	err  error
}

// binaries builds ledgerd, checkout, invoicing, ledgerctl and stripe-dev once per test
// binary and returns the directory holding them.
func binaries(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "e2ebin")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		args := []string{"build", "-o", dir + string(os.PathSeparator), "./cmd/ledgerd", "./cmd/checkout", "./cmd/invoicing", "./cmd/ledgerctl", "./cmd/stripe-dev"}
		cmd := exec.CommandContext(context.Background(), "go", args...)
		cmd.Dir = moduleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

// baseEnv is the test process's environment without any of the
// programs' own variables, so that a developer's settings do not leak in,
// and with ledgerd's request limits out of the way.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "LEDGER_") || strings.HasPrefix(k, "CHECKOUT_") || strings.HasPrefix(k, "INVOICING_") || strings.HasPrefix(k, "STRIPE_DEV_") {
			continue
		}
		out = append(out, kv)
	}
	// The load and fault tests drive one workspace as one caller, far past
	// the default rate limits, and submit without always deciding: they
	// test correctness under load, not the limits (the grpcserver, gateway
	// and conformance tests do).
	return append(out, "LEDGER_RATE_LIMIT_WORKSPACE=0", "LEDGER_RATE_LIMIT_SUBJECT=0",
		"LEDGER_RATE_LIMIT_SUBJECT_WRITES=0", "LEDGER_RATE_LIMIT_SUBMIT=0", "LEDGER_MAX_PENDING_REQUESTS=1000")
}

// logLines collects a process's output and reports its JSON "listening" line.
type logLines struct {
	name      string
	mu        sync.Mutex
	buf       []byte
	raw       []string
	listening chan map[string]any
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		l.raw = append(l.raw, line)
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
			select {
			case l.listening <- m:
			default:
			}
		}
	}
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw, "\n")
}

// proc is one running program.
type proc struct {
	name   string
	cmd    *exec.Cmd
	logs   *logLines
	listen map[string]any
	done   chan struct{}
	err    error // the Wait error, once done is closed
}

// startProc starts bin with args and env (added to baseEnv) and waits for
// its "listening" log line. At the end of the test a still-running process
// is stopped with SIGTERM, and must exit 0.
func startProc(t *testing.T, bin string, args []string, env ...string) *proc {
	t.Helper()
	p := &proc{name: filepath.Base(bin), logs: &logLines{name: filepath.Base(bin), listening: make(chan map[string]any, 1)}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...) //nolint:gosec,noctx // test binaries we just built; lifetime managed below
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if code := p.stop(t); code != 0 {
			t.Errorf("%s exited %d on SIGTERM; output:\n%s", p.name, code, p.logs)
		}
	})
	select {
	case p.listen = <-p.logs.listening:
		return p
	case <-p.done:
		t.Fatalf("%s exited before listening (%v); output:\n%s", p.name, p.err, p.logs)
	case <-time.After(startTimeout):
		t.Fatalf("%s did not log \"listening\" within %v; output:\n%s", p.name, startTimeout, p.logs)
	}
	return nil
}

// field returns a string field of the listening line.
func (p *proc) field(t testing.TB, name string) string {
	t.Helper()
	v, _ := p.listen[name].(string)
	if v == "" || strings.HasSuffix(v, ":0") {
		t.Fatalf("%s: listening line has %s=%q: %v", p.name, name, v, p.listen)
	}
	return v
}

// waitLog waits until the process logged a JSON line with msg and every
// field of want (string values), or fails the test after d.
func (p *proc) waitLog(t testing.TB, d time.Duration, msg string, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p.logs.mu.Lock()
		lines := slices.Clone(p.logs.raw)
		p.logs.mu.Unlock()
		for _, line := range lines {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["msg"] != msg {
				continue
			}
			ok := true
			for k, v := range want {
				ok = ok && m[k] == v
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log %q with %v within %v; output:\n%s", p.name, msg, want, d, p.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit code (killing after 30s).
func (p *proc) stop(t testing.TB) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s ignored SIGTERM for 30s; killed", p.name)
	}
	return p.exitCode()
}

// wait waits for the process to exit on its own and returns its exit code.
func (p *proc) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.exitCode()
	case <-time.After(d):
		t.Fatalf("%s still running after %v; output:\n%s", p.name, d, p.logs)
		return -1
	}
}

func (p *proc) exitCode() int {
	var xe *exec.ExitError
	if errors.As(p.err, &xe) {
		return xe.ExitCode()
	}
	if p.err != nil {
		return -1
	}
	return 0
}

// api is a JSON HTTP client of one service.
type api struct {
	t    *testing.T
	base string
}

// call sends body as JSON and decodes the answer into out; it returns the
// status code, or 0 with the error when the connection failed.
func (a api) call(method, path string, body, out any) (int, error) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := testClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, err
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: HTTP %d, undecodable body %q: %v", method, path, res.StatusCode, raw, err)
		}
	}
	return res.StatusCode, nil
}

// must is call that requires the given status.
func (a api) must(want int, method, path string, body, out any) {
	a.t.Helper()
	var raw json.RawMessage
	code, err := a.call(method, path, body, &raw)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code != want {
		a.t.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			a.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
}

// ctl runs the real ledgerctl binary.
type ctl struct {
	t   *testing.T
	bin string
	env []string
}

// run returns stdout, stderr and the exit code.
func (c ctl) run(args ...string) (string, string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(baseEnv(), c.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var xe *exec.ExitError
	switch {
	case errors.As(err, &xe):
		code = xe.ExitCode()
	case err != nil:
		c.t.Fatalf("ledgerctl %q: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// must runs ledgerctl and requires exit 0.
func (c ctl) must(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("ledgerctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func exe(name string) string {
	if runtime.GOOS == "windows" {
		return name + ".exe"
	}
	return name
}

func envKV(k, v string) string { return fmt.Sprintf("%s=%s", k, v) }
