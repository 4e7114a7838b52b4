#!/usr/bin/env bash
# The README's test command: sets up what the tests need, then runs them on two engines.
#   bash scripts/test.sh                  every test on the machine's engine, then the
#                                         engine-facing suites on a private Docker 26.1
#                                         with Compose v2
#   bash scripts/test.sh --test crash     extra arguments go to `cargo test`, in each lane
#   TR_LANE=machine|26.1|podman|both|all  which engines (default both: the two Dockers;
#                                         podman: a private rootful Podman, not yet in the
#                                         default: only its rotate suite has passed there;
#                                         all: the three)
# scripts/setup.sh makes sure the machine's engine answers (installing Debian's docker.io,
# docker-compose and curl and starting dockerd if needed, which needs root);
# scripts/engine26.sh fetches Engine 26.1 and Compose v2.26 from Debian trixie and runs
# them as a private engine beside it; scripts/podman.sh installs Debian's podman and runs
# `podman system service` on a socket, storage and configuration of its own. The tests
# build their images themselves on the engine DOCKER_HOST names, and drive token-rotator
# against it.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || {
  echo "test: FAILED: cargo is not installed (install the Rust toolchain, https://rustup.rs)" >&2
  exit 1
}

lane=${TR_LANE:-both}
case "$lane" in machine | 26.1 | podman | both | all) ;; *)
  echo "test: FAILED: TR_LANE must be machine, 26.1, podman, both or all, not '$lane'" >&2
  exit 64
  ;;
esac
on() { [ "$lane" = "$1" ] || [ "$lane" = all ] || { [ "$lane" = both ] && [ "$1" != podman ]; }; }

# The suites that talk to the engine, run again on the private 26.1 (the rest, such as
# the property tests and the layout test, do not depend on the engine).
ENGINE_SUITES=(--test rotate --test preserve --test crash --test hostile --test daemon
  --test hygiene --test engines --test start_first --test pipeline)
# The suites run again on Podman's Docker-compatible API (a test that cannot apply there,
# such as one that needs Compose, says so and is skipped).
PODMAN_SUITES=(--test rotate --test preserve --test daemon --test crash --test hostile
  --test hygiene --test start_first --test live)

# Everything a test could download is fetched here, once, before any test starts: the
# crates (the tests build the static fake-bot, the image and a fault-injection build of
# their own) and the private engine (the 26.1 lane, and the suites that start engines of
# their own, such as engine_restart and swarm, in either lane). With TR_NO_FETCH set, a
# test that would still need a download fails and says so instead.
echo "== set-up for the tests: crates and the private engine" >&2
# tests/notify.rs sends email to a real SMTP server it starts (Debian's aiosmtpd), over TLS
# with a certificate it makes with openssl.
bash scripts/install.sh python3-aiosmtpd openssl
cargo fetch --locked -q
cargo fetch --locked -q --manifest-path examples/fake-bot/Cargo.toml
bash scripts/engine26.sh fetch
if on podman; then bash scripts/podman.sh install; fi
export TR_NO_FETCH=1
# What the tests build once per process (tests/support), built here first with the very
# same commands, so that no test's timing includes a first build: the static fake-bot, the
# token-rotator:dev image (a release build) and the fault-injection build.
echo "== set-up for the tests: the test binaries and the token-rotator:dev image" >&2
RUSTFLAGS='-C target-feature=+crt-static' cargo build -q --release --locked \
  --target x86_64-unknown-linux-gnu --manifest-path examples/fake-bot/Cargo.toml --target-dir target/fake-bot
CARGO_TARGET_DIR=target/image bash scripts/build-image.sh >&2
cargo build -q --locked --features fault-injection --bin token-rotator --target-dir target/faults

if on machine; then
  echo "== test lane: the machine's engine ($(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'))" >&2
  cargo test --locked "$@"
fi

if on 26.1; then
  (
    name=e26-tests
    trap 'bash scripts/engine26.sh stop "$name"' EXIT
    eval "$(bash scripts/engine26.sh start "$name" | sed 's/^/export /')"
    echo "== test lane: private engine $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})'), $("$TR_COMPOSE" version)" >&2
    if [ "$#" -gt 0 ]; then
      cargo test --locked "$@"
    else
      cargo test --locked "${ENGINE_SUITES[@]}"
    fi
  )
fi

if on podman; then
  (
    name=podman-tests
    trap 'bash scripts/podman.sh stop "$name"' EXIT
    eval "$(bash scripts/podman.sh start "$name" | sed 's/^/export /')"
    echo "== test lane: private rootful Podman $(podman --version | awk '{print $3}') (Docker-compatible API $(docker version --format '{{.Client.APIVersion}}'))" >&2
    if [ "$#" -gt 0 ]; then
      cargo test --locked "$@"
    else
      cargo test --locked "${PODMAN_SUITES[@]}"
    fi
  )
fi
