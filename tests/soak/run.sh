#!/usr/bin/env bash
# run.sh BIN SECONDS [TASKS] — the soak: starts the fault-injecting fixture server on a port the OS
# assigns, runs tests/soak/soak.lua against it for SECONDS with TASKS tasks (default 1000), and
# stops the server (by pid). The series is printed and kept in $SOAK_LOG (default /tmp/luafetch-soak.log).
set -u
bin=$(realpath "$1")
seconds=${2:-600}
tasks=${3:-1000}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${SOAK_LOG:-/tmp/luafetch-soak.log}
tmp=$(mktemp -d /tmp/luafetch-soak.XXXXXX)
py=$(command -v /usr/bin/python3 || command -v python3)
server=

cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# 1,000 tasks hold up to ~1,000 sockets each side
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
"$py" "$root/tests/fixtures/server.py" >"$tmp/server.out" 2>"$tmp/server.err" &
server=$!
for _ in $(seq 600); do
  grep -q '^PORT ' "$tmp/server.out" 2>/dev/null && break
  sleep 0.05
done
port=$(awk '/^PORT /{print $2; exit}' "$tmp/server.out")
[ -n "$port" ] || { echo "fixture server did not start: $(cat "$tmp/server.err")"; exit 1; }

cd "$root"
"$bin" run tests/soak/soak.lua "http://127.0.0.1:$port" "$seconds" "$tasks" "${SOAK_PRINT:-5}" | tee "$out"
rc=${PIPESTATUS[0]}
echo "(series kept in $out)"
exit "$rc"
