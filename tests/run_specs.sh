#!/usr/bin/env bash
# run_specs.sh BIN [busted args...] — starts the fixture servers on ports the OS assigns, runs the
# busted specs inside the host BIN (`BIN test ...`), then stops the servers it started (by pid).
set -u
bin=$(realpath "$1"); shift
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/luafetch-specs.XXXXXX)
pids=()
# Debian's interpreter starts fastest; any python3 does.
py=$(command -v /usr/bin/python3 || command -v python3)

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# start_server NAME ARGS... → sets $port to the port the server reported. Not run in $(...):
# the pid must reach this shell's list, or cleanup could not stop the server.
start_server() {
  local name=$1; shift
  "$py" "$here/fixtures/server.py" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  local i
  for i in $(seq 200); do
    grep -q '^PORT ' "$tmp/$name.out" 2>/dev/null && break
    sleep 0.05
  done
  port=$(awk '/^PORT /{print $2; exit}' "$tmp/$name.out")
}

start_server plain
[ -n "$port" ] || { echo "fixture server did not start: $(cat "$tmp/plain.err")" >&2; exit 1; }
export FIXTURE_URL="http://127.0.0.1:$port"
export LUAFETCH_BIN="$bin"
export LUAFETCH_ROOT="$(cd "$here/.." && pwd)"

# TLS fixtures: certificates generated now, one server per certificate case.
if [ -x "$here/fixtures/certs.sh" ] || [ -f "$here/fixtures/certs.sh" ]; then
  certs="$tmp/certs"
  if bash "$here/fixtures/certs.sh" "$certs" >"$tmp/certs.log" 2>&1; then
    export FIXTURE_CERTS="$certs"
    # intermediate_full: the incomplete leaf served with its intermediate (the complete-chain case)
    for c in good expired notyet wronghost selfsigned untrusted incomplete noip intermediate_full; do
      [ -f "$certs/$c.pem" ] || continue
      start_server "tls_$c" --tls "$certs/$c.pem" "$certs/$c.key"
      export "FIXTURE_TLS_$(echo "$c" | tr a-z A-Z)=https://127.0.0.1:$port"
    done
    if [ -f "$certs/client_ca.pem" ]; then
      start_server tls_mtls --tls "$certs/good.pem" "$certs/good.key" --client-ca "$certs/client_ca.pem"
      export FIXTURE_TLS_MTLS="https://127.0.0.1:$port"
    fi
    start_server tls_stall --tls "$certs/good.pem" "$certs/good.key" --mode tls-stall
    export FIXTURE_TLS_STALL="https://127.0.0.1:$port"
    start_server tls_hello --tls "$certs/good.pem" "$certs/good.key" --mode tls-close-hello
    export FIXTURE_TLS_CLOSE_HELLO="https://127.0.0.1:$port"
  else
    echo "certs.sh failed:" >&2; cat "$tmp/certs.log" >&2; exit 1
  fi
fi

cd "$LUAFETCH_ROOT"
"$bin" test -o plainTerminal "$@"
