// Package pgtest gives tests a real PostgreSQL: a throwaway cluster started
// for the test binary (or the server named by LEDGER_TEST_DATABASE_URL), and
// an isolated database per test cloned from a migrated template.
//
// A machine without the PostgreSQL server programs fails the tests loudly;
// `make test` installs them first (scripts/ensure-postgres.sh).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that points the tests at an existing server
// instead of a throwaway cluster. The role must be allowed to create
// databases.
const EnvURL = "LEDGER_TEST_DATABASE_URL"

// Server is a PostgreSQL server the tests may create databases on.
type Server struct {
	base   *url.URL // connection URL with the database path left to fill
	dir    string   // cluster directory when this process started it
	pgctl  string
	prefix string // unique per process: databases of parallel test binaries never collide
	n      atomic.Int64
}

// Start returns the server of LEDGER_TEST_DATABASE_URL when set, else
// initialises and starts a throwaway cluster (as the postgres user when
// running as root, since the server refuses to run as root).
func Start(ctx context.Context) (*Server, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	s := &Server{prefix: "t" + hex.EncodeToString(b[:])}
	if raw := os.Getenv(EnvURL); raw != "" {
		u, err := url.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvURL, err)
		}
		s.base = u
		if err := s.ping(ctx); err != nil {
			return nil, fmt.Errorf("%s does not answer: %w", EnvURL, err)
		}
		return s, nil
	}
	if err := s.startCluster(ctx, false); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Bin finds a PostgreSQL server program on $PATH or in Debian's layout
// (/usr/lib/postgresql/<version>/bin, newest version first).
func Bin(name string) (string, error) {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/" + name)
	sort.Slice(matches, func(i, j int) bool { return pgVersion(matches[i]) > pgVersion(matches[j]) })
	if len(matches) > 0 {
		return matches[0], nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("PostgreSQL server program %s not found on $PATH or in /usr/lib/postgresql/*/bin: "+
		"run `make test` (scripts/ensure-postgres.sh installs it) or set %s", name, EnvURL)
}

func pgVersion(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// AsPostgres builds a command for a server program, run as the postgres
// system user when the current user is root.
func AsPostgres(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		//nolint:gosec // G204: bin is a PostgreSQL program found by Bin; args are built by this package.
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
	}
	//nolint:gosec // G204: as above.
	return exec.CommandContext(ctx, bin, args...)
}

// serverOwner answers the user the PostgreSQL programs run as: the
// postgres system user when this process is root (the servers and
// pgbouncer refuse to run as root), otherwise -1 and -1, this process's
// own user.
func serverOwner() (uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return -1, -1, fmt.Errorf("running as root needs the postgres system user (Debian's postgresql package creates it): %w", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid, nil
}

// MkdirTemp makes a new directory for a server, a standby or a pooler,
// owned by the user the PostgreSQL programs run as (serverOwner). It is
// made directly under the system's temporary directory and named for
// prefix, so that the unix socket paths below it fit in 107 bytes.
func MkdirTemp(prefix string) (string, error) {
	uid, gid, err := serverOwner()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			_ = os.Remove(dir)
			return "", err
		}
	}
	return dir, nil
}

// startCluster initialises and starts a cluster under a new temporary
// directory; replicable keeps full_page_writes on, which a base backup of
// a running server needs.
func (s *Server) startCluster(ctx context.Context, replicable bool) error {
	initdb, err := Bin("initdb")
	if err != nil {
		return err
	}
	if s.pgctl, err = Bin("pg_ctl"); err != nil {
		return err
	}
	dir, err := MkdirTemp("clpg")
	if err != nil {
		return err
	}
	s.dir = dir
	data := filepath.Join(dir, "data")
	out, err := AsPostgres(ctx, initdb, "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// Durability settings are off: these clusters hold test data only. The
	// crash tests, which need durability, run against the embedded store's
	// own files or against a cluster they start themselves.
	flags := []string{
		"-k " + dir, "-c listen_addresses=''", "-c fsync=off", "-c synchronous_commit=off",
		"-c max_connections=300", "-c shared_buffers=64MB",
	}
	if !replicable {
		flags = append(flags, "-c full_page_writes=off")
	}
	opts := strings.Join(flags, " ")
	out, err = AsPostgres(ctx, s.pgctl, "start", "-w", "-t", "120", "-D", data,
		"-l", filepath.Join(dir, "log"), "-o", opts).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log")) //nolint:gosec // G304: the log of the cluster this process created.
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	s.base = &url.URL{Scheme: "postgres", Path: "/", RawQuery: url.Values{
		"host": {dir}, "user": {"postgres"}, "sslmode": {"disable"},
	}.Encode()}
	return s.ping(ctx)
}

func (s *Server) ping(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	return conn.Ping(ctx)
}

// URL is the connection URL of database db on this server.
func (s *Server) URL(db string) string {
	u := *s.base
	u.Path = "/" + db
	return u.String()
}

// RuntimeRole is the role the service connects as (ledgerd's default,
// LEDGER_RUNTIME_ROLE): migrations run as the server's own role, the owner,
// and create it; the stores under test connect as it, so that every test
// runs under row-level security. With LEDGER_TEST_DATABASE_URL, the server
// must let this role log in as it lets the URL's role (e.g. trust on a
// local socket).
const RuntimeRole = "creditledger_app"

// RuntimeURL is url (a database URL of this package, or any PostgreSQL URL)
// connecting as RuntimeRole instead of its own role.
func RuntimeURL(url string) string { return AsRole(url, RuntimeRole) }

// AsRole is raw connecting as role: the user of the userinfo and of the
// query is replaced, and a password dropped.
func AsRole(raw, role string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("pgtest: not a URL: %v", err))
	}
	q := u.Query()
	q.Del("password")
	if u.User != nil || !q.Has("user") {
		u.User = url.User(role)
		q.Del("user")
	} else {
		q.Set("user", role)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// Stop stops and removes the throwaway cluster; a server named by
// LEDGER_TEST_DATABASE_URL is left alone.
func (s *Server) Stop() {
	if s == nil || s.dir == "" {
		return
	}
	if s.pgctl != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = AsPostgres(ctx, s.pgctl, "stop", "-m", "immediate", "-D", filepath.Join(s.dir, "data")).Run()
		cancel()
	}
	_ = os.RemoveAll(s.dir)
	s.dir = ""
}

func (s *Server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// Name returns a database name unique to this test process.
func (s *Server) Name(label string) string {
	return fmt.Sprintf("%s_%s_%d", s.prefix, label, s.n.Add(1))
}

// CreateDatabase creates an empty database and returns its name.
func (s *Server) CreateDatabase(ctx context.Context, label string) (string, error) {
	name := s.Name(label)
	if err := s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return name, nil
}

// CreateTemplate creates database name (qualified with this process's
// prefix, so parallel test binaries never share one) and runs migrate on it;
// NewDatabase clones it. It returns the template's database name.
func (s *Server) CreateTemplate(ctx context.Context, label string, migrate func(ctx context.Context, url string) error) (string, error) {
	name, err := s.CreateDatabase(ctx, label)
	if err != nil {
		return "", err
	}
	if migrate != nil {
		if err := migrate(ctx, s.URL(name)); err != nil {
			return "", fmt.Errorf("migrate template %s: %w", name, err)
		}
	}
	return name, nil
}

// NewDatabase creates a fresh database cloned from template ("" for an
// empty database), drops it when the test ends, and returns its URL.
func (s *Server) NewDatabase(tb testing.TB, template string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := s.Name("db")
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	// A template being cloned must have no other session; a clone started
	// while another test's clone is still connecting retries briefly.
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.admin(ctx, sql); err == nil || !strings.Contains(err.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("pgtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.URL(name)
}

// Main runs a test binary's tests with a started server: it is meant for
// TestMain. setup (may be nil) prepares templates. A server that cannot
// start fails the binary loudly.
func Main(m *testing.M, setup func(*Server) error) {
	os.Exit(Run(m, setup))
}

var shared atomic.Pointer[Server]

// Shared returns the server Main started.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	s := shared.Load()
	if s == nil {
		tb.Fatal("pgtest: no server: call pgtest.Main from TestMain")
	}
	return s
}

// Run is Main without the exit: it returns the tests' exit code, for a
// TestMain with its own clean-up.
func Run(m *testing.M, setup func(*Server) error) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	s, err := Start(ctx)
	if err != nil {
		cancel()
		fmt.Fprintf(os.Stderr, "pgtest: cannot start PostgreSQL: %v\n", err)
		return 1
	}
	defer s.Stop()
	if setup != nil {
		if err := setup(s); err != nil {
			cancel()
			fmt.Fprintf(os.Stderr, "pgtest: setup: %v\n", err)
			return 1
		}
	}
	cancel()
	shared.Store(s)
	return m.Run()
}
