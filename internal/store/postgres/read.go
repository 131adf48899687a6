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
type readTx struct {
	tx pgx.Tx
}

var _ ledger.ReadTx = (*readTx)(nil)

func (t *readTx) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.tx.Query(ctx, sql, args...)
}

// one scans the single row sql returns (pgx.ErrNoRows when none).
func (t *readTx) one(ctx context.Context, sql string, args []any, dest ...any) error {
	return t.tx.QueryRow(ctx, sql, args...).Scan(dest...)
}

// all collects every row sql returns with scan.
func all[T any](ctx context.Context, t *readTx, scan func(pgx.Row) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := t.query(ctx, sql, args...)
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
