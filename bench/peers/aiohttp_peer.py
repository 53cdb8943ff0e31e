"""aiohttp_peer.py — the aiohttp peer of the benchmark harness (the seed project's own stack).

usage: python3 aiohttp_peer.py PREFIX N CONC REUSE CAFILE
Fetches PREFIX1 .. PREFIXN with at most CONC requests (and connections) at once, keeps each URL's
status and body in a dict, and prints one `RESULT {json}` line. REUSE 0 = a new connection per request.
Run with Debian's /usr/bin/python3 (python3-aiohttp).
"""
import asyncio
import json
import ssl
import sys
import time

import aiohttp


async def main(prefix, n, conc, reuse, cafile):
    sslctx = None
    if prefix.startswith("https:"):
        sslctx = ssl.create_default_context(cafile=None if cafile == "-" else cafile)
    connector = aiohttp.TCPConnector(limit=conc, limit_per_host=conc, ssl=sslctx,
                                     force_close=not reuse, ttl_dns_cache=300)
    timeout = aiohttp.ClientTimeout(total=60)
    results = {}
    sem = asyncio.Semaphore(conc)
    errors = []

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        async def one(url):
            async with sem:
                try:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        results[url] = (resp.status, body)
                except Exception as e:  # noqa: BLE001 - a failure is a result
                    results[url] = (None, None)
                    errors.append(f"{url}: {type(e).__name__}: {e}")

        t0 = time.monotonic()
        await asyncio.gather(*(one(f"{prefix}{i}") for i in range(1, n + 1)))
        elapsed = time.monotonic() - t0

    ok = sum(1 for status, _ in results.values() if status == 200)
    first = errors[0] if errors else next(
        (f"{u}: status {s}" for u, (s, _) in results.items() if s != 200), "")
    print("RESULT " + json.dumps({
        "n": n, "ok": ok, "fail": n - ok, "elapsed": elapsed,
        "bytes": sum(len(b) for _, b in results.values() if b),
        "first_error": first[:200]}), flush=True)
    return 0 if ok == n else 1


if __name__ == "__main__":
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    p, n, c, r, ca = sys.argv[1:]
    sys.exit(asyncio.run(main(p, int(n), int(c), r == "1", ca)))
