package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bouncer is a throwaway pgbouncer in transaction-pooling mode in front of
// a PostgreSQL server: every transaction of a client may run on another
// server connection, so nothing a client leaves in its session (a named
// prepared statement, a session advisory lock, a SET) survives its
// transaction. It listens on a unix socket of its own, lets every user in
// (trust: the tests' servers trust local users too) and reaches every
// database of the server under the database's own name, as the client's
// user.
type Bouncer struct {
	dir  string // configuration, socket, log
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
}

// BouncerPort is the port number in the name of a Bouncer's unix socket
// (<dir>/.s.PGSQL.6432); it listens on no TCP port.
const BouncerPort = 6432

// BouncerPoolSize is the server connections a Bouncer opens per database
// and user: fewer than the tests' clients may want at once, so that
// transactions of different clients share server connections.
const BouncerPoolSize = 4

// BouncerBin finds pgbouncer: Debian's /usr/sbin/pgbouncer, else $PATH.
func BouncerBin() (string, error) {
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	return "", errors.New("pgbouncer not found in /usr/sbin or on $PATH: run `make test` " +
		"(scripts/ensure-postgres.sh installs Debian's pgbouncer package) or apt-get install pgbouncer")
}

// StartBouncer starts a pgbouncer in front of the server that serverURL
// (any database URL of it) reaches: its host (a socket directory or a
// name) and port. When serverURL carries a password, the bouncer logs in
// to the server with it for that user. Stop it with Stop.
func StartBouncer(ctx context.Context, serverURL string) (*Bouncer, error) {
	bin, err := BouncerBin()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return nil, fmt.Errorf("pgtest: bouncer: not a URL: %w", err)
	}
	host, port := Upstream(u)
	uid, gid, err := serverOwner()
	if err != nil {
		return nil, err
	}
	dir, err := MkdirTemp("clpgb")
	if err != nil {
		return nil, err
	}
	b := &Bouncer{dir: dir, done: make(chan struct{})}
	users := map[string]string{"postgres": "", RuntimeRole: ""}
	if name := urlUser(u); name != "" {
		pw, _ := u.User.Password()
		if q := u.Query().Get("password"); q != "" {
			pw = q
		}
		users[name] = pw
	}
	var list bytes.Buffer
	for name, pw := range users {
		quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
		fmt.Fprintf(&list, "%s %s\n", quote(name), quote(pw))
	}
	ini := strings.Join([]string{
		"[databases]",
		// Every database of the server, as the client's user.
		fmt.Sprintf("* = host=%s port=%s", host, port),
		"[pgbouncer]",
		"pool_mode = transaction",
		"listen_addr =",
		fmt.Sprintf("listen_port = %d", BouncerPort),
		"unix_socket_dir = " + dir,
		"auth_type = trust",
		"auth_file = " + filepath.Join(dir, "userlist.txt"),
		"admin_users = postgres",
		"max_client_conn = 2000",
		fmt.Sprintf("default_pool_size = %d", BouncerPoolSize),
		"reserve_pool_size = 0",
		// The most recently released server connection serves next (LIFO,
		// pgbouncer's default): tests rely on it to predict which one.
		"server_round_robin = 0",
		// Transaction pooling resets nothing between clients: a client's
		// transaction ends on COMMIT or ROLLBACK.
		"server_reset_query =",
		// Libpq-based clients send it; pgbouncer refuses unknown startup
		// parameters otherwise.
		"ignore_startup_parameters = extra_float_digits",
		// A server that went away is retried soon, and a client waiting
		// for it is not kept for the default two minutes.
		"server_login_retry = 1",
		"server_connect_timeout = 5",
		"query_wait_timeout = 30",
		"logfile = " + filepath.Join(dir, "log"),
		"pidfile = " + filepath.Join(dir, "pid"),
		"",
	}, "\n")
	files := map[string]string{"pgbouncer.ini": ini, "userlist.txt": list.String()}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			b.Stop()
			return nil, err
		}
		if err := os.Chown(path, uid, gid); err != nil { // -1: unchanged
			b.Stop()
			return nil, err
		}
	}
	//nolint:gosec // G204: bin is pgbouncer found by BouncerBin; the file is the one written above.
	// It outlives ctx, which bounds the start only: Stop ends it.
	b.cmd = exec.CommandContext(context.WithoutCancel(ctx), bin, filepath.Join(dir, "pgbouncer.ini"))
	// pgbouncer refuses to run as root: run it as the postgres system user,
	// as the servers are. It dies with this process.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if uid >= 0 {
		b.cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // G115: ids of a system user
	}
	var out bytes.Buffer
	b.cmd.Stdout, b.cmd.Stderr = &out, &out
	if err := b.cmd.Start(); err != nil {
		b.Stop()
		return nil, fmt.Errorf("pgtest: start pgbouncer: %w", err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	if err := b.waitReady(ctx, u); err != nil {
		b.Stop()
		return nil, fmt.Errorf("pgtest: pgbouncer did not come up: %w\n%s%s", err, out.String(), b.Log())
	}
	return b, nil
}

// NewBouncer starts a Bouncer in front of the server that serverURL
// reaches, stopped when the test ends. A missing pgbouncer fails the test.
func NewBouncer(tb testing.TB, serverURL string) *Bouncer {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := StartBouncer(ctx, serverURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(b.Stop)
	return b
}

// Bouncer starts a Bouncer in front of s for the test (see NewBouncer).
func (s *Server) Bouncer(tb testing.TB) *Bouncer {
	tb.Helper()
	return NewBouncer(tb, s.URL("postgres"))
}

// waitReady waits until a client gets through to the server: the same
// user and database as u.
func (b *Bouncer) waitReady(ctx context.Context, u *url.URL) error {
	target := b.URL(u.String())
	var err error
	for {
		var conn *pgx.Conn
		if conn, err = pgx.Connect(ctx, target); err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		select {
		case <-b.done:
			return fmt.Errorf("pgbouncer exited: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// URL is serverURL (a database URL of the server the bouncer fronts) through
// the bouncer: the same user and database, the bouncer's socket, no TLS.
func (b *Bouncer) URL(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		panic(fmt.Sprintf("pgtest: not a URL: %v", err))
	}
	q := u.Query()
	for _, k := range []string{"host", "port", "hostaddr", "sslmode", "sslrootcert", "sslcert", "sslkey"} {
		q.Del(k)
	}
	q.Set("host", b.dir)
	q.Set("port", strconv.Itoa(BouncerPort))
	q.Set("sslmode", "disable")
	if name := urlUser(u); name != "" {
		q.Set("user", name)
	}
	q.Del("password") // trust: the bouncer asks for none
	return (&url.URL{Scheme: u.Scheme, Path: u.Path, RawQuery: q.Encode()}).String()
}

// Dir is the bouncer's directory: its socket, configuration and log.
func (b *Bouncer) Dir() string { return b.dir }

// Log returns what pgbouncer logged, for a failing test's message.
func (b *Bouncer) Log() string {
	raw, _ := os.ReadFile(filepath.Join(b.dir, "log")) //nolint:gosec // G304: the log of the bouncer this package started
	return string(raw)
}

// Stop stops pgbouncer and removes its directory.
func (b *Bouncer) Stop() {
	if b == nil || b.dir == "" {
		return
	}
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM) // immediate shutdown: clients are not waited for
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
	_ = os.RemoveAll(b.dir)
	b.dir = ""
}

// Upstream is the server a postgres URL names: host (a socket directory or
// a name) and port, with libpq's defaults.
func Upstream(u *url.URL) (host, port string) {
	host, port = u.Query().Get("host"), u.Query().Get("port")
	if host == "" {
		host = u.Hostname()
	}
	if port == "" {
		port = u.Port()
	}
	if port == "" {
		port = "5432"
	}
	if host == "" {
		host = "/var/run/postgresql"
	}
	return host, port
}

// urlUser is the user a postgres URL connects as, "" when it names none.
func urlUser(u *url.URL) string {
	if u.User != nil && u.User.Username() != "" {
		return u.User.Username()
	}
	return u.Query().Get("user")
}
