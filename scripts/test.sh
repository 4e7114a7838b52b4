#!/usr/bin/env bash
# The README's test command: sets up what the tests need, then runs them all.
#   bash scripts/test.sh               every test (about 6 minutes, the image build included)
#   bash scripts/test.sh --test crash  extra arguments go to `cargo test`
# scripts/setup.sh makes sure a Docker engine answers (installing Debian's docker.io,
# docker-compose and curl and starting dockerd if needed, which needs root). The tests build
# token-rotator:dev themselves (scripts/build-image.sh) and drive it against the real engine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
command -v cargo >/dev/null 2>&1 || {
  echo "test: FAILED: cargo is not installed (install the Rust toolchain, https://rustup.rs)" >&2
  exit 1
}
exec cargo test --locked "$@"
