package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/creditledger/creditledger/internal/ledger"
)

// ---------------------------------------------------------------------------
// Holds (migration 0005)

const holdColumns = `workspace, id, account, amount, kind, reference, metadata, status, expire_time,
	captured_amount, transaction_id, idempotency_key, create_time, update_time`

const (
	qHold = `SELECT ` + holdColumns + ` FROM holds WHERE workspace = $1 AND id = $2`
	// An account's holds by descending ID: holds_by_account, or the partial
	// holds_active for ACTIVE ones (the status is then a literal, which is
	// what lets a generic plan use it). $3 bounds the IDs when set.
	qListHolds = `SELECT ` + holdColumns + ` FROM holds
		WHERE account = $2 AND workspace = $1 ORDER BY id DESC LIMIT $3`
	qListHoldsBefore = `SELECT ` + holdColumns + ` FROM holds
		WHERE account = $2 AND workspace = $1 AND id < $4 ORDER BY id DESC LIMIT $3`
	qListHoldsStatus = `SELECT ` + holdColumns + ` FROM holds
		WHERE account = $2 AND workspace = $1 AND status = $4 ORDER BY id DESC LIMIT $3`
	qListHoldsStatusBefore = `SELECT ` + holdColumns + ` FROM holds
		WHERE account = $2 AND workspace = $1 AND status = $4 AND id < $5 ORDER BY id DESC LIMIT $3`
	qListHoldsActive = `SELECT ` + holdColumns + ` FROM holds
		WHERE account = $2 AND workspace = $1 AND status = 'ACTIVE' ORDER BY id DESC LIMIT $3`
	qListHoldsActiveBefore = `SELECT ` + holdColumns + ` FROM holds
		WHERE account = $2 AND workspace = $1 AND status = 'ACTIVE' AND id < $4 ORDER BY id DESC LIMIT $3`
	qDueHolds = `SELECT ` + holdColumns + ` FROM holds
		WHERE workspace = $1 AND status = 'ACTIVE' AND expire_time <= $2 ORDER BY expire_time, id LIMIT $3`
	qHoldStats = `SELECT count(*), COALESCE(sum(amount), 0)::bigint FROM holds
		WHERE workspace = $1 AND status = 'ACTIVE'`

	// Batch reads and writes (batch.go): one primary-key probe per ID (see
	// accounts.go), locked in ID order before the accounts; the holds that
	// replayed records name; the new holds; and one statement per hold
	// that leaves ACTIVE, which must find it still ACTIVE (else the batch
	// is a conflict, decided again).
	qLockHolds = `SELECT h.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + holdColumns + ` FROM holds
			WHERE workspace = $1 AND id = q.id FOR UPDATE) h`
	qHoldsByID = `SELECT h.* FROM unnest($2::text[]) AS q(id)
		CROSS JOIN LATERAL (SELECT ` + holdColumns + ` FROM holds
			WHERE workspace = $1 AND id = q.id OFFSET 0) h`
	qInsertHolds = `INSERT INTO holds (workspace, id, account, amount, kind, reference, metadata, status, expire_time,
		idempotency_key, create_time)
		SELECT $1, u.id, u.account, u.amount, u.kind, u.reference, u.metadata::jsonb, u.status, u.expire_time,
			u.idempotency_key, u.create_time
		FROM unnest($2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
			$9::text[], $10::timestamptz[], $11::text[])
			AS u(id, account, amount, kind, reference, metadata, expire_time, idempotency_key, create_time, status)`
	qEndHold = `WITH ended AS (
		UPDATE holds SET status = $3, captured_amount = $4, transaction_id = $5, update_time = $6
		WHERE workspace = $1 AND id = $2 AND status = 'ACTIVE'
		RETURNING 1
	)
	SELECT ledger_expect(1, count(*), 'hold ' || $2::text) FROM ended`
)

func scanHold(row pgx.Row) (ledger.Hold, error) {
	var h ledger.Hold
	var kind, status string
	var md []byte
	var txID pgtype.Text
	var upd pgtype.Timestamptz
	if err := row.Scan(&h.Workspace, &h.ID, &h.Account, &h.Amount, &kind, &h.Reference, &md, &status, &h.ExpireTime,
		&h.CapturedAmount, &txID, &h.IdempotencyKey, &h.CreateTime, &upd); err != nil {
		return ledger.Hold{}, err
	}
	var ok bool
	if h.Kind, ok = ledger.ParseKind(kind); !ok {
		return ledger.Hold{}, fmt.Errorf("hold %s has unknown kind %q", h.ID, kind)
	}
	if h.Status, ok = ledger.ParseHoldStatus(status); !ok {
		return ledger.Hold{}, fmt.Errorf("hold %s has unknown status %q", h.ID, status)
	}
	var err error
	if h.Metadata, err = fromMetadata(md); err != nil {
		return ledger.Hold{}, err
	}
	h.TransactionID, h.UpdateTime = txID.String, fromTime(upd)
	h.ExpireTime, h.CreateTime = h.ExpireTime.UTC(), h.CreateTime.UTC()
	return h, nil
}

// Hold implements ledger.ReadTx.
func (t *readTx) Hold(ctx context.Context, workspace, id string) (ledger.Hold, error) {
	rows, err := t.query(ctx, qHold, workspace, id)
	var h ledger.Hold
	if err == nil {
		h, err = pgx.CollectExactlyOneRow(rows, func(r pgx.CollectableRow) (ledger.Hold, error) { return scanHold(r) })
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Hold{}, ledger.NotFoundError("hold", id)
	}
	if err != nil {
		return ledger.Hold{}, mapErr(ctx, "read hold", err)
	}
	return h, nil
}

// ListHolds implements ledger.ReadTx: newest ID first, keyset on the ID.
func (t *readTx) ListHolds(ctx context.Context, q ledger.HoldQuery) ([]ledger.Hold, error) {
	args := []any{q.Account, q.Limit}
	var sql string
	switch q.Status {
	case ledger.HoldUnspecified:
		sql = qListHolds
	case ledger.HoldActive:
		sql = qListHoldsActive
	default:
		sql = qListHoldsStatus
		args = append(args, q.Status.String())
	}
	if q.BeforeID != "" {
		switch sql {
		case qListHolds:
			sql = qListHoldsBefore
		case qListHoldsActive:
			sql = qListHoldsActiveBefore
		default:
			sql = qListHoldsStatusBefore
		}
		args = append(args, q.BeforeID)
	}
	out, err := all(ctx, t, scanHold, sql, q.Workspace, args...)
	if err != nil {
		return nil, mapErr(ctx, "list holds", err)
	}
	return out, nil
}

// DueHolds implements ledger.ReadTx: the ACTIVE holds expired at now,
// soonest first.
func (t *readTx) DueHolds(ctx context.Context, workspace string, now time.Time, limit int) ([]ledger.Hold, error) {
	out, err := all(ctx, t, scanHold, qDueHolds, workspace, now.UTC(), limit)
	if err != nil {
		return nil, mapErr(ctx, "list due holds", err)
	}
	return out, nil
}

// HoldStats counts the ACTIVE holds across every workspace and sums what
// they hold, for the metrics gauges: like PendingRequestStats, one
// transaction per workspace, under its own setting (eachWorkspace).
func (s *Store) HoldStats(ctx context.Context) (active, held int64, err error) {
	err = s.eachWorkspace(ctx, "count active holds", func(b *pgx.Batch, ws string) {
		b.Queue(qHoldStats, ws).QueryRow(func(row pgx.Row) error {
			var n, sum int64
			if err := row.Scan(&n, &sum); err != nil {
				return err
			}
			active, held = active+n, satAdd(held, sum)
			return nil
		})
	})
	if err != nil {
		return 0, 0, err
	}
	return active, held, nil
}

// ---------------------------------------------------------------------------
// Grants (migration 0005): open means remaining > 0, always written as
// that literal so that a generic plan can use the partial indexes.

const grantColumns = `workspace, transaction_id, account, amount, remaining, expire_time, expiry_transaction_id`

const (
	qGrants = `SELECT ` + grantColumns + ` FROM grants
		WHERE account = $2 AND workspace = $1 AND remaining > 0 ORDER BY expire_time, transaction_id`
	qDueGrants = `SELECT ` + grantColumns + ` FROM grants
		WHERE workspace = $1 AND remaining > 0 AND expire_time <= $2 ORDER BY expire_time, transaction_id LIMIT $3`

	// Batch reads (batch.go), after the account locks: the open grants of
	// the batch's accounts, one probe of the partial index grants_open per
	// account (an account without open grants costs one descent of a small
	// index), by account and then spending order. qGrantsOfAll also takes
	// the accounts of the batch's holds and entries.
	qGrantsOf = `SELECT g.* FROM unnest($2::text[]) AS q(account)
		CROSS JOIN LATERAL (SELECT ` + grantColumns + ` FROM grants
			WHERE account = q.account AND workspace = $1 AND remaining > 0
			ORDER BY expire_time, transaction_id OFFSET 0) g`
	qGrantsOfAll = `SELECT g.* FROM (
			SELECT id FROM unnest($2::text[]) AS q(id)
			UNION
			SELECT h.account FROM unnest($3::text[]) AS q(id)
			CROSS JOIN LATERAL (SELECT account FROM holds WHERE workspace = $1 AND id = q.id OFFSET 0) h
			UNION
			SELECT t.account FROM unnest($4::text[]) AS q(id)
			CROSS JOIN LATERAL (SELECT account FROM transactions WHERE id = q.id AND workspace = $1 OFFSET 0) t
			ORDER BY 1) AS q(account)
		CROSS JOIN LATERAL (SELECT ` + grantColumns + ` FROM grants
			WHERE account = q.account AND workspace = $1 AND remaining > 0
			ORDER BY expire_time, transaction_id OFFSET 0) g`
	// The batch's new grants, after the entries that grant them; one
	// primary-key update per changed grant, which must find it open.
	qInsertGrants = `INSERT INTO grants (` + grantColumns + `)
		SELECT $1, u.transaction_id, u.account, u.amount, u.remaining, u.expire_time, NULL
		FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[])
			AS u(transaction_id, account, amount, remaining, expire_time)`
	// (remaining <> 0 rather than > 0, the same under the schema's check:
	// the partial indexes of open grants cannot serve it, only the key.)
	qUpdateGrant = `WITH drawn AS (
		UPDATE grants SET remaining = $3, expiry_transaction_id = $4
		WHERE workspace = $1 AND transaction_id = $2 AND remaining <> 0
		RETURNING 1
	)
	SELECT ledger_expect(1, count(*), 'grant ' || $2::text) FROM drawn`
)

func scanGrant(row pgx.Row) (ledger.Grant, error) {
	var g ledger.Grant
	var expiry pgtype.Text
	if err := row.Scan(&g.Workspace, &g.TransactionID, &g.Account, &g.Amount, &g.Remaining, &g.ExpireTime, &expiry); err != nil {
		return ledger.Grant{}, err
	}
	g.ExpireTime, g.ExpiryTransactionID = g.ExpireTime.UTC(), expiry.String
	return g, nil
}

// Grants implements ledger.ReadTx.
func (t *readTx) Grants(ctx context.Context, workspace, account string) ([]ledger.Grant, error) {
	out, err := all(ctx, t, scanGrant, qGrants, workspace, account)
	if err != nil {
		return nil, mapErr(ctx, "list grants", err)
	}
	return out, nil
}

// DueGrants implements ledger.ReadTx.
func (t *readTx) DueGrants(ctx context.Context, workspace string, now time.Time, limit int) ([]ledger.Grant, error) {
	out, err := all(ctx, t, scanGrant, qDueGrants, workspace, now.UTC(), limit)
	if err != nil {
		return nil, mapErr(ctx, "list due grants", err)
	}
	return out, nil
}

// ---------------------------------------------------------------------------
// Statements

const (
	// The balances after the entry of highest version created before $3
	// and before $4 (NULL: no bound), walking the account's history down
	// from its newest entry.
	qStatementBalances = `SELECT
		(SELECT balance_after FROM transactions
			WHERE account = $2 AND workspace = $1 AND create_time < $3::timestamptz
			ORDER BY account_version DESC LIMIT 1),
		(SELECT balance_after FROM transactions
			WHERE account = $2 AND workspace = $1 AND ($4::timestamptz IS NULL OR create_time < $4::timestamptz)
			ORDER BY account_version DESC LIMIT 1)`
	// The period's entries by type and kind. SUM of bigint is numeric:
	// clamped before the cast.
	qStatementLines = `SELECT type, kind, LEAST(sum(amount), 9223372036854775807)::bigint, count(*)
		FROM transactions
		WHERE account = $2 AND workspace = $1
		  AND ($3::timestamptz IS NULL OR create_time >= $3::timestamptz)
		  AND ($4::timestamptz IS NULL OR create_time < $4::timestamptz)
		GROUP BY type, kind`
)

// Statement implements ledger.ReadTx. A zero start opens the period at
// the account's first entry (opening balance 0); a zero end closes it
// after its newest.
func (t *readTx) Statement(ctx context.Context, workspace, account string, start, end time.Time) (ledger.Statement, error) {
	st := ledger.Statement{Workspace: workspace, Account: account, Start: start, End: end}
	var opening, closing pgtype.Int8
	if err := t.one(ctx, qStatementBalances, workspace, []any{account, toTime(start), toTime(end)}, &opening, &closing); err != nil {
		return ledger.Statement{}, mapErr(ctx, "read statement balances", err)
	}
	st.OpeningBalance, st.ClosingBalance = opening.Int64, closing.Int64
	rows, err := t.query(ctx, qStatementLines, workspace, account, toTime(start), toTime(end))
	if err != nil {
		return ledger.Statement{}, mapErr(ctx, "read statement", err)
	}
	lines, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ledger.StatementLine, error) {
		var l ledger.StatementLine
		var typ, kind string
		if err := row.Scan(&typ, &kind, &l.Amount, &l.Count); err != nil {
			return l, err
		}
		var ok bool
		if l.Type, ok = ledger.ParseTxType(typ); !ok {
			return l, fmt.Errorf("unknown transaction type %q", typ)
		}
		if l.Kind, ok = ledger.ParseKind(kind); !ok {
			return l, fmt.Errorf("unknown transaction kind %q", kind)
		}
		return l, nil
	})
	if err != nil {
		return ledger.Statement{}, mapErr(ctx, "read statement", err)
	}
	slices.SortFunc(lines, func(x, y ledger.StatementLine) int {
		return cmp.Or(cmp.Compare(x.Type, y.Type), cmp.Compare(x.Kind, y.Kind))
	})
	for _, l := range lines {
		switch l.Type {
		case ledger.TypeIn:
			st.TotalIn = satAdd(st.TotalIn, l.Amount)
		case ledger.TypeOut:
			st.TotalOut = satAdd(st.TotalOut, l.Amount)
		}
		st.Count += l.Count
	}
	if len(lines) > 0 {
		st.Lines = lines
	}
	return st, nil
}

// satAdd adds two non-negative sums, saturating at the largest int64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
