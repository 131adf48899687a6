package ledger

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Observer is told about the ledger's business events, for metrics. All
// methods must be cheap and safe for concurrent use.
type Observer interface {
	// Posted is called once per newly posted transaction (not for replays).
	Posted(t Transaction)
	// Refused is called when an operation is refused for a business reason.
	Refused(op Operation, reason string)
	// Replayed is called when an idempotent replay answered.
	Replayed(op Operation)
	// Conflict is called for each op of a batch that is decided again
	// after a conflict.
	Conflict(op Operation)
	// Batch is called once per batch applied (outcome: committed,
	// unavailable, failed, or split when it is applied again in halves)
	// with its number of ops and how long it took.
	Batch(ops int, outcome string, d time.Duration)
	// Waiting is called with +n when ops join a workspace's queue and -n
	// when they leave it (taken into a batch, or withdrawn).
	Waiting(delta int)
	// Hold is called when a hold is created (HoldActive) and when it ends
	// (captured, voided or expired).
	Hold(status HoldStatus)
	// Reversed is called for each reversal posted, with the kind of the
	// entry it reverses.
	Reversed(original Kind)
	// EventsWritten is called with the events of each committed batch.
	EventsWritten(evs []Event)
	// Read is called for each read that may be served by a read replica,
	// with where it was served (ReadReplica, ReadPrimaryBehind,
	// ReadPrimaryNoReplica); only when the store has replicas.
	Read(where string)
}

type nopObserver struct{}

func (nopObserver) Posted(Transaction)               {}
func (nopObserver) Refused(Operation, string)        {}
func (nopObserver) Replayed(Operation)               {}
func (nopObserver) Conflict(Operation)               {}
func (nopObserver) Batch(int, string, time.Duration) {}
func (nopObserver) Waiting(int)                      {}
func (nopObserver) Hold(HoldStatus)                  {}
func (nopObserver) Reversed(Kind)                    {}
func (nopObserver) EventsWritten([]Event)            {}
func (nopObserver) Read(string)                      {}

// Service applies the ledger's rules on top of a Store. It is safe for
// concurrent use and holds no state that correctness depends on: several
// replicas may serve one database.
type Service struct {
	store     Store
	now       func() time.Time
	tokens    *PageTokens
	obs       Observer
	newID     func() string
	batchOpts BatchOptions
	batch     *batcher
	// maxPending caps the PENDING requests of an account (limits.go).
	maxPending int
	// events wakes the watches of a workspace at its commits; eventPoll
	// is how often they look for other replicas' (events.go).
	events    eventHub
	eventPoll time.Duration
	// webhookURLCheck is the server's address policy for endpoint URLs.
	webhookURLCheck func(string) error
	webhookStore    WebhookStore
}

// Option configures a Service.
type Option func(*Service)

// WithClock injects the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithPageTokenKey sets the HMAC key of page tokens; replicas must share it.
func WithPageTokenKey(key []byte) Option {
	return func(s *Service) { s.tokens = NewPageTokens(key) }
}

// WithObserver receives business events (metrics).
func WithObserver(o Observer) Option { return func(s *Service) { s.obs = o } }

// NewService returns a Service over store.
func NewService(store Store, opts ...Option) *Service {
	s := &Service{
		store:      store,
		now:        time.Now,
		obs:        nopObserver{},
		maxPending: DefaultMaxPendingRequests,
		newID: func() string {
			return uuid.Must(uuid.NewV7()).String()
		},
	}
	for _, o := range opts {
		o(s)
	}
	if s.tokens == nil {
		s.tokens = NewPageTokens(nil)
	}
	s.batch = newBatcher(s, s.batchOpts)
	return s
}

// Store returns the underlying store (health checks).
func (s *Service) Store() Store { return s.store }

// clock returns the current time as stored: UTC, microsecond precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// ---------------------------------------------------------------------------
// Credit and Debit

// CreditInput asks to add credits to an account.
type CreditInput struct {
	Workspace       string
	Account         string
	Amount          int64  // > 0, or 0 with PackageID
	PackageID       string // take the credits from this active package
	Kind            Kind   // PURCHASE (default), REFUND, ADJUSTMENT
	Reference       string
	IdempotencyKey  string
	ExpectedVersion *int64
	Metadata        map[string]string
	// ExpireTime makes the credits a grant that expires then (zero: the
	// package's validity, else never).
	ExpireTime time.Time
}

// DebitInput asks to deduct credits from an account.
type DebitInput struct {
	Workspace       string
	Account         string
	Amount          int64 // > 0
	Kind            Kind  // SERVICE_PURCHASE (default), INVOICE_PAYMENT, ADJUSTMENT
	Reference       string
	IdempotencyKey  string
	ExpectedVersion *int64
	Metadata        map[string]string
}

// PostResult is the outcome of a posted Credit or Debit.
type PostResult struct {
	Transaction Transaction
	Balance     int64
	Version     int64
	Replayed    bool // an earlier identical request's outcome
}

// posting is the common shape of Credit and Debit once validated.
type posting struct {
	op       Operation
	typ      TxType
	ws, acct string
	amount   int64
	pkg      string
	kind     Kind
	ref, key string
	expected *int64
	md       map[string]string
	fp       []byte
	expire   time.Time // Credit: the grant's expiry (zero: the package's validity, else never)
}

func validatePostingCommon(v *violations, ws, acct, ref, key string, expected *int64, md map[string]string) {
	checkID(v, "workspace", ws)
	checkID(v, "account", acct)
	checkText(v, "reference", ref, MaxReferenceLength)
	checkKey(v, key)
	if expected != nil && *expected < 0 {
		v.add("expected_version", "must not be negative")
	}
	checkMetadata(v, md)
}

// Credit adds credits. It posts even while credit payments are disabled: a
// confirmed payment or a refund must never be lost.
func (s *Service) Credit(ctx context.Context, in CreditInput) (PostResult, error) {
	var v violations
	validatePostingCommon(&v, in.Workspace, in.Account, in.Reference, in.IdempotencyKey, in.ExpectedVersion, in.Metadata)
	kind := checkKind(&v, in.Kind, creditKinds)
	switch {
	case in.PackageID != "":
		checkID(&v, "package_id", in.PackageID)
		if in.Amount != 0 {
			v.add("amount", "must be empty when package_id is given (the package sets the credits)")
		}
	default:
		checkAmount(&v, "amount", in.Amount)
	}
	expire := in.ExpireTime.UTC().Truncate(time.Microsecond)
	if !expire.IsZero() {
		checkExpiry(&v, "expire_time", expire, s.clock())
	}
	if err := v.err(); err != nil {
		return PostResult{}, err
	}
	p := posting{
		op: OpCredit, typ: TypeIn, ws: in.Workspace, acct: in.Account, amount: in.Amount, pkg: in.PackageID,
		kind: kind, ref: in.Reference, key: in.IdempotencyKey, expected: in.ExpectedVersion, md: normMap(in.Metadata),
		expire: expire,
	}
	f := newFingerprint(OpCredit).str(p.ws).str(p.acct).int(p.amount).str(p.pkg).str(kind.String()).
		str(p.ref).optInt(p.expected).strMap(p.md)
	if !expire.IsZero() {
		f.str(expire.Format(time.RFC3339Nano)) // only then: earlier records keep their fingerprints
	}
	p.fp = f.sum()
	return s.post(ctx, p)
}

// checkExpiry refuses an expiry that is not ahead of now, or further
// ahead than MaxValidity.
func checkExpiry(v *violations, field string, at, now time.Time) {
	switch {
	case !at.After(now):
		v.add(field, "must be in the future")
	case at.Sub(now) > MaxValidity:
		v.add(field, "must be at most 10 years ahead")
	}
}

// Debit deducts credits; refused when credit payments are disabled or the
// balance does not cover the amount.
func (s *Service) Debit(ctx context.Context, in DebitInput) (PostResult, error) {
	var v violations
	validatePostingCommon(&v, in.Workspace, in.Account, in.Reference, in.IdempotencyKey, in.ExpectedVersion, in.Metadata)
	kind := checkKind(&v, in.Kind, debitKinds)
	checkAmount(&v, "amount", in.Amount)
	if err := v.err(); err != nil {
		return PostResult{}, err
	}
	p := posting{
		op: OpDebit, typ: TypeOut, ws: in.Workspace, acct: in.Account, amount: in.Amount,
		kind: kind, ref: in.Reference, key: in.IdempotencyKey, expected: in.ExpectedVersion, md: normMap(in.Metadata),
	}
	p.fp = newFingerprint(OpDebit).str(p.ws).str(p.acct).int(p.amount).str(kind.String()).
		str(p.ref).optInt(p.expected).strMap(p.md).sum()
	return s.post(ctx, p)
}

func (s *Service) post(ctx context.Context, p posting) (PostResult, error) {
	o := &postOp{opBase: opBase{operation: p.op, workspace: p.ws, key: PostKey(p.acct, p.key)}, p: p}
	if err := s.batch.do(ctx, o); err != nil {
		return PostResult{}, err
	}
	if o.err != nil {
		return PostResult{}, o.err
	}
	return o.res, nil
}

// nextEntry builds the account's next transaction, enforcing the expected
// version, a non-negative balance and overflow.
func (s *Service) nextEntry(acct Account, typ TxType, amount int64, expected *int64) (Transaction, error) {
	if expected != nil && *expected != acct.Version {
		return Transaction{}, newErr(CodeAborted, ReasonVersionMismatch,
			"the account's version is "+strconv.FormatInt(acct.Version, 10)+", not the expected "+strconv.FormatInt(*expected, 10),
			map[string]string{"current_version": strconv.FormatInt(acct.Version, 10), "expected_version": strconv.FormatInt(*expected, 10)})
	}
	var bal int64
	switch typ {
	case TypeIn:
		var err error
		if bal, err = addCredits(acct.Balance, amount); err != nil {
			return Transaction{}, err
		}
	case TypeOut:
		if acct.Available() < amount {
			return Transaction{}, errInsufficient(acct, amount)
		}
		bal = acct.Balance - amount
	}
	return Transaction{
		ID: s.newID(), Workspace: acct.Workspace, Account: acct.ID, Type: typ, Amount: amount,
		BalanceAfter: bal, AccountVersion: acct.Version + 1, CreateTime: s.clock(),
	}, nil
}

// errInsufficient refuses amount on acct: what is available (the balance
// less its holds) does not cover it.
func errInsufficient(acct Account, amount int64) error {
	bal, req := strconv.FormatInt(acct.Balance, 10), strconv.FormatInt(amount, 10)
	md := map[string]string{"balance": bal, "required": req}
	msg := "the balance of " + bal + " credits does not cover " + req
	if acct.Held > 0 {
		avail := strconv.FormatInt(acct.Available(), 10)
		md["available"], md["held"] = avail, strconv.FormatInt(acct.Held, 10)
		msg = "the " + avail + " credits available (balance " + bal + ", held " + md["held"] + ") do not cover " + req
	}
	return newErr(CodeFailedPrecondition, ReasonInsufficientCredits, msg, md)
}

func sameRequest(rec IdempotencyRecord, op Operation, fp []byte) error {
	if rec.Operation != op || !bytes.Equal(rec.Fingerprint, fp) {
		return newErr(CodeInvalid, ReasonIdempotencyKeyReused,
			"the idempotency key was already used for a different request",
			map[string]string{"original_operation": string(rec.Operation)})
	}
	return nil
}

func errDisabled(ws string) error {
	return newErr(CodeFailedPrecondition, ReasonCreditPaymentsDisabled,
		"credit payments are disabled for this workspace", map[string]string{"workspace": ws})
}

func errPackageInactive(id string) error {
	return newErr(CodeFailedPrecondition, ReasonPackageInactive,
		"the package is archived and can no longer be bought", map[string]string{"package_id": id})
}

func normMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// ---------------------------------------------------------------------------
// Reads

// GetBalance returns an account's balance (0/0 when never credited), with
// the workspace's credit-payments flag and the pending requests' credits.
// It reads from a replica when the store has one (see MinVersion).
func (s *Service) GetBalance(ctx context.Context, workspace, account string, opts ...ReadOption) (Balance, error) {
	o := readOpts(opts)
	var v violations
	checkID(&v, "workspace", workspace)
	checkID(&v, "account", account)
	checkMinVersion(&v, o.minVersion)
	if err := v.err(); err != nil {
		return Balance{}, err
	}
	var b Balance
	// The view holds the account's version: checked here, not read twice.
	err := s.replicaRead(ctx, workspace, "", o.minVersion, func(ctx context.Context, tx ReadTx) error {
		v, err := balanceView(ctx, tx, workspace, account)
		if err != nil {
			return err
		}
		if v.Account.Version < o.minVersion {
			return belowMinVersion{account, v.Account.Version}
		}
		b = Balance{Account: v.Account, CreditPaymentsEnabled: v.Settings.CreditPaymentsEnabled, PendingRequestCredits: v.Pending}
		b.NextExpireTime, b.NextExpiringCredits = nextExpiry(v.Grants)
		return nil
	})
	return b, err
}

// ListTransactionsInput selects a page of history.
type ListTransactionsInput struct {
	Workspace  string
	Account    string
	PageSize   int32
	PageToken  string
	Type       TxType
	Kind       Kind
	Start, End time.Time
	// MinVersion: see the ReadOption of the same name.
	MinVersion int64
}

// TransactionPage is a page of history, newest first.
type TransactionPage struct {
	Transactions  []Transaction
	NextPageToken string
}

// ListTransactions returns an account's history newest first. Pages are a
// keyset on the account version, so entries posted meanwhile never shift them.
// It reads from a replica when the store has one.
func (s *Service) ListTransactions(ctx context.Context, in ListTransactionsInput) (TransactionPage, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	checkID(&v, "account", in.Account)
	size := pageSize(&v, in.PageSize)
	if in.Type < TypeUnspecified || in.Type > TypeOut {
		v.add("type", "unknown transaction type")
	}
	if in.Kind < KindUnspecified || in.Kind > KindExpiry {
		v.add("kind", "unknown transaction kind")
	}
	if !in.Start.IsZero() && !in.End.IsZero() && !in.Start.Before(in.End) {
		v.add("end_time", "must be after start_time")
	}
	checkMinVersion(&v, in.MinVersion)
	if err := v.err(); err != nil {
		return TransactionPage{}, err
	}
	bind := binding("transactions", in.Workspace, in.Account, in.Type.String(), in.Kind.String(),
		timeKey(in.Start), timeKey(in.End))
	q := TransactionQuery{
		Workspace: in.Workspace, Account: in.Account, Type: in.Type, Kind: in.Kind,
		Start: in.Start, End: in.End, Limit: size + 1,
	}
	if in.PageToken != "" {
		cur, err := s.tokens.Decode(bind, in.PageToken)
		if err != nil {
			return TransactionPage{}, err
		}
		before, perr := strconv.ParseInt(cur, 10, 64)
		if perr != nil || before < 1 {
			return TransactionPage{}, invalid("page_token", "is invalid")
		}
		q.BeforeVersion = before
	}
	var rows []Transaction
	err := s.replicaRead(ctx, in.Workspace, in.Account, in.MinVersion, func(ctx context.Context, tx ReadTx) error {
		var err error
		rows, err = tx.ListTransactions(ctx, q)
		return err
	})
	if err != nil {
		return TransactionPage{}, err
	}
	page := TransactionPage{Transactions: rows}
	if len(rows) > size {
		page.Transactions = rows[:size]
		page.NextPageToken = s.tokens.Encode(bind, strconv.FormatInt(rows[size-1].AccountVersion, 10))
	}
	return page, nil
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ListAccountsInput selects a page of accounts.
type ListAccountsInput struct {
	Workspace string
	PageSize  int32
	PageToken string
}

// AccountPage is a page of balances ordered by account ID.
type AccountPage struct {
	Accounts      []Balance
	NextPageToken string
}

// ListAccounts returns every account of the workspace with its balance. It
// reads from a replica when the store has one.
func (s *Service) ListAccounts(ctx context.Context, in ListAccountsInput) (AccountPage, error) {
	var v violations
	checkID(&v, "workspace", in.Workspace)
	size := pageSize(&v, in.PageSize)
	if err := v.err(); err != nil {
		return AccountPage{}, err
	}
	bind := binding("accounts", in.Workspace)
	q := AccountQuery{Workspace: in.Workspace, Limit: size + 1}
	if in.PageToken != "" {
		cur, err := s.tokens.Decode(bind, in.PageToken)
		if err != nil {
			return AccountPage{}, err
		}
		q.AfterID = cur
	}
	var page AccountPage
	err := s.replicaRead(ctx, in.Workspace, "", 0, func(ctx context.Context, tx ReadTx) error {
		page = AccountPage{}
		rows, err := tx.ListAccounts(ctx, q)
		if err != nil {
			return err
		}
		st, err := tx.Settings(ctx, in.Workspace)
		if err != nil {
			return err
		}
		if len(rows) > size {
			rows = rows[:size]
			page.NextPageToken = s.tokens.Encode(bind, rows[size-1].ID)
		}
		page.Accounts = make([]Balance, len(rows))
		for i, a := range rows {
			pending, err := tx.PendingCredits(ctx, in.Workspace, a.ID)
			if err != nil {
				return err
			}
			page.Accounts[i] = Balance{Account: a, CreditPaymentsEnabled: st.CreditPaymentsEnabled, PendingRequestCredits: pending}
		}
		return nil
	})
	if err != nil {
		return AccountPage{}, err
	}
	return page, nil
}
