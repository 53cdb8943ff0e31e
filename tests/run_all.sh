#!/usr/bin/env bash
# run_all.sh BUILD [unit|specs|asan] — runs the C unit tests, the busted specs inside the host, and
# the specs again on the ASan+UBSan build; ends with one "N passed, N failed" line.
set -u
build=$1
only=${2:-all}
here=$(cd "$(dirname "$0")" && pwd)
passed=0
failed=0
log=$(mktemp /tmp/luafetch-test.XXXXXX)
trap 'rm -f "$log"' EXIT

# Adds the counts of a "N passed, M failed" line.
tally_unit() {
  local line
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "  (no summary line: counted as one failure)"
    failed=$((failed + 1))
    return
  fi
  passed=$((passed + $(echo "$line" | awk '{print $1}')))
  failed=$((failed + $(echo "$line" | awk '{print $3}')))
}

# Adds the counts of busted's "N successes / M failures / E errors / P pending" line.
tally_busted() {
  local line s f e p
  line=$(grep -E '^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "  (busted printed no summary: counted as one failure)"
    failed=$((failed + 1))
    return
  fi
  read -r s f e p <<<"$(echo "$line" | awk '{print $1, $4, $7, $10}')"
  passed=$((passed + s))
  failed=$((failed + f + e))
  if [ "$p" != "0" ]; then
    echo "  $p pending spec(s) are not counted as passing"
  fi
}

run_unit() {
  echo "== C unit tests"
  for t in "$build"/tests/test_*; do
    [ -x "$t" ] || continue
    echo "-- $(basename "$t")"
    "$t" >"$log" 2>&1
    local rc=$?
    tail -n 3 "$log" | sed 's/^/  /'
    tally_unit
    [ $rc -eq 0 ] || grep -qE '^[0-9]+ passed, [1-9]' "$log" || { echo "  exit $rc"; failed=$((failed + 1)); }
  done
}

run_specs() {
  local bin=$1 label=$2
  echo "== busted specs ($label)"
  bash "$here/run_specs.sh" "$bin" tests/spec >"$log" 2>&1
  local rc=$?
  grep -vE '^\s*$' "$log" | tail -n 40 | sed 's/^/  /'
  tally_busted
  if [ "$label" = asan ] && grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
    echo "  sanitizer report found: failure"
    failed=$((failed + 1))
  fi
  if grep -q 'handle(s) left open at exit' "$log"; then
    echo "  libuv handles left open: failure"
    failed=$((failed + 1))
  fi
  [ $rc -eq 0 ] || echo "  (exit status $rc)"
}

case $only in
  all) run_unit; run_specs "$build/luafetch" release; \
       ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_specs "$build/asan/luafetch" asan ;;
  unit) run_unit ;;
  specs) run_specs "$build/luafetch" release ;;
  asan) ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_specs "$build/asan/luafetch" asan ;;
esac

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
