package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/creditledger/creditledger/internal/ledger"
)

var _ ledger.WebhookStore = (*Store)(nil)

const endpointColumns = `workspace, id, url, event_types, description, secret, enabled, disabled_reason,
	delivered_sequence, attempts, first_failure_time, next_attempt_time, lease_owner, lease_until, create_time, update_time`

const (
	qInsertEndpoint = `INSERT INTO webhook_endpoints (workspace, id, url, event_types, description, secret, enabled,
			delivered_sequence, next_attempt_time, create_time, update_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7,
			COALESCE((SELECT last FROM event_sequences WHERE workspace = $1), 0), $8, $9, $10)
		RETURNING ` + endpointColumns
	qRegisterWebhookWorkspace = `INSERT INTO webhook_workspaces (workspace) VALUES ($1) ON CONFLICT DO NOTHING`
	qWebhookWorkspaces        = `SELECT workspace FROM webhook_workspaces ORDER BY workspace`
	qEndpoint                 = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE workspace = $1 AND id = $2`
	qLockEndpoint             = qEndpoint + ` FOR UPDATE`
	qListEndpoints            = `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE workspace = $1 ORDER BY create_time, id`
	qUpdateEndpoint           = `UPDATE webhook_endpoints SET url = $3, event_types = $4, description = $5, enabled = $6,
			disabled_reason = $7, attempts = $8, first_failure_time = $9, next_attempt_time = $10, update_time = $11
		WHERE workspace = $1 AND id = $2
		RETURNING ` + endpointColumns
	qDeleteDeliveries = `DELETE FROM webhook_deliveries WHERE workspace = $1 AND endpoint_id = $2`
	qDeleteEndpoint   = `DELETE FROM webhook_endpoints WHERE workspace = $1 AND id = $2`
	// Due endpoints, each taken by one worker: those another worker's
	// transaction holds are skipped, and a lease keeps them apart after.
	qLeaseEndpoints = `UPDATE webhook_endpoints e SET lease_owner = $2, lease_until = $3
		FROM (SELECT id FROM webhook_endpoints
			WHERE workspace = $1 AND enabled AND next_attempt_time <= $4 AND (lease_until IS NULL OR lease_until <= $4)
			ORDER BY next_attempt_time, id LIMIT $5 FOR UPDATE SKIP LOCKED) due
		WHERE e.workspace = $1 AND e.id = due.id
		RETURNING ` + "e.workspace, e.id, e.url, e.event_types, e.description, e.secret, e.enabled, e.disabled_reason, " +
		"e.delivered_sequence, e.attempts, e.first_failure_time, e.next_attempt_time, e.lease_owner, e.lease_until, e.create_time, e.update_time"
	qInsertDelivery = `INSERT INTO webhook_deliveries (workspace, endpoint_id, event_sequence, attempt, event_type,
			attempt_time, status_code, latency_micros, succeeded, error)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT DO NOTHING`
	// The attempt's outcome, only while the worker still holds the lease.
	qRecordOutcome = `UPDATE webhook_endpoints SET delivered_sequence = GREATEST(delivered_sequence, $4), attempts = $5,
			first_failure_time = $6, next_attempt_time = $7,
			enabled = enabled AND $8 = '', disabled_reason = CASE WHEN $8 = '' THEN disabled_reason ELSE $8 END,
			lease_owner = CASE WHEN $9::timestamptz IS NULL THEN NULL ELSE lease_owner END, lease_until = $9,
			update_time = CASE WHEN $8 = '' THEN update_time ELSE $7 END
		WHERE workspace = $1 AND id = $2 AND lease_owner = $3`
	qReleaseLease = `UPDATE webhook_endpoints SET lease_owner = NULL, lease_until = NULL, next_attempt_time = $4,
			delivered_sequence = GREATEST(delivered_sequence, $5)
		WHERE workspace = $1 AND id = $2 AND lease_owner = $3`
	qDeliveries = `SELECT workspace, endpoint_id, event_sequence, attempt, event_type, attempt_time, status_code,
			latency_micros, succeeded, error
		FROM webhook_deliveries WHERE workspace = $1 AND endpoint_id = $2 AND (event_sequence, attempt) < ($3, $4)
		ORDER BY event_sequence DESC, attempt DESC LIMIT $5`
)

func scanEndpoint(row pgx.Row) (ledger.WebhookEndpoint, error) {
	var e ledger.WebhookEndpoint
	var types []string
	var ff, lease, next, created, updated pgtype.Timestamptz
	var owner *string
	if err := row.Scan(&e.Workspace, &e.ID, &e.URL, &types, &e.Description, &e.Secret, &e.Enabled, &e.DisabledReason,
		&e.DeliveredSequence, &e.Attempts, &ff, &next, &owner, &lease, &created, &updated); err != nil {
		return ledger.WebhookEndpoint{}, err
	}
	for _, t := range types {
		e.EventTypes = append(e.EventTypes, ledger.EventType(t))
	}
	if owner != nil {
		e.LeaseOwner = *owner
	}
	e.FirstFailure, e.NextAttempt, e.LeaseUntil = fromTime(ff), fromTime(next), fromTime(lease)
	e.CreateTime, e.UpdateTime = fromTime(created), fromTime(updated)
	return e, nil
}

func typeStrings(ts []ledger.EventType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = string(t)
	}
	return out
}

// inWorkspace runs fn in a read-write transaction set to workspace ws
// (row-level security, migration 0004).
func (s *Store) inWorkspace(ctx context.Context, ws, op string, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr(ctx, op, err)
	}
	defer rollback(ctx, tx)
	if _, err := tx.Exec(ctx, qSetWorkspace, ws); err != nil {
		return mapErr(ctx, op, err)
	}
	if err := fn(tx); err != nil {
		var le *ledger.Error
		if errors.As(err, &le) || errors.Is(err, ledger.ErrLeaseLost) {
			return err
		}
		return mapErr(ctx, op, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr(ctx, op, err)
	}
	return nil
}

// CreateWebhookEndpoint implements ledger.WebhookStore.
func (s *Store) CreateWebhookEndpoint(ctx context.Context, e ledger.WebhookEndpoint) (ledger.WebhookEndpoint, error) {
	var out ledger.WebhookEndpoint
	err := s.inWorkspace(ctx, e.Workspace, "create webhook endpoint", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qRegisterWebhookWorkspace, e.Workspace); err != nil {
			return err
		}
		var err error
		out, err = scanEndpoint(tx.QueryRow(ctx, qInsertEndpoint, e.Workspace, e.ID, e.URL, typeStrings(e.EventTypes),
			e.Description, e.Secret, e.Enabled, e.NextAttempt.UTC(), e.CreateTime.UTC(), e.UpdateTime.UTC()))
		return err
	})
	return out, err
}

func notFoundEndpoint(err error, id string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.NotFoundError("webhook endpoint", id)
	}
	return err
}

// WebhookEndpoint implements ledger.WebhookStore.
func (s *Store) WebhookEndpoint(ctx context.Context, ws, id string) (ledger.WebhookEndpoint, error) {
	var out ledger.WebhookEndpoint
	err := s.inWorkspace(ctx, ws, "read webhook endpoint", func(tx pgx.Tx) error {
		var err error
		out, err = scanEndpoint(tx.QueryRow(ctx, qEndpoint, ws, id))
		return notFoundEndpoint(err, id)
	})
	return out, err
}

// ListWebhookEndpoints implements ledger.WebhookStore.
func (s *Store) ListWebhookEndpoints(ctx context.Context, ws string) ([]ledger.WebhookEndpoint, error) {
	var out []ledger.WebhookEndpoint
	err := s.inWorkspace(ctx, ws, "list webhook endpoints", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, qListEndpoints, ws)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.WebhookEndpoint, error) { return scanEndpoint(r) })
		return err
	})
	return out, err
}

// UpdateWebhookEndpoint implements ledger.WebhookStore.
func (s *Store) UpdateWebhookEndpoint(ctx context.Context, ws, id string, fn func(*ledger.WebhookEndpoint) error) (ledger.WebhookEndpoint, error) {
	var out ledger.WebhookEndpoint
	err := s.inWorkspace(ctx, ws, "update webhook endpoint", func(tx pgx.Tx) error {
		e, err := scanEndpoint(tx.QueryRow(ctx, qLockEndpoint, ws, id))
		if err != nil {
			return notFoundEndpoint(err, id)
		}
		if err := fn(&e); err != nil {
			return err
		}
		out, err = scanEndpoint(tx.QueryRow(ctx, qUpdateEndpoint, ws, id, e.URL, typeStrings(e.EventTypes), e.Description,
			e.Enabled, e.DisabledReason, e.Attempts, toTime(e.FirstFailure), e.NextAttempt.UTC(), e.UpdateTime.UTC()))
		return err
	})
	return out, err
}

// DeleteWebhookEndpoint implements ledger.WebhookStore.
func (s *Store) DeleteWebhookEndpoint(ctx context.Context, ws, id string) error {
	return s.inWorkspace(ctx, ws, "delete webhook endpoint", func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qDeleteDeliveries, ws, id); err != nil {
			return err
		}
		ct, err := tx.Exec(ctx, qDeleteEndpoint, ws, id)
		if err == nil && ct.RowsAffected() == 0 {
			return ledger.NotFoundError("webhook endpoint", id)
		}
		return err
	})
}

// LeaseWebhookEndpoints implements ledger.WebhookStore.
func (s *Store) LeaseWebhookEndpoints(ctx context.Context, ws, owner string, now, until time.Time, limit int) ([]ledger.WebhookEndpoint, error) {
	var out []ledger.WebhookEndpoint
	err := s.inWorkspace(ctx, ws, "lease webhook endpoints", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, qLeaseEndpoints, ws, owner, until.UTC(), now.UTC(), limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.WebhookEndpoint, error) { return scanEndpoint(r) })
		return err
	})
	return out, err
}

// RecordWebhookAttempt implements ledger.WebhookStore.
func (s *Store) RecordWebhookAttempt(ctx context.Context, owner string, d ledger.WebhookDelivery, o ledger.WebhookOutcome, leaseUntil time.Time) error {
	return s.inWorkspace(ctx, d.Workspace, "record webhook attempt", func(tx pgx.Tx) error {
		ct, err := tx.Exec(ctx, qRecordOutcome, d.Workspace, d.EndpointID, owner, o.DeliveredSequence, o.Attempts,
			toTime(o.FirstFailure), o.NextAttempt.UTC(), o.Disable, toTime(leaseUntil))
		if err != nil {
			return err
		}
		if ct.RowsAffected() != 1 {
			return ledger.ErrLeaseLost
		}
		if _, err := tx.Exec(ctx, qInsertDelivery, d.Workspace, d.EndpointID, d.EventSequence, d.Attempt, string(d.EventType),
			d.AttemptTime.UTC(), d.StatusCode, d.Latency.Microseconds(), d.Succeeded, d.Error); err != nil {
			return err
		}
		if o.Event != nil {
			b := &pgx.Batch{}
			if err := queueEvents(b, d.Workspace, []ledger.Event{*o.Event}); err != nil {
				return err
			}
			return tx.SendBatch(ctx, b).Close()
		}
		return nil
	})
}

// ReleaseWebhookLease implements ledger.WebhookStore.
func (s *Store) ReleaseWebhookLease(ctx context.Context, ws, id, owner string, next time.Time, skipped int64) error {
	return s.inWorkspace(ctx, ws, "release webhook lease", func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, qReleaseLease, ws, id, owner, next.UTC(), skipped)
		return err
	})
}

// ListWebhookDeliveries implements ledger.WebhookStore.
func (s *Store) ListWebhookDeliveries(ctx context.Context, ws, id string, before *ledger.WebhookDelivery, limit int) ([]ledger.WebhookDelivery, error) {
	seq, attempt := int64(1<<62), 0
	if before != nil {
		seq, attempt = before.EventSequence, before.Attempt
	}
	var out []ledger.WebhookDelivery
	err := s.inWorkspace(ctx, ws, "list webhook deliveries", func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, qDeliveries, ws, id, seq, attempt, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.WebhookDelivery, error) {
			var d ledger.WebhookDelivery
			var typ string
			var at pgtype.Timestamptz
			var micros int64
			err := r.Scan(&d.Workspace, &d.EndpointID, &d.EventSequence, &d.Attempt, &typ, &at, &d.StatusCode, &micros, &d.Succeeded, &d.Error)
			d.EventType, d.AttemptTime, d.Latency = ledger.EventType(typ), fromTime(at), time.Duration(micros)*time.Microsecond
			return d, err
		})
		return err
	})
	return out, err
}

// WebhookWorkspaces implements ledger.WebhookStore.
func (s *Store) WebhookWorkspaces(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, qWebhookWorkspaces)
	if err != nil {
		return nil, mapErr(ctx, "list webhook workspaces", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, mapErr(ctx, "list webhook workspaces", err)
	}
	return out, nil
}
