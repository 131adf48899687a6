// Package consumertest helps the consumer services test their databases:
// a copy of a database an earlier release wrote, to open and migrate, and
// the schema as SQLite keeps it, to compare with a new database's.
package consumertest

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

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
