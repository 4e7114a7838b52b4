#!/usr/bin/env bash
# token-rotator demo, no registry and no real API needed. It builds the token-rotator image
# and a bot image from scratch, starts a stand-in API, brings up compose.yaml (bot + sidecar),
# then updates the secret file and shows the sidecar rotate it in (validated, swapped,
# verified inside the new container), measuring the delay; last, a revoked token is refused.
# On a fresh machine this one command does all the set-up: scripts/setup.sh installs and
# starts Docker if needed, and everything the demo runs is built below from this checkout.
# It leaves two images behind (token-rotator:dev and token-rotator-demo-bot:latest) and
# says at the end how to remove them. TOKEN_ROTATOR_IMAGE names the first one differently,
# DEMO_LISTEN_PORT moves the sidecar's endpoints off 127.0.0.1:19090.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# Everything else the demo needs, checked now rather than after minutes of compiling.
fail() { echo "demo: FAILED: $*" >&2; exit 1; }
command -v cargo >/dev/null 2>&1 \
  || fail "cargo is not installed (install the Rust toolchain, https://rustup.rs)"
[ "$(uname -m)" = x86_64 ] \
  || fail "the images are built for x86_64-unknown-linux-gnu, and this machine is $(uname -m)"
command -v cc >/dev/null 2>&1 \
  || fail "no C toolchain (cc), which cargo links with: on Debian, apt-get install gcc libc6-dev"
[ "$(cc -print-file-name=libc.a)" != libc.a ] \
  || fail "no static C library (libc.a) for the static binaries: on Debian, apt-get install libc6-dev"
[ -S /var/run/docker.sock ] \
  || fail "compose.yaml mounts /var/run/docker.sock into the sidecar, and there is no socket there"
DEMO_LISTEN_PORT=${DEMO_LISTEN_PORT:-19090}
if (exec 3<>"/dev/tcp/127.0.0.1/$DEMO_LISTEN_PORT") 2>/dev/null; then
  fail "127.0.0.1:$DEMO_LISTEN_PORT is taken; the sidecar serves its endpoints there: set DEMO_LISTEN_PORT"
fi

PROJECT=token-rotator-demo
BOT=token-rotator-demo-bot
BOT_IMAGE=token-rotator-demo-bot:latest
TOKEN_ROTATOR_IMAGE=${TOKEN_ROTATOR_IMAGE:-token-rotator:dev}
BUILD_LOG=target/demo-build.log
BUILT=()
WORK=$(mktemp -d)
API_PID=""
export DOCKER_GID DEMO_API_URL DEMO_LISTEN_PORT DEMO_SECRETS BOT_IMAGE TOKEN_ROTATOR_IMAGE
DOCKER_GID=$(stat -c %g /var/run/docker.sock)
DEMO_SECRETS="$WORK/secrets"
# The demo names the bot differently from compose.yaml's bot-bottle, so it cannot collide.
# It runs the sidecar on the host network (compose.demo.yaml), where compose refuses
# published ports: compose.yaml's `ports:` entry is left out.
sed -e "s/container_name: bot-bottle/container_name: $BOT/; s/TOKEN_ROTATOR_CONTAINER: bot-bottle/TOKEN_ROTATOR_CONTAINER: $BOT/" \
  -e '/^    ports:$/,/^      - "127\.0\.0\.1:.*:9090"$/d' compose.yaml > "$WORK/compose.yaml"
if grep -q '^ *ports:' "$WORK/compose.yaml"; then
  fail "could not take compose.yaml's ports: entry out for the host network (examples/demo.sh's sed)"
fi
compose() { docker-compose -p "$PROJECT" -f "$WORK/compose.yaml" -f examples/demo/compose.demo.yaml "$@"; }
cleanup() {
  compose down --remove-orphans >/dev/null 2>&1 || true
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null || true
  rm -rf "$WORK"
  if [ "${#BUILT[@]}" -gt 0 ]; then
    echo
    echo "The demo leaves these images behind: ${BUILT[*]}"
    echo "(${BUILT[0]} is also the image compose.yaml deploys). To remove them:"
    echo "  docker rmi ${BUILT[*]}"
    echo "Its build output stays in target/ (cargo clean removes it)."
  fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
new_token() { printf 'sk-ant-oat01-%s' "$(head -c 96 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' | head -c 95)"; }
fp() { tr -d '\n' < "$1" | sha256sum | head -c 12; }
metric() { curl -fs "http://127.0.0.1:$DEMO_LISTEN_PORT/metrics" | awk -v k="token_rotator_rotations_total{outcome=\"$1\"}" '$1==k {print $2}' | grep . || echo 0; }
rotator_logs() { docker logs "$(compose ps -q token-rotator)" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | grep -E "$1" | cut -c 29- | sed 's/^/  rotator| /' || true; }
# Writes a token the way an editor or Vault Agent does: a temp file renamed over the old one.
put_secret() { cp "$1" "$DEMO_SECRETS/.tmp" && chmod 644 "$DEMO_SECRETS/.tmp" && mv "$DEMO_SECRETS/.tmp" "$DEMO_SECRETS/claude_oauth_token"; }

# Runs one build step with its output in $BUILD_LOG; on failure shows the log's tail.
quietly() {
  local what=$1 t0=$SECONDS
  shift
  printf '  %s ... ' "$what"
  if "$@" >>"$BUILD_LOG" 2>&1; then
    printf 'done (%ss)\n' $((SECONDS - t0))
  else
    echo FAILED
    echo "demo: FAILED: $what. The last lines of $BUILD_LOG:" >&2
    tail -n 30 "$BUILD_LOG" >&2
    exit 1
  fi
}

step "building the token-rotator image, the fake bot and its image, all FROM scratch"
echo "  (a few minutes on a fresh clone, seconds once built; the compiler's output goes to $BUILD_LOG)"
mkdir -p target
: > "$BUILD_LOG"
quietly "token-rotator (static release build) and the image $TOKEN_ROTATOR_IMAGE" \
  env IMAGE="$TOKEN_ROTATOR_IMAGE" bash scripts/build-image.sh
BUILT+=("$TOKEN_ROTATOR_IMAGE")
quietly "the stand-in API" cargo build --locked --quiet --example stand_in_api
quietly "the fake bot (static release build)" env RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --release --locked --quiet --manifest-path examples/fake-bot/Cargo.toml \
  --target x86_64-unknown-linux-gnu --target-dir target/fake-bot
cp target/fake-bot/x86_64-unknown-linux-gnu/release/fake-bot "$WORK/fake-bot"
quietly "the bot image $BOT_IMAGE" docker build -q -t "$BOT_IMAGE" -f examples/fake-bot/Dockerfile "$WORK"
BUILT+=("$BOT_IMAGE")

step "minting three tokens (kept in files, never on a command line)"
for t in old new revoked; do new_token > "$WORK/$t"; printf '  %-8s fingerprint %s\n' "$t" "$(fp "$WORK/$t")"; done

step "starting the stand-in API (accepts old and new, answers 403 revoked for the third)"
target/debug/examples/stand_in_api --accept "$WORK/old" --accept "$WORK/new" --revoke "$WORK/revoked" \
  --listen-file "$WORK/api-url" >/dev/null &
API_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/api-url" ] && break; sleep 0.1; done
DEMO_API_URL=$(cat "$WORK/api-url")
echo "  $DEMO_API_URL"

step "compose up: the bot starts WITHOUT a token; the sidecar reconciles it with the secret file"
mkdir -p "$DEMO_SECRETS" && chmod 755 "$WORK" "$DEMO_SECRETS"
put_secret "$WORK/old"
compose down --remove-orphans >/dev/null 2>&1 || true
docker rm -f "$BOT" >/dev/null 2>&1 || true
compose up -d 2>&1 | sed 's/^/  /'
for _ in $(seq 1 300); do [ "$(metric rotated)" = 1 ] && break; sleep 0.1; done
rotator_logs "rotation|watching"
sleep 1.2
docker logs "$BOT" 2>&1 | sed 's/^/  bot| /' | tail -2

step "writing the new token (temp file renamed over the secret) and timing the rotation"
before=$(metric rotated)
t0=$(date +%s.%N)
put_secret "$WORK/new"
until [ "$(metric rotated)" != "$before" ]; do sleep 0.02; done
t1=$(date +%s.%N)
printf '  file update -> new container verified (validated, swapped, settled 1s, exec check passed): \033[1m%.2f s\033[0m\n' "$(awk "BEGIN {print $t1 - $t0}")"
rotator_logs "$(fp "$WORK/new")" | tail -3
sleep 1.2
docker logs "$BOT" 2>&1 | sed 's/^/  bot| /' | tail -2
docker exec "$(compose ps -q token-rotator)" /token-rotator status --container "$BOT" --secret-file /secrets/claude_oauth_token | sed 's/^/  /'
echo "  docker-compose ps still sees the replacement:"
compose ps 2>/dev/null | sed 's/^/  /'

step "writing a revoked token: validation refuses it, the bot keeps running untouched"
id_before=$(docker inspect -f '{{.Id}}' "$BOT")
put_secret "$WORK/revoked"
for _ in $(seq 1 100); do [ "$(metric rejected)" != 0 ] && break; sleep 0.1; done
rotator_logs "$(fp "$WORK/revoked")" | tail -2
echo "  bot container unchanged: $([ "$id_before" = "$(docker inspect -f '{{.Id}}' "$BOT")" ] && echo yes || echo NO)"

step "metrics"
curl -fs "http://127.0.0.1:$DEMO_LISTEN_PORT/metrics" | grep -E '^token_rotator_(rotations_total|validations_total|deployed_token)' | sed 's/^/  /'

step "done: compose down, the stand-in API and the demo's files are removed on exit"
