#!/usr/bin/env bash
# demo.sh BIN — `make demo`: starts the local fixture server on a port the OS assigns, runs the
# example workflow against a mix of healthy, slow, failing and broken endpoints, stops the server.
set -u
bin=$1
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(mktemp /tmp/luafetch-demo.XXXXXX)
python3 "$root/tests/fixtures/server.py" >"$out" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 200); do grep -q '^PORT ' "$out" && break; sleep 0.05; done
port=$(awk '/^PORT /{print $2; exit}' "$out")
[ -n "$port" ] || { echo "demo: the local server did not start" >&2; exit 1; }
base="http://127.0.0.1:$port"

echo "luafetch demo: a local server on $base (nothing leaves this machine)"
echo
echo "\$ luafetch run scripts/health_check.lua <7 endpoints>"
"$bin" run "$root/scripts/health_check.lua" \
  "$base/json" "$base/delay/0.3" "$base/gzip/20000" "$base/redirect/2" \
  "$base/status/503" "$base/reset" "http://127.0.0.1:1/"
echo "(exit status $? : 1 because some endpoints are down)"
echo
echo "\$ luafetch get --retries 2 --backoff 0.05 <4 URLs>   (the fetcher: retries a flaky endpoint)"
"$bin" get --retries 2 --backoff 0.05 \
  "$base/json" "$base/flaky/demo$$?fail=2&status=503" "$base/gzip/5000" "$base/delay/0.2"
echo "(exit status $?)"
