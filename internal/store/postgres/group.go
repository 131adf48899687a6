package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Group commit: concurrent Update calls queue for a few workers; a worker
// takes every call waiting (up to maxGroup) and applies their functions one
// after the other in one READ COMMITTED transaction, each inside its own
// savepoint, then commits once. Under load this turns many commits (and
// their WAL flushes) into one, and calls on a hot account chain their
// entries inside one transaction instead of queueing for its row lock.
//
// Each call keeps its own outcome:
//   - fn fails: its savepoint is rolled back (its writes and the locks it
//     took are gone) and the call gets fn's error; the others go on;
//   - fn fails with ErrConflict in a group of several: rolled back likewise,
//     then run again alone, in a transaction of its own, once the group is
//     done (the conflict may have come from sharing the group's locks);
//   - the commit fails, or the connection breaks: every call whose fn
//     succeeded gets the error (its writes are lost with the transaction);
//   - fn panics: rolled back likewise, and the panic is re-raised in the
//     caller's goroutine.
//
// Calls run in queue order, so a call sees the writes of the calls before it
// in its group, exactly as if they had committed just before. Statements of
// a group run with the group's context (see readTx.pinned): a caller whose
// context ends is noticed before its next statement, not during one.
const (
	// maxGroup bounds a group below PostgreSQL's per-backend cache of 64
	// subtransaction IDs; beyond it every snapshot in the cluster slows down.
	maxGroup = 32
	// groupTimeout bounds one group's transaction; it only ends a stuck one.
	groupTimeout = time.Minute
	savepoint    = `SAVEPOINT member`
	release      = `RELEASE SAVEPOINT member`
	rollbackTo   = `ROLLBACK TO SAVEPOINT member; RELEASE SAVEPOINT member`
)

// errRunAlone tells a caller to run its fn in a transaction of its own.
var errRunAlone = errors.New("postgres: run alone")

type grouper struct {
	s     *Store
	queue chan *member
	wg    sync.WaitGroup

	mu     sync.RWMutex // held (shared) while queueing; exclusively to close
	closed bool
}

// member is one queued Update call.
type member struct {
	ctx  context.Context
	fn   func(ctx context.Context, tx ledger.Tx) error
	done chan outcome // buffered: the worker never waits for the caller
	out  outcome
	ok   bool // fn succeeded; its writes await the group's commit
}

type outcome struct {
	err      error
	panicked bool
	panicVal any
}

// newGrouper starts one worker per pool connection but one, so that View
// calls and retried-alone calls still find a connection.
func newGrouper(s *Store, maxConns int) *grouper {
	workers := max(1, maxConns-1)
	g := &grouper{s: s, queue: make(chan *member, workers*maxGroup)}
	for i := 0; i < workers; i++ {
		g.wg.Add(1)
		go g.work()
	}
	return g
}

// update queues fn and waits for its outcome. It does not return before the
// outcome is known, even when ctx ends meanwhile (Update's contract).
func (g *grouper) update(ctx context.Context, fn func(ctx context.Context, tx ledger.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	m := &member{ctx: ctx, fn: fn, done: make(chan outcome, 1)}
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return ledger.UnavailableError(errors.New("postgres: the store is closed"))
	}
	select {
	case g.queue <- m:
		g.mu.RUnlock()
	case <-ctx.Done():
		g.mu.RUnlock()
		return fmt.Errorf("postgres: begin: %w", ctx.Err())
	}
	out := <-m.done
	if out.panicked {
		panic(out.panicVal)
	}
	if errors.Is(out.err, errRunAlone) {
		return g.s.updateAlone(ctx, fn)
	}
	return out.err
}

// close stops accepting calls, lets the workers finish the queued ones and
// waits for them.
func (g *grouper) close() {
	g.mu.Lock()
	if !g.closed {
		g.closed = true
		close(g.queue)
	}
	g.mu.Unlock()
	g.wg.Wait()
}

func (g *grouper) work() {
	defer g.wg.Done()
	for m := range g.queue {
		batch := []*member{m}
	fill:
		for len(batch) < maxGroup {
			select {
			case m, ok := <-g.queue:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		g.run(batch)
	}
}

// run applies a batch and delivers every outcome.
func (g *grouper) run(batch []*member) {
	live := batch[:0:0]
	for _, m := range batch {
		if err := m.ctx.Err(); err != nil {
			m.done <- outcome{err: fmt.Errorf("postgres: begin: %w", err)}
			continue
		}
		live = append(live, m)
	}
	switch len(live) {
	case 0:
		return
	case 1:
		// Alone: no savepoint, and the caller's own context.
		m := live[0]
		m.done <- call(m, func() error { return g.s.updateAlone(m.ctx, m.fn) })
		return
	}
	defer func() {
		for _, m := range live {
			m.done <- m.out
		}
	}()
	gctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	// lost gives err to every member whose fn succeeded: its writes are
	// gone with the transaction.
	lost := func(op string, err error) {
		merr := mapErr(gctx, op, err)
		if gctx.Err() != nil {
			merr = ledger.UnavailableError(fmt.Errorf("postgres: group commit: %s: %w", op, err))
		}
		for _, m := range live {
			if m.ok {
				m.out = outcome{err: merr}
			}
		}
	}
	tx, err := g.s.pool.BeginTx(gctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		for _, m := range live {
			m.ok = true
		}
		lost("begin", err)
		return
	}
	for i, m := range live {
		if err := g.apply(gctx, tx, m); err != nil {
			// The transaction is unusable. Members not started yet may
			// still run, alone.
			rollback(gctx, tx)
			lost("group commit", err)
			for _, rest := range live[i+1:] {
				rest.out = outcome{err: errRunAlone}
			}
			return
		}
	}
	if err := tx.Commit(gctx); err != nil {
		lost("commit", err)
	}
}

// apply runs one member's fn inside a savepoint and records its outcome
// (m.ok when fn succeeded and its writes await the commit). It returns an
// error only when the transaction itself is broken.
func (g *grouper) apply(gctx context.Context, tx pgx.Tx, m *member) error {
	if _, err := tx.Exec(gctx, savepoint); err != nil {
		m.out = outcome{err: errRunAlone} // fn did not run
		return err
	}
	m.out = call(m, func() error { return m.fn(m.ctx, &writeTx{readTx{tx: tx, pinned: gctx}}) })
	if m.out.err == nil && !m.out.panicked {
		_, err := tx.Exec(gctx, release)
		if err == nil {
			m.ok = true
			return nil
		}
		if _, err := tx.Exec(gctx, rollbackTo); err != nil {
			m.ok = true // lost with the transaction; run reports why
			return err
		}
		// fn swallowed a failed statement: its savepoint cannot be released.
		m.out.err = fmt.Errorf("postgres: fn returned nil after a failed statement: %w", err)
		return nil
	}
	if !m.out.panicked && gctx.Err() != nil {
		// The group's own deadline ended fn's statement, not the caller's.
		m.out.err = ledger.UnavailableError(fmt.Errorf("postgres: group commit: %w", m.out.err))
	}
	if _, err := tx.Exec(gctx, rollbackTo); err != nil {
		return err
	}
	if errors.Is(m.out.err, ledger.ErrConflict) {
		m.out.err = errRunAlone
	}
	return nil
}

// call runs fn, catching a panic to re-raise it in the caller's goroutine.
func call(m *member, fn func() error) (out outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = outcome{panicked: true, panicVal: p}
		}
	}()
	return outcome{err: fn()}
}
