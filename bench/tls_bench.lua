-- tls_bench.lua — TLS cost on one host: handshakes/s and keep-alive requests/s over HTTPS.
--
-- usage: luafetch run bench/tls_bench.lua URL CA_FILE [N] [C] [ROUNDS]
--   URL      an https URL to GET (e.g. https://127.0.0.1:PORT/bytes/64)
--   CA_FILE  the PEM bundle that trusts the server ("-": the system bundle)
--   N        requests per round (default 500), C concurrent tasks (default 8), ROUNDS (default 3)
--
-- Three workloads, each run ROUNDS times; the median round is reported:
--   resumed    a new connection per request (`Connection: close`): every request after the
--              first of its key resumes the TLS session (abbreviated handshake, no public-key work)
--   full       a new connection per request and a full handshake each time: every request gets
--              its own session key (a distinct spelling of CA_FILE's path through a scratch
--              directory of symbolic links), so no session is offered; this also parses the CA file
--              and builds one TLS config per request (small next to the handshake)
--   keepalive  C pooled connections opened first, then N requests over them (no handshakes)
-- Each round checks that the connections were (or were not) reused as intended and fails loudly
-- otherwise. Prints one line per workload (with luafetch's own CPU time per request, from
-- os.clock: when it is well below 1000/rate ms the server, not luafetch, is the bottleneck),
-- then `RESULT {json}`.
local http = require "http"
local task = require "task"

local url, cafile = arg[1], arg[2]
local n, conc, rounds = tonumber(arg[3] or 500), tonumber(arg[4] or 8), tonumber(arg[5] or 3)
if not url or not cafile or not n or not conc or not rounds or not url:match("^https://") then
  io.stderr:write("usage: luafetch run bench/tls_bench.lua HTTPS_URL CA_FILE [N] [C] [ROUNDS]\n")
  return 2
end
conc = math.max(1, math.min(conc, n))

-- Distinct spellings of CA_FILE's path, for new pool and session-cache keys: a scratch directory
-- holds ca.pem -> CA_FILE and ten links 0..9 -> ".", so "D/4/2/ca.pem" is request 42's own key.
local keydir
local fresh_n = 0
local function fresh_ca()
  if not keydir then
    keydir = os.tmpname()
    os.remove(keydir)
    local abs = cafile:sub(1, 1) == "/" and cafile or (os.getenv("PWD") .. "/" .. cafile)
    assert(os.execute(string.format("mkdir %q && ln -s %q %q/ca.pem && for d in 0 1 2 3 4 5 6 7 8 9; do " ..
      "ln -s . %q/$d; done", keydir, abs, keydir, keydir)), "cannot create " .. keydir)
  end
  fresh_n = fresh_n + 1
  return keydir .. "/" .. tostring(fresh_n):gsub(".", "%0/") .. "ca.pem"
end

--- Runs n GETs on conc tasks; opts_for(i) gives request i's options. Returns elapsed seconds and
--- counts of reused connections, resumed handshakes and failures (with the first error).
local function run(opts_for)
  local next_i, reused, resumed, failed, first_err = 0, 0, 0, 0, nil
  local function worker()
    while next_i < n do
      next_i = next_i + 1
      local res, err, kind = http.get(url, opts_for(next_i))
      if res and res.status == 200 then
        if res.reused then reused = reused + 1 end
        if res.tls and res.tls.resumed then resumed = resumed + 1 end
      else
        failed = failed + 1
        first_err = first_err or (res and ("status " .. res.status) or (tostring(kind) .. ": " .. tostring(err)))
      end
    end
  end
  local t0, c0 = task.now(), os.clock()
  local ts = {}
  for i = 1, conc do ts[i] = task.spawn(worker) end
  for i = 1, conc do assert(ts[i]:join()) end
  return task.now() - t0, reused, resumed, failed, first_err, os.clock() - c0
end

local function median(t)
  local c = { table.unpack(t) }
  table.sort(c)
  return c[(#c + 1) // 2]
end

local close_hdr = { Connection = "close" }
local function trust(o)
  if cafile ~= "-" then o.ca_file = o.ca_file or cafile end
  o.timeout = 60
  return o
end

local workloads = {
  { name = "resumed", label = "handshakes/s (new connection per request, session resumed)",
    setup = function()
      local ca = cafile ~= "-" and fresh_ca() or nil
      -- one request first, so every timed connection may resume
      assert(http.get(url, trust{ ca_file = ca, headers = close_hdr }))
      local o = trust{ ca_file = ca, headers = close_hdr }
      return function() return o end
    end,
    check = function(reused, resumed) return reused == 0 and resumed == n end },
  { name = "full", label = "handshakes/s (new connection per request, full handshake)",
    setup = function()
      if cafile == "-" then return nil end
      local list = {}
      for i = 1, n do list[i] = trust{ ca_file = fresh_ca(), headers = close_hdr } end
      return function(i) return list[i] end
    end,
    check = function(reused, resumed) return reused == 0 and resumed == 0 end },
  { name = "keepalive", label = "keep-alive requests/s",
    setup = function()
      local o = trust{ ca_file = cafile ~= "-" and fresh_ca() or nil }
      -- open conc connections at once, so the timed requests find them pooled
      local ts = {}
      for i = 1, conc do ts[i] = task.spawn(function() return assert(http.get(url, o)) end) end
      for i = 1, conc do assert(ts[i]:join()) end
      return function() return o end
    end,
    check = function(reused) return reused == n end },
}

local out = {}
print(string.format("tls_bench %s  N=%d C=%d rounds=%d", url, n, conc, rounds))
local status = 0
for _, w in ipairs(workloads) do
  local rates, cpus = {}, {}
  local note = ""
  for r = 1, rounds do
    local opts_for = w.setup()
    if not opts_for then note = " (skipped: needs CA_FILE)"; break end
    local s0 = http.stats()
    local elapsed, reused, resumed, failed, first_err, cpu = run(opts_for)
    local s1 = http.stats()
    local opened = s1.connections_opened - s0.connections_opened
    rates[r] = n / elapsed
    cpus[r] = cpu / n * 1e3
    if failed > 0 or not w.check(reused, resumed) then
      status = 1
      io.stderr:write(string.format("%s round %d: %d failed (%s), %d reused, %d resumed, %d connections opened\n",
        w.name, r, failed, tostring(first_err), reused, resumed, opened))
    end
    note = string.format("  [last round: %d connections opened, %d reused, %d resumed]", opened, reused, resumed)
  end
  if #rates > 0 then
    local parts = {}
    for i, v in ipairs(rates) do parts[i] = string.format("%.0f", v) end
    out[w.name] = median(rates)
    print(string.format("%-58s %7.0f  (rounds: %s; client CPU %.2f ms/request)%s", w.label, median(rates),
      table.concat(parts, ", "), median(cpus), note))
  else
    print(string.format("%-58s %7s%s", w.label, "-", note))
  end
end
if keydir then os.execute(string.format("rm -rf %q", keydir)) end
print(string.format('RESULT {"n":%d,"c":%d,"resumed_hs_per_s":%.1f,"full_hs_per_s":%.1f,"keepalive_req_per_s":%.1f}',
  n, conc, out.resumed or 0, out.full or 0, out.keepalive or 0))
return status
