package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditledger/creditledger/internal/pgtest"
)

// TestReadReplicaOverREST runs the real ledgerd on a real primary with
// LEDGER_READ_DATABASE_URL naming its streaming standby, and reads over
// the REST gateway as a portal does: while the standby's replay is paused
// a plain balance read answers what the standby holds, the same read with
// the min_version the credit answered answers the credit, and the metrics
// count where each read was served.
func TestReadReplicaOverREST(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := pgtest.StartReplicated(ctx)
	if err != nil {
		t.Fatalf("start a primary and a standby: %v", err)
	}
	t.Cleanup(rep.Stop)
	db, err := rep.Primary.CreateDatabase(ctx, "ledger")
	if err != nil {
		t.Fatal(err)
	}
	bin := binaries(t)
	ledgerd := startProc(t, filepath.Join(bin, exe("ledgerd")),
		[]string{"serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"},
		envKV("LEDGER_AUTH", "none"),
		envKV("LEDGER_MIGRATE_ON_START", "true"), envKV("LEDGER_MIGRATE_DATABASE_URL", rep.Primary.URL(db)),
		envKV("LEDGER_DATABASE_URL", pgtest.RuntimeURL(rep.Primary.URL(db))),
		envKV("LEDGER_READ_DATABASE_URL", pgtest.RuntimeURL(rep.StandbyURL(db))))
	rest := api{t: t, base: "http://" + ledgerd.field(t, "http_addr")}
	metricsURL := "http://" + ledgerd.field(t, "metrics_addr") + "/metrics"
	ledgerd.waitLog(t, 30*time.Second, "read replica serves reads", nil)

	type txOut struct {
		AccountVersion string `json:"accountVersion"`
		BalanceAfter   string `json:"balanceAfter"`
	}
	credit := func(key string, amount int) txOut {
		var out struct{ Transaction txOut }
		rest.must(http.StatusOK, "POST", "/v1/workspaces/acme/accounts/client-1:credit",
			map[string]any{"amount": fmt.Sprint(amount), "reference": key, "idempotencyKey": key}, &out)
		return out.Transaction
	}
	balance := func(query string) (int, string) {
		var raw map[string]any
		code, err := rest.call("GET", "/v1/workspaces/acme/accounts/client-1/balance"+query, nil, &raw)
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusOK { // the gateway answers the Balance message itself
			return code, fmt.Sprint(raw["balance"])
		}
		return code, fmt.Sprint(raw)
	}

	first := credit("pi_1", 100)
	if err := rep.WaitCaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if code, b := balance(""); code != http.StatusOK || b != "100" {
		t.Fatalf("balance: HTTP %d %s, want 100", code, b)
	}
	if err := rep.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	second := credit("pi_2", 50)
	if second.AccountVersion != "2" || first.AccountVersion != "1" {
		t.Fatalf("versions %s, %s", first.AccountVersion, second.AccountVersion)
	}
	if code, b := balance(""); code != http.StatusOK || b != "100" {
		t.Errorf("balance from the paused standby: HTTP %d %s, want its 100", code, b)
	}
	if code, b := balance("?minVersion=" + second.AccountVersion); code != http.StatusOK || b != "150" {
		t.Errorf("balance with minVersion=2: HTTP %d %s, want 150 (read your writes)", code, b)
	}
	if code, b := balance("?minVersion=9"); code != http.StatusConflict || !strings.Contains(b, "VERSION_MISMATCH") {
		t.Errorf("balance with minVersion=9: HTTP %d %s, want 409 VERSION_MISMATCH", code, b)
	}
	var hist struct{ Transactions []txOut }
	rest.must(http.StatusOK, "GET", "/v1/workspaces/acme/accounts/client-1/transactions?minVersion=2", nil, &hist)
	if len(hist.Transactions) != 2 {
		t.Errorf("history with minVersion=2: %d entries, want 2", len(hist.Transactions))
	}
	if err := rep.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}

	metrics := scrape(t, metricsURL)
	for _, want := range []string{
		`creditledger_replica_reads_total{served_by="replica"} 2`,
		`creditledger_replica_reads_total{served_by="primary_behind"} 3`,
		`creditledger_read_replica_usable{replica=`,
		`creditledger_read_replica_lag_bytes{replica=`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// scrape returns the text of a Prometheus endpoint.
func scrape(t testing.TB, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: HTTP %d", url, res.StatusCode)
	}
	return string(b)
}
