#!/usr/bin/env bash
# A private Docker Engine 26.1 with Compose v2.26, from Debian trixie's packages, beside the
# machine's engine, which it never touches (../shared/CONTEXT.md says why each flag is here).
#
#   bash scripts/engine26.sh fetch          download and unpack once (cached, idempotent, safe to
#                                           run many times at once; TR_NO_FETCH=1 makes a
#                                           missing tree an error instead of a download)
#   bash scripts/engine26.sh start [NAME]   start engine NAME (default "e26"); prints DOCKER_HOST=...
#   bash scripts/engine26.sh stop [NAME]    stop it (SIGTERM, then SIGKILL), remove its bridge
#   bash scripts/engine26.sh kill [NAME]    SIGKILL it, the way a crash does; `start` brings it back
#   bash scripts/engine26.sh env [NAME]     prints DOCKER_HOST=... and TR_COMPOSE=... for that engine
#   bash scripts/engine26.sh purge NAME     stop it and delete its data (tests' own engines)
#
# Every engine has its own data root, exec root, pid file, socket and bridge under
# $TR_ENGINES (default /var/tmp/token-rotator-engines/NAME). Its binaries live in
# $TR_ENGINES/trixie. Needs root (a bridge, a daemon). The machine's runc and docker-init
# are used: trixie's runc needs a newer glibc than Debian 12 has.
set -euo pipefail

ROOT=${TR_ENGINES:-/var/tmp/token-rotator-engines}
BIN=$ROOT/trixie
COMPOSE=$BIN/usr/libexec/docker/cli-plugins/docker-compose
say() { printf 'engine26: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# The unpacked tree is published whole: it is built in a staging folder of this fetch's own,
# checked, marked complete, then renamed onto $BIN in one step, so a reader sees either no
# tree or a complete one. The whole fetch holds $ROOT/fetch.lock, so fetches started at
# once (tests in parallel, two CI runs) download once: the others wait, then find the tree.
# What a killed fetch leaves (a staging folder, half-downloaded packages, a tree without its
# mark from an older version of this script) is removed by the next one under the lock.
fetched() { [ -f "$BIN/.complete" ] && [ -x "$BIN/usr/sbin/dockerd" ] && [ -x "$COMPOSE" ]; }

fetch() {
  fetched && return 0
  if [ -n "${TR_NO_FETCH:-}" ]; then
    die "the private engine is not fetched in $BIN and TR_NO_FETCH is set (scripts/test.sh fetches before any test starts: run 'bash scripts/engine26.sh fetch')"
  fi
  command -v apt-get >/dev/null || die "apt-get not found: the private engine comes from Debian's packages"
  command -v dpkg-deb >/dev/null || die "dpkg-deb not found: the private engine comes from Debian's packages"
  command -v flock >/dev/null || die "flock not found (Debian's util-linux)"
  command -v runc >/dev/null || die "runc is not installed (Debian's docker.io brings it: bash scripts/setup.sh)"
  mkdir -p "$ROOT"
  local fd
  exec {fd}>>"$ROOT/fetch.lock"
  if ! flock -n "$fd"; then
    say "another fetch is under way; waiting for it ($ROOT/fetch.lock)"
    flock "$fd"
  fi
  if fetched; then exec {fd}>&-; return 0; fi
  fetch_locked
  exec {fd}>&-
}

fetch_locked() {
  local apt=$ROOT/apt stage debs deb
  # Leftovers of a fetch that was killed: nobody else holds the lock, so they are dead.
  rm -rf "$BIN".new* "$apt/debs"
  if [ -e "$BIN" ] && ! fetched; then
    say "removing an incomplete tree in $BIN (an interrupted fetch)"
    rm -rf "$BIN"
  fi
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null
    -o APT::Architecture=amd64 -o APT::Sandbox::User=root)
  say "fetching docker.io 26.1 and docker-compose 2.26 from Debian trixie (private apt lists in $apt)"
  if ! apt-get "${opts[@]}" -qq update; then
    say "apt-get update failed; retrying once with empty lists"
    rm -rf "$apt/lists" && mkdir -p "$apt/lists/partial"
    apt-get "${opts[@]}" -qq update || die "apt-get update of the trixie lists failed"
  fi
  stage=$(mktemp -d "$BIN.new.XXXXXX")
  debs=$stage.debs
  mkdir -p "$debs"
  (cd "$debs" && apt-get "${opts[@]}" -qq download docker.io docker-cli docker-compose containerd) \
    || { rm -rf "$stage" "$debs"; die "downloading the trixie packages failed"; }
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$stage" || { rm -rf "$stage" "$debs"; die "unpacking $(basename "$deb") failed"; }
  done
  rm -rf "$debs"
  "$stage/usr/sbin/dockerd" --version >/dev/null \
    || { rm -rf "$stage"; die "the trixie dockerd does not run on this machine"; }
  [ -x "$stage/usr/libexec/docker/cli-plugins/docker-compose" ] \
    || { rm -rf "$stage"; die "the trixie docker-compose package holds no cli plugin"; }
  chmod 755 "$stage"
  touch "$stage/.complete"
  mv -T "$stage" "$BIN"
  say "ok: $("$BIN/usr/sbin/dockerd" --version), $("$COMPOSE" version)"
}

# The storage driver the machine's daemon.json names (the private engine reads an empty
# config, so it must be told), if any.
storage_driver() {
  if [ -f /etc/docker/daemon.json ] && command -v python3 >/dev/null; then
    python3 -c 'import json,sys; print(json.load(open("/etc/docker/daemon.json")).get("storage-driver",""))' 2>/dev/null || true
  fi
}

# A /24 in 10.231.0.0/16 that nothing on the host routes or holds yet (a bridge that is down
# has its address but no route). The tables are read once, into variables: `ip route | grep -q`
# under pipefail reads a match as a failure whenever grep exits before ip has written
# everything (SIGPIPE), which handed two engines the same /24.
free_subnet() {
  local i used
  used="$(ip -4 route show) $(ip -4 -o addr show)"
  for i in $(seq 1 250); do
    case "$used" in
      *" 10.231.$i."* | "10.231.$i."* | *$'\n'"10.231.$i."*) ;;
      *) echo "10.231.$i"; return 0 ;;
    esac
  done
  die "no free /24 left in 10.231.0.0/16 for the engine's bridge"
}

# The bridge, its subnet picked and assigned under a lock of the host's (the routing table is
# the host's, whatever $TR_ENGINES is), so engines started at once never share a /24.
make_bridge() {
  local br=$1 fd
  exec {fd}>>/var/lock/token-rotator-bridges.lock
  flock "$fd"
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge || die "cannot create bridge $br (root needed)"
  fi
  if [ -z "$(ip -4 -o addr show dev "$br")" ]; then
    ip addr add "$(free_subnet).1/24" dev "$br" || die "cannot give bridge $br an address"
  fi
  ip link set "$br" up
  exec {fd}>&-
}

dir_of() { echo "$ROOT/${1:-e26}"; }
bridge_of() { local n=${1:-e26}; echo "trb-${n:0:11}"; }
sock_of() { echo "$(dir_of "$1")/docker.sock"; }
running() { local p; p="$(dir_of "$1")/docker.pid"; [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; }
answers() { DOCKER_HOST="unix://$(sock_of "$1")" timeout 5 docker info >/dev/null 2>&1; }

check_docker0() {
  if ip link show docker0 >/dev/null 2>&1 || [ -n "${TR_NO_DOCKER0:-}" ]; then return 0; fi
  die "the host's docker0 bridge is gone after touching engine $1: the machine engine's default network is broken"
}
had_docker0() { ip link show docker0 >/dev/null 2>&1 && echo 1 || true; }

start() {
  local name=${1:-e26} dir br sock driver had
  fetch
  dir=$(dir_of "$name"); br=$(bridge_of "$name"); sock=$(sock_of "$name")
  had=$(had_docker0)
  if running "$name" && answers "$name"; then env_of "$name"; return 0; fi
  mkdir -p "$dir/data" "$dir/exec"
  echo '{}' >"$dir/daemon.json"
  # Its own bridge, made before it starts: with --bridge=none, or an address pool and a
  # default bridge in its store, dockerd 26 deletes the host's docker0.
  make_bridge "$br"
  driver=$(storage_driver)
  rm -f "$sock"
  (
    cd "$dir"
    export PATH="$BIN/usr/bin:$BIN/usr/sbin:$PATH"
    # shellcheck disable=SC2086
    exec setsid "$BIN/usr/sbin/dockerd" --config-file "$dir/daemon.json" --data-root "$dir/data" \
      --exec-root "$dir/exec" --pidfile "$dir/docker.pid" -H "unix://$sock" \
      --iptables=false --ip6tables=false --bridge "$br" ${driver:+--storage-driver "$driver"} \
      >>"$dir/dockerd.log" 2>&1 </dev/null
  ) &
  for _ in $(seq 1 100); do
    if answers "$name"; then break; fi
    sleep 0.2
  done
  if ! answers "$name"; then
    tail -n 20 "$dir/dockerd.log" >&2 || true
    die "private engine $name does not answer on $sock 20 s after starting"
  fi
  [ -z "$had" ] || check_docker0 "$name"
  env_of "$name"
}

stop_with() {
  local sig=$1 name=${2:-e26} dir pid
  dir=$(dir_of "$name")
  [ -f "$dir/docker.pid" ] || return 0
  pid=$(cat "$dir/docker.pid")
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  if [ "$sig" = KILL ]; then
    # A crash leaves the engine's own containerd and the shims running; a real host's
    # restart would end them too, and the next start needs its state directory free.
    pkill -KILL -f "containerd --config $dir/exec/containerd/containerd.toml" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$dir/docker.pid"
}

stop() {
  local name=${1:-e26} had
  had=$(had_docker0)
  stop_with TERM "$name"
  pkill -KILL -f "containerd --config $(dir_of "$name")/exec/containerd/containerd.toml" 2>/dev/null || true
  ip link del "$(bridge_of "$name")" 2>/dev/null || true
  # A swarm's gateway bridge stays in the host's namespace after the engine stops.
  if ! DOCKER_HOST= docker network inspect docker_gwbridge >/dev/null 2>&1; then
    ip link del docker_gwbridge 2>/dev/null || true
  fi
  [ -z "$had" ] || check_docker0 "$name"
}

purge() {
  local name=${1:?purge needs a NAME} dir m
  stop "$name"
  dir=$(dir_of "$name")
  # Whatever the storage driver left mounted below it goes first, deepest first.
  for m in $(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$dir"
}

env_of() {
  local name=${1:-e26}
  echo "DOCKER_HOST=unix://$(sock_of "$name")"
  echo "TR_COMPOSE=$COMPOSE"
}

cmd=${1:-}
shift || true
case "$cmd" in
  fetch) fetch ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  kill) stop_with KILL "$@" ;;
  env) env_of "$@" ;;
  purge) purge "$@" ;;
  *) die "usage: $0 fetch | start [NAME] | stop [NAME] | kill [NAME] | env [NAME] | purge NAME" ;;
esac
