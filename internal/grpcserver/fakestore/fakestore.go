// Package fakestore is a FAKE, in-memory ledger.Store for the transport
// packages' unit tests (grpcserver, gateway). It is not a store: no
// durability, one global mutex, whole-state copy per batch (Write). It
// exists so that converter, status and interceptor tests can drive the real
// ledger.Service without a database, and so that tests can make Ping fail.
//
// Never use it outside tests. The real stores are internal/store/postgres and
// internal/store/sqlite, proven by internal/store/storetest; the end-to-end
// tests of cmd/ledgerd run against those.
package fakestore

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/creditledger/creditledger/internal/ledger"
)

// Store is the fake. The zero value is not usable; call New.
type Store struct {
	mu      sync.Mutex
	st      *state
	pingErr error
}

type state struct {
	settings map[string]ledger.Settings
	accounts map[string]ledger.Account       // ws/acct
	txs      map[string][]ledger.Transaction // ws/acct, by version
	keys     map[string]ledger.IdempotencyRecord
	requests map[string]ledger.CreditRequest // ws/id
	packages map[string]ledger.Package       // ws/id
	rates    map[string][]ledger.ConversionRate
	seqs     map[string]int64          // ws: the last request number handed out
	events   map[string][]ledger.Event // ws: by sequence from 1
}

func k(a, b string) string { return a + "\x00" + b }

// New returns an empty fake store.
func New() *Store {
	return &Store{st: &state{
		settings: map[string]ledger.Settings{},
		accounts: map[string]ledger.Account{},
		txs:      map[string][]ledger.Transaction{},
		keys:     map[string]ledger.IdempotencyRecord{},
		requests: map[string]ledger.CreditRequest{},
		packages: map[string]ledger.Package{},
		rates:    map[string][]ledger.ConversionRate{},
		seqs:     map[string]int64{},
		events:   map[string][]ledger.Event{},
	}}
}

func (s *state) clone() *state {
	c := &state{
		settings: maps.Clone(s.settings),
		accounts: maps.Clone(s.accounts),
		txs:      make(map[string][]ledger.Transaction, len(s.txs)),
		keys:     maps.Clone(s.keys),
		requests: maps.Clone(s.requests),
		packages: maps.Clone(s.packages),
		rates:    make(map[string][]ledger.ConversionRate, len(s.rates)),
		seqs:     maps.Clone(s.seqs),
		events:   make(map[string][]ledger.Event, len(s.events)),
	}
	for key, v := range s.events {
		c.events[key] = slices.Clip(v)
	}
	for key, v := range s.txs {
		c.txs[key] = slices.Clip(v)
	}
	for key, v := range s.rates {
		c.rates[key] = slices.Clone(v)
	}
	return c
}

// SetPingError makes Ping fail with err (nil: answer again).
func (s *Store) SetPingError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pingErr = err
}

// Write decides on a snapshot of the current state and applies the effects
// to a copy, which replaces the state only if every effect applied: a
// batch commits whole or not at all, as in the real stores.
func (s *Store) Write(ctx context.Context, set ledger.WriteSet, decide func(*ledger.Snapshot) (*ledger.Effects, error)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	eff, err := decide(s.st.snapshot(set))
	if err != nil {
		return err
	}
	if eff == nil {
		return nil
	}
	c := s.st.clone()
	if err := c.apply(set.Workspace, eff); err != nil {
		return err
	}
	s.st = c
	return nil
}

// View runs fn on the current state.
func (s *Store) View(ctx context.Context, fn func(ctx context.Context, tx ledger.ReadTx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn(ctx, &tx{s.st})
}

// Ping answers nil unless SetPingError said otherwise.
func (s *Store) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pingErr
}

// Close does nothing.
func (s *Store) Close() error { return nil }

var (
	_ ledger.Store  = (*Store)(nil)
	_ ledger.ReadTx = (*tx)(nil)
)

// tx reads one state.
type tx struct{ s *state }

func (t *tx) Settings(_ context.Context, ws string) (ledger.Settings, error) {
	if st, ok := t.s.settings[ws]; ok {
		return st, nil
	}
	return ledger.Settings{Workspace: ws}, nil
}

func (t *tx) Account(_ context.Context, ws, id string) (ledger.Account, error) {
	if a, ok := t.s.accounts[k(ws, id)]; ok {
		return a, nil
	}
	return ledger.Account{Workspace: ws, ID: id}, nil
}

func (t *tx) ListAccounts(_ context.Context, q ledger.AccountQuery) ([]ledger.Account, error) {
	var out []ledger.Account
	for _, a := range t.s.accounts {
		if a.Workspace == q.Workspace && a.ID > q.AfterID {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b ledger.Account) int { return strings.Compare(a.ID, b.ID) })
	return limit(out, q.Limit), nil
}

func (t *tx) Transaction(_ context.Context, ws, id string) (ledger.Transaction, error) {
	for _, list := range t.s.txs {
		for _, x := range list {
			if x.Workspace == ws && x.ID == id {
				return x, nil
			}
		}
	}
	return ledger.Transaction{}, ledger.NotFoundError("transaction", id)
}

func (t *tx) ListTransactions(_ context.Context, q ledger.TransactionQuery) ([]ledger.Transaction, error) {
	list := t.s.txs[k(q.Workspace, q.Account)]
	var out []ledger.Transaction
	for i := len(list) - 1; i >= 0; i-- {
		x := list[i]
		switch {
		case q.BeforeVersion > 0 && x.AccountVersion >= q.BeforeVersion,
			q.Type != ledger.TypeUnspecified && x.Type != q.Type,
			q.Kind != ledger.KindUnspecified && x.Kind != q.Kind,
			!q.Start.IsZero() && x.CreateTime.Before(q.Start),
			!q.End.IsZero() && !x.CreateTime.Before(q.End):
			continue
		}
		out = append(out, x)
	}
	return limit(out, q.Limit), nil
}

func (t *tx) Idempotency(_ context.Context, ws, key string) (ledger.IdempotencyRecord, bool, error) {
	r, ok := t.s.keys[k(ws, key)]
	return r, ok, nil
}

func (t *tx) Request(_ context.Context, ws, id string) (ledger.CreditRequest, error) {
	if r, ok := t.s.requests[k(ws, id)]; ok {
		return r, nil
	}
	return ledger.CreditRequest{}, ledger.NotFoundError("request", id)
}

func (t *tx) ListRequests(_ context.Context, q ledger.RequestQuery) ([]ledger.CreditRequest, error) {
	var out []ledger.CreditRequest
	for _, r := range t.s.requests {
		if r.Workspace != q.Workspace || (q.Account != "" && r.Account != q.Account) ||
			(q.Status != ledger.StatusUnspecified && r.Status != q.Status) {
			continue
		}
		if q.AfterSeq > 0 && ((!q.Desc && r.Seq <= q.AfterSeq) || (q.Desc && r.Seq >= q.AfterSeq)) {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ledger.CreditRequest) int {
		if q.Desc {
			return cmp.Compare(b.Seq, a.Seq)
		}
		return cmp.Compare(a.Seq, b.Seq)
	})
	return limit(out, q.Limit), nil
}

func (t *tx) PendingCredits(_ context.Context, ws, acct string) (int64, error) {
	var sum int64
	for _, r := range t.s.requests {
		if r.Workspace == ws && r.Account == acct && r.Status == ledger.StatusPending {
			sum += r.Amount
		}
	}
	return sum, nil
}

func (t *tx) Package(_ context.Context, ws, id string) (ledger.Package, error) {
	if p, ok := t.s.packages[k(ws, id)]; ok {
		return p, nil
	}
	return ledger.Package{}, ledger.NotFoundError("package", id)
}

func (t *tx) ListPackages(_ context.Context, q ledger.PackageQuery) ([]ledger.Package, error) {
	var out []ledger.Package
	for _, p := range t.s.packages {
		if p.Workspace == q.Workspace && p.ID > q.AfterID && (q.ShowInactive || p.Active) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b ledger.Package) int { return strings.Compare(a.ID, b.ID) })
	return limit(out, q.Limit), nil
}

func (t *tx) ActiveRate(_ context.Context, ws, cur string) (ledger.ConversionRate, error) {
	for _, r := range t.s.rates[ws] {
		if r.Currency == cur && r.Active {
			return r, nil
		}
	}
	return ledger.ConversionRate{}, ledger.NotFoundError("conversion rate", cur)
}

func (t *tx) ListRates(_ context.Context, ws string, history bool) ([]ledger.ConversionRate, error) {
	var out []ledger.ConversionRate
	for _, r := range t.s.rates[ws] {
		if history || r.Active {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b ledger.ConversionRate) int {
		return cmp.Or(strings.Compare(a.Currency, b.Currency), b.CreateTime.Compare(a.CreateTime))
	})
	return out, nil
}

// snapshot reads what set names, as the real stores do.
func (s *state) snapshot(set ledger.WriteSet) *ledger.Snapshot {
	ws := set.Workspace
	snap := &ledger.Snapshot{
		Settings:     ledger.Settings{Workspace: ws},
		Accounts:     map[string]ledger.Account{},
		Keys:         map[string]ledger.IdempotencyRecord{},
		Transactions: map[string]ledger.Transaction{},
		Requests:     map[string]ledger.CreditRequest{},
		Packages:     map[string]ledger.Package{},
		Rates:        map[string]ledger.ConversionRate{},
	}
	if st, ok := s.settings[ws]; ok {
		snap.Settings = st
	}
	view := &tx{s}
	for _, key := range set.Keys {
		rec, ok := s.keys[k(ws, key)]
		if !ok {
			continue
		}
		snap.Keys[key] = rec
		if x, err := view.Transaction(context.Background(), ws, rec.TransactionID); rec.TransactionID != "" && err == nil {
			snap.Transactions[x.ID] = x
		}
		if r, ok := s.requests[k(ws, rec.RequestID)]; ok {
			snap.Requests[r.ID] = r
		}
	}
	accounts := slices.Clone(set.Accounts)
	for _, id := range set.Requests {
		if r, ok := s.requests[k(ws, id)]; ok {
			snap.Requests[id] = r
			accounts = append(accounts, r.Account)
		}
	}
	for _, id := range accounts {
		if a, ok := s.accounts[k(ws, id)]; ok {
			snap.Accounts[id] = a
		}
	}
	if len(set.Pending) > 0 {
		snap.Pending = map[string]int{}
		for _, r := range s.requests {
			if r.Workspace == ws && r.Status == ledger.StatusPending && slices.Contains(set.Pending, r.Account) {
				snap.Pending[r.Account]++
			}
		}
	}
	for _, id := range set.Packages {
		if p, ok := s.packages[k(ws, id)]; ok {
			snap.Packages[id] = p
		}
	}
	for _, cur := range set.Currencies {
		if r, err := view.ActiveRate(context.Background(), ws, cur); err == nil {
			snap.Rates[cur] = r
		}
	}
	return snap
}

// apply writes eff into s (a copy of the state), with the checks the real
// stores' conditional writes and constraints make.
func (s *state) apply(ws string, eff *ledger.Effects) error {
	for _, e := range eff.Events {
		e.Sequence = int64(len(s.events[ws]) + 1)
		s.events[ws] = append(s.events[ws], e)
	}
	if eff.Settings != nil {
		s.settings[ws] = *eff.Settings
	}
	for _, p := range eff.NewPackages {
		if _, ok := s.packages[k(ws, p.ID)]; ok {
			return ledger.ErrConflict
		}
		s.packages[k(ws, p.ID)] = p
	}
	for _, p := range eff.PackageUpdates {
		if _, ok := s.packages[k(ws, p.ID)]; !ok {
			return ledger.ErrConflict
		}
		s.packages[k(ws, p.ID)] = p
	}
	for _, r := range eff.Rates {
		list := s.rates[ws] // clone made it this copy's own
		for i := range list {
			if list[i].Currency == r.Currency {
				list[i].Active = false
			}
		}
		s.rates[ws] = append(list, r)
	}
	for i := range eff.NewRequests {
		s.seqs[ws]++
		eff.NewRequests[i].Seq = s.seqs[ws]
		r := eff.NewRequests[i]
		if _, ok := s.requests[k(ws, r.ID)]; ok {
			return ledger.ErrConflict
		}
		s.requests[k(ws, r.ID)] = r
	}
	for _, m := range eff.Accounts {
		old, ok := s.accounts[k(ws, m.ID)]
		if ok == m.Create || old.Version != m.FromVersion {
			return ledger.ErrConflict
		}
		s.accounts[k(ws, m.ID)] = m.Account
	}
	for _, x := range eff.Transactions {
		key := k(ws, x.Account)
		if a := s.accounts[key]; int64(len(s.txs[key])+1) != x.AccountVersion || x.AccountVersion > a.Version {
			return ledger.ErrConflict
		}
		s.txs[key] = append(s.txs[key], x)
	}
	for _, r := range eff.Decisions {
		old, ok := s.requests[k(ws, r.ID)]
		if !ok || old.Status != ledger.StatusPending {
			return ledger.ErrConflict
		}
		r.Seq = old.Seq
		s.requests[k(ws, r.ID)] = r
	}
	for _, rec := range eff.Keys {
		if _, ok := s.keys[k(ws, rec.Key)]; ok {
			return ledger.ErrConflict
		}
		s.keys[k(ws, rec.Key)] = rec
	}
	return nil
}

func limit[T any](s []T, n int) []T {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}

func (t *tx) ListEvents(_ context.Context, q ledger.EventQuery) ([]ledger.Event, error) {
	var out []ledger.Event
	for _, e := range t.s.events[q.Workspace] {
		if e.Sequence <= q.After || (q.Account != "" && e.Account != q.Account) ||
			(len(q.Types) > 0 && !slices.Contains(q.Types, e.Type)) {
			continue
		}
		if len(out) == q.Limit {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

func (t *tx) LastEventSequence(_ context.Context, ws string) (int64, error) {
	return int64(len(t.s.events[ws])), nil
}

func (t *tx) TransactionsByID(_ context.Context, ws string, ids []string) ([]ledger.Transaction, error) {
	var out []ledger.Transaction
	for key, txs := range t.s.txs {
		if !strings.HasPrefix(key, ws+"\x00") {
			continue
		}
		for _, tr := range txs {
			if slices.Contains(ids, tr.ID) {
				out = append(out, tr)
			}
		}
	}
	return out, nil
}
