package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
)

const (
	// qInsertEvents numbers a batch's events from its workspace's counter
	// and inserts them: the batch's last statement before COMMIT
	// (migration 0007 says why).
	qInsertEvents = `WITH seq AS (
			INSERT INTO event_sequences AS s (workspace, last) VALUES ($1, cardinality($2::text[]))
			ON CONFLICT (workspace) DO UPDATE SET last = s.last + cardinality($2::text[])
			RETURNING last
		)
		INSERT INTO events (workspace, sequence, type, account, create_time, data)
		SELECT $1, seq.last - cardinality($2::text[]) + e.n, e.type, NULLIF(e.account, ''), e.create_time, e.data
		FROM seq, unnest($2::text[], $3::text[], $4::timestamptz[], $5::bytea[])
			WITH ORDINALITY AS e(type, account, create_time, data, n)`
	qListEvents = `SELECT sequence, type, COALESCE(account, ''), create_time, data FROM events
		WHERE workspace = $1 AND sequence > $2
		  AND ($3::text = '' OR account = $3::text)
		  AND (cardinality($4::text[]) = 0 OR type = ANY($4::text[]))
		ORDER BY sequence LIMIT $5`
	qLastEventSequence = `SELECT COALESCE((SELECT last FROM event_sequences WHERE workspace = $1), 0)`
)

// queueEvents queues the batch's events, to be numbered at commit.
func queueEvents(b *pgx.Batch, ws string, evs []ledger.Event) error {
	n := len(evs)
	types, accts, times, data := make([]string, n), make([]string, n), make([]time.Time, n), make([][]byte, n)
	for i, e := range evs {
		d, err := ledger.EncodeEventData(e)
		if err != nil {
			return err
		}
		types[i], accts[i], times[i], data[i] = string(e.Type), e.Account, e.CreateTime.UTC(), d
	}
	b.Queue(qInsertEvents, ws, types, accts, times, data)
	return nil
}

// ListEvents implements ledger.ReadTx.
func (t *readTx) ListEvents(ctx context.Context, q ledger.EventQuery) ([]ledger.Event, error) {
	rows, err := t.query(ctx, qListEvents, q.Workspace, q.After, q.Account, typeStrings(q.Types), q.Limit)
	if err != nil {
		return nil, mapErr(ctx, "list events", err)
	}
	defer rows.Close()
	var out []ledger.Event
	for rows.Next() {
		r := ledger.StoredEvent{Workspace: q.Workspace}
		if err := rows.Scan(&r.Sequence, &r.Type, &r.Account, &r.CreateTime, &r.Data); err != nil {
			return nil, mapErr(ctx, "list events", err)
		}
		e, err := ledger.DecodeEventData(r)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(ctx, "list events", err)
	}
	return out, nil
}

// LastEventSequence implements ledger.ReadTx.
func (t *readTx) LastEventSequence(ctx context.Context, workspace string) (int64, error) {
	rows, err := t.query(ctx, qLastEventSequence, workspace)
	if err != nil {
		return 0, mapErr(ctx, "last event sequence", err)
	}
	last, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, mapErr(ctx, "last event sequence", err)
	}
	return last, nil
}

// TransactionsByID implements ledger.ReadTx.
func (t *readTx) TransactionsByID(ctx context.Context, workspace string, ids []string) ([]ledger.Transaction, error) {
	rows, err := t.query(ctx, qTransactionsByID, workspace, ids)
	if err != nil {
		return nil, mapErr(ctx, "read transactions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.Transaction, error) { return scanTransaction(r) })
	if err != nil {
		return nil, mapErr(ctx, "read transactions", err)
	}
	return out, nil
}
