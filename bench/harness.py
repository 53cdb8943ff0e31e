"""bench/harness.py — the benchmark driver, started by bench/run.sh once nginx is up.

Runs luafetch and every available peer on each workload, alternately, BENCH_ROUNDS rounds (the order
rotates each round), bounds every run by a timeout, kills each run's process group when it ends,
and reports medians and luafetch/peer ratios taken within a round. Writes bench/results/latest.json
(plus a timestamped copy), docs/BENCHMARKS.md and docs/bench.png (gnuplot), and counts instructions
per request on P1 with callgrind. Standard library only.

Every program takes `PREFIX N CONC REUSE CAFILE`, fetches PREFIX1 .. PREFIXN, keeps a per-URL result,
and prints one line `RESULT {"n":..,"ok":..,"fail":..,"elapsed":..,...}`; `elapsed` is its own timing
of the fetch phase (start-up excluded), which the ratios use. Process wall time and peak RSS
(ru_maxrss, measured by bench/maxrss.c like /usr/bin/time's %M) are recorded too.
"""
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import p7                                     # bench/p7.py: the shared frontier on Redis Streams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build"))
HTTP_PORT = int(os.environ.get("BENCH_HTTP_PORT", "0"))
HTTPS_PORT = int(os.environ.get("BENCH_HTTPS_PORT", "0"))
RESUME_PORT = int(os.environ.get("BENCH_RESUME_PORT", "0"))
H2_PORT = int(os.environ.get("BENCH_H2_PORT", "0"))
CERTS = os.environ.get("BENCH_CERTS", "")
TMP = os.environ.get("BENCH_TMP") or tempfile.mkdtemp(prefix="luafetch-bench-docs.")
NOFILE = int(os.environ.get("BENCH_NOFILE", "1024"))
HAVE_ECHO = os.environ.get("BENCH_ECHO") == "1"
NGINX_PID = int(os.environ.get("BENCH_NGINX_PID", "0"))
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
ONLY = {w.strip().upper() for w in os.environ.get("BENCH_ONLY", "").split(",") if w.strip()}
WRITE_DOCS = os.environ.get("BENCH_NO_DOCS", "") != "1"
CA = os.path.join(CERTS, "ca.pem")
LUAFETCH = os.path.join(BUILD, "luafetch")
CURL_MULTI = os.path.join(BUILD, "bench", "curl_multi")
CURL_MULTI_H2 = os.path.join(BUILD, "bench", "curl_multi_h2")
MAXRSS = os.path.join(BUILD, "bench", "maxrss")

HTTP = f"http://127.0.0.1:{HTTP_PORT}"
HTTPS = f"https://127.0.0.1:{HTTPS_PORT}"
HTTPS_RESUME = f"https://127.0.0.1:{RESUME_PORT}"
HTTPS_H2 = f"https://127.0.0.1:{H2_PORT}"


def scaled(n, floor=10):
    return max(floor, int(round(n * SCALE)))


def log(msg=""):
    print(msg, flush=True)


# --------------------------------------------------------------------------- process handling

current = {"pgid": None}


def on_term(signum, _frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGHUP, on_term)


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_process(argv, timeout, env=None):
    """Run argv in its own process group; return rc, wall seconds, peak RSS (KiB), stdout, stderr.
    The group is killed at the timeout, and in any case once the process ends (no stragglers)."""
    out = tempfile.TemporaryFile(dir=TMP)
    err = tempfile.TemporaryFile(dir=TMP)
    rss_file = os.path.join(TMP, "maxrss.out")
    if os.path.exists(rss_file):
        os.unlink(rss_file)
    t0 = time.monotonic()
    p = subprocess.Popen([MAXRSS, rss_file] + argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                         env=env, start_new_session=True)
    current["pgid"] = p.pid
    timed_out = threading.Event()

    def expire():
        timed_out.set()
        kill_group(p.pid)

    timer = threading.Timer(timeout, expire)
    timer.start()
    try:
        _, status = os.waitpid(p.pid, 0)
    finally:
        timer.cancel()
        kill_group(p.pid)
        current["pgid"] = None
    wall = time.monotonic() - t0
    try:
        with open(rss_file) as f:
            maxrss = int(f.read())
    except (OSError, ValueError):
        maxrss = 0                            # killed before it could report
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout = out.read().decode(errors="replace")
    stderr = err.read().decode(errors="replace")
    out.close()
    err.close()
    if timed_out.is_set():
        stderr += f"\n[harness: killed after the {timeout:.0f} s time limit]"
    return p.returncode, wall, maxrss, stdout, stderr, timed_out.is_set()


def parse_result(stdout):
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            try:
                return json.loads(line[7:])
            except ValueError:
                return None
    return None


def tail(text, lines=4):
    text = text.strip()
    return " | ".join(text.splitlines()[-lines:])[-400:] if text else ""


# --------------------------------------------------------------------------- programs

def find_aiohttp_python():
    for py in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if py and os.path.exists(py):
            r = subprocess.run([py, "-c", "import aiohttp"], capture_output=True)
            if r.returncode == 0:
                return py
    return None


def check_node():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        return None, "node is not installed (Debian nodejs)"
    r = subprocess.run([node, "-e", "process.stdout.write(process.versions.node + ' ' + typeof fetch)"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None, "node does not run: " + tail(r.stderr)
    version, kind = r.stdout.split()
    if kind != "function":
        return None, f"node {version} has no built-in fetch (needs 18 or later)"
    return node, f"node {version}"


class Program:
    def __init__(self, name, argv_of, why_not=None, note=""):
        self.name = name
        self.argv_of = argv_of      # (workload) -> argv
        self.why_not = why_not      # reason it cannot run here, or None
        self.note = note


def std_args(w):
    return [w["prefix"], str(w["n"]), str(w["conc"]), "1" if w["reuse"] else "0", CA if w["tls"] else "-"]


def make_programs():
    progs = {}
    progs["luafetch"] = Program("luafetch", lambda w: [LUAFETCH, "run", "bench/luafetch_get.lua"] + std_args(w),
                                note="bench/luafetch_get.lua: worker tasks + http.get")
    progs["luafetch-fetcher"] = Program(
        "luafetch-fetcher", lambda w: [LUAFETCH, "run", "bench/luafetch_fetcher.lua"] + std_args(w),
        note="bench/luafetch_fetcher.lua: fetcher.new():fetch_urls")
    progs["curl_multi"] = Program(
        "curl_multi", lambda w: [CURL_MULTI] + std_args(w),
        None if os.access(CURL_MULTI, os.X_OK) else "the libcurl peer was not built (see above)",
        note="bench/peers/curl_multi.c, libcurl " + (subprocess.run(["curl-config", "--version"], capture_output=True,
                                                                    text=True).stdout.split()[-1]
                                                     if shutil.which("curl-config") else "?") + " (OpenSSL)")
    py = find_aiohttp_python()
    aio_ver = ""
    if py:
        aio_ver = subprocess.run([py, "-c", "import aiohttp,sys; print(aiohttp.__version__, sys.version.split()[0])"],
                                 capture_output=True, text=True).stdout.split()
    progs["aiohttp"] = Program(
        "aiohttp", lambda w: [py, "bench/peers/aiohttp_peer.py"] + std_args(w),
        None if py else "no python3 with aiohttp (Debian python3-aiohttp)",
        note=f"bench/peers/aiohttp_peer.py, aiohttp {aio_ver[0]} on Python {aio_ver[1]} ({py})" if py else "")
    node, node_info = check_node()
    progs["node"] = Program("node", lambda w: [node, "bench/peers/node_fetch.mjs"] + std_args(w),
                            None if node else node_info, note=f"bench/peers/node_fetch.mjs, {node_info}")
    lua52 = shutil.which("lua5.2")
    why = None
    if not lua52:
        why = "lua5.2 is not installed"
    else:
        r = subprocess.run([lua52, "-e", 'require "http.client"; require "cqueues"'], capture_output=True, text=True)
        if r.returncode != 0:
            why = "lua-http on lua5.2 does not load: " + tail(r.stderr, 1)
    progs["lua-http"] = Program("lua-http", lambda w: [lua52, "bench/peers/luahttp_peer.lua"] + std_args(w), why,
                                note="bench/peers/luahttp_peer.lua, lua-http 0.4 on cqueues, Lua 5.2")
    progs["curl_multi_h2"] = Program(
        "curl_multi_h2", lambda w: [CURL_MULTI_H2] + std_args(w),
        None if os.access(CURL_MULTI_H2, os.X_OK) else "the libcurl h2 peer was not built (see above)",
        note="bench/peers/curl_multi_h2.c, libcurl multi with CURLPIPE_MULTIPLEX over h2 (P6)")
    h2load = shutil.which("h2load")
    progs["h2load"] = Program("h2load", None, None if h2load else "h2load is not installed (Debian nghttp2-client)",
                              note="h2load -c1 -m100: one connection, 100 streams (P6's practical limit)")
    wrk = shutil.which("wrk")
    progs["wrk"] = Program("wrk", None, None if wrk else "wrk is not installed",
                           note="wrk -t1 -c100 with a script that makes every path distinct")
    return progs


def wrk_run(w, timeout):
    script = os.path.join(TMP, "wrk_distinct.lua")
    with open(script, "w") as f:
        f.write('local i = 0\nrequest = function() i = i + 1; return wrk.format(nil, "%s" .. i) end\n'
                % w["path"])
    seconds = max(1, round(3 * min(1.0, SCALE * 3)))
    rc, wall, rss, out, err, to = run_process(
        ["wrk", "-t1", f"-c{w['conc']}", f"-d{seconds}s", "-s", script, w["base"] + "/"], timeout)
    m = re.search(r"Requests/sec:\s*([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    sockerr = re.search(r"Socket errors:(.*)", out)
    res = {"rate": float(m.group(1)) if m else None, "n": int(total.group(1)) if total else 0,
           "wall": wall, "rss_kb": rss, "ok": rc == 0 and m is not None and not non2xx and not sockerr}
    if not res["ok"]:
        res["error"] = tail((non2xx.group(0) if non2xx else "") + " " + (sockerr.group(0) if sockerr else "")
                            + " " + err + out)
    return res


def h2load_run(w, timeout):
    rc, wall, rss, out, err, to = run_process(
        ["h2load", "-n", str(w["n"]), "-c", "1", "-m", str(w["conc"]), w["prefix"] + "1"], timeout)
    m = re.search(r"finished in ([\d.]+)(ms|s), ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    elapsed = (float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)) if m else None
    res = {"rate": float(m.group(3)) if m else None, "elapsed": elapsed, "n": w["n"], "wall": wall,
           "rss_kb": rss, "ok": rc == 0 and m is not None and done is not None and int(done.group(1)) == w["n"]}
    if not res["ok"]:
        res["error"] = tail(err + out)
    return res


def run_program(prog, w):
    if prog.name == "wrk":
        return wrk_run(w, w["timeout"])
    if prog.name == "h2load":
        return h2load_run(w, w["timeout"])
    env = dict(os.environ, NODE_EXTRA_CA_CERTS=CA, LOG_LEVEL="WARN")
    rc, wall, rss, out, err, timed_out = run_process(prog.argv_of(w), w["timeout"], env)
    r = parse_result(out)
    res = {"wall": wall, "rss_kb": rss, "rc": rc}
    if r is None:
        res.update(ok=False, error=f"exit {rc}, no RESULT line: " + tail(err + "\n" + out))
        return res
    res.update({k: v for k, v in r.items() if k not in ("samples",)})
    if "samples" in r:
        res["samples"] = r["samples"]
    res["rate"] = r["n"] / r["elapsed"] if r.get("elapsed") else None
    res["ok"] = rc == 0 and r.get("ok") == w["n"] and not timed_out
    if not res["ok"]:
        res["error"] = (f"exit {rc}, {r.get('ok')}/{w['n']} ok"
                        + (f", first error: {r['first_error']}" if r.get("first_error") else "")
                        + (f"; stderr: {tail(err, 2)}" if err.strip() else ""))
    return res


# --------------------------------------------------------------------------- workloads

def workloads():
    p3_n = scaled(10000)
    p3_conc = p3_n
    if p3_n + 200 > NOFILE:
        p3_conc = p3_n = max(10, NOFILE - 200)
    ws = [
        dict(id="P1", title="20k GETs, keep-alive, concurrency 100, small JSON", base=HTTP, path="/json?i=",
             n=scaled(20000), conc=100, reuse=True, tls=False, timeout=180,
             programs=["luafetch", "luafetch-fetcher", "curl_multi", "aiohttp", "node", "lua-http", "wrk"],
             target="≥ 2× libcurl multi and ≥ 60% of wrk's requests/s"),
        dict(id="P2", title="10k GETs over TLS, keep-alive, concurrency 100", base=HTTPS, path="/json?i=",
             n=scaled(10000), conc=100, reuse=True, tls=True, timeout=180,
             programs=["luafetch", "curl_multi", "aiohttp", "node", "lua-http", "wrk"],
             target="≥ 1.2× libcurl multi (OpenSSL)"),
        dict(id="P3", title=f"{p3_n} concurrent GETs to a 1 s-delay endpoint", base=HTTP, path="/delay?i=",
             n=p3_n, conc=p3_conc, reuse=True, tls=False, timeout=120,
             programs=["luafetch", "curl_multi", "aiohttp", "node", "lua-http"], settle=2.0,
             target="wall ≤ 1.3 s, peak RSS ≤ 32 MB",
             skip=None if HAVE_ECHO else "the nginx echo module (libnginx-mod-http-echo) is missing"),
        dict(id="P4", title="TLS, a new connection (full handshake) per request, concurrency 50", base=HTTPS,
             path="/json?i=", n=scaled(2000), conc=50, reuse=False, tls=True, timeout=180,
             programs=["luafetch", "curl_multi", "aiohttp", "node", "lua-http"],
             target="≥ 0.6× libcurl multi"),
        dict(id="P4r", title="P4 against a server that allows session resumption (tickets, cache)",
             base=HTTPS_RESUME, path="/json?i=", n=scaled(2000), conc=50, reuse=False, tls=True, timeout=180,
             programs=["luafetch", "curl_multi", "aiohttp", "node", "lua-http"],
             target="none (for information)"),
        dict(id="P6", title="20k GETs over TLS with HTTP/2 (one connection, multiplexed), concurrency 100",
             base=HTTPS_H2, path="/json?i=", n=scaled(20000), conc=100, reuse=True, tls=True, timeout=180,
             programs=["luafetch", "curl_multi_h2", "h2load"],
             target="≥ 1.5× libcurl multi (CURLPIPE_MULTIPLEX) and ≥ 50% of h2load's requests/s"),
    ]
    for w in ws:
        w["prefix"] = w["base"] + w["path"]
    return ws


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def run_workload(w, progs):
    log(f"\n== {w['id']}: {w['title']} (N={w['n']}, concurrency {w['conc']}, {ROUNDS} rounds)")
    names = [p for p in w["programs"] if progs[p].why_not is None]
    for p in w["programs"]:
        if progs[p].why_not:
            log(f"   {p}: skipped: {progs[p].why_not}")
    runs = {p: [] for p in names}
    for rnd in range(ROUNDS):
        k = rnd % len(names)
        order = names[k:] + names[:k]
        for name in order:
            if w.get("settle"):
                # Each run leaves N client sockets in TIME_WAIT towards the same server; for about
                # a second the kernel may not reuse their ports, and connect() then searches the
                # port range (__inet_hash_connect): the next program would pay for the last one's
                # sockets (measured: 1.2 s becomes 1.9 s on P3 back to back). A pause lets them age.
                time.sleep(w["settle"])
            r = run_program(progs[name], w)
            r["round"] = rnd
            runs[name].append(r)
            if r["ok"]:
                extra = f"{r['rate']:9.0f} req/s" if r.get("rate") else ""
                el = f"{r['elapsed']:7.3f} s" if r.get("elapsed") else "        "
                log(f"   round {rnd + 1} {name:17s} {el} {extra}  wall {r['wall']:6.2f} s  "
                    f"rss {r['rss_kb'] / 1024:6.1f} MB")
            else:
                log(f"   round {rnd + 1} {name:17s} FAILED: {r.get('error')}")
    return summarise(w, runs)


def summarise(w, runs):
    summ = {}
    lf = {r["round"]: r for r in runs.get("luafetch", []) if r["ok"]}
    for name, rs in runs.items():
        good = [r for r in rs if r["ok"]]
        s = {"runs": len(rs), "ok_runs": len(good),
             "elapsed": median([r.get("elapsed") for r in good]),
             "wall": median([r["wall"] for r in good]),
             "rss_mb": median([r["rss_kb"] / 1024 for r in good]),
             "rate": median([r.get("rate") for r in good]),
             "errors": [r.get("error") for r in rs if not r["ok"]]}
        if name != "luafetch":
            speed, mem = [], []
            for r in good:
                mine = lf.get(r["round"])
                if mine and mine.get("rate") and r.get("rate"):
                    speed.append(mine["rate"] / r["rate"])
                    mem.append((mine["rss_kb"] / r["rss_kb"]) if r["rss_kb"] else None)
            s["speed_ratio"] = median(speed)       # luafetch req/s ÷ peer req/s, same round
            s["rss_ratio"] = median(mem)          # luafetch RSS ÷ peer RSS
        summ[name] = s
    return {"workload": {k: v for k, v in w.items() if k != "programs"}, "programs": summ, "runs": runs}


def judge(res):
    """Evaluate a workload's target: (holds: bool|None, text)."""
    wid = res["workload"]["id"]
    p = res["programs"]
    lf = p.get("luafetch", {})

    def ratio(name):
        return p.get(name, {}).get("speed_ratio")

    def need(value, want, what):
        if value is None:
            return None, f"{what}: not measured"
        ok = value >= want
        miss = "" if ok else f", misses by {(1 - value / want) * 100:.0f}%"
        return ok, f"{what} {value:.2f}× (want ≥ {want}×){miss}"

    parts = []
    if wid == "P4r":
        r = ratio("curl_multi")
        return None, "for information: vs libcurl " + (f"{r:.2f}×" if r is not None else "not measured")
    if wid == "P1":
        # the fetcher against libcurl, per round (issue 13: ≥ 1.3×)
        runs = res.get("runs", {})
        cur = {r["round"]: r["rate"] for r in runs.get("curl_multi", []) if r.get("rate")}
        fet = [r["rate"] / cur[r["round"]] for r in runs.get("luafetch-fetcher", [])
               if r.get("rate") and r["round"] in cur]
        parts = [need(ratio("curl_multi"), 2.0, "vs libcurl"), need(ratio("wrk"), 0.6, "vs wrk"),
                 need(median(fet), 1.3, "fetcher vs libcurl")]
    elif wid == "P2":
        parts = [need(ratio("curl_multi"), 1.2, "vs libcurl")]
    elif wid == "P4":
        parts = [need(ratio("curl_multi"), 0.6, "vs libcurl")]  # issue 13 (first: 0.8×, beyond mbedTLS 2.28)
    elif wid == "P6":
        parts = [need(ratio("curl_multi_h2"), 1.5, "vs libcurl h2"), need(ratio("h2load"), 0.5, "vs h2load")]
    elif wid == "P3":
        el, rss = lf.get("elapsed"), lf.get("rss_mb")
        if el is None:
            parts = [(None, "luafetch did not complete")]
        else:
            # issue 13's targets (the first ones were 1.5 s and 40 MB)
            parts = [(el <= 1.3, f"wall {el:.2f} s (want ≤ 1.3 s" + (")" if el <= 1.3 else
                                                                   f", misses by {(el / 1.3 - 1) * 100:.0f}%)")),
                     (rss <= 32, f"peak RSS {rss:.1f} MB (want ≤ 32 MB" + (")" if rss <= 32 else
                                                                           f", misses by {(rss / 32 - 1) * 100:.0f}%)"))]
    oks = [o for o, _ in parts]
    holds = None if any(o is None for o in oks) else all(oks)
    return holds, "; ".join(t for _, t in parts)


# --------------------------------------------------------------------------- P5

def run_p5():
    w = dict(id="P5", title="URLs streamed through the fetcher (f:each)", n=scaled(1000000, 1000), conc=100,
             prefix=HTTP + "/json?i=", target="RSS flat after warm-up, time linear in N")
    log(f"\n== P5: {w['n']} URLs streamed through the fetcher (f:each), concurrency 100")
    src = open(os.path.join(ROOT, "lua", "fetcher.lua")).read() if os.path.exists(
        os.path.join(ROOT, "lua", "fetcher.lua")) else ""
    if not re.search(r"function\s+Fetcher:each\b|function\s+M\.each\b|[:.]each\s*=", src):
        log("   skipped: no streaming form yet")
        return {"workload": w, "skipped": "no streaming form yet"}
    timeout = max(120, w["n"] / 1000 * 1.0)        # allows 1000 req/s at the worst
    rc, wall, rss, out, err, timed_out = run_process(
        [LUAFETCH, "run", "bench/luafetch_stream.lua", w["prefix"], str(w["n"]), str(w["conc"]), "20"],
        timeout, dict(os.environ, LOG_LEVEL="WARN"))
    r = parse_result(out)
    res = {"workload": w, "wall": wall, "rss_mb": rss / 1024}
    if r is None:
        res["error"] = f"exit {rc}, no RESULT line: " + tail(err + out)
        log("   FAILED: " + res["error"])
        return res
    res.update(n=r["n"], ok=r["ok"], fail=r["fail"], elapsed=r["elapsed"], samples=r["samples"],
               first_error=r.get("first_error"))
    if r["fail"] or rc != 0:
        res["error"] = f"exit {rc}, {r['fail']} failed, first: {r.get('first_error')}" + (
            f"; stderr: {tail(err, 2)}" if err.strip() else "")
    s = r["samples"]                                  # [done, seconds, rss_kb, lua_kb]
    if len(s) >= 4:
        warm = s[len(s) // 5]                         # after 20% of the URLs
        later = s[len(s) // 5:]
        peak_after = max(x[2] for x in later)
        growth_kb = peak_after - warm[2]
        flat = growth_kb <= max(2048, 0.10 * warm[2])
        half = s[len(s) // 2]
        last = s[-1]
        first_rate = (half[0] - warm[0]) / (half[1] - warm[1]) if half[1] > warm[1] else None
        second_rate = (last[0] - half[0]) / (last[1] - half[1]) if last[1] > half[1] else None
        slow = first_rate / second_rate if first_rate and second_rate else None
        linear = slow is not None and slow <= 1.25
        res.update(rss_warm_mb=warm[2] / 1024, rss_peak_after_mb=peak_after / 1024, rss_growth_mb=growth_kb / 1024,
                   rate_first=first_rate, rate_second=second_rate, slowdown=slow, flat=flat, linear=linear,
                   lua_kb_warm=warm[3], lua_kb_last=last[3])
        res["holds"] = flat and linear and not res.get("error")
        res["verdict"] = (f"RSS {warm[2] / 1024:.1f} MB at {warm[0]} URLs → peak {peak_after / 1024:.1f} MB after "
                          f"(+{growth_kb / 1024:.1f} MB, {'flat' if flat else 'GROWS'}); "
                          f"{first_rate:.0f} req/s in 20-50%, {second_rate:.0f} req/s in 50-100% "
                          f"({'linear' if linear else 'SLOWS DOWN'}, ratio {slow:.2f}); "
                          f"Lua heap {warm[3] / 1024:.1f} → {last[3] / 1024:.1f} MB")
        log(f"   {r['ok']}/{r['n']} ok in {r['elapsed']:.1f} s ({r['n'] / r['elapsed']:.0f} req/s), "
            f"process peak RSS {rss / 1024:.1f} MB")
        log("   " + res["verdict"])
    if res.get("error"):
        log("   FAILED: " + res["error"])
        res["holds"] = False
    return res


# --------------------------------------------------------------------------- callgrind

def callgrind():
    """Instructions per request on P1 (keep-alive, concurrency 100): the difference between runs of N2
    and N1 requests divided by N2 - N1, so start-up and shutdown cancel out."""
    log("\n== instructions per request on P1 (valgrind --tool=callgrind, user space only)")
    if not shutil.which("valgrind"):
        log("   skipped: valgrind is not installed (Debian valgrind)")
        return {"skipped": "valgrind is not installed"}
    n1, n2 = scaled(500, 200), scaled(2000, 400)
    out = {"n1": n1, "n2": n2}
    for name, argv in (("luafetch", [LUAFETCH, "run", "bench/luafetch_get.lua"]),
                       ("luafetch-fetcher", [LUAFETCH, "run", "bench/luafetch_fetcher.lua"]),
                       ("curl_multi", [CURL_MULTI])):
        if name == "curl_multi" and not os.access(CURL_MULTI, os.X_OK):
            log("   curl_multi: skipped: not built")
            continue
        irs = []
        for n in (n1, n2):
            cg = os.path.join(TMP, f"callgrind.{name}.{n}")
            rc, wall, rss, so, se, to = run_process(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", "--dump-instr=no"] + argv +
                [f"{HTTP}/json?i=", str(n), "100", "1", "-"], 600, dict(os.environ, LOG_LEVEL="WARN"))
            r = parse_result(so)
            total = None
            if os.path.exists(cg):
                with open(cg) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            total = int(line.split()[1])
            if rc != 0 or not r or r.get("ok") != n or total is None:
                log(f"   {name} N={n}: FAILED: exit {rc} " + tail(se, 2))
                irs = None
                break
            irs.append(total)
        if irs:
            per = (irs[1] - irs[0]) / (n2 - n1)
            out[name] = {"ir_n1": irs[0], "ir_n2": irs[1], "per_request": per, "per_request_raw": irs[1] / n2}
            log(f"   {name:16s} {per:10.0f} instructions/request  (N={n2}: {irs[1]:,} total, "
                f"{irs[1] / n2:,.0f}/request with start-up)")
    if "luafetch" in out and "curl_multi" in out:
        out["ratio"] = out["curl_multi"]["per_request"] / out["luafetch"]["per_request"]
        log(f"   libcurl executes {out['ratio']:.2f}× the instructions of luafetch per request")
    return out


def callgrind_p6():
    """Instructions per request on P6 (h2 over TLS, concurrency 100), as callgrind() does for P1."""
    log("\n== instructions per request on P6 (valgrind --tool=callgrind, user space only)")
    if not shutil.which("valgrind"):
        return {"skipped": "valgrind is not installed"}
    n1, n2 = scaled(500, 200), scaled(2000, 400)
    out = {"n1": n1, "n2": n2}
    for name, argv in (("luafetch", [LUAFETCH, "run", "bench/luafetch_get.lua"]), ("curl_multi_h2", [CURL_MULTI_H2])):
        if name == "curl_multi_h2" and not os.access(CURL_MULTI_H2, os.X_OK):
            continue
        irs = []
        for n in (n1, n2):
            cg = os.path.join(TMP, f"callgrind.p6.{name}.{n}")
            rc, wall, rss, so, se, to = run_process(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", "--dump-instr=no"] + argv +
                [f"{HTTPS_H2}/json?i=", str(n), "100", "1", CA], 900, dict(os.environ, LOG_LEVEL="WARN"))
            r = parse_result(so)
            total = None
            if os.path.exists(cg):
                with open(cg) as f:
                    for line in f:
                        if line.startswith("summary:") or line.startswith("totals:"):
                            total = int(line.split()[1])
            if rc != 0 or not r or r.get("ok") != n or total is None:
                log(f"   {name} N={n}: FAILED: exit {rc} " + tail(se, 2))
                irs = None
                break
            irs.append(total)
        if irs:
            per = (irs[1] - irs[0]) / (n2 - n1)
            out[name] = {"ir_n1": irs[0], "ir_n2": irs[1], "per_request": per, "per_request_raw": irs[1] / n2}
            log(f"   {name:16s} {per:10.0f} instructions/request")
    if "luafetch" in out and "curl_multi_h2" in out:
        out["ratio"] = out["curl_multi_h2"]["per_request"] / out["luafetch"]["per_request"]
        log(f"   libcurl (h2) executes {out['ratio']:.2f}× the instructions of luafetch per request")
    return out


# --------------------------------------------------------------------------- report

def fmt(x, spec, none="—"):
    return format(x, spec) if x is not None else none


def print_table(results):
    log("\n== summary (medians of %d rounds; ratio = luafetch ÷ peer from the same round)" % ROUNDS)
    hdr = f"{'':4s} {'program':17s} {'req/s':>9s} {'time s':>8s} {'wall s':>7s} {'RSS MB':>7s} " \
          f"{'speed ×':>8s} {'RSS ×':>6s} {'ok':>5s}"
    log(hdr)
    for res in results:
        w = res["workload"]
        if res.get("skipped"):
            log(f"{w['id']:4s} skipped: {res['skipped']}")
            continue
        for name, s in res["programs"].items():
            log(f"{w['id']:4s} {name:17s} {fmt(s['rate'], '9.0f'):>9s} {fmt(s['elapsed'], '8.3f'):>8s} "
                f"{fmt(s['wall'], '7.2f'):>7s} {fmt(s['rss_mb'], '7.1f'):>7s} "
                f"{fmt(s.get('speed_ratio'), '8.2f', ''):>8s} {fmt(s.get('rss_ratio'), '6.2f', ''):>6s} "
                f"{s['ok_runs']}/{s['runs']}")
        holds, text = judge(res)
        res["holds"], res["verdict"] = holds, text
        state = "HOLDS" if holds else "MISSES" if holds is False else "INFO" if w["id"] == "P4r" else "?"
        log(f"{w['id']:4s} target {w['target']}: {state} — {text}")


def machine():
    info = {"cpus": os.cpu_count(), "kernel": os.uname().release}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            info["cpu"] = m.group(1) if m else "?"
        with open("/proc/loadavg") as f:
            info["loadavg"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def write_docs(report, png_ok):
    progs = report["programs"]
    L = []
    L.append("# Benchmarks\n")
    L.append("Generated by `make bench` (`bench/run.sh`, `bench/harness.py`) on "
             f"{report['date']}; do not edit by hand. Raw numbers: `bench/results/latest.json`.\n")
    L.append("## Method\n")
    L.append("- nginx (one worker, keep-alive with unlimited requests per connection, access log off, "
             "`backlog=4096`) on loopback ports chosen at run time serves a "
             f"{report['body_bytes']}-byte JSON body at `/json` and, through the echo module, the same body "
             "after `echo_sleep 1` at `/delay`. The TLS server uses an ECDSA P-256 certificate from "
             "`tests/fixtures/certs.sh`, which every client verifies against the test CA, "
             f"`ssl_protocols {report['tls_protocols']}` (mbedTLS 2.28 speaks TLS 1.2 only, so all clients "
             "negotiate the same protocol), and no session cache or tickets, so P4 costs a full handshake "
             "for everyone.")
    L.append("- Every program fetches distinct URLs (`?i=1..N`), keeps a per-URL result (status and body; "
             "luafetch in a Lua table as a user's script would) and checks that every status is 200; "
             "a run with any failure is left out of the medians and listed below.")
    L.append(f"- Each workload runs luafetch and each peer alternately, {report['rounds']} rounds, the order "
             "rotating each round. *time* is the program's own timing of the fetch phase (start-up "
             "excluded), *wall* the process's, *RSS* its peak resident set (`ru_maxrss`, as "
             "`/usr/bin/time -f %M`). *speed ×* is luafetch's requests/s divided by the peer's in the "
             "same round (above 1: luafetch is faster), *RSS ×* luafetch's peak RSS divided by the peer's; "
             "both are medians over the rounds. The machine is shared and noisy: only these same-run "
             "ratios mean anything; absolute numbers do not carry over between runs. P3's runs are 2 s "
             "apart: each leaves 10,000 client sockets in TIME_WAIT whose ports the kernel does not "
             "reuse for about a second, and the next program's connects would search past them.")
    L.append(f"- Machine: {report['machine'].get('cpu', '?')}, {report['machine'].get('cpus')} CPUs, "
             f"load average at start {' '.join(report['machine'].get('loadavg', []))}. "
             f"BENCH_SCALE={report['scale']} (request counts ×{report['scale']}).\n")
    L.append("Programs:\n")
    for name, note in progs.items():
        L.append(f"- **{name}**: {note}")
    L.append("")
    L.append("## Targets\n")
    L.append("| id | workload | target | result | holds |")
    L.append("|---|---|---|---|---|")
    for res in report["workloads"]:
        w = res["workload"]
        if res.get("skipped"):
            L.append(f"| {w['id']} | {w['title']} | {w['target']} | skipped: {res['skipped']} | — |")
            continue
        holds = res.get("holds")
        L.append(f"| {w['id']} | {w['title']} (N={w['n']}) | {w['target']} | {res.get('verdict', '')} | "
                 f"{'yes' if holds else 'no' if holds is False else '—' if w['id'] == 'P4r' else '?'} |")
    L.append("")
    L.append("## All programs (medians)\n")
    L.append("| id | program | req/s | time s | wall s | peak RSS MB | speed × | RSS × | ok runs |")
    L.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for res in report["workloads"]:
        if res.get("skipped") or "programs" not in res:
            continue
        for name, s in res["programs"].items():
            L.append(f"| {res['workload']['id']} | {name} | {fmt(s['rate'], '.0f')} | {fmt(s['elapsed'], '.3f')} | "
                     f"{fmt(s['wall'], '.2f')} | {fmt(s['rss_mb'], '.1f')} | "
                     f"{fmt(s.get('speed_ratio'), '.2f', '') if name != 'luafetch' else '1'} | "
                     f"{fmt(s.get('rss_ratio'), '.2f', '') if name != 'luafetch' else '1'} | "
                     f"{s['ok_runs']}/{s['runs']} |")
    L.append("")
    L.append("wrk runs for a fixed time rather than N requests; its req/s is the practical limit of "
             "this server on this machine.\n")
    cg = report.get("callgrind") or {}
    L.append("## Instructions per request (P1, callgrind)\n")
    if cg.get("skipped"):
        L.append(f"Skipped: {cg['skipped']}.\n")
    else:
        L.append(f"`valgrind --tool=callgrind`, keep-alive, concurrency 100, user-space instructions; "
                 f"per request = (Ir(N={cg.get('n2')}) − Ir(N={cg.get('n1')})) ÷ {cg.get('n2', 0) - cg.get('n1', 0)}, "
                 "so start-up and shutdown cancel out. A count, stable on a noisy machine.\n")
        L.append("| program | instructions/request | with start-up, N=%s |" % cg.get("n2"))
        L.append("|---|---:|---:|")
        for name in ("luafetch", "luafetch-fetcher", "curl_multi"):
            if name in cg:
                L.append(f"| {name} | {cg[name]['per_request']:,.0f} | {cg[name]['per_request_raw']:,.0f} |")
        if "ratio" in cg:
            L.append(f"\nlibcurl executes {cg['ratio']:.2f}× luafetch's instructions per request.")
        L.append("")
    cg6 = report.get("callgrind_p6") or {}
    if "luafetch" in cg6:
        L.append("## Instructions per request (P6, HTTP/2, callgrind)\n")
        L.append("The same measure on P6 (h2 over TLS, one connection, concurrency 100); TLS work included.\n")
        L.append("| program | instructions/request |")
        L.append("|---|---:|")
        for name in ("luafetch", "curl_multi_h2"):
            if name in cg6:
                L.append(f"| {name} | {cg6[name]['per_request']:,.0f} |")
        if "ratio" in cg6:
            L.append(f"\nlibcurl (h2) executes {cg6['ratio']:.2f}× luafetch's instructions per request.\n")
    p5 = next((r for r in report["workloads"] if r["workload"]["id"] == "P5"), None)
    if p5:
        L.append("## P5: streaming through the fetcher\n")
        if p5.get("skipped"):
            L.append(f"Skipped: {p5['skipped']}.\n")
        else:
            if p5.get("verdict"):
                L.append(f"{p5['n']} URLs through `fetcher.new{{max_concurrent=100}}:each(...)`, "
                         f"{p5['elapsed']:.1f} s ({p5['n'] / p5['elapsed']:.0f} req/s), "
                         f"process peak RSS {p5['rss_mb']:.1f} MB. {p5['verdict']}.\n")
            if p5.get("error"):
                L.append(f"Failures: {p5['error']}\n")
            if p5.get("samples"):
                L.append("| URLs done | seconds | RSS MB | Lua heap MB |")
                L.append("|---:|---:|---:|---:|")
                for d, t, r, h in p5["samples"]:
                    L.append(f"| {d} | {t:.2f} | {r / 1024:.1f} | {h / 1024:.1f} |")
                L.append("")
    # bench/body_memory.sh runs after the harness and writes no results file: its section is
    # kept by hand in bench/BODIES.md and copied here as it stands
    bodies = os.path.join(ROOT, "bench", "BODIES.md")
    if os.path.exists(bodies):
        with open(bodies) as f:
            L.append(f.read().strip() + "\n")
    L.extend(p7.doc_section(report))
    notes = os.path.join(ROOT, "bench", "NOTES.md")
    if os.path.exists(notes):
        L.append("## Notes\n")
        L.append("Kept by hand in `bench/NOTES.md` and copied here by the harness: why targets miss and what "
                 "would close the gap. Re-check them against the tables above after each run.\n")
        with open(notes) as f:
            L.append(f.read().strip() + "\n")
    fails = []
    for res in report["workloads"]:
        for name, s in (res.get("programs") or {}).items():
            for e in s.get("errors", []):
                fails.append(f"- {res['workload']['id']} {name}: {e}")
    if fails:
        L.append("## Failed runs\n")
        L.extend(fails)
        L.append("")
    if png_ok:
        L.append("## Plot\n")
        L.append("![luafetch and its peers](bench.png)\n")
        L.append("Left: requests/s relative to libcurl multi (P1, P2, P4, P4r; for P3 that is the inverse of "
                 "the time relative to libcurl's). Right: peak RSS on P3. Bottom: P5's RSS and Lua heap as URLs stream through.\n")
    with open(os.path.join(ROOT, "docs", "BENCHMARKS.md"), "w") as f:
        f.write("\n".join(L))


def plot(report):
    if not shutil.which("gnuplot"):
        log("plot: skipped: gnuplot is not installed (Debian gnuplot-nox)")
        return False
    ws = [r for r in report["workloads"] if "programs" in r and r["workload"]["id"] in ("P1", "P2", "P3", "P4", "P4r")]
    names = ["luafetch", "luafetch-fetcher", "curl_multi", "aiohttp", "node", "lua-http", "wrk"]
    names = [n for n in names if any(n in r["programs"] for r in ws)]
    if not ws or "curl_multi" not in names:
        log("plot: skipped: nothing to compare with libcurl")
        return False
    rel = os.path.join(TMP, "rel.dat")
    with open(rel, "w") as f:
        f.write("workload " + " ".join(f'"{n}"' for n in names) + "\n")
        for r in ws:
            p = r["programs"]
            curl = p.get("curl_multi", {}).get("rate")
            row = [r["workload"]["id"]]
            for n in names:
                v = p.get(n, {}).get("rate")
                row.append(f"{v / curl:.4f}" if v and curl else "NaN")
            f.write(" ".join(row) + "\n")
    p3 = next((r for r in ws if r["workload"]["id"] == "P3"), None)
    mem = os.path.join(TMP, "mem.dat")
    with open(mem, "w") as f:
        if p3:
            for n in names:
                v = p3["programs"].get(n, {}).get("rss_mb")
                if v:
                    f.write(f'"{n}" {v:.1f}\n')
    p5 = next((r for r in report["workloads"] if r["workload"]["id"] == "P5" and r.get("samples")), None)
    stream = os.path.join(TMP, "p5.dat")
    with open(stream, "w") as f:
        for d, t, rss, heap in (p5["samples"] if p5 else []):
            f.write(f"{d} {rss / 1024:.2f} {heap / 1024:.2f} {t:.3f}\n")
    png = os.path.join(ROOT, "docs", "bench.png")
    script = f"""
set terminal pngcairo noenhanced size 1400,{950 if p5 else 520} font "sans,10"
set output "{png}"
set multiplot
set size 0.62,{0.55 if p5 else 1}
set origin 0,{0.45 if p5 else 0}
set title "median requests/s relative to libcurl multi's (higher is better; {report['rounds']} rounds)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [*:*]
set grid ytics
set key top right font ",9"
set xtics nomirror
plot for [i=2:{len(names) + 1}] "{rel}" using i:xtic(1) title columnheader(i)
unset logscale y
set size 0.38,{0.55 if p5 else 1}
set origin 0.62,{0.45 if p5 else 0}
set title "P3: peak RSS, MB ({p3['workload']['n'] if p3 else 0} concurrent 1 s requests; target <= 32)"
set style data histograms
set yrange [0:*]
set xtics rotate by -30
set key off
plot "{mem}" using 2:xtic(1) lc rgb "#4477aa" notitle, 32 with lines dt 2 lc rgb "red" title "target"
"""
    if p5:
        script += f"""
set size 1,0.45
set origin 0,0
set title "P5: streaming through f:each — memory as URLs go by"
unset style
set style data lines
set xtics norotate
set xlabel "URLs done"
set format x "%.0f"
set ylabel "MB"
set key top left
set yrange [0:*]
set autoscale x
set boxwidth
plot "{stream}" using 1:2 with linespoints title "RSS", "{stream}" using 1:3 with linespoints title "Lua heap"
"""
    script += "unset multiplot\n"
    gp = os.path.join(TMP, "bench.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        log("plot: gnuplot failed: " + tail(r.stderr))
        return False
    log(f"plot: {os.path.relpath(png, ROOT)}")
    return True


def main():
    progs = make_programs()
    log(f"bench: BENCH_SCALE={SCALE} BENCH_ROUNDS={ROUNDS}" + (f" BENCH_ONLY={','.join(sorted(ONLY))}" if ONLY else ""))
    for p in progs.values():
        log(f"   {p.name:17s} " + (f"unavailable: {p.why_not}" if p.why_not else p.note))
    results = []
    for w in workloads():
        if ONLY and w["id"].upper() not in ONLY:
            continue
        if w.get("skip"):
            log(f"\n== {w['id']}: skipped: {w['skip']}")
            results.append({"workload": {k: v for k, v in w.items() if k != "programs"}, "skipped": w["skip"]})
            continue
        results.append(run_workload(w, progs))
        if NGINX_PID:
            try:
                os.kill(NGINX_PID, 0)
            except ProcessLookupError:
                log("bench: nginx has died; stopping")
                break
    if not ONLY or "P5" in ONLY:
        results.append(run_p5())
    if not ONLY or "P7" in ONLY:
        results.append(p7.run(sys.modules[__name__]))
    cg = callgrind() if not ONLY or "CG" in ONLY or "P1" in ONLY else None
    cg6 = callgrind_p6() if H2_PORT and (not ONLY or "CG" in ONLY or "P6" in ONLY) else None
    print_table([r for r in results if r["workload"]["id"] not in ("P5", "P7")])
    p5 = next((r for r in results if r["workload"]["id"] == "P5"), None)
    if p5 and not p5.get("skipped"):
        log(f"P5   target {p5['workload']['target']}: "
            f"{'HOLDS' if p5.get('holds') else 'MISSES'} — {p5.get('verdict') or p5.get('error')}")
    if cg6 and "ratio" in cg6:
        log(f"CG6  instructions/request on P6: luafetch {cg6['luafetch']['per_request']:.0f}, "
            f"libcurl h2 {cg6['curl_multi_h2']['per_request']:.0f} (libcurl ÷ luafetch = {cg6['ratio']:.2f})")
    if cg and "ratio" in cg:
        log(f"CG   instructions/request on P1: luafetch {cg['luafetch']['per_request']:.0f}, "
            f"libcurl {cg['curl_multi']['per_request']:.0f} (libcurl ÷ luafetch = {cg['ratio']:.2f})")

    now = datetime.datetime.now()
    body = '{"id":1,"name":"luafetch benchmark","tags":["bench","json","small"],"ok":true,"value":3.14159265}'
    report = {"date": now.strftime("%Y-%m-%d %H:%M"), "scale": SCALE, "rounds": ROUNDS,
              "tls_protocols": os.environ.get("BENCH_TLS_PROTOCOLS", "TLSv1.2"), "body_bytes": len(body),
              "machine": machine(),
              "programs": {p.name: (p.note if not p.why_not else "unavailable: " + p.why_not) for p in progs.values()},
              "workloads": results, "callgrind": cg, "callgrind_p6": cg6}
    resdir = os.path.join(ROOT, "bench", "results")
    os.makedirs(resdir, exist_ok=True)
    names = [now.strftime("%Y%m%d-%H%M%S") + ".json"]
    if not ONLY:                                  # latest.json is the latest complete run
        names.insert(0, "latest.json")
    for name in names:
        with open(os.path.join(resdir, name), "w") as f:
            json.dump(report, f, indent=1)
    log("results: " + ", ".join("bench/results/" + n for n in names))
    if WRITE_DOCS and not ONLY:
        png_ok = plot(report)
        write_docs(report, png_ok)
        log("docs: docs/BENCHMARKS.md")
    elif WRITE_DOCS:
        log("docs: not rewritten (BENCH_ONLY is set)")
    return 0


def docs_only(path):
    """`harness.py --docs RESULTS.json`: rewrite docs/BENCHMARKS.md and docs/bench.png from a saved run
    (after editing bench/NOTES.md, say), without running anything."""
    with open(path) as f:
        report = json.load(f)
    try:
        write_docs(report, plot(report))
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    log("docs: docs/BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--docs":
        sys.exit(docs_only(sys.argv[2]))
    try:
        sys.exit(main())
    finally:
        if current["pgid"]:
            kill_group(current["pgid"])
