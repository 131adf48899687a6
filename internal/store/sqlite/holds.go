package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Holds, grants and statements (SPEC §9). The schema's triggers keep the
// life cycle of holds and grants and the sums of reversals
// (0005_holds_reversals_expiry.sql); these are their reads and writes.

const holdColumns = `workspace, id, account, amount, kind, reference, metadata, status, expire_time,
	captured_amount, transaction_id, idempotency_key, create_time, update_time`

const grantColumns = `workspace, transaction_id, account, amount, remaining, expire_time, expiry_transaction_id`

const (
	qHold    = `SELECT ` + holdColumns + ` FROM holds WHERE workspace = ? AND id = ?`
	qHoldsIn = `SELECT ` + holdColumns + ` FROM holds
		WHERE workspace = ? AND id IN (SELECT value FROM json_each(?))`
	// Oldest due first, along holds_active_due.
	qDueHolds = `SELECT ` + holdColumns + ` FROM holds
		WHERE workspace = ? AND status = 'ACTIVE' AND expire_time <= ? ORDER BY expire_time, id LIMIT ?`
	qInsertHold = `INSERT INTO holds (workspace, id, account, amount, kind, reference, metadata, status, expire_time,
		idempotency_key, create_time) VALUES (?, ?, ?, ?, ?, ?, ?, 'ACTIVE', ?, ?, ?)`
	// A hold leaves ACTIVE only if it still is: otherwise the batch decided
	// on a stale hold (ErrConflict).
	qUpdateHold = `UPDATE holds SET status = ?, captured_amount = ?, transaction_id = ?, update_time = ?
		WHERE workspace = ? AND id = ? AND status = 'ACTIVE'`

	// Open grants are those with remaining > 0 (a closed or expired grant
	// has none left): the partial indexes grants_open and grants_open_due
	// hold nothing else.
	qGrants = `SELECT ` + grantColumns + ` FROM grants
		WHERE workspace = ? AND account = ? AND remaining > 0 ORDER BY expire_time, transaction_id`
	// The batch's open grants: one probe of grants_open per account (the
	// CROSS JOIN keeps the list as the outer loop), and accounts without
	// expiring credits (most) find nothing. Ordered in Go.
	qGrantsIn = `SELECT g.workspace, g.transaction_id, g.account, g.amount, g.remaining, g.expire_time,
		g.expiry_transaction_id
		FROM json_each(?2) AS k CROSS JOIN grants AS g
		WHERE g.workspace = ?1 AND g.account = k.value AND g.remaining > 0`
	qDueGrants = `SELECT ` + grantColumns + ` FROM grants
		WHERE workspace = ? AND remaining > 0 AND expire_time <= ? ORDER BY expire_time, transaction_id LIMIT ?`
	qInsertGrant = `INSERT INTO grants (` + grantColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qUpdateGrant = `UPDATE grants SET remaining = ?, expiry_transaction_id = ?
		WHERE workspace = ? AND transaction_id = ? AND remaining > 0`

	// The balance after the entry of highest version created before a time.
	qStatementBalance = `SELECT balance_after FROM transactions
		WHERE workspace = ? AND account = ? AND create_time < ? ORDER BY account_version DESC LIMIT 1`
	qStatementLines = `SELECT type, kind, SUM(amount), count(*) FROM transactions
		WHERE workspace = ? AND account = ? AND create_time >= ? AND create_time < ? GROUP BY type, kind`

	//nolint:gosec // G101: SQL naming a status, not a credential
	qHoldStats = `SELECT count(*), COALESCE(SUM(amount), 0) FROM holds WHERE status = 'ACTIVE'`
)

// holdsQuery lists an account's holds newest first, with the filters that
// are set, along holds_by_account or holds_by_account_status (named: on a
// young table the planner would rather range over the workspace's IDs).
// Every variant is prepared at Open.
func holdsQuery(status, before bool) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + holdColumns + ` FROM holds`)
	if status {
		b.WriteString(` INDEXED BY holds_by_account_status`)
	} else {
		b.WriteString(` INDEXED BY holds_by_account`)
	}
	b.WriteString(` WHERE workspace = :ws AND account = :account`)
	if status {
		b.WriteString(` AND status = :status`)
	}
	if before {
		b.WriteString(` AND id < :before`)
	}
	b.WriteString(` ORDER BY id DESC LIMIT :limit`)
	return b.String()
}

func scanHold(row scanner) (ledger.Hold, error) {
	var h ledger.Hold
	var kind, status string
	var md, txID sql.NullString
	var expires, created, updated sql.NullInt64
	if err := row.Scan(&h.Workspace, &h.ID, &h.Account, &h.Amount, &kind, &h.Reference, &md, &status, &expires,
		&h.CapturedAmount, &txID, &h.IdempotencyKey, &created, &updated); err != nil {
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
	h.TransactionID = txID.String
	h.ExpireTime, h.CreateTime, h.UpdateTime = fromMicros(expires), fromMicros(created), fromMicros(updated)
	return h, nil
}

func scanGrant(row scanner) (ledger.Grant, error) {
	var g ledger.Grant
	var expires sql.NullInt64
	var expiry sql.NullString
	if err := row.Scan(&g.Workspace, &g.TransactionID, &g.Account, &g.Amount, &g.Remaining, &expires, &expiry); err != nil {
		return ledger.Grant{}, err
	}
	g.ExpireTime, g.ExpiryTransactionID = fromMicros(expires), expiry.String
	return g, nil
}

// grantOrder is the order grants are drawn in: soonest expiry first, then
// by the granting entry.
func grantOrder(a, b ledger.Grant) int {
	if c := a.ExpireTime.Compare(b.ExpireTime); c != 0 {
		return c
	}
	return cmp.Compare(a.TransactionID, b.TransactionID)
}

// Hold implements ledger.ReadTx.
func (t *readTx) Hold(ctx context.Context, workspace, id string) (ledger.Hold, error) {
	var h ledger.Hold
	err := t.one(ctx, qHold, []any{workspace, id}, func(row scanner) (err error) {
		h, err = scanHold(row)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Hold{}, ledger.NotFoundError("hold", id)
	}
	if err != nil {
		return ledger.Hold{}, mapErr(ctx, "read hold", err)
	}
	return h, nil
}

// ListHolds implements ledger.ReadTx: newest first, keyset on the ID.
func (t *readTx) ListHolds(ctx context.Context, q ledger.HoldQuery) ([]ledger.Hold, error) {
	args := []any{sql.Named("ws", q.Workspace), sql.Named("account", q.Account), sql.Named("limit", q.Limit)}
	hasStatus := q.Status != ledger.HoldUnspecified
	if hasStatus {
		args = append(args, sql.Named("status", q.Status.String()))
	}
	if q.BeforeID != "" {
		args = append(args, sql.Named("before", q.BeforeID))
	}
	out, err := t.holds(ctx, holdsQuery(hasStatus, q.BeforeID != ""), args)
	if err != nil {
		return nil, mapErr(ctx, "list holds", err)
	}
	return out, nil
}

// DueHolds implements ledger.ReadTx: the ACTIVE holds expired at now,
// oldest expiry first.
func (t *readTx) DueHolds(ctx context.Context, workspace string, now time.Time, limit int) ([]ledger.Hold, error) {
	out, err := t.holds(ctx, qDueHolds, []any{workspace, now.UnixMicro(), limit})
	if err != nil {
		return nil, mapErr(ctx, "list due holds", err)
	}
	return out, nil
}

func (t *readTx) holds(ctx context.Context, q string, args []any) ([]ledger.Hold, error) {
	var out []ledger.Hold
	err := t.each(ctx, q, args, func(row scanner) error {
		h, err := scanHold(row)
		out = append(out, h)
		return err
	})
	return out, err
}

// Grants implements ledger.ReadTx.
func (t *readTx) Grants(ctx context.Context, workspace, account string) ([]ledger.Grant, error) {
	out, err := t.grants(ctx, qGrants, []any{workspace, account})
	if err != nil {
		return nil, mapErr(ctx, "read grants", err)
	}
	return out, nil
}

// DueGrants implements ledger.ReadTx.
func (t *readTx) DueGrants(ctx context.Context, workspace string, now time.Time, limit int) ([]ledger.Grant, error) {
	out, err := t.grants(ctx, qDueGrants, []any{workspace, now.UnixMicro(), limit})
	if err != nil {
		return nil, mapErr(ctx, "list due grants", err)
	}
	return out, nil
}

func (t *readTx) grants(ctx context.Context, q string, args []any) ([]ledger.Grant, error) {
	var out []ledger.Grant
	err := t.each(ctx, q, args, func(row scanner) error {
		g, err := scanGrant(row)
		out = append(out, g)
		return err
	})
	return out, err
}

// statementBound stores a statement's bound; the zero time is unbounded
// (before every entry for a start, after every entry for an end).
func statementBound(tm time.Time, end bool) int64 {
	switch {
	case !tm.IsZero():
		return tm.UnixMicro()
	case end:
		return math.MaxInt64
	default:
		return math.MinInt64
	}
}

// Statement implements ledger.ReadTx. Entries are summed per type and kind
// in SQL (SUM fails rather than wrap on an int64 overflow) and totalled
// here with checked additions.
func (t *readTx) Statement(ctx context.Context, workspace, account string, start, end time.Time) (ledger.Statement, error) {
	st := ledger.Statement{Workspace: workspace, Account: account, Start: start, End: end}
	from, to := statementBound(start, false), statementBound(end, true)
	var err error
	if st.OpeningBalance, err = t.balanceBefore(ctx, workspace, account, from); err != nil {
		return ledger.Statement{}, err
	}
	if st.ClosingBalance, err = t.balanceBefore(ctx, workspace, account, to); err != nil {
		return ledger.Statement{}, err
	}
	err = t.each(ctx, qStatementLines, []any{workspace, account, from, to}, func(row scanner) error {
		var typ, kind string
		var l ledger.StatementLine
		if err := row.Scan(&typ, &kind, &l.Amount, &l.Count); err != nil {
			return err
		}
		var ok bool
		if l.Type, ok = ledger.ParseTxType(typ); !ok {
			return fmt.Errorf("statement: unknown type %q", typ)
		}
		if l.Kind, ok = ledger.ParseKind(kind); !ok {
			return fmt.Errorf("statement: unknown kind %q", kind)
		}
		total := &st.TotalIn
		if l.Type == ledger.TypeOut {
			total = &st.TotalOut
		}
		if *total > math.MaxInt64-l.Amount {
			return errors.New("statement: total overflows int64")
		}
		*total += l.Amount
		st.Count += l.Count
		st.Lines = append(st.Lines, l)
		return nil
	})
	if err != nil {
		return ledger.Statement{}, mapErr(ctx, "sum statement", err)
	}
	slices.SortFunc(st.Lines, func(a, b ledger.StatementLine) int {
		if c := cmp.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
	return st, nil
}

// balanceBefore is the balance after the account's entry of highest
// version created before micros, or 0 when there is none.
func (t *readTx) balanceBefore(ctx context.Context, workspace, account string, micros int64) (int64, error) {
	var bal int64
	err := t.one(ctx, qStatementBalance, []any{workspace, account, micros}, func(row scanner) error {
		return row.Scan(&bal)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, mapErr(ctx, "read statement balance", err)
	}
	return bal, nil
}

// HoldStats counts ACTIVE holds across every workspace and sums the
// credits they hold (metrics), along holds_active_due.
func (s *Store) HoldStats(ctx context.Context) (active, held int64, err error) {
	if err := s.r.QueryRowContext(ctx, qHoldStats).Scan(&active, &held); err != nil {
		return 0, 0, mapErr(ctx, "count active holds", err)
	}
	return active, held, nil
}

// holdsIn adds the existing holds of ids to into.
func (t *writeTx) holdsIn(ctx context.Context, workspace string, ids []string, into map[string]ledger.Hold) error {
	err := t.eachIn(ctx, qHoldsIn, workspace, ids, func(row scanner) error {
		h, err := scanHold(row)
		into[h.ID] = h
		return err
	})
	return mapErr(ctx, "read holds", err)
}

// grantsIn sets into[account] to the open grants of each account of
// accounts that has any, in the order they are drawn.
func (t *writeTx) grantsIn(ctx context.Context, workspace string, accounts []string, into map[string][]ledger.Grant) error {
	if !slices.IsSorted(accounts) {
		accounts = slices.Clone(accounts)
		slices.Sort(accounts)
	}
	accounts = slices.Compact(accounts) // the list is the join's outer loop
	err := t.eachIn(ctx, qGrantsIn, workspace, accounts, func(row scanner) error {
		g, err := scanGrant(row)
		into[g.Account] = append(into[g.Account], g)
		return err
	})
	if err != nil {
		return mapErr(ctx, "read grants", err)
	}
	for _, gs := range into {
		slices.SortFunc(gs, grantOrder)
	}
	return nil
}

// insertHolds creates the batch's new holds, ACTIVE, after their accounts
// moved (their held counts them) and before the entries that may capture
// them. An ID taken meanwhile is ErrConflict.
func (t *writeTx) insertHolds(ctx context.Context, holds []ledger.Hold) error {
	err := execEach(ctx, &t.readTx, qInsertHold, holds, func(h ledger.Hold) ([]any, error) {
		md, err := toMetadata(h.Metadata)
		if err != nil {
			return nil, err
		}
		return []any{
			h.Workspace, h.ID, h.Account, h.Amount, h.Kind.String(), h.Reference, md, toMicros(h.ExpireTime),
			h.IdempotencyKey, toMicros(h.CreateTime),
		}, nil
	}, nil)
	return mapErr(ctx, "insert holds", err)
}

// updateHolds moves holds out of ACTIVE, after the entries of their
// captures; a hold that is no longer ACTIVE is ErrConflict.
func (t *writeTx) updateHolds(ctx context.Context, holds []ledger.Hold) error {
	err := execEach(ctx, &t.readTx, qUpdateHold, holds, func(h ledger.Hold) ([]any, error) {
		return []any{
			h.Status.String(), h.CapturedAmount, nullString(h.TransactionID), toMicros(h.UpdateTime), h.Workspace, h.ID,
		}, nil
	}, func(h ledger.Hold, res sql.Result) error {
		return oneRow(res, fmt.Sprintf("hold %s/%s is no longer active", h.Workspace, h.ID))
	})
	return mapErr(ctx, "update holds", err)
}

// insertGrants records the batch's new grants, after their IN entries.
func (t *writeTx) insertGrants(ctx context.Context, grants []ledger.Grant) error {
	err := execEach(ctx, &t.readTx, qInsertGrant, grants, func(g ledger.Grant) ([]any, error) {
		return []any{
			g.Workspace, g.TransactionID, g.Account, g.Amount, g.Remaining, toMicros(g.ExpireTime),
			nullString(g.ExpiryTransactionID),
		}, nil
	}, nil)
	return mapErr(ctx, "insert grants", err)
}

// updateGrants lowers what remains of open grants and closes expired ones,
// after the EXPIRY entries; a grant that is no longer open is ErrConflict.
func (t *writeTx) updateGrants(ctx context.Context, grants []ledger.Grant) error {
	err := execEach(ctx, &t.readTx, qUpdateGrant, grants, func(g ledger.Grant) ([]any, error) {
		return []any{g.Remaining, nullString(g.ExpiryTransactionID), g.Workspace, g.TransactionID}, nil
	}, func(g ledger.Grant, res sql.Result) error {
		return oneRow(res, fmt.Sprintf("grant %s/%s is no longer open", g.Workspace, g.TransactionID))
	})
	return mapErr(ctx, "update grants", err)
}
