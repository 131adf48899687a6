package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

const (
	// qLastEventSequence is the workspace's last event sequence (0 before
	// its first event): that of its last row of events, found by the
	// primary key. Under the database's write lock, a batch numbers its
	// events from it (migration 0011).
	qLastEventSequence = `SELECT COALESCE(MAX(last_sequence), 0) FROM event_batches WHERE workspace = ?`
	// qInsertEvents inserts a batch's events, as one row (migration 0011).
	qInsertEvents = `INSERT INTO event_batches (workspace, last_sequence, first_sequence, events) VALUES (?, ?, ?, ?)`
	// qListEventBatches reads the rows that hold the events after ?2, in
	// order: each holds one event at least.
	qListEventBatches = `SELECT first_sequence, events FROM event_batches
		WHERE workspace = ? AND last_sequence > ?
		ORDER BY last_sequence LIMIT ?`
)

// insertEvents numbers evs on from the workspace's last event and inserts them.
// The batch holds the database's write lock: numbering is commit order.
func (t *writeTx) insertEvents(ctx context.Context, ws string, evs []ledger.Event) error {
	if len(evs) == 0 {
		return nil
	}
	var last int64
	err := t.one(ctx, qLastEventSequence, []any{ws}, func(row scanner) error { return row.Scan(&last) })
	if err != nil {
		return mapErr(ctx, "number events", err)
	}
	last += int64(len(evs))
	row, err := encodeEventBatch(evs)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, qInsertEvents, ws, last, last-int64(len(evs))+1, row)
	return mapErr(ctx, "insert events", err)
}

// encodeEventBatch is the events column of a batch's row (migration 0011).
func encodeEventBatch(evs []ledger.Event) ([]byte, error) {
	buf := make([]byte, 0, 96*len(evs))
	buf = append(buf, '[')
	for i, e := range evs {
		data, err := ledger.EncodeEventData(e)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '[')
		buf = appendJSONString(buf, string(e.Type))
		buf = append(buf, ',')
		buf = appendJSONString(buf, e.Account)
		buf = append(buf, ',')
		buf = strconv.AppendInt(buf, e.CreateTime.UnixMicro(), 10)
		buf = append(buf, ',')
		buf = append(buf, data...)
		buf = append(buf, ']')
	}
	return append(buf, ']'), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			q, _ := json.Marshal(s) // a string always encodes
			return append(buf, q...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// storedEvent is one element of a batch's events column.
type storedEvent struct {
	Type    string
	Account string
	Micros  int64
	Data    json.RawMessage
}

// UnmarshalJSON reads the element's array form.
func (e *storedEvent) UnmarshalJSON(b []byte) error {
	return json.Unmarshal(b, &[]any{&e.Type, &e.Account, &e.Micros, &e.Data})
}

// ListEvents implements ledger.ReadTx. It reads the rows of batches in
// pages of q.Limit, enough for q.Limit events when nothing is filtered
// out, and more pages while filters leave the page short.
func (t *readTx) ListEvents(ctx context.Context, q ledger.EventQuery) ([]ledger.Event, error) {
	page := ledger.NewEventPage(q)
	for !page.Full() {
		n := 0
		err := t.each(ctx, qListEventBatches, []any{q.Workspace, page.After, q.Limit}, func(row scanner) error {
			n++
			var first int64
			var raw []byte
			if err := row.Scan(&first, &raw); err != nil {
				return err
			}
			var batch []storedEvent
			if err := json.Unmarshal(raw, &batch); err != nil {
				return fmt.Errorf("the batch from event %d: %w", first, err)
			}
			for i, se := range batch {
				err := page.Add(ledger.StoredEvent{
					Workspace: q.Workspace, Sequence: first + int64(i), Type: se.Type, Account: se.Account,
					CreateTime: time.UnixMicro(se.Micros), Data: se.Data,
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
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
