package consumer

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

// testSchema has three versions; the first two fail if applied twice
// (plain CREATE TABLE), so a test sees any migration run again.
var testSchema = Schema{Dir: "m", FS: fstest.MapFS{
	"m/0001_init.sql":    {Data: []byte("CREATE TABLE a (id TEXT PRIMARY KEY) STRICT;")},
	"m/0002_b.sql":       {Data: []byte("CREATE TABLE b (id TEXT PRIMARY KEY) STRICT; INSERT INTO a (id) VALUES ('from-2');")},
	"m/0004_cursors.sql": {Data: []byte("CREATE TABLE event_cursors (workspace TEXT PRIMARY KEY, sequence INTEGER NOT NULL, update_time TEXT NOT NULL) STRICT;")},
}}

func tempDB(t testing.TB) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "s.db")
}

// oldDatabase writes a database as the services did before the kit:
// the first versions' SQL by hand and the version in user_version.
func oldDatabase(t testing.TB, path string, versions ...int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, v := range versions {
		q, err := testSchema.SQL(v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(context.Background(), "PRAGMA user_version = "+strconv.FormatInt(versions[len(versions)-1], 10)); err != nil {
		t.Fatal(err)
	}
}

func tables(t testing.TB, db *sql.DB) string {
	t.Helper()
	names, err := QueryAll(t.Context(), db, "tables", ScanString, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, ",")
}

func TestOpenSQLiteMigrates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		old  []int64 // versions an earlier release applied; none: a new file
		// want: the rows of a (migration 2 inserts one)
		rows string
	}{
		{"a new database", nil, "from-2"},
		{"a database of the first release", []int64{1}, "from-2"},
		{"a database two versions behind", []int64{1, 2}, "from-2"},
		{"a current database", []int64{1, 2, 4}, "from-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tempDB(t)
			if len(tt.old) > 0 {
				oldDatabase(t, path, tt.old...)
			}
			db, err := OpenSQLite(t.Context(), path, testSchema)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = db.Close() }()
			if v, err := Pragma(t.Context(), db, "user_version"); err != nil || v != "4" {
				t.Errorf("user_version %s, %v; want 4", v, err)
			}
			if got := tables(t, db); got != "a,b,event_cursors" {
				t.Errorf("tables %s", got)
			}
			if got, err := QueryAll(t.Context(), db, "rows", ScanString, `SELECT id FROM a`); err != nil || strings.Join(got, ",") != tt.rows {
				t.Errorf("rows of a %v, %v; want %s", got, err, tt.rows)
			}
		})
	}
}

func TestOpenSQLiteIsDurable(t *testing.T) {
	t.Parallel()
	db, err := OpenSQLite(t.Context(), tempDB(t), testSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for name, want := range map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "10000"} {
		if got, err := Pragma(t.Context(), db, name); err != nil || got != want {
			t.Errorf("%s = %s, %v; want %s", name, got, err, want)
		}
	}
}

func TestOpenSQLiteRefusesANewerDatabase(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	db, err := OpenSQLite(t.Context(), path, testSchema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(t.Context(), "PRAGMA user_version = 9"); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if _, err := OpenSQLite(t.Context(), path, testSchema); err == nil || !strings.Contains(err.Error(), "schema version 9 is newer than this binary's 4") {
		t.Errorf("err = %v", err)
	}
}

// A migration that fails leaves the database as it was: no version is
// half applied.
func TestFailedMigrationChangesNothing(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	oldDatabase(t, path, 1)
	broken := Schema{Dir: "m", FS: fstest.MapFS{
		"m/0001_init.sql": testSchema.FS.(fstest.MapFS)["m/0001_init.sql"],
		"m/0002_b.sql":    {Data: []byte("CREATE TABLE b (id TEXT PRIMARY KEY) STRICT;")},
		"m/0003_bad.sql":  {Data: []byte("INSERT INTO nowhere VALUES (1);")},
	}}
	if _, err := OpenSQLite(t.Context(), path, broken); err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Fatalf("err = %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	if v, _ := Pragma(t.Context(), db, "user_version"); v != "1" {
		t.Errorf("user_version %s, want 1", v)
	}
	if got := tables(t, db); got != "a" {
		t.Errorf("tables %s, want a alone", got)
	}
}

// Processes opening one new file at once migrate it once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	path := tempDB(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			db, err := OpenSQLite(context.Background(), path, testSchema)
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestSchemaFiles(t *testing.T) {
	t.Parallel()
	if v, err := testSchema.Latest(); err != nil || v != 4 {
		t.Errorf("Latest = %d, %v", v, err)
	}
	if _, err := testSchema.SQL(3); err == nil {
		t.Error("SQL(3) of a schema without version 3")
	}
	if _, err := OpenSQLite(t.Context(), tempDB(t), Schema{Dir: "m", FS: fstest.MapFS{"m/init.sql": {}}}); err == nil {
		t.Error("opened with a badly named migration")
	}
	if _, err := OpenSQLite(t.Context(), "", testSchema); err == nil {
		t.Error("opened an empty path")
	}
}

func TestCursors(t *testing.T) {
	t.Parallel()
	db, err := OpenSQLite(t.Context(), tempDB(t), testSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	ctx := t.Context()
	if seq, err := Cursor(ctx, db, "ws"); err != nil || seq != 0 {
		t.Fatalf("first cursor %d, %v", seq, err)
	}
	for _, seq := range []int64{5, 3, 9} {
		if err := SaveCursor(ctx, db, "ws", seq); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := Cursor(ctx, db, "ws"); err != nil || seq != 9 {
		t.Errorf("cursor %d, %v; want 9 (never back)", seq, err)
	}
	if seq, _ := Cursor(ctx, db, "other"); seq != 0 {
		t.Errorf("another workspace's cursor %d", seq)
	}
}

func TestTimesSortAsText(t *testing.T) {
	t.Parallel()
	a := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("x", 3600))
	b := a.Add(time.Microsecond)
	if FormatTime(a) >= FormatTime(b) || !ParseTime(FormatTime(a)).Equal(a) || len(FormatTime(a)) != len(TimeLayout) {
		t.Errorf("%s, %s", FormatTime(a), FormatTime(b))
	}
	if !ParseTime("garbage").IsZero() {
		t.Error("garbage parsed")
	}
}

func TestQueryOneAndAll(t *testing.T) {
	t.Parallel()
	db, err := OpenSQLite(t.Context(), tempDB(t), testSchema)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	ctx := t.Context()
	if v, err := QueryOne(ctx, db, "get a", ScanString, `SELECT id FROM a WHERE id = ?`, "from-2"); err != nil || v != "from-2" {
		t.Errorf("QueryOne = %q, %v", v, err)
	}
	_, err = QueryOne(ctx, db, "get a", ScanString, `SELECT id FROM a WHERE id = ?`, "none")
	if !errors.Is(err, sql.ErrNoRows) || !strings.HasPrefix(err.Error(), "get a: ") {
		t.Errorf("QueryOne of nothing: %v", err)
	}
	if got, err := QueryAll(ctx, db, "list b", ScanString, `SELECT id FROM b`); err != nil || got == nil || len(got) != 0 {
		t.Errorf("QueryAll of nothing = %#v, %v; want an empty slice", got, err)
	}
	if _, err := QueryAll(ctx, db, "list c", ScanString, `SELECT id FROM c`); err == nil || !strings.HasPrefix(err.Error(), "list c: ") {
		t.Errorf("QueryAll of a missing table: %v", err)
	}
}
