package postgres

import (
	"context"
	"errors"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ---------------------------------------------------------------------------
// Idempotency

const idempotencyColumns = `workspace, key, operation, fingerprint, transaction_id, request_id, create_time, hold_id`

const (
	qIdempotency     = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys WHERE workspace = $1 AND key = $2`
	qIdempotencyPage = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys
		WHERE workspace = $1 AND key > $2 ORDER BY key LIMIT $3`

	// Batch reads and writes (batch.go). A key that another batch records
	// at the same time is a unique violation: a conflict, decided again.
	qKeys = `SELECT k.* FROM unnest($2::text[]) AS q(key)
		CROSS JOIN LATERAL (SELECT ` + idempotencyColumns + ` FROM idempotency_keys
			WHERE workspace = $1 AND key = q.key OFFSET 0) k`
	qInsertKeys = `INSERT INTO idempotency_keys (` + idempotencyColumns + `)
		SELECT $1, u.key, u.operation, u.fingerprint, u.transaction_id, u.request_id, u.create_time, u.hold_id
		FROM unnest($2::text[], $3::text[], $4::bytea[], $5::text[], $6::text[], $7::timestamptz[], $8::text[])
			AS u(key, operation, fingerprint, transaction_id, request_id, create_time, hold_id)`
)

func scanIdempotency(row pgx.Row) (ledger.IdempotencyRecord, error) {
	var rec ledger.IdempotencyRecord
	var op string
	var txID, reqID, holdID pgtype.Text
	if err := row.Scan(&rec.Workspace, &rec.Key, &op, &rec.Fingerprint, &txID, &reqID, &rec.CreateTime, &holdID); err != nil {
		return ledger.IdempotencyRecord{}, err
	}
	rec.Operation = ledger.Operation(op)
	rec.TransactionID, rec.RequestID, rec.CreateTime = txID.String, reqID.String, rec.CreateTime.UTC()
	rec.HoldID = holdID.String
	return rec, nil
}

// Idempotency implements ledger.ReadTx.
func (t *readTx) Idempotency(ctx context.Context, workspace, key string) (ledger.IdempotencyRecord, bool, error) {
	rows, err := t.query(ctx, qIdempotency, workspace, key)
	var rec ledger.IdempotencyRecord
	if err == nil {
		rec, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.IdempotencyRecord, error) { return scanIdempotency(r) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, mapErr(ctx, "read idempotency key", err)
	}
	return rec, true, nil
}
