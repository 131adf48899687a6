package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// closedPort is a loopback address nothing listens on: connections to it
// are refused, as to a database server still starting.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// tcpURL is owner, a test database URL over the cluster's unix socket,
// reached over TCP at addr instead, and the socket it names.
func tcpURL(t *testing.T, owner, addr string) (tcp, socket string) {
	t.Helper()
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	dir, port := q.Get("host"), q.Get("port")
	if dir == "" || !strings.HasPrefix(dir, "/") {
		t.Fatalf("test database URL %q: want a unix socket host", owner)
	}
	if port == "" {
		port = "5432"
	}
	user := q.Get("user")
	q.Del("host")
	q.Del("port")
	q.Del("user")
	u.Host, u.User, u.RawQuery = addr, url.User(user), q.Encode()
	return u.String(), filepath.Join(dir, ".s.PGSQL."+port)
}

// TestMigrateWaitsForTheDatabase: `ledgerd migrate` started before its
// database accepts connections keeps trying for LEDGER_MIGRATE_WAIT, then
// migrates; with no wait, or against a database that refuses for another
// reason, it fails at once.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	owner, _ := postgresURLs(t)
	addr := closedPort(t)
	tcp, socket := tcpURL(t, owner, addr)

	// The "server" comes up 1.5 s later: a TCP listener forwarding to the
	// cluster's socket.
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("listen %s: %v", addr, err)
			return
		}
		go func() { <-ctx.Done(); _ = l.Close() }()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("unix", socket)
			if err != nil {
				_ = c.Close()
				continue
			}
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go func() { _, _ = io.Copy(c, s); _ = c.Close() }()
		}
	}()

	var out, errOut bytes.Buffer
	start := time.Now()
	env := map[string]string{"LEDGER_MIGRATE_DATABASE_URL": tcp, "LEDGER_MIGRATE_WAIT": "30s"}
	if err := run(context.Background(), []string{"migrate"}, func(k string) string { return env[k] }, &out, &errOut); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut.String())
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("migrate succeeded after %v, before the server was up", took)
	}
	if !strings.Contains(errOut.String(), "not reachable yet") || !strings.Contains(errOut.String(), "migrations applied") {
		t.Fatalf("migrate's log:\n%s", errOut.String())
	}

	for name, c := range map[string]struct {
		env  map[string]string
		want string
	}{
		"no wait": {
			env:  map[string]string{"LEDGER_MIGRATE_DATABASE_URL": strings.Replace(tcp, addr, closedPort(t), 1), "LEDGER_MIGRATE_WAIT": "0s"},
			want: "connection refused",
		},
		"no such database": {
			env:  map[string]string{"LEDGER_MIGRATE_DATABASE_URL": strings.Replace(tcp, "/"+filepath.Base(strings.SplitN(tcp, "?", 2)[0]), "/no_such_db", 1)},
			want: `database "no_such_db" does not exist`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			var errOut bytes.Buffer
			start := time.Now()
			err := run(context.Background(), []string{"migrate"}, func(k string) string { return c.env[k] }, io.Discard, &errOut)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("migrate: %v, want an error saying %s", err, c.want)
			}
			if took := time.Since(start); took > 5*time.Second || strings.Contains(errOut.String(), "not reachable yet") {
				t.Fatalf("migrate took %v and logged:\n%s", took, errOut.String())
			}
		})
	}
}
