#!/usr/bin/env bash
# Runs the benchmark harness (benches/rotation.rs) on each engine and joins the parts.
#   bash scripts/bench.sh                    full run on both engines (about 15 minutes),
#                                            writes docs/BENCHMARKS.md
#   bash scripts/bench.sh --quick            a few iterations (what CI runs), writes
#                                            target/bench/BENCHMARKS.md
#   bash scripts/bench.sh --engine 20.10     the machine's engine only (26.1: the private one;
#                                            both: the default)
#   bash scripts/bench.sh --only swap,e2e    those sections only, to target/bench/BENCHMARKS.md
# Every section runs on the machine's engine; on the private Docker 26.1 the ones that depend
# on the engine's own speed run again (detect, swap, e2e, proof). Both parts have the docker
# CLI, Compose v1 (docker-compose) and Compose v2 (from Debian trixie, scripts/engine26.sh)
# as peers. Needs the machine's engine, docker-compose and curl (scripts/setup.sh installs
# them).
set -euo pipefail
cd "$(dirname "$0")/.."

engine=both quick= only=
while [ "$#" -gt 0 ]; do
  case "$1" in
    --engine) engine=${2:-}; shift 2 ;;
    --quick) quick=--quick; shift ;;
    --only) only=${2:-}; shift 2 ;;
    *) echo "bench: unknown argument '$1' (--quick, --engine 20.10|26.1|both, --only SECTIONS)" >&2; exit 64 ;;
  esac
done
case "$engine" in 20.10 | 26.1 | both) ;; *)
  echo "bench: --engine must be 20.10 (the machine's), 26.1 (the private one) or both, not '$engine'" >&2
  exit 64
  ;;
esac
command -v docker-compose >/dev/null || { echo "bench: docker-compose is missing (run scripts/setup.sh)" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench: curl is missing (run scripts/setup.sh)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "bench: no Docker engine answers (run scripts/setup.sh)" >&2; exit 1; }
# Compose v2 is a peer on both engines; Engine 26.1 comes with it.
bash scripts/engine26.sh fetch
TR_COMPOSE=$(bash scripts/engine26.sh env | sed -n 's/^TR_COMPOSE=//p')
export TR_COMPOSE
[ -x "$TR_COMPOSE" ] || { echo "bench: Compose v2 is missing ($TR_COMPOSE)" >&2; exit 1; }

mkdir -p target/bench
if [ -n "$quick" ] || [ -n "$only" ]; then out=target/bench/BENCHMARKS.md; else out=docs/BENCHMARKS.md; fi
parts=()
top=--top
run() { # PART-FILE SECTIONS
  local sections=$2
  [ -n "$only" ] && sections=$only
  cargo bench --locked --bench rotation -- $quick $top ${sections:+--only "$sections"} --out "$1"
  parts+=("$1")
  top=
}

if [ "$engine" != 26.1 ]; then
  echo "== bench: the machine's engine ($(docker version --format '{{.Server.Version}}'))" >&2
  run target/bench/part-machine.md ""
fi
if [ "$engine" != 20.10 ]; then
  name=e26-bench
  trap 'bash scripts/engine26.sh stop "$name"' EXIT
  eval "$(bash scripts/engine26.sh start "$name" | sed 's/^/export /')"
  echo "== bench: private engine $(docker version --format '{{.Server.Version}}')" >&2
  run target/bench/part-26.1.md detect,swap,e2e,proof
fi
cat "${parts[@]}" >"$out"
echo "bench: wrote $out" >&2
