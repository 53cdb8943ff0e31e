#!/usr/bin/env bash
# demo.sh BIN — `make demo`: starts the embedded mock services (scripts/mock_services.lua, on a port
# the OS assigns), runs the three example workflows against them for a few seconds each — monitor,
# scrape, aggregate — then records a monitor round as HAR and replays a day of it on the virtual
# clock; it stops every process it started (by pid). Nothing leaves this machine.
set -u
bin=$(realpath "$1")
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/luafetch-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
cd "$root"

"$bin" run scripts/mock_services.lua >"$tmp/mock.out" 2>/dev/null </dev/null &
pids+=($!)
for _ in $(seq 200); do grep -q '^PORT ' "$tmp/mock.out" && break; sleep 0.05; done
port=$(awk '/^PORT /{print $2; exit}' "$tmp/mock.out")
[ -n "$port" ] || { echo "demo: the mock services did not start" >&2; exit 1; }
base="http://127.0.0.1:$port"

# post PATH: a POST to the mock, to switch a service off and on while the monitor watches
post() { "$bin" -e "assert(require('http').post('$base$1', ''))"; }
# colour only on a terminal, and never with NO_COLOR (no escape codes in `make demo > file`)
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  bold=$'\033[1m' dim=$'\033[2m' reset=$'\033[0m'
else
  bold='' dim='' reset=''
fi
step() { printf '\n%s== %s%s\n' "$bold" "$1" "$reset"; }
cmd() { printf '%s$ %s%s\n' "$dim" "$*" "$reset"; }

echo "luafetch demo: mock services (a shop, JSON APIs, healthy/flaky/slow endpoints) on $base"

step "1. monitor: check endpoints on a schedule, alert when one changes state"
cmd "luafetch run scripts/monitor.lua --targets scripts/targets.example.lua --base $base --interval 1.5s --for 4s --textfile metrics.prom"
"$bin" run scripts/monitor.lua --targets scripts/targets.example.lua --base "$base" --interval 1.5s --for 4s \
  --textfile "$tmp/metrics.prom" </dev/null &
monitor=$!
pids+=($monitor)
sleep 1
echo "   (demo: switching the checkout service off)"
post /admin/down/checkout
sleep 1.5
echo "   (demo: switching it back on)"
post /admin/up/checkout
wait "$monitor"
echo "(exit status $?; add --metrics-port 9101 to serve /metrics, --webhook URL or --on-change CMD to be told)"
echo "Prometheus metrics it wrote (a few of them):"
grep -E '^luafetch_(probe_success|monitor_state_changes_total)' "$tmp/metrics.prom" | sed 's/^/  /' | head -n 8

step "2. scrape: crawl the shop politely (robots.txt, Crawl-delay, retries), stop after 8 pages ..."
cmd "luafetch run scripts/scrape.lua --out products.jsonl --csv products.csv --max-pages 8 $base/shop/"
"$bin" run scripts/scrape.lua --out "$tmp/products.jsonl" --csv "$tmp/products.csv" --max-pages 8 "$base/shop/" </dev/null
echo "(exit status $?)"
echo
echo "... then run it again: it resumes from products.jsonl and fetches only the pages not yet there"
cmd "luafetch run scripts/scrape.lua --out products.jsonl --csv products.csv --max-pages 100 $base/shop/"
"$bin" run scripts/scrape.lua --out "$tmp/products.jsonl" --csv "$tmp/products.csv" --max-pages 100 "$base/shop/" </dev/null \
  | grep -v '^    disallowed by robots.txt' | tail -n 6
echo "(exit status ${PIPESTATUS[0]}; the middle of the list is left out here)"
echo "products.csv:"
head -n 4 "$tmp/products.csv" | sed 's/^/  /'
echo "  ... $(($(wc -l <"$tmp/products.csv") - 1)) products"

step "3. aggregate: three JSON APIs and a slow optional one, merged into one document"
cmd "luafetch run scripts/aggregate.lua --config scripts/sources.example.lua --base $base --out report.json"
"$bin" run scripts/aggregate.lua --config scripts/sources.example.lua --base "$base" --out "$tmp/report.json" </dev/null
rc=$?
[ $rc -eq 0 ] && echo "(exit status 0: the failed source was optional and every check passed)" || echo "(exit status $rc)"
echo "report.json, its data:"
"$bin" -e "
  local doc = require('cjson').decode(io.open('$tmp/report.json'):read('a'))
  for _, c in ipairs(doc.data.customers) do
    print(('  %-6s %d orders, %6.2f spent'):format(c.name, c.orders, c.spent))
  end
  print('  sold out: ' .. table.concat(doc.data.sold_out, ', '))
  print('  failed: ' .. table.concat(doc.failed, ', ') .. ' (' .. doc.sources.forecast.error .. ')')"
echo
echo "... and with a broken required source the exit status says so:"
cmd "luafetch run scripts/aggregate.lua users=$base/api/users orders=$base/api/broken"
"$bin" run scripts/aggregate.lua "users=$base/api/users" "orders=$base/api/broken" </dev/null >/dev/null
echo "(exit status $?)"

step "4. record and replay: a monitor round recorded as HAR, then a whole day of it replayed offline"
cmd "luafetch run --record monitor.har scripts/monitor.lua --targets scripts/targets.example.lua --base $base --once"
"$bin" run --record "$tmp/monitor.har" scripts/monitor.lua --targets scripts/targets.example.lua --base "$base" \
  --once </dev/null >/dev/null 2>&1
echo "(exit status $?; $("$bin" -e "print(#require('cjson').decode(io.open('$tmp/monitor.har'):read('a')).log.entries)") exchanges recorded)"
cmd "luafetch run --replay monitor.har --clock virtual scripts/monitor.lua --targets ... --interval 30s --for 24h"
t0=$(date +%s.%N)
"$bin" run --replay "$tmp/monitor.har" --clock virtual scripts/monitor.lua --targets scripts/targets.example.lua \
  --base "$base" --interval 30s --for 24h </dev/null 2>&1 | tail -n 2 | sed 's/^/  /'
echo "(24 hours of 30 s rounds, no network, in $(awk -v t0="$t0" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.2f", t1 - t0 }') s)"

echo
echo "Next: copy scripts/targets.example.lua and list your own endpoints, or give scrape.lua your"
echo "start URL and an extract function; docs/scripts/ has a page per script."
