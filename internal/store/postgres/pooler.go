package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pooler says what stands between the store and PostgreSQL.
type Pooler string

// Poolers.
const (
	// PoolerNone (or "") is a direct connection: each pooled connection is
	// one server session, and pgx prepares every statement once per
	// connection (named prepared statements: one round trip per batch,
	// the server parses and plans nothing twice). Open refuses a
	// connection that turns out to reach a pooler (see ErrBehindPooler).
	PoolerNone Pooler = "none"
	// PoolerTransaction is a pooler in transaction mode (pgbouncer
	// pool_mode = transaction), or in session mode: each transaction may
	// run on another server connection, so nothing may outlive a
	// transaction. Statements are sent unnamed, with their parameter and
	// result types described once per connection and cached
	// (pgx.QueryExecModeCacheDescribe): still one round trip per batch,
	// but the server parses every statement it runs.
	PoolerTransaction Pooler = "transaction"
)

// ParsePooler reads a Pooler ("" is PoolerNone).
func ParsePooler(s string) (Pooler, error) {
	switch p := Pooler(s); p {
	case "", PoolerNone:
		return PoolerNone, nil
	case PoolerTransaction:
		return p, nil
	}
	return "", fmt.Errorf("unknown pooler %q: want %s or %s", s, PoolerNone, PoolerTransaction)
}

// ErrBehindPooler is Open's refusal of a direct connection (PoolerNone)
// that reaches a pooler: the named prepared statements it caches per
// connection would be missing on the server connection a later
// transaction runs on ("prepared statement … does not exist").
var ErrBehindPooler = errors.New("postgres: the database URL reaches PostgreSQL through a connection pooler " +
	"(the backend process the connection was given is not the one that answers): " +
	"named prepared statements would break behind transaction pooling")

// configurePooler adapts the pool to the pooler: behind one, statements
// are never prepared under a name. An exec mode the URL chose
// (default_query_exec_mode) is kept unless it is the default, the one
// that names statements.
func configurePooler(cfg *pgxpool.Config, p Pooler) {
	if p == PoolerTransaction && cfg.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeCacheStatement {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	}
}

// checkDirect refuses a pool that names its statements yet reaches
// PostgreSQL through a pooler. A server sends each connection its own
// process id in the connection's cancel key; a pooler sends a key of its
// own, since the client's statements may run on any server connection.
func checkDirect(ctx context.Context, pool *pgxpool.Pool) error {
	if pool.Config().ConnConfig.DefaultQueryExecMode != pgx.QueryExecModeCacheStatement {
		return nil // nothing outlives a statement
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return mapErr(ctx, "acquire connection", err)
	}
	defer conn.Release()
	var pid int64
	// The simple protocol: no statement is prepared to find out.
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`, pgx.QueryExecModeSimpleProtocol).Scan(&pid); err != nil {
		return mapErr(ctx, "read the backend's process id", err)
	}
	if pid != int64(conn.Conn().PgConn().PID()) {
		return ErrBehindPooler
	}
	return nil
}
