package ledger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// The write path. Every write (Credit, Debit, SubmitRequest, DecideRequest,
// settings, packages, rates) is an op queued on its workspace. A workspace
// runs up to BatchOptions.PerWorkspace batches at once; a batch takes every
// op waiting (up to MaxOps) and is applied with one Store.Write: the store
// reads and locks what the batch names, the ops are decided here, in arrival
// order, against that state, and every effect is committed once.
//
// A lone op does not wait for company: a batch starts as soon as an op
// arrives and a slot of its workspace is free, and takes whatever is queued
// at that moment. Under load, ops queue while the slots are busy, so batches
// grow with the load, with no timer.
//
// Outcomes are truthful: an op's outcome (posted, replayed or refused) is
// delivered only after its batch committed. If the commit fails or its
// outcome is unknown, every op of the batch is answered UNAVAILABLE, and its
// idempotency key resolves it on retry. A batch refused by the database for
// a conflict (another replica won a key or an account) is decided again from
// fresh state; a batch refused for any other reason is split, so that one
// bad op cannot fail the others.

// BatchOptions tunes the write path; zero fields take the defaults.
type BatchOptions struct {
	// MaxOps bounds the ops of one batch. Default 256.
	MaxOps int
	// PerWorkspace bounds the batches of one workspace in flight at once
	// in this process (they serialise on the database's row locks where
	// they touch the same rows). Default 2.
	PerWorkspace int
	// MaxInFlight bounds the batches in flight in this process across
	// workspaces; set it to the store's connection count. Default 8.
	MaxInFlight int
	// Timeout bounds one batch's database transaction. Default 15s.
	Timeout time.Duration
	// Attempts bounds how often a batch is decided again after conflicts.
	// Default 8.
	Attempts int
	// MinCompany is the fewest queued ops that start a batch beside the
	// workspace's running ones (a workspace with none running starts one
	// for a single op); see wsQueue.company. Default 32.
	MinCompany int
}

func (o BatchOptions) withDefaults() BatchOptions {
	if o.MaxOps <= 0 {
		o.MaxOps = 256
	}
	if o.PerWorkspace <= 0 {
		o.PerWorkspace = 2
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 8
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 8
	}
	if o.MinCompany <= 0 {
		o.MinCompany = 32
	}
	return o
}

// WithBatching tunes the write path.
func WithBatching(o BatchOptions) Option { return func(s *Service) { s.batchOpts = o } }

// op is one queued write.
type op interface {
	base() *opBase
	// need adds what the op reads to the batch's write set.
	need(w *setBuilder)
	// apply decides the op against the batch's state, records its outcome
	// in the op and its effects in b. It is called once per attempt, so it
	// overwrites any earlier outcome.
	apply(b *batchState)
	// report tells the observer about the delivered outcome.
	report(obs Observer)
}

// opBase is what every op shares.
type opBase struct {
	operation Operation // "" for settings, packages and rates
	workspace string
	key       string // idempotency key; "" when the op has none
	err       error  // the outcome when refused or failed
	done      chan struct{}
	withdrawn bool // the caller left before the op was taken (guarded by batcher.mu)
	taken     bool // the op is in a batch (guarded by batcher.mu)
}

func (o *opBase) base() *opBase { return o }

// batcher queues ops per workspace and runs their batches.
type batcher struct {
	s    *Service
	opts BatchOptions
	sem  chan struct{} // MaxInFlight slots

	mu     sync.Mutex
	queues map[string]*wsQueue
}

// wsQueue is one workspace's waiting ops and running batches.
type wsQueue struct {
	ws      string
	pending []op
	running int
	keys    map[string]int // idempotency keys of ops in running batches
	inBatch int            // ops in running batches
	batches int            // batches running (running counts runners)
}

// company is how many queued ops it takes to start a batch beside running
// ones: as many as a running batch carries on average, and at least floor.
// Under steady load the workspace's batches then stay about the same size
// instead of alternating between a full one and a small one that pays for
// a commit of its own; when the load falls, a running batch's runner takes
// what is left, whatever its size.
func (q *wsQueue) company(floor int) int {
	if q.batches == 0 {
		return floor
	}
	return max(floor, q.inBatch/q.batches)
}

func newBatcher(s *Service, o BatchOptions) *batcher {
	o = o.withDefaults()
	return &batcher{s: s, opts: o, sem: make(chan struct{}, o.MaxInFlight), queues: map[string]*wsQueue{}}
}

// do queues o and waits for its outcome. If ctx ends before the op was
// taken into a batch, it is withdrawn; if it ends later, do returns at once
// and the outcome stays with the database (the idempotency key finds it).
func (b *batcher) do(ctx context.Context, o op) error {
	ob := o.base()
	if err := ctx.Err(); err != nil {
		return err
	}
	ob.done = make(chan struct{})
	b.mu.Lock()
	q := b.queues[ob.workspace]
	if q == nil {
		q = &wsQueue{ws: ob.workspace, keys: map[string]int{}}
		b.queues[ob.workspace] = q
	}
	q.pending = append(q.pending, o)
	b.s.obs.Waiting(1)
	// The first batch of an idle workspace starts at once; another one
	// starts beside running batches only with company enough to be worth
	// a commit of its own (the queue is otherwise taken by the running
	// batch's runner when it is done).
	start := q.running == 0 || (q.running < b.opts.PerWorkspace && len(q.pending) >= q.company(b.opts.MinCompany))
	if start {
		q.running++
	}
	b.mu.Unlock()
	if start {
		go b.run(q)
	}
	select {
	case <-ob.done:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-ob.done:
			b.mu.Unlock()
			return nil
		default:
		}
		if ob.taken {
			// Its batch decides it; the outcome stays with the database.
			b.mu.Unlock()
			return ctx.Err()
		}
		ob.withdrawn = true
		b.mu.Unlock()
		b.s.obs.Waiting(-1)
		return ctx.Err()
	}
}

// run takes batches from q until it is empty.
func (b *batcher) run(q *wsQueue) {
	for {
		batch := b.take(q)
		if batch == nil {
			return
		}
		b.sem <- struct{}{}
		b.apply(q.ws, batch)
		<-b.sem
		b.mu.Lock()
		q.inBatch -= len(batch)
		q.batches--
		for _, o := range batch {
			if k := o.base().key; k != "" {
				if q.keys[k]--; q.keys[k] == 0 {
					delete(q.keys, k)
				}
			}
		}
		b.mu.Unlock()
		for _, o := range batch {
			close(o.base().done)
		}
	}
}

// take removes the next batch from q, or ends q's runner (nil) when no op
// is waiting. An op whose idempotency key is in a running batch stays
// queued (with every later op of that key) until that batch is done, so
// that one key is never decided by two batches at once.
func (b *batcher) take(q *wsQueue) []op {
	b.mu.Lock()
	defer b.mu.Unlock()
	if q.running > 1 && len(q.pending) < q.company(b.opts.MinCompany) {
		// Another runner is busy and will take these when it is done.
		q.running--
		return nil
	}
	var batch, keep []op
	for i, o := range q.pending {
		ob := o.base()
		if ob.withdrawn {
			continue // counted out when withdrawn
		}
		if len(batch) >= b.opts.MaxOps {
			keep = append(keep, q.pending[i:]...)
			break
		}
		if ob.key != "" && q.keys[ob.key] > 0 {
			keep = append(keep, o)
			continue
		}
		batch = append(batch, o)
	}
	q.pending = keep
	if len(batch) == 0 {
		q.running--
		if q.running == 0 && len(q.pending) == 0 {
			delete(b.queues, q.ws)
		}
		return nil
	}
	for _, o := range batch {
		ob := o.base()
		ob.taken = true
		if ob.key != "" {
			q.keys[ob.key]++
		}
	}
	b.s.obs.Waiting(-len(batch))
	q.inBatch += len(batch)
	q.batches++
	return batch
}

// apply runs one batch to a definite outcome for each of its ops.
func (b *batcher) apply(ws string, batch []op) {
	start := time.Now()
	err := b.write(ws, batch)
	if err == nil {
		b.s.events.wake(ws)
		b.s.obs.Batch(len(batch), "committed", time.Since(start))
		for _, o := range batch {
			o.report(b.s.obs)
		}
		return
	}
	e := ErrorOf(err)
	switch {
	case e.Code == CodeInternal && len(batch) > 1:
		// The database refused the batch for a reason of one of its ops:
		// nothing was committed; apply the halves on their own.
		b.s.obs.Batch(len(batch), "split", time.Since(start))
		b.apply(ws, batch[:len(batch)/2])
		b.apply(ws, batch[len(batch)/2:])
		return
	case e.Code == CodeUnavailable:
		// The store's error already tells the caller to retry with the
		// same key: every op of the batch gets it, refusals included.
		b.s.obs.Batch(len(batch), "unavailable", time.Since(start))
	default:
		b.s.obs.Batch(len(batch), "failed", time.Since(start))
	}
	for _, o := range batch {
		o.base().err = err
	}
}

// write decides and commits batch, deciding again after conflicts.
func (b *batcher) write(ws string, batch []op) error {
	set := newSetBuilder(ws)
	for _, o := range batch {
		o.need(set)
	}
	ws0 := set.build()
	var events []Event // of the last decision: the one committed, if any
	backoff := time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
		err := b.s.store.Write(ctx, ws0, func(snap *Snapshot) (eff *Effects, err error) {
			defer func() {
				if p := recover(); p != nil {
					err = InternalError(fmt.Errorf("deciding a batch panicked: %v", p))
				}
			}()
			st := newBatchState(b.s, ws, snap)
			for _, o := range batch {
				o.base().err = nil
				o.apply(st)
			}
			eff = st.effects()
			events = eff.Events
			return eff, nil
		})
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil {
			if len(events) > 0 {
				b.s.obs.EventsWritten(events)
			}
			return nil
		}
		if !errors.Is(err, ErrConflict) {
			if timedOut && ErrorOf(err).Code == CodeInternal {
				return UnavailableError(err)
			}
			return err
		}
		for _, o := range batch {
			b.s.obs.Conflict(o.base().operation)
		}
		if attempt >= b.opts.Attempts {
			return &Error{
				Code: CodeAborted, Reason: ReasonIdempotencyKeyInUse,
				Message: "concurrent requests touch the same keys or accounts; retry with the same idempotency key", Cause: err,
			}
		}
		time.Sleep(backoff/2 + rand.N(backoff)) //nolint:gosec // backoff jitter, not a secret
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// setBuilder collects a batch's write set.
type setBuilder struct {
	set                                                     WriteSet
	requests, accounts, keys, packages, currencies, pending map[string]bool
	holds, transactions, grants                             map[string]bool
}

func newSetBuilder(ws string) *setBuilder {
	return &setBuilder{
		set:      WriteSet{Workspace: ws},
		requests: map[string]bool{}, accounts: map[string]bool{}, keys: map[string]bool{},
		packages: map[string]bool{}, currencies: map[string]bool{}, pending: map[string]bool{},
		holds: map[string]bool{}, transactions: map[string]bool{}, grants: map[string]bool{},
	}
}

func (w *setBuilder) account(id string)     { w.accounts[id] = true }
func (w *setBuilder) key(k string)          { w.keys[k] = true }
func (w *setBuilder) request(id string)     { w.requests[id] = true }
func (w *setBuilder) pkg(id string)         { w.packages[id] = true }
func (w *setBuilder) currency(c string)     { w.currencies[c] = true }
func (w *setBuilder) pendingOf(acct string) { w.pending[acct] = true }
func (w *setBuilder) lockSettings()         { w.set.LockSettings = true }
func (w *setBuilder) hold(id string)        { w.holds[id] = true }
func (w *setBuilder) transaction(id string) { w.transactions[id] = true }
func (w *setBuilder) grantsOf(acct string)  { w.grants[acct] = true }
func (w *setBuilder) lockPackages()         { w.set.LockPackages = true }
func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (w *setBuilder) build() WriteSet {
	s := w.set
	s.Requests, s.Accounts, s.Keys = sortedKeys(w.requests), sortedKeys(w.accounts), sortedKeys(w.keys)
	s.Packages, s.Currencies, s.Pending = sortedKeys(w.packages), sortedKeys(w.currencies), sortedKeys(w.pending)
	s.Holds, s.Transactions, s.GrantsOf = sortedKeys(w.holds), sortedKeys(w.transactions), sortedKeys(w.grants)
	return s
}
