#!/usr/bin/env bash
# Builds the image token-rotator:dev on this machine without pulling anything: a static
# binary compiled here, packaged by the Dockerfile's `prebuilt` stage (FROM scratch).
# IMAGE overrides the tag; CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-token-rotator:dev}
TARGET_DIR=${CARGO_TARGET_DIR:-target}

RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --locked --target x86_64-unknown-linux-gnu --target-dir "$TARGET_DIR"

# A context with only the binary (and the empty state directory), at the path the Dockerfile expects.
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/target/x86_64-unknown-linux-gnu/release"
cp "$TARGET_DIR/x86_64-unknown-linux-gnu/release/token-rotator" "$ctx/target/x86_64-unknown-linux-gnu/release/"
cp Dockerfile "$ctx/"
mkdir -m 0700 "$ctx/state" # /state in the image, owned by the daemon's user
docker build -q --target prebuilt -t "$IMAGE" "$ctx" >/dev/null
echo "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE") bytes)"
