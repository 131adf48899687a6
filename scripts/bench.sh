#!/usr/bin/env bash
# make bench: measures ledgerd under load and, in the same run on the same
# PostgreSQL server, pgbench at the same concurrency, and prints the ratio.
#
#   1. a throwaway PostgreSQL cluster with the server's default (durable)
#      settings: fsync and synchronous_commit on;
#   2. ledgerd on it: scenarios uniform (10,000 pre-funded accounts) and
#      hot (one account), a 50/50 debit/credit mix, unique idempotency keys;
#   3. pgbench: builtin simple-update (uniform) and a one-row
#      update+insert script (hot), same clients, same duration;
#   4. ledgerd on the embedded store, both scenarios;
#   5. ledgerd through pgbouncer (Debian's, pool_mode = transaction,
#      LEDGER_DATABASE_POOLER=transaction) on the same server, both
#      scenarios: store "postgres+pgbouncer", measured against the same
#      pgbench (PG CPU counts PostgreSQL's processes, not pgbouncer's).
#   6. scale on the one primary of step 1: the uniform scenario with 1, 2
#      and 4 ledgerd replicas sharing the clients, then the read scenario
#      (balance reads) with no read replica and with one streaming standby
#      (pg_basebackup of the primary, LEDGER_READ_DATABASE_URL), each as a
#      ratio to its first row.
#
# For every ledgerd scenario ledgerbench also reports, over the measured
# phase, the write batch sizes (ledgerd's creditledger_write_batch_size
# histogram on /metrics; n/a when ledgerd does not export it) and the CPU
# seconds per 1,000 operations of ledgerd (and, on PostgreSQL, of the
# server's processes); and it checks conservation: acknowledged credits −
# debits == sum of the workspace's balances. `ledgerd verify` then checks
# each store the scenarios wrote. Either failing fails the bench.
#
# Results: one JSON line per measurement in $BENCH_OUT (default
# .data/bench/results.jsonl) and a table on stdout.
#
# Knobs: BENCH_DURATION (10s), BENCH_CONCURRENCY (64), BENCH_ACCOUNTS (10000),
# BENCH_DB_MAX_CONNS (16), BENCH_SCALE (1; 0 skips step 6), BENCH_PROFILE (0; 1: run ledgerd with
# LEDGER_DEBUG_ADDR, save a CPU profile of each measured phase next to the
# results as cpu-<store>-<scenario>.pprof and print its top functions),
# BENCH_ONLY (empty: everything; else a comma-separated subset of postgres,
# embedded, pgbouncer, scale: the ledgerd variants to run; pgbench always runs,
# the yardstick of every PostgreSQL variant).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
duration=${BENCH_DURATION:-10s}
conc=${BENCH_CONCURRENCY:-64}
accounts=${BENCH_ACCOUNTS:-10000}
maxconns=${BENCH_DB_MAX_CONNS:-16}
profile=${BENCH_PROFILE:-0}
scale=${BENCH_SCALE:-1}
clk_tck=$(getconf CLK_TCK 2>/dev/null || echo 100)
work=$(mktemp -d /tmp/clbench.XXXXXX)
out=${BENCH_OUT:-$root/.data/bench/results.jsonl}
mkdir -p "$(dirname "$out")"
resdir=$(cd "$(dirname "$out")" && pwd)
: >"$out"
grpc_port=19090 http_port=18080 metrics_port=19464 debug_port=16060

scripts/ensure-postgres.sh >/dev/null
bindir=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -1 || command -v initdb)")
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# want PART: whether BENCH_ONLY selects the ledgerd variant PART.
want() { [[ -z ${BENCH_ONLY:-} || ,$BENCH_ONLY, == *,$1,* ]]; }

ledgerd_pid=""
scale_pids=()
cleanup() {
	if [[ -n "$ledgerd_pid" ]]; then kill "$ledgerd_pid" 2>/dev/null || true; wait "$ledgerd_pid" 2>/dev/null || true; fi
	for pid in "${scale_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
	if [[ -f "$work/sb/data/PG_VERSION" ]]; then as_pg "$bindir/pg_ctl" stop -D "$work/sb/data" -m immediate >/dev/null 2>&1 || true; fi
	if [[ -f "$work/pgbouncer/pid" ]]; then kill "$(cat "$work/pgbouncer/pid")" 2>/dev/null || true; fi
	if [[ -f "$work/pg/data/PG_VERSION" ]]; then as_pg "$bindir/pg_ctl" stop -D "$work/pg/data" -m immediate >/dev/null 2>&1 || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "bench: building ledgerd and ledgerbench" >&2
go build -o "$work/bin/" ./cmd/ledgerd ./cmd/ledgerbench

echo "bench: starting PostgreSQL ($("$bindir/postgres" --version))" >&2
mkdir -p "$work/pg"
if [[ $(id -u) -eq 0 ]]; then chown postgres: "$work/pg"; chmod 755 "$work"; fi
as_pg "$bindir/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg "$bindir/pg_ctl" start -w -D "$work/pg/data" -l "$work/pg/log" \
	-o "-k $work/pg -c listen_addresses='' -c max_connections=300 -c shared_buffers=512MB" >/dev/null
psql_() { as_pg "$bindir/psql" -h "$work/pg" -U postgres -X -q "$@"; }
psql_ -d postgres -c "CREATE DATABASE ledger" -c "CREATE DATABASE pgbench"
pgurl="postgres:///ledger?host=$work/pg&user=postgres&sslmode=disable"
# ledgerd serves as the runtime role that migrate creates, under row-level
# security, as in production.
appurl="postgres:///ledger?host=$work/pg&user=creditledger_app&sslmode=disable"
pg_pid=$(head -1 "$work/pg/data/postmaster.pid")

# port_busy PORT: whether something already listens on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_ledgerd ENV... : runs ledgerd in the background and waits until ready.
# The ports are fixed: were another ledgerd (another make bench) on them,
# it would answer in place of ours, and the bench would load, measure and
# write into someone else's server. So a busy port is fatal, and so is our
# ledgerd exiting before or right after it answers.
# ports_free PORT...: fails the bench if one of them is taken.
ports_free() {
	local port
	for port in "$@"; do
		if port_busy "$port"; then
			echo "bench: FAILED: 127.0.0.1:$port is already in use (another make bench?)" >&2
			exit 1
		fi
	done
}
# serve LOG GRPC HTTP METRICS ENV...: ledgerd serve in the background on
# those loopback ports. The load is one caller in one workspace at
# thousands of writes per second: the rate limits, which would refuse most
# of it, are off.
serve() {
	local log=$1 g=$2 h=$3 m=$4
	shift 4
	env -i PATH="$PATH" HOME="${HOME:-/root}" LEDGER_AUTH=none LEDGER_LOG_LEVEL=warn \
		LEDGER_RATE_LIMIT_WORKSPACE=0 LEDGER_RATE_LIMIT_SUBJECT=0 LEDGER_RATE_LIMIT_SUBJECT_WRITES=0 \
		LEDGER_GRPC_ADDR="127.0.0.1:$g" LEDGER_HTTP_ADDR="127.0.0.1:$h" LEDGER_METRICS_ADDR="127.0.0.1:$m" "$@" \
		"$work/bin/ledgerd" serve 2>>"$log" &
}
start_ledgerd() {
	local debug=() ports=("$grpc_port" "$http_port" "$metrics_port")
	if [[ $profile == 1 ]]; then
		debug=(LEDGER_DEBUG_ADDR="127.0.0.1:$debug_port")
		ports+=("$debug_port")
	fi
	ports_free "${ports[@]}"
	serve "$work/ledgerd.log" "$grpc_port" "$http_port" "$metrics_port" "${debug[@]}" "$@"
	ledgerd_pid=$!
	for _ in $(seq 1 200); do
		if ! kill -0 "$ledgerd_pid" 2>/dev/null; then break; fi
		if curl -fsS "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1; then
			sleep 0.2 # a failed bind of another port ends ledgerd at once
			if kill -0 "$ledgerd_pid" 2>/dev/null; then return 0; fi
			break
		fi
		sleep 0.1
	done
	echo "bench: FAILED: ledgerd did not become ready:" >&2
	tail -20 "$work/ledgerd.log" >&2
	exit 1
}
stop_ledgerd() {
	if ! kill -TERM "$ledgerd_pid" 2>/dev/null; then
		echo "bench: FAILED: ledgerd (pid $ledgerd_pid) died during the run:" >&2
		tail -20 "$work/ledgerd.log" >&2
		exit 1
	fi
	wait "$ledgerd_pid" || true
	ledgerd_pid=""
}

# ours STORE SCENARIO [FLAGS...]: one ledgerbench run against a fresh
# ledgerd: the measurement, the batch sizes and CPU of its measured phase,
# the conservation check, and with BENCH_PROFILE=1 a CPU profile.
profiles=()
ours() {
	local store=$1 scenario=$2
	shift 2
	local extra=()
	if [[ $profile == 1 ]]; then
		local prof="$resdir/cpu-$store-$scenario.pprof"
		rm -f "$prof"
		extra=(-profile-url "http://127.0.0.1:$debug_port/debug/pprof/profile" -profile-out "$prof")
		profiles+=("$prof")
	fi
	if ! "$work/bin/ledgerbench" -addr "127.0.0.1:$grpc_port" -store "$store" -scenario "$scenario" -concurrency "$conc" \
		-accounts "$accounts" -duration "$duration" -ledgerd-pid "$ledgerd_pid" -clk-tck "$clk_tck" \
		-metrics-url "http://127.0.0.1:$metrics_port/metrics" -json "$out" "${extra[@]}" "$@" >&2; then
		echo "bench: FAILED: ledgerbench on $store, scenario $scenario (see above)" >&2
		exit 1
	fi
}

# verify_store LABEL ENV...: `ledgerd verify` on the store the scenarios
# wrote (ledgerd stopped); any inconsistency fails the bench.
verify_store() {
	local label=$1
	shift
	local log="$work/verify-${label// /-}.log"
	if ! env -i PATH="$PATH" HOME="${HOME:-/root}" LEDGER_LOG_LEVEL=warn "$@" "$work/bin/ledgerd" verify >"$log" 2>&1; then
		echo "bench: FAILED: ledgerd verify on $label:" >&2
		sed 's/^/  /' "$log" >&2
		exit 1
	fi
	echo "bench: ledgerd verify ($label): $(tr '\n' ' ' <"$log")" >&2
}

if want postgres; then
echo "bench: ledgerd on PostgreSQL (pool $maxconns)" >&2
env -i PATH="$PATH" LEDGER_MIGRATE_DATABASE_URL="$pgurl" "$work/bin/ledgerd" migrate 2>>"$work/ledgerd.log"
for scenario in uniform hot; do
	start_ledgerd LEDGER_DATABASE_URL="$appurl" LEDGER_DB_MAX_CONNS="$maxconns"
	ours postgres "$scenario" -pg-pid "$pg_pid"
	stop_ledgerd
done
verify_store postgres LEDGER_DATABASE_URL="$appurl"
fi

echo "bench: pgbench on the same server" >&2
secs=${duration%s}
as_pg "$bindir/pgbench" -h "$work/pg" -U postgres -i -q -s 1 pgbench >/dev/null 2>&1
cat >"$work/hot.sql" <<'SQL'
\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, :delta, CURRENT_TIMESTAMP);
END;
SQL
chmod 644 "$work/hot.sql"
# pgbench SCENARIO ARGS...: records tps and latency average as a JSON line.
pgb() {
	local scenario=$1
	shift
	local log="$work/pgbench-$scenario.log"
	as_pg "$bindir/pgbench" -h "$work/pg" -U postgres -c "$conc" -j 2 -T "$secs" -M prepared -n "$@" pgbench >"$log" 2>&1
	local tps lat
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$log" | tail -1)
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$log")
	echo "pgbench $scenario: $tps tps, latency average $lat ms" >&2
	printf '{"scenario":"%s","store":"pgbench","concurrency":%s,"ops_per_second":%s,"latency_avg_ms":%s}\n' \
		"$scenario" "$conc" "$tps" "$lat" >>"$out"
}
pgb uniform -b simple-update
pgb hot -f "$work/hot.sql"

if want embedded; then
echo "bench: ledgerd on the embedded store" >&2
for scenario in uniform hot; do
	rm -rf "$work/embedded"
	start_ledgerd LEDGER_DATA_DIR="$work/embedded"
	ours embedded "$scenario"
	stop_ledgerd
	verify_store "embedded $scenario" LEDGER_DATA_DIR="$work/embedded"
done
fi

# bench_pgbouncer: ledgerd through pgbouncer in transaction-pooling mode on
# the same server, a database of its own (migrated through pgbouncer too),
# as the runtime role with LEDGER_DATABASE_POOLER=transaction. pgbouncer
# gets as many server connections as ledgerd's pool: what is measured is
# the pooler's cost, not a smaller pool's.
bench_pgbouncer() {
	local pgb=/usr/sbin/pgbouncer dir="$work/pgbouncer"
	if [[ ! -x $pgb ]]; then
		echo "bench: FAILED: $pgb is missing (scripts/ensure-postgres.sh installs Debian's pgbouncer)" >&2
		exit 1
	fi
	echo "bench: ledgerd through $("$pgb" --version | head -1) (pool_mode = transaction, pool $maxconns)" >&2
	mkdir -p "$dir"
	psql_ -d postgres -c "CREATE DATABASE ledger_pgbouncer"
	cat >"$dir/pgbouncer.ini" <<-INI
		[databases]
		* = host=$work/pg port=5432
		[pgbouncer]
		pool_mode = transaction
		listen_addr =
		listen_port = 6432
		unix_socket_dir = $dir
		auth_type = trust
		auth_file = $dir/userlist.txt
		max_client_conn = 1000
		default_pool_size = $maxconns
		reserve_pool_size = 0
		server_reset_query =
		ignore_startup_parameters = extra_float_digits
		logfile = $dir/log
		pidfile = $dir/pid
	INI
	printf '"postgres" ""\n"creditledger_app" ""\n' >"$dir/userlist.txt"
	if [[ $(id -u) -eq 0 ]]; then chown -R postgres: "$dir"; fi
	as_pg "$pgb" -d -q "$dir/pgbouncer.ini"
	local owner="postgres:///ledger_pgbouncer?host=$dir&port=6432&user=postgres&sslmode=disable"
	local app="postgres:///ledger_pgbouncer?host=$dir&port=6432&user=creditledger_app&sslmode=disable"
	for _ in $(seq 1 100); do
		[[ -S $dir/.s.PGSQL.6432 ]] && break
		sleep 0.1
	done
	env -i PATH="$PATH" LEDGER_MIGRATE_DATABASE_URL="$owner" "$work/bin/ledgerd" migrate 2>>"$work/ledgerd.log"
	for scenario in uniform hot; do
		start_ledgerd LEDGER_DATABASE_URL="$app" LEDGER_DATABASE_POOLER=transaction LEDGER_DB_MAX_CONNS="$maxconns"
		ours postgres+pgbouncer "$scenario" -pg-pid "$pg_pid"
		stop_ledgerd
	done
	verify_store "postgres+pgbouncer" LEDGER_DATABASE_URL="$app" LEDGER_DATABASE_POOLER=transaction
	kill "$(cat "$dir/pid")"
}
if want pgbouncer; then bench_pgbouncer; fi

# Step 6: scale on one primary.
# start_replica I ENV...: ledgerd number I (ports of their own) in the
# background, ready; scale_addrs collects the gRPC addresses.
scale_addrs=()
start_replica() {
	local i=$1
	shift
	local g=$((grpc_port + 10 + i)) h=$((http_port + 10 + i)) m=$((metrics_port + 10 + i))
	ports_free "$g" "$h" "$m"
	serve "$work/ledgerd-$i.log" "$g" "$h" "$m" "$@"
	local pid=$!
	scale_pids+=("$pid")
	for _ in $(seq 1 200); do
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		if curl -fsS "http://127.0.0.1:$h/readyz" >/dev/null 2>&1; then
			scale_addrs+=("127.0.0.1:$g")
			return 0
		fi
		sleep 0.1
	done
	echo "bench: FAILED: ledgerd $i did not become ready:" >&2
	tail -20 "$work/ledgerd-$i.log" >&2
	exit 1
}
stop_replicas() {
	local pid
	for pid in "${scale_pids[@]}"; do
		if ! kill -TERM "$pid" 2>/dev/null; then
			echo "bench: FAILED: a ledgerd replica (pid $pid) died during the run" >&2
			exit 1
		fi
		wait "$pid" || true
	done
	scale_pids=() scale_addrs=()
}
# scale_run STORE SCENARIO [FLAGS...]: ledgerbench against scale_addrs.
scale_run() {
	local store=$1 scenario=$2
	shift 2
	local IFS=,
	if ! "$work/bin/ledgerbench" -addr "${scale_addrs[*]}" -store "$store" -scenario "$scenario" -concurrency "$conc" \
		-accounts "$accounts" -duration "$duration" -pg-pid "$pg_pid" -clk-tck "$clk_tck" -json "$out" "$@" >&2; then
		echo "bench: FAILED: ledgerbench on $store, scenario $scenario (see above)" >&2
		exit 1
	fi
}
if [[ $scale == 1 ]] && want scale; then
	# A no-op after the postgres variant's; needed when BENCH_ONLY left it out.
	env -i PATH="$PATH" LEDGER_MIGRATE_DATABASE_URL="$pgurl" "$work/bin/ledgerd" migrate 2>>"$work/ledgerd.log"
	for n in 1 2 4; do
		echo "bench: scale: $n ledgerd replica(s) on one PostgreSQL (pool $maxconns each)" >&2
		for ((i = 0; i < n; i++)); do
			start_replica "$i" LEDGER_DATABASE_URL="$appurl" LEDGER_DB_MAX_CONNS="$maxconns"
		done
		scale_run "replicas-$n" uniform
		stop_replicas
	done

	echo "bench: scale: a streaming standby of the primary (pg_basebackup)" >&2
	mkdir -p "$work/sb"
	if [[ $(id -u) -eq 0 ]]; then chown postgres: "$work/sb"; fi
	as_pg "$bindir/pg_basebackup" -D "$work/sb/data" -h "$work/pg" -U postgres -X stream -R -c fast >/dev/null
	as_pg "$bindir/pg_ctl" start -w -D "$work/sb/data" -l "$work/sb/log" \
		-o "-k $work/sb -c listen_addresses='' -c max_connections=300 -c shared_buffers=512MB -c hot_standby=on" >/dev/null
	sburl="postgres:///ledger?host=$work/sb&user=creditledger_app&sslmode=disable"
	for standbys in 0 1; do
		echo "bench: scale: balance reads, $standbys standby" >&2
		read_env=()
		if [[ $standbys == 1 ]]; then read_env=(LEDGER_READ_DATABASE_URL="$sburl"); fi
		start_replica 0 LEDGER_DATABASE_URL="$appurl" LEDGER_DB_MAX_CONNS="$maxconns" "${read_env[@]}"
		scale_run "standbys-$standbys" read
		served=$(curl -fsS "http://127.0.0.1:$((metrics_port + 10))/metrics" | sed -n 's/^creditledger_replica_reads_total{served_by="\([a-z_]*\)"} \([0-9.e+]*\)$/\1=\2/p' | tr '\n' ' ')
		echo "bench: reads served by: ${served:-the primary (no read replica)}" >&2
		printf '{"scenario":"read","store":"standbys-%s-served","served_by":"%s"}\n' "$standbys" "${served% }" >>"$out"
		stop_replicas
	done
	verify_store "postgres after scale" LEDGER_DATABASE_URL="$appurl"
fi

if [[ $profile == 1 ]]; then
	for prof in "${profiles[@]}"; do
		if [[ -s $prof ]]; then
			echo -e "\nbench: CPU profile $prof (go tool pprof -top -nodecount=25)" >&2
			go tool pprof -top -nodecount=25 "$work/bin/ledgerd" "$prof" 2>&1 | sed 's/^/  /' >&2 || true
		else
			echo "bench: warning: no CPU profile at $prof (does ledgerd serve pprof on LEDGER_DEBUG_ADDR?)" >&2
		fi
	done
fi

# The table.
python3 - "$out" "$conc" "$duration" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
get = lambda store, sc: next((r for r in rows if r["store"] == store and r["scenario"] == sc), None)
num = lambda v, fmt: "n/a" if v is None else (v if isinstance(v, str) else format(v, fmt))
def batch(r):
    if r.get("batches") is None:
        return "n/a"
    if r.get("batch_mean") is None:
        return "no batches"
    return f"{num(r['batch_mean'], '.1f')} / {num(r.get('batch_p99'), 'g')}"
print(f"\nCreditLedger benchmark: {sys.argv[2]} clients, {sys.argv[3]} per scenario, 50% debits / 50% credits\n")
# The yardstick of both scenarios is pgbench simple-update: one account
# must be as fast as many. The hot-row script is shown for reference.
simple = get("pgbench", "uniform")
print(f"| store | scenario | ops/s | p50 ms | p95 ms | p99 ms | errors | ledgerd peak RSS MiB | batch mean / p99 | CPU s per 1k ops | PG CPU s per 1k ops | pgbench simple-update tps | ours/simple-update | pgbench hot-row tps | ours/hot-row |")
print(f"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for store in ("postgres", "postgres+pgbouncer", "embedded"):
    for sc in ("uniform", "hot"):
        r = get(store, sc)
        if not r:
            continue
        errs = sum(r.get("errors", {}).values())
        cpu = num(r.get("cpu_seconds_per_1000_ops"), ".3f")
        pgcpu = num(r.get("pg_cpu_seconds_per_1000_ops"), ".3f") if store.startswith("postgres") else "—"
        cols = []
        for p in ((simple, get("pgbench", "hot") if sc == "hot" else None) if store.startswith("postgres") else (None, None)):
            cols.append(f"{p['ops_per_second']:.0f}" if p else "—")
            cols.append(f"{r['ops_per_second'] / p['ops_per_second']:.2f}" if p and p["ops_per_second"] else "—")
        print(f"| {store} | {sc} | {r['ops_per_second']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | {errs} | {r.get('ledgerd_peak_rss_mib', 0):.0f} | {batch(r)} | {cpu} | {pgcpu} | {' | '.join(cols)} |")
for store in ("postgres", "postgres+pgbouncer"):
    for sc in ("uniform", "hot"):
        r = get(store, sc)
        if r and simple and simple["ops_per_second"]:
            print(f"\nratio ours/pgbench simple-update ({store}, {sc}): {r['ops_per_second'] / simple['ops_per_second']:.2f}", end="")
# Scale: each figure as a ratio to the first of its group, all from this run.
scale_rows = [(f"replicas-{n}", "uniform", f"{n} ledgerd replica(s), uniform writes") for n in (1, 2, 4)] + \
             [(f"standbys-{n}", "read", f"1 ledgerd, balance reads, {n} standby") for n in (0, 1)]
if any(get(s, sc) for s, sc, _ in scale_rows):
    print("\n\nScale on one primary (ratios to the first row of each group)\n")
    print("| measurement | ops/s | p99 ms | errors | primary PG CPU s per 1k ops | ratio | reads served by |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for group in (scale_rows[:3], scale_rows[3:]):
        base = get(group[0][0], group[0][1])
        for s, sc, label in group:
            r = get(s, sc)
            if not r:
                continue
            ratio = f"{r['ops_per_second'] / base['ops_per_second']:.2f}" if base and base["ops_per_second"] else "—"
            served = next((x.get("served_by") or "primary" for x in rows if x["store"] == s + "-served"), "—")
            errs = sum(r.get("errors", {}).values())
            print(f"| {label} | {r['ops_per_second']:.0f} | {r['p99_ms']:.2f} | {errs} | {num(r.get('pg_cpu_seconds_per_1000_ops'), '.3f')} | {ratio} | {served} |")
ours = [r for r in rows if r["store"] != "pgbench" and not r["store"].endswith("-served")]
cons = "ok" if ours and all(r.get("conservation_ok") for r in ours) else "NOT CHECKED in every scenario"
stores = ", ".join(s for s in ("postgres", "postgres+pgbouncer", "embedded") if any(r["store"] == s for r in ours))
if any(r["store"].startswith(("replicas-", "standbys-")) for r in ours):
    stores = ", ".join(x for x in (stores, "postgres after the scale runs") if x)
print(f"\n\nconservation: {cons}; ledgerd verify: ok ({stores})")
print(f"results: {sys.argv[1]}")
PY
