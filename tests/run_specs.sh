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

# launch NAME ARGS... starts a fixture server in the background (its pid joins this shell's list,
# so cleanup stops it); port_of NAME then waits for its PORT line and sets $port. Launching all
# servers before waiting for any keeps start-up short on a loaded machine.
launch() {
  local name=$1; shift
  "$py" "$here/fixtures/server.py" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
}
# launch_echo NAME ARGS... the same for tests/fixtures/tls_echo.py --http (TLS policy reports).
launch_echo() {
  local name=$1; shift
  "$py" "$here/fixtures/tls_echo.py" --http --lifetime 3600 "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
}
port_of() {
  local i
  for i in $(seq 600); do
    grep -q '^PORT ' "$tmp/$1.out" 2>/dev/null && break
    sleep 0.05
  done
  port=$(awk '/^PORT /{print $2; exit}' "$tmp/$1.out")
  [ -n "$port" ] || { echo "fixture server $1 did not start: $(cat "$tmp/$1.err")" >&2; exit 1; }
}

launch plain
export LUAFETCH_BIN="$bin"
export LUAFETCH_ROOT="$(cd "$here/.." && pwd)"

# TLS fixtures: certificates generated now, one server per certificate case.
tls_cases="good expired notyet wronghost selfsigned untrusted incomplete noip intermediate_full cnonly nc_full wildlocal"
certs="$tmp/certs"
if ! bash "$here/fixtures/certs.sh" "$certs" >"$tmp/certs.log" 2>&1; then
  echo "certs.sh failed:" >&2; cat "$tmp/certs.log" >&2; exit 1
fi
export FIXTURE_CERTS="$certs"
# intermediate_full: the incomplete leaf served with its intermediate (the complete-chain case)
for c in $tls_cases; do
  launch "tls_$c" --tls "$certs/$c.pem" "$certs/$c.key"
done
launch tls_mtls --tls "$certs/good.pem" "$certs/good.key" --client-ca "$certs/client_ca.pem"
launch tls_stall --tls "$certs/good.pem" "$certs/good.key" --mode tls-stall
launch tls_hello --tls "$certs/good.pem" "$certs/good.key" --mode tls-close-hello
# cipher policy (tests/fixtures/tls_echo.py --http): a server that accepts only CBC suites, and one that
# reports the suites of the client's ClientHello
launch_echo tls_cbc --cert "$certs/good.pem" --key "$certs/good.key" \
  --ciphers "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
launch_echo tls_offer --cert "$certs/good.pem" --key "$certs/good.key"

port_of plain
export FIXTURE_URL="http://127.0.0.1:$port"
for c in $tls_cases; do
  port_of "tls_$c"
  export "FIXTURE_TLS_$(echo "$c" | tr a-z A-Z)=https://127.0.0.1:$port"
done
port_of tls_mtls
export FIXTURE_TLS_MTLS="https://127.0.0.1:$port"
port_of tls_stall
export FIXTURE_TLS_STALL="https://127.0.0.1:$port"
port_of tls_hello
export FIXTURE_TLS_CLOSE_HELLO="https://127.0.0.1:$port"
port_of tls_cbc
export FIXTURE_TLS_CBC="https://127.0.0.1:$port"
port_of tls_offer
export FIXTURE_TLS_OFFER="https://127.0.0.1:$port"

cd "$LUAFETCH_ROOT"
"$bin" test -o plainTerminal "$@"
