#!/usr/bin/env bash
# run.sh BIN FAILMALLOC_SO [--why K [R]] — the allocation-failure torture: runs tests/torture/script.lua
# once to count its allocation calls (N), then again for each chosen k with the k-th call failing
# (failmalloc.c). Every run must end with exit status 0, 1 or 2 — never a signal, never a hang — with
# the right output when 0 and a message when not; a sample of k runs under valgrind for leaks.
#
# Knobs (environment):
#   TORTURE_RUNS="1 2 0"  failure modes: r consecutive calls from k fail (0 = every call from k on)
#   TORTURE_DENSE=auto    every k in FROM..min(N, DENSE); auto: up to 200 past the end of the
#                         script's plain part (start-up, module loads, task, semaphore, plain GET)
#   TORTURE_FROM=1        where the dense range starts
#   TORTURE_STRIDE=25     then every STRIDE-th k up to N (0: none)
#   TORTURE_OFFSET=0      shifts the strided k (so successive CI runs can cover other k)
#   TORTURE_VALGRIND=12   k values (spread over 1..N, mode 2) run under valgrind memcheck
#   TORTURE_JOBS=2        runs in parallel
#   TORTURE_TIMEOUT=10    seconds per run (a hang is a failure)
#   TORTURE_OUT=DIR       where results.txt and the failing runs' stderr go (default: a temp dir)
# --why K [R] prints gdb backtraces for one k instead: where the failing allocation was made and
# where the program crashed.
set -u
bin=$(realpath "$1")
so=$(realpath "$2")
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script=$here/script.lua
runs=${TORTURE_RUNS:-1 2 0}
dense=${TORTURE_DENSE:-auto}
from=${TORTURE_FROM:-1}
stride=${TORTURE_STRIDE:-25}
offset=${TORTURE_OFFSET:-0}
vg_count=${TORTURE_VALGRIND:-12}
jobs=${TORTURE_JOBS:-2}
limit=${TORTURE_TIMEOUT:-10}
tmp=$(mktemp -d /tmp/luafetch-torture.XXXXXX)
out=${TORTURE_OUT:-$tmp/out}
mkdir -p "$out"
pids=()
py=$(command -v /usr/bin/python3 || command -v python3)

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- fixtures: one plain and one TLS server on ports the OS assigns ------------------------
bash "$root/tests/fixtures/certs.sh" "$tmp/certs" >"$tmp/certs.log" 2>&1 ||
  { echo "certs.sh failed:"; cat "$tmp/certs.log"; exit 1; }
"$py" "$root/tests/fixtures/server.py" >"$tmp/plain.out" 2>&1 &
pids+=($!)
"$py" "$root/tests/fixtures/server.py" --tls "$tmp/certs/good.pem" "$tmp/certs/good.key" \
  >"$tmp/tls.out" 2>&1 &
pids+=($!)
port_of() {
  local i
  for i in $(seq 600); do
    grep -q '^PORT ' "$1" 2>/dev/null && break
    sleep 0.05
  done
  awk '/^PORT /{print $2; exit}' "$1"
}
plain_port=$(port_of "$tmp/plain.out")
tls_port=$(port_of "$tmp/tls.out")
[ -n "$plain_port" ] && [ -n "$tls_port" ] || { echo "fixture servers did not start"; exit 1; }
args=("$script" "http://127.0.0.1:$plain_port" "https://127.0.0.1:$tls_port" "$tmp/certs/ca.pem")

# --- one run --------------------------------------------------------------------------------
# Lua seeds its string hashes with time() and stack and heap addresses, and table growth depends
# on collisions: for the k-th allocation to be the same call in every run (up to the TLS
# handshake's random numbers), every run gets the same environment, variable for variable and
# byte for byte (its size moves the stack), the same time() (FAILMALLOC_TIME) and no address
# randomisation (setarch -R; gdb disables it too), so a k found here fails the same call under
# --why given the same FAILMALLOC_TIME.
export FAILMALLOC_TIME=${FAILMALLOC_TIME:-$(date +%s)}
pin=()
setarch -R true 2>/dev/null && pin=(setarch -R)

# penv R K: sets PENV, the program's whole environment.
penv() {
  local kk
  kk=$(printf %08d "$2")
  PENV=(PATH=/usr/bin:/bin LD_PRELOAD="$so" FAILMALLOC_PROGRAM=luafetch LUAFETCH_LUA_CACHE=0
        FAILMALLOC_TIME="$FAILMALLOC_TIME" FAILMALLOC_RUN="$1" FAILMALLOC_K="$kk"
        FAILMALLOC_REPORT="$tmp/report.$1.$kk")
}

# why K R: gdb backtraces at the injected failure and where the program ended.
why() {
  local v ex=(-ex 'set startup-with-shell off' -ex 'unset environment')
  penv "$2" "$1"
  for v in "${PENV[@]}"; do ex+=(-ex "set environment $v"); done
  gdb -q -batch "${ex[@]}" -ex 'set breakpoint pending on' -ex 'break failmalloc_injected' \
    -ex run -ex 'bt 25' -ex continue -ex 'bt 25' --args "$bin" run "${args[@]}" 2>&1 |
    grep -E '^#|^Program|signal|exited'
}

# Ends inside third-party code that luafetch cannot prevent. known_aborts are matched against the
# backtrace of the crash (the part after "Program received signal"), known_exits against the exit
# status and the whole stderr of the run. One line each: an extended regex, then why.
known_aborts=(
  'uv_signal_init .*|libuv: uv_loop_init aborts when pthread_atfork cannot allocate (uv__signal_global_init calls abort)'
)
known_exits=(
  '^255 Out of memory$|lua-cjson: its string buffer (strbuf.c) prints "Out of memory" and calls exit(-1) when malloc fails'
)

if [ "${1:-}" = --why ]; then
  echo "k=$2 r=${3:-2}: the injected failure, then the end of the program"
  why "$2" "${3:-2}"
  exit 0
fi

# --- counting run ---------------------------------------------------------------------------
cd "$tmp"
penv 1 0
env -i "${PENV[@]}" timeout "$limit" "${pin[@]}" "$bin" run "${args[@]}" >"$tmp/expected" 2>"$tmp/count.err"
rc=$?
count=$tmp/report.1.00000000
if [ $rc -ne 0 ] || [ ! -s "$count" ]; then
  echo "the script fails without any injected failure (exit $rc):"
  cat "$tmp/count.err"
  exit 1
fi
n=$(awk '{print $1}' "$count")
echo "script: $n allocation calls counted from main(); output: $(tr '\t\n' '  ' <"$tmp/expected")"
if [ "$dense" = auto ]; then
  # the plain part alone (its arguments differ, so its count is close, not exact: hence the margin)
  penv 1 0
  env -i "${PENV[@]}" timeout "$limit" "${pin[@]}" "$bin" run "${args[@]}" plain >/dev/null 2>&1
  plain=$(awk '{print $1}' "$count")
  dense=$((plain + 200))
  echo "plain part: $plain calls: every k up to $dense$([ "$stride" -gt 0 ] && echo ", then every ${stride}th")"
fi

# one_run R K: prints "R K CLASS RC" (CLASS ok|signal|status|hang|output|silent|handles); keeps stderr
# of failing runs.
one_run() {
  local r=$1 k=$2 rc class=ok
  penv "$r" "$k"
  # in a subshell whose stderr is /dev/null, so bash's "Aborted" job notices stay out of the log
  ( env -i "${PENV[@]}" timeout -k 2 "$limit" $pin_cmd "$bin" run $script_args \
      >"$tmp/o.$r.$k" 2>"$tmp/e.$r.$k"; exit $? ) 2>/dev/null
  rc=$?
  rm -f "$tmp/report.$r.$(printf %08d "$k")"
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    class=hang
  elif [ $rc -gt 128 ] && [ $rc -le 192 ]; then
    class=signal   # 128 + the signal's number
  elif [ $rc -gt 2 ]; then
    class=status   # an exit status outside 0/1/2
  elif [ $rc -eq 0 ] && ! cmp -s "$tmp/o.$r.$k" "$tmp/expected"; then
    class=output   # "success" with a wrong result
  elif [ $rc -ne 0 ] && [ ! -s "$tmp/e.$r.$k" ]; then
    class=silent   # failed without saying why
  elif grep -q 'left open at exit' "$tmp/e.$r.$k"; then
    class=handles
  fi
  [ $class = ok ] || cp "$tmp/e.$r.$k" "$out/stderr.$r.$k"
  rm -f "$tmp/o.$r.$k" "$tmp/e.$r.$k"
  echo "$r $k $class $rc"
}
export -f one_run penv
export bin so tmp out limit
export pin_cmd="${pin[*]}"
export script_args="${args[*]}" # no spaces in these paths and URLs

ks() {
  local top=$((n < dense ? n : dense))
  seq "$from" "$top"
  [ "$stride" -gt 0 ] && [ "$n" -gt "$top" ] && seq $((top + 1 + offset % stride)) "$stride" "$n"
}

results=$out/results.txt
: >"$results"
start=$(date +%s)
for r in $runs; do
  # xargs runs one_run in child shells: pass what they need through the environment
  ks | sed "s/^/$r /" | xargs -P "$jobs" -n 2 bash -c 'one_run "$@"' _ >>"$results"
done
elapsed=$(( $(date +%s) - start ))

# A crash or exit with a known third-party cause is not a failure.
reclass() { # R K CLASS RC REASON
  sed -i "s/^$1 $2 $3 $4\$/$1 $2 known $4/" "$results"
  echo "known third-party end at k=$2 r=$1: $5"
}
awk '$3=="signal" || $3=="status"' "$results" | while read -r r k class rc; do
  text="$rc $(cat "$out/stderr.$r.$k")"
  for entry in "${known_exits[@]}"; do
    echo "$text" | grep -qE "${entry%%|*}" && reclass "$r" "$k" "$class" "$rc" "${entry#*|}"
  done
done
gdb_budget=20
while read -r r k class rc; do
  [ "$gdb_budget" -gt 0 ] || break
  gdb_budget=$((gdb_budget - 1))
  crash=$(why "$k" "$r" | sed -n '/^Program received signal/,$p' | tr '\n' ' ')
  for entry in "${known_aborts[@]}"; do
    echo "$crash" | grep -qE "${entry%%|*}" && reclass "$r" "$k" "$class" "$rc" "${entry#*|}"
  done
done < <(awk '$3=="signal"' "$results" | while read -r r k c rc; do
           grep -q 'unprotected Lua error' "$out/stderr.$r.$k" || echo "$r $k $c $rc"; done)

# k ranges: "3 4 5 9" -> "3-5,9"
ranges() {
  awk '{ if (NR == 1) { a = b = $1 } else if ($1 == b + 1) { b = $1 }
         else { printf "%s%s,", a, (a == b ? "" : "-" b); a = b = $1 } }
       END { if (NR) printf "%s%s", a, (a == b ? "" : "-" b) }'
}

fail=0
for r in $runs; do
  total=$(awk -v r="$r" '$1==r' "$results" | wc -l)
  clean=$(awk -v r="$r" '$1==r && ($3=="ok" || $3=="known")' "$results" | wc -l)
  by_rc=$(awk -v r="$r" '$1==r && $3=="ok" {c[$4]++} END {for (x in c) printf "exit %s: %d, ", x, c[x]}' "$results")
  echo "mode r=$r: $total runs, $clean clean (${by_rc%, })"
  bad=$(awk -v r="$r" '$1==r && $3!="ok" && $3!="known"' "$results" | sort -k2,2n)
  [ -n "$bad" ] || continue
  fail=1
  # group the failures by class and first line of stderr
  echo "$bad" | while read -r rr k class rc; do
    msg=$(grep -v '^\s' "$out/stderr.$rr.$k" 2>/dev/null | head -n 1 | cut -c1-100 |
          sed -E 's/[0-9]+ bytes/N bytes/')
    printf '%s (exit %s): %s\t%s\n' "$class" "$rc" "${msg:-(no message)}" "$k"
  done | sort -t$'\t' -k1,1 -s | awk -F'\t' '{ if ($1 != last) { if (NR > 1) print ""; printf "%s\t", $1; last = $1 } printf "%s ", $2 } END { print "" }' |
  while IFS=$'\t' read -r what klist; do
    printf '  %s\n    k = %s\n' "$what" "$(echo "$klist" | tr ' ' '\n' | grep . | sort -n | ranges)"
  done
done
echo "torture: $(wc -l <"$results") runs in ${elapsed}s (a backtrace of one k:" \
  "FAILMALLOC_TIME=$FAILMALLOC_TIME $0 BIN SO --why K R)"

# --- a sample under valgrind: no leak, no invalid access on the error paths -----------------
if [ "$vg_count" -gt 0 ] && command -v valgrind >/dev/null; then
  vg_fail=0
  for i in $(seq 1 "$vg_count"); do
    k=$(( (n * i) / (vg_count + 1) ))
    penv 2 "$k"
    env -i "${PENV[@]}" timeout 120 valgrind -q --error-exitcode=99 \
      --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
      --num-callers=30 --log-file="$tmp/vg.$k" "$bin" run "${args[@]}" >/dev/null 2>&1
    rc=$?
    if [ $rc -eq 99 ] || [ $rc -gt 2 ] || [ -s "$tmp/vg.$k" ]; then
      vg_fail=$((vg_fail + 1))
      cp "$tmp/vg.$k" "$out/valgrind.$k"
      echo "  valgrind k=$k (exit $rc): $(grep -m1 -E '(Invalid|uninitialised|definitely lost|Mismatched)' "$tmp/vg.$k")"
    fi
  done
  echo "valgrind: $vg_count sampled k, $vg_fail with errors or leaks"
  [ $vg_fail -eq 0 ] || fail=1
fi
[ -z "${TORTURE_OUT:-}" ] || echo "details: $out"
exit $fail
