package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/creditledger/creditledger/internal/ledger"
	"github.com/creditledger/creditledger/internal/pgtest"
)

// tenantTables lists the tables under the workspace policy, as the owner
// sees them.
func tenantTables(tb testing.TB, s *Store) []string {
	tb.Helper()
	rows, err := ownerPool(tb, s).Query(context.Background(), `
		SELECT c.relname FROM pg_class c
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace' AND NOT a.attisdropped
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
		  AND c.relname NOT IN ('ledger_workspaces', 'webhook_workspaces') -- registries of names, readable by all
		ORDER BY 1`)
	if err != nil {
		tb.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	return names
}

// runtimeConn connects to s's database as the store does: the runtime role.
func runtimeConn(tb testing.TB, s *Store) *pgx.Conn {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.Pool().Config().ConnString())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close(ctx) })
	return conn
}

// seedTwo writes the seed ledger into ws and a copy of part of it into "other".
func seedTwo(tb testing.TB, s *Store) {
	tb.Helper()
	seed(tb, s)
	settingsEvent := func(w string) []ledger.Event {
		return []ledger.Event{{Workspace: w, Type: ledger.EventSettingsUpdated, CreateTime: t0, Settings: &ledger.Settings{Workspace: w}}}
	}
	mustWrite(tb, s, ledger.WriteSet{Workspace: ws, LockSettings: true}, &ledger.Effects{
		Settings: &ledger.Settings{Workspace: ws, CreditPaymentsEnabled: true, UpdateTime: t0},
		Events:   settingsEvent(ws),
	})
	t1 := entry("t1", "a", ledger.TypeIn, 100, 100, 1)
	t1.Workspace = "other"
	acct := create("a", 100, 1)
	acct.Workspace = "other"
	rec := record("k-t1", ledger.OpCredit, "t1", "")
	rec.Workspace = "other"
	req := pending("r1", "a", 5)
	req.Workspace = "other"
	mustWrite(tb, s, ledger.WriteSet{Workspace: "other", LockSettings: true, Accounts: []string{"a"}, Keys: []string{"k-t1"}}, &ledger.Effects{
		Settings:     &ledger.Settings{Workspace: "other", CreditPaymentsEnabled: true, UpdateTime: t0},
		Accounts:     []ledger.AccountMove{acct},
		Transactions: []ledger.Transaction{t1},
		NewRequests:  []ledger.CreditRequest{req},
		Keys:         []ledger.IdempotencyRecord{rec},
		Events:       settingsEvent("other"),
	})
	seedHolds(tb, s, ws)
	seedHolds(tb, s, "other")
	seedWebhook(tb, s, ws)
	seedWebhook(tb, s, "other")
}

// seedWebhook adds an endpoint of w with one delivery attempt.
func seedWebhook(tb testing.TB, s *Store, w string) {
	tb.Helper()
	ctx := context.Background()
	e, err := s.CreateWebhookEndpoint(ctx, ledger.WebhookEndpoint{
		Workspace: w, ID: "we1", URL: "https://hooks.example.com/", Secret: "whsec_c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
		Enabled: true, NextAttempt: t0, CreateTime: t0, UpdateTime: t0,
	})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := s.LeaseWebhookEndpoints(ctx, w, "seed", t0, t0.Add(time.Minute), 1); err != nil {
		tb.Fatal(err)
	}
	d := ledger.WebhookDelivery{Workspace: w, EndpointID: e.ID, EventSequence: 1, EventType: ledger.EventSettingsUpdated, Attempt: 1, AttemptTime: t0, StatusCode: 200, Succeeded: true}
	if err := s.RecordWebhookAttempt(ctx, "seed", d, ledger.WebhookOutcome{DeliveredSequence: 1, NextAttempt: t0}, time.Time{}); err != nil {
		tb.Fatal(err)
	}
}

// TestRowLevelSecurityIsolatesWorkspaces: as the runtime role, a session
// without a workspace sees no row of any tenant table; with one, only that
// workspace's rows, and it can write no row of another workspace; the
// setting ends with its transaction.
func TestRowLevelSecurityIsolatesWorkspaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, Options{})
	seedTwo(t, s)
	conn := runtimeConn(t, s)
	owner := ownerPool(t, s)
	tables := tenantTables(t, s)
	for _, want := range []string{
		"accounts", "conversion_rates", "credit_requests", "grants", "holds", "idempotency_keys",
		"packages", "settings", "transactions", "workspace_sequences", "event_batches", "event_sequences", "webhook_endpoints", "webhook_deliveries",
	} {
		if !strings.Contains(strings.Join(tables, " "), want) {
			t.Fatalf("tenant tables %v lack %s", tables, want)
		}
	}

	count := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}, sql string,
	) int64 {
		t.Helper()
		var n int64
		if err := q.QueryRow(ctx, sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return n
	}
	for _, table := range tables {
		all := fmt.Sprintf(`SELECT count(*) FROM %s`, pgx.Identifier{table}.Sanitize())
		if n := count(owner, all+` WHERE workspace = 'ws'`); n == 0 {
			t.Fatalf("%s: the seed wrote no row of ws", table)
		}
		if n := count(conn, all); n != 0 {
			t.Errorf("%s: %d rows visible without a workspace, want 0", table, n)
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, qSetWorkspace, ws); err != nil {
				return err
			}
			if n, want := count(tx, all), count(owner, all+` WHERE workspace = 'ws'`); n != want {
				t.Errorf("%s: %d rows visible in ws, want its %d", table, n, want)
			}
			if n := count(tx, all+` WHERE workspace <> 'ws'`); n != 0 {
				t.Errorf("%s: %d rows of other workspaces visible in ws", table, n)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Transaction-local: nothing is left in the session.
	if n := count(conn, `SELECT count(*) FROM accounts`); n != 0 {
		t.Errorf("after COMMIT, %d accounts visible", n)
	}

	// WITH CHECK: set to ws, no row of another workspace can be written,
	// nor a row of ws moved to another.
	for name, sql := range map[string]string{
		"insert settings":             `INSERT INTO settings (workspace, credit_payments_enabled) VALUES ('intruder', true)`,
		"insert account":              `INSERT INTO accounts (workspace, id, balance, version) VALUES ('other', 'z', 0, 0)`,
		"insert sequence":             `INSERT INTO workspace_sequences (workspace, name, value) VALUES ('other', 'requests', 9)`,
		"move settings":               `UPDATE settings SET workspace = 'other2' WHERE workspace = 'ws'`,
		"register another":            `INSERT INTO ledger_workspaces (workspace) VALUES ('intruder')`,
		"register another's webhooks": `INSERT INTO webhook_workspaces (workspace) VALUES ('intruder')`,
		"insert event": `INSERT INTO event_batches (workspace, last_sequence, first_sequence, types, accounts, create_times, data)
			VALUES ('other', 99, 99, '{x}', '{""}', ARRAY[now()], ARRAY['{}'::bytea])`,
		"insert hold": `INSERT INTO holds (workspace, id, account, amount, kind, status, expire_time, create_time)
			VALUES ('other', 'hx', 'a', 1, 'ADJUSTMENT', 'ACTIVE', now(), now())`,
		"insert grant": `INSERT INTO grants (workspace, transaction_id, account, amount, remaining, expire_time)
			VALUES ('other', 't1', 'a', 1, 1, now())`,
	} {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, qSetWorkspace, ws); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, sql)
			return err
		})
		code := pgCode(err)
		if name == "insert grant" && code == "23514" {
			// The grant's BEFORE trigger runs first, and under the
			// policy it does not find the other workspace's entry.
			continue
		}
		if code != "42501" {
			t.Errorf("%s: got %v (%s), want 42501 (row-level security)", name, err, code)
		}
	}
	// Another workspace's rows are not even found for an update.
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qSetWorkspace, ws); err != nil {
			return err
		}
		ct, err := tx.Exec(ctx, `UPDATE settings SET credit_payments_enabled = false WHERE workspace = 'other'`)
		if err == nil && ct.RowsAffected() != 0 {
			t.Errorf("updated %d settings rows of another workspace", ct.RowsAffected())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The registry lists every workspace, whatever the setting.
	var names []string
	rows, err := conn.Query(ctx, qWorkspaces)
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || strings.Join(names, ",") != "other,ws" {
		t.Fatalf("registry: %v %v, want other,ws", names, err)
	}

	// Operator paths iterate workspace by workspace.
	rep := verifyLedger(t, s)
	if rep.Workspaces != 2 || rep.Accounts != 2 {
		t.Errorf("verify: %+v, want 2 workspaces and 2 accounts", rep)
	}
	n, _, err := s.PendingRequestStats(ctx)
	if err != nil || n != 2 {
		t.Errorf("PendingRequestStats = %d, %v; want 2 (r1 of ws and r1 of other)", n, err)
	}
	active, held, err := s.HoldStats(ctx)
	if err != nil || active != 2 || held != 60 {
		t.Errorf("HoldStats = %d, %d, %v; want 2 holds of 30 (h1 of ws and h1 of other)", active, held, err)
	}
}

// TestRuntimeRoleCannotEscape: the runtime role can neither turn row-level
// security or the triggers off, nor change the schema, nor empty a table,
// nor take another role's powers.
func TestRuntimeRoleCannotEscape(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t, Options{})
	seed(t, s)
	conn := runtimeConn(t, s)
	for _, sql := range []string{
		`DROP TRIGGER transactions_no_update ON transactions`,
		`ALTER TABLE transactions DISABLE TRIGGER transactions_no_update`,
		`ALTER TABLE transactions DISABLE TRIGGER ALL`,
		`ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY`,
		`ALTER TABLE accounts DISABLE ROW LEVEL SECURITY`,
		`ALTER TABLE accounts ADD COLUMN x int`,
		`ALTER TABLE accounts DROP CONSTRAINT accounts_balance_check`,
		`DROP POLICY workspace_isolation ON accounts`,
		`CREATE POLICY everything ON accounts USING (true)`,
		`ALTER TABLE accounts OWNER TO ` + pgtest.RuntimeRole,
		`TRUNCATE transactions`,
		`TRUNCATE ledger_workspaces`,
		`DELETE FROM accounts`,
		`DELETE FROM ledger_workspaces`,
		`UPDATE transactions SET amount = 1`,
		`UPDATE idempotency_keys SET key = 'x'`,
		`DROP TABLE transactions`,
		`CREATE TABLE accounts2 (id int)`,
		`CREATE OR REPLACE FUNCTION ledger_expect(expected bigint, actual bigint, what text) RETURNS void LANGUAGE sql AS ''`,
		`SET session_replication_role = replica`,
		`ALTER ROLE ` + pgtest.RuntimeRole + ` BYPASSRLS`,
		`SET ROLE postgres`,
	} {
		if _, err := conn.Exec(ctx, sql); pgCode(err) != "42501" && pgCode(err) != "42710" {
			t.Errorf("%s: got %v, want a refusal for want of privilege", sql, err)
		}
	}
	// Turning row security off makes a query that it would filter fail,
	// never see more.
	if _, err := conn.Exec(ctx, `SET row_security = off`); err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&n); pgCode(err) != "42501" {
		t.Errorf("with row_security off: %d rows, %v; want 42501", n, err)
	}
	if _, err := conn.Exec(ctx, `RESET row_security`); err != nil {
		t.Fatal(err)
	}
	// And the store still sees its data.
	mustView(t, s, func(ctx context.Context, tx ledger.ReadTx) error {
		a, err := tx.Account(ctx, ws, "a")
		if err != nil || a.Version != seeded.Version {
			t.Errorf("account a: %+v, %v", a, err)
		}
		return nil
	})
	if r, err := s.SessionRole(ctx); err != nil || r.BypassesRLS() || r.Name != pgtest.RuntimeRole {
		t.Errorf("SessionRole = %+v, %v; want %s, held by row-level security", r, err, pgtest.RuntimeRole)
	}
	owner, err := Open(ctx, ownerURL(s), Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = owner.Close() }()
	if r, err := owner.SessionRole(ctx); err != nil || !r.BypassesRLS() {
		t.Errorf("owner's SessionRole = %+v, %v; want it to bypass row-level security", r, err)
	}
}

var roleN atomic.Int64

// testRole is a role name unique to this test process (roles belong to the
// whole cluster, which parallel test binaries share); it is dropped when
// the test ends, after its privileges in url's database.
func testRole(t *testing.T, url, label string) string {
	t.Helper()
	name := fmt.Sprintf("%s_%s_%d", strings.ToLower(server.Name("r")), label, roleN.Add(1))
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Error(err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		id := pgx.Identifier{name}.Sanitize()
		_, _ = conn.Exec(ctx, `DROP OWNED BY `+id)
		if _, err := conn.Exec(ctx, `DROP ROLE IF EXISTS `+id); err != nil {
			t.Errorf("drop role %s: %v", name, err)
		}
	})
	return name
}

// TestMigrateCreatesTheRuntimeRole: migrate creates a role that can log
// in, holds no dangerous attribute, owns nothing and holds only the
// privileges the store needs; a second migrate changes nothing; a password
// is stored as a SCRAM verifier.
func TestMigrateCreatesTheRuntimeRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := server.NewDatabase(t, "")
	role := testRole(t, url, "app")
	for i := range 2 {
		if err := MigrateRole(ctx, url, RuntimeRole{Name: role, Password: "s3cret-Pa55word"}); err != nil {
			t.Fatalf("MigrateRole #%d: %v", i+1, err)
		}
	}
	if n, want := countMigrations(t, url), len(embedded(t)); n != want {
		t.Fatalf("%d migrations recorded, want %d", n, want)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var login, super, bypass, createDB, createRole bool
	var secret string
	if err := conn.QueryRow(ctx, `SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole, rolpassword
		FROM pg_authid WHERE rolname = $1`, role).Scan(&login, &super, &bypass, &createDB, &createRole, &secret); err != nil {
		t.Fatal(err)
	}
	if !login || super || bypass || createDB || createRole {
		t.Errorf("role attributes: login %v super %v bypassrls %v createdb %v createrole %v", login, super, bypass, createDB, createRole)
	}
	if !strings.HasPrefix(secret, "SCRAM-SHA-256$4096:") {
		t.Errorf("password stored as %.14q…, want a SCRAM verifier", secret)
	}
	if err := checkRuntimeRole(ctx, conn, role); err != nil {
		t.Errorf("the created role fails its own check: %v", err)
	}
	for _, c := range []struct {
		table, privilege string
		want             bool
	}{
		{"accounts", "SELECT", true},
		{"accounts", "INSERT", true},
		{"accounts", "UPDATE", true},
		{"accounts", "DELETE", false},
		{"accounts", "TRUNCATE", false},
		{"accounts", "TRIGGER", false},
		{"accounts", "REFERENCES", false},
		{"transactions", "INSERT", true},
		{"transactions", "UPDATE", false},
		{"transactions", "DELETE", false},
		{"idempotency_keys", "INSERT", true},
		{"idempotency_keys", "UPDATE", false},
		{"credit_requests", "UPDATE", true},
		{"credit_requests", "DELETE", false},
		{"ledger_workspaces", "INSERT", true},
		{"ledger_workspaces", "UPDATE", false},
		{"ledger_workspaces", "DELETE", false},
		{"webhook_workspaces", "INSERT", true},
		{"webhook_workspaces", "DELETE", false},
		{"event_batches", "INSERT", true},
		{"event_batches", "UPDATE", false},
		{"event_batches", "DELETE", false},
		{"schema_migrations", "SELECT", true},
		{"schema_migrations", "INSERT", false},
	} {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT has_table_privilege($1, $2, $3)`, role, c.table, c.privilege).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s on %s: %v, want %v", c.privilege, c.table, got, c.want)
		}
	}
	var create bool
	if err := conn.QueryRow(ctx, `SELECT has_schema_privilege($1, current_schema(), 'CREATE')`, role).Scan(&create); err != nil || create {
		t.Errorf("the role may create objects in the schema (%v)", err)
	}
}

// TestMigrateRefusesADangerousRole: an existing role that could escape
// row-level security is refused, and so is the owner itself.
func TestMigrateRefusesADangerousRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := server.NewDatabase(t, "")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	for _, c := range []struct{ label, attrs, setup, want string }{
		{"bypass", "LOGIN BYPASSRLS", "", "BYPASSRLS"},
		{"super", "LOGIN SUPERUSER", "", "SUPERUSER"},
		{"creator", "LOGIN CREATEROLE", "", "CREATEROLE"},
		{"owner", "LOGIN", `CREATE TABLE stray (id int); ALTER TABLE stray OWNER TO %s`, "owns objects"},
		{"member", "LOGIN IN ROLE postgres", "", "member of the migrating role"},
	} {
		role := testRole(t, url, c.label)
		id := pgx.Identifier{role}.Sanitize()
		if _, err := conn.Exec(ctx, `CREATE ROLE `+id+` `+c.attrs); err != nil {
			t.Fatal(err)
		}
		if c.setup != "" {
			if _, err := conn.Exec(ctx, fmt.Sprintf(c.setup, id)); err != nil {
				t.Fatal(err)
			}
		}
		err := MigrateRole(ctx, url, RuntimeRole{Name: role})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "refusing the runtime role") {
			t.Errorf("%s: MigrateRole = %v, want a refusal naming %q", c.label, err, c.want)
		}
		if c.setup != "" {
			if _, err := conn.Exec(ctx, `DROP TABLE stray`); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := MigrateRole(ctx, url, RuntimeRole{Name: "postgres"}); err == nil || !strings.Contains(err.Error(), "owns nothing") {
		t.Errorf("MigrateRole as the owner's own name = %v, want a refusal", err)
	}
}

// TestSCRAMVerifier checks the verifier against RFC 7677's example: the
// server signature computed from the stored ServerKey, and the client
// proof checked against the StoredKey, as the server does.
func TestSCRAMVerifier(t *testing.T) {
	t.Parallel()
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifierSalt("pencil", salt)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(strings.TrimPrefix(v, "SCRAM-SHA-256$"), "$")
	if !ok || head != "4096:W22ZaJ0SNY7soEsUEjb6gQ==" {
		t.Fatalf("verifier %q", v)
	}
	storedB64, serverB64, _ := strings.Cut(keys, ":")
	stored, _ := base64.StdEncoding.DecodeString(storedB64)
	serverKey, _ := base64.StdEncoding.DecodeString(serverB64)
	const authMessage = "n=user,r=rOprNGfwEbeRWgbNEkqO," +
		"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096," +
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	mac := func(key []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(authMessage))
		return h.Sum(nil)
	}
	if got := base64.StdEncoding.EncodeToString(mac(serverKey)); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Errorf("server signature %s", got)
	}
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	sig := mac(stored)
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ sig[i]
	}
	if got := sha256.Sum256(clientKey); !hmac.Equal(got[:], stored) {
		t.Errorf("the RFC's client proof does not match the stored key")
	}
	if _, err := scramVerifier("pässword"); err == nil {
		t.Errorf("a non-ASCII password was accepted")
	}
}
