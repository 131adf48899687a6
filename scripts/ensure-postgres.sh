#!/usr/bin/env bash
# Makes sure the PostgreSQL server programs (initdb, pg_ctl, postgres) and
# pgbouncer are on this machine, installing Debian's postgresql and pgbouncer
# packages when they are missing.
# The tests start their own throwaway clusters (internal/pgtest); nothing is
# left running. With LEDGER_TEST_DATABASE_URL set the tests use that server
# instead and nothing is installed.
set -euo pipefail

if [[ -n "${LEDGER_TEST_DATABASE_URL:-}" ]]; then
	echo "ensure-postgres: tests use LEDGER_TEST_DATABASE_URL"
	exit 0
fi

# apt_prepare readies apt once: an updated package list, and a policy-rc.d
# that keeps the packages' own services (a PostgreSQL cluster, pgbouncer)
# from starting: the tests start their own.
apt_ready=0
apt_prepare() {
	if [[ $apt_ready == 1 ]]; then return; fi
	export DEBIAN_FRONTEND=noninteractive
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	apt-get update -qq
	apt_ready=1
}

have_server() {
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null
}

if ! have_server; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "ensure-postgres: PostgreSQL server programs are missing and installing them needs root:" >&2
		echo "  sudo apt-get install -y postgresql   (or set LEDGER_TEST_DATABASE_URL)" >&2
		exit 1
	fi
	echo "ensure-postgres: installing Debian's postgresql package"
	apt_prepare
	apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

if [[ $(id -u) -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
	echo "ensure-postgres: running as root needs the postgres system user to run the server" >&2
	exit 1
fi

bin=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 || command -v initdb)
echo "ensure-postgres: $("$(dirname "$bin")/postgres" --version)"

# pgbouncer: the tests also run the store and ledgerd through a throwaway
# pgbouncer in transaction-pooling mode (internal/pgtest/bouncer.go).
# Debian's package enables and starts its own service on 127.0.0.1:6432:
# policy-rc.d keeps it from starting, and it is disabled at boot.
if [[ ! -x /usr/sbin/pgbouncer ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "ensure-postgres: pgbouncer is missing and installing it needs root:" >&2
		echo "  sudo apt-get install -y pgbouncer" >&2
		exit 1
	fi
	echo "ensure-postgres: installing Debian's pgbouncer package"
	apt_prepare
	apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
	if command -v systemctl >/dev/null; then
		systemctl disable pgbouncer.service >/dev/null 2>&1 || true
	fi
	update-rc.d pgbouncer disable >/dev/null 2>&1 || true
	pidfile=/var/run/postgresql/pgbouncer.pid # the package's own service, should it have started
	if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		echo "ensure-postgres: stopping the pgbouncer service the package started" >&2
		kill "$(cat "$pidfile")" || true
	fi
fi
echo "ensure-postgres: $(/usr/sbin/pgbouncer --version | head -1)"

# --- pg_auto_failover (the failover test, e2e/failover_test.go) -------------
# pg_autoctl and the monitor's extension, built for the newest PostgreSQL
# installed above: Debian's postgresql-<major>-auto-failover. The package
# ships no service and no cluster: installing it starts nothing.
major=$(basename "$(dirname "$(dirname "$bin")")")
if ! command -v pg_autoctl >/dev/null || [[ ! -e /usr/lib/postgresql/$major/lib/pgautofailover.so ]]; then
	if [[ $(id -u) -ne 0 ]]; then
		echo "ensure-postgres: pg_auto_failover is missing and installing it needs root:" >&2
		echo "  sudo apt-get install -y postgresql-$major-auto-failover" >&2
		exit 1
	fi
	echo "ensure-postgres: installing Debian's postgresql-$major-auto-failover package"
	apt_prepare
	apt-get install -y -qq --no-install-recommends "postgresql-$major-auto-failover" >/dev/null
fi
echo "ensure-postgres: $(pg_autoctl --version | head -1)"
# --- end pg_auto_failover ---------------------------------------------------
