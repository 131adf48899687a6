package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ---------------------------------------------------------------------------
// Credit requests

const requestColumns = `id, workspace, account, amount, package_id, payment_method, payment_reference, note,
	status, decision_reason, decided_by, decide_time, transaction_id, metadata, idempotency_key, create_time, seq, submitted_by,
	validity_nanos`

const (
	qRequest = `SELECT ` + requestColumns + ` FROM credit_requests WHERE workspace = $1 AND id = $2`
	// Keyset on the workspace's request sequence: commit order. An empty
	// account or status means any; a zero cursor means the first page.
	qListRequestsAsc = `SELECT ` + requestColumns + ` FROM credit_requests
		WHERE workspace = $1 AND ($2::text = '' OR account = $2::text) AND ($3::text = '' OR status = $3::text)
		  AND seq > $4::bigint
		ORDER BY seq ASC
		LIMIT $5`
	qListRequestsDesc = `SELECT ` + requestColumns + ` FROM credit_requests
		WHERE workspace = $1 AND ($2::text = '' OR account = $2::text) AND ($3::text = '' OR status = $3::text)
		  AND ($4::bigint = 0 OR seq < $4::bigint)
		ORDER BY seq DESC
		LIMIT $5`
	//nolint:gosec // G101: SQL naming a status, not a credential
	// SUM of bigint is numeric: clamped before the cast, it cannot overflow.
	qPendingCredits = `SELECT LEAST(COALESCE(SUM(amount), 0), 9223372036854775807)::bigint FROM credit_requests
		WHERE workspace = $1 AND account = $2 AND status = 'PENDING'`

	// Batch reads and writes (batch.go).
	// The pending-request counts of a batch's submits (ledger.WriteSet.Pending).
	// A count cannot be locked by a row lock: an account that has never
	// been credited has no row, and a new request is a row that no lock
	// covers. So each account's count is guarded by a transaction-level
	// advisory lock on a key derived from (workspace, account) (pendingLockKeys),
	// taken in the order of the sorted key array; the count is read by the
	// next statement, whose snapshot sees what the batches it waited for
	// committed. Only batches that submit take it: decisions only lower a count.
	qLockPending  = `SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS q(k)`
	qCountPending = `SELECT q.id, c.n FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT count(*) AS n FROM credit_requests
			WHERE workspace = $1 AND account = q.id AND status = 'PENDING') c`
	// One primary-key probe per ID (see accounts.go), locked in ID order.
	qLockRequests = `SELECT r.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + requestColumns + ` FROM credit_requests
			WHERE workspace = $1 AND id = q.id FOR UPDATE) r`
	qRequestsByID = `SELECT r.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + requestColumns + ` FROM credit_requests
			WHERE workspace = $1 AND id = q.id OFFSET 0) r`
	// The counter row is taken first in a batch's writes and stays locked
	// until the batch commits: numbers are handed out in commit order.
	qInsertRequests = `WITH counter AS (
		INSERT INTO workspace_sequences AS s (workspace, name, value) VALUES ($1, 'requests', cardinality($2::text[]))
		ON CONFLICT (workspace, name) DO UPDATE SET value = s.value + excluded.value
		RETURNING value - cardinality($2::text[]) AS base
	)
	INSERT INTO credit_requests (workspace, id, account, amount, package_id, payment_method, payment_reference,
		note, status, metadata, idempotency_key, create_time, seq, submitted_by, validity_nanos)
	SELECT $1, u.id, u.account, u.amount, u.package_id, u.method, u.payment_reference, u.note, 'PENDING',
		u.metadata::jsonb, u.key, u.create_time, counter.base + u.n, u.submitted_by, u.validity
	FROM counter, unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[],
		$9::text[], $10::text[], $11::timestamptz[], $12::text[], $13::bigint[]) WITH ORDINALITY
		AS u(id, account, amount, package_id, method, payment_reference, note, metadata, key, create_time, submitted_by,
		     validity, n)`
	// One statement per decision: a primary-key update of a PENDING row.
	qDecideRequest = `WITH decided AS (
		UPDATE credit_requests
		SET status = $3, decision_reason = $4, decided_by = $5, decide_time = $6, transaction_id = $7
		WHERE workspace = $1 AND id = $2 AND status = 'PENDING'
		RETURNING 1
	)
	SELECT ledger_expect(1, count(*), 'credit request ' || $2::text) FROM decided`
)

func scanRequest(row pgx.Row) (ledger.CreditRequest, error) {
	var r ledger.CreditRequest
	var method, status string
	var pkg, txID pgtype.Text
	var md []byte
	var decided pgtype.Timestamptz
	var validity int64
	if err := row.Scan(&r.ID, &r.Workspace, &r.Account, &r.Amount, &pkg, &method, &r.PaymentReference, &r.Note,
		&status, &r.DecisionReason, &r.DecidedBy, &decided, &txID, &md, &r.IdempotencyKey, &r.CreateTime, &r.Seq, &r.SubmittedBy,
		&validity); err != nil {
		return ledger.CreditRequest{}, err
	}
	var ok bool
	if r.PaymentMethod, ok = ledger.ParsePaymentMethod(method); !ok {
		return ledger.CreditRequest{}, fmt.Errorf("request %s has unknown payment method %q", r.ID, method)
	}
	if r.Status, ok = ledger.ParseRequestStatus(status); !ok {
		return ledger.CreditRequest{}, fmt.Errorf("request %s has unknown status %q", r.ID, status)
	}
	var err error
	if r.Metadata, err = fromMetadata(md); err != nil {
		return ledger.CreditRequest{}, err
	}
	r.PackageID, r.TransactionID, r.Validity = pkg.String, txID.String, time.Duration(validity)
	r.DecideTime, r.CreateTime = fromTime(decided), r.CreateTime.UTC()
	return r, nil
}

func (t *readTx) request(ctx context.Context, sql, workspace, id string) (ledger.CreditRequest, error) {
	rows, err := t.query(ctx, sql, workspace, id)
	var r ledger.CreditRequest
	if err == nil {
		r, err = pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (ledger.CreditRequest, error) { return scanRequest(row) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.CreditRequest{}, ledger.NotFoundError("credit request", id)
	}
	if err != nil {
		return ledger.CreditRequest{}, mapErr(ctx, "read credit request", err)
	}
	return r, nil
}

// Request implements ledger.ReadTx.
func (t *readTx) Request(ctx context.Context, workspace, id string) (ledger.CreditRequest, error) {
	return t.request(ctx, qRequest, workspace, id)
}

// ListRequests implements ledger.ReadTx: keyset on the sequence, ascending or
// descending; AfterSeq means "after it in the chosen order".
func (t *readTx) ListRequests(ctx context.Context, q ledger.RequestQuery) ([]ledger.CreditRequest, error) {
	var status string
	if q.Status != ledger.StatusUnspecified {
		status = q.Status.String()
	}
	sql := qListRequestsAsc
	if q.Desc {
		sql = qListRequestsDesc
	}
	out, err := all(ctx, t, scanRequest, sql, q.Workspace, q.Account, status, q.AfterSeq, q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list credit requests", err)
	}
	return out, nil
}

// PendingCredits implements ledger.ReadTx.
func (t *readTx) PendingCredits(ctx context.Context, workspace, account string) (int64, error) {
	var sum int64
	if err := t.one(ctx, qPendingCredits, workspace, []any{account}, &sum); err != nil {
		return 0, mapErr(ctx, "sum pending credits", err)
	}
	return sum, nil
}

// pendingLockKeys returns the advisory lock keys guarding the pending
// counts of accounts of ws, sorted and without duplicates: one global
// order for every batch of every replica. Two accounts whose keys collide
// only share a lock.
func pendingLockKeys(ws string, accounts []string) []int64 {
	keys := make([]int64, 0, len(accounts))
	for _, a := range accounts {
		h := fnv.New64a()
		_, _ = h.Write([]byte("creditledger.pending\x00" + ws + "\x00" + a))
		keys = append(keys, int64(binary.BigEndian.Uint64(h.Sum(nil)))) //nolint:gosec // G115: a hash, any bit pattern is a key
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
