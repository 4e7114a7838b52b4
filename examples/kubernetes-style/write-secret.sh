#!/usr/bin/env bash
# Writes the token on stdin into DIR the way the kubelet updates a secret volume:
# a new ..<timestamp> directory, a new ..data symlink renamed over the old one, then the
# old directory removed. Usage: write-secret.sh DIR < token.txt
set -euo pipefail
dir=${1:?usage: write-secret.sh DIR < token.txt}
mkdir -p "$dir" && chmod 755 "$dir"
ts="..$(date -u +%Y_%m_%d_%H_%M_%S.%N)"
old=$(readlink "$dir/..data" 2>/dev/null || true)
mkdir "$dir/$ts" && chmod 755 "$dir/$ts"
(umask 022; cat > "$dir/$ts/claude_oauth_token")
ln -s "$ts" "$dir/..data_tmp"
mv -T "$dir/..data_tmp" "$dir/..data"
[ -L "$dir/claude_oauth_token" ] || ln -s ..data/claude_oauth_token "$dir/claude_oauth_token"
[ -n "$old" ] && rm -rf "${dir:?}/$old"
echo "wrote $dir/claude_oauth_token via $ts"
