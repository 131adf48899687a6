#!/usr/bin/env bash
# A local PostgreSQL cluster for development, under the git-ignored
# .data/postgres directory of the repository, listening on a unix socket
# there (no TCP port), trust authentication for the postgres role.
#
#   scripts/pg-local.sh start   initialise (first time) and start it
#   scripts/pg-local.sh stop    stop it
#   scripts/pg-local.sh url     print the owner's URL of the ledger database (migrate)
#   scripts/pg-local.sh app-url print the runtime role's URL (serve, verify)
#   scripts/pg-local.sh status
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${LEDGER_PG_DIR:-$root/.data/postgres}
db=${LEDGER_PG_DB:-creditledger}

"$root/scripts/ensure-postgres.sh" >/dev/null
bindir=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 || command -v initdb)")

as_pg() {
	if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgres:///$db?host=$dir&user=${1:-postgres}&sslmode=disable"; }

case "${1:-}" in
start)
	mkdir -p "$dir"
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres: "$dir"
		# The server runs as postgres, which must reach $dir: make run
		# creates .data/ 0700 for the embedded store. Directories of the
		# repository above $dir get search permission only (o+x: postgres
		# can pass through, not list them; the embedded store's own
		# directory stays 0700).
		p=$(dirname "$dir")
		while [[ "$p" == "$root"/* ]]; do
			chmod o+x "$p"
			p=$(dirname "$p")
		done
		if ! runuser -u postgres -- test -x "$dir"; then
			echo "pg-local: the postgres user cannot reach $dir (a parent directory is closed to it);" \
				"set LEDGER_PG_DIR to a directory it can reach" >&2
			exit 1
		fi
	fi
	if [[ ! -f "$dir/data/PG_VERSION" ]]; then
		as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
	fi
	if ! as_pg "$bindir/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
		as_pg "$bindir/pg_ctl" start -w -D "$dir/data" -l "$dir/log" \
			-o "-k $dir -c listen_addresses='' -c max_connections=200" >/dev/null
	fi
	if ! as_pg "$bindir/psql" -h "$dir" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
		as_pg "$bindir/createdb" -h "$dir" -U postgres "$db"
	fi
	echo "PostgreSQL running in $dir; migrate with LEDGER_MIGRATE_DATABASE_URL=$(url), then serve with" \
		"LEDGER_DATABASE_URL=$(url creditledger_app) (the runtime role that migrate creates)" >&2
	;;
stop)
	if [[ -f "$dir/data/PG_VERSION" ]]; then as_pg "$bindir/pg_ctl" stop -D "$dir/data" -m fast || true; fi
	;;
url) url ;;
app-url) url creditledger_app ;;
status) as_pg "$bindir/pg_ctl" status -D "$dir/data" ;;
*)
	echo "usage: $0 start|stop|url|status" >&2
	exit 2
	;;
esac
