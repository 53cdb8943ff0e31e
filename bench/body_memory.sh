#!/usr/bin/env bash
# body_memory.sh BUILD [BYTES] — a 1 GiB body (default) from the fixture server taken with
# output= and with stream = true and a slow consumer, and the same size uploaded from a file
# (body = file) to a small discarding peer; peak RSS of each (target: ≤ 32 MB), and `curl -o` on
# the same URL for the throughput ratio. Servers started here are stopped by pid.
set -eu
build=${1:?usage: body_memory.sh BUILD [BYTES]}
bytes=${2:-1073741824}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/luafetch-bodymem.XXXXXX)
python3 "$here/../tests/fixtures/server.py" >"$tmp/server.out" 2>/dev/null &
spid=$!
trap 'kill $spid 2>/dev/null; rm -rf "$tmp"' EXIT
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
echo "RESULT {\"mode\": \"curl -o\", \"bytes\": $(stat -c %s "$tmp/curl.out"), \"seconds\": $(echo "$t1 - $t0" | bc)}"
