package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/creditledger/creditledger/internal/ledger"
)

// readTx implements ledger.ReadTx over one read-only PostgreSQL transaction.
// Every read names its workspace as $1, and row-level security shows the
// transaction only the rows of the workspace it is set to: readTx sets it
// (transaction-local) with the first read of a workspace, pipelined with
// that read, so that a View costs no more round trips than without it.
type readTx struct {
	tx viewQuerier
	// ws is what creditledger.workspace is set to, when set is true.
	ws  string
	set bool
}

var _ ledger.ReadTx = (*readTx)(nil)

// qSetWorkspace makes the transaction see (and write) one workspace: the
// policies of every tenant table compare with it (migration 0004). Local to
// the transaction, so nothing of it stays in the session.
const qSetWorkspace = `SELECT set_config('creditledger.workspace', $1, true)`

// query runs sql with the workspace as $1 and args as $2….
func (t *readTx) query(ctx context.Context, sql, workspace string, args ...any) (pgx.Rows, error) {
	all := make([]any, 0, 1+len(args))
	all = append(all, workspace)
	all = append(all, args...)
	if t.set && t.ws == workspace {
		return t.tx.Query(ctx, sql, all...)
	}
	b := &pgx.Batch{}
	b.Queue(qSetWorkspace, workspace)
	b.Queue(sql, all...)
	br := t.tx.SendBatch(ctx, b)
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, err
	}
	t.ws, t.set = workspace, true
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// batchRows are the rows of a pipelined batch's last query; closing them
// ends the batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	if r.br == nil {
		return
	}
	r.Rows.Close()
	r.err = r.br.Close()
	r.br = nil
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// one scans the single row sql returns (pgx.ErrNoRows when none); the
// workspace is $1, args $2….
func (t *readTx) one(ctx context.Context, sql, workspace string, args []any, dest ...any) error {
	rows, err := t.query(ctx, sql, workspace, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// all collects every row sql returns with scan; the workspace is $1.
func all[T any](ctx context.Context, t *readTx, scan func(pgx.Row) (T, error), sql, workspace string, args ...any) ([]T, error) {
	rows, err := t.query(ctx, sql, workspace, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (T, error) { return scan(r) })
}

// ---------------------------------------------------------------------------
// Conversions between domain values and columns.

// toTime stores a time as UTC; the zero time is NULL.
func toTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

func fromTime(ts pgtype.Timestamptz) time.Time {
	if !ts.Valid {
		return time.Time{}
	}
	return ts.Time.UTC()
}

// metadataText encodes a map as JSON object text; an empty map is NULL.
func metadataText(m map[string]string) (*string, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("postgres: encode metadata: %w", err)
	}
	s := string(b)
	return &s, nil
}

// fromMetadata reads a JSON object back; NULL and {} read as a nil map.
func fromMetadata(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("postgres: decode metadata: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}
