package e2e

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/pgtest"
)

// pgCluster is a PostgreSQL cluster of one test, with production
// durability (fsync, synchronous_commit and full_page_writes on), which the
// test may SIGKILL and start again on the same data directory. It is
// started like pgtest's (as the postgres user when running as root) but
// never shared: killing it harms no other test.
type pgCluster struct {
	dir   string // socket directory and parent of data and log
	data  string
	pgctl string
}

// startDurableCluster initialises and starts a cluster, stopped and
// removed when the test ends.
func startDurableCluster(t testing.TB) *pgCluster {
	t.Helper()
	initdb, err := pgtest.Bin("initdb")
	if err != nil {
		t.Fatal(err)
	}
	pgctl, err := pgtest.Bin("pg_ctl")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := pgtest.MkdirTemp("clkill")
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCluster{dir: dir, data: filepath.Join(dir, "data"), pgctl: pgctl}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = pgtest.AsPostgres(ctx, c.pgctl, "stop", "-m", "immediate", "-D", c.data).Run()
		_ = os.RemoveAll(dir)
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := pgtest.AsPostgres(ctx, initdb, "-D", c.data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	c.start(t)
	return c
}

// start starts the server on the data directory and waits until it
// accepts connections (after crash recovery, if it was killed).
func (c *pgCluster) start(t testing.TB) {
	t.Helper()
	opts := strings.Join([]string{
		"-k " + c.dir, "-c listen_addresses=''",
		"-c fsync=on", "-c synchronous_commit=on", "-c full_page_writes=on",
		"-c max_connections=200", "-c shared_buffers=32MB",
	}, " ")
	var (
		out []byte
		err error
	)
	for attempt := 0; attempt < 5; attempt++ {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		out, err = pgtest.AsPostgres(ctx, c.pgctl, "start", "-w", "-t", "120", "-D", c.data,
			"-l", filepath.Join(c.dir, "log"), "-o", opts).CombinedOutput()
		cancel()
		if err == nil {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(c.dir, "log")) //nolint:gosec // G304: the log of the cluster this test created
	t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
}

// url is the connection URL of database db (over the unix socket).
func (c *pgCluster) url(db string) string {
	u := url.URL{Scheme: "postgres", Path: "/" + db, RawQuery: url.Values{
		"host": {c.dir}, "user": {"postgres"}, "sslmode": {"disable"},
	}.Encode()}
	return u.String()
}

// createDatabase creates database name and returns its URL.
func (c *pgCluster) createDatabase(t testing.TB, name string) string {
	t.Helper()
	conn := pgConnect(t, c.url("postgres"))
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return c.url(name)
}

// kill SIGKILLs the postmaster and every process it started, as an
// OOM-killer or a power cut would, and waits until all are gone. Backends
// are killed too: left alone, an orphaned backend keeps the shared memory
// attached and the restart would have to wait for it.
func (c *pgCluster) kill(t testing.TB) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		t.Fatalf("read postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]))
	if err != nil || pid <= 1 {
		t.Fatalf("postmaster.pid: no pid in %q", raw)
	}
	victims := append([]int{pid}, childrenOf(pid)...)
	for _, p := range victims {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	// Children a dying postmaster forked in the meantime.
	for _, p := range childrenOf(pid) {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range victims {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("PostgreSQL process %d survived SIGKILL for 30s", p)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}
