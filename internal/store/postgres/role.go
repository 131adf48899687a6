package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// DefaultRuntimeRole is the role Migrate creates for the service.
const DefaultRuntimeRole = "creditledger_app"

// RuntimeRole is the role the service connects as: it owns nothing, cannot
// bypass row-level security, and holds only the privileges the store uses.
type RuntimeRole struct {
	Name string
	// Password, when set, becomes the role's password (sent as a SCRAM
	// verifier: the statement never holds the password). Empty leaves an
	// existing role's password alone and creates a new role without one.
	Password string
}

// runtimeGrants are the runtime role's table privileges, and nothing more:
// the ledger's history (entries, idempotency records, events) is
// insert-only, the store deletes nothing but webhook endpoints (and their
// delivery log) an agency removes, and FOR UPDATE needs UPDATE. The
// registry of workspaces only grows; schema_migrations is read only.
var runtimeGrants = []struct{ table, privileges string }{
	{"settings", "SELECT, INSERT, UPDATE"},
	{"accounts", "SELECT, INSERT, UPDATE"},
	{"transactions", "SELECT, INSERT"},
	{"credit_requests", "SELECT, INSERT, UPDATE"},
	{"idempotency_keys", "SELECT, INSERT"},
	{"packages", "SELECT, INSERT, UPDATE"},
	{"conversion_rates", "SELECT, INSERT, UPDATE"},
	{"workspace_sequences", "SELECT, INSERT, UPDATE"},
	{"holds", "SELECT, INSERT, UPDATE"},
	{"grants", "SELECT, INSERT, UPDATE"},
	{"event_batches", "SELECT, INSERT"},
	{"event_sequences", "SELECT, INSERT, UPDATE"},
	{"webhook_endpoints", "SELECT, INSERT, UPDATE, DELETE"},
	{"webhook_deliveries", "SELECT, INSERT, DELETE"},
	{"webhook_workspaces", "SELECT, INSERT"},
	{"ledger_workspaces", "SELECT, INSERT"},
	{"schema_migrations", "SELECT"},
}

// runtimeFunctions are the functions the store calls itself, and those the
// triggers call (a trigger function itself needs no grant, but what it
// calls runs with the session's privileges).
var runtimeFunctions = []string{"ledger_expect(bigint, bigint, text)", "ledger_held(text, text)", "ledger_granted(text, text)"}

const codeDuplicateObject = "42710"

// ensureRuntimeRole creates the runtime role, or checks an existing one, and
// grants it exactly runtimeGrants in the current schema. It runs in conn,
// Migrate's last transaction, after the migrations, under its lock. Roles
// belong to the cluster, so migrations of two databases may create the same
// role at once: the loser of that race (rolled back to a savepoint) checks
// the winner's role instead.
func ensureRuntimeRole(ctx context.Context, conn dbtx, role RuntimeRole) error {
	if role.Name == "" {
		role.Name = DefaultRuntimeRole
	}
	name := pgx.Identifier{role.Name}.Sanitize()
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return mapErr(ctx, "runtime role: current user", err)
	}
	if role.Name == owner {
		return fmt.Errorf("postgres: the runtime role %q is the role migrations run as: "+
			"the service must connect as a role that owns nothing", role.Name)
	}
	var secret string
	if role.Password != "" {
		v, err := scramVerifier(role.Password)
		if err != nil {
			return err
		}
		// A verifier is base64 and '$:', never a quote.
		secret = " PASSWORD '" + v + "'"
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role.Name).Scan(&exists); err != nil {
		return mapErr(ctx, "runtime role: look up", err)
	}
	if !exists {
		sp, err := conn.Begin(ctx)
		if err != nil {
			return mapErr(ctx, "runtime role: savepoint", err)
		}
		_, err = sp.Exec(ctx, `CREATE ROLE `+name+` LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION`+secret)
		if err == nil {
			err = sp.Commit(ctx)
		} else {
			_ = sp.Rollback(ctx)
		}
		switch {
		case err == nil:
			secret = ""
		case pgCode(err) == codeDuplicateObject || pgCode(err) == codeUniqueViolation:
			// Created meanwhile by another database's migration.
		default:
			return fmt.Errorf("postgres: create the runtime role %q (the migrating role needs CREATEROLE, "+
				"or create the role beforehand): %w", role.Name, err)
		}
	}
	if err := checkRuntimeRole(ctx, conn, role.Name); err != nil {
		return err
	}
	if secret != "" {
		if _, err := conn.Exec(ctx, `ALTER ROLE `+name+secret); err != nil {
			return fmt.Errorf("postgres: set the runtime role's password: %w", err)
		}
	}
	return grantRuntimeRole(ctx, conn, role.Name)
}

// checkRuntimeRole refuses a role that could escape row-level security or
// the schema's triggers: a superuser, BYPASSRLS, a role that can create
// roles (and so grant itself the owner) or databases, a replication role,
// a member of the migrating role, or one that owns anything here.
func checkRuntimeRole(ctx context.Context, conn dbtx, name string) error {
	var super, bypass, createRole, createDB, repl, member, owns bool
	err := conn.QueryRow(ctx, `
		SELECT r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, r.rolreplication,
		       pg_has_role(r.oid, current_user, 'MEMBER'),
		       EXISTS (SELECT 1 FROM pg_class WHERE relowner = r.oid)
		       OR EXISTS (SELECT 1 FROM pg_proc WHERE proowner = r.oid)
		       OR EXISTS (SELECT 1 FROM pg_namespace WHERE nspowner = r.oid)
		       OR EXISTS (SELECT 1 FROM pg_type WHERE typowner = r.oid)
		       OR EXISTS (SELECT 1 FROM pg_database WHERE datname = current_database() AND datdba = r.oid)
		FROM pg_roles r WHERE r.rolname = $1`, name).Scan(&super, &bypass, &createRole, &createDB, &repl, &member, &owns)
	if err != nil {
		return mapErr(ctx, "runtime role: check", err)
	}
	var bad []string
	for _, c := range []struct {
		is   bool
		what string
	}{
		{super, "SUPERUSER"},
		{bypass, "BYPASSRLS"},
		{createRole, "CREATEROLE"},
		{createDB, "CREATEDB"},
		{repl, "REPLICATION"},
		{member, "member of the migrating role"},
		{owns, "owns objects in this database"},
	} {
		if c.is {
			bad = append(bad, c.what)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("postgres: refusing the runtime role %q: %s; the service's role must own nothing "+
			"and be NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION (fix the role or choose another "+
			"name with LEDGER_RUNTIME_ROLE)", name, strings.Join(bad, ", "))
	}
	return nil
}

// grantRuntimeRole resets the role's privileges on this schema to exactly
// runtimeGrants, in tx, and checks that every tenant table is under
// row-level security (a later migration that forgets it fails here).
func grantRuntimeRole(ctx context.Context, tx dbtx, role string) error {
	name := pgx.Identifier{role}.Sanitize()
	var schema string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return mapErr(ctx, "runtime role: schema", err)
	}
	s := pgx.Identifier{schema}.Sanitize()
	stmts := []string{
		`REVOKE ALL ON ALL TABLES IN SCHEMA ` + s + ` FROM ` + name,
		`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ` + s + ` FROM ` + name,
		`REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ` + s + ` FROM ` + name,
	}
	// The schema's owner may be another role (PostgreSQL 15's public
	// belongs to pg_database_owner): grant only what is missing.
	var usage, create bool
	if err := tx.QueryRow(ctx, `SELECT has_schema_privilege($1, $2, 'USAGE'), has_schema_privilege($1, $2, 'CREATE')`,
		role, schema).Scan(&usage, &create); err != nil {
		return mapErr(ctx, "runtime role: schema privileges", err)
	}
	if create {
		return fmt.Errorf("postgres: the runtime role %s may create objects in schema %s (before PostgreSQL 15 "+
			"everyone may in public): run REVOKE CREATE ON SCHEMA %s FROM PUBLIC (and from the role)", name, s, s)
	}
	if !usage {
		stmts = append(stmts, `GRANT USAGE ON SCHEMA `+s+` TO `+name)
	}
	for _, g := range runtimeGrants {
		stmts = append(stmts, `GRANT `+g.privileges+` ON TABLE `+pgx.Identifier{g.table}.Sanitize()+` TO `+name)
	}
	for _, f := range runtimeFunctions {
		stmts = append(stmts, `GRANT EXECUTE ON FUNCTION `+f+` TO `+name)
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres: runtime role: %s: %w", q, err)
		}
	}
	var unprotected []string
	rows, err := tx.Query(ctx, `
		SELECT c.relname FROM pg_class c
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'workspace' AND NOT a.attisdropped
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
		  AND c.relname <> 'ledger_workspaces'
		  AND NOT (c.relrowsecurity AND c.relforcerowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))
		ORDER BY 1`)
	if err != nil {
		return mapErr(ctx, "runtime role: check row security", err)
	}
	unprotected, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return mapErr(ctx, "runtime role: check row security", err)
	}
	if len(unprotected) > 0 {
		return fmt.Errorf("postgres: tenant tables without forced row-level security: %s", strings.Join(unprotected, ", "))
	}
	return nil
}

// scramVerifier computes what PostgreSQL stores for a SCRAM-SHA-256
// password (RFC 5802, RFC 7677), so that CREATE/ALTER ROLE carries the
// verifier and the password never reaches the server's statement log.
// Printable ASCII only: the server would apply SASLprep to anything else,
// and the verifier would not match.
func scramVerifier(password string) (string, error) {
	for _, r := range password {
		if r < 0x20 || r > 0x7e {
			return "", errors.New("postgres: the runtime role's password must be printable ASCII")
		}
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return scramVerifierSalt(password, salt)
}

func scramVerifierSalt(password string, salt []byte) (string, error) {
	const iterations = 4096 // PostgreSQL's scram_iterations default
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac(salted, "Server Key"))), nil
}

// SessionRole describes the role a store's connections run as.
type SessionRole struct {
	Name      string
	Superuser bool
	BypassRLS bool
	// Owner: the role has the privileges of the tables' owner.
	Owner bool
}

// BypassesRLS reports whether row-level security does not hold this role:
// a superuser or BYPASSRLS role ignores it, and the owner could turn it off.
func (r SessionRole) BypassesRLS() bool { return r.Superuser || r.BypassRLS || r.Owner }

// SessionRole reports the role the store connects as.
func (s *Store) SessionRole(ctx context.Context) (SessionRole, error) {
	var r SessionRole
	err := s.pool.QueryRow(ctx, `
		SELECT current_user, r.rolsuper, r.rolbypassrls, pg_has_role(c.relowner, 'USAGE')
		FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = 'accounts'::regclass`).
		Scan(&r.Name, &r.Superuser, &r.BypassRLS, &r.Owner)
	if err != nil {
		return SessionRole{}, mapErr(ctx, "read the session role", err)
	}
	return r, nil
}
