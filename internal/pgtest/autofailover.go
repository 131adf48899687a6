//go:build linux

package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// Formation is a pg_auto_failover formation of one test: a monitor, a
// primary and a synchronous secondary, each a PostgreSQL server run by its
// own pg_autoctl keeper, on loopback TCP ports. The servers keep
// production durability (fsync, synchronous_commit, full_page_writes on)
// and the secondary is in the primary's synchronous_standby_names: a
// commit is acknowledged once the standby has flushed it. The monitor's
// health checks are tightened so that a failover takes seconds, not the
// half minute of the defaults.
//
// Everything runs as the postgres system user when the test runs as root,
// in a temporary directory removed at the end of the test, with every
// process of the formation killed, even when the test fails.
type Formation struct {
	tb      testing.TB
	dir     string
	autoctl string
	pgctl   string
	initdb  string
	uid     int // owner of the processes and files (-1: the current user)
	gid     int
	monitor *FormationNode
	nodes   []*FormationNode
}

// FormationNode is one server of a formation: a pg_autoctl keeper (or the
// monitor's) and the PostgreSQL it runs.
type FormationNode struct {
	// Name is the node's name in the formation ("monitor", "node1", "node2").
	Name string
	// Port is the server's TCP port on 127.0.0.1.
	Port int

	home   string // every process of the node runs in it
	pgdata string
	cmd    *exec.Cmd
	log    *syncBuffer
	done   chan struct{}
	killed bool
}

// NodeState is one data node as the monitor sees it.
type NodeState struct {
	Name     string
	Port     int
	Reported string // the state the node's keeper last reported
	Goal     string // the state the monitor assigned it
}

// formationTimeout bounds the formation's start: two initdb, a base backup
// and the first state transitions take some 15 s on a loaded 2-core machine.
const formationTimeout = 3 * time.Minute

// The monitor's settings: health checks every second that give up after
// one quick retry, a node declared unhealthy 5 s after its keeper last
// reported, and a dead primary's demotion waited for 3 s. Production keeps
// pg_auto_failover's defaults (a failover then takes 20–40 s); these keep
// the test short, not its outcome different.
var monitorSettings = []string{
	"pgautofailover.health_check_period = 1000",
	"pgautofailover.health_check_timeout = 2000",
	"pgautofailover.health_check_max_retries = 1",
	"pgautofailover.health_check_retry_delay = 500",
	"pgautofailover.node_considered_unhealthy_timeout = 5000",
	"pgautofailover.primary_demote_timeout = 3000",
}

// StartFormation starts a monitor, a primary and a secondary, and returns
// once the monitor reports them primary and secondary and the primary
// replicates synchronously to the secondary. It fails the test loudly when
// pg_auto_failover is missing (`make test` installs it:
// scripts/ensure-postgres.sh).
func StartFormation(tb testing.TB) *Formation {
	tb.Helper()
	f := &Formation{tb: tb}
	var err error
	if f.autoctl, err = exec.LookPath("pg_autoctl"); err != nil {
		tb.Fatalf("pg_autoctl (pg_auto_failover) not found: run `make test` (scripts/ensure-postgres.sh installs it): %v", err)
	}
	if f.pgctl, err = Bin("pg_ctl"); err != nil {
		tb.Fatal(err)
	}
	if f.initdb, err = Bin("initdb"); err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(f.pgctl)), "lib", "pgautofailover.so")); err != nil {
		tb.Fatalf("the pgautofailover extension is not installed for %s: run `make test` (scripts/ensure-postgres.sh installs it): %v",
			filepath.Dir(f.pgctl), err)
	}
	if f.uid, f.gid, err = serverOwner(); err != nil {
		tb.Fatal(err)
	}
	if f.dir, err = MkdirTemp("claf"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.stop)
	for _, d := range []string{"config", "data", "run"} {
		if err := f.mkdir(filepath.Join(f.dir, d)); err != nil {
			tb.Fatal(err)
		}
	}
	ports, err := freePorts(3)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tb.Context(), formationTimeout)
	defer cancel()

	// The monitor: created (initdb, extension), told to listen on loopback
	// only, then run.
	f.monitor = f.newNode("monitor", ports[0])
	f.initCluster(ctx, f.monitor, monitorSettings...)
	f.autoctlOnce(ctx, f.monitor, "create", "monitor", "--pgdata", f.monitor.pgdata, "--pgport", strconv.Itoa(f.monitor.Port),
		"--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl", "--pgctl", f.pgctl)
	f.autoctlOnce(ctx, f.monitor, "config", "set", "--pgdata", f.monitor.pgdata, "postgresql.listen_addresses", "127.0.0.1")
	f.run(f.monitor, "run", "--pgdata", f.monitor.pgdata)
	f.waitUntil(ctx, "the monitor to accept connections", func() (bool, error) {
		_, err := f.States(ctx)
		return err == nil, nil
	})

	// The primary first (it registers as single), then the secondary,
	// which the keeper builds with pg_basebackup from the primary.
	primary := f.newNode("node1", ports[1])
	f.initCluster(ctx, primary)
	f.run(primary, f.createNodeArgs(primary)...)
	f.waitUntil(ctx, "node1 to register as single", func() (bool, error) {
		st, err := f.States(ctx)
		return err == nil && len(st) == 1 && st[0].Reported == "single", nil
	})
	secondary := f.newNode("node2", ports[2])
	f.run(secondary, f.createNodeArgs(secondary)...)
	f.waitUntil(ctx, "node1 primary and node2 secondary", func() (bool, error) {
		st, err := f.States(ctx)
		if err != nil || len(st) != 2 {
			return false, nil // the monitor may be busy; poll again
		}
		return st[0].Reported == "primary" && st[0].Goal == "primary" &&
			st[1].Reported == "secondary" && st[1].Goal == "secondary", nil
	})
	f.waitUntil(ctx, "synchronous replication from node1 to node2", func() (bool, error) {
		return f.synchronous(ctx, primary)
	})
	return f
}

// createNodeArgs are the pg_autoctl arguments that create data node n in
// the formation and keep running its keeper.
func (f *Formation) createNodeArgs(n *FormationNode) []string {
	return []string{
		"create", "postgres", "--pgdata", n.pgdata, "--pgport", strconv.Itoa(n.Port),
		"--listen", "127.0.0.1", "--hostname", "127.0.0.1", "--name", n.Name,
		"--monitor", f.MonitorURL(), "--auth", "trust", "--no-ssl", "--pgctl", f.pgctl, "--run",
	}
}

// synchronous reports whether n, a primary, is durable and replicates
// synchronously: fsync and synchronous_commit on, a standby named in
// synchronous_standby_names and streaming in it (sync or quorum).
func (f *Formation) synchronous(ctx context.Context, n *FormationNode) (bool, error) {
	conn, err := pgx.Connect(ctx, f.nodeURL(n, "postgres"))
	if err != nil {
		return false, nil // not up yet: poll again
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var names, commit, fsync string
	var streaming int
	err = conn.QueryRow(ctx, `SELECT current_setting('synchronous_standby_names'), current_setting('synchronous_commit'),
		current_setting('fsync'),
		(SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum'))`).
		Scan(&names, &commit, &fsync, &streaming)
	if err != nil {
		return false, err
	}
	if commit != "on" || fsync != "on" {
		return false, fmt.Errorf("%s: synchronous_commit=%s fsync=%s: the formation must be durable", n.Name, commit, fsync)
	}
	return names != "" && streaming > 0, nil
}

// newNode lays out a node's directory.
func (f *Formation) newNode(name string, port int) *FormationNode {
	home := filepath.Join(f.dir, name)
	if err := f.mkdir(home); err != nil {
		f.tb.Fatal(err)
	}
	return &FormationNode{Name: name, Port: port, home: home, pgdata: filepath.Join(home, "pgdata"), log: &syncBuffer{}}
}

// initCluster runs initdb for n with the test's settings appended to
// postgresql.conf (pg_auto_failover's own come before, in a file it
// includes, and are overridden by these). A secondary gets the primary's
// through its base backup.
func (f *Formation) initCluster(ctx context.Context, n *FormationNode, extra ...string) {
	f.tb.Helper()
	out, err := AsPostgres(ctx, f.initdb, "-D", n.pgdata, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		f.tb.Fatalf("initdb %s: %v\n%s", n.Name, err, out)
	}
	settings := append([]string{
		// Durable: this formation is about not losing what was acknowledged.
		"fsync = on", "synchronous_commit = on", "full_page_writes = on",
		"unix_socket_directories = '" + f.dir + "'",
		// pg_auto_failover sizes the server for the whole machine; three
		// of them share it with other tests.
		"shared_buffers = 32MB", "max_connections = 100",
		// In the data directory, so that a killed server leaves nothing in /dev/shm.
		"dynamic_shared_memory_type = mmap",
	}, extra...)
	conf := filepath.Join(n.pgdata, "postgresql.conf")
	file, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0) //nolint:gosec // G304: the cluster this test created
	if err != nil {
		f.tb.Fatal(err)
	}
	_, err = fmt.Fprintf(file, "\n# The failover test's settings\n%s\n", strings.Join(settings, "\n"))
	if cerr := file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		f.tb.Fatalf("write %s: %v", conf, err)
	}
}

// command is pg_autoctl with args for node n: as the postgres user when
// root, in n's directory, with pg_autoctl's configuration and state kept
// in the formation's directory, in a process group of its own.
func (f *Formation) command(ctx context.Context, n *FormationNode, args ...string) *exec.Cmd {
	cmd := AsPostgres(ctx, f.autoctl, args...)
	cmd.Dir = n.home
	env := []string{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "XDG_") || k == "PWD" || k == "TMPDIR" {
			continue
		}
		env = append(env, kv)
	}
	cmd.Env = append(env,
		"XDG_CONFIG_HOME="+filepath.Join(f.dir, "config"), "XDG_DATA_HOME="+filepath.Join(f.dir, "data"),
		"XDG_RUNTIME_DIR="+filepath.Join(f.dir, "run"), "TMPDIR="+filepath.Join(f.dir, "run"),
		"PGHOST="+f.dir, "PWD="+n.home)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	return cmd
}

// autoctlOnce runs a pg_autoctl command for n to its end.
func (f *Formation) autoctlOnce(ctx context.Context, n *FormationNode, args ...string) {
	f.tb.Helper()
	cmd := f.command(ctx, n, args...)
	if err := cmd.Run(); err != nil {
		f.tb.Fatalf("pg_autoctl %s: %v\n%s", strings.Join(args, " "), err, n.log)
	}
}

// run starts n's long-running pg_autoctl.
func (f *Formation) run(n *FormationNode, args ...string) {
	f.tb.Helper()
	// Not bound to the test's context: the formation's cleanup ends it.
	n.cmd = f.command(context.Background(), n, args...)
	if err := n.cmd.Start(); err != nil {
		f.tb.Fatalf("start pg_autoctl %s: %v", strings.Join(args, " "), err)
	}
	n.done = make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		close(n.done)
	}()
	f.nodes = append(f.nodes, n)
}

// waitUntil polls cond until it holds, failing the test with every node's
// log when it errs, when a keeper exits or when ctx ends.
func (f *Formation) waitUntil(ctx context.Context, what string, cond func() (bool, error)) {
	f.tb.Helper()
	for {
		ok, err := cond()
		if err != nil {
			f.tb.Fatalf("waiting for %s: %v\n%s", what, err, f.Logs())
		}
		if ok {
			return
		}
		for _, n := range f.nodes {
			if !n.killed && isClosed(n.done) {
				f.tb.Fatalf("waiting for %s: pg_autoctl of %s exited\n%s", what, n.Name, f.Logs())
			}
		}
		select {
		case <-ctx.Done():
			f.tb.Fatalf("waiting for %s: %v\n%s", what, ctx.Err(), f.Logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// MonitorURL is the URL by which the keepers reach the monitor.
func (f *Formation) MonitorURL() string {
	return fmt.Sprintf("postgres://autoctl_node@127.0.0.1:%d/pg_auto_failover?sslmode=disable", f.monitor.Port)
}

// monitorAdminURL is the monitor's database as the postgres role, which
// may read the node table.
func (f *Formation) monitorAdminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/pg_auto_failover?sslmode=disable&connect_timeout=5", f.monitor.Port)
}

// URL is the multi-host URL of database db on the formation, as the
// postgres role: each data node in turn, the first that accepts
// read-write sessions (the primary) taken.
func (f *Formation) URL(db string) string {
	hosts := make([]string, 0, 2)
	for _, n := range f.dataNodes() {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", n.Port))
	}
	q := url.Values{"sslmode": {"disable"}, "target_session_attrs": {"read-write"}, "connect_timeout": {"5"}}
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: strings.Join(hosts, ","), Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// nodeURL is the URL of database db on n alone.
func (f *Formation) nodeURL(n *FormationNode, db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", n.Port, db)
}

// NodeURL is the URL of database db on node n alone, as the postgres role.
func (f *Formation) NodeURL(n *FormationNode, db string) string { return f.nodeURL(n, db) }

func (f *Formation) dataNodes() []*FormationNode {
	var out []*FormationNode
	for _, n := range f.nodes {
		if n != f.monitor {
			out = append(out, n)
		}
	}
	return out
}

// CreateDatabase creates database name on the primary and returns its
// multi-host URL (as the postgres role, the owner).
func (f *Formation) CreateDatabase(tb testing.TB, name string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, f.URL("postgres"))
	if err != nil {
		tb.Fatalf("connect to the primary: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create database %s: %v", name, err)
	}
	return f.URL(name)
}

// States reads the data nodes' states from the monitor, by node ID.
func (f *Formation) States(ctx context.Context) ([]NodeState, error) {
	conn, err := pgx.Connect(ctx, f.monitorAdminURL())
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	rows, err := conn.Query(ctx, `SELECT nodename, nodeport, reportedstate::text, goalstate::text
		FROM pgautofailover.node ORDER BY nodeid`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeState, error) {
		var s NodeState
		err := r.Scan(&s.Name, &s.Port, &s.Reported, &s.Goal)
		return s, err
	})
}

// node returns the data node named name.
func (f *Formation) node(name string) *FormationNode {
	for _, n := range f.dataNodes() {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Primary returns the node the monitor reports as primary.
func (f *Formation) Primary(tb testing.TB) *FormationNode {
	tb.Helper()
	st, err := f.States(tb.Context())
	if err != nil {
		tb.Fatalf("read the formation's state: %v", err)
	}
	for _, s := range st {
		if s.Reported == "primary" && s.Goal == "primary" {
			return f.node(s.Name)
		}
	}
	tb.Fatalf("no primary in the formation: %+v", st)
	return nil
}

// Kill SIGKILLs node n as a power cut would: its keeper first (else it
// would start PostgreSQL again), then its postmaster and every server
// process, and waits until none is left.
func (f *Formation) Kill(tb testing.TB, n *FormationNode) {
	tb.Helper()
	n.killed = true
	if err := killNode(n); err != nil {
		tb.Fatalf("kill %s: %v", n.Name, err)
	}
}

// killNode SIGKILLs every process of n: its pg_autoctl process group (the
// keeper, its services and the postmaster they started), then any process
// still running in the node's directory (the server's backends, which
// PostgreSQL moves to sessions of their own, run in its data directory).
func killNode(n *FormationNode) error {
	if n.cmd != nil && n.cmd.Process != nil {
		_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := processesIn(n.home)
		if len(left) == 0 {
			break
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v of %s survived SIGKILL for 30s", left, n.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n.done != nil {
		select {
		case <-n.done:
		case <-time.After(30 * time.Second):
			return fmt.Errorf("pg_autoctl of %s survived SIGKILL for 30s", n.Name)
		}
	}
	removeSharedMemory(n.pgdata)
	return nil
}

// Promotion is what WaitPromoted saw of a failover.
type Promotion struct {
	// Node is the new primary.
	Node *FormationNode
	// NotWritableAt is the last moment the new primary was seen refusing
	// writes (down, in recovery or read-only): no write could have
	// succeeded anywhere in the formation before it.
	NotWritableAt time.Time
	// WritableAt is the first moment it was seen accepting them.
	WritableAt time.Time
}

// WaitPromoted waits until a node other than old is the primary: the
// monitor reports it wait_primary or primary and it accepts read-write
// sessions.
func (f *Formation) WaitPromoted(tb testing.TB, old *FormationNode, timeout time.Duration) Promotion {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), timeout)
	defer cancel()
	var p Promotion
	f.waitUntil(ctx, "a new primary", func() (bool, error) {
		for _, n := range f.dataNodes() {
			if n == old {
				continue
			}
			// Promotion only goes one way: a node that refuses writes at
			// the moment the question is sent refused them before.
			asked := time.Now()
			if !f.writable(ctx, n) {
				p.NotWritableAt = asked
				continue
			}
			st, err := f.States(ctx)
			if err != nil {
				return false, nil // the monitor may be busy; poll again
			}
			for _, s := range st {
				if s.Name == n.Name && s.Reported == s.Goal && (s.Reported == "primary" || s.Reported == "wait_primary") {
					p.Node, p.WritableAt = n, time.Now()
					return true, nil
				}
			}
		}
		return false, nil
	})
	return p
}

// writable reports whether n accepts read-write sessions.
func (f *Formation) writable(ctx context.Context, n *FormationNode) bool {
	conn, err := pgx.Connect(ctx, f.nodeURL(n, "postgres"))
	if err != nil {
		return false
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var readOnly string
	err = conn.QueryRow(ctx, `SELECT current_setting('transaction_read_only')`).Scan(&readOnly)
	return err == nil && readOnly == "off"
}

// SynchronousStandbyNames reads synchronous_standby_names on node n.
func (f *Formation) SynchronousStandbyNames(tb testing.TB, n *FormationNode) string {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), f.nodeURL(n, "postgres"))
	if err != nil {
		tb.Fatalf("connect to %s: %v", n.Name, err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var names string
	if err := conn.QueryRow(tb.Context(), `SELECT current_setting('synchronous_standby_names')`).Scan(&names); err != nil {
		tb.Fatalf("%s: %v", n.Name, err)
	}
	return names
}

// Logs is the output of every pg_autoctl of the formation, for failure
// messages.
func (f *Formation) Logs() string {
	var b strings.Builder
	for _, n := range f.nodes {
		fmt.Fprintf(&b, "--- pg_autoctl of %s ---\n%s\n", n.Name, lastLines(n.log.String(), 60))
	}
	return b.String()
}

// stop kills every process of the formation and removes its directory.
func (f *Formation) stop() {
	var errs []error
	// The data nodes first: their keepers would report the monitor gone.
	for i := len(f.nodes) - 1; i >= 0; i-- {
		if err := killNode(f.nodes[i]); err != nil {
			errs = append(errs, err)
		}
	}
	// Whatever else ran in the directory (a pg_autoctl that Start gave up on).
	stray := &FormationNode{Name: "formation", home: f.dir}
	if err := killNode(stray); err != nil {
		errs = append(errs, err)
	}
	if f.tb.Failed() {
		f.tb.Logf("pg_auto_failover formation logs:\n%s", f.Logs())
	}
	if len(errs) > 0 {
		f.tb.Errorf("stop the formation: %v", errors.Join(errs...))
		return // leave the directory: processes may still use it
	}
	if err := os.RemoveAll(f.dir); err != nil {
		f.tb.Errorf("remove %s: %v", f.dir, err)
	}
}

// mkdir creates dir owned by the formation's user.
func (f *Formation) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if f.uid >= 0 {
		return os.Chown(dir, f.uid, f.gid)
	}
	return nil
}

// processesIn lists the processes whose working directory is dir or below.
func processesIn(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			out = append(out, pid)
		}
	}
	return out
}

// removeSharedMemory removes the System V segment a killed server leaves
// behind, named in its postmaster.pid (once no process is attached, and if
// it still has the key the server gave it).
func removeSharedMemory(pgdata string) {
	raw, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid")) //nolint:gosec // G304: the cluster this test created
	if err != nil {
		return
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) < 7 {
		return
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return
	}
	key, err1 := strconv.ParseInt(f[0], 10, 64)
	id, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return
	}
	var ds unix.SysvShmDesc
	if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &ds); err != nil || int64(ds.Perm.Key) != key || ds.Nattch != 0 {
		return
	}
	_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
}

// freePorts returns n TCP ports free on 127.0.0.1 at the time of asking.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0") //nolint:noctx // a moment's listener, to learn a free port
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
