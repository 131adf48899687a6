#!/usr/bin/env bash
# Validates deploy/ offline (no Docker daemon, no cluster, no registry):
#   - every YAML and JSON file under deploy/ parses;
#   - promtool: the alerting rules, their unit tests, the Prometheus configs;
#   - every metric name in the alerts, their tests and the dashboard is one
#     ledgerd exports, and every alert has a severity, a summary, a
#     description and a runbook link to a section of deploy/README.md;
#   - the Grafana dashboard and provisioning fit together;
#   - the Kubernetes manifests are consistent (selectors, ports, probes,
#     ConfigMap/Secret references, grace period vs drain), run ledgerd with
#     TLS, a JWKS and the runtime role's Secret only, and kustomize builds;
#   - compose.yaml references existing files and services, keeps the schema
#     owner's secrets out of ledgerd, runs ledgerd with TLS, a JWKS and the
#     metrics listener, deploy/secrets-check.sh refuses placeholders, and
#     `docker compose config -q` accepts it when the compose plugin exists;
#   - the database tier, in compose and Kubernetes: a hot standby of the
#     primary's image cloned by pg_basebackup from a replication slot, a
#     primary set up for it, pgbouncer in transaction pooling mode, ledgerd
#     writing through pgbouncer and reading from the standby, migrate going
#     to the primary directly, every password from the secrets files;
#     scripts/check-deploy-db.sh then runs those scripts and configurations
#     against throwaway PostgreSQL servers and Debian's pgbouncer;
#   - the Dockerfile builds what exists and runs as non-root.
# Installs Debian's prometheus (for promtool) and python3-yaml when missing
# and running as root.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { echo "check-deploy: $*"; }
die() {
	echo "check-deploy: $*" >&2
	exit 1
}

# apt_install PACKAGE...: installs Debian packages without starting their
# services (the prometheus package ships a daemon).
apt_install() {
	if [[ $(id -u) -ne 0 ]]; then
		die "missing $*; installing needs root: sudo apt-get install -y --no-install-recommends $*"
	fi
	say "installing Debian's $*"
	export DEBIAN_FRONTEND=noninteractive
	local guard=""
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		guard=1
	fi
	local rc=0
	{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } || rc=$?
	[[ -n $guard ]] && rm -f /usr/sbin/policy-rc.d
	[[ $rc -eq 0 ]] || die "apt-get install $* failed"
}

# PROMTOOL may name another promtool (e.g. upstream's, which has Kubernetes
# service discovery); otherwise Debian's is used, installed when missing.
if [[ -z ${PROMTOOL:-} ]]; then
	command -v promtool >/dev/null || apt_install prometheus
	PROMTOOL=$(command -v promtool) || die "promtool is still missing after installing prometheus"
fi

# Debian's python3, not a pyenv shim: PyYAML comes from python3-yaml.
PY=/usr/bin/python3
[[ -x $PY ]] || apt_install python3
"$PY" -c 'import yaml' 2>/dev/null || apt_install python3-yaml

say "$("$PROMTOOL" --version 2>&1 | head -1)"

say "parsing every YAML and JSON file under deploy/"
"$PY" - <<'PY'
import json, pathlib, sys, yaml
bad = 0
files = sorted(p for p in pathlib.Path("deploy").rglob("*") if p.is_file())
for p in files:
    try:
        if p.suffix in (".yaml", ".yml"):
            docs = [d for d in yaml.safe_load_all(p.read_text()) if d is not None]
            if not docs:
                raise ValueError("no document")
        elif p.suffix == ".json":
            json.loads(p.read_text())
        else:
            continue
    except Exception as e:  # noqa: BLE001 - report every file, then fail
        print(f"  {p}: {e}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "promtool check rules"
"$PROMTOOL" check rules deploy/prometheus/alerts.yml
say "promtool test rules"
"$PROMTOOL" test rules deploy/prometheus/alerts_test.yml
say "promtool check config"
"$PROMTOOL" check config deploy/prometheus/prometheus.yml
# Debian builds Prometheus without Kubernetes service discovery. Then the
# Kubernetes example is checked with its discovery replaced by a static
# target: everything else in it (relabeling, rule files) is still checked.
printf 'scrape_configs:\n  - job_name: probe\n    kubernetes_sd_configs: [{role: pod}]\n' >"$tmp/probe.yml"
if "$PROMTOOL" check config "$tmp/probe.yml" >/dev/null 2>&1; then
	"$PROMTOOL" check config deploy/prometheus/prometheus-kubernetes.yml
else
	say "this promtool has no Kubernetes service discovery: checking prometheus-kubernetes.yml with a static target instead"
	"$PY" - "$tmp/prometheus-kubernetes.yml" <<'PY'
import pathlib, sys, yaml
src = pathlib.Path("deploy/prometheus/prometheus-kubernetes.yml")
cfg = yaml.safe_load(src.read_text())
cfg["rule_files"] = [str((src.parent / f).resolve()) for f in cfg.get("rule_files", [])]
for sc in cfg["scrape_configs"]:
    if sc.pop("kubernetes_sd_configs", None) is not None:
        sc["static_configs"] = [{"targets": ["ledgerd:9464"]}]
pathlib.Path(sys.argv[1]).write_text(yaml.safe_dump(cfg))
PY
	"$PROMTOOL" check config "$tmp/prometheus-kubernetes.yml"
fi

# The dashboard's queries are PromQL too: promtool parses them as recording
# rules, with Grafana's variables replaced by plain values.
say "promtool: parsing the dashboard's queries"
"$PY" - "$tmp/dashboard-rules.yml" <<'PY'
import json, sys, yaml
dash = json.load(open("deploy/grafana/dashboards/creditledger.json"))
exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
        walk(p.get("panels", []))
walk(dash["panels"])
subst = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "${instance}": ".*", "$instance": ".*"}
rules = []
for i, (title, e) in enumerate(exprs):
    for k, v in subst.items():
        e = e.replace(k, v)
    if "$" in e:
        sys.exit(f"dashboard panel {title!r}: unknown variable in {e}")
    rules.append({"record": f"dashboard:query_{i}", "expr": e})
yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, open(sys.argv[1], "w"))
PY
"$PROMTOOL" check rules "$tmp/dashboard-rules.yml"

say "checking metric names, alert annotations, dashboard, manifests and compose file"
"$PY" - <<'PY'
import json, pathlib, re, sys, yaml

errors = []
def err(msg):
    errors.append(msg)

D = pathlib.Path("deploy")
def load(path):
    return yaml.safe_load((D / path).read_text())
def load_all(path):
    return [d for d in yaml.safe_load_all((D / path).read_text()) if d is not None]

# --- Metric names: exactly what ledgerd exports (internal/metrics,
# internal/grpcserver) plus the Go and process collectors' series we use.
EXPORTED = {
    "creditledger_grpc_server_handled_total",
    "creditledger_grpc_server_started_total",
    "creditledger_grpc_server_handling_seconds_bucket",
    "creditledger_grpc_server_handling_seconds_sum",
    "creditledger_grpc_server_handling_seconds_count",
    "creditledger_transactions_posted_total",
    "creditledger_credits_posted_total",
    "creditledger_refusals_total",
    "creditledger_idempotent_replays_total",
    "creditledger_store_conflicts_total",
    "creditledger_write_batches_total",
    "creditledger_write_batch_size_bucket", "creditledger_write_batch_size_sum", "creditledger_write_batch_size_count",
    "creditledger_write_batch_seconds_bucket", "creditledger_write_batch_seconds_sum", "creditledger_write_batch_seconds_count",
    "creditledger_write_queue_ops",
    "creditledger_pending_requests",
    "creditledger_pending_requests_oldest_age_seconds",
    "creditledger_pending_requests_scrape_errors_total",
    "creditledger_holds_total", "creditledger_reversals_total",
    "creditledger_holds_active", "creditledger_held_credits", "creditledger_holds_scrape_errors_total",
    "creditledger_events_written_total",
    "creditledger_webhook_deliveries_total",
    "creditledger_webhook_delivery_lag_seconds_bucket", "creditledger_webhook_delivery_lag_seconds_sum",
    "creditledger_webhook_delivery_lag_seconds_count",
    "creditledger_webhook_delivery_duration_seconds_bucket", "creditledger_webhook_delivery_duration_seconds_sum",
    "creditledger_webhook_delivery_duration_seconds_count",
    "creditledger_webhook_endpoints_disabled_total",
    "creditledger_store_up",
    "creditledger_store_transaction_seconds_bucket",
    "creditledger_store_transaction_seconds_sum",
    "creditledger_store_transaction_seconds_count",
    "creditledger_store_pool_connections",
    "creditledger_store_pool_max_connections",
    "creditledger_store_pool_acquire_wait_seconds_total",
    "go_goroutines", "go_threads", "go_gc_duration_seconds",
    "go_memstats_heap_inuse_bytes", "go_memstats_heap_alloc_bytes",
    "process_resident_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "process_max_fds",
}
NAME = re.compile(r"\b((?:creditledger|go|process)_[a-z0-9_]+)")

def check_names(where, text):
    used = set(NAME.findall(text))
    for n in sorted(used - EXPORTED):
        err(f"{where}: metric {n} is not exported by ledgerd")
    return used

rules = load("prometheus/alerts.yml")
readme = (D / "README.md").read_text() if (D / "README.md").exists() else ""
anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
           for h in re.findall(r"^#+\s+(.+)$", readme, re.M)}
alerts = []
used = set()
for g in rules["groups"]:
    for r in g["rules"]:
        if "alert" not in r:
            continue
        a = r["alert"]
        alerts.append(a)
        used |= check_names(f"alerts.yml {a}", r["expr"])
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            err(f"alerts.yml {a}: severity label must be critical, warning or info")
        ann = r.get("annotations", {})
        for k in ("summary", "description", "runbook_url"):
            if not ann.get(k):
                err(f"alerts.yml {a}: annotation {k} is missing")
        frag = ann.get("runbook_url", "").partition("#")[2]
        if frag and frag not in anchors:
            err(f"alerts.yml {a}: runbook_url #{frag} is not a heading of deploy/README.md")
if len(set(alerts)) != len(alerts):
    err("alerts.yml: duplicate alert names")

tests = load("prometheus/alerts_test.yml")
check_names("alerts_test.yml", (D / "prometheus/alerts_test.yml").read_text())
tested = {t["alertname"] for tc in tests["tests"] for t in tc.get("alert_rule_test", [])}
for a in alerts:
    if a not in tested:
        err(f"alerts_test.yml: alert {a} has no test")

# --- Grafana.
dash = json.loads((D / "grafana/dashboards/creditledger.json").read_text())
for k in ("uid", "title", "schemaVersion", "panels", "templating"):
    if k not in dash:
        err(f"creditledger.json: {k} is missing")
if dash.get("id") is not None:
    err("creditledger.json: id must be null for provisioning")
tvars = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
if tvars.get("datasource", {}).get("type") != "datasource":
    err("creditledger.json: needs a datasource template variable")
ids, exprs = set(), []
def walk(panels):
    for p in panels:
        if p.get("id") in ids:
            err(f"creditledger.json: duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            err(f"creditledger.json: panel {p.get('title')} has no gridPos")
        if p.get("type") != "row":
            if p.get("datasource", {}).get("uid") != "${datasource}":
                err(f"creditledger.json: panel {p.get('title')} does not use ${{datasource}}")
            if not p.get("targets"):
                err(f"creditledger.json: panel {p.get('title')} has no query")
            for t in p.get("targets", []):
                exprs.append(t.get("expr", ""))
        walk(p.get("panels", []))
walk(dash.get("panels", []))
for v in tvars.values():
    if v.get("type") == "query":
        q = v.get("query")
        exprs.append(q.get("query", "") if isinstance(q, dict) else q or "")
used |= check_names("creditledger.json", "\n".join(exprs))
for required in ("creditledger_grpc_server_handled_total", "creditledger_grpc_server_handling_seconds_bucket",
                 "creditledger_credits_posted_total", "creditledger_refusals_total",
                 "creditledger_idempotent_replays_total", "creditledger_store_conflicts_total",
                 "creditledger_pending_requests", "creditledger_pending_requests_oldest_age_seconds",
                 "creditledger_store_transaction_seconds_bucket", "creditledger_store_pool_connections",
                 "process_resident_memory_bytes", "go_goroutines"):
    if required not in "\n".join(exprs):
        err(f"creditledger.json: no panel shows {required}")
ds = load("grafana/provisioning/datasources/prometheus.yaml")
if not any(d.get("type") == "prometheus" for d in ds.get("datasources", [])):
    err("grafana datasources: no prometheus datasource")
prov = load("grafana/provisioning/dashboards/provider.yaml")
dash_paths = [p.get("options", {}).get("path") for p in prov.get("providers", [])]

# --- Compose: services, dependencies and mounted files exist.
compose = load("compose.yaml")
svcs = compose.get("services", {})
for name in ("postgres", "postgres-standby", "pgbouncer", "migrate", "ledgerd", "prometheus", "grafana"):
    if name not in svcs:
        err(f"compose.yaml: service {name} is missing")
# The database is healthy when it takes TCP connections, as ledgerd makes
# them: a socket-only check passes during the image's init scripts.
pg_check = " ".join(svcs.get("postgres", {}).get("healthcheck", {}).get("test", []))
if "pg_isready" not in pg_check or " -h " not in pg_check:
    err("compose.yaml: postgres: the health check must be pg_isready over TCP (-h)")
for name, s in svcs.items():
    deps = s.get("depends_on", {})
    for dep in deps:
        if dep not in svcs:
            err(f"compose.yaml: {name} depends on unknown service {dep}")
    env_files = s.get("env_file", [])
    for f in [env_files] if isinstance(env_files, str) else env_files:
        f = f["path"] if isinstance(f, dict) else f
        if not (D / f).is_file():
            err(f"compose.yaml: {name}: env_file {f} does not exist")
    for v in s.get("volumes", []):
        src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
        if src.rstrip("/") == "./secrets" or src.startswith("./secrets/"):
            # Operator-made keys and certificates, absent from the repository:
            # a missing one must stop the service, not become an empty
            # directory (the short syntax creates one), and nothing writes them.
            if isinstance(v, str) or v.get("bind", {}).get("create_host_path") is not False \
                    or v.get("read_only") is not True:
                err(f"compose.yaml: {name}: mount {src} with the long syntax, read_only and create_host_path: false")
            if src.rstrip("/") in ("./secrets", "."):
                err(f"compose.yaml: {name}: mounts all of ./secrets, private keys included; mount the files it needs")
        elif src.startswith("."):
            if not (D / src).exists():
                err(f"compose.yaml: {name}: mounted {src} does not exist")
        elif src and src not in (compose.get("volumes") or {}):
            err(f"compose.yaml: {name}: volume {src} is not declared")
ld = svcs.get("ledgerd", {})
if ld.get("depends_on", {}).get("migrate", {}).get("condition") != "service_completed_successfully":
    err("compose.yaml: ledgerd must wait for migrate to complete successfully")
if svcs.get("migrate", {}).get("command") != ["migrate"]:
    err("compose.yaml: the migrate service must run `ledgerd migrate`")
if "pg_isready" not in json.dumps(svcs.get("postgres", {}).get("healthcheck", {})):
    err("compose.yaml: postgres needs a pg_isready healthcheck")
graf_mounts = {v.split(":")[1] for v in svcs.get("grafana", {}).get("volumes", []) if isinstance(v, str)}
for p in dash_paths:
    if p not in graf_mounts:
        err(f"grafana provider path {p} is not mounted in compose.yaml")
# The serving ledgerd's secrets and the schema owner's live in two files;
# ledgerd reads only the first.
def env_keys(path):
    text = (D / path).read_text() if (D / path).is_file() else ""
    return dict(re.findall(r"^([A-Z_][A-Z0-9_]*)=(.*)$", text, re.M))
env_files = {"compose.secrets.env": ("LEDGER_DATABASE_URL", "LEDGER_READ_DATABASE_URL", "LEDGER_PAGE_TOKEN_KEY"),
             "compose.migrate.env": ("POSTGRES_PASSWORD", "LEDGER_MIGRATE_DATABASE_URL", "LEDGER_RUNTIME_ROLE_PASSWORD"),
             "compose.replication.env": ("POSTGRES_REPLICATION_PASSWORD",),
             "compose.pgbouncer.env": ("PGBOUNCER_AUTH_PASSWORD",)}
for f, want in env_files.items():
    kv = env_keys(f)
    if sorted(kv) != sorted(want):
        err(f"{f}: must set exactly {', '.join(want)}, sets {', '.join(sorted(kv)) or 'nothing'}")
    for k in want:
        if "CHANGE-ME" not in kv.get(k, ""):
            err(f"{f}: {k} must hold a CHANGE-ME placeholder")
if not env_keys("compose.secrets.env").get("LEDGER_DATABASE_URL", "").startswith("postgres://creditledger_app:"):
    err("compose.secrets.env: LEDGER_DATABASE_URL must connect as the runtime role creditledger_app")
def svc_env_files(name):
    f = svcs.get(name, {}).get("env_file", [])
    return sorted(x["path"] if isinstance(x, dict) else x for x in ([f] if isinstance(f, str) else f))
for name, want in (("ledgerd", ["compose.secrets.env"]), ("migrate", ["compose.migrate.env"]),
                   ("postgres", ["compose.migrate.env", "compose.replication.env"]),
                   ("postgres-standby", ["compose.replication.env"]), ("pgbouncer", ["compose.pgbouncer.env"]),
                   ("secrets-check", sorted(env_files))):
    if svc_env_files(name) != want:
        err(f"compose.yaml: {name} must read exactly {want} (each service gets only its own secrets)")
if svcs.get("postgres", {}).get("depends_on", {}).get("secrets-check", {}).get("condition") \
        != "service_completed_successfully":
    err("compose.yaml: postgres must wait for secrets-check to complete successfully")
if svcs.get("secrets-check", {}).get("network_mode") != "none":
    err("compose.yaml: secrets-check holds every secret: network_mode none")
for name, s in svcs.items():
    env = s.get("environment", {})
    env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env) if isinstance(env, list) else env
    for k in ("LEDGER_AUTH_SECRET", "LEDGER_DB_ALLOW_PRIVILEGED_ROLE", "LEDGER_AUTH_NONE_ALLOW_REMOTE"):
        if k in env:
            err(f"compose.yaml: {name} sets {k}")
ld_env = ld.get("environment", {})
if ld_env.get("LEDGER_AUTH") != "token" or not ld_env.get("LEDGER_AUTH_JWKS_FILE"):
    err("compose.yaml: ledgerd needs LEDGER_AUTH=token with LEDGER_AUTH_JWKS_FILE")
for k in ("LEDGER_TLS_CERT_FILE", "LEDGER_TLS_KEY_FILE", "LEDGER_TLS_CLIENT_CA_FILE"):
    if not ld_env.get(k):
        err(f"compose.yaml: ledgerd needs {k} (TLS)")
ld_targets = [v.get("target", "") for v in ld.get("volumes", []) if isinstance(v, dict)]
for k in ("LEDGER_AUTH_JWKS_FILE", "LEDGER_TLS_CERT_FILE", "LEDGER_TLS_KEY_FILE", "LEDGER_TLS_CLIENT_CA_FILE"):
    path = ld_env.get(k, "")
    if path and not any(path == t or path.startswith(t.rstrip("/") + "/") for t in ld_targets):
        err(f"compose.yaml: ledgerd's {k} {path} is not in a mounted file or directory")
if ld_env.get("LEDGER_METRICS_ADDR") != ":9464":
    err("compose.yaml: ledgerd needs LEDGER_METRICS_ADDR \":9464\" (Prometheus scrapes it)")
for p in ld.get("ports", []):
    if str(p).split(":")[-1].split("/")[0] == "9464":
        err("compose.yaml: ledgerd's metrics port 9464 must not be published on the host")
prom_targets = [t for sc in load("prometheus/prometheus.yml")["scrape_configs"] if sc["job_name"] == "creditledger"
                for c in sc.get("static_configs", []) for t in c.get("targets", [])]
if prom_targets != ["ledgerd:9464"]:
    err(f"prometheus.yml: job creditledger must scrape ledgerd:9464 (the metrics listener), not {prom_targets}")

# --- The database tier: streaming standby, pgbouncer, where each URL points.
from urllib.parse import urlsplit
import configparser

def url_at(url):
    u = urlsplit(url)
    return u.username, u.hostname, u.port
def svc_env(name):
    env = svcs.get(name, {}).get("environment", {})
    return dict(e.split("=", 1) if "=" in e else (e, "") for e in env) if isinstance(env, list) else env
def pg_settings(args):
    """-c name=value pairs of a postgres command line."""
    return dict(a.split("=", 1) for prev, a in zip(args, args[1:]) if prev == "-c")
def check_primary(where, args):
    st = pg_settings(args)
    if st.get("wal_level") != "replica":
        err(f"{where}: the primary needs -c wal_level=replica")
    for k in ("max_wal_senders", "max_replication_slots"):
        if int(st.get(k, "0")) < 2:
            err(f"{where}: the primary needs -c {k} of at least 2 (the standby and a spare)")
    if "max_slot_wal_keep_size" not in st:
        err(f"{where}: the primary needs max_slot_wal_keep_size (a bound on what an absent standby's slot keeps)")
    return st
def mounts_of(s):
    out = {}
    for v in s.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            out[parts[1]] = parts[0]
        else:
            out[v.get("target")] = v.get("source")
    return out

scripts = {n: (D / "postgres" / n).read_text() for n in ("init-replication.sh", "standby-entrypoint.sh")}
init_sh, standby_sh = scripts["init-replication.sh"], scripts["standby-entrypoint.sh"]
for want in ("WITH LOGIN REPLICATION", "NOSUPERUSER", "pg_create_physical_replication_slot",
             "host replication $role all scram-sha-256", "POSTGRES_REPLICATION_PASSWORD"):
    if want not in init_sh:
        err(f"postgres/init-replication.sh: {want!r} is missing")
for want in ("pg_basebackup", "--write-recovery-conf", '--slot="$slot"', "--wal-method=stream",
             "POSTGRES_REPLICATION_PASSWORD", 'exec "$@"'):
    if want not in standby_sh:
        err(f"postgres/standby-entrypoint.sh: {want!r} is missing")

pg, sb, pb = svcs.get("postgres", {}), svcs.get("postgres-standby", {}), svcs.get("pgbouncer", {})
cmd = pg.get("command", [])
if cmd[:1] != ["postgres"]:
    err("compose.yaml: postgres: command must be postgres with its -c settings")
check_primary("compose.yaml: postgres", cmd)
if mounts_of(pg).get("/docker-entrypoint-initdb.d/10-replication.sh") != "./postgres/init-replication.sh":
    err("compose.yaml: postgres must run postgres/init-replication.sh from /docker-entrypoint-initdb.d")
if sb.get("image") != pg.get("image"):
    err("compose.yaml: postgres-standby must run the primary's image")
if sb.get("entrypoint") != ["/bin/sh", "/standby-entrypoint.sh"] or \
        mounts_of(sb).get("/standby-entrypoint.sh") != "./postgres/standby-entrypoint.sh":
    err("compose.yaml: postgres-standby must start with postgres/standby-entrypoint.sh")
if sb.get("command", [])[:2] != ["docker-entrypoint.sh", "postgres"] or pg_settings(sb.get("command", [])).get("hot_standby") != "on":
    err("compose.yaml: postgres-standby must run docker-entrypoint.sh postgres -c hot_standby=on")
def check_standby_limits(where, primary_args, standby_args):
    st_p, st_s = pg_settings(primary_args), pg_settings(standby_args)
    for k in ("max_wal_senders", "max_replication_slots"):
        if st_s.get(k) != st_p.get(k):
            err(f"{where}: the standby's {k} must be the primary's ({st_p.get(k)}): a hot standby needs at least as many")
check_standby_limits("compose.yaml", cmd, sb.get("command", []))
if svc_env("postgres-standby").get("PRIMARY_HOST") != "postgres":
    err("compose.yaml: postgres-standby must replicate from PRIMARY_HOST postgres")
if "/var/lib/postgresql/data" not in mounts_of(sb) or mounts_of(sb)["/var/lib/postgresql/data"] == mounts_of(pg).get("/var/lib/postgresql/data"):
    err("compose.yaml: postgres-standby needs a data volume of its own")
if "pg_is_in_recovery()" not in json.dumps(sb.get("healthcheck", {})) or " -h " not in json.dumps(sb.get("healthcheck", {})):
    err("compose.yaml: postgres-standby: the health check must be pg_isready over TCP and pg_is_in_recovery()")
for name in ("postgres-standby", "pgbouncer"):
    if svcs.get(name, {}).get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        err(f"compose.yaml: {name} must wait for postgres to be healthy")
    if not svcs.get(name, {}).get("healthcheck", {}).get("test"):
        err(f"compose.yaml: {name} needs a healthcheck")
    if svcs.get(name, {}).get("ports"):
        err(f"compose.yaml: {name} must not publish a host port")

def ini(text):
    c = configparser.ConfigParser(interpolation=None, comment_prefixes=(";", "#"), allow_no_value=True)
    c.read_string(text)
    return c
bouncer_ini = ini((D / "pgbouncer/pgbouncer.ini").read_text())
bdb = dict(kv.split("=", 1) for kv in bouncer_ini.get("databases", "creditledger", fallback="").split())
if bdb.get("host") != "postgres" or bdb.get("port") != "5432" or bdb.get("dbname") != "creditledger":
    err("pgbouncer/pgbouncer.ini: database creditledger must be host=postgres port=5432 dbname=creditledger (the primary)")
for k, v in (("pool_mode", "transaction"), ("auth_type", "scram-sha-256"), ("listen_port", "6432"),
             ("auth_file", "/run/pgbouncer/userlist.txt")):
    if bouncer_ini.get("pgbouncer", k, fallback=None) != v:
        err(f"pgbouncer/pgbouncer.ini: {k} must be {v}")
if pb.get("build", {}).get("context") != "pgbouncer" or "/run/pgbouncer" not in pb.get("tmpfs", []) or pb.get("read_only") is not True:
    err("compose.yaml: pgbouncer is built from pgbouncer/, read-only, with its auth file on a tmpfs at /run/pgbouncer")
bdf = (D / "pgbouncer/Dockerfile").read_text()
for want in ("FROM debian:", "apt-get install", "pgbouncer", "USER 65532:65532", "entrypoint.sh", "pgbouncer.ini"):
    if want not in bdf:
        err(f"pgbouncer/Dockerfile: {want!r} is missing")
if 'PGBOUNCER_AUTH_PASSWORD' not in (D / "pgbouncer/entrypoint.sh").read_text():
    err("pgbouncer/entrypoint.sh must write the auth file from PGBOUNCER_AUTH_PASSWORD")

secrets_env = env_keys("compose.secrets.env")
if url_at(secrets_env.get("LEDGER_DATABASE_URL", "")) != ("creditledger_app", "pgbouncer", 6432):
    err("compose.secrets.env: LEDGER_DATABASE_URL must connect as creditledger_app to pgbouncer:6432")
if url_at(secrets_env.get("LEDGER_READ_DATABASE_URL", "")) != ("creditledger_app", "postgres-standby", 5432):
    err("compose.secrets.env: LEDGER_READ_DATABASE_URL must connect as creditledger_app to postgres-standby:5432")
if url_at(env_keys("compose.migrate.env").get("LEDGER_MIGRATE_DATABASE_URL", ""))[1:] != ("postgres", 5432):
    err("compose.migrate.env: LEDGER_MIGRATE_DATABASE_URL must reach the primary directly (postgres:5432), not pgbouncer")
if ld_env.get("LEDGER_DATABASE_POOLER") != "transaction":
    err("compose.yaml: ledgerd needs LEDGER_DATABASE_POOLER=transaction (it writes through transaction pooling)")
for dep in ("pgbouncer", "postgres-standby"):
    if ld.get("depends_on", {}).get(dep, {}).get("condition") != "service_healthy":
        err(f"compose.yaml: ledgerd must wait for {dep} to be healthy")
if svcs.get("migrate", {}).get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
    err("compose.yaml: migrate must wait for postgres to be healthy")
# Secrets come from the env files only, never inline.
for name, s in svcs.items():
    for k, v in svc_env(name).items():
        if "PASSWORD" in k or k.endswith("DATABASE_URL") or k in ("LEDGER_PAGE_TOKEN_KEY", "LEDGER_AUTH_SECRET"):
            err(f"compose.yaml: {name} sets the secret {k} inline; it belongs in an env file")

# --- Kubernetes manifests.
kust = load("k8s/kustomization.yaml")
docs = {}
for f in sorted((D / "k8s").glob("*.yaml")):
    if f.name == "kustomization.yaml":
        continue
    for d in load_all(f"k8s/{f.name}"):
        for k in ("apiVersion", "kind", "metadata"):
            if k not in d:
                err(f"k8s/{f.name}: {k} is missing")
        if "namespace" in d.get("metadata", {}):
            err(f"k8s/{f.name}: {d['kind']} sets a namespace; the manifests are namespace-agnostic")
        docs.setdefault(d["kind"], []).append((f.name, d))
for r in kust.get("resources", []):
    if not (D / "k8s" / r).is_file():
        err(f"k8s/kustomization.yaml: resource {r} does not exist")
if "secret.example.yaml" in kust.get("resources", []):
    err("k8s/kustomization.yaml: must not apply the placeholder secret")

def one(kind):
    items = docs.get(kind, [])
    if len(items) != 1:
        err(f"k8s: expected one {kind}, found {len(items)}")
        return {}
    return items[0][1]

def named(kind, name):
    items = [d for _, d in docs.get(kind, []) if d["metadata"]["name"] == name]
    if len(items) != 1:
        err(f"k8s: expected one {kind} {name}, found {len(items)}")
        return {}
    return items[0]
def component(d):
    return d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/component")

cm, dep, job, pdb = named("ConfigMap", "ledgerd"), named("Deployment", "ledgerd"), one("Job"), named("PodDisruptionBudget", "ledgerd")
secrets = {d["metadata"]["name"]: d for _, d in docs.get("Secret", [])}
if sorted(secrets) != ["ledgerd", "ledgerd-migrate", "pgbouncer", "postgres"]:
    err(f"k8s/secret.example.yaml: expected the Secrets ledgerd, ledgerd-migrate, pgbouncer and postgres, found {sorted(secrets)}")
sec, msec = secrets.get("ledgerd", {}), secrets.get("ledgerd-migrate", {})
for d, want in ((sec, ["LEDGER_DATABASE_URL", "LEDGER_PAGE_TOKEN_KEY", "LEDGER_READ_DATABASE_URL"]),
                (msec, ["LEDGER_MIGRATE_DATABASE_URL", "LEDGER_RUNTIME_ROLE_PASSWORD"]),
                (secrets.get("postgres", {}), ["POSTGRES_PASSWORD", "POSTGRES_REPLICATION_PASSWORD"]),
                (secrets.get("pgbouncer", {}), ["PGBOUNCER_AUTH_PASSWORD"])):
    if d and sorted(d.get("stringData", {})) != want:
        err(f"k8s: Secret {d['metadata']['name']} must hold exactly {want}")
for d, k in ((sec, "LEDGER_DATABASE_URL"), (sec, "LEDGER_READ_DATABASE_URL"), (msec, "LEDGER_MIGRATE_DATABASE_URL")):
    if "sslmode=verify-full" not in d.get("stringData", {}).get(k, "sslmode=verify-full"):
        err(f"k8s: Secret {d['metadata']['name']}: {k} must use sslmode=verify-full")
if not sec.get("stringData", {}).get("LEDGER_DATABASE_URL", "").startswith("postgres://creditledger_app:"):
    err("k8s: Secret ledgerd: LEDGER_DATABASE_URL must connect as the runtime role creditledger_app")
spec = dep.get("spec", {})
pod = spec.get("template", {}).get("spec", {})
pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
ann = spec.get("template", {}).get("metadata", {}).get("annotations", {})
def selects(sel, where):
    if not sel or any(pod_labels.get(k) != v for k, v in sel.items()):
        err(f"k8s: {where} selector {sel} does not match the pod labels {pod_labels}")
selects(spec.get("selector", {}).get("matchLabels"), "Deployment")
selects(pdb.get("spec", {}).get("selector", {}).get("matchLabels"), "PodDisruptionBudget")
ledgerd_services = [s for _, s in docs.get("Service", []) if component(s) == "ledgerd"]
for s in ledgerd_services:
    selects(s.get("spec", {}).get("selector"), f"Service {s['metadata']['name']}")
if spec.get("replicas", 1) < 3:
    err("k8s: Deployment needs at least 3 replicas")
c = (pod.get("containers") or [{}])[0]
ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
if ports != {"http": 8080, "grpc": 9090, "metrics": 9464}:
    err(f"k8s: container ports must be http 8080, grpc 9090 and metrics 9464, got {ports}")
tls_on = bool(cm.get("data", {}).get("LEDGER_TLS_CERT_FILE"))
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz"), ("startupProbe", "/healthz")):
    g = c.get(probe, {}).get("httpGet", {})
    if g.get("path") != path or g.get("port") not in ("http", 8080):
        err(f"k8s: {probe} must GET {path} on the http port")
    if g.get("scheme", "HTTP") != ("HTTPS" if tls_on else "HTTP"):
        err(f"k8s: {probe} must use scheme {'HTTPS' if tls_on else 'HTTP'}")
for s in ledgerd_services:
    for p in s["spec"].get("ports", []):
        if p.get("targetPort") in ("metrics", 9464) or p.get("port") == 9464:
            err(f"k8s: Service {s['metadata']['name']} exposes the metrics port; Prometheus scrapes the pods")
        if p.get("targetPort") not in ports and p.get("targetPort") not in ports.values():
            err(f"k8s: Service {s['metadata']['name']} targets unknown port {p.get('targetPort')}")
        if not p.get("appProtocol"):
            err(f"k8s: Service {s['metadata']['name']} port {p.get('name')} has no appProtocol")
if ann.get("prometheus.io/scrape") != "true" or str(ann.get("prometheus.io/port")) != "9464":
    err("k8s: the pod template needs prometheus.io/scrape and prometheus.io/port annotations")
res = c.get("resources", {})
if not res.get("requests") or not res.get("limits"):
    err("k8s: resources need requests and limits")
sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
    err("k8s: runAsNonRoot is not set")
if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False \
        or sc.get("capabilities", {}).get("drop") != ["ALL"]:
    err("k8s: container securityContext must be read-only, no privilege escalation, drop ALL")
if not pod.get("topologySpreadConstraints"):
    err("k8s: topologySpreadConstraints missing")

def seconds(s):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", s or "")
    if not m or not s:
        raise ValueError(s)
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)
cmdata = cm.get("data", {})
try:
    budget = seconds(cmdata.get("LEDGER_DRAIN_DELAY", "0s")) + seconds(cmdata.get("LEDGER_SHUTDOWN_TIMEOUT", "20s"))
    if pod.get("terminationGracePeriodSeconds", 30) <= budget:
        err(f"k8s: terminationGracePeriodSeconds must exceed drain delay + shutdown timeout ({budget}s)")
except ValueError as e:
    err(f"k8s: configmap durations must look like 10s or 1m30s: {e}")

cm_name = cm.get("metadata", {}).get("name")
# Each pod reads its own Secret: the Deployment never the owner's.
def refs(podspec, where, sec_name):
    sd = secrets.get(sec_name, {}).get("stringData", {})
    for ctr in podspec.get("containers", []) + podspec.get("initContainers", []):
        for ef in ctr.get("envFrom", []):
            if "configMapRef" in ef and ef["configMapRef"]["name"] != cm_name:
                err(f"k8s: {where} refers to ConfigMap {ef['configMapRef']['name']}")
            if "secretRef" in ef and ef["secretRef"]["name"] != sec_name:
                err(f"k8s: {where} refers to Secret {ef['secretRef']['name']}")
        for e in ctr.get("env", []):
            vf = e.get("valueFrom", {})
            if "secretKeyRef" in vf:
                r = vf["secretKeyRef"]
                if r["name"] != sec_name or r["key"] not in sd:
                    err(f"k8s: {where} env {e['name']} refers to {r['name']}/{r['key']}, not in the example Secret {sec_name}")
            if "configMapKeyRef" in vf:
                r = vf["configMapKeyRef"]
                if r["name"] != cm_name or r["key"] not in cmdata:
                    err(f"k8s: {where} env {e['name']} refers to {r['name']}/{r['key']}")
refs(pod, "Deployment", "ledgerd")
jpod = job.get("spec", {}).get("template", {}).get("spec", {})
refs(jpod, "Job", "ledgerd-migrate")
jc = (jpod.get("containers") or [{}])[0]
dep_env = {e["name"] for ctr in pod.get("containers", []) + pod.get("initContainers", []) for e in ctr.get("env", [])}
for k in ("LEDGER_AUTH_SECRET", "LEDGER_MIGRATE_DATABASE_URL", "LEDGER_RUNTIME_ROLE_PASSWORD",
          "LEDGER_DB_ALLOW_PRIVILEGED_ROLE", "LEDGER_AUTH_NONE_ALLOW_REMOTE"):
    if k in dep_env or k in cmdata:
        err(f"k8s: the Deployment must not receive {k}")
for k in ("LEDGER_DATABASE_URL", "LEDGER_READ_DATABASE_URL", "LEDGER_PAGE_TOKEN_KEY"):
    if k not in dep_env:
        err(f"k8s: the Deployment needs {k} from the Secret ledgerd")
job_env = {e["name"] for e in jc.get("env", [])}
if job_env != {"LEDGER_MIGRATE_DATABASE_URL", "LEDGER_RUNTIME_ROLE_PASSWORD"}:
    err(f"k8s: the Job must take exactly LEDGER_MIGRATE_DATABASE_URL and LEDGER_RUNTIME_ROLE_PASSWORD, got {sorted(job_env)}")
if cmdata.get("LEDGER_AUTH") != "token" or not cmdata.get("LEDGER_AUTH_JWKS_FILE"):
    err("k8s/configmap.yaml: LEDGER_AUTH must be token, with LEDGER_AUTH_JWKS_FILE")
if cmdata.get("LEDGER_METRICS_ADDR") != ":9464":
    err("k8s/configmap.yaml: LEDGER_METRICS_ADDR must be \":9464\" (the metrics container port)")
# The JWKS and TLS files come from read-only whole-directory mounts (no
# subPath, so renewals reach the pod) of the ConfigMap ledgerd-jwks and the
# kubernetes.io/tls Secret ledgerd-tls.
vols = {v["name"]: v for v in pod.get("volumes", [])}
mounts = c.get("volumeMounts", [])
want_src = {"LEDGER_AUTH_JWKS_FILE": ("configMap", "name", "ledgerd-jwks"),
            "LEDGER_TLS_CERT_FILE": ("secret", "secretName", "ledgerd-tls"),
            "LEDGER_TLS_KEY_FILE": ("secret", "secretName", "ledgerd-tls"),
            "LEDGER_TLS_CLIENT_CA_FILE": ("secret", "secretName", "ledgerd-tls")}
for k, (kind, field, name) in want_src.items():
    path = cmdata.get(k, "")
    if not path:
        err(f"k8s/configmap.yaml: {k} is missing (TLS and the JWKS are required in production)")
        continue
    m = next((m for m in mounts if path.rsplit("/", 1)[0] == m.get("mountPath", "").rstrip("/")), None)
    if m is None:
        err(f"k8s: {k} {path} is not in a mounted directory")
        continue
    v = vols.get(m.get("name"), {})
    if m.get("readOnly") is not True or "subPath" in m or v.get(kind, {}).get(field) != name:
        err(f"k8s: {k} must come from a read-only mount, without subPath, of {kind} {name}")
for cert in [named("Certificate", "ledgerd")]:
    cs = cert.get("spec", {})
    if cs.get("secretName") != "ledgerd-tls" or not {"server auth", "client auth"} <= set(cs.get("usages", [])):
        err("k8s/certificate.example.yaml: secretName ledgerd-tls with usages server auth and client auth "
            "(the REST gateway presents it to the mTLS gRPC port)")
if jc.get("args", jc.get("command")) != ["migrate"]:
    err("k8s: the Job must run `ledgerd migrate`")
if jc.get("image") != c.get("image"):
    err("k8s: the Job and the Deployment must run the same image")
for d in secrets.values():
    for k, v in d.get("stringData", {}).items():
        if "CHANGE-ME" not in v:
            err(f"k8s/secret.example.yaml: {d['metadata']['name']} {k} must be a CHANGE-ME placeholder")
for k in cmdata:
    if k in ("LEDGER_AUTH_SECRET", "LEDGER_PAGE_TOKEN_KEY", "LEDGER_DATABASE_URL", "LEDGER_READ_DATABASE_URL",
             "LEDGER_MIGRATE_DATABASE_URL", "LEDGER_RUNTIME_ROLE_PASSWORD"):
        err(f"k8s/configmap.yaml: {k} is a secret; it belongs in a Secret")
for r in kust.get("resources", []):
    if r.endswith(".example.yaml"):
        err(f"k8s/kustomization.yaml: must not apply the example {r}")

# --- Kubernetes: the database tier.
sts_p, sts_s = named("StatefulSet", "postgres"), named("StatefulSet", "postgres-standby")
bdep, bcm = named("Deployment", "pgbouncer"), named("ConfigMap", "pgbouncer")
scm = named("ConfigMap", "postgres-scripts")
for n, text in scripts.items():
    if scm.get("data", {}).get(n) != text:
        err(f"k8s/postgres.yaml: ConfigMap postgres-scripts {n} differs from deploy/postgres/{n}")
def podspec(w):
    return w.get("spec", {}).get("template", {}).get("spec", {})
def ctr(w):
    return (podspec(w).get("containers") or [{}])[0]
def envmap(c):
    return {e["name"]: e for e in c.get("env", [])}
def from_secret(c, name, secret):
    ref = envmap(c).get(name, {}).get("valueFrom", {}).get("secretKeyRef", {})
    if ref.get("name") != secret or ref.get("key") not in secrets.get(secret, {}).get("stringData", {}):
        err(f"k8s: {c.get('name')} must take {name} from the Secret {secret}")
def mount_of(w, path):
    c = ctr(w)
    m = next((m for m in c.get("volumeMounts", []) if m.get("mountPath") == path), None)
    if m is None:
        return None, {}
    return m, next((v for v in podspec(w).get("volumes", []) if v["name"] == m["name"]), {})
pc, sc_ = ctr(sts_p), ctr(sts_s)
check_primary("k8s/postgres.yaml", pc.get("args", []))
if pc.get("image") != sc_.get("image") or pc.get("image") != pg.get("image"):
    err("k8s: postgres-standby must run the primary's image (and compose's)")
from_secret(pc, "POSTGRES_PASSWORD", "postgres")
from_secret(pc, "POSTGRES_REPLICATION_PASSWORD", "postgres")
from_secret(sc_, "POSTGRES_REPLICATION_PASSWORD", "postgres")
if "POSTGRES_PASSWORD" in envmap(sc_):
    err("k8s: postgres-standby must not receive the owner's POSTGRES_PASSWORD")
m, v = mount_of(sts_p, "/docker-entrypoint-initdb.d/10-replication.sh")
if not m or m.get("subPath") != "init-replication.sh" or v.get("configMap", {}).get("name") != "postgres-scripts":
    err("k8s: the primary must run init-replication.sh of postgres-scripts from /docker-entrypoint-initdb.d")
m, v = mount_of(sts_s, "/scripts")
if sc_.get("command") != ["/bin/sh", "/scripts/standby-entrypoint.sh"] or v.get("configMap", {}).get("name") != "postgres-scripts":
    err("k8s: postgres-standby must start with standby-entrypoint.sh of postgres-scripts")
if sc_.get("args", [])[:2] != ["docker-entrypoint.sh", "postgres"] or pg_settings(sc_.get("args", [])).get("hot_standby") != "on":
    err("k8s: postgres-standby must run docker-entrypoint.sh postgres -c hot_standby=on")
check_standby_limits("k8s", pc.get("args", []), sc_.get("args", []))
senv = envmap(sc_)
if senv.get("PRIMARY_HOST", {}).get("value") != "postgres" or senv.get("PGSSLMODE", {}).get("value") != "verify-full":
    err("k8s: postgres-standby must replicate from PRIMARY_HOST postgres with PGSSLMODE verify-full")
for w, c in ((sts_p, pc), (sts_s, sc_)):
    st = pg_settings(c.get("args", []))
    if st.get("ssl") != "on" or not st.get("ssl_key_file", "").startswith("/etc/postgres/tls/"):
        err(f"k8s: {w['metadata']['name']} must serve TLS from /etc/postgres/tls")
    m, v = mount_of(w, "/etc/postgres/tls")
    if v.get("secret", {}).get("secretName") != "postgres-tls":
        err(f"k8s: {w['metadata']['name']} must mount the Secret postgres-tls on /etc/postgres/tls")
    if not w.get("spec", {}).get("volumeClaimTemplates"):
        err(f"k8s: {w['metadata']['name']} needs a volume of its own (volumeClaimTemplates)")
if "pg_is_in_recovery()" not in json.dumps(sc_.get("readinessProbe", {})):
    err("k8s: postgres-standby's readiness probe must check pg_is_in_recovery()")
k8s_ini = ini(bcm.get("data", {}).get("pgbouncer.ini", ""))
for sect, k in (("databases", "creditledger"), ("pgbouncer", "pool_mode"), ("pgbouncer", "auth_type"),
                ("pgbouncer", "auth_file"), ("pgbouncer", "listen_port"), ("pgbouncer", "max_db_connections"),
                ("pgbouncer", "default_pool_size")):
    if k8s_ini.get(sect, k, fallback=None) != bouncer_ini.get(sect, k, fallback=None):
        err(f"k8s/pgbouncer.yaml: {k} differs from deploy/pgbouncer/pgbouncer.ini")
if k8s_ini.get("pgbouncer", "server_tls_sslmode", fallback=None) != "verify-full" or \
        k8s_ini.get("pgbouncer", "client_tls_sslmode", fallback=None) != "require":
    err("k8s/pgbouncer.yaml: pgbouncer needs client_tls_sslmode require and server_tls_sslmode verify-full")
bc = ctr(bdep)
from_secret(bc, "PGBOUNCER_AUTH_PASSWORD", "pgbouncer")
m, v = mount_of(bdep, "/etc/pgbouncer")
if v.get("configMap", {}).get("name") != "pgbouncer":
    err("k8s: pgbouncer must mount the ConfigMap pgbouncer on /etc/pgbouncer")
m, v = mount_of(bdep, "/run/pgbouncer")
if "emptyDir" not in v:
    err("k8s: pgbouncer needs an emptyDir on /run/pgbouncer for its auth file")
for w in (sts_p, sts_s, bdep):
    c, name = ctr(w), w.get("metadata", {}).get("name")
    if not c.get("readinessProbe"):
        err(f"k8s: {name} needs a readiness probe")
    r = c.get("resources", {})
    if not r.get("requests") or not r.get("limits"):
        err(f"k8s: {name}: resources need requests and limits")
    sc = c.get("securityContext", {})
    if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False \
            or sc.get("capabilities", {}).get("drop") != ["ALL"] or not podspec(w).get("securityContext", {}).get("runAsNonRoot"):
        err(f"k8s: {name}: non-root, read-only, no privilege escalation, drop ALL")
    labels = w.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    svc = named("Service", name)
    sel = svc.get("spec", {}).get("selector", {})
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        err(f"k8s: Service {name} does not select the pods of {name}")
    cports = {p["name"] for p in c.get("ports", [])}
    for p in svc.get("spec", {}).get("ports", []):
        if p.get("targetPort") not in cports or not p.get("appProtocol"):
            err(f"k8s: Service {name}: port {p.get('name')} must target a named container port, with an appProtocol")
if url_at(sec.get("stringData", {}).get("LEDGER_DATABASE_URL", "")) != ("creditledger_app", "pgbouncer", 6432):
    err("k8s: Secret ledgerd: LEDGER_DATABASE_URL must connect as creditledger_app to pgbouncer:6432")
if url_at(sec.get("stringData", {}).get("LEDGER_READ_DATABASE_URL", "")) != ("creditledger_app", "postgres-standby", 5432):
    err("k8s: Secret ledgerd: LEDGER_READ_DATABASE_URL must connect as creditledger_app to postgres-standby:5432")
if url_at(msec.get("stringData", {}).get("LEDGER_MIGRATE_DATABASE_URL", ""))[1:] != ("postgres", 5432):
    err("k8s: Secret ledgerd-migrate: LEDGER_MIGRATE_DATABASE_URL must reach the primary directly (postgres:5432)")
if cmdata.get("LEDGER_DATABASE_POOLER") != "transaction":
    err("k8s/configmap.yaml: LEDGER_DATABASE_POOLER must be transaction (ledgerd writes through transaction pooling)")
pcert = named("Certificate", "postgres").get("spec", {})
if pcert.get("secretName") != "postgres-tls" or not {"postgres", "postgres-standby", "pgbouncer"} <= set(pcert.get("dnsNames", [])):
    err("k8s/certificate.example.yaml: Certificate postgres: secretName postgres-tls with the names postgres, postgres-standby and pgbouncer")
# NetworkPolicies: who may reach each database service, and only that.
want_from = {"postgres": ({"pgbouncer", "postgres-standby", "migrate"}, 5432),
             "postgres-standby": ({"ledgerd"}, 5432), "pgbouncer": ({"ledgerd"}, 6432)}
got_from = {}
for _, np in docs.get("NetworkPolicy", []):
    target = np["spec"].get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")
    if np["spec"].get("policyTypes") != ["Ingress"]:
        err(f"k8s: NetworkPolicy {np['metadata']['name']} must be an ingress policy")
    for rule in np["spec"].get("ingress", []):
        peers = {f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") for f in rule.get("from", [])}
        ports = {p.get("port") for p in rule.get("ports", [])}
        got_from[target] = (peers, *ports) if len(ports) == 1 else (peers, ports)
if got_from != want_from:
    err(f"k8s/networkpolicy.yaml: ingress must be exactly {want_from}, got {got_from}")
m = next((m for m in jc.get("volumeMounts", []) if m.get("mountPath") == "/etc/creditledger/postgres-ca"), None)
jv = next((v for v in jpod.get("volumes", []) if m and v["name"] == m["name"]), {})
if jv.get("secret", {}).get("secretName") != "postgres-tls" or [i.get("key") for i in jv["secret"].get("items", [])] != ["ca.crt"]:
    err("k8s: the Job must mount only ca.crt of postgres-tls on /etc/creditledger/postgres-ca")
for r in ("postgres.yaml", "postgres-standby.yaml", "pgbouncer.yaml", "networkpolicy.yaml"):
    if r not in kust.get("resources", []):
        err(f"k8s/kustomization.yaml: {r} is not a resource")

# --- Dockerfile.
df = (D / "Dockerfile").read_text()
for want in ("golang:${GO_VERSION}", "gcr.io/distroless/static-debian12:nonroot", "CGO_ENABLED=0", "-trimpath",
             "-X github.com/creditledger/creditledger/internal/version.Version=${VERSION}", "USER 65532:65532", "EXPOSE 8080 9090 9464",
             "LEDGER_METRICS_ADDR=:9464",
             'ENTRYPOINT ["/ledgerd"]', 'CMD ["serve"]', 'VOLUME ["/var/lib/creditledger"]'):
    if want not in df:
        err(f"Dockerfile: {want!r} is missing")
for pkg in re.findall(r"\./cmd/\w+", df):
    if not pathlib.Path(pkg).is_dir():
        err(f"Dockerfile: builds {pkg}, which does not exist")
if pathlib.Path(".dockerignore").exists():
    err(".dockerignore at the root: use deploy/Dockerfile.dockerignore")

for e in errors:
    print("  " + e, file=sys.stderr)
if errors:
    sys.exit(1)
print(f"  {len(alerts)} alerts, {len(ids)} dashboard panels, {len(used)} metric names, "
      f"{sum(len(v) for v in docs.values())} Kubernetes objects: ok")
PY

# The compose stack's guard against placeholder secrets: it must refuse the
# committed env files and mismatched passwords, and accept filled-in ones.
say "deploy/secrets-check.sh: refuses the placeholders, accepts real values"
secrets_check() { env -i PATH=/usr/bin:/bin "$@" sh deploy/secrets-check.sh >/dev/null 2>&1; }
mapfile -t placeholders < <(grep -hE '^[A-Z_][A-Z0-9_]*=' deploy/compose.migrate.env deploy/compose.secrets.env)
secrets_check "${placeholders[@]}" && die "deploy/secrets-check.sh accepts the CHANGE-ME placeholders"
owner=00112233445566778899aabbccddeeff app=ffeeddccbbaa99887766554433221100
repl=0f1e2d3c4b5a69788796a5b4c3d2e1f0
filled=(POSTGRES_PASSWORD=$owner
	"LEDGER_MIGRATE_DATABASE_URL=postgres://creditledger:$owner@postgres:5432/creditledger?sslmode=disable"
	LEDGER_RUNTIME_ROLE_PASSWORD=$app
	"LEDGER_DATABASE_URL=postgres://creditledger_app:$app@pgbouncer:6432/creditledger?sslmode=disable"
	"LEDGER_READ_DATABASE_URL=postgres://creditledger_app:$app@postgres-standby:5432/creditledger?sslmode=disable"
	LEDGER_PAGE_TOKEN_KEY=$owner$app
	POSTGRES_REPLICATION_PASSWORD=$repl
	PGBOUNCER_AUTH_PASSWORD=$app)
secrets_check "${filled[@]}" || die "deploy/secrets-check.sh refuses valid secrets"
secrets_check "${filled[@]}" LEDGER_RUNTIME_ROLE_PASSWORD=0123456789abcdef0123456789abcdef &&
	die "deploy/secrets-check.sh accepts a runtime role password that LEDGER_DATABASE_URL does not carry"
secrets_check "${filled[@]}" "LEDGER_DATABASE_URL=postgres://creditledger:$owner@postgres:5432/creditledger" &&
	die "deploy/secrets-check.sh accepts ledgerd connecting as the schema owner"
secrets_check "${filled[@]}" "LEDGER_READ_DATABASE_URL=postgres://creditledger:$owner@postgres-standby:5432/creditledger" &&
	die "deploy/secrets-check.sh accepts ledgerd reading as the schema owner"
secrets_check "${filled[@]}" PGBOUNCER_AUTH_PASSWORD=0123456789abcdef0123456789abcdef &&
	die "deploy/secrets-check.sh accepts a pgbouncer password that is not the runtime role's"
secrets_check "${filled[@]}" POSTGRES_REPLICATION_PASSWORD=$owner &&
	die "deploy/secrets-check.sh accepts the owner's password for replication"
secrets_check "${filled[@]}" POSTGRES_REPLICATION_PASSWORD=CHANGE-ME-REPL &&
	die "deploy/secrets-check.sh accepts the replication password placeholder"

# The database tier's scripts and configurations, for real, when this
# machine has PostgreSQL 15 and pgbouncer (Debian's packages) and may run
# them as the postgres user.
if [[ -x /usr/lib/postgresql/15/bin/initdb && -x /usr/sbin/pgbouncer ]] &&
	{ [[ $(id -u) -eq 0 ]] || [[ $(id -un) == postgres ]]; }; then
	say "scripts/check-deploy-db.sh: the standby, the primary's replication set-up and pgbouncer, run"
	scripts/check-deploy-db.sh
else
	say "PostgreSQL 15 or pgbouncer is missing, or this user cannot run them: skipping scripts/check-deploy-db.sh (the checks above still ran)"
fi

if command -v kubectl >/dev/null; then
	say "kubectl kustomize deploy/k8s"
	kubectl kustomize deploy/k8s >/dev/null
else
	say "kubectl is missing: skipping the kustomize build"
fi

if docker compose version >/dev/null 2>&1; then
	say "docker compose config"
	docker compose -f deploy/compose.yaml config -q
else
	say "the docker compose plugin is missing: skipping docker compose config (the checks above still ran)"
fi

say "ok"
