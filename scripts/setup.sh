#!/usr/bin/env bash
# Makes sure a Docker engine answers and docker-compose is installed (Debian's packages).
# Safe to run again; needs root (or sudo) only when something must be installed or started.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

say() { printf 'setup: %s\n' "$*" >&2; }

apt_install() {
  say "installing $* from Debian's packages"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

wait_for_engine() {
  for _ in $(seq 1 60); do
    if engine_answers; then return 0; fi
    sleep 1
  done
  return 1
}

command -v docker >/dev/null 2>&1 || apt_install docker.io
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
command -v curl >/dev/null 2>&1 || apt_install curl

if ! engine_answers; then
  say "no Docker engine answers; starting one"
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl start docker || true
  elif command -v service >/dev/null 2>&1; then
    $SUDO service docker start || true
  fi
  if ! wait_for_engine; then
    command -v dockerd >/dev/null 2>&1 || apt_install docker.io
    say "starting dockerd in the background (log: /tmp/dockerd.log)"
    $SUDO sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
    if ! wait_for_engine; then
      say "FAILED: the Docker engine does not answer after 60s; last lines of /tmp/dockerd.log:"
      tail -n 20 /tmp/dockerd.log >&2 || true
      exit 1
    fi
  fi
fi

say "engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), $(docker-compose version --short 2>/dev/null || echo 'compose ?')"
