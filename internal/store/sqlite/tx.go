package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/creditledger/creditledger/internal/ledger"
)

// readTx implements ledger.ReadTx over one SQLite transaction: a View's
// read transaction, or the read side of a batch (see batch.go). The read
// methods live with their resource (accounts.go, entries.go, …).
type readTx struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt // the pool's prepared statements, by query
}

var _ ledger.ReadTx = (*readTx)(nil)

// ---------------------------------------------------------------------------
// Statements. Each pool prepares its statements once (see prepareAll):
// SQLite's parser is a large share of a short transaction's cost,
// especially for the INSERT that compiles the ledger's triggers.

// stmt returns q as a statement of this transaction, reusing the pool's
// prepared statement when there is one. The caller closes it; a batch runs
// one statement for many rows.
func (t *readTx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return t.tx.StmtContext(ctx, st), nil
	}
	return t.tx.PrepareContext(ctx, q)
}

func (t *readTx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	defer func() { _ = st.Close() }()
	return st.ExecContext(ctx, args...)
}

// one scans the single row q returns (sql.ErrNoRows when none).
func (t *readTx) one(ctx context.Context, q string, args []any, scan func(scanner) error) error {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	return scan(st.QueryRowContext(ctx, args...))
}

// each scans every row q returns.
func (t *readTx) each(ctx context.Context, q string, args []any, scan func(scanner) error) error {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// multiRowSizes are the row counts of the multi-row INSERT statements a
// batch uses (prepared once, see writeQueries): its rows go in chunks of
// these sizes (30 rows: 16 + 8 + 4 + 2), a statement per chunk rather than
// per row. Each statement's start costs the embedded store about as much
// as inserting a row.
var multiRowSizes = []int{64, 32, 16, 8, 4, 2, 1}

// multiRow is insert (which ends with "VALUES ") with n groups of cols
// placeholders.
func multiRow(insert string, cols, n int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return insert + strings.TrimSuffix(strings.Repeat(group+", ", n), ", ")
}

// multiRowQueries are the statements of every size of multiRowSizes.
func multiRowQueries(insert string, cols int) []string {
	qs := make([]string, len(multiRowSizes))
	for i, n := range multiRowSizes {
		qs[i] = multiRow(insert, cols, n)
	}
	return qs
}

// execRows inserts items with insert (see multiRow), in chunks of the
// sizes of multiRowSizes, each item giving its cols arguments.
func execRows[T any](ctx context.Context, t *readTx, insert string, cols int, items []T, args func(T) ([]any, error)) error {
	for len(items) > 0 {
		n := 1
		for _, size := range multiRowSizes {
			if size <= len(items) {
				n = size
				break
			}
		}
		flat := make([]any, 0, n*cols)
		for _, it := range items[:n] {
			a, err := args(it)
			if err != nil {
				return err
			}
			flat = append(flat, a...)
		}
		if _, err := t.exec(ctx, multiRow(insert, cols, n), flat...); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// execEach runs q once per element of items with the arguments args
// returns, on one statement, and hands each result to check (nil: no check).
func execEach[T any](ctx context.Context, t *readTx, q string, items []T, args func(T) ([]any, error),
	check func(T, sql.Result) error,
) error {
	if len(items) == 0 {
		return nil
	}
	st, err := t.stmt(ctx, q)
	if err != nil {
		return err
	}
	defer func() { _ = st.Close() }()
	for _, it := range items {
		a, err := args(it)
		if err != nil {
			return err
		}
		res, err := st.ExecContext(ctx, a...)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(it, res); err != nil {
				return err
			}
		}
	}
	return nil
}

// oneRow fails with a conflict unless res changed exactly one row: a
// conditional write whose condition no longer held.
func oneRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != 1 {
		return ledger.ConflictError(fmt.Errorf("sqlite: %s", what))
	}
	return nil
}

// ---------------------------------------------------------------------------
// Conversions between domain values and columns.

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// toMicros stores a time as microseconds since the epoch, UTC; the zero
// time is NULL.
func toMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func fromMicros(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMicro(v.Int64).UTC()
}

// nullString stores "" as NULL (optional references).
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// toMetadata stores a map as JSON; an empty map is NULL.
func toMetadata(m map[string]string) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("sqlite: encode metadata: %w", err)
	}
	return string(b), nil
}

// fromMetadata reads JSON back; NULL and "{}" read as a nil map.
func fromMetadata(v sql.NullString) (map[string]string, error) {
	if !v.Valid || v.String == "" || v.String == "{}" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v.String), &m); err != nil {
		return nil, fmt.Errorf("sqlite: decode metadata: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// jsonList encodes keys as the JSON array that the batch's reads take
// apart with json_each: one statement reads every row a batch names.
func jsonList(keys []string) (string, error) {
	b, err := json.Marshal(keys)
	if err != nil {
		return "", fmt.Errorf("sqlite: encode key list: %w", err)
	}
	return string(b), nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// Statement sets

// readQueries are the statements of ReadTx and the Auditor, prepared on
// both pools.
func readQueries() []string {
	qs := []string{
		qSettings, qAccount, qListAccounts, qTransaction, qIdempotency, qIdempotencyPage, qRequest,
		qPendingCredits, qPackage, qListPackages, qActiveRate, qListRates, qWorkspaces,
		qHold, qGrants, qDueHolds, qDueGrants, qStatementBalance, qStatementLines, qListEventBatches, qLastEventSequence,
		qTransactionsIn,
	}
	for i := range 32 {
		qs = append(qs, transactionsQuery(i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0, i&16 != 0))
	}
	for i := range 16 {
		qs = append(qs, requestsQuery(i&1 != 0, i&2 != 0, i&4 != 0, i&8 != 0))
	}
	for i := range 4 {
		qs = append(qs, holdsQuery(i&1 != 0, i&2 != 0))
	}
	return qs
}

// writeQueries are the statements only Write runs, prepared on the writer.
func writeQueries() []string {
	return append(append([]string{
		// The batch's snapshot.
		qKeysIn, qTransactionsIn, qRequestsIn, qAccountsIn, qPendingCountsIn, qPackagesIn, qActiveRatesIn,
		qHoldsIn, qGrantsIn,
		// Its effects.
		qPutSettings, qInsertPackage, qUpdatePackage, qDeactivateRate, qInsertRate, qReserveRequestSeqs,
		qInsertRequest, qInsertAccount, qMoveAccount, qDecideRequest,
		qInsertHold, qUpdateHold, qInsertGrant, qUpdateGrant, qLastEventSequence, qInsertEvents,
	}, multiRowQueries(qInsertTransactions, transactionColumnCount)...), multiRowQueries(qPutIdempotencyRows, idempotencyColumnCount)...)
}

// prepareAll prepares qs on db. Call it before the pool is used by
// transactions: with the writer's single connection, preparing while a
// transaction holds it would wait forever.
func prepareAll(ctx context.Context, db *sql.DB, qs []string) (map[string]*sql.Stmt, error) {
	m := make(map[string]*sql.Stmt, len(qs))
	for _, q := range qs {
		if _, dup := m[q]; dup {
			continue
		}
		st, err := db.PrepareContext(ctx, q) //nolint:sqlclosecheck // kept for the store's life; closeAll in Close
		if err != nil {
			closeAll(m)
			return nil, fmt.Errorf("sqlite: prepare %q: %w", firstLine(q), err)
		}
		m[q] = st
	}
	return m, nil
}

func closeAll(m map[string]*sql.Stmt) {
	for _, st := range m {
		_ = st.Close()
	}
}

func firstLine(q string) string {
	q = strings.TrimSpace(q)
	if i := strings.IndexByte(q, '\n'); i >= 0 {
		return q[:i] + " …"
	}
	return q
}

// eachIn scans every row q returns for the workspace and the keys, which q
// takes as a JSON array (json_each); no keys, no query.
func (t *readTx) eachIn(ctx context.Context, q, workspace string, keys []string, scan func(scanner) error) error {
	if len(keys) == 0 {
		return nil
	}
	list, err := jsonList(keys)
	if err != nil {
		return err
	}
	return t.each(ctx, q, []any{workspace, list}, scan)
}
