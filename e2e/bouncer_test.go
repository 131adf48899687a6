package e2e

import (
	"testing"

	"github.com/creditledger/creditledger/internal/pgtest"
)

// The fault tests again, with ledgerd connected as deployments behind a
// pooler run it: through pgbouncer in transaction mode, with
// LEDGER_DATABASE_POOLER=transaction. The contract is the same: only OK, a
// refusal true of committed state, or UNAVAILABLE; every acknowledged
// operation in the ledger exactly once; `ledgerd verify` passes.

// bouncerEnv is the setting ledgerd needs behind the pooler.
const bouncerEnv = "LEDGER_DATABASE_POOLER=transaction"

// TestFaultCommitCutThroughPgBouncer cuts pgbouncer's server connections
// at COMMIT (ledgerd → pgbouncer → proxy → PostgreSQL): pgbouncer, not the
// socket, tells ledgerd that its transaction's server connection is gone
// (an error of its own, "server conn crashed?"), before or after the
// server committed. ledgerd must answer UNAVAILABLE either way, and a
// retry with the same key must find the committed operation.
func TestFaultCommitCutThroughPgBouncer(t *testing.T) {
	dbURL := postgresDatabase(t)
	ledgerdCmd(t, dbURL, "migrate")
	proxy, proxyURL := startPGProxy(t, dbURL)
	b := pgtest.NewBouncer(t, proxyURL)
	faultCommitCut(t, dbURL, proxy, startLedgerd(t, b.URL(dbURL), append(faultEnv(), bouncerEnv)...))
}

// TestFaultPostgresKillThroughPgBouncer SIGKILLs PostgreSQL behind
// pgbouncer, which stays up: its server connections break under ledgerd's
// transactions in flight, which ledgerd answers UNAVAILABLE; the
// transactions that begin while the server is down wait in pgbouncer
// until it is back (or query_wait_timeout, which is UNAVAILABLE too).
// ledgerd writes again soon after the restart, through the same pgbouncer.
func TestFaultPostgresKillThroughPgBouncer(t *testing.T) {
	cluster := startDurableCluster(t)
	dbURL := cluster.createDatabase(t, "ledger")
	ledgerdCmd(t, dbURL, "migrate")
	b := pgtest.NewBouncer(t, dbURL)
	faultPostgresKill(t, cluster, dbURL, startLedgerd(t, b.URL(dbURL), append(faultEnv(), bouncerEnv)...), true)
}
