#!/bin/sh
# Entrypoint of the postgres-standby service: on an empty volume, clones the
# primary (PRIMARY_HOST) with pg_basebackup as the replication role,
# streaming from its replication slot, and writes the standby configuration
# (-R: standby.signal and primary_conninfo, which names the slot); then runs
# its arguments (the postgres image's entrypoint and server, with
# hot_standby=on). The standby's data directory is never initialised on
# its own; once it holds data (a standby, or a standby promoted by an
# operator) it is started as it is. Runs as the postgres user. POSIX sh; scripts/check-deploy.sh runs
# it against a throwaway primary.
set -eu

: "${PGDATA:?PGDATA is not set}"
: "${PRIMARY_HOST:?PRIMARY_HOST (the primary to replicate) is not set}"
: "${POSTGRES_REPLICATION_PASSWORD:?the replication role password is not set}"
port=${PRIMARY_PORT:-5432}
role=${REPLICATION_USER:-creditledger_replicator}
slot=${REPLICATION_SLOT:-creditledger_standby}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA"
	until pg_isready -q -h "$PRIMARY_HOST" -p "$port"; do
		echo "standby: waiting for the primary $PRIMARY_HOST:$port" >&2
		sleep 2
	done
	echo "standby: cloning $PRIMARY_HOST:$port through slot $slot" >&2
	# The password reaches pg_basebackup through the environment, and -R
	# keeps it in primary_conninfo (postgresql.auto.conf, mode 0600 in the
	# volume) for the walreceiver's reconnections.
	PGPASSWORD=$POSTGRES_REPLICATION_PASSWORD pg_basebackup --host="$PRIMARY_HOST" --port="$port" \
		--username="$role" --no-password --pgdata="$PGDATA" --wal-method=stream --slot="$slot" \
		--write-recovery-conf --checkpoint=fast
fi
exec "$@"
