#!/usr/bin/env bash
# run_all.sh BUILD [all|unit|specs|asan|valgrind|torture|fuzz] — every layer of the suite: the C unit
# tests (release and ASan+UBSan builds), the busted specs inside the host (release, then ASan+UBSan),
# a core subset of the specs under valgrind memcheck, the allocation-failure torture (a sample of k)
# and a short run of each fuzz harness on its seed corpus. Ends with one "N passed, N failed" line.
set -u
build=$1
only=${2:-all}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
passed=0
failed=0
tmp=$(mktemp -d /tmp/luafetch-test.XXXXXX)
log=$tmp/log
trap 'rm -rf "$tmp"' EXIT

# Specs run under valgrind: those that drive libraries ASan does not instrument (mbedTLS for TLS,
# nghttp2 for HTTP/2, gumbo for HTML) and the core of the network layer (tunnels through proxies,
# the pool, streams), the task scheduler and the server. Lua-only modules (schedule, plugins,
# scripts) gain nothing from memcheck and are left to the other stages. About 3 minutes.
VALGRIND_SPECS=${VALGRIND_SPECS:-"tls h2 http pool net proxy stream task redirect regressions server html fetcher wire"}
FUZZ_TEST_SECONDS=${FUZZ_SECONDS:-20}

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

# One pass or failure for a stage that is not counted in specs (torture, fuzz, sanitizer reports).
verdict() {
  if [ "$1" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

stage_start() {
  echo "== $1"
  stage_t0=$(date +%s)
}
stage_end() {
  echo "  ($(( $(date +%s) - stage_t0 )) s)"
}

run_unit() {
  local dir=$1 label=$2 t rc
  stage_start "C unit tests ($label)"
  for t in "$dir"/test_*; do
    [ -x "$t" ] || continue
    echo "-- $(basename "$t")"
    "$t" >"$log" 2>&1
    rc=$?
    tail -n 3 "$log" | sed 's/^/  /'
    tally_unit
    [ $rc -eq 0 ] || grep -qE '^[0-9]+ passed, [1-9]' "$log" || { echo "  exit $rc"; failed=$((failed + 1)); }
    if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log"; then
      grep -m 5 -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$log" | sed 's/^/  /'
      echo "  sanitizer report found: failure"
      failed=$((failed + 1))
    fi
  done
  stage_end
}

run_specs() {
  local bin=$1 label=$2 rc
  shift 2
  stage_start "busted specs ($label)"
  bash "$here/run_specs.sh" "$bin" "${@:-tests/spec}" >"$log" 2>&1
  rc=$?
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
  stage_end
}

# The release build under valgrind memcheck, every luafetch process of the run included (the specs
# start child processes through $LUAFETCH_BIN, which is the wrapper too). A process with an
# invalid access, a use of uninitialised memory or a definite leak leaves a non-empty log.
run_valgrind() {
  local bin vgdir specs s logs
  bin=$(realpath "$build/luafetch")
  vgdir=$tmp/valgrind
  mkdir -p "$vgdir/logs"
  local supp=()
  [ -f "$here/valgrind.supp" ] && supp=(--suppressions="$here/valgrind.supp")
  cat >"$vgdir/luafetch" <<EOF
#!/bin/sh
# the Lua allocator's block cache off, so memcheck sees every Lua block freed (host.c)
LUAFETCH_LUA_CACHE=0 exec valgrind -q --error-exitcode=99 --leak-check=full \\
  --show-leak-kinds=definite --errors-for-leak-kinds=definite --num-callers=30 \\
  ${supp[*]} --log-file="$vgdir/logs/vg.%p.log" "$bin" "\$@"
EOF
  chmod +x "$vgdir/luafetch"
  specs=()
  for s in $VALGRIND_SPECS; do
    [ -f "$root/tests/spec/${s}_spec.lua" ] && specs+=("tests/spec/${s}_spec.lua")
  done
  run_specs "$vgdir/luafetch" valgrind "${specs[@]}"
  logs=$(find "$vgdir/logs" -type f -size +0 | sort)
  echo "  valgrind: $(find "$vgdir/logs" -type f | wc -l) luafetch processes checked"
  if [ -n "$logs" ]; then
    echo "  valgrind reported errors in $(echo "$logs" | wc -l) process(es):"
    for s in $(echo "$logs" | head -n 3); do
      head -n 40 "$s" | sed 's/^/    /'
      echo "    --"
    done
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
  fi
}

# A sample of k: in modes 1 and 2 every k up to just past the plain request (start-up, the module
# loads, the task and semaphore, the GET) and every 97th beyond (the TLS handshake); mode 0 every
# 23rd. `make torture` takes the same dense range and every 5th beyond in all three modes.
run_torture() {
  local rc rc0
  stage_start "allocation-failure torture (sample)"
  TORTURE_RUNS="1 2" TORTURE_DENSE=${TORTURE_DENSE:-auto} TORTURE_STRIDE=${TORTURE_STRIDE:-97} \
    TORTURE_VALGRIND=${TORTURE_VALGRIND:-6} \
    bash "$here/torture/run.sh" "$build/luafetch" "$build/torture/failmalloc.so" >"$log" 2>&1
  rc=$?
  sed 's/^/  /' "$log" | head -n 60
  TORTURE_RUNS=0 TORTURE_DENSE=0 TORTURE_STRIDE=23 TORTURE_VALGRIND=0 \
    bash "$here/torture/run.sh" "$build/luafetch" "$build/torture/failmalloc.so" >"$log" 2>&1
  rc0=$?
  grep -v '^script:' "$log" | sed 's/^/  /' | head -n 30
  verdict $((rc + rc0))
  stage_end
}

# Each harness for FUZZ_SECONDS on a copy of its seed corpus (the repository is not written to;
# `make fuzz` keeps the grown corpus in FUZZ_KEEP). A crash, leak or timeout fails it; the input
# that did it is kept in BUILD/fuzz/artifacts/NAME/ (reproduce: BUILD/fuzz/NAME FILE).
run_fuzz() {
  local f name work seeds rc execs arts
  stage_start "fuzz harnesses (${FUZZ_TEST_SECONDS} s each)"
  for f in "$build"/fuzz/fuzz_*; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    seeds=$root/tests/fuzz/corpus/$name
    if [ -n "${FUZZ_KEEP:-}" ]; then
      work=$FUZZ_KEEP/$name
    else
      work=$tmp/fuzz/$name
    fi
    arts=$build/fuzz/artifacts/$name
    mkdir -p "$work" "$arts"
    [ -d "$seeds" ] && cp -n "$seeds"/* "$work"/ 2>/dev/null
    "$f" -max_total_time="$FUZZ_TEST_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$arts/" "$work" >"$log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "-- $name: ${execs:-?} executions, corpus $(ls "$work" | wc -l) inputs$([ -d "$seeds" ] || echo ' (no seed corpus)'), exit $rc"
    if [ $rc -ne 0 ]; then
      grep -m 20 -E 'ERROR|SUMMARY|runtime error|Test unit written|#[0-9] ' "$log" | sed 's/^/  /'
    fi
    verdict $rc
  done
  stage_end
}

t0=$(date +%s)
case $only in
  all)
    run_unit "$build/tests" release
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_unit "$build/asan-tests" asan
    run_specs "$build/luafetch" release
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_specs "$build/asan/luafetch" asan
    run_valgrind
    run_torture
    run_fuzz ;;
  unit)
    run_unit "$build/tests" release
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_unit "$build/asan-tests" asan ;;
  specs) run_specs "$build/luafetch" release ;;
  asan) ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_specs "$build/asan/luafetch" asan ;;
  valgrind) run_valgrind ;;
  torture) run_torture ;;
  fuzz) run_fuzz ;;
  *) echo "unknown stage $only"; exit 2 ;;
esac

echo
echo "$passed passed, $failed failed ($(( $(date +%s) - t0 )) s)"
[ "$failed" -eq 0 ]
