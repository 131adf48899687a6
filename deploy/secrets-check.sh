#!/bin/sh
# Run by the secrets-check service of deploy/compose.yaml, before PostgreSQL
# initialises its volume: exits 1 while a secret of compose.migrate.env,
# compose.secrets.env, compose.replication.env or compose.pgbouncer.env is
# missing or still a CHANGE-ME placeholder, or while a password disagrees
# with the URL or the service that must carry it. scripts/check-deploy.sh
# tests it. POSIX sh (it runs in the postgres image).
set -u

fail=0
bad() {
	echo "secrets-check: $*" >&2
	fail=1
}

for name in POSTGRES_PASSWORD LEDGER_MIGRATE_DATABASE_URL LEDGER_RUNTIME_ROLE_PASSWORD \
	LEDGER_DATABASE_URL LEDGER_READ_DATABASE_URL LEDGER_PAGE_TOKEN_KEY \
	POSTGRES_REPLICATION_PASSWORD PGBOUNCER_AUTH_PASSWORD; do
	eval "value=\${$name:-}"
	case $value in
	"") bad "$name is not set (deploy/compose.*.env)" ;;
	*CHANGE-ME*) bad "$name is still a CHANGE-ME placeholder (deploy/compose.*.env)" ;;
	esac
done

case ${LEDGER_MIGRATE_DATABASE_URL:-} in
*":${POSTGRES_PASSWORD:-}@"*) ;;
*) bad "LEDGER_MIGRATE_DATABASE_URL must carry POSTGRES_PASSWORD as its password (compose.migrate.env)" ;;
esac
case ${LEDGER_DATABASE_URL:-} in
*"//creditledger_app:${LEDGER_RUNTIME_ROLE_PASSWORD:-}@"*) ;;
*) bad "LEDGER_DATABASE_URL (compose.secrets.env) must connect as creditledger_app with LEDGER_RUNTIME_ROLE_PASSWORD (compose.migrate.env) as its password" ;;
esac
case ${LEDGER_READ_DATABASE_URL:-} in
*"//creditledger_app:${LEDGER_RUNTIME_ROLE_PASSWORD:-}@"*) ;;
*) bad "LEDGER_READ_DATABASE_URL (compose.secrets.env) must connect as creditledger_app with LEDGER_RUNTIME_ROLE_PASSWORD (compose.migrate.env) as its password" ;;
esac
[ "${PGBOUNCER_AUTH_PASSWORD:-}" = "${LEDGER_RUNTIME_ROLE_PASSWORD:-}" ] ||
	bad "PGBOUNCER_AUTH_PASSWORD (compose.pgbouncer.env) must be LEDGER_RUNTIME_ROLE_PASSWORD (compose.migrate.env)"
case ${POSTGRES_REPLICATION_PASSWORD:-} in
"${POSTGRES_PASSWORD:-}" | "${LEDGER_RUNTIME_ROLE_PASSWORD:-}")
	bad "POSTGRES_REPLICATION_PASSWORD (compose.replication.env) must differ from the owner's and the runtime role's passwords"
	;;
esac
case ${LEDGER_DB_ALLOW_PRIVILEGED_ROLE:-} in
"" | false | 0) ;;
*) bad "LEDGER_DB_ALLOW_PRIVILEGED_ROLE must not be set in the compose stack" ;;
esac

[ "$fail" -eq 0 ] || exit 1
echo "secrets-check: ok"
