#!/usr/bin/env bash
# body_memory.sh BUILD [BYTES] — a 1 GiB body (default) from the fixture server taken with
# output= and with stream = true and a slow consumer, and the same size uploaded from a file
# (body = file) to a small discarding peer; peak RSS of each (target: ≤ 32 MB), and `curl -o` on
# the same URL for the throughput ratio. Then many downloads at once (bench/many_downloads.lua):
# 100 concurrent 10 MB downloads from nginx to files with output=, from 100 tasks and through
# the fetcher, beside `curl --parallel` on the same URLs, and from 100 tasks whose consumer is
# slower than the network (the bound of the memory); every file's size and two checksums are
# checked; medians of 3 rounds (target: peak RSS ≤ 64 MB). Servers started here are stopped by pid.
#
# Environment: BENCH_BODY_PARTS (default "big many": which parts run), BENCH_MANY_N (100),
# BENCH_MANY_MB (10), BENCH_MANY_ROUNDS (3).
set -eu
build=${1:?usage: body_memory.sh BUILD [BYTES]}
bytes=${2:-1073741824}
here=$(cd "$(dirname "$0")" && pwd)
parts=${BENCH_BODY_PARTS:-big many}
tmp=$(mktemp -d /tmp/luafetch-bodymem.XXXXXX)
spid=""
npid=""
stop() {                       # what we started, by pid
  local pid
  for pid in $spid $npid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $spid $npid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap stop EXIT

big() {
python3 "$here/../tests/fixtures/server.py" >"$tmp/server.out" 2>/dev/null &
spid=$!
for _ in $(seq 200); do grep -q '^PORT ' "$tmp/server.out" && break; sleep 0.05; done
url="http://127.0.0.1:$(awk '/^PORT /{print $2}' "$tmp/server.out")/bytes/$bytes"
for mode in output stream; do
  "$build/luafetch" run "$here/body_memory.lua" "$url" "$mode" "$tmp/body.out"
done
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
for _ in $(seq 200); do [ -s "$tmp/sink.out" ] && break; sleep 0.05; done
head -c "$bytes" /dev/zero >"$tmp/upload.bin"
"$build/luafetch" run "$here/body_memory.lua" "http://127.0.0.1:$(head -1 "$tmp/sink.out")/" upload "$tmp/upload.bin"
t0=$(date +%s.%N)
curl -s -o "$tmp/curl.out" "$url"
t1=$(date +%s.%N)
echo "RESULT {\"mode\": \"curl -o\", \"bytes\": $(stat -c %s "$tmp/curl.out"), \"seconds\": $(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")}"
rm -f "$tmp/curl.out" "$tmp/upload.bin"
}

# N concurrent downloads of one file under N URLs (?i=1..N) from nginx on loopback.
many() {
  local n=${BENCH_MANY_N:-100} mb=${BENCH_MANY_MB:-10} rounds=${BENCH_MANY_ROUNDS:-3}
  command -v nginx >/dev/null || { echo "body_memory: nginx is missing (make deps-bench): many downloads skipped" >&2; return 1; }
  local maxrss="$build/bench/maxrss"
  if [ ! -x "$maxrss" ] || [ "$here/maxrss.c" -nt "$maxrss" ]; then
    mkdir -p "$build/bench" && cc -O2 -Wall -o "$maxrss" "$here/maxrss.c"
  fi
  local port size sum
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$tmp/www" "$tmp/nginx" "$tmp/out"
  head -c $((mb * 1048576)) /dev/urandom >"$tmp/www/data.bin"
  size=$(stat -c %s "$tmp/www/data.bin")
  sum=$(sha256sum <"$tmp/www/data.bin")
  {
    [ "$(id -u)" = 0 ] && echo "user root;"   # the worker reads files under our 0700 directory
    cat <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server { listen 127.0.0.1:$port; root $tmp/www; }
}
CONF
  } >"$tmp/nginx/nginx.conf"
  nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
  npid=$!
  local url="http://127.0.0.1:$port/data.bin"
  for _ in $(seq 200); do curl -s -o /dev/null "$url" && break; sleep 0.05; done
  curl -s -o /dev/null "$url" || { echo "body_memory: nginx did not start:" >&2; cat "$tmp/nginx/error.log" >&2; return 1; }
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
  kill -TERM "$npid" 2>/dev/null || true
  wait "$npid" 2>/dev/null || true
  npid=""
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
