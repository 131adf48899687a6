package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Credit requests, numbered per workspace (seq) in commit order.

const requestColumns = `id, workspace, account, amount, package_id, payment_method, payment_reference, note,
	status, decision_reason, decided_by, decide_time, transaction_id, metadata, idempotency_key, create_time, seq, submitted_by, validity_nanos`

const (
	qRequest    = `SELECT ` + requestColumns + ` FROM credit_requests WHERE workspace = ? AND id = ?`
	qRequestsIn = `SELECT ` + requestColumns + ` FROM credit_requests
		WHERE workspace = ? AND id IN (SELECT value FROM json_each(?))`
	//nolint:gosec // G101: SQL naming a status, not a credential
	// The amounts, summed in Go: SQLite's SUM fails on an int64 overflow.
	qPendingCredits = `SELECT amount FROM credit_requests
		WHERE workspace = ? AND account = ? AND status = 'PENDING'`
	// qReserveRequestSeqs takes the next n numbers of the workspace's
	// sequence and returns the last of them.
	qReserveRequestSeqs = `INSERT INTO request_sequences (workspace, last_seq) VALUES (?, ?)
		ON CONFLICT (workspace) DO UPDATE SET last_seq = last_seq + excluded.last_seq
		RETURNING last_seq`
	qInsertRequest = `INSERT INTO credit_requests (id, workspace, account, amount, package_id, payment_method,
		payment_reference, note, status, metadata, idempotency_key, create_time, seq, submitted_by, validity_nanos)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'PENDING', ?, ?, ?, ?, ?, ?)`
	// The pending-request counts of a batch's submits. The batch holds the
	// database's write lock (BEGIN IMMEDIATE), so no other batch can add a
	// request before it commits. One probe of credit_requests_by_account_status
	// per account.
	qPendingCountsIn = `SELECT account, count(*) FROM credit_requests
		WHERE workspace = ? AND account IN (SELECT value FROM json_each(?)) AND status = 'PENDING'
		GROUP BY account`
	qDecideRequest = `UPDATE credit_requests
		SET status = ?, decision_reason = ?, decided_by = ?, decide_time = ?, transaction_id = ?
		WHERE workspace = ? AND id = ? AND status = 'PENDING'`
)

// requestsQuery is the request listing with the filters that are set, in
// sequence order, which an index ending in seq serves for each combination
// of filters (0002_batch_writes.sql). Every variant is prepared at Open.
func requestsQuery(account, status, after, desc bool) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + requestColumns + ` FROM credit_requests WHERE workspace = :ws`)
	if account {
		b.WriteString(` AND account = :account`)
	}
	if status {
		b.WriteString(` AND status = :status`)
	}
	switch {
	case after && desc:
		b.WriteString(` AND seq < :after`)
	case after:
		b.WriteString(` AND seq > :after`)
	}
	if desc {
		b.WriteString(` ORDER BY seq DESC LIMIT :limit`)
	} else {
		b.WriteString(` ORDER BY seq ASC LIMIT :limit`)
	}
	return b.String()
}

func scanRequest(row scanner) (ledger.CreditRequest, error) {
	var r ledger.CreditRequest
	var method, status string
	var pkg, txID, md sql.NullString
	var decided, created sql.NullInt64
	var validity int64
	if err := row.Scan(&r.ID, &r.Workspace, &r.Account, &r.Amount, &pkg, &method, &r.PaymentReference, &r.Note,
		&status, &r.DecisionReason, &r.DecidedBy, &decided, &txID, &md, &r.IdempotencyKey, &created, &r.Seq, &r.SubmittedBy,
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
	r.PackageID, r.TransactionID = pkg.String, txID.String
	r.DecideTime, r.CreateTime = fromMicros(decided), fromMicros(created)
	r.Validity = time.Duration(validity)
	return r, nil
}

// Request implements ledger.ReadTx.
func (t *readTx) Request(ctx context.Context, workspace, id string) (ledger.CreditRequest, error) {
	var r ledger.CreditRequest
	err := t.one(ctx, qRequest, []any{workspace, id}, func(row scanner) (err error) {
		r, err = scanRequest(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.CreditRequest{}, ledger.NotFoundError("credit request", id)
	}
	if err != nil {
		return ledger.CreditRequest{}, mapErr(ctx, "read credit request", err)
	}
	return r, nil
}

// ListRequests implements ledger.ReadTx: keyset on the sequence number,
// ascending or descending; AfterSeq means "after it in the chosen order".
func (t *readTx) ListRequests(ctx context.Context, q ledger.RequestQuery) ([]ledger.CreditRequest, error) {
	args := []any{sql.Named("ws", q.Workspace), sql.Named("limit", q.Limit)}
	if q.Account != "" {
		args = append(args, sql.Named("account", q.Account))
	}
	if q.Status != ledger.StatusUnspecified {
		args = append(args, sql.Named("status", q.Status.String()))
	}
	if q.AfterSeq > 0 {
		args = append(args, sql.Named("after", q.AfterSeq))
	}
	var out []ledger.CreditRequest
	err := t.each(ctx, requestsQuery(q.Account != "", q.Status != ledger.StatusUnspecified, q.AfterSeq > 0, q.Desc), args,
		func(row scanner) error {
			r, err := scanRequest(row)
			out = append(out, r)
			return err
		})
	if err != nil {
		return nil, mapErr(ctx, "list credit requests", err)
	}
	return out, nil
}

// PendingCredits implements ledger.ReadTx; the sum saturates at the
// largest int64 rather than fail (see ledger.ReadTx).
func (t *readTx) PendingCredits(ctx context.Context, workspace, account string) (int64, error) {
	var sum int64
	err := t.each(ctx, qPendingCredits, []any{workspace, account}, func(row scanner) error {
		var n int64
		if err := row.Scan(&n); err != nil {
			return err
		}
		if sum > math.MaxInt64-n {
			sum = math.MaxInt64
		} else {
			sum += n
		}
		return nil
	})
	if err != nil {
		return 0, mapErr(ctx, "sum pending credits", err)
	}
	return sum, nil
}

// pendingCountsIn sets into[account] to the number of PENDING requests of
// each account of accounts that has any.
func (t *writeTx) pendingCountsIn(ctx context.Context, workspace string, accounts []string, into map[string]int) error {
	err := t.eachIn(ctx, qPendingCountsIn, workspace, accounts, func(row scanner) error {
		var id string
		var n int
		if err := row.Scan(&id, &n); err != nil {
			return err
		}
		into[id] = n
		return nil
	})
	return mapErr(ctx, "count pending requests", err)
}

// requestsIn adds the requests of ids to into.
func (t *writeTx) requestsIn(ctx context.Context, workspace string, ids []string, into map[string]ledger.CreditRequest) error {
	err := t.eachIn(ctx, qRequestsIn, workspace, ids, func(row scanner) error {
		r, err := scanRequest(row)
		into[r.ID] = r
		return err
	})
	return mapErr(ctx, "read credit requests", err)
}

// insertRequests reserves the next len(reqs) numbers of the workspace's
// request sequence, numbers reqs with them in order (setting their Seq,
// which holds only once the batch committed) and inserts them as PENDING
// requests.
func (t *writeTx) insertRequests(ctx context.Context, workspace string, reqs []ledger.CreditRequest) error {
	if len(reqs) == 0 {
		return nil
	}
	var last int64
	err := t.one(ctx, qReserveRequestSeqs, []any{workspace, int64(len(reqs))}, func(row scanner) error {
		return row.Scan(&last)
	})
	if err != nil {
		return mapErr(ctx, "reserve request numbers", err)
	}
	for i := range reqs {
		reqs[i].Seq = last - int64(len(reqs)-1-i)
	}
	err = execEach(ctx, &t.readTx, qInsertRequest, reqs, func(r ledger.CreditRequest) ([]any, error) {
		md, err := toMetadata(r.Metadata)
		if err != nil {
			return nil, err
		}
		return []any{
			r.ID, r.Workspace, r.Account, r.Amount, nullString(r.PackageID), r.PaymentMethod.String(),
			r.PaymentReference, r.Note, md, r.IdempotencyKey, toMicros(r.CreateTime), r.Seq, r.SubmittedBy,
			int64(r.Validity),
		}, nil
	}, nil)
	return mapErr(ctx, "insert credit requests", err)
}

// decideRequests stores the batch's decisions; a request that is no
// longer PENDING is ErrConflict. The schema's triggers enforce the state
// machine as well.
func (t *writeTx) decideRequests(ctx context.Context, reqs []ledger.CreditRequest) error {
	err := execEach(ctx, &t.readTx, qDecideRequest, reqs, func(r ledger.CreditRequest) ([]any, error) {
		return []any{
			r.Status.String(), r.DecisionReason, r.DecidedBy, toMicros(r.DecideTime), nullString(r.TransactionID),
			r.Workspace, r.ID,
		}, nil
	}, func(r ledger.CreditRequest, res sql.Result) error {
		return oneRow(res, fmt.Sprintf("credit request %s/%s is not pending", r.Workspace, r.ID))
	})
	return mapErr(ctx, "decide credit requests", err)
}
