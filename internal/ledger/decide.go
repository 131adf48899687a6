package ledger

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// batchState is what a batch's ops are decided against: the store's
// snapshot, plus what earlier ops of the batch changed. Each op sees the
// batch's earlier ops exactly as if they had committed just before it.
type batchState struct {
	s        *Service
	ws       string
	snap     *Snapshot
	settings Settings
	accounts map[string]*accountState
	keys     map[string]IdempotencyRecord // recorded by this batch
	txs      map[string]Transaction       // posted by this batch
	requests map[string]CreditRequest     // created or decided by this batch
	packages map[string]Package           // created or changed by this batch
	eff      Effects
	// pendingDelta is how this batch changed each account's PENDING
	// requests (limits.go).
	pendingDelta map[string]int
	// holds created or changed by this batch; newHolds names the created.
	holds    map[string]Hold
	newHolds map[string]bool
	// grants are the accounts' grants as the batch draws them (grants.go).
	grants map[string]*grantBook
	// reversed is what this batch reversed of each entry.
	reversed map[string]int64
}

// accountState is an account as the batch moves it.
type accountState struct {
	Account
	from   int64 // the version read
	create bool  // not in the store yet
	moved  bool
}

func newBatchState(s *Service, ws string, snap *Snapshot) *batchState {
	st := snap.Settings
	if st.Workspace == "" {
		st.Workspace = ws
	}
	return &batchState{
		s: s, ws: ws, snap: snap, settings: st,
		accounts: map[string]*accountState{}, keys: map[string]IdempotencyRecord{},
		txs: map[string]Transaction{}, requests: map[string]CreditRequest{}, packages: map[string]Package{},
		holds: map[string]Hold{}, newHolds: map[string]bool{}, grants: map[string]*grantBook{}, reversed: map[string]int64{},
	}
}

func (b *batchState) record(key string) (IdempotencyRecord, bool) {
	if r, ok := b.keys[key]; ok {
		return r, true
	}
	r, ok := b.snap.Keys[key]
	return r, ok
}

func (b *batchState) remember(rec IdempotencyRecord) {
	b.keys[rec.Key] = rec
	b.eff.Keys = append(b.eff.Keys, rec)
}

func (b *batchState) transaction(id string) (Transaction, bool) {
	if t, ok := b.txs[id]; ok {
		return t, true
	}
	t, ok := b.snap.Transactions[id]
	return t, ok
}

func (b *batchState) request(id string) (CreditRequest, bool) {
	if r, ok := b.requests[id]; ok {
		return r, true
	}
	r, ok := b.snap.Requests[id]
	return r, ok
}

func (b *batchState) pkg(id string) (Package, bool) {
	if p, ok := b.packages[id]; ok {
		return p, true
	}
	p, ok := b.snap.Packages[id]
	return p, ok
}

// credits is what an op buys: amount, or the credits of the active
// package pkgID when one is named.
func (b *batchState) credits(amount int64, pkgID string) (int64, error) {
	if pkgID == "" {
		return amount, nil
	}
	pkg, ok := b.pkg(pkgID)
	switch {
	case !ok:
		return 0, NotFoundError("package", pkgID)
	case !pkg.Active:
		return 0, errPackageInactive(pkg.ID)
	}
	return pkg.Credits, nil
}

func (b *batchState) account(id string) *accountState {
	if a, ok := b.accounts[id]; ok {
		return a
	}
	a := &accountState{}
	if acct, ok := b.snap.Accounts[id]; ok {
		a.Account, a.from = acct, acct.Version
	} else {
		a.Account, a.create = Account{Workspace: b.ws, ID: id}, true
	}
	b.accounts[id] = a
	return a
}

// post appends t, the account's next entry, and moves the account. An IN
// entry with an ExpireTime opens a grant.
func (b *batchState) post(a *accountState, t Transaction) {
	a.Balance, a.Version, a.UpdateTime, a.moved = t.BalanceAfter, t.AccountVersion, t.CreateTime, true
	b.txs[t.ID] = t
	b.eff.Transactions = append(b.eff.Transactions, t)
	if t.Type == TypeIn && !t.ExpireTime.IsZero() {
		b.book(a.ID).open(Grant{
			Workspace: t.Workspace, Account: t.Account, TransactionID: t.ID,
			Amount: t.Amount, Remaining: t.Amount, ExpireTime: t.ExpireTime,
		})
	}
}

// effects returns what the batch writes, in the store's order.
func (b *batchState) effects() *Effects {
	for _, a := range b.accounts {
		if a.moved {
			b.eff.Accounts = append(b.eff.Accounts, AccountMove{Account: a.Account, FromVersion: a.from, Create: a.create})
		}
	}
	slices.SortFunc(b.eff.Accounts, func(x, y AccountMove) int { return strings.Compare(x.ID, y.ID) })
	b.holdEffects()
	b.grantEffects()
	b.eff.Events = b.events()
	slices.SortStableFunc(b.eff.Transactions, func(x, y Transaction) int {
		return cmp.Or(strings.Compare(x.Account, y.Account), cmp.Compare(x.AccountVersion, y.AccountVersion))
	})
	eff := b.eff
	return &eff
}

// replayError is an idempotency record whose outcome the store did not
// return: a broken store, not a caller's mistake.
func replayError(rec IdempotencyRecord) error {
	return InternalError(fmt.Errorf("idempotency record %q names an outcome the store did not return", rec.Key))
}

// ---------------------------------------------------------------------------
// Credit and Debit

type postOp struct {
	opBase
	p   posting
	res PostResult
}

func (o *postOp) need(w *setBuilder) {
	w.account(o.p.acct)
	w.key(o.key)
	if o.p.pkg != "" {
		w.pkg(o.p.pkg)
	}
	if o.p.typ == TypeOut {
		w.grantsOf(o.p.acct) // a debit draws the soonest-expiring credits first
	}
}

func (o *postOp) apply(b *batchState) {
	p := &o.p
	o.res = PostResult{}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, p.op, p.fp); o.err != nil {
			return
		}
		t, ok := b.transaction(rec.TransactionID)
		if !ok {
			o.err = replayError(rec)
			return
		}
		o.res = PostResult{Transaction: t, Balance: t.BalanceAfter, Version: t.AccountVersion, Replayed: true}
		return
	}
	if p.typ == TypeOut && !b.settings.CreditPaymentsEnabled {
		o.err = errDisabled(p.ws)
		return
	}
	amount, err := b.credits(p.amount, p.pkg)
	if err != nil {
		o.err = err
		return
	}
	a := b.account(p.acct)
	if p.typ == TypeOut {
		if acct := b.spendable(a); acct.Available() < amount {
			o.err = errInsufficient(acct, amount)
			return
		}
	}
	t, err := b.s.nextEntry(a.Account, p.typ, amount, p.expected)
	if err != nil {
		o.err = err
		return
	}
	t.Kind, t.Reference, t.IdempotencyKey, t.Metadata, t.PackageID = p.kind, p.ref, p.key, p.md, p.pkg
	if p.typ == TypeIn {
		t.ExpireTime = p.expire
		if t.ExpireTime.IsZero() && p.pkg != "" {
			if pkg, _ := b.pkg(p.pkg); pkg.Validity > 0 {
				t.ExpireTime = t.CreateTime.Add(pkg.Validity)
			}
		}
	} else {
		b.draw(a.ID, t.Amount, "", t.CreateTime)
	}
	b.post(a, t)
	b.remember(IdempotencyRecord{
		Workspace: p.ws, Key: o.key, Operation: p.op, Fingerprint: p.fp, TransactionID: t.ID, CreateTime: t.CreateTime,
	})
	o.res = PostResult{Transaction: t, Balance: t.BalanceAfter, Version: t.AccountVersion}
}

func (o *postOp) report(obs Observer) {
	switch {
	case o.err != nil:
		observeRefusal(obs, o.p.op, o.err)
	case o.res.Replayed:
		obs.Replayed(o.p.op)
	default:
		obs.Posted(o.res.Transaction)
	}
}

// ---------------------------------------------------------------------------
// Credit requests

type submitOp struct {
	opBase
	in  SubmitInput
	md  map[string]string
	fp  []byte
	res SubmitResult
}

func (o *submitOp) need(w *setBuilder) {
	w.key(o.key)
	w.pendingOf(o.in.Account)
	if o.in.PackageID != "" {
		w.pkg(o.in.PackageID)
	}
}

func (o *submitOp) apply(b *batchState) {
	in := &o.in
	o.res = SubmitResult{}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, OpSubmitRequest, o.fp); o.err != nil {
			return
		}
		r, ok := b.request(rec.RequestID)
		if !ok {
			o.err = replayError(rec)
			return
		}
		o.res = SubmitResult{Request: r, Replayed: true}
		return
	}
	if !b.settings.CreditPaymentsEnabled {
		o.err = errDisabled(in.Workspace)
		return
	}
	if !b.settings.Offers(in.PaymentMethod) {
		o.err = errMethodNotOffered(in.PaymentMethod)
		return
	}
	amount, err := b.credits(in.Amount, in.PackageID)
	if err != nil {
		o.err = err
		return
	}
	if b.pendingCount(in.Account) >= b.s.maxPending {
		o.err = errTooManyPending(in.Account, b.s.maxPending)
		return
	}
	b.pendingMoved(in.Account, +1)
	r := CreditRequest{
		ID: b.s.newID(), Workspace: in.Workspace, Account: in.Account, Amount: amount, PackageID: in.PackageID,
		PaymentMethod: in.PaymentMethod, PaymentReference: in.PaymentReference, Note: in.Note,
		Status: StatusPending, Metadata: o.md, IdempotencyKey: in.IdempotencyKey, CreateTime: b.s.clock(),
		SubmittedBy: in.SubmittedBy,
	}
	if in.PackageID != "" {
		pkg, _ := b.pkg(in.PackageID)
		r.Validity = pkg.Validity // the credits, once accepted, last as the package said when bought
	}
	b.requests[r.ID] = r
	b.eff.NewRequests = append(b.eff.NewRequests, r)
	b.remember(IdempotencyRecord{
		Workspace: in.Workspace, Key: o.key, Operation: OpSubmitRequest, Fingerprint: o.fp,
		RequestID: r.ID, CreateTime: r.CreateTime,
	})
	o.res = SubmitResult{Request: r}
}

func (o *submitOp) report(obs Observer) {
	switch {
	case o.err != nil:
		observeRefusal(obs, OpSubmitRequest, o.err)
	case o.res.Replayed:
		obs.Replayed(OpSubmitRequest)
	}
}

type decideOp struct {
	opBase
	in  DecideInput
	fp  []byte
	res DecideResult
}

func (o *decideOp) need(w *setBuilder) {
	w.key(o.key)
	w.request(o.in.RequestID)
}

func (o *decideOp) apply(b *batchState) {
	in := &o.in
	o.res = DecideResult{}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, OpDecideRequest, o.fp); o.err != nil {
			return
		}
		r, ok := b.request(rec.RequestID)
		if !ok {
			o.err = replayError(rec)
			return
		}
		o.res = DecideResult{Request: r, Replayed: true}
		if rec.TransactionID != "" {
			t, ok := b.transaction(rec.TransactionID)
			if !ok {
				o.err = replayError(rec)
				return
			}
			o.res.Transaction = &t
		}
		return
	}
	r, ok := b.request(in.RequestID)
	if !ok {
		o.err = NotFoundError("credit request", in.RequestID)
		return
	}
	if r.Status != StatusPending {
		o.err = errAlreadyDecided(r)
		return
	}
	if b.settings.RequireDistinctApprover && r.SubmittedBy != "" && r.SubmittedBy == in.DecidedBy {
		o.err = newErr(CodeFailedPrecondition, ReasonApproverIsSubmitter,
			"the workspace requires a request to be decided by someone other than its submitter",
			map[string]string{"request_id": r.ID})
		return
	}
	now := b.s.clock()
	r.DecisionReason, r.DecidedBy, r.DecideTime = in.Reason, in.DecidedBy, now
	var posted *Transaction
	if in.Decision == DecisionAccept {
		a := b.account(r.Account)
		t, err := b.s.nextEntry(a.Account, TypeIn, r.Amount, nil)
		if err != nil {
			o.err = err
			return
		}
		t.Kind, t.Reference, t.IdempotencyKey = KindRequestApproved, "creditRequest:"+r.ID, in.IdempotencyKey
		t.PackageID, t.RequestID, t.CreateTime = r.PackageID, r.ID, now
		if r.Validity > 0 {
			t.ExpireTime = now.Add(r.Validity)
		}
		b.post(a, t)
		r.Status, r.TransactionID = StatusAccepted, t.ID
		posted = &t
	} else {
		r.Status = StatusRejected
	}
	b.requests[r.ID] = r
	b.pendingMoved(r.Account, -1)
	b.eff.Decisions = append(b.eff.Decisions, r)
	rec := IdempotencyRecord{
		Workspace: in.Workspace, Key: o.key, Operation: OpDecideRequest,
		Fingerprint: o.fp, RequestID: r.ID, CreateTime: now,
	}
	if posted != nil {
		rec.TransactionID = posted.ID
	}
	b.remember(rec)
	o.res = DecideResult{Request: r, Transaction: posted}
}

func (o *decideOp) report(obs Observer) {
	switch {
	case o.err != nil:
		observeRefusal(obs, OpDecideRequest, o.err)
	case o.res.Replayed:
		obs.Replayed(OpDecideRequest)
	case o.res.Transaction != nil:
		obs.Posted(*o.res.Transaction)
	}
}

// errAlreadyDecided refuses a decision or cancellation of a request that
// left PENDING.
func errAlreadyDecided(r CreditRequest) error {
	return newErr(CodeFailedPrecondition, ReasonRequestAlreadyDecided,
		"the request was already "+strings.ToLower(r.Status.String()),
		map[string]string{"request_id": r.ID, "status": r.Status.String()})
}

func errMethodNotOffered(m PaymentMethod) error {
	return newErr(CodeFailedPrecondition, ReasonPaymentMethodNotOffered,
		"the workspace does not offer "+m.String()+" as a payment method",
		map[string]string{"payment_method": m.String()})
}

// cancelOp withdraws a PENDING request: a decision of the client's.
type cancelOp struct {
	opBase
	in  CancelInput
	fp  []byte
	res CancelResult
}

func (o *cancelOp) need(w *setBuilder) {
	w.key(o.key)
	w.request(o.in.RequestID)
}

func (o *cancelOp) apply(b *batchState) {
	in := &o.in
	o.res = CancelResult{}
	// Ownership first, even before a replay: a client learns nothing of
	// another account's request, not even whether a key was used on it.
	r, ok := b.request(in.RequestID)
	if !ok || (in.Account != "" && r.Account != in.Account) {
		o.err = NotFoundError("credit request", in.RequestID)
		return
	}
	if rec, ok := b.record(o.key); ok {
		if o.err = sameRequest(rec, OpCancelRequest, o.fp); o.err != nil {
			return
		}
		// The key is scoped to the request: the record names r.
		o.res = CancelResult{Request: r, Replayed: true}
		return
	}
	if r.Status != StatusPending {
		o.err = errAlreadyDecided(r)
		return
	}
	now := b.s.clock()
	r.Status, r.DecisionReason, r.DecidedBy, r.DecideTime = StatusCancelled, in.Reason, in.CancelledBy, now
	b.requests[r.ID] = r
	b.pendingMoved(r.Account, -1)
	b.eff.Decisions = append(b.eff.Decisions, r)
	b.remember(IdempotencyRecord{
		Workspace: in.Workspace, Key: o.key, Operation: OpCancelRequest,
		Fingerprint: o.fp, RequestID: r.ID, CreateTime: now,
	})
	o.res = CancelResult{Request: r}
}

func (o *cancelOp) report(obs Observer) {
	switch {
	case o.err != nil:
		observeRefusal(obs, OpCancelRequest, o.err)
	case o.res.Replayed:
		obs.Replayed(OpCancelRequest)
	}
}

func observeRefusal(obs Observer, op Operation, err error) {
	if e := ErrorOf(err); e.Code == CodeFailedPrecondition || e.Reason == ReasonVersionMismatch || e.Reason == ReasonIdempotencyKeyReused {
		obs.Refused(op, e.Reason)
	}
}

// ---------------------------------------------------------------------------
// Settings, packages and rates

type settingsOp struct {
	opBase
	in  Settings
	set map[string]bool
	res Settings
}

func (o *settingsOp) need(w *setBuilder) { w.lockSettings() }

func (o *settingsOp) apply(b *batchState) {
	st := b.settings
	if o.set["credit_payments_enabled"] {
		st.CreditPaymentsEnabled = o.in.CreditPaymentsEnabled
	}
	if o.set["require_distinct_approver"] {
		st.RequireDistinctApprover = o.in.RequireDistinctApprover
	}
	if o.set["payment_methods"] {
		st.PaymentMethodsSet, st.PaymentMethods = true, o.in.PaymentMethods
	}
	if o.set["low_balance_threshold"] {
		st.LowBalanceThreshold = o.in.LowBalanceThreshold
	}
	st.Workspace, st.UpdateTime = b.ws, b.s.clock()
	b.settings = st
	b.eff.Settings = &st
	o.res = st
}

func (o *settingsOp) report(Observer) {}

type createPackageOp struct {
	opBase
	p Package
}

func (o *createPackageOp) need(w *setBuilder) { w.pkg(o.p.ID) }

func (o *createPackageOp) apply(b *batchState) {
	if _, ok := b.pkg(o.p.ID); ok {
		o.err = newErr(CodeAlreadyExists, ReasonAlreadyExists, "a package with this id already exists",
			map[string]string{"package_id": o.p.ID})
		return
	}
	b.packages[o.p.ID] = o.p
	b.eff.NewPackages = append(b.eff.NewPackages, o.p)
}

func (o *createPackageOp) report(Observer) {}

type updatePackageOp struct {
	opBase
	id  string
	in  Package
	set map[string]bool
	res Package
}

func (o *updatePackageOp) need(w *setBuilder) {
	w.pkg(o.id)
	w.lockPackages()
}

func (o *updatePackageOp) apply(b *batchState) {
	o.res = Package{}
	p, ok := b.pkg(o.id)
	if !ok {
		o.err = NotFoundError("package", o.id)
		return
	}
	if o.set["display_name"] {
		p.DisplayName = o.in.DisplayName
	}
	if o.set["credits"] {
		p.Credits = o.in.Credits
	}
	if o.set["price"] {
		p.Price = o.in.Price
	}
	if o.set["active"] {
		p.Active = o.in.Active
	}
	if o.set["validity"] {
		p.Validity = o.in.Validity
	}
	var v violations
	validatePackage(&v, p)
	if o.err = v.err(); o.err != nil {
		return
	}
	p.UpdateTime = b.s.clock()
	b.packages[p.ID] = p
	b.eff.PackageUpdates = append(b.eff.PackageUpdates, p)
	o.res = p
}

func (o *updatePackageOp) report(Observer) {}

type rateOp struct {
	opBase
	r ConversionRate
}

func (o *rateOp) need(w *setBuilder) { w.currency(o.r.Currency) }

func (o *rateOp) apply(b *batchState) {
	b.eff.Rates = append(b.eff.Rates, o.r)
}

func (o *rateOp) report(Observer) {}
