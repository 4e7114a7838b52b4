#!/usr/bin/env bash
# Installs Debian packages that are missing, one installer at a time on this machine:
#   bash scripts/install.sh [--no-install-recommends] PKG...
# Every script of the project that installs a package goes through here (setup.sh,
# check-prometheus.sh, ...), so two of them started at once never meet apt's or dpkg's lock:
# a machine-wide lock (/var/lock/token-rotator-apt.lock) is held for the whole check and
# install, and apt waits for dpkg's own lock (held by anything else) instead of failing.
# Packages already installed cost nothing (no apt-get update). Needs root (or sudo) only
# when something is missing; fails loudly, naming the package, when it cannot install it.
set -euo pipefail

say() { printf 'install: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

opts=()
if [ "${1:-}" = --no-install-recommends ]; then opts+=(--no-install-recommends); shift; fi
[ "$#" -gt 0 ] || die "usage: $0 [--no-install-recommends] PKG..."

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]; }
missing() { local p; for p in "$@"; do installed "$p" || echo "$p"; done; }

[ -n "$(missing "$@")" ] || exit 0
command -v apt-get >/dev/null 2>&1 \
  || die "$(missing "$@" | tr '\n' ' ')missing and apt-get not found: install them with your system's package manager"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "installing $* needs root, and sudo is not installed: run as root"
  SUDO=sudo
fi

LOCK=/var/lock/token-rotator-apt.lock
[ -w "$(dirname "$LOCK")" ] || LOCK=/tmp/token-rotator-apt.lock
exec {fd}>>"$LOCK"
flock "$fd"
# Another installer may have installed them while this one waited.
mapfile -t todo < <(missing "$@")
[ "${#todo[@]}" -gt 0 ] || exit 0

wait_dpkg=(-o DPkg::Lock::Timeout=600)
say "installing ${todo[*]} from Debian's packages (apt-get)"
$SUDO apt-get "${wait_dpkg[@]}" update -qq || die "apt-get update failed (needed for ${todo[*]})"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get "${wait_dpkg[@]}" install -y -qq "${opts[@]}" "${todo[@]}" \
  >/dev/null || die "apt-get install ${todo[*]} failed"
left=$(missing "${todo[@]}" | tr '\n' ' ')
[ -z "$left" ] || die "still not installed after apt-get install: $left"
