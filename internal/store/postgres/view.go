package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/creditledger/creditledger/internal/ledger"
)

// viewQuerier is what a readTx reads through.
type viewQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// qBeginView opens a View's transaction: one snapshot, taken at its first
// statement, and no writes.
const qBeginView = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`

// viewTx is a View's transaction, begun lazily: BEGIN travels in the same
// round trip as the first read (with the workspace setting, see
// readTx.query), instead of a round trip of its own. A View is then one
// round trip per read, plus the COMMIT.
type viewTx struct {
	conn  *pgxpool.Conn
	begun bool
}

// SendBatch sends b, behind BEGIN when the transaction has not begun.
func (v *viewTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if v.begun {
		return v.conn.SendBatch(ctx, b)
	}
	v.begun = true
	nb := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
	nb.Queue(qBeginView)
	nb.QueuedQueries = append(nb.QueuedQueries, b.QueuedQueries...)
	br := v.conn.SendBatch(ctx, nb)
	// A failed BEGIN fails the batch: pgx answers its error to the
	// caller's first result, and to every later one.
	_, _ = br.Exec()
	return br
}

// Query runs sql, behind BEGIN when the transaction has not begun.
func (v *viewTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if v.begun {
		return v.conn.Query(ctx, sql, args...)
	}
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	br := v.SendBatch(ctx, b)
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// view runs fn in a lazily begun View transaction on a connection of pool.
// op names the pool in errors ("read", "replica read").
func view(ctx context.Context, pool *pgxpool.Pool, op string, fn func(ctx context.Context, tx ledger.ReadTx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return mapErr(ctx, "begin "+op, err)
	}
	// A connection still in a transaction (a failed COMMIT or ROLLBACK)
	// is closed by the pool on release, which ends the transaction.
	defer conn.Release()
	v := &viewTx{conn: conn}
	err = fn(ctx, &readTx{tx: v})
	if !v.begun {
		return err
	}
	if err != nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(rctx, "ROLLBACK")
		return err
	}
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return mapErr(ctx, "end "+op, err)
	}
	return nil
}
