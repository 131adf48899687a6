#!/usr/bin/env bash
# Runs the database pieces of deploy/ against throwaway PostgreSQL servers
# on this machine, as the compose stack and Kubernetes run them in their
# containers (scripts/check-deploy.sh calls it):
#   - deploy/postgres/init-replication.sh prepares a primary (twice: it is
#     idempotent) started with the primary's replication settings;
#   - deploy/postgres/standby-entrypoint.sh clones it into a hot standby that
#     streams from the replication slot, and a row written on the primary is
#     read on the standby;
#   - deploy/pgbouncer/entrypoint.sh starts Debian's pgbouncer with
#     deploy/pgbouncer/pgbouncer.ini (only its addresses and paths changed):
#     the runtime role logs in with its password (SCRAM) and not with
#     another, and SHOW CONFIG says pool_mode transaction.
# Needs the PostgreSQL 15 server binaries and pgbouncer (Debian's
# postgresql-15 and pgbouncer packages), and root or the postgres user
# (initdb refuses root: the servers run as postgres).
set -euo pipefail

cd "$(dirname "$0")/.."
say() { echo "check-deploy-db: $*"; }
die() {
	echo "check-deploy-db: $*" >&2
	exit 1
}

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PGBOUNCER=${PGBOUNCER:-/usr/sbin/pgbouncer}
[[ -x $PGBIN/initdb ]] || die "no PostgreSQL 15 server binaries in $PGBIN"
[[ -x $PGBOUNCER ]] || die "no pgbouncer at $PGBOUNCER"
if [[ $(id -u) -eq 0 ]]; then
	as_pg() { runuser -u postgres -- env PATH="$PGBIN:$PATH" "$@"; }
elif [[ $(id -un) == postgres ]]; then
	as_pg() { env PATH="$PGBIN:$PATH" "$@"; }
else
	die "run as root or as the postgres user (initdb refuses root; the servers run as postgres)"
fi

tmp=$(mktemp -d /tmp/check-deploy-db.XXXXXX)
chmod 0755 "$tmp"
bouncer_pid=""
cleanup() {
	[[ -n $bouncer_pid ]] && kill "$bouncer_pid" 2>/dev/null
	for d in standby primary; do
		[[ -f $tmp/$d/postmaster.pid ]] && as_pg pg_ctl -D "$tmp/$d" -m immediate stop >/dev/null 2>&1
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
chown postgres "$tmp"

# Free TCP ports on loopback for the primary, the standby and pgbouncer.
read -r p_port s_port b_port < <(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')

repl_pw=00112233445566778899aabbccddeeff
app_pw=ffeeddccbbaa99887766554433221100
sql() { # PORT SQL: runs SQL as the superuser over the socket
	as_pg psql -X -q -At -h "$tmp" -p "$1" -U creditledger -d creditledger -v ON_ERROR_STOP=1 -c "$2"
}

say "primary: initdb, the image's pg_hba.conf, the replication settings of deploy/"
# As the postgres image: trust on the socket, passwords over TCP.
as_pg initdb -D "$tmp/primary" -U creditledger --auth-local=trust --auth-host=scram-sha-256 >"$tmp/initdb.log"
echo "host all all all scram-sha-256" >>"$tmp/primary/pg_hba.conf"
# The servers' settings, as compose.yaml (and k8s/, which check-deploy.sh
# holds to the same) passes them.
compose_args() { # SERVICE N: the service's command in compose.yaml, less its first N words
	/usr/bin/python3 -c 'import sys, yaml
cmd = yaml.safe_load(open("deploy/compose.yaml"))["services"][sys.argv[1]]["command"]
print(" ".join(cmd[int(sys.argv[2]):]))' "$1" "$2"
}
primary_args=$(compose_args postgres 1)
standby_args=$(compose_args postgres-standby 2)
as_pg pg_ctl -D "$tmp/primary" -l "$tmp/primary.log" -w start \
	-o "-p $p_port -k $tmp -c listen_addresses=127.0.0.1 $primary_args" >/dev/null
as_pg psql -X -q -h "$tmp" -p "$p_port" -U creditledger -d postgres -c "CREATE DATABASE creditledger"
sql "$p_port" "CREATE ROLE creditledger_app LOGIN PASSWORD '$app_pw'"
sql "$p_port" "SHOW wal_level" | grep -qx replica || die "primary: wal_level is not replica"

for run in first again; do
	say "init-replication.sh ($run)"
	as_pg env PGHOST="$tmp" PGPORT="$p_port" PGDATA="$tmp/primary" POSTGRES_USER=creditledger \
		POSTGRES_DB=creditledger POSTGRES_REPLICATION_PASSWORD="$repl_pw" sh deploy/postgres/init-replication.sh
done
[[ $(grep -c '^host replication creditledger_replicator all scram-sha-256$' "$tmp/primary/pg_hba.conf") == 1 ]] ||
	die "init-replication.sh: expected exactly one replication line in pg_hba.conf"
as_pg pg_ctl -D "$tmp/primary" reload >/dev/null
[[ $(sql "$p_port" "SELECT rolreplication AND NOT rolsuper FROM pg_roles WHERE rolname = 'creditledger_replicator'") == t ]] ||
	die "init-replication.sh: no replication role (or a superuser)"
[[ $(sql "$p_port" "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'creditledger_standby' AND restart_lsn IS NOT NULL") == 1 ]] ||
	die "init-replication.sh: no reserved slot creditledger_standby"

say "standby-entrypoint.sh: pg_basebackup from the primary, then a hot standby"
mkdir -m 1777 "$tmp/standby"
chown postgres "$tmp/standby"
as_pg env PGDATA="$tmp/standby" PRIMARY_HOST=127.0.0.1 PRIMARY_PORT="$p_port" \
	POSTGRES_REPLICATION_PASSWORD="$repl_pw" sh deploy/postgres/standby-entrypoint.sh \
	pg_ctl -D "$tmp/standby" -l "$tmp/standby.log" -w start \
	-o "-p $s_port -k $tmp -c listen_addresses=127.0.0.1 $standby_args" >"$tmp/standby-entry.log" 2>&1 ||
	die "standby-entrypoint.sh failed: $(cat "$tmp/standby-entry.log")"
[[ -f $tmp/standby/standby.signal ]] || die "standby: no standby.signal"
sql "$p_port" "CREATE TABLE replicated (x int); INSERT INTO replicated VALUES (42)"
for _ in $(seq 50); do
	got=$(sql "$s_port" "SELECT pg_is_in_recovery(), x FROM replicated" 2>/dev/null || true)
	[[ $got == "t|42" ]] && break
	sleep 0.2
done
[[ $got == "t|42" ]] || die "standby: the primary's row did not arrive (got '$got')"
[[ $(sql "$p_port" "SELECT count(*) FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
	WHERE r.usename = 'creditledger_replicator' AND r.state = 'streaming' AND s.slot_name = 'creditledger_standby'") == 1 ]] ||
	die "primary: the standby does not stream through its slot"

say "pgbouncer: entrypoint.sh and pgbouncer.ini, transaction pooling, SCRAM"
sed -e "s/host=postgres port=5432/host=127.0.0.1 port=$p_port/" -e "s/^listen_addr = .*/listen_addr = 127.0.0.1/" \
	-e "s/^listen_port = 6432/listen_port = $b_port/" -e "s|^auth_file = .*|auth_file = $tmp/pgbouncer/userlist.txt|" \
	deploy/pgbouncer/pgbouncer.ini >"$tmp/pgbouncer.ini"
echo "stats_users = creditledger_app" >>"$tmp/pgbouncer.ini"
sed "s|/usr/sbin/pgbouncer|$PGBOUNCER|" deploy/pgbouncer/entrypoint.sh >"$tmp/pgbouncer-entrypoint.sh"
as_pg env PGBOUNCER_AUTH_PASSWORD="$app_pw" PGBOUNCER_INI="$tmp/pgbouncer.ini" \
	PGBOUNCER_AUTH_FILE="$tmp/pgbouncer/userlist.txt" sh "$tmp/pgbouncer-entrypoint.sh" >"$tmp/pgbouncer.log" 2>&1 &
bouncer_pid=$!
app() { PGPASSWORD=$1 psql -X -At "host=127.0.0.1 port=$b_port user=creditledger_app dbname=$2" -c "$3"; }
for _ in $(seq 50); do
	app "$app_pw" creditledger "SELECT 1" >/dev/null 2>&1 && break
	sleep 0.2
done
[[ $(app "$app_pw" creditledger "SELECT current_user") == creditledger_app ]] ||
	die "pgbouncer: the runtime role cannot connect: $(cat "$tmp/pgbouncer.log")"
app 0123456789abcdef0123456789abcdef creditledger "SELECT 1" >/dev/null 2>&1 &&
	die "pgbouncer: accepted a wrong password"
[[ $(app "$app_pw" pgbouncer "SHOW CONFIG" | awk -F'|' '$1 == "pool_mode" {print $2}') == transaction ]] ||
	die "pgbouncer: pool_mode is not transaction"
[[ $(stat -c %a "$tmp/pgbouncer/userlist.txt") == 600 ]] || die "pgbouncer: the auth file is not 0600"

say "ok"
