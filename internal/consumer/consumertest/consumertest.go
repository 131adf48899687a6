// Package consumertest helps the consumer services (checkout, invoicing,
// the portal) test themselves: that the database an earlier release wrote
// opens, keeps its rows, and ends with the schema of a new one (Upgrade);
// a service's run started in-process on a loopback port (Start); the
// token keys and tokens of their callers (TestKeys, Principals); a
// background loop such as the follower of the ledger's events (Go).
package consumertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/creditledger/creditledger/internal/consumer"
)

// Upgrade opens with open a copy of fixture, a database file an earlier
// release wrote (testdata), hands the store to check, closes it, and
// fails the test unless the migrated schema is a new database's.
func Upgrade[S io.Closer](t *testing.T, fixture string, open func(context.Context, string) (S, error), check func(S)) {
	t.Helper()
	fresh := filepath.Join(t.TempDir(), "new.db")
	st, err := open(t.Context(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	path := CopyDB(t, fixture)
	if st, err = open(t.Context(), path); err != nil {
		t.Fatalf("%s: %v", fixture, err)
	}
	check(st)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Schema(t, fresh), Schema(t, path)); d != "" {
		t.Errorf("%s: schema (-new database +migrated):\n%s", fixture, d)
	}
}

// CopyDB copies the database file at path (testdata written by an earlier
// release) into a temporary directory, and returns the copy's path.
func CopyDB(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path) //nolint:gosec // G304: a test's own testdata
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	if err := os.WriteFile(dst, b, 0o600); err != nil { //nolint:gosec // G703: dst is in the test's own temporary directory
		t.Fatal(err)
	}
	return dst
}

// Schema is the schema of the (closed) database at path as SQLite keeps
// it: each table's, index's and trigger's SQL, in name order, and the
// user_version. Two databases with the same Schema answer every query
// alike.
func Schema(t testing.TB, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	ctx := context.Background()
	var version string
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT type, name, COALESCE(sql, '') FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	out := []string{"user_version " + version}
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		out = append(out, typ+" "+name+": "+text)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// OldDB writes at path (replacing what is there) the database that a
// release of a service whose schema was at version left: the service's
// migrations up to version, PRAGMA user_version, then stmts (the rows
// that release wrote). The next open of the service migrates it forward.
func OldDB(t testing.TB, path string, s consumer.Schema, version int64, stmts ...string) {
	t.Helper()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	var all []string
	for v := int64(1); v <= version; v++ {
		q, err := s.SQL(v)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, q)
	}
	all = append(all, fmt.Sprintf("PRAGMA user_version = %d", version))
	for _, q := range append(all, stmts...) {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}
