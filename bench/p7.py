"""bench/p7.py — P7, the shared frontier on Redis Streams (lua/queue.lua), run by bench/harness.py.

Starts its own redis-server (no persistence) on a free loopback port and stops it by pid. Then:
  1. overhead: the same N URLs through one worker via Redis (bench/luafetch_queue.lua redis: the
     stream is filled beforehand, untimed) and through f:each from a local list (… local), with
     the same fetcher settings, alternately, BENCH_ROUNDS rounds but at least 7 (a round takes about a
     second, and one round's ratio scatters by ±10% on a shared 2-core machine); the median of the
     per-round ratios of the fetch phase's time is the overhead. Target ≤ 15%.
  2. Redis round trips per URL (the worker's two connections) and Redis commands per URL
     (INFO commandstats, commands run inside the scripts included).
  3. scaling: 1, 2 and 4 scripts/worker.lua processes on one stream of N URLs: throughput (N over
     the wall time from start to the last exit) and Redis CPU (its utime + stime over that time),
     and what one Redis core could feed at that CPU cost per URL.
Standard library only.
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIN_ROUNDS = 7  # rounds of the overhead comparison at least (see above)


# --------------------------------------------------------------------------- a minimal RESP client

class Redis:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)
            return data[:-2].decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("bad reply: %r" % line)

    def close(self):
        self.f.close()
        self.sock.close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_redis(tmp):
    """redis-server on a free port (a clash: another port); (Popen, port, dir)."""
    d = tempfile.mkdtemp(prefix="p7-redis.", dir=tmp)
    for _ in range(5):
        port = free_port()
        p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", d, "--logfile", os.path.join(d, "redis.log")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and p.poll() is None:
            try:
                r = Redis(port)
                r.call("PING")
                r.close()
                return p, port, d
            except OSError:
                time.sleep(0.05)
        p.kill()
        p.wait()
    raise RuntimeError("redis-server did not start (Debian redis-server: make deps)")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK      # utime, stime


def commands_total(r):
    total = 0
    for line in r.call("INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_") and "calls=" in line:
            name = line.split(":", 1)[0]
            if name in ("cmdstat_info", "cmdstat_config|resetstat"):
                continue
            total += int(line.split("calls=", 1)[1].split(",", 1)[0])
    return total


# --------------------------------------------------------------------------- the runs

def run(h):
    """h: the harness module (LUAFETCH, HTTP, ROUNDS, TMP, scaled, run_process, parse_result, log, tail)."""
    n = h.scaled(20000, 1000)
    conc = 100
    w = dict(id="P7", title="URLs through one worker via Redis Streams vs f:each from a local list, concurrency 100",
             n=n, conc=conc, target="Redis overhead ≤ 15% (same run)")
    res = {"workload": w}
    if not shutil.which("redis-server"):
        res["skipped"] = "redis-server is not installed"
        h.log("\n== P7: skipped: redis-server is not installed")
        return res
    h.log(f"\n== P7: {n} URLs through one worker via Redis vs f:each from a local list, concurrency {conc}")
    prefix = h.HTTP + "/json?i="
    proc, port, rdir = start_redis(h.TMP)
    url = f"redis://127.0.0.1:{port}"
    r = Redis(port)
    bench = "bench/luafetch_queue.lua"
    env = dict(os.environ, LOG_LEVEL="WARN")
    try:
        def fill(stream):
            r.call("DEL", stream, stream + ":results", stream + ":dead")
            rc, _, _, out, err, _ = h.run_process([h.LUAFETCH, "run", bench, "enqueue", url, stream, prefix, str(n)],
                                                  120, env)
            got = h.parse_result(out)
            if rc != 0 or not got or got["n"] != n:
                raise RuntimeError("enqueue failed: " + h.tail(err + out))

        def one(kind):
            if kind == "local":
                argv = [h.LUAFETCH, "run", bench, "local", prefix, str(n), str(conc)]
            else:
                fill("p7")
                r.call("CONFIG", "RESETSTAT")
                cpu0 = cpu_seconds(proc.pid)
                argv = [h.LUAFETCH, "run", bench, "redis", url, "p7", str(n), str(conc)]
            rc, wall, rss, out, err, _ = h.run_process(argv, max(120, n / 500), env)
            got = h.parse_result(out)
            if rc != 0 or not got or got.get("fail"):
                raise RuntimeError(f"{kind} run failed (exit {rc}): " + h.tail(err + out))
            if kind == "redis":
                got["redis_commands"] = commands_total(r)
                got["redis_cpu"] = cpu_seconds(proc.pid) - cpu0
            got["wall"], got["rss_mb"] = wall, rss / 1024
            return got

        rounds = []
        for i in range(max(h.ROUNDS, MIN_ROUNDS)):
            order = ["local", "redis"] if i % 2 == 0 else ["redis", "local"]
            got = {k: one(k) for k in order}
            ratio = got["redis"]["elapsed"] / got["local"]["elapsed"]
            rounds.append(dict(local=got["local"], redis=got["redis"], ratio=ratio))
            h.log(f"   round {i + 1}: local {got['local']['elapsed']:.3f} s, via Redis {got['redis']['elapsed']:.3f} s "
                  f"(× {ratio:.2f}); CPU per URL: worker {1e6 * got['local']['cpu'] / n:.1f} → "
                  f"{1e6 * got['redis']['cpu'] / n:.1f} µs, Redis {1e6 * got['redis']['redis_cpu'] / n:.1f} µs; "
                  f"{got['redis']['round_trips'] / n:.3f} round trips and "
                  f"{got['redis']['redis_commands'] / n:.2f} Redis commands per URL")
        ratio = statistics.median(x["ratio"] for x in rounds)
        overhead = ratio - 1
        rt = statistics.median(x["redis"]["round_trips"] for x in rounds) / n
        cmds = statistics.median(x["redis"]["redis_commands"] for x in rounds) / n
        local_rate = statistics.median(n / x["local"]["elapsed"] for x in rounds)
        redis_rate = statistics.median(n / x["redis"]["elapsed"] for x in rounds)
        cpu_local = statistics.median(x["local"]["cpu"] for x in rounds) / n * 1e6
        cpu_worker = statistics.median(x["redis"]["cpu"] for x in rounds) / n * 1e6
        cpu_redis = statistics.median(x["redis"]["redis_cpu"] for x in rounds) / n * 1e6
        res.update(rounds=rounds, ratio=ratio, overhead=overhead, round_trips_per_url=rt, commands_per_url=cmds,
                   local_rate=local_rate, redis_rate=redis_rate, cpu_us_local=cpu_local, cpu_us_worker=cpu_worker,
                   cpu_us_redis=cpu_redis)

        # scaling: k worker processes on one stream
        scaling = []
        for k in (1, 2, 4):
            fill("p7s")
            cpu0 = cpu_seconds(proc.pid)
            t0 = time.monotonic()
            procs = [subprocess.Popen([h.LUAFETCH, "run", "scripts/worker.lua", "--redis", url, "--stream", "p7s",
                                       "--consumer", f"bench{i}", "--drain", "--concurrency", str(conc)],
                                      cwd=h.ROOT, env=dict(env, MAX_RETRIES="0"), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
                     for i in range(k)]
            outs = []
            for p in procs:
                try:
                    out, _ = p.communicate(timeout=max(120, n / 200))
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    out, _ = p.communicate()
                outs.append(out.decode(errors="replace"))
            wall = time.monotonic() - t0
            cpu = cpu_seconds(proc.pid) - cpu0
            results = r.call("XLEN", "p7s:results")
            if results != n or any(p.returncode != 0 for p in procs):
                raise RuntimeError(f"{k} workers: {results} results of {n}, exits "
                                   f"{[p.returncode for p in procs]}: " + h.tail("".join(outs)))
            rate = n / wall
            row = dict(workers=k, wall=wall, rate=rate, redis_cpu_s=cpu, redis_cpu_pct=100 * cpu / wall,
                       redis_us_per_url=1e6 * cpu / n,
                       redis_feeds=(n / cpu) if cpu > 0 else None)
            scaling.append(row)
            h.log(f"   {k} worker(s): {rate:.0f} URLs/s ({wall:.2f} s), Redis CPU {row['redis_cpu_pct']:.0f}% "
                  f"({row['redis_us_per_url']:.1f} µs per URL)")
        res["scaling"] = scaling
        feeds = [s["redis_feeds"] for s in scaling if s["redis_feeds"]]
        res["redis_feeds"] = statistics.median(feeds) if feeds else None
        res["holds"] = overhead <= 0.15
        res["verdict"] = (f"{ratio:.2f}× the local run's time, overhead {overhead * 100:.0f}% (want ≤ 15%); "
                          f"CPU per URL {cpu_local:.1f} µs → {cpu_worker:.1f} µs in the worker + {cpu_redis:.1f} µs "
                          f"in Redis; {rt:.3f} Redis round trips and {cmds:.2f} Redis commands per URL; "
                          + ", ".join(f"{s['workers']} worker{'s' if s['workers'] > 1 else ''} {s['rate']:.0f}/s "
                                      f"(Redis CPU {s['redis_cpu_pct']:.0f}%)" for s in scaling))
        h.log(f"P7   target {w['target']}: {'HOLDS' if res['holds'] else 'MISSES'} — {res['verdict']}")
    except Exception as e:            # noqa: BLE001 — reported in the docs, the harness goes on
        res["error"] = str(e)
        res["holds"] = False
        h.log("   FAILED: " + str(e))
    finally:
        r.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(rdir, ignore_errors=True)
    return res


def doc_section(report):
    """The P7 section of docs/BENCHMARKS.md (markdown lines)."""
    p7 = next((x for x in report["workloads"] if x["workload"]["id"] == "P7"), None)
    if not p7:
        return []
    L = ["## P7: the shared frontier on Redis Streams\n"]
    if p7.get("skipped"):
        return L + [f"Skipped: {p7['skipped']}.\n"]
    if p7.get("error"):
        L.append(f"Failed: {p7['error']}\n")
    if p7.get("rounds"):
        w = p7["workload"]
        L.append(f"{w['n']} URLs (`/json?i=`) through `fetcher.new{{max_concurrent={w['conc']}, max_retries=0}}`: "
                 "from a local list (`f:each(iterator, on_result)`) and, in the same round, through one worker "
                 "reading a Redis stream (`f:each(q:source(), q:sink())`, the stream filled beforehand), "
                 "`bench/luafetch_queue.lua`; redis-server 7 on loopback, no persistence.\n")
        n = w["n"]
        L.append("| round | local list s | via Redis s | × | worker CPU µs/URL, local → Redis | Redis CPU µs/URL |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for i, x in enumerate(p7["rounds"]):
            L.append(f"| {i + 1} | {x['local']['elapsed']:.3f} | {x['redis']['elapsed']:.3f} | {x['ratio']:.2f} | "
                     f"{1e6 * x['local']['cpu'] / n:.1f} → {1e6 * x['redis']['cpu'] / n:.1f} | "
                     f"{1e6 * x['redis']['redis_cpu'] / n:.1f} |")
        L.append("")
        L.append(f"Median of {len(p7['rounds'])} rounds: {p7['ratio']:.2f}× (overhead {p7['overhead'] * 100:.0f}%, target ≤ 15%: "
                 f"{'holds' if p7.get('holds') else 'misses'}); {p7['local_rate']:.0f} vs {p7['redis_rate']:.0f} URLs/s; "
                 f"**{p7['round_trips_per_url']:.3f} Redis round trips per URL** (reads topping the ready "
                 "entries up to 10 × the fetcher's concurrency, results settled in groups by one script call) and "
                 f"**{p7['commands_per_url']:.2f} Redis commands per URL** (INFO commandstats, those run "
                 "inside the scripts included). The frontier costs CPU per URL: "
                 f"{p7['cpu_us_local']:.1f} µs → {p7['cpu_us_worker']:.1f} µs in the worker and "
                 f"{p7['cpu_us_redis']:.1f} µs in Redis, against nginx's smallest response (a URL costs the "
                 "fetcher least here); on two cores shared by nginx, Redis, the worker and other jobs that "
                 "CPU is the time lost. Against sites that take milliseconds per URL it is noise.\n")
    if p7.get("scaling"):
        L.append("Workers on one stream (`scripts/worker.lua --drain`, each at concurrency 100), this machine:\n")
        L.append("| workers | URLs/s | wall s | Redis CPU | Redis µs per URL | URLs/s one Redis core could feed |")
        L.append("|---:|---:|---:|---:|---:|---:|")
        for s in p7["scaling"]:
            feeds = f"{s['redis_feeds']:.0f}" if s.get("redis_feeds") else "—"
            L.append(f"| {s['workers']} | {s['rate']:.0f} | {s['wall']:.2f} | {s['redis_cpu_pct']:.0f}% | "
                     f"{s['redis_us_per_url']:.1f} | {feeds} |")
        L.append("")
        L.append("On two cores shared by nginx, Redis and the workers, more workers do not add throughput here; "
                 "the last column is the frontier's own limit (docs/scale-out.md works it out for many hosts).\n")
    return L
