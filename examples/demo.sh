#!/usr/bin/env bash
# token-rotator demo: no registry, no real API. It builds a bot image from scratch, starts
# a stand-in API, runs the bot with one token, rotates a new one in (validated, swapped,
# verified inside the new container), then shows a revoked token being refused.
set -euo pipefail
cd "$(dirname "$0")/.."

BOT=token-rotator-demo-bot
IMAGE=token-rotator-demo-bot:latest
WORK=$(mktemp -d)
API_PID=""
cleanup() {
  docker rm -f "$BOT" >/dev/null 2>&1 || true
  [ -n "$API_PID" ] && kill "$API_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
new_token() { printf 'sk-ant-oat01-%s' "$(head -c 96 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=' | head -c 95)"; }

step "building token-rotator, the fake bot (static) and its image FROM scratch"
cargo build --release --locked --quiet
cargo build --locked --quiet --example stand_in_api
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet \
  --manifest-path examples/fake-bot/Cargo.toml --target x86_64-unknown-linux-gnu --target-dir target/fake-bot
cp target/fake-bot/x86_64-unknown-linux-gnu/release/fake-bot "$WORK/fake-bot"
docker build -q -t "$IMAGE" -f examples/fake-bot/Dockerfile "$WORK" >/dev/null
ROTATOR=target/release/token-rotator

step "minting three tokens (kept in files, never on a command line)"
mkdir -p "$WORK/secrets"
new_token > "$WORK/old"; new_token > "$WORK/new"; new_token > "$WORK/revoked"
for t in old new revoked; do
  printf '  %-8s fingerprint %s\n' "$t" "$(tr -d '\n' < "$WORK/$t" | sha256sum | head -c 12)"
done

step "starting the stand-in API (accepts old and new, answers 403 revoked for the third)"
target/debug/examples/stand_in_api --accept "$WORK/old" --accept "$WORK/new" --revoke "$WORK/revoked" \
  --listen-file "$WORK/api-url" >/dev/null &
API_PID=$!
for _ in $(seq 1 50); do [ -s "$WORK/api-url" ] && break; sleep 0.1; done
API=$(cat "$WORK/api-url")
echo "  $API"

step "starting the bot with the old token"
docker rm -f "$BOT" >/dev/null 2>&1 || true
printf 'BOT_BOTTLE_CLAUDE_OAUTH_TOKEN=%s\nANTHROPIC_BASE_URL=%s\nFAKE_BOT_INTERVAL=1\n' "$(cat "$WORK/old")" "$API" > "$WORK/bot.env"
docker run -d --name "$BOT" --network host --env-file "$WORK/bot.env" --restart unless-stopped \
  --label com.example.role=bot "$IMAGE" >/dev/null
rm "$WORK/bot.env"
sleep 1.5
docker logs "$BOT" 2>&1 | sed 's/^/  bot| /' | head -3
echo "  container id: $(docker inspect -f '{{.Id}}' "$BOT" | head -c 12)"

step "writing the new token to the secret file and rotating"
cp "$WORK/new" "$WORK/secrets/claude_oauth_token"
"$ROTATOR" rotate --secret-file "$WORK/secrets/claude_oauth_token" --api-base-url "$API" \
  --container "$BOT" --verify-exec "/fake-bot check"
echo "  container id: $(docker inspect -f '{{.Id}}' "$BOT" | head -c 12), label token-rotator.fingerprint=$(docker inspect -f '{{index .Config.Labels "token-rotator.fingerprint"}}' "$BOT")"
sleep 1.5
docker logs "$BOT" 2>&1 | sed 's/^/  bot| /' | tail -2

step "rotating again with the same file: nothing to do"
"$ROTATOR" rotate --secret-file "$WORK/secrets/claude_oauth_token" --api-base-url "$API" --container "$BOT"

step "writing a revoked token: validation refuses it, the bot keeps running untouched"
cp "$WORK/revoked" "$WORK/secrets/claude_oauth_token"
set +e
"$ROTATOR" rotate --secret-file "$WORK/secrets/claude_oauth_token" --api-base-url "$API" --container "$BOT"
code=$?
set -e
echo "  exit code $code; container id still $(docker inspect -f '{{.Id}}' "$BOT" | head -c 12), running=$(docker inspect -f '{{.State.Running}}' "$BOT")"

step "done: the demo's containers and files are removed on exit"
