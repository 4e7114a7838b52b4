#!/usr/bin/env bash
# Follows the README's quick start as a new user would, on a clean clone of this checkout:
# the Quick start holds exactly two commands (the demo and the test command), CI runs that
# very test command, the demo runs to its end from the clone, and the clone leaves no
# secret behind for git to pick up.
#   bash scripts/check-readme.sh
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "check-readme: FAILED: $*" >&2; exit 1; }

# The commands of the Quick start section: the lines inside its ```sh blocks.
quick=$(awk '/^## Quick start/{on=1; next} /^## /{on=0} on' README.md)
commands=$(printf '%s\n' "$quick" | awk '/^```sh/{inblock=1; next} /^```/{inblock=0} inblock && NF')
count=$(printf '%s\n' "$commands" | grep -c . || true)
[ "$count" = 2 ] || fail "the Quick start should hold two commands, it holds $count: $commands"
demo=$(printf '%s\n' "$commands" | sed -n 1p)
tests=$(printf '%s\n' "$commands" | sed -n 2p)
[ "$demo" = "bash examples/demo.sh" ] || fail "first command is '$demo', expected the demo"
[ "$tests" = "bash scripts/test.sh" ] || fail "second command is '$tests', expected the test command"
grep -qxF "$tests" .ci/run || fail ".ci/run does not run the README's test command '$tests'"
echo "check-readme: the Quick start is two commands; CI runs '$tests'"

# The demo, from a clean clone (a different image name, so the tests' image is left alone).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q . "$work/clone"
# The compiled dependencies of this checkout's builds (the image's static release build and
# the fake bot's, as scripts/test.sh left them), so that the clone compiles only its own
# crate: the README's commands are what is checked here, not the compiler's speed. Cargo
# rebuilds whatever differs; an empty checkout seeds nothing and the demo builds it all.
mkdir -p "$work/clone/target"
if [ -d target/image/x86_64-unknown-linux-gnu ]; then
  cp -a target/image/x86_64-unknown-linux-gnu "$work/clone/target/"
fi
if [ -d target/fake-bot ]; then cp -a target/fake-bot "$work/clone/target/"; fi
cd "$work/clone"
echo "check-readme: running '$demo' in a clean clone"
TOKEN_ROTATOR_IMAGE=token-rotator:readme-check bash -c "$demo" > "$work/demo.log" 2>&1 \
  || { tail -40 "$work/demo.log" >&2; fail "'$demo' failed in a clean clone"; }
tail -5 "$work/demo.log"
# Quiet builds with a progress line each (no cargo chatter), and the closing word on what
# it leaves behind.
grep -qE '^  .+ \.\.\. done \([0-9]+s\)$' "$work/demo.log" \
  || fail "the demo printed no progress line for its builds"
! grep -q '^ *Compiling ' "$work/demo.log" || fail "the demo let cargo's Compiling lines through"
grep -q 'The demo leaves these images behind' "$work/demo.log" \
  || fail "the demo does not say which images it leaves and how to remove them"
docker rmi token-rotator:readme-check >/dev/null 2>&1 || true

# What the deploy steps create (a secrets/ directory with a live token) is ignored by git.
mkdir -p secrets && echo "not-a-token" > secrets/claude_oauth_token
[ -z "$(git status --porcelain -- secrets)" ] || fail "secrets/ is not ignored by git"
echo "check-readme: ok"
