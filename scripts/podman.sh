#!/usr/bin/env bash
# A private rootful Podman (Debian 12's podman 4.3) serving its Docker-compatible API on a
# socket of its own, beside the machine's Docker engine, which it never touches
# (../shared/CONTEXT.md, "Podman on this machine", says why each setting is here).
#
#   bash scripts/podman.sh install          install Debian's podman and what it needs
#                                           (scripts/install.sh; never podman-docker, which
#                                           replaces the docker command)
#   bash scripts/podman.sh start [NAME]     start `podman system service` NAME (default "pm");
#                                           prints DOCKER_HOST=..., CONTAINERS_CONF=... and
#                                           CONTAINERS_STORAGE_CONF=... (the last two for any
#                                           `podman` command run against the same storage)
#   bash scripts/podman.sh stop [NAME]      stop the service and every container it runs,
#                                           then delete its storage and configuration
#   bash scripts/podman.sh env [NAME]       prints those variables for NAME
#
# Everything lives under $TR_ENGINES/podman-NAME (default /var/tmp/token-rotator-engines):
# the two configuration files (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF), the storage
# (graphroot, runroot; the vfs driver), podman's tmp dir (events log, locks), its CNI
# network configs, and the socket. Images are built there with `docker build` against the
# socket (the docker CLI's classic builder talks to Podman's compat /build) or moved in with
# `docker save IMAGE | podman load` (they are then named `localhost/NAME:TAG`; `NAME:TAG`
# still resolves). Needs root.
set -euo pipefail

ROOT=${TR_ENGINES:-/var/tmp/token-rotator-engines}
PACKAGES=(podman uidmap crun conmon containernetworking-plugins slirp4netns fuse-overlayfs
  golang-github-containers-common)
say() { printf 'podman: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

dir_of() { echo "$ROOT/podman-${1:-pm}"; }
sock_of() { echo "$(dir_of "$1")/podman.sock"; }
pid_of() { echo "$(dir_of "$1")/service.pid"; }
running() { local p; p=$(pid_of "$1"); [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; }
answers() {
  curl -fsS --max-time 5 --unix-socket "$(sock_of "$1")" http://d/_ping >/dev/null 2>&1
}

install() {
  bash "$(dirname "$0")/install.sh" --no-install-recommends "${PACKAGES[@]}"
  command -v podman >/dev/null || die "podman is not on PATH after installing it"
  command -v runc >/dev/null || die "runc is not installed (Debian's docker.io brings it: bash scripts/setup.sh)"
}

# The private configuration. runc, not crun: crun refuses this machine's hybrid cgroups.
# cgroupfs: no systemd here. The file events logger: no journald. Limits within the
# machine's hard limits: podman's defaults for a rootful container (nofile 1048576, nproc
# 4194304) are above them here, and then every container fails to start (`setrlimit`).
write_config() {
  local dir=$1
  mkdir -p "$dir/storage" "$dir/run" "$dir/tmp" "$dir/networks"
  cat >"$dir/containers.conf" <<EOF
[containers]
default_ulimits = [$(ulimits)]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/tmp/events.log"
tmp_dir = "$dir/tmp"
static_dir = "$dir/storage/libpod"
volume_path = "$dir/storage/volumes"

[engine.runtimes]
runc = ["$(command -v runc)"]

[network]
network_config_dir = "$dir/networks"
EOF
  cat >"$dir/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$dir/storage"
runroot = "$dir/run"
EOF
}

# The limits every container gets, and that the service itself runs with: 20000 open files
# and 20000 processes (each lower if the machine's hard limit is). A container's limits must
# be within the service's own (root here lacks CAP_SYS_RESOURCE), and podman lowers its own
# nproc at start (to 32768 on this machine), so the service is started with exactly these.
limit() {
  local hard
  hard=$(ulimit "-H$1")
  if [ "$hard" = unlimited ] || [ "$hard" -gt 20000 ]; then echo 20000; else echo "$hard"; fi
}
ulimits() { printf '"nofile=%s:%s", "nproc=%s:%s"' "$(limit n)" "$(limit n)" "$(limit u)" "$(limit u)"; }

# Fails unless the service runs with the limits its containers get.
check_limits() {
  local pid=$1 want got
  for what in "open files:n" "processes:u"; do
    want=$(limit "${what#*:}")
    got=$(awk -v k="Max ${what%:*}" 'index($0, k) == 1 {print $(NF-1)}' "/proc/$pid/limits")
    [ "$got" = "$want" ] || die "the podman service runs with a hard limit of $got ${what%:*}, below the $want its containers get (they would not start)"
  done
}

env_of() {
  local dir
  dir=$(dir_of "${1:-pm}")
  echo "DOCKER_HOST=unix://$(sock_of "${1:-pm}")"
  echo "CONTAINERS_CONF=$dir/containers.conf"
  echo "CONTAINERS_STORAGE_CONF=$dir/storage.conf"
}

start() {
  local name=${1:-pm} dir sock
  install
  dir=$(dir_of "$name"); sock=$(sock_of "$name")
  if running "$name" && answers "$name"; then env_of "$name"; return 0; fi
  write_config "$dir"
  rm -f "$sock"
  (
    cd "$dir"
    export CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf"
    setsid prlimit --nofile="$(limit n):$(limit n)" --nproc="$(limit u):$(limit u)" \
      podman system service --time=0 "unix://$sock" >>"$dir/service.log" 2>&1 </dev/null &
    echo $! >"$dir/service.pid"
  )
  for _ in $(seq 1 100); do
    if answers "$name"; then break; fi
    sleep 0.2
  done
  if ! answers "$name"; then
    tail -n 20 "$dir/service.log" >&2 || true
    die "podman service $name does not answer on $sock 20 s after starting"
  fi
  check_limits "$(cat "$(pid_of "$name")")"
  env_of "$name"
}

# Runs `podman ARGS` on NAME's storage.
pm() {
  local dir=$1
  shift
  CONTAINERS_CONF="$dir/containers.conf" CONTAINERS_STORAGE_CONF="$dir/storage.conf" podman "$@"
}

# The networks NAME's containers used: each as `NETWORK BRIDGE`, the default one included.
networks_of() {
  local dir=$1 f
  echo "podman cni-podman0"
  for f in "$dir"/networks/*.conflist; do
    [ -f "$f" ] || continue
    python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["name"], next((p["bridge"] for p in c["plugins"] if "bridge" in p), "-"))' "$f" 2>/dev/null || true
  done
}

# What CNI keeps on the host for those networks, once nothing uses it: the bridge (no port
# left on it) and host-local's address records (none left but its lock and counter). The
# default network's are shared with any other podman on the host, hence the checks.
clean_networks() {
  local net br rest
  while read -r net br; do
    if [ "$br" != - ] && ip link show "$br" >/dev/null 2>&1 \
      && [ -z "$(ip -o link show master "$br" 2>/dev/null)" ]; then
      ip link del "$br" 2>/dev/null || true
    fi
    rest=$(find "/var/lib/cni/networks/$net" -mindepth 1 -maxdepth 1 ! -name lock ! -name 'last_reserved_ip*' 2>/dev/null || true)
    [ -n "$rest" ] || rm -rf "/var/lib/cni/networks/$net"
  done
}

stop() {
  local name=${1:-pm} dir pid m nets
  dir=$(dir_of "$name")
  [ -d "$dir" ] || return 0
  nets=$(networks_of "$dir")
  if [ -f "$dir/containers.conf" ] && command -v podman >/dev/null; then
    pm "$dir" rm -af -t 0 >/dev/null 2>&1 || true
    pm "$dir" pod rm -af >/dev/null 2>&1 || true
    pm "$dir" network prune -f >/dev/null 2>&1 || true
  fi
  if [ -f "$(pid_of "$name")" ]; then
    pid=$(cat "$(pid_of "$name")")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # Whatever podman left mounted below it (container shm, netns) goes first, deepest first.
  for m in $(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$dir"
  clean_networks <<<"$nets"
}

cmd=${1:-}
shift || true
case "$cmd" in
  install) install ;;
  start) start "$@" ;;
  stop) stop "$@" ;;
  env) env_of "$@" ;;
  *) die "usage: $0 install | start [NAME] | stop [NAME] | env [NAME]" ;;
esac
