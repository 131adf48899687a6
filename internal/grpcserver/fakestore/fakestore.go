// Package fakestore is a FAKE, in-memory ledger.Store for the transport
// packages' unit tests (grpcserver, gateway). It is not a store: no
// durability, one global mutex, whole-state copy per write transaction. It
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

// Update runs fn on a copy of the state and keeps the copy when fn succeeds.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx ledger.Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	c := s.st.clone()
	if err := fn(ctx, &tx{c}); err != nil {
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
	_ ledger.Store = (*Store)(nil)
	_ ledger.Tx    = (*tx)(nil)
)

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
		if q.AfterID != "" && ((!q.Desc && r.ID <= q.AfterID) || (q.Desc && r.ID >= q.AfterID)) {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ledger.CreditRequest) int {
		if q.Desc {
			return strings.Compare(b.ID, a.ID)
		}
		return strings.Compare(a.ID, b.ID)
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

func (t *tx) LockIdempotency(ctx context.Context, ws, key string) (ledger.IdempotencyRecord, bool, error) {
	return t.Idempotency(ctx, ws, key)
}

func (t *tx) PutIdempotency(_ context.Context, rec ledger.IdempotencyRecord) error {
	if _, ok := t.s.keys[k(rec.Workspace, rec.Key)]; ok {
		return ledger.ErrConflict
	}
	t.s.keys[k(rec.Workspace, rec.Key)] = rec
	return nil
}

func (t *tx) LockAccount(ctx context.Context, ws, id string) (ledger.Account, error) {
	return t.Account(ctx, ws, id)
}

func (t *tx) AppendTransaction(_ context.Context, x ledger.Transaction) error {
	key := k(x.Workspace, x.Account)
	a := t.s.accounts[key]
	if a.Version != x.AccountVersion-1 {
		return ledger.ErrConflict
	}
	t.s.accounts[key] = ledger.Account{
		Workspace: x.Workspace, ID: x.Account, Balance: x.BalanceAfter, Version: x.AccountVersion, UpdateTime: x.CreateTime,
	}
	t.s.txs[key] = append(t.s.txs[key], x)
	return nil
}

func (t *tx) PutSettings(_ context.Context, st ledger.Settings) error {
	t.s.settings[st.Workspace] = st
	return nil
}

func (t *tx) InsertRequest(_ context.Context, r ledger.CreditRequest) error {
	t.s.requests[k(r.Workspace, r.ID)] = r
	return nil
}

func (t *tx) LockPackage(ctx context.Context, ws, id string) (ledger.Package, error) {
	return t.Package(ctx, ws, id)
}

func (t *tx) LockRequest(ctx context.Context, ws, id string) (ledger.CreditRequest, error) {
	return t.Request(ctx, ws, id)
}

func (t *tx) DecideRequest(_ context.Context, r ledger.CreditRequest) error {
	old, ok := t.s.requests[k(r.Workspace, r.ID)]
	if !ok || old.Status != ledger.StatusPending {
		return ledger.ErrConflict
	}
	t.s.requests[k(r.Workspace, r.ID)] = r
	return nil
}

func (t *tx) InsertPackage(_ context.Context, p ledger.Package) error {
	if _, ok := t.s.packages[k(p.Workspace, p.ID)]; ok {
		return ledger.ErrAlreadyExists
	}
	t.s.packages[k(p.Workspace, p.ID)] = p
	return nil
}

func (t *tx) UpdatePackage(_ context.Context, p ledger.Package) error {
	if _, ok := t.s.packages[k(p.Workspace, p.ID)]; !ok {
		return ledger.NotFoundError("package", p.ID)
	}
	t.s.packages[k(p.Workspace, p.ID)] = p
	return nil
}

func (t *tx) InsertRate(_ context.Context, r ledger.ConversionRate) error {
	list := t.s.rates[r.Workspace]
	for i := range list {
		if list[i].Currency == r.Currency {
			list[i].Active = false
		}
	}
	t.s.rates[r.Workspace] = append(list, r)
	return nil
}

func limit[T any](s []T, n int) []T {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}
