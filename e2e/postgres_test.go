package e2e

import (
	"os"
	"testing"

	"github.com/creditledger/creditledger/internal/pgtest"
)

// The e2e tests get one throwaway PostgreSQL per test binary (or the server
// of LEDGER_TEST_DATABASE_URL) and one fresh, empty database per ledgerd,
// which ledgerd migrates itself. A machine without PostgreSQL fails loudly:
// `make test` installs it first.
func TestMain(m *testing.M) {
	code := pgtest.Run(m, nil)
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// postgresDatabase creates an empty database for one ledgerd and returns its URL.
func postgresDatabase(t *testing.T) string {
	t.Helper()
	return pgtest.Shared(t).NewDatabase(t, "")
}

// postgresEnv is the environment of a ledgerd on a fresh, empty database:
// migrations (at start) as the owner, serving as the runtime role, as a
// deployment runs it.
func postgresEnv(t *testing.T) []string {
	t.Helper()
	dbURL := postgresDatabase(t)
	return []string{
		envKV("LEDGER_DATABASE_URL", pgtest.RuntimeURL(dbURL)), envKV("LEDGER_MIGRATE_DATABASE_URL", dbURL),
		envKV("LEDGER_MIGRATE_ON_START", "true"),
	}
}
