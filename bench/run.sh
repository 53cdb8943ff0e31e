#!/usr/bin/env bash
# bench/run.sh BUILD_DIR — the benchmark harness (`make bench`): starts nginx on loopback ports chosen
# now, builds the libcurl peer, and hands over to bench/harness.py, which runs luafetch and the peers
# alternately and writes bench/results/*.json, docs/BENCHMARKS.md and docs/bench.png.
# Everything it starts is stopped by pid when it ends, fails or is interrupted.
#
# Environment: BENCH_SCALE (default 1: multiplies every request count), BENCH_ROUNDS (default 3),
# BENCH_ONLY (e.g. "P1,P3": run only these workloads), BENCH_TLS_PROTOCOLS (default "TLSv1.2",
# which is all mbedTLS 2.28 speaks: every client then negotiates the same protocol),
# BENCH_NO_DOCS=1 (do not rewrite docs/BENCHMARKS.md and docs/bench.png).
set -euo pipefail

build=${1:?usage: bench/run.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=$(cd "$build" && pwd)
luafetch="$build/luafetch"
[ -x "$luafetch" ] || { echo "bench: $luafetch is missing: run 'make all' first" >&2; exit 1; }
command -v nginx >/dev/null || { echo "bench: nginx is missing (Debian nginx-light): run 'make deps-bench'" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/luafetch-bench.XXXXXX")
nginx_pid=""
driver_pid=""

stop() {                       # stop what we started, by pid; called on every exit path
    local pid
    for pid in $driver_pid $nginx_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $driver_pid $nginx_pid; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            # a master that will not stop: kill its workers, then itself
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    nginx_pid=""; driver_pid=""
    rm -rf "$tmp"
}
trap stop EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM HUP

# 10k concurrent connections (P3) need descriptors on both sides.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=65536
if [ "$nofile" -lt 10100 ]; then
    echo "bench: note: the descriptor limit is $nofile; P3 needs about 10100 (it will be cut to fit)" >&2
fi

# Ports: ask the kernel for free ones (bind port 0), then hand them to nginx.
read -r http_port https_port resume_port h2_port < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)

certs="$build/bench/certs"
mkdir -p "$build/bench"
bash tests/fixtures/certs.sh "$certs"

echo_mod=/usr/lib/nginx/modules/ngx_http_echo_module.so
body='{"id":1,"name":"luafetch benchmark","tags":["bench","json","small"],"ok":true,"value":3.14159265}'
mkdir -p "$tmp/nginx"
{
    [ -f "$echo_mod" ] && echo "load_module $echo_mod;"
    [ "$(id -u)" = 0 ] && echo "user root;"
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile $nofile;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections $nofile; multi_accept on; }
http {
    access_log off;
    default_type application/json;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$http_port backlog=4096;
        location = /json { return 200 '$body'; }
EOF
    [ -f "$echo_mod" ] && echo "        location = /delay { echo_sleep 1; echo '$body'; }"
    cat <<EOF
    }
    server {
        listen 127.0.0.1:$https_port ssl backlog=4096;
        ssl_certificate $certs/good.pem;
        ssl_certificate_key $certs/good.key;
        ssl_protocols ${BENCH_TLS_PROTOCOLS:-TLSv1.2};
        # P4 measures full handshakes: no session resumption for anyone
        ssl_session_cache off;
        ssl_session_tickets off;
        location = /json { return 200 '$body'; }
    }
    server {                   # the same, with session resumption (P4r)
        listen 127.0.0.1:$resume_port ssl backlog=4096;
        ssl_certificate $certs/good.pem;
        ssl_certificate_key $certs/good.key;
        ssl_protocols ${BENCH_TLS_PROTOCOLS:-TLSv1.2};
        ssl_session_cache shared:bench:10m;
        ssl_session_tickets on;
        location = /json { return 200 '$body'; }
    }
    server {                   # the same over HTTP/2 (P6): ALPN h2
        listen 127.0.0.1:$h2_port ssl http2 backlog=4096;
        ssl_certificate $certs/good.pem;
        ssl_certificate_key $certs/good.key;
        ssl_protocols ${BENCH_TLS_PROTOCOLS:-TLSv1.2};
        location = /json { return 200 '$body'; }
    }
}
EOF
} > "$tmp/nginx/nginx.conf"

nginx -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" &
nginx_pid=$!

python3 - "$http_port" "$https_port" "$resume_port" "$h2_port" <<'EOF' || { echo "bench: nginx did not start:" >&2; cat "$tmp/nginx/error.log" >&2; exit 1; }
import socket, sys, time
deadline = time.monotonic() + 10
for port in map(int, sys.argv[1:]):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(1)
            time.sleep(0.05)
EOF
kill -0 "$nginx_pid" 2>/dev/null || { echo "bench: nginx exited:" >&2; cat "$tmp/nginx/error.log" >&2; exit 1; }
echo "bench: nginx $(nginx -v 2>&1 | sed 's|.*/||') (pid $nginx_pid) on 127.0.0.1:$http_port (http), :$https_port (https), :$resume_port (https with resumption), :$h2_port (https, h2)"

# The libcurl peer, built here so a fresh machine needs nothing but the Debian packages.
curl_bin="$build/bench/curl_multi"
if [ ! -x "$curl_bin" ] || [ bench/peers/curl_multi.c -nt "$curl_bin" ]; then
    if ! cc -O2 -Wall -o "$curl_bin" bench/peers/curl_multi.c -lcurl 2>"$tmp/curl_build.log"; then
        echo "bench: could not build the libcurl peer (libcurl4-openssl-dev?):" >&2
        cat "$tmp/curl_build.log" >&2
        rm -f "$curl_bin"
    fi
fi

# The libcurl peer of P6 (HTTP/2, CURLPIPE_MULTIPLEX).
curl_h2_bin="$build/bench/curl_multi_h2"
if [ ! -x "$curl_h2_bin" ] || [ bench/peers/curl_multi_h2.c -nt "$curl_h2_bin" ]; then
    if ! cc -O2 -Wall -o "$curl_h2_bin" bench/peers/curl_multi_h2.c -lcurl 2>"$tmp/curl_h2_build.log"; then
        echo "bench: could not build the libcurl h2 peer:" >&2
        cat "$tmp/curl_h2_build.log" >&2
        rm -f "$curl_h2_bin"
    fi
fi

# Peak RSS of each run, measured from a small parent (see bench/maxrss.c).
if [ ! -x "$build/bench/maxrss" ] || [ bench/maxrss.c -nt "$build/bench/maxrss" ]; then
    cc -O2 -Wall -o "$build/bench/maxrss" bench/maxrss.c || { echo "bench: could not build bench/maxrss.c" >&2; exit 1; }
fi

export BENCH_BUILD="$build" BENCH_HTTP_PORT="$http_port" BENCH_HTTPS_PORT="$https_port" BENCH_RESUME_PORT="$resume_port" BENCH_H2_PORT="$h2_port" \
       BENCH_CERTS="$certs" BENCH_TMP="$tmp" BENCH_NOFILE="$nofile" \
       BENCH_ECHO=$([ -f "$echo_mod" ] && echo 1 || echo 0) BENCH_NGINX_PID="$nginx_pid"
python3 bench/harness.py &
driver_pid=$!
set +e
wait "$driver_pid"
status=$?
set -e
driver_pid=""
if ! kill -0 "$nginx_pid" 2>/dev/null; then
    echo "bench: nginx died during the run:" >&2
    tail -n 20 "$tmp/nginx/error.log" >&2
    status=1
fi
# Bodies as streams: peak RSS of 1 GiB downloads and uploads against curl (its own servers); its
# figures are kept by hand in bench/BODIES.md, which the harness copies into docs/BENCHMARKS.md.
if [ -z "${BENCH_ONLY:-}" ]; then
    bash bench/body_memory.sh "$build" || status=1
fi
# The ceiling of P4: mbedTLS's public-key operations per second on one core, beside OpenSSL's
# (docs/tls.md, bench/NOTES.md).
if [ -z "${BENCH_ONLY:-}" ]; then
    if cc -O2 -Wall -o "$build/bench/tls_ceiling" bench/tls_ceiling.c -lmbedcrypto; then
        "$build/bench/tls_ceiling" 1 || status=1
        openssl speed -seconds 1 ecdsap256 ecdhp256 ecdhx25519 2>/dev/null | tail -5 || true
    else
        echo "bench: could not build bench/tls_ceiling.c" >&2
        status=1
    fi
fi
exit "$status"
