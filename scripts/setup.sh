#!/usr/bin/env bash
# Makes sure a Docker engine answers and docker-compose, curl and haproxy are installed (Debian's
# packages docker.io, docker-compose, curl, haproxy). Called by both README commands
# (examples/demo.sh and scripts/test.sh) and by CI; you never need to run it by hand.
# Idempotent and quick (about a second) when everything is already there. Needs root (or
# sudo) only when something must be installed or started; fails loudly when it cannot.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
as_root() {
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null 2>&1; then
    die "this needs root to run '$*', and sudo is not installed: run it as root"
  fi
  $SUDO "$@"
}

# Packages go through scripts/install.sh, which serializes installers machine-wide.
apt_install() { as_root bash "$(dirname "$0")/install.sh" "$@" || die "installing $* failed"; }

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

wait_for_engine() {
  for _ in $(seq 1 "${1:-60}"); do
    if engine_answers; then return 0; fi
    sleep 1
  done
  return 1
}

# 1. The tools, installed together in one apt-get run when any is missing.
missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# haproxy: the filtering socket proxy of tests/proxy_allowlist.rs.
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
for tool in docker docker-compose curl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is still not on PATH after installing it"
done
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || die "haproxy is still not installed after installing it"

# 2. The engine: nothing to do when it answers (the usual case).
if ! engine_answers; then
  # A running engine this user may not talk to: starting another one would not help.
  sock=/var/run/docker.sock
  if [ -z "${DOCKER_HOST:-}" ] && [ -S "$sock" ] && [ ! -w "$sock" ] && [ -n "$SUDO" ] \
    && sudo -n docker info >/dev/null 2>&1; then
    die "the engine runs, but $(id -un) may not use $sock: add yourself to its group" \
      "(sudo usermod -aG $(stat -c %G "$sock") $(id -un), then log in again) or run as root"
  fi
  say "no Docker engine answers; starting one"
  started=""
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl start docker && started=1 || true
  elif command -v service >/dev/null 2>&1 && [ -e /etc/init.d/docker ]; then
    as_root service docker start && started=1 || true
  fi
  if [ -z "$started" ] || ! wait_for_engine 30; then
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed"
    say "starting dockerd in the background (log: /tmp/dockerd.log)"
    as_root sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
    if ! wait_for_engine 60; then
      say "last lines of /tmp/dockerd.log:"
      tail -n 20 /tmp/dockerd.log >&2 || true
      die "the Docker engine does not answer 60s after starting dockerd"
    fi
  fi
fi

say "ok: engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), docker-compose $(docker-compose version --short 2>/dev/null || echo '?')"
