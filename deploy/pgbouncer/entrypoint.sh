#!/bin/sh
# Entrypoint of the pgbouncer image: writes the runtime role's credentials
# (PGBOUNCER_AUTH_USER, default creditledger_app, and
# PGBOUNCER_AUTH_PASSWORD, a secret) into the auth_file of pgbouncer.ini,
# on a tmpfs (mode 0600, never in the image), then runs PgBouncer in the
# foreground. POSIX sh; scripts/check-deploy.sh runs it with Debian's
# pgbouncer against a throwaway PostgreSQL.
set -eu

: "${PGBOUNCER_AUTH_PASSWORD:?PGBOUNCER_AUTH_PASSWORD (the runtime role password) is not set}"
user=${PGBOUNCER_AUTH_USER:-creditledger_app}
ini=${PGBOUNCER_INI:-/etc/pgbouncer/pgbouncer.ini}
auth=${PGBOUNCER_AUTH_FILE:-/run/pgbouncer/userlist.txt}

# A double quote inside a value is written twice (the auth_file format).
quote() { printf '"%s"' "$(printf '%s' "$1" | sed 's/"/""/g')"; }

umask 077
mkdir -p "$(dirname "$auth")"
printf '%s %s\n' "$(quote "$user")" "$(quote "$PGBOUNCER_AUTH_PASSWORD")" >"$auth.tmp"
mv "$auth.tmp" "$auth"
exec /usr/sbin/pgbouncer "$ini"
