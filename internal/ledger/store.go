package ledger

import (
	"context"
	"time"
)

// Store persists the ledger. Correctness comes from the store's transactions
// and constraints, never from in-process locks: several service replicas may
// share one database.
//
// Implementations: internal/store/postgres (production) and
// internal/store/sqlite (embedded default). Both pass internal/store/storetest.
type Store interface {
	// Update runs fn in one read-write database transaction and commits when
	// fn returns nil; any error from fn rolls back everything fn wrote.
	//
	// Stores translate driver errors: a serialization failure, a deadlock, a
	// lost conditional write or a duplicate idempotency key becomes
	// ErrConflict (the Service retries fn, so fn must have no effects outside
	// tx); an unreachable database becomes an error with CodeUnavailable.
	//
	// A store may run the functions of several concurrent Update calls in one
	// database transaction (group commit), each isolated by a savepoint so
	// that each call still gets its own outcome. Update returns only after the
	// outcome is durable (or known to be lost).
	Update(ctx context.Context, fn func(ctx context.Context, tx Tx) error) error

	// View runs fn in a read-only transaction that sees one consistent snapshot.
	View(ctx context.Context, fn func(ctx context.Context, tx ReadTx) error) error

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error

	// Close releases the store's resources.
	Close() error
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
	// PendingCredits sums the amounts of the account's PENDING requests.
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
}

// Tx reads and writes within one read-write transaction.
type Tx interface {
	ReadTx

	// LockIdempotency serialises transactions that use the same key until
	// the end of this transaction, then returns the record stored under the
	// key, if any.
	LockIdempotency(ctx context.Context, workspace, key string) (IdempotencyRecord, bool, error)
	// PutIdempotency stores rec; ErrConflict if the key already exists.
	PutIdempotency(ctx context.Context, rec IdempotencyRecord) error

	// LockAccount returns the account locked against concurrent writers until
	// the end of the transaction; a never-credited account reads as balance
	// 0, version 0.
	LockAccount(ctx context.Context, workspace, id string) (Account, error)
	// AppendTransaction inserts t and moves its account from version
	// t.AccountVersion-1 to t.AccountVersion with balance t.BalanceAfter,
	// creating the account at version 1. ErrConflict if the account is not
	// at t.AccountVersion-1.
	AppendTransaction(ctx context.Context, t Transaction) error

	// PutSettings creates or replaces the workspace's settings.
	PutSettings(ctx context.Context, s Settings) error

	// InsertRequest stores a new PENDING request.
	InsertRequest(ctx context.Context, r CreditRequest) error
	// LockRequest returns the request locked against concurrent deciders.
	LockRequest(ctx context.Context, workspace, id string) (CreditRequest, error)
	// DecideRequest stores r's decision (status, reason, decided_by,
	// decide_time, transaction). ErrConflict unless the stored request is
	// still PENDING.
	DecideRequest(ctx context.Context, r CreditRequest) error

	// InsertPackage stores a new package; ErrAlreadyExists if the ID is taken.
	InsertPackage(ctx context.Context, p Package) error
	// LockPackage returns a package locked against concurrent updates (a
	// read-modify-write of a package must not lose a concurrent change);
	// ErrNotFound if absent.
	LockPackage(ctx context.Context, workspace, id string) (Package, error)
	// UpdatePackage replaces a package's mutable fields; ErrNotFound if absent.
	UpdatePackage(ctx context.Context, p Package) error

	// InsertRate stores r as the currency's active rate and deactivates the
	// previous active rate of that currency.
	InsertRate(ctx context.Context, r ConversionRate) error
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
}

// AccountQuery selects a page of a workspace's accounts.
type AccountQuery struct {
	Workspace string
	AfterID   string
	Limit     int
}

// RequestQuery selects a page of credit requests. IDs are time-sortable, so
// ordering by ID is ordering by submission.
type RequestQuery struct {
	Workspace string
	Account   string        // "" for every account
	Status    RequestStatus // StatusUnspecified: any
	Desc      bool          // newest first
	AfterID   string        // keyset cursor: IDs after this one in the chosen order
	Limit     int
}

// PackageQuery selects a page of packages.
type PackageQuery struct {
	Workspace    string
	ShowInactive bool
	AfterID      string
	Limit        int
}
