package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

var _ ledger.WebhookStore = (*Store)(nil)

const endpointColumns = `workspace, id, url, event_types, description, secret, enabled, disabled_reason,
	delivered_sequence, attempts, first_failure_time, next_attempt_time, lease_owner, lease_until, create_time, update_time`

const (
	qWInsertEndpoint = `INSERT INTO webhook_endpoints (workspace, id, url, event_types, description, secret, enabled,
			delivered_sequence, next_attempt_time, create_time, update_time)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, (SELECT COALESCE(MAX(last_sequence), 0) FROM event_batches WHERE workspace = ?1), ?8, ?9, ?10)`
	qWEndpoint       = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE workspace = ? AND id = ?`
	qWListEndpoints  = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE workspace = ? ORDER BY create_time, id`
	qWUpdateEndpoint = `UPDATE webhook_endpoints SET url = ?3, event_types = ?4, description = ?5, enabled = ?6,
			disabled_reason = ?7, attempts = ?8, first_failure_time = ?9, next_attempt_time = ?10, update_time = ?11
		WHERE workspace = ?1 AND id = ?2`
	qWDueEndpoints = `SELECT ` + endpointColumns + ` FROM webhook_endpoints
		WHERE workspace = ?1 AND enabled = 1 AND next_attempt_time <= ?2 AND (lease_until IS NULL OR lease_until <= ?2)
		ORDER BY next_attempt_time, id LIMIT ?3`
	qWLease         = `UPDATE webhook_endpoints SET lease_owner = ?3, lease_until = ?4 WHERE workspace = ?1 AND id = ?2`
	qWRecordOutcome = `UPDATE webhook_endpoints SET delivered_sequence = MAX(delivered_sequence, ?4), attempts = ?5,
			first_failure_time = ?6, next_attempt_time = ?7,
			enabled = CASE WHEN ?8 = '' THEN enabled ELSE 0 END,
			disabled_reason = CASE WHEN ?8 = '' THEN disabled_reason ELSE ?8 END,
			update_time = CASE WHEN ?8 = '' THEN update_time ELSE ?7 END,
			lease_owner = CASE WHEN ?9 IS NULL THEN NULL ELSE lease_owner END, lease_until = ?9
		WHERE workspace = ?1 AND id = ?2 AND lease_owner = ?3`
	qWInsertDelivery = `INSERT OR IGNORE INTO webhook_deliveries (workspace, endpoint_id, event_sequence, attempt, event_type,
			attempt_time, status_code, latency_micros, succeeded, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qWRelease = `UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL, next_attempt_time = ?4,
			delivered_sequence = MAX(delivered_sequence, ?5)
		WHERE workspace = ?1 AND id = ?2 AND lease_owner = ?3`
	qWDeliveries = `SELECT workspace, endpoint_id, event_sequence, attempt, event_type, attempt_time, status_code,
			latency_micros, succeeded, error
		FROM webhook_deliveries WHERE workspace = ?1 AND endpoint_id = ?2
		  AND (event_sequence < ?3 OR (event_sequence = ?3 AND attempt < ?4))
		ORDER BY event_sequence DESC, attempt DESC LIMIT ?5`
)

func scanEndpoint(row scanner) (ledger.WebhookEndpoint, error) {
	var e ledger.WebhookEndpoint
	var types string
	var ff, lease sql.NullInt64
	var next, created, updated int64
	var owner sql.NullString
	if err := row.Scan(&e.Workspace, &e.ID, &e.URL, &types, &e.Description, &e.Secret, &e.Enabled, &e.DisabledReason,
		&e.DeliveredSequence, &e.Attempts, &ff, &next, &owner, &lease, &created, &updated); err != nil {
		return ledger.WebhookEndpoint{}, err
	}
	if err := json.Unmarshal([]byte(types), &e.EventTypes); err != nil {
		return ledger.WebhookEndpoint{}, err
	}
	e.LeaseOwner = owner.String
	e.FirstFailure, e.LeaseUntil = fromMicros(ff), fromMicros(lease)
	e.NextAttempt, e.CreateTime, e.UpdateTime = time.UnixMicro(next).UTC(), time.UnixMicro(created).UTC(), time.UnixMicro(updated).UTC()
	return e, nil
}

func typesJSON(ts []ledger.EventType) (string, error) {
	if ts == nil {
		ts = []ledger.EventType{}
	}
	b, err := json.Marshal(ts)
	return string(b), err
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE) of the writer.
func (s *Store) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(ctx, op, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		var le *ledger.Error
		if errors.As(err, &le) || errors.Is(err, ledger.ErrLeaseLost) {
			return err
		}
		return mapErr(ctx, op, err)
	}
	return mapErr(ctx, op, tx.Commit())
}

func endpointNotFound(err error, id string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.NotFoundError("webhook endpoint", id)
	}
	return err
}

// CreateWebhookEndpoint implements ledger.WebhookStore.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e ledger.WebhookEndpoint) (ledger.WebhookEndpoint, error) {
	var out ledger.WebhookEndpoint
	err := s.inTx(ctx, "create webhook endpoint", func(tx *sql.Tx) error {
		types, err := typesJSON(e.EventTypes)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, qWInsertEndpoint, e.Workspace, e.ID, e.URL, types, e.Description, e.Secret, e.Enabled,
			e.NextAttempt.UnixMicro(), e.CreateTime.UnixMicro(), e.UpdateTime.UnixMicro()); err != nil {
			return err
		}
		out, err = scanEndpoint(tx.QueryRowContext(ctx, qWEndpoint, e.Workspace, e.ID))
		return err
	})
	return out, err
}

// WebhookEndpoint implements ledger.WebhookStore.
func (s *Store) WebhookEndpoint(ctx context.Context, ws, id string) (ledger.WebhookEndpoint, error) {
	e, err := scanEndpoint(s.r.QueryRowContext(ctx, qWEndpoint, ws, id))
	if err != nil {
		return ledger.WebhookEndpoint{}, mapErr(ctx, "read webhook endpoint", endpointNotFound(err, id))
	}
	return e, nil
}

func (s *Store) endpoints(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any,
) ([]ledger.WebhookEndpoint, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []ledger.WebhookEndpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// ListWebhookEndpoints implements ledger.WebhookStore.
func (s *Store) ListWebhookEndpoints(ctx context.Context, ws string) ([]ledger.WebhookEndpoint, error) {
	out, err := s.endpoints(ctx, s.r, qWListEndpoints, ws)
	return out, mapErr(ctx, "list webhook endpoints", err)
}

// UpdateWebhookEndpoint implements ledger.WebhookStore.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, ws, id string, fn func(*ledger.WebhookEndpoint) error) (ledger.WebhookEndpoint, error) {
	var out ledger.WebhookEndpoint
	err := s.inTx(ctx, "update webhook endpoint", func(tx *sql.Tx) error {
		e, err := scanEndpoint(tx.QueryRowContext(ctx, qWEndpoint, ws, id))
		if err != nil {
			return endpointNotFound(err, id)
		}
		if err := fn(&e); err != nil {
			return err
		}
		types, err := typesJSON(e.EventTypes)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, qWUpdateEndpoint, ws, id, e.URL, types, e.Description, e.Enabled, e.DisabledReason,
			e.Attempts, toMicros(e.FirstFailure), e.NextAttempt.UnixMicro(), e.UpdateTime.UnixMicro()); err != nil {
			return err
		}
		out, err = scanEndpoint(tx.QueryRowContext(ctx, qWEndpoint, ws, id))
		return err
	})
	return out, err
}

// DeleteWebhookEndpoint implements ledger.WebhookStore.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, ws, id string) error {
	return s.inTx(ctx, "delete webhook endpoint", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE workspace = ? AND endpoint_id = ?`, ws, id); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE workspace = ? AND id = ?`, ws, id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return ledger.NotFoundError("webhook endpoint", id)
		}
		return nil
	})
}

// LeaseWebhookEndpoints implements ledger.WebhookStore.
func (s *Store) LeaseWebhookEndpoints(ctx context.Context, ws, owner string, now, until time.Time, limit int) ([]ledger.WebhookEndpoint, error) {
	var out []ledger.WebhookEndpoint
	err := s.inTx(ctx, "lease webhook endpoints", func(tx *sql.Tx) error {
		due, err := s.endpoints(ctx, tx, qWDueEndpoints, ws, now.UnixMicro(), limit)
		if err != nil {
			return err
		}
		for _, e := range due {
			if _, err := tx.ExecContext(ctx, qWLease, ws, e.ID, owner, until.UnixMicro()); err != nil {
				return err
			}
			e.LeaseOwner, e.LeaseUntil = owner, until.UTC()
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// RecordWebhookAttempt implements ledger.WebhookStore.
func (s *Store) RecordWebhookAttempt(ctx context.Context, owner string, d ledger.WebhookDelivery, o ledger.WebhookOutcome, leaseUntil time.Time) error {
	return s.inTx(ctx, "record webhook attempt", func(stx *sql.Tx) error {
		res, err := stx.ExecContext(ctx, qWRecordOutcome, d.Workspace, d.EndpointID, owner, o.DeliveredSequence, o.Attempts,
			toMicros(o.FirstFailure), o.NextAttempt.UnixMicro(), o.Disable, toMicros(leaseUntil))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return ledger.ErrLeaseLost
		}
		if _, err := stx.ExecContext(ctx, qWInsertDelivery, d.Workspace, d.EndpointID, d.EventSequence, d.Attempt, string(d.EventType),
			d.AttemptTime.UnixMicro(), d.StatusCode, d.Latency.Microseconds(), d.Succeeded, d.Error); err != nil {
			return err
		}
		if o.Event != nil {
			t := &writeTx{readTx{tx: stx, stmts: s.ws}}
			return t.insertEvents(ctx, d.Workspace, []ledger.Event{*o.Event})
		}
		return nil
	})
}

// ReleaseWebhookLease implements ledger.WebhookStore.
func (s *Store) ReleaseWebhookLease(ctx context.Context, ws, id, owner string, next time.Time, skipped int64) error {
	return s.inTx(ctx, "release webhook lease", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, qWRelease, ws, id, owner, next.UnixMicro(), skipped)
		return err
	})
}

// ListWebhookDeliveries implements ledger.WebhookStore.
func (s *Store) ListWebhookDeliveries(ctx context.Context, ws, id string, before *ledger.WebhookDelivery, limit int) ([]ledger.WebhookDelivery, error) {
	seq, attempt := int64(1<<62), 0
	if before != nil {
		seq, attempt = before.EventSequence, before.Attempt
	}
	rows, err := s.r.QueryContext(ctx, qWDeliveries, ws, id, seq, attempt, limit)
	if err != nil {
		return nil, mapErr(ctx, "list webhook deliveries", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ledger.WebhookDelivery
	for rows.Next() {
		var d ledger.WebhookDelivery
		var typ string
		var at, micros int64
		if err := rows.Scan(&d.Workspace, &d.EndpointID, &d.EventSequence, &d.Attempt, &typ, &at, &d.StatusCode, &micros, &d.Succeeded, &d.Error); err != nil {
			return nil, mapErr(ctx, "list webhook deliveries", err)
		}
		d.EventType, d.AttemptTime, d.Latency = ledger.EventType(typ), time.UnixMicro(at).UTC(), time.Duration(micros)*time.Microsecond
		out = append(out, d)
	}
	return out, mapErr(ctx, "list webhook deliveries", rows.Err())
}

// WebhookWorkspaces implements ledger.WebhookStore.
func (s *Store) WebhookWorkspaces(ctx context.Context) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT DISTINCT workspace FROM webhook_endpoints ORDER BY workspace`)
	if err != nil {
		return nil, mapErr(ctx, "list webhook workspaces", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var ws string
		if err := rows.Scan(&ws); err != nil {
			return nil, mapErr(ctx, "list webhook workspaces", err)
		}
		out = append(out, ws)
	}
	return out, mapErr(ctx, "list webhook workspaces", rows.Err())
}
