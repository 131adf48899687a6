package demo

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one program of the stack, its output kept in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lines
	done chan struct{}
	err  error
}

// lines writes a process's output to its log file and finds the line
// that says it is serving.
type lines struct {
	mu    sync.Mutex
	buf   []byte
	tail  []string
	file  io.Writer
	ready chan map[string]any
	match func(line string) (map[string]any, bool)
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		_, _ = l.file.Write(p)
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if l.tail = append(l.tail, line); len(l.tail) > 200 {
			l.tail = l.tail[1:]
		}
		if m, ok := l.match(line); ok {
			select {
			case l.ready <- m:
			default:
			}
		}
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.tail, "\n")
}

// listening matches the JSON log line {"msg": "listening", …} the
// CreditLedger programs write once serving.
func listening(line string) (map[string]any, bool) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
		return m, true
	}
	return nil, false
}

// start runs bin with env (added to the parent's environment minus the
// programs' own variables) and waits until match finds its ready line.
func start(name, bin string, args, env []string, logDir string, match func(string) (map[string]any, bool), timeout time.Duration) (*proc, map[string]any, error) {
	f, err := os.Create(filepath.Join(logDir, name+".log")) //nolint:gosec // G304: the demo's own data directory
	if err != nil {
		return nil, nil, err
	}
	p := &proc{name: name, out: &lines{file: f, ready: make(chan map[string]any, 1), match: match}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...) //nolint:gosec,noctx // our own binaries; stopped by Stop with SIGTERM
	p.cmd.Env = append(cleanEnv(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = sysProcAttr()
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	select {
	case m := <-p.out.ready:
		return p, m, nil
	case <-p.done:
		return nil, nil, fmt.Errorf("%s exited before serving (%w); its output:\n%s", name, p.err, p.out)
	case <-time.After(timeout):
		_ = p.stop(5 * time.Second) // it failed to start: the timeout is the error
		return nil, nil, fmt.Errorf("%s did not start within %v; its output:\n%s", name, timeout, p.out)
	}
}

// stop sends SIGTERM and waits up to grace, then kills. It returns the
// exit error, if the process did not end cleanly.
func (p *proc) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM: killed", p.name, grace)
	}
}

func (p *proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return fmt.Errorf("%s exited: %w; its last output:\n%s", p.name, p.err, p.out)
	}
	return p.err
}

// cleanEnv is the environment without the programs' own variables, so
// that a developer's settings do not leak into the stack.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "LEDGER_"), strings.HasPrefix(k, "CHECKOUT_"), strings.HasPrefix(k, "INVOICING_"),
			strings.HasPrefix(k, "PORTAL_"), strings.HasPrefix(k, "STRIPE_"):
			continue
		}
		out = append(out, kv)
	}
	return out
}
