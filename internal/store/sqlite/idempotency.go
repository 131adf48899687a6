package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/creditledger/creditledger/internal/ledger"
)

const idempotencyColumns = `workspace, key, operation, fingerprint, transaction_id, request_id, create_time, hold_id`

const (
	qIdempotency = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys WHERE workspace = ? AND key = ?`
	qKeysIn      = `SELECT ` + idempotencyColumns + ` FROM idempotency_keys
		WHERE workspace = ? AND key IN (SELECT value FROM json_each(?))`
)

func scanIdempotency(row scanner) (ledger.IdempotencyRecord, error) {
	var rec ledger.IdempotencyRecord
	var op string
	var txID, reqID, holdID sql.NullString
	var created sql.NullInt64
	if err := row.Scan(&rec.Workspace, &rec.Key, &op, &rec.Fingerprint, &txID, &reqID, &created, &holdID); err != nil {
		return ledger.IdempotencyRecord{}, err
	}
	rec.Operation = ledger.Operation(op)
	rec.TransactionID, rec.RequestID, rec.HoldID, rec.CreateTime = txID.String, reqID.String, holdID.String, fromMicros(created)
	return rec, nil
}

// Idempotency implements ledger.ReadTx.
func (t *readTx) Idempotency(ctx context.Context, workspace, key string) (ledger.IdempotencyRecord, bool, error) {
	var rec ledger.IdempotencyRecord
	err := t.one(ctx, qIdempotency, []any{workspace, key}, func(row scanner) (err error) {
		rec, err = scanIdempotency(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.IdempotencyRecord{}, false, nil
	}
	if err != nil {
		return ledger.IdempotencyRecord{}, false, mapErr(ctx, "read idempotency key", err)
	}
	return rec, true, nil
}

// keysIn adds the existing records of keys to into.
func (t *writeTx) keysIn(ctx context.Context, workspace string, keys []string, into map[string]ledger.IdempotencyRecord) error {
	err := t.eachIn(ctx, qKeysIn, workspace, keys, func(row scanner) error {
		rec, err := scanIdempotency(row)
		into[rec.Key] = rec
		return err
	})
	return mapErr(ctx, "read idempotency keys", err)
}

// putKeys stores the batch's new records, last: they name the
// transactions, requests and holds the batch wrote. A key taken meanwhile is
// ErrConflict.
// qPutIdempotencyRows is the multi-row insert of records (see multiRow).
const (
	qPutIdempotencyRows    = `INSERT INTO idempotency_keys (` + idempotencyColumns + `) VALUES `
	idempotencyColumnCount = 8
)

func (t *writeTx) putKeys(ctx context.Context, recs []ledger.IdempotencyRecord) error {
	err := execRows(ctx, &t.readTx, qPutIdempotencyRows, idempotencyColumnCount, recs, func(rec ledger.IdempotencyRecord) ([]any, error) {
		return []any{
			rec.Workspace, rec.Key, string(rec.Operation), rec.Fingerprint,
			nullString(rec.TransactionID), nullString(rec.RequestID), toMicros(rec.CreateTime), nullString(rec.HoldID),
		}, nil
	})
	return mapErr(ctx, "store idempotency keys", err)
}
