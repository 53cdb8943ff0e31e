// node_fetch.mjs — the Node.js peer of the benchmark harness: the built-in fetch (undici, Node 18+).
//
// usage: node node_fetch.mjs PREFIX N CONC REUSE CAFILE
// Fetches PREFIX1 .. PREFIXN with CONC workers, keeps each URL's status and body in a Map and prints
// one `RESULT {json}` line. REUSE 0 = a new connection per request. The harness also sets
// NODE_EXTRA_CA_CERTS=CAFILE, which plain fetch honours.
//
// Node bundles undici but does not export it without npm; its Agent class is reachable as the
// constructor of the global dispatcher, which exists after the first fetch. A refused connection to
// 127.0.0.1:1 creates it; with that Agent we set the connection limit, keep-alive and the CA. If any of
// this is missing, plain fetch (keep-alive by default, no connection cap beyond the CONC workers) runs.
import { readFileSync } from "node:fs";

const [prefix, nArg, concArg, reuseArg, cafile] = process.argv.slice(2);
if (!cafile) {
  console.error("usage: node node_fetch.mjs PREFIX N CONC REUSE CAFILE");
  process.exit(2);
}
const n = Number(nArg), conc = Math.min(Number(concArg), n), reuse = reuseArg === "1";

let dispatcher, mode = "plain fetch";
try {
  const sym = Symbol.for("undici.globalDispatcher.1");
  if (!globalThis[sym]) await fetch("http://127.0.0.1:1/").catch(() => {});
  const Agent = globalThis[sym] && globalThis[sym].constructor;
  if (typeof Agent === "function") {
    const connect = cafile !== "-" ? { ca: readFileSync(cafile) } : {};
    dispatcher = new Agent({
      connections: conc, pipelining: reuse ? 1 : 0,
      keepAliveTimeout: 60e3, keepAliveMaxTimeout: 600e3,
      headersTimeout: 60e3, bodyTimeout: 60e3, connect,
    });
    mode = "undici Agent";
  }
} catch (e) {
  dispatcher = undefined;
}

const results = new Map();
const errors = [];
let next = 0;

async function worker() {
  while (next < n) {
    const url = prefix + String(++next);
    try {
      const opts = { signal: AbortSignal.timeout(60e3) };
      if (dispatcher) opts.dispatcher = dispatcher;
      else if (!reuse) opts.headers = { connection: "close" };
      const res = await fetch(url, opts);
      const body = await res.text();
      results.set(url, { status: res.status, body });
    } catch (e) {
      results.set(url, { status: null, body: null });
      errors.push(`${url}: ${e.name}: ${e.message}${e.cause ? " (" + e.cause.message + ")" : ""}`);
    }
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: conc }, worker));
const elapsed = (performance.now() - t0) / 1000;

let ok = 0, bytes = 0, firstBad = "";
for (const [url, r] of results) {
  if (r.status === 200) ok++;
  else if (!firstBad) firstBad = `${url}: status ${r.status}`;
  if (r.body) bytes += r.body.length;
}
console.log("RESULT " + JSON.stringify({
  n, ok, fail: n - ok, elapsed, bytes, mode,
  first_error: (errors[0] || firstBad).slice(0, 200),
}));
if (dispatcher) await dispatcher.close().catch(() => {});
process.exit(ok === n ? 0 : 1);
