package ledger

import (
	"context"
	"time"
)

// Store persists the ledger. Correctness comes from the store's transactions,
// locks and constraints, never from in-process locks: several service
// replicas may share one database.
//
// Every write goes through Write, one batch of operations of one workspace at
// a time (see batch.go): the store reads and locks what the batch names, the
// domain decides every operation against that state, and the store writes
// every effect and commits once.
//
// Implementations: internal/store/postgres (production) and
// internal/store/sqlite (embedded default). Both pass internal/store/storetest.
type Store interface {
	// Write runs one batch in one read-write database transaction:
	//
	//  1. it reads and locks what set names, in the global lock order
	//     (settings, then requests by ID, then accounts by ID, then the
	//     pending-request counts of set.Pending, then packages by ID, then
	//     rates by currency), so that two batches never deadlock;
	//  2. it calls decide once with what it read (decide has no effects
	//     outside the Effects it returns, and must not keep the Snapshot);
	//  3. it writes the effects, assigning sequence numbers to new requests
	//     in the order given, and commits.
	//
	// Write returns nil only when the commit succeeded. Errors:
	//   - decide's error, unchanged, after a rollback;
	//   - ErrConflict (errors.Is) when the database refused the batch because
	//     of a concurrent writer (a duplicate key, a serialization failure):
	//     nothing was committed, and deciding the batch again is safe;
	//   - CodeUnavailable when the database is unreachable or the outcome of
	//     the commit is unknown (the connection broke after COMMIT was sent);
	//   - anything else (CodeInternal): the database refused the batch and
	//     nothing was committed.
	Write(ctx context.Context, set WriteSet, decide func(*Snapshot) (*Effects, error)) error

	// View runs fn in a read-only transaction that sees one consistent snapshot.
	View(ctx context.Context, fn func(ctx context.Context, tx ReadTx) error) error

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
}

// What every store must hold for holds, grants and reversals (SPEC §9).
// The domain produces Effects that respect it; the database must refuse
// what breaks it too, as it does for balances and version chains:
//
//   - A hold is created ACTIVE and leaves ACTIVE exactly once, to CAPTURED,
//     VOIDED or EXPIRED; a later status change is refused by the database.
//     A HoldUpdates row whose stored status is no longer ACTIVE makes the
//     batch a conflict (ErrConflict), like an account whose version moved.
//     Only status, captured amount, transaction and update time change.
//   - Account.Held = Σ amounts of the account's ACTIVE holds, and
//     0 ≤ Held ≤ Balance. An AccountMove may change Held alone: Version
//     then equals FromVersion, and the conditional update still checks the
//     version read; no entry is required for such a move.
//   - A grant is created with its IN entry (NewGrants in the same batch)
//     with Remaining ≤ Amount. GrantUpdates only lower Remaining (≥ 0) and
//     set ExpiryTransactionID once (Remaining is then 0). Σ Remaining of an
//     account's open grants ≤ its balance. Open: Remaining > 0 and no
//     ExpiryTransactionID.
//   - A REVERSAL entry names ReversesTransactionID, an entry of the same
//     account; the reversals of an entry sum to at most its amount; EXPIRY
//     and REVERSAL entries are never reversed. ReversedAmount is computed
//     on every read of an entry.
//   - Idempotency records may name a hold: create_hold (HoldID),
//     capture_hold (HoldID and TransactionID), void_hold (HoldID), reverse
//     (TransactionID). Replays read the holds and entries records name.
//   - Holds and grants are tenant tables like the others (workspace first
//     in every key and index; row-level security on PostgreSQL).
//
// Stores also offer HoldStats(ctx) (active holds and held credits over
// every workspace), beside PendingRequestStats, for the metrics gauges.

// WriteSet names what a batch reads, and locks, before it decides. Every
// list is sorted and free of duplicates (the batcher builds it so).
type WriteSet struct {
	Workspace string
	// LockSettings locks the workspace's settings (the batch changes them).
	LockSettings bool
	// Requests are credit requests to read and lock; the accounts they
	// belong to are read and locked with Accounts.
	Requests []string
	// Accounts are accounts to read and lock.
	Accounts []string
	// Keys are idempotency keys to read, together with the transactions
	// and requests their records name.
	Keys []string
	// Packages are packages to read; locked when LockPackages is set (the
	// batch changes packages).
	Packages     []string
	LockPackages bool
	// Currencies are currencies whose active rate the batch reads and locks.
	Currencies []string
	// Pending are accounts whose PENDING requests the batch counts (it may
	// add requests to them). The count is read under a lock, per account,
	// that two batches cannot hold at once, even for an account that has
	// no row yet: two batches never both add to a count they read alike.
	Pending []string
	// Holds are holds to read and lock; the accounts they belong to are
	// read and locked with Accounts.
	Holds []string
	// Transactions are entries to read (a reversal's originals), with
	// their ReversedAmount; the accounts they belong to are read and
	// locked with Accounts, and ReversedAmount is read after those locks.
	Transactions []string
	// GrantsOf are accounts whose open grants (Remaining > 0, no expiry
	// entry yet) the batch reads: it may draw from them or expire them.
	// The open grants of the accounts of Holds and Transactions are read
	// too (a capture or a reversal draws from them, and the batch learns
	// their account only from the snapshot). They are read after the
	// account locks, which every change of a grant holds.
	GrantsOf []string
}

// Snapshot is the state a batch decides on, read under the batch's locks.
// Absent entries do not exist in the store.
type Snapshot struct {
	// Settings are the workspace's settings, or the defaults naming the
	// workspace (credit payments disabled, zero UpdateTime).
	Settings Settings
	// Accounts holds every existing account of WriteSet.Accounts and of the
	// requests of WriteSet.Requests, by ID.
	Accounts map[string]Account
	// Keys holds the records of WriteSet.Keys that exist, by key.
	Keys map[string]IdempotencyRecord
	// Transactions holds the transactions the records of Keys name, by ID.
	Transactions map[string]Transaction
	// Requests holds the requests of WriteSet.Requests and those the
	// records of Keys name, by ID.
	Requests map[string]CreditRequest
	// Packages holds the packages of WriteSet.Packages that exist, by ID.
	Packages map[string]Package
	// Rates holds the active rates of WriteSet.Currencies, by currency.
	Rates map[string]ConversionRate
	// Pending holds the number of PENDING requests of the accounts of
	// WriteSet.Pending, by account; absent (or a nil map) means none.
	Pending map[string]int
	// Holds holds the holds of WriteSet.Holds and those the records of
	// Keys name, by ID.
	Holds map[string]Hold
	// Grants holds the open grants of the accounts of WriteSet.GrantsOf
	// and of the accounts of WriteSet.Holds and WriteSet.Transactions, by
	// account, ordered by ExpireTime then TransactionID.
	Grants map[string][]Grant
	// (Transactions also holds the entries of WriteSet.Transactions.)
}

// Effects is everything a batch writes. Lists are in the order the store
// must apply them.
type Effects struct {
	// Accounts move to their new state, sorted by ID.
	Accounts []AccountMove
	// Transactions are the new entries, sorted by account, then version.
	Transactions []Transaction
	// NewRequests are new PENDING requests; the store numbers them (Seq)
	// from the workspace's request sequence, in this order.
	NewRequests []CreditRequest
	// Decisions are requests that leave PENDING (status, reason, decider,
	// decide time, transaction).
	Decisions []CreditRequest
	// Keys are the new idempotency records.
	Keys []IdempotencyRecord
	// Settings, when set, replace the workspace's settings.
	Settings *Settings
	// NewPackages are created; PackageUpdates replace mutable fields.
	NewPackages    []Package
	PackageUpdates []Package
	// Rates each become their currency's active rate, in order; the rate
	// they replace stays as history.
	Rates []ConversionRate
	// NewHolds are created (Active); HoldUpdates leave Active (status,
	// captured amount, transaction, update time), each at most once.
	NewHolds    []Hold
	HoldUpdates []Hold
	// NewGrants are created with the IN entries that grant them, with
	// what is left of them after the batch (Remaining ≤ Amount: the batch
	// that grants credits may spend them); GrantUpdates replace Remaining
	// and ExpiryTransactionID of open grants.
	NewGrants    []Grant
	GrantUpdates []Grant
	// Events are what the batch tells integrators (SPEC §10), in order; the
	// store numbers them from the workspace's event sequence (the next
	// after its last, gap-free) and writes them in the batch's
	// transaction, so that the workspace's sequence follows commit order:
	// a batch that commits after another has greater sequences.
	Events []Event
}

// Empty reports whether the batch writes nothing.
func (e *Effects) Empty() bool {
	return len(e.Accounts) == 0 && len(e.Transactions) == 0 && len(e.NewRequests) == 0 &&
		len(e.Decisions) == 0 && len(e.Keys) == 0 && e.Settings == nil && len(e.NewPackages) == 0 &&
		len(e.PackageUpdates) == 0 && len(e.Rates) == 0 && len(e.NewHolds) == 0 && len(e.HoldUpdates) == 0 &&
		len(e.NewGrants) == 0 && len(e.GrantUpdates) == 0 && len(e.Events) == 0
}

// AccountMove is an account's new state after a batch. A move may change
// Held alone (a hold created or released posts no entry): Version then
// stays FromVersion.
type AccountMove struct {
	Account           // the new balance, held, version and update time
	FromVersion int64 // the version the batch read (0 for a new account)
	Create      bool  // the account does not exist in the store yet
}

// ReadTx reads within a transaction. Every method is scoped to one
// workspace: nothing of another workspace is ever returned.
type ReadTx interface {
	// Settings returns the workspace's settings, or the defaults naming the
	// workspace (credit payments disabled, zero UpdateTime) when never set.
	Settings(ctx context.Context, workspace string) (Settings, error)
	// Account returns the account, or, when it was never credited, a zero
	// account (balance 0, version 0) that still names workspace and id.
	Account(ctx context.Context, workspace, id string) (Account, error)
	// ListAccounts returns accounts with ID > AfterID, ordered by ID.
	ListAccounts(ctx context.Context, q AccountQuery) ([]Account, error)
	// Transaction returns one transaction or an ErrNotFound-matching error.
	Transaction(ctx context.Context, workspace, id string) (Transaction, error)
	// ListTransactions returns an account's transactions by descending
	// version, filtered by q.
	ListTransactions(ctx context.Context, q TransactionQuery) ([]Transaction, error)
	// Idempotency returns the record stored under key, if any.
	Idempotency(ctx context.Context, workspace, key string) (IdempotencyRecord, bool, error)
	// Request returns one credit request or an ErrNotFound-matching error.
	Request(ctx context.Context, workspace, id string) (CreditRequest, error)
	// ListRequests returns credit requests filtered and ordered by q.
	ListRequests(ctx context.Context, q RequestQuery) ([]CreditRequest, error)
	// PendingCredits sums the amounts of the account's PENDING requests,
	// saturating at the largest int64 (a sum that large cannot be spent).
	PendingCredits(ctx context.Context, workspace, account string) (int64, error)
	// Package returns one package (active or not) or an ErrNotFound-matching error.
	Package(ctx context.Context, workspace, id string) (Package, error)
	// ListPackages returns packages with ID > AfterID, ordered by ID.
	ListPackages(ctx context.Context, q PackageQuery) ([]Package, error)
	// ActiveRate returns the currency's active rate or an ErrNotFound-matching error.
	ActiveRate(ctx context.Context, workspace, currency string) (ConversionRate, error)
	// ListRates returns the active rates ordered by currency, and with
	// history also the replaced ones (newest first within a currency).
	ListRates(ctx context.Context, workspace string, history bool) ([]ConversionRate, error)
	// Hold returns one hold or an ErrNotFound-matching error.
	Hold(ctx context.Context, workspace, id string) (Hold, error)
	// ListHolds returns an account's holds by descending ID, filtered by q.
	ListHolds(ctx context.Context, q HoldQuery) ([]Hold, error)
	// Grants returns the account's open grants (Remaining > 0, no expiry
	// entry), ordered by ExpireTime then TransactionID.
	Grants(ctx context.Context, workspace, account string) ([]Grant, error)
	// DueHolds returns up to limit Active holds with ExpireTime ≤ now.
	DueHolds(ctx context.Context, workspace string, now time.Time, limit int) ([]Hold, error)
	// DueGrants returns up to limit open grants with ExpireTime ≤ now,
	// soonest first.
	DueGrants(ctx context.Context, workspace string, now time.Time, limit int) ([]Grant, error)
	// Statement sums the account's entries with Start ≤ create_time < End
	// (see Statement); OpeningBalance and ClosingBalance are the balance
	// after the entry of highest version created before Start and End.
	Statement(ctx context.Context, workspace, account string, start, end time.Time) (Statement, error)
	// TransactionsByID returns the entries of workspace with these IDs (in
	// any order; those that do not exist are left out).
	TransactionsByID(ctx context.Context, workspace string, ids []string) ([]Transaction, error)
	// ListEvents returns the events of q.Workspace with Sequence > q.After
	// that match q, ascending, at most q.Limit.
	ListEvents(ctx context.Context, q EventQuery) ([]Event, error)
	// LastEventSequence returns the workspace's last event sequence (0
	// before its first event).
	LastEventSequence(ctx context.Context, workspace string) (int64, error)
}

// HoldQuery selects a page of an account's holds.
type HoldQuery struct {
	Workspace string
	Account   string
	Status    HoldStatus // HoldUnspecified: any
	BeforeID  string     // only IDs < BeforeID; "" means no bound
	Limit     int
}

// TransactionQuery selects a page of an account's history.
type TransactionQuery struct {
	Workspace     string
	Account       string
	BeforeVersion int64     // only versions < BeforeVersion; 0 means no bound
	Type          TxType    // TypeUnspecified: any
	Kind          Kind      // KindUnspecified: any
	Start         time.Time // create_time >= Start when not zero
	End           time.Time // create_time < End when not zero
	Limit         int
	// Ascending pages oldest first: versions > AfterVersion, ascending
	// (BeforeVersion is then ignored).
	Ascending    bool
	AfterVersion int64
}

// AccountQuery selects a page of a workspace's accounts.
type AccountQuery struct {
	Workspace string
	AfterID   string
	Limit     int
}

// RequestQuery selects a page of credit requests, ordered by Seq: the
// workspace's request sequence, assigned in commit order, so that a request
// committed later never lands behind a cursor a reader already passed.
type RequestQuery struct {
	Workspace string
	Account   string        // "" for every account
	Status    RequestStatus // StatusUnspecified: any
	Desc      bool          // newest first
	AfterSeq  int64         // keyset cursor: after this Seq in the chosen order; 0 for the first page
	Limit     int
}

// PackageQuery selects a page of packages.
type PackageQuery struct {
	Workspace    string
	ShowInactive bool
	AfterID      string
	Limit        int
}
