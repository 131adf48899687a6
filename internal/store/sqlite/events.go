package sqlite

import (
	"context"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

const (
	// qReserveEventSeqs takes the next n numbers of the workspace's event
	// sequence and returns the last of them.
	qReserveEventSeqs = `INSERT INTO event_sequences (workspace, last) VALUES (?, ?)
		ON CONFLICT (workspace) DO UPDATE SET last = last + excluded.last
		RETURNING last`
	// qInsertEvents is the multi-row insert of events (see multiRow).
	qInsertEvents = `INSERT INTO events (workspace, sequence, type, account, create_time, data) VALUES `
	// The filters are JSON arrays (empty: no filter), so that one prepared
	// statement serves every query.
	qListEvents = `SELECT sequence, type, COALESCE(account, ''), create_time, data FROM events
		WHERE workspace = ? AND sequence > ?
		  AND (?3 = '' OR account = ?3)
		  AND (json_array_length(?4) = 0 OR type IN (SELECT value FROM json_each(?4)))
		ORDER BY sequence LIMIT ?5`
	qLastEventSequence = `SELECT COALESCE((SELECT last FROM event_sequences WHERE workspace = ?), 0)`
)

// insertEvents numbers evs from the workspace's counter and inserts them.
// The batch holds the database's write lock: numbering is commit order.
func (t *writeTx) insertEvents(ctx context.Context, ws string, evs []ledger.Event) error {
	if len(evs) == 0 {
		return nil
	}
	var last int64
	err := t.one(ctx, qReserveEventSeqs, []any{ws, int64(len(evs))}, func(row scanner) error { return row.Scan(&last) })
	if err != nil {
		return mapErr(ctx, "reserve event numbers", err)
	}
	type numbered struct {
		seq int64
		ev  ledger.Event
	}
	items := make([]numbered, len(evs))
	for i, e := range evs {
		items[i] = numbered{last - int64(len(evs)) + 1 + int64(i), e}
	}
	err = execRows(ctx, &t.readTx, qInsertEvents, eventColumnCount, items, func(n numbered) ([]any, error) {
		data, err := ledger.EncodeEventData(n.ev)
		if err != nil {
			return nil, err
		}
		return []any{ws, n.seq, string(n.ev.Type), nullString(n.ev.Account), n.ev.CreateTime.UnixMicro(), data}, nil
	})
	return mapErr(ctx, "insert events", err)
}

// eventColumnCount is the number of columns qInsertEvents fills.
const eventColumnCount = 6

// ListEvents implements ledger.ReadTx.
func (t *readTx) ListEvents(ctx context.Context, q ledger.EventQuery) ([]ledger.Event, error) {
	tj, err := typesJSON(q.Types)
	if err != nil {
		return nil, ledger.InternalError(err)
	}
	var out []ledger.Event
	err = t.each(ctx, qListEvents, []any{q.Workspace, q.After, q.Account, tj, q.Limit}, func(row scanner) error {
		r := ledger.StoredEvent{Workspace: q.Workspace}
		var micros int64
		if err := row.Scan(&r.Sequence, &r.Type, &r.Account, &micros, &r.Data); err != nil {
			return err
		}
		r.CreateTime = time.UnixMicro(micros)
		e, err := ledger.DecodeEventData(r)
		out = append(out, e)
		return err
	})
	if err != nil {
		return nil, mapErr(ctx, "list events", err)
	}
	return out, nil
}

// LastEventSequence implements ledger.ReadTx.
func (t *readTx) LastEventSequence(ctx context.Context, workspace string) (int64, error) {
	var last int64
	if err := t.one(ctx, qLastEventSequence, []any{workspace}, func(row scanner) error { return row.Scan(&last) }); err != nil {
		return 0, mapErr(ctx, "last event sequence", err)
	}
	return last, nil
}

// TransactionsByID implements ledger.ReadTx.
func (t *readTx) TransactionsByID(ctx context.Context, workspace string, ids []string) ([]ledger.Transaction, error) {
	var out []ledger.Transaction
	err := t.eachIn(ctx, qTransactionsIn, workspace, ids, func(row scanner) error {
		tr, err := scanTransaction(row)
		out = append(out, tr)
		return err
	})
	if err != nil {
		return nil, mapErr(ctx, "read transactions", err)
	}
	return out, nil
}
