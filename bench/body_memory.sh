#!/usr/bin/env bash
# body_memory.sh BUILD [BYTES] — big: a 1 GiB body (default) from nginx on loopback (a file on
# tmpfs) taken with output= and with `curl -o` on the same URL, alternately, 5 rounds each
# (medians, min/max and the throughput ratio; target ≥ 0.9× curl), once with stream = true and a
# slow consumer, and the same size uploaded from a file (body = file) to a small discarding peer;
# peak RSS of each (target: ≤ 32 MB). Then many downloads at once (bench/many_downloads.lua):
# 100 concurrent 10 MB downloads from nginx to files with output=, from 100 tasks and through
# the fetcher, beside `curl --parallel` on the same URLs, and from 100 tasks whose consumer is
# slower than the network (the bound of the memory); every file's size and two checksums are
# checked; medians of 3 rounds (target: peak RSS ≤ 64 MB). Servers started here are stopped by pid.
#
# Environment: BENCH_BODY_PARTS (default "big many": which parts run), BENCH_BIG_ROUNDS (5),
# BENCH_MANY_N (100), BENCH_MANY_MB (10), BENCH_MANY_ROUNDS (3).
set -eu
build=${1:?usage: body_memory.sh BUILD [BYTES]}
bytes=${2:-1073741824}
here=$(cd "$(dirname "$0")" && pwd)
parts=${BENCH_BODY_PARTS:-big many}
tmp=$(mktemp -d /tmp/luafetch-bodymem.XXXXXX)
# the big part's files go to tmpfs when it has room for three of them (no disk in the timings)
fast=$tmp
if [ -d /dev/shm ] && [ "$(df -Pk /dev/shm | awk 'NR == 2 { print $4 }')" -gt $((3 * bytes / 1024)) ]; then
  fast=$(mktemp -d /dev/shm/luafetch-bodymem.XXXXXX)
fi
spid=""
npid=""
stop() {                       # what we started, by pid
  local pid
  for pid in $spid $npid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $spid $npid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
  [ "$fast" = "$tmp" ] || rm -rf "$fast"
}
trap stop EXIT

maxrss="$build/bench/maxrss"
need_maxrss() {
  if [ ! -x "$maxrss" ] || [ "$here/maxrss.c" -nt "$maxrss" ]; then
    mkdir -p "$build/bench" && cc -O2 -Wall -o "$maxrss" "$here/maxrss.c"
  fi
}

# nginx_start ROOT: nginx (one worker, sendfile) on a free loopback port serving the files under
# ROOT; sets nport and npid. nginx_stop stops it by pid.
nginx_start() {
  local root=$1 conf=$tmp/nginx
  command -v nginx >/dev/null || { echo "body_memory: nginx is missing (make deps-bench)" >&2; return 1; }
  nport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rm -rf "$conf" && mkdir -p "$conf"
  {
    [ "$(id -u)" = 0 ] && echo "user root;"   # the worker reads files under our 0700 directory
    cat <<CONF
worker_processes 1;
daemon off;
pid $conf/nginx.pid;
error_log $conf/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $conf/body;
    proxy_temp_path $conf/proxy;
    fastcgi_temp_path $conf/fastcgi;
    uwsgi_temp_path $conf/uwsgi;
    scgi_temp_path $conf/scgi;
    server { listen 127.0.0.1:$nport; root $root; }
}
CONF
  } >"$conf/nginx.conf"
  nginx -p "$conf" -e "$conf/error.log" -c "$conf/nginx.conf" &
  npid=$!
  for _ in $(seq 200); do
    kill -0 "$npid" 2>/dev/null || break
    curl -s -o /dev/null "http://127.0.0.1:$nport/" && return 0
    sleep 0.05
  done
  echo "body_memory: nginx did not start:" >&2
  cat "$conf/error.log" >&2
  return 1
}
nginx_stop() {
  [ -n "$npid" ] || return 0
  kill -TERM "$npid" 2>/dev/null || true
  wait "$npid" 2>/dev/null || true
  npid=""
}

# 1 GiB through output= and curl -o (alternately), stream = true with a slow consumer, and an upload.
big() {
  local rounds=${BENCH_BIG_ROUNDS:-5} round mode order t0 t1 status got cpu
  local url out="$fast/big.out" runs="$tmp/big.runs"
  need_maxrss
  mkdir -p "$fast/www"
  head -c "$bytes" /dev/zero >"$fast/www/big.bin"
  nginx_start "$fast/www" || return 1
  url="http://127.0.0.1:$nport/big.bin"
  : >"$runs"
  # The order swaps each round. Each file is checked (its size; in round 1 byte for byte) and
  # deleted before the next run, so written pages do not pile up in memory.
  for round in $(seq "$rounds"); do
    order="output curl"
    [ $((round % 2)) = 0 ] && order="curl output"
    for mode in $order; do
      rm -f "$out"
      t0=$(date +%s.%N)
      set +e
      # in a subshell whose only child is maxrss: `times` then gives the program's CPU time
      (
        if [ "$mode" = curl ]; then
          "$maxrss" "$tmp/rss" curl -s -o "$out" "$url"
        else
          "$maxrss" "$tmp/rss" "$build/luafetch" run "$here/body_memory.lua" "$url" output "$out" >"$tmp/lf.out"
        fi
        rc=$?
        times >"$tmp/times"
        exit "$rc"
      )
      status=$?
      set -e
      t1=$(date +%s.%N)
      got=$(stat -c %s "$out" 2>/dev/null || echo 0)
      if [ "$status" != 0 ] || [ "$got" != "$bytes" ]; then
        echo "big: $mode failed in round $round (exit status $status, $got bytes)" >&2
        return 1
      fi
      if [ "$round" = 1 ] && ! cmp -s "$out" "$fast/www/big.bin"; then
        echo "big: $mode: the file differs from the source" >&2
        return 1
      fi
      rm -f "$out"
      [ "$mode" = curl ] || grep '^RESULT ' "$tmp/lf.out" | sed "s/^RESULT {/RESULT {\"round\": $round, /"
      # user + system seconds of the children: the second line of `times`, as 0m0.190s 0m0.920s
      cpu=$(awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); t += a[1] * 60 + a[2] } print t }' "$tmp/times")
      echo "$mode $round $(awk "BEGIN { print $t1 - $t0 }") $(cat "$tmp/rss") $cpu" >>"$runs"
    done
  done
  # stream = true with a slow consumer, once: its pace is the consumer's
  "$build/luafetch" run "$here/body_memory.lua" "$url" stream
  nginx_stop
  rm -f "$fast/www/big.bin"
  # medians per mode: wall time (process start to exit), MB/s, peak RSS (ru_maxrss)
  python3 - "$runs" "$bytes" <<'PY'
import json, statistics, sys
runs, size = sys.argv[1], int(sys.argv[2])
by = {}
for line in open(runs):
    mode, rnd, secs, kb, cpu = line.split()
    by.setdefault(mode, {})[int(rnd)] = (float(secs), int(kb), float(cpu))
print(f"big: {size / 1048576:g} MiB from nginx (sendfile, tmpfs) to a file on tmpfs, {len(by['output'])} rounds each,"
      " alternating; wall = process start to exit; CPU = user + system; peak RSS = ru_maxrss (target 32 MB)")
print(f"  {'mode':<10} {'median s':>8} {'min s':>6} {'max s':>6} {'MB/s':>6} {'CPU s':>6} {'peak RSS MB':>11}")
med, cpu = {}, {}
for mode, label in (("output", "output="), ("curl", "curl -o")):
    secs = [x[0] for x in by[mode].values()]
    kbs = [x[1] for x in by[mode].values()]
    med[mode] = statistics.median(secs)
    cpu[mode] = statistics.median(x[2] for x in by[mode].values())
    print(f"  {label:<10} {med[mode]:>8.3f} {min(secs):>6.3f} {max(secs):>6.3f} {size / med[mode] / 1e6:>6.0f}"
          f" {cpu[mode]:>6.2f} {statistics.median(kbs) / 1024:>11.1f}")
    print("RESULT " + json.dumps({"mode": f"big {label} median", "bytes": size, "rounds": len(secs),
          "seconds": round(med[mode], 3), "min": min(secs), "max": max(secs),
          "mb_per_s": round(size / med[mode] / 1e6, 1), "cpu_seconds": round(cpu[mode], 3),
          "peak_rss_kb": int(statistics.median(kbs)), "peak_rss_kb_max": max(kbs)}))
per_round = [by["curl"][r][0] / by["output"][r][0] for r in sorted(by["output"]) if r in by["curl"]]
ratio = med["curl"] / med["output"]
print(f"  output= throughput / curl -o: {ratio:.2f}x (of the medians; per round {min(per_round):.2f}x"
      f" .. {max(per_round):.2f}x); target 0.9x: {'holds' if ratio >= 0.9 else 'misses'}")
print(f"  CPU time, curl -o / output=: {cpu['curl'] / cpu['output']:.2f}x (medians)")
print("RESULT " + json.dumps({"mode": "big output/curl", "ratio": round(ratio, 3),
      "per_round": [round(x, 3) for x in per_round], "cpu_ratio": round(cpu["curl"] / cpu["output"], 3)}))
PY
  # a peer that reads a Content-Length body, discards it and answers 200 with the byte count
  python3 -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); buf = b""
while b"\r\n\r\n" not in buf: buf += c.recv(65536)
head, rest = buf.split(b"\r\n\r\n", 1)
n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
got = len(rest)
while got < n:
    d = c.recv(1 << 20)
    if not d: break
    got += len(d)
body = str(got).encode()
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
' >"$tmp/sink.out" &
  spid=$!
  for _ in $(seq 200); do [ -s "$tmp/sink.out" ] && break; sleep 0.05; done
  head -c "$bytes" /dev/zero >"$fast/upload.bin"
  "$build/luafetch" run "$here/body_memory.lua" "http://127.0.0.1:$(head -1 "$tmp/sink.out")/" upload "$fast/upload.bin"
  wait "$spid" 2>/dev/null || true
  spid=""
  rm -f "$fast/upload.bin"
}

# N concurrent downloads of one file under N URLs (?i=1..N) from nginx on loopback.
many() {
  local n=${BENCH_MANY_N:-100} mb=${BENCH_MANY_MB:-10} rounds=${BENCH_MANY_ROUNDS:-3}
  need_maxrss
  local size sum
  mkdir -p "$tmp/www" "$tmp/out"
  head -c $((mb * 1048576)) /dev/urandom >"$tmp/www/data.bin"
  size=$(stat -c %s "$tmp/www/data.bin")
  sum=$(sha256sum <"$tmp/www/data.bin")
  nginx_start "$tmp/www" || return 1
  local url="http://127.0.0.1:$nport/data.bin"
  local curl_args=() i
  for i in $(seq "$n"); do curl_args+=(-o "$tmp/out/$i.bin" "$url?i=$i"); done

  # check(): every file has the size of the source, the first and the last its checksum
  check() {
    local i bad=0
    for i in $(seq "$n"); do
      [ "$(stat -c %s "$tmp/out/$i.bin" 2>/dev/null)" = "$size" ] || bad=$((bad + 1))
    done
    [ "$bad" = 0 ] || { echo "$bad of $n files missing or of the wrong size"; return 1; }
    for i in 1 "$n"; do
      [ "$(sha256sum <"$tmp/out/$i.bin")" = "$sum" ] || { echo "$i.bin: checksum differs"; return 1; }
    done
  }
  local runs="$tmp/many.runs" round mode t0 t1 status why skip="" failed=0
  : >"$runs"
  for round in $(seq "$rounds"); do
    for mode in tasks fetcher curl slow; do
      case " $skip " in *" $mode "*) continue ;; esac
      rm -rf "$tmp/out"; mkdir "$tmp/out"
      t0=$(date +%s.%N)
      set +e
      if [ "$mode" = curl ]; then
        "$maxrss" "$tmp/rss" timeout 120 curl -s --parallel --parallel-immediate --parallel-max "$n" "${curl_args[@]}" 2>"$tmp/err"
      else
        "$maxrss" "$tmp/rss" timeout 120 "$build/luafetch" run "$here/many_downloads.lua" "$url" "$n" "$tmp/out" "$mode" >"$tmp/lf.out" 2>"$tmp/err"
      fi
      status=$?                # 124: timed out (ru_maxrss covers the program under timeout)
      set -e
      t1=$(date +%s.%N)
      why=""
      # the error itself, not the fetcher's summary line logged before it
      [ "$status" = 0 ] || why="exit status $status: $( (grep -m1 'error' "$tmp/err" || grep -m1 . "$tmp/err") | cut -c1-300)"
      [ -n "$why" ] || why=$(check) || true
      if [ -n "$why" ]; then
        echo "many: $mode failed (no further rounds): $why" >&2
        echo "RESULT {\"mode\": \"many $mode\", \"round\": $round, \"failed\": $(python3 -c 'import json, sys; print(json.dumps(sys.argv[1]))' "$why")}"
        skip="$skip $mode"
        failed=1
        continue
      fi
      [ "$mode" = curl ] || grep '^RESULT ' "$tmp/lf.out" | sed "s/^RESULT {/RESULT {\"round\": $round, /"
      echo "$mode $round $(awk "BEGIN { print $t1 - $t0 }") $(cat "$tmp/rss")" >>"$runs"
    done
  done
  rm -rf "$tmp/out"
  nginx_stop
  # medians per mode: wall time (process start to exit), aggregate MB/s, peak RSS (ru_maxrss)
  python3 - "$runs" "$n" "$size" <<'PY'
import json, statistics, sys
runs, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
by = {}
for line in open(runs):
    mode, rnd, secs, kb = line.split()
    by.setdefault(mode, []).append((float(secs), int(kb)))
print(f"many: {n} concurrent downloads of {size / 1048576:g} MiB to files (medians of the rounds; peak RSS target 64 MB;"
      " slow = tasks whose consumer sleeps, the bound)")
print(f"  {'mode':<8} {'rounds':>6} {'wall s':>7} {'MB/s':>7} {'peak RSS MB':>11}")
for mode in ("tasks", "fetcher", "curl", "slow"):
    if mode not in by:
        print(f"  {mode:<8} failed")
        continue
    secs = statistics.median(s for s, _ in by[mode])
    kb = statistics.median(k for _, k in by[mode])
    print(f"  {mode:<8} {len(by[mode]):>6} {secs:>7.2f} {n * size / secs / 1e6:>7.0f} {kb / 1024:>11.1f}")
    print("RESULT " + json.dumps({"mode": f"many {mode} median", "n": n, "bytes_each": size,
          "rounds": len(by[mode]), "seconds": round(secs, 3), "mb_per_s": round(n * size / secs / 1e6, 1),
          "peak_rss_kb": int(kb), "each": [{"seconds": s, "peak_rss_kb": k} for s, k in by[mode]]}))
if "curl" in by:
    curl = statistics.median(s for s, _ in by["curl"])
    for mode in ("tasks", "fetcher"):
        if mode in by:
            print(f"  {mode} throughput / curl --parallel: {curl / statistics.median(s for s, _ in by[mode]):.2f}x")
PY
  return "$failed"
}

status=0
for part in $parts; do
  case $part in
    big) big ;;
    many) many || status=1 ;;
    *) echo "body_memory: unknown part $part" >&2; status=2 ;;
  esac
done
exit "$status"
