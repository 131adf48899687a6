package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replicated is a throwaway primary with a hot standby that streams its
// write-ahead log (a base backup taken with pg_basebackup), for the tests
// of read replicas: they pause the standby's replay to make it lag, stop
// it, start it again and promote it. Always a cluster of this process's
// own, even when LEDGER_TEST_DATABASE_URL names a server.
type Replicated struct {
	// Primary is the primary; its databases appear on the standby.
	Primary *Server
	dir     string // standby's directory: its socket and data/
	base    *url.URL
	pgctl   string
}

// StartReplicated starts a primary and its streaming standby and waits
// until the standby accepts connections.
func StartReplicated(ctx context.Context) (*Replicated, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	p := &Server{prefix: "r" + hex.EncodeToString(b[:])}
	if err := p.startCluster(ctx, true); err != nil {
		p.Stop()
		return nil, err
	}
	r := &Replicated{Primary: p, pgctl: p.pgctl}
	if err := r.startStandby(ctx); err != nil {
		r.Stop()
		return nil, err
	}
	return r, nil
}

func (r *Replicated) startStandby(ctx context.Context) error {
	basebackup, err := Bin("pg_basebackup")
	if err != nil {
		return err
	}
	dir, err := MkdirTemp("clsb")
	if err != nil {
		return err
	}
	r.dir = dir
	data := filepath.Join(dir, "data")
	// -R writes primary_conninfo and standby.signal: the copy starts as a
	// standby that streams from the primary's socket.
	out, err := AsPostgres(ctx, basebackup, "-D", data, "-h", r.Primary.dir, "-U", "postgres",
		"-X", "stream", "-R", "-c", "fast", "--no-sync").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_basebackup: %w\n%s", err, out)
	}
	if err := r.StartStandby(ctx); err != nil {
		return err
	}
	r.base = &url.URL{Scheme: "postgres", Path: "/", RawQuery: url.Values{
		"host": {dir}, "user": {"postgres"}, "sslmode": {"disable"},
	}.Encode()}
	return nil
}

// StandbyURL is the connection URL of database db on the standby.
func (r *Replicated) StandbyURL(db string) string {
	u := *r.base
	u.Path = "/" + db
	return u.String()
}

// StartStandby starts the standby (again) and waits until it accepts
// connections.
func (r *Replicated) StartStandby(ctx context.Context) error {
	data := filepath.Join(r.dir, "data")
	out, err := AsPostgres(ctx, r.pgctl, "start", "-w", "-t", "120", "-D", data, "-l", filepath.Join(r.dir, "log"),
		"-o", "-k "+r.dir+" -c listen_addresses='' -c fsync=off -c hot_standby=on -c max_connections=300").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(r.dir, "log")) //nolint:gosec // G304: the log of the cluster this process created.
		return fmt.Errorf("pg_ctl start (standby): %w\n%s\n%s", err, out, log)
	}
	return nil
}

// StopStandby stops the standby at once (immediate shutdown, as a crash).
func (r *Replicated) StopStandby(ctx context.Context) error {
	out, err := AsPostgres(ctx, r.pgctl, "stop", "-m", "immediate", "-D", filepath.Join(r.dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop (standby): %w\n%s", err, out)
	}
	return nil
}

// Promote makes the standby a primary of its own: it stops following.
func (r *Replicated) Promote(ctx context.Context) error {
	out, err := AsPostgres(ctx, r.pgctl, "promote", "-w", "-D", filepath.Join(r.dir, "data")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl promote: %w\n%s", err, out)
	}
	return nil
}

func (r *Replicated) standbyExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, r.StandbyURL("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// PauseReplay stops the standby replaying the log it receives: it lags
// from then on, by as much as the primary writes.
func (r *Replicated) PauseReplay(ctx context.Context) error {
	return r.standbyExec(ctx, `SELECT pg_wal_replay_pause()`)
}

// ResumeReplay lets the standby catch up.
func (r *Replicated) ResumeReplay(ctx context.Context) error {
	return r.standbyExec(ctx, `SELECT pg_wal_replay_resume()`)
}

// WaitCaughtUp waits until the standby has replayed the primary's log up
// to where it stood when called.
func (r *Replicated) WaitCaughtUp(ctx context.Context) error {
	p, err := pgx.Connect(ctx, r.Primary.URL("postgres"))
	if err != nil {
		return err
	}
	var head string
	err = p.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&head)
	_ = p.Close(context.Background())
	if err != nil {
		return err
	}
	sb, err := pgx.Connect(ctx, r.StandbyURL("postgres"))
	if err != nil {
		return err
	}
	defer func() { _ = sb.Close(context.Background()) }()
	for {
		var done bool
		if err := sb.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn`, head).Scan(&done); err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), errors.New("pgtest: the standby did not catch up"))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops and removes both servers.
func (r *Replicated) Stop() {
	if r == nil {
		return
	}
	if r.dir != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_ = AsPostgres(ctx, r.pgctl, "stop", "-m", "immediate", "-D", filepath.Join(r.dir, "data")).Run()
		cancel()
		_ = os.RemoveAll(r.dir)
		r.dir = ""
	}
	r.Primary.Stop()
}
