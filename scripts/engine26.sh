#!/usr/bin/env bash
# A private Docker Engine 26.1 with Compose v2.26, from Debian trixie's packages, beside the
# machine's engine, which it never touches (../shared/CONTEXT.md says why each flag is here).
#
#   bash scripts/engine26.sh fetch          download and unpack once (cached, idempotent)
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
say() { printf 'engine26: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

fetch() {
  if [ -x "$BIN/usr/sbin/dockerd" ] && [ -x "$BIN/usr/libexec/docker/cli-plugins/docker-compose" ]; then
    return 0
  fi
  command -v apt-get >/dev/null || die "apt-get not found: the private engine comes from Debian's packages"
  command -v runc >/dev/null || die "runc is not installed (Debian's docker.io brings it: bash scripts/setup.sh)"
  local apt=$ROOT/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main" \
    >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null
    -o APT::Architecture=amd64 -o APT::Sandbox::User=root)
  say "fetching docker.io 26.1 and docker-compose 2.26 from Debian trixie (private apt lists in $apt)"
  apt-get "${opts[@]}" -qq update || die "apt-get update of the trixie lists failed"
  (cd "$apt/debs" && apt-get "${opts[@]}" -qq download docker.io docker-cli docker-compose containerd) \
    || die "downloading the trixie packages failed"
  rm -rf "$BIN.new" && mkdir -p "$BIN.new"
  for deb in "$apt"/debs/*.deb; do dpkg-deb -x "$deb" "$BIN.new"; done
  rm -rf "$BIN" && mv "$BIN.new" "$BIN"
  "$BIN/usr/sbin/dockerd" --version >/dev/null || die "the trixie dockerd does not run on this machine"
  say "ok: $("$BIN/usr/sbin/dockerd" --version), $("$BIN/usr/libexec/docker/cli-plugins/docker-compose" version)"
}

# The storage driver the machine's daemon.json names (the private engine reads an empty
# config, so it must be told), if any.
storage_driver() {
  if [ -f /etc/docker/daemon.json ] && command -v python3 >/dev/null; then
    python3 -c 'import json,sys; print(json.load(open("/etc/docker/daemon.json")).get("storage-driver",""))' 2>/dev/null || true
  fi
}

# A /24 in 10.231.0.0/16 that nothing on the host routes yet.
free_subnet() {
  local i
  for i in $(seq 1 250); do
    if ! ip route | grep -q "^10\.231\.$i\."; then echo "10.231.$i"; return 0; fi
  done
  die "no free /24 left in 10.231.0.0/16 for the engine's bridge"
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
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge || die "cannot create bridge $br (root needed)"
    ip addr add "$(free_subnet).1/24" dev "$br"
  fi
  ip link set "$br" up
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
  echo "TR_COMPOSE=$BIN/usr/libexec/docker/cli-plugins/docker-compose"
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
