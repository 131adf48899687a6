// Package consumer is the kit of CreditLedger's consumer services
// (checkout, invoicing, and the portal): what each of them would otherwise
// write again. A service keeps only its rules, its SQL and its handlers.
//
// # Process
//
//   - Main is a service's func main: signals, exit codes.
//   - Parse reads the settings from flags and the environment through one
//     library (kong): a setting is a struct field with name, env, default
//     and help tags. Settings are the ones checkout and invoicing share
//     (--http-addr, --db, --ledger-addr, --reconcile-interval, --auth…);
//     their Check reads the secrets, from the environment or a *_FILE only
//     (ReadSecret). --help and --version come with it.
//   - Run loads the token keys, dials the ledger (DialLedger), lets the
//     service open its store and build its App, and serves it: Serve runs
//     the API, the follower of the ledger's events and the reconciliation
//     pass (Reconciles adapts one that reports), and drains on shutdown.
//     NewLogger is the services' log.
//
// # Storage
//
// OpenSQLite opens a service's SQLite file with the durability settings
// and migrates it: a Schema is the service's embedded NNNN_name.sql files,
// the version applied recorded in PRAGMA user_version as the services
// always have, so the database of any earlier release migrates forward
// (consumertest.Upgrade tests that). QueryOne and QueryAll scan a store's
// rows, its SQL staying in the store; Cursor and SaveCursor keep a
// Follower's place in its event_cursors table; FormatTime and ParseTime
// are how times are stored.
//
// # API
//
// NewBase gives a service's App what every App has: its log, its clock,
// its API helper and the Follower of the ledger's events. An API
// authenticates callers (bearer tokens, Verifier) and authorizes them
// (Access, Authorize: another workspace's or account's data is a
// not-found), reads strict and bounded JSON (Decode) and answers JSON
// (Respond, WriteJSON) with one error type, Error: a Kind for the HTTP
// status, a stable Code, a safe message and metadata, as
// {"error": {"code", "message", "metadata"}}. FromLedger and FromStore
// map a ledger's or a store's failure onto it; CheckIDs applies the
// ledger's identifier rule (package ident). Money is google.type.Money in
// the services' JSON, and OfferCredit asks the ledger whether an account
// may pay a price with credits (SpendLedger is what spending needs).
//
// # A service
//
// A minimal service main, with a setting of its own:
//
//	var program = consumer.Program{
//		Name:    "portal", // --help, --version, the log; PORTAL_… variables
//		Summary: "CreditLedger's client portal.",
//		Vars:    map[string]string{"http_addr": "127.0.0.1:8083"},
//	}
//
//	type settings struct {
//		consumer.Settings
//		Title string `name:"title" env:"PORTAL_TITLE" default:"Credits" help:"the pages' title"`
//	}
//
//	func main() { consumer.Main(program.Name, run) }
//
//	func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
//		var s settings
//		if err := consumer.Parse(program, &s, args, getenv, stdout, stderr); err != nil {
//			return err // flag.ErrHelp after --help or --version
//		}
//		return consumer.Run(ctx, program, &s.Settings, stderr, func(ctx context.Context, d consumer.Deps) (consumer.Service, error) {
//			db, err := consumer.OpenSQLite(ctx, s.DB, consumer.Schema{FS: migrations, Dir: "migrations"})
//			if err != nil {
//				return consumer.Service{}, err
//			}
//			api, err := consumer.NewAPI(consumer.APIConfig{Name: program.Name, Log: d.Log, Verifier: d.Verifier, NoAuth: d.NoAuth})
//			if err != nil {
//				_ = db.Close()
//				return consumer.Service{}, err
//			}
//			mux := http.NewServeMux()
//			mux.HandleFunc("GET /healthz", consumer.Healthz)
//			mux.HandleFunc("GET /v1/workspaces/{workspace}/title", func(w http.ResponseWriter, r *http.Request) {
//				ws := r.PathValue("workspace")
//				read := consumer.Access{Roles: token.Roles, Scopes: []string{token.ScopeLedgerRead}}
//				if _, ok := api.Allow(w, r, read, ws, "", consumer.NotFound("workspace", ws)); ok {
//					api.Respond(w, http.StatusOK, map[string]string{"title": s.Title}, nil)
//				}
//			})
//			return consumer.Service{Handler: mux, Close: db.Close}, nil
//		})
//	}
//
// A service that needs less (no database, no ledger connection) embeds
// only the settings it has (HTTPSettings, LedgerSettings, AuthSettings)
// in its own struct and calls the pieces itself: Parse, NewLogger, Serve.
// cmd/portal is one: it calls the REST gateway with each person's token,
// and listens first (Listen, ServeOptions.Listener) because its handler
// must know the URL browsers come back to. cmd/stripe-dev and cmd/demo
// use Main and Parse as well, for the same --help and --version.
package consumer
