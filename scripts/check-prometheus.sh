#!/usr/bin/env bash
# Checks the Prometheus side of token-rotator, with Prometheus's own tools (CI runs it):
#   1. promtool check rules / test rules / check config on examples/prometheus/;
#   2. starts the real daemon (target/debug/token-rotator run --listen 127.0.0.1:PORT) on a
#      throwaway secret file and a container name that does not exist (it still serves
#      /metrics), and fetches /metrics in both formats as served: the classic text format
#      (Accept: text/plain;version=0.0.4, and no Accept) linted with `promtool check
#      metrics`; OpenMetrics (Accept as Prometheus sends it) parsed by the OpenMetrics
#      reference parser (promtool cannot read it); both must carry the same series;
#   3. points a real Prometheus at it with those rules, and checks that the scrape succeeds
#      in OpenMetrics (up == 1, the build info typed info) and that every rule evaluates
#      without error against the real series.
# Installs Debian's `prometheus` package (promtool and the server) when promtool is missing,
# and `python3-prometheus-client` (the OpenMetrics parser) when /usr/bin/python3 lacks it:
# that needs root (or sudo) and apt-get. Needs a Docker engine that answers (the daemon
# checks it). Fails loudly on any error; the daemon and Prometheus are stopped on any exit.
# TOKEN_ROTATOR_BIN overrides the binary; CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'check-prometheus: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# --- promtool -----------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 \
    || die "promtool is missing and apt-get is not available: install Prometheus's promtool"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    die "promtool is missing and installing it needs root: run as root or install sudo"
  fi
  say "promtool is missing: installing Debian's prometheus package (apt-get, needs root)"
  $SUDO bash scripts/install.sh --no-install-recommends prometheus || die "installing prometheus failed"
  command -v promtool >/dev/null 2>&1 || die "promtool is still not on PATH after installing prometheus"
  # The package enables its service where systemd runs; this check starts its own server,
  # and a Prometheus left listening on :9090 would surprise the machine's owner.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ] \
    && systemctl is-active --quiet prometheus 2>/dev/null; then
    say "stopping and disabling the prometheus service the package started"
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || die "could not stop the prometheus service"
  fi
fi
command -v prometheus >/dev/null 2>&1 \
  || die "promtool is there but the prometheus server is not (Debian: apt-get install prometheus)"
# The OpenMetrics reference parser, for the OpenMetrics answer (promtool reads only the
# classic format): Debian's python3-prometheus-client, for Debian's python3.
om_parser() { /usr/bin/python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; }
if ! om_parser; then
  say "the OpenMetrics parser is missing: installing Debian's python3-prometheus-client (apt-get, needs root)"
  $SUDO bash scripts/install.sh --no-install-recommends python3-prometheus-client \
    || die "installing python3-prometheus-client failed"
  om_parser || die "/usr/bin/python3 still cannot import prometheus_client.openmetrics.parser"
fi
say "$(promtool --version 2>&1 | head -n 1)"

# --- the rule and config files ------------------------------------------------------------
echo "== promtool check rules"
promtool check rules examples/prometheus/alerts.yml
echo "== promtool test rules"
promtool test rules examples/prometheus/alerts.test.yml
echo "== promtool check config (it also checks the rule files it references)"
promtool check config examples/prometheus/prometheus.yml

# --- the daemon ---------------------------------------------------------------------------
TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=${TOKEN_ROTATOR_BIN:-$TARGET_DIR/debug/token-rotator}
if [ ! -x "$BIN" ]; then
  command -v cargo >/dev/null 2>&1 || die "$BIN is missing and cargo is not installed"
  say "building $BIN (cargo build --locked -q --bin token-rotator)"
  cargo build --locked -q --bin token-rotator || die "cargo build failed"
  [ -x "$BIN" ] || die "$BIN is still missing after cargo build"
fi
command -v curl >/dev/null 2>&1 || die "curl is not installed (scripts/setup.sh installs it)"
timeout 10 docker info >/dev/null 2>&1 \
  || die "no Docker engine answers (the daemon needs one): run scripts/setup.sh"

WORK=$(mktemp -d)
DAEMON_PID=""
PROM_PID=""
# Stops a process this script started: SIGTERM, then SIGKILL after 15 s.
stop() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  say "process $pid ignored SIGTERM for 15 s: killing it"
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  if [ -n "$PROM_PID" ]; then stop "$PROM_PID"; fi
  if [ -n "$DAEMON_PID" ]; then stop "$DAEMON_PID"; fi
  if [ "$rc" -ne 0 ]; then
    for log in daemon.log prometheus.log; do
      if [ -s "$WORK/$log" ]; then
        say "last lines of $log:"
        tail -n 20 "$WORK/$log" | sed 's/\x1b\[[0-9;]*m//g' >&2
      fi
    done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A token of the right shape that no API knows. The daemon validates only when a target
# exists, and the API it would ask is an address where nothing listens, all the same.
mkdir "$WORK/secrets"
printf 'sk-ant-oat01-%s\n' "$(head -c 60 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' | head -c 60)" \
  > "$WORK/secrets/claude_oauth_token"
CONTAINER="token-rotator-check-prometheus-$$-$RANDOM"
if docker container inspect "$CONTAINER" >/dev/null 2>&1; then
  die "a container named $CONTAINER exists: this check must not touch it"
fi

# A random free port; the daemon binds --listen first and exits 2 at once when it is taken.
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
  done
  die "found no free port"
}

echo "== starting the daemon"
for attempt in 1 2 3; do
  PORT=$(free_port)
  TOKEN_ROTATOR_LOG=info "$BIN" run --listen "127.0.0.1:$PORT" --container "$CONTAINER" \
    --secret-file "$WORK/secrets/claude_oauth_token" --api-base-url http://127.0.0.1:9 \
    >"$WORK/daemon.log" 2>&1 &
  DAEMON_PID=$!
  up=""
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/metrics" 2>/dev/null; then up=1; break; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$up" ] && break
  if kill -0 "$DAEMON_PID" 2>/dev/null; then die "the daemon runs but /metrics did not answer within 10 s"; fi
  rc=0; wait "$DAEMON_PID" || rc=$?
  DAEMON_PID=""
  [ "$rc" -eq 2 ] && [ "$attempt" -lt 3 ] && { say "port $PORT was taken; another one"; continue; }
  die "the daemon exited with status $rc before serving /metrics"
done
say "daemon $DAEMON_PID serves http://127.0.0.1:$PORT/metrics"

# /metrics answers by the Accept header: OpenMetrics to a scraper that asks for it (as
# Prometheus does), the classic Prometheus text format 0.0.4 to every other. Each is fetched
# as such a scraper would and checked exactly as served, never rewritten.
OPENMETRICS_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
# fetch NAME [ACCEPT]: GET /metrics into $WORK/NAME (headers into $WORK/NAME.headers).
fetch() {
  local accept=()
  if [ "$#" -gt 1 ]; then accept=(-H "Accept: $2"); fi
  curl -fsS "${accept[@]}" -D "$WORK/$1.headers" -o "$WORK/$1" "http://127.0.0.1:$PORT/metrics" \
    || die "GET /metrics (${2:-no Accept header}) failed"
}
# expect_type NAME CONTENT-TYPE: the answer in $WORK/NAME came with that Content-Type.
expect_type() {
  local got
  got=$(grep -i '^content-type:' "$WORK/$1.headers" | tr -d '\r' | sed 's/^[^:]*: *//')
  [ "$got" = "$2" ] || die "/metrics for $1 answered Content-Type '$got', not '$2'"
}
# lint NAME: `promtool check metrics` on $WORK/NAME as served; any finding fails.
lint() {
  local rc=0
  promtool check metrics < "$WORK/$1" > "$WORK/$1.lint" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ] || [ -s "$WORK/$1.lint" ]; then
    cat "$WORK/$1.lint" >&2
    say "the exposition promtool read ($1):"
    cat "$WORK/$1" >&2
    die "promtool check metrics found problems in $1 (exit $rc)"
  fi
  say "promtool check metrics ($1): no problems in $(grep -vc '^#' "$WORK/$1") samples"
}
# has NAME REGEX...: every REGEX matches a line of $WORK/NAME.
has() {
  local name=$1 want; shift
  for want in "$@"; do
    grep -Eq "$want" "$WORK/$name" || die "/metrics ($name) has no line matching $want"
  done
}

echo "== promtool check metrics: the classic text format (Accept: text/plain;version=0.0.4)"
fetch metrics.prom 'text/plain;version=0.0.4'
expect_type metrics.prom 'text/plain; version=0.0.4; charset=utf-8'
# What the check relies on, from the metrics that every version has.
has metrics.prom '^# TYPE token_rotator_rotations_total counter$' '^token_rotator_rotations_total\{outcome="' \
  '^token_rotator_rotation_duration_seconds_bucket\{le="\+Inf"\} ' '^token_rotator_last_success_timestamp_seconds ' \
  '^# TYPE token_rotator_build_info gauge$' '^token_rotator_build_info\{version="[^"]+"\} 1$'
if grep -Eq '^# (EOF|UNIT)' "$WORK/metrics.prom"; then die "the classic text format has OpenMetrics-only lines (# EOF, # UNIT)"; fi
lint metrics.prom

echo "== promtool check metrics: a scraper that sends no Accept header gets the classic format too"
fetch metrics.plain
expect_type metrics.plain 'text/plain; version=0.0.4; charset=utf-8'
lint metrics.plain

echo "== OpenMetrics (Accept as Prometheus sends it)"
fetch metrics.om "$OPENMETRICS_ACCEPT"
expect_type metrics.om 'application/openmetrics-text; version=1.0.0; charset=utf-8'
has metrics.om '^# TYPE token_rotator_rotations counter$' '^token_rotator_rotations_total\{outcome="' \
  '^# TYPE token_rotator_build info$' '^token_rotator_build_info\{version="[^"]+"\} 1$'
[ "$(tail -n 1 "$WORK/metrics.om")" = "# EOF" ] || die "/metrics (OpenMetrics) does not end with '# EOF' (truncated?)"
# `promtool check metrics` reads only the classic format (prometheus/prometheus#8932): it
# stops at OpenMetrics's `info` type. The OpenMetrics answer is parsed, as served, by the
# OpenMetrics reference parser (the Python client's, Debian's python3-prometheus-client),
# and below by a real Prometheus, whose scrape asks for OpenMetrics first.
/usr/bin/python3 - "$WORK/metrics.om" <<'PY' || die "the OpenMetrics parser rejected /metrics (OpenMetrics)"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
families = list(text_string_to_metric_families(open(sys.argv[1], encoding="utf-8").read()))
samples = sum(len(f.samples) for f in families)
print(f"check-prometheus: OpenMetrics parser: {len(families)} families, {samples} samples, no problems", file=sys.stderr)
PY
# The same series in both formats; the `le` bounds compared as numbers (60.0 and 60).
series() {
  awk '!/^#/ { sub(/ [^ ]+$/, "")
    if (match($0, /le="[^"]+"/)) {
      v = substr($0, RSTART + 4, RLENGTH - 5); if (v != "+Inf") v = v + 0
      $0 = substr($0, 1, RSTART - 1) "le=\"" v "\"" substr($0, RSTART + RLENGTH)
    }
    print }' "$WORK/$1" | sort
}
if ! diff <(series metrics.om) <(series metrics.prom) > "$WORK/series.diff"; then
  cat "$WORK/series.diff" >&2
  die "the two formats do not carry the same series"
fi
say "both formats carry the same $(series metrics.prom | wc -l) series"

# A rule on a metric the daemon does not export never fires (or, under absent(), always
# does). Reported, not failed: a metric can be newer than the binary checked here.
grep -v '^ *#' examples/prometheus/alerts.yml | grep -o 'token_rotator_[a-z_]*' | sort -u > "$WORK/used"
grep -v '^#' "$WORK/metrics.prom" | sed 's/[{ ].*//' | sort -u > "$WORK/exported"
comm -23 "$WORK/used" "$WORK/exported" | while read -r name; do
  say "WARNING: alerts.yml uses $name, which this daemon's /metrics does not export"
done

# --- a real Prometheus, scraping the daemon and evaluating the rules -----------------------
echo "== a real Prometheus scrapes the daemon and evaluates alerts.yml"
PROM_PORT=$(free_port)
# The example config, pointed at the daemon on loopback, every second, with the rule file's
# absolute path. Each substitution is checked: a config that no longer matches fails here.
sed -e "s|token-rotator:9090|127.0.0.1:$PORT|" \
  -e 's|^\(  *scrape_interval:\) .*|\1 1s|' -e 's|^\(  *evaluation_interval:\) .*|\1 1s|' \
  -e "s|^  - alerts.yml\$|  - $PWD/examples/prometheus/alerts.yml|" \
  examples/prometheus/prometheus.yml > "$WORK/prometheus.yml"
for want in "127.0.0.1:$PORT" 'scrape_interval: 1s' 'evaluation_interval: 1s' "$PWD/examples/prometheus/alerts.yml"; do
  grep -qF "$want" "$WORK/prometheus.yml" || die "could not adapt prometheus.yml for the check ($want)"
done
promtool check config "$WORK/prometheus.yml" >/dev/null
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PROM_PID=$!
PROM="http://127.0.0.1:$PROM_PORT"
ok=""
for _ in $(seq 1 300); do
  if curl -fsS -o /dev/null "$PROM/-/ready" 2>/dev/null; then ok=1; break; fi
  kill -0 "$PROM_PID" 2>/dev/null || die "prometheus exited at start"
  sleep 0.1
done
[ -n "$ok" ] || die "prometheus was not ready within 30 s"

# up == 1 means Prometheus fetched and parsed the exposition (a parse error
# makes the scrape fail, up == 0, with the reason on its targets page).
ok=""
for _ in $(seq 1 60); do
  promtool query instant "$PROM" 'up{job="token-rotator"}' > "$WORK/up" 2>&1 || true
  if grep -q '=> 1 @' "$WORK/up"; then ok=1; break; fi
  sleep 0.5
done
if [ -z "$ok" ]; then
  cat "$WORK/up" >&2
  curl -fsS "$PROM/api/v1/targets" >&2 || true
  die "Prometheus could not scrape the daemon (up is not 1 after 30 s)"
fi
# And it read OpenMetrics (it asks for it first): only there is the build info a family
# token_rotator_build of type info (the classic format has a gauge token_rotator_build_info).
curl -fsS -o "$WORK/build.meta" "$PROM/api/v1/targets/metadata?metric=token_rotator_build" \
  || die "GET $PROM/api/v1/targets/metadata failed"
grep -q '"type":"info"' "$WORK/build.meta" \
  || die "Prometheus did not scrape OpenMetrics: its metadata of token_rotator_build is $(cat "$WORK/build.meta")"
say "Prometheus scrapes the daemon in OpenMetrics: up == 1, token_rotator_build of type info"

# Every rule evaluated at least three times, without a failure. Evaluation errors that
# `promtool check rules` cannot see (a many-to-many match, say) show up here.
metric_sum() { awk -v m="$1" 'index($0, m "{") == 1 || $1 == m { s += $NF } END { printf "%d\n", s }' "$WORK/prom.metrics"; }
ok=""
for _ in $(seq 1 60); do
  curl -fsS -o "$WORK/prom.metrics" "$PROM/metrics" || die "GET $PROM/metrics failed"
  if [ "$(metric_sum prometheus_rule_group_iterations_total)" -ge 3 ]; then ok=1; break; fi
  sleep 0.5
done
[ -n "$ok" ] || die "Prometheus did not evaluate the rules 3 times within 30 s"
rules=$(metric_sum prometheus_rule_group_rules)
failures=$(metric_sum prometheus_rule_evaluation_failures_total)
[ "$rules" -ge 1 ] || die "Prometheus loaded no rules from alerts.yml"
if [ "$failures" -ne 0 ]; then
  grep -i 'rule' "$WORK/prometheus.log" | tail -n 20 >&2 || true
  die "$failures rule evaluations failed"
fi
say "Prometheus evaluated $rules rules, $(metric_sum prometheus_rule_evaluations_total) evaluations, 0 failures"
stop "$PROM_PID"
PROM_PID=""

# --- the daemon stops cleanly on SIGTERM ----------------------------------------------------
kill -TERM "$DAEMON_PID"
rc=0
for _ in $(seq 1 150); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$DAEMON_PID" 2>/dev/null && die "the daemon did not exit within 15 s of SIGTERM"
wait "$DAEMON_PID" || rc=$?
DAEMON_PID=""
[ "$rc" -eq 0 ] || die "the daemon exited with status $rc after SIGTERM (expected 0)"
echo "check-prometheus: ok"
