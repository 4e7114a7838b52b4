#!/usr/bin/env bash
# The chaos soak (issue 23): the real `token-rotator run` manages 5 bots selected by --label
# on a private Docker Engine 26.1 of its own, driven by secret-file updates with seeded
# random faults (SIGKILL of the rotator, an engine restart, the API failing or hanging, the
# webhook receiver down, garbage in the secret file, a bot run again by hand mid-rotation).
# After each round it waits for convergence and checks the invariants; see tests/soak/.
#
#   bash scripts/soak.sh --short                 CI (.ci/run): 12 updates, 6 faults (each kind once)
#   bash scripts/soak.sh --long                  300 updates, 100 faults
#   bash scripts/soak.sh --updates N --faults M  any size (M <= N: at most one fault a round)
#   SOAK_SEED=S bash scripts/soak.sh ...         replay: the seed of a run is printed at its
#                                                start and kept in its figures
#
# Figures: target/soak/figures.json and target/soak/SOAK.md; every daemon log of the run in
# target/soak/daemon.log. A broken invariant fails the run (exit 101) with what was seen.
# It runs the debug build: the same artefacts scripts/test.sh has just built, so the short
# mode costs no extra compilation in CI (a release build of the crate and its dependencies
# takes minutes on a 2-core machine), and overflow checks and debug assertions stay on. The
# daemon's timing is the engine's, not its own code's.
set -euo pipefail
cd "$(dirname "$0")/.."

updates=12
faults=6
while [ "$#" -gt 0 ]; do
  case "$1" in
    --short) updates=12 faults=6 ;;
    --long) updates=300 faults=100 ;;
    --updates) updates=${2:-}; shift ;;
    --faults) faults=${2:-}; shift ;;
    *)
      echo "soak: FAILED: unknown argument '$1' (--short, --long, --updates N --faults M)" >&2
      exit 64
      ;;
  esac
  shift
done
for v in "$updates" "$faults"; do
  [[ "$v" =~ ^[0-9]+$ ]] || { echo "soak: FAILED: --updates and --faults take a number, not '$v'" >&2; exit 64; }
done
[ "$faults" -le "$updates" ] || { echo "soak: FAILED: --faults ($faults) must not exceed --updates ($updates)" >&2; exit 64; }

bash scripts/setup.sh
bash scripts/engine26.sh fetch
echo "== soak: $updates updates, $faults faults${SOAK_SEED:+, seed $SOAK_SEED}" >&2
SOAK_UPDATES=$updates SOAK_FAULTS=$faults exec cargo test --locked --test soak -- --ignored --nocapture
