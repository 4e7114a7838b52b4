#!/usr/bin/env bash
# Runs the benchmark harness (benches/rotation.rs) against the local engine.
#   bash scripts/bench.sh          full run (about 10 minutes), writes docs/BENCHMARKS.md
#   bash scripts/bench.sh --quick  a few iterations (what CI runs), writes target/bench/BENCHMARKS.md
# Needs the engine and docker-compose (scripts/setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v docker-compose >/dev/null || { echo "bench: docker-compose is missing (run scripts/setup.sh)" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "bench: no Docker engine answers (run scripts/setup.sh)" >&2; exit 1; }
exec cargo bench --locked --bench rotation -- "$@"
