#!/usr/bin/env bash
# body_memory.sh BUILD [BYTES] — a 1 GiB body (default) from the fixture server taken with
# output= and with stream = true and a slow consumer; peak RSS of each (target: ≤ 32 MB), and
# `curl -o` on the same URL for the throughput ratio. Servers started here are stopped by pid.
set -eu
build=${1:?usage: body_memory.sh BUILD [BYTES]}
bytes=${2:-1073741824}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/luafetch-bodymem.XXXXXX)
python3 "$here/../tests/fixtures/server.py" >"$tmp/server.out" 2>/dev/null &
spid=$!
trap 'kill $spid 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 200); do grep -q '^PORT ' "$tmp/server.out" && break; sleep 0.05; done
url="http://127.0.0.1:$(awk '/^PORT /{print $2}' "$tmp/server.out")/bytes/$bytes"
for mode in output stream; do
  "$build/luafetch" run "$here/body_memory.lua" "$url" "$mode" "$tmp/body.out"
done
t0=$(date +%s.%N)
curl -s -o "$tmp/curl.out" "$url"
t1=$(date +%s.%N)
echo "RESULT {\"mode\": \"curl -o\", \"bytes\": $(stat -c %s "$tmp/curl.out"), \"seconds\": $(echo "$t1 - $t0" | bc)}"
