#!/usr/bin/env bash
# Proves that the private engine's fetch is safe from nothing and at once (CI runs it):
# with TR_ENGINES pointing at a new empty folder, several `engine26.sh start` run at the
# same time, each of which must fetch (one downloads, the others wait for its tree), start
# its own engine and answer. The engines are purged and the folder removed on any exit.
#   bash scripts/check-fetch.sh [N]      N engines at once (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf 'check-fetch: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

n=${1:-3}
root=$(mktemp -d /var/tmp/tr-fetch-check.XXXXXX)
export TR_ENGINES=$root
unset TR_NO_FETCH
names=()
for i in $(seq 1 "$n"); do names+=("cf$$-$i"); done
cleanup() {
  for name in "${names[@]}"; do bash scripts/engine26.sh purge "$name" >/dev/null 2>&1 || true; done
  rm -rf "$root"
}
trap cleanup EXIT

say "starting $n engines at once from an empty $root"
t0=$(date +%s)
pids=()
for name in "${names[@]}"; do
  bash scripts/engine26.sh start "$name" >"$root/$name.env" 2>"$root/$name.log" &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    say "engine ${names[$i]} failed to start:"; sed 's/^/  /' "$root/${names[$i]}.log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || die "not every start succeeded"

downloads=$(cat "$root"/*.log | grep -c 'fetching docker.io' || true)
[ "$downloads" = 1 ] || die "expected exactly one download among $n starts, saw $downloads"
for name in "${names[@]}"; do
  host=$(sed -n 's/^DOCKER_HOST=//p' "$root/$name.env")
  [ -n "$host" ] || die "engine $name printed no DOCKER_HOST"
  v=$(DOCKER_HOST=$host docker version --format '{{.Server.Version}}') || die "engine $name does not answer on $host"
  case "$v" in 26.*) ;; *) die "engine $name is $v, not 26.x" ;; esac
done
subnets=$(for name in "${names[@]}"; do
  ip -4 -o addr show dev "trb-${name:0:11}" | awk '{print $4}'
done | sort | uniq -d)
[ -z "$subnets" ] || die "two engines' bridges share a subnet: $subnets"
say "ok: $n engines fetched once and started at once in $(( $(date +%s) - t0 )) s"
