package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
)

const (
	// qInsertEvents numbers a batch's events from its workspace's counter
	// and inserts them, as one row: the batch's last statement before
	// COMMIT (migrations 0007 and 0011 say why).
	qInsertEvents = `WITH seq AS (
			INSERT INTO event_sequences AS s (workspace, last) VALUES ($1, cardinality($2::text[]))
			ON CONFLICT (workspace) DO UPDATE SET last = s.last + cardinality($2::text[])
			RETURNING last
		)
		INSERT INTO event_batches (workspace, last_sequence, first_sequence, types, accounts, create_times, data)
		SELECT $1, seq.last, seq.last - cardinality($2::text[]) + 1, $2, $3, $4, $5 FROM seq`
	// qListEventBatches reads the rows that hold the events after $2, in
	// order: each holds one event at least.
	qListEventBatches = `SELECT first_sequence, types, accounts, create_times, data FROM event_batches
		WHERE workspace = $1 AND last_sequence > $2
		ORDER BY last_sequence LIMIT $3`
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

// ListEvents implements ledger.ReadTx. It reads the rows of batches in
// pages of q.Limit, enough for q.Limit events when nothing is filtered
// out, and more pages while filters leave the page short.
func (t *readTx) ListEvents(ctx context.Context, q ledger.EventQuery) ([]ledger.Event, error) {
	page := ledger.NewEventPage(q)
	for !page.Full() {
		rows, err := t.query(ctx, qListEventBatches, q.Workspace, page.After, q.Limit)
		if err != nil {
			return nil, mapErr(ctx, "list events", err)
		}
		n := 0
		var first int64
		var types, accts []string
		var times []time.Time
		var data [][]byte
		for rows.Next() && !page.Full() {
			n++
			if err := rows.Scan(&first, &types, &accts, &times, &data); err != nil {
				rows.Close()
				return nil, mapErr(ctx, "list events", err)
			}
			if len(accts) != len(types) || len(times) != len(types) || len(data) != len(types) {
				rows.Close()
				return nil, ledger.InternalError(fmt.Errorf("postgres: list events: the batch from event %d is malformed", first))
			}
			for i, typ := range types {
				err := page.Add(ledger.StoredEvent{
					Workspace: q.Workspace, Sequence: first + int64(i), Type: typ, Account: accts[i], CreateTime: times[i], Data: data[i],
				})
				if err != nil {
					rows.Close()
					return nil, err
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, mapErr(ctx, "list events", err)
		}
		if n < q.Limit {
			break // the last page
		}
	}
	return page.Events, nil
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
