#!/bin/sh
# Prepares the primary for its streaming standby: the replication role
# creditledger_replicator (password POSTGRES_REPLICATION_PASSWORD, a
# secret), the physical replication slot the standby streams from, and a
# pg_hba.conf line that lets that role, and only it, replicate, with its
# password. Run by the postgres image when it initialises an empty volume
# (/docker-entrypoint-initdb.d); idempotent, so it can also be run once on
# a primary that already holds data, followed by a configuration reload:
#   docker compose -f deploy/compose.yaml exec -u postgres postgres sh /docker-entrypoint-initdb.d/10-replication.sh
# POSIX sh (it runs in the postgres image); scripts/check-deploy.sh runs it
# against a throwaway PostgreSQL.
set -eu

: "${POSTGRES_REPLICATION_PASSWORD:?the replication role password is not set}"
: "${PGDATA:?PGDATA is not set}"
role=${REPLICATION_USER:-creditledger_replicator}
slot=${REPLICATION_SLOT:-creditledger_standby}

# psql variables (:'name') quote the values; nothing is spliced into SQL.
psql -v ON_ERROR_STOP=1 --no-psqlrc -q --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
	-v role="$role" -v slot="$slot" -v password="$POSTGRES_REPLICATION_PASSWORD" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'role') AS create_role \gset
\if :create_role
CREATE ROLE :"role" WITH LOGIN REPLICATION;
\endif
-- NOSUPERUSER and no other privilege: it can stream WAL, nothing else.
ALTER ROLE :"role" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'password';
-- Reserved now, so that the WAL the standby's base backup needs is kept
-- until it connects. max_slot_wal_keep_size bounds what an absent standby
-- can make the primary keep.
\o /dev/null
SELECT pg_create_physical_replication_slot(:'slot', true)
WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = :'slot');
\o
SQL

# The image's pg_hba.conf admits every database but not "replication".
hba="$PGDATA/pg_hba.conf"
line="host replication $role all scram-sha-256"
if ! grep -qxF "$line" "$hba"; then
	printf '# Streaming replication for the standby (deploy/postgres/init-replication.sh)\n%s\n' "$line" >>"$hba"
fi
