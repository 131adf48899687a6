package consumer_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/creditledger/creditledger/internal/consumer"
	"github.com/creditledger/creditledger/internal/consumer/consumertest"
	"github.com/creditledger/creditledger/internal/token"
)

// migrations stand for a service's embedded migrations/*.sql.
var migrations = fstest.MapFS{"migrations/0001_init.sql": {Data: []byte("CREATE TABLE event_cursors (workspace TEXT PRIMARY KEY, sequence INTEGER NOT NULL, update_time TEXT NOT NULL) STRICT;")}}

var program = consumer.Program{
	Name:    "portal", // --help, --version, the log; PORTAL_… variables
	Summary: "CreditLedger's client portal.",
	Vars:    map[string]string{"http_addr": "127.0.0.1:8083"},
}

type settings struct {
	consumer.Settings
	Title string `name:"title" env:"PORTAL_TITLE" default:"Credits" help:"the pages' title"`
}

// run is a whole service: its main is consumer.Main(program.Name, run).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	if err := consumer.Parse(program, &s, args, getenv, stdout, stderr); err != nil {
		return err // flag.ErrHelp after --help or --version
	}
	return consumer.Run(ctx, program, &s.Settings, stderr, func(ctx context.Context, d consumer.Deps) (consumer.Service, error) {
		db, err := consumer.OpenSQLite(ctx, s.DB, consumer.Schema{FS: migrations, Dir: "migrations"})
		if err != nil {
			return consumer.Service{}, err
		}
		api, err := consumer.NewAPI(consumer.APIConfig{Name: program.Name, Log: d.Log, Verifier: d.Verifier, NoAuth: d.NoAuth})
		if err != nil {
			_ = db.Close()
			return consumer.Service{}, err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", consumer.Healthz)
		mux.HandleFunc("GET /v1/workspaces/{workspace}/title", func(w http.ResponseWriter, r *http.Request) {
			ws := r.PathValue("workspace")
			read := consumer.Access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}
			if _, ok := api.Allow(w, r, read, ws, "", consumer.NotFound("workspace", ws)); ok {
				api.Respond(w, http.StatusOK, map[string]string{"title": s.Title}, nil)
			}
		})
		return consumer.Service{Handler: mux, Close: db.Close}, nil
	})
}

// A minimal service, with a setting of its own (see the package doc).
func Example() {
	consumer.Main(program.Name, run)
}

// The example runs: settings from flags and variables, its database, its
// API behind the kit's authentication, and a graceful stop.
func TestExampleService(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"LEDGER_ADDR": "127.0.0.1:1", // dialled lazily: the example never calls it
		"PORTAL_DB":   filepath.Join(t.TempDir(), "portal.db"), "PORTAL_AUTH": "none", "PORTAL_TITLE": "Your credits",
	}
	r := consumertest.Start(t, run, []string{"--http-addr", "127.0.0.1:0"}, env)
	if !strings.Contains(r.Logs.String(), `"service":"portal"`) {
		t.Errorf("the log does not name the service:\n%s", r.Logs)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", r.URL+"/v1/workspaces/acme/title", nil)
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	_ = json.NewDecoder(res.Body).Decode(&got)
	_ = res.Body.Close()
	if res.StatusCode != 200 || got["title"] != "Your credits" {
		t.Errorf("HTTP %d %v", res.StatusCode, got)
	}
	if err := r.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}
