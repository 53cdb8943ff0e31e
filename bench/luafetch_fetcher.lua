-- luafetch_fetcher.lua — P1 through the fetcher (`require "fetcher"`, fetch_urls), to show what the
-- fetcher's policy layer (retries, breaker, hooks, per-host bookkeeping) costs over bare http.get.
--
-- usage: luafetch run bench/luafetch_fetcher.lua PREFIX N CONC REUSE CAFILE   (prints one `RESULT {json}` line)
local fetcher = require "fetcher"
local http = require "http"
local task = require "task"

local prefix, n, conc, reuse, cafile = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] == "1", arg[5]
if not cafile then
  io.stderr:write("usage: luafetch run luafetch_fetcher.lua PREFIX N CONC REUSE CAFILE\n")
  return 2
end
if not reuse then http.configure{ max_idle_per_host = 0 } end

local urls = {}
for i = 1, n do
  urls[i] = cafile ~= "-" and { url = prefix .. i, ca_file = cafile } or prefix .. i
end
-- BENCH_FETCHER_PLUGINS=a,b,...: what each plugin costs (docs/plugins.md lists the counts).
-- Sinks write to /dev/null; "idle" has only on_finish, "noop_request"/"noop_result" a hook that
-- does nothing; breaker, per_host and thresholds are fetcher options.
local opts = { max_concurrent = conc, timeout = 60, plugins = {} }
local PLUGINS = {
  metrics = function() return require("plugins.metrics").new{ silent = true } end,
  csv = function() return require("plugins.csv").new{ path = "/dev/null" } end,
  jsonl = function() return require("plugins.jsonl").new{ path = "/dev/null" } end,
  prometheus = function() return require("plugins.prometheus").new() end,
  prometheus_crawl = function() return require("plugins.prometheus").new{ per_target = false } end,
  progress = function() return require("plugins.progress").new() end,
  idle = function() return { name = "idle", on_finish = function() end } end,
  noop_request = function() return { name = "noop", on_request = function() end } end,
  noop_result = function() return { name = "noop", on_result = function() end } end,
  thresholds = function() opts.thresholds = { p95 = "<1", success_rate = ">0.99" } end,
  breaker = function() opts.breaker = true end,
  per_host = function() opts.max_per_host = conc end,
}
for name in (os.getenv("BENCH_FETCHER_PLUGINS") or ""):gmatch("[^,]+") do
  local make = assert(PLUGINS[name], "unknown plugin " .. name)
  opts.plugins[#opts.plugins + 1] = make()
end
local f = fetcher.new(opts)
local t0 = task.now()
local results = f:fetch_urls(urls)
local elapsed = task.now() - t0

local good, bytes, first_bad = 0, 0, nil
for url, r in pairs(results) do
  if r.success and r.status_code == 200 then good = good + 1
  elseif not first_bad then
    first_bad = url .. ": " .. tostring(r.status_code) .. " " .. tostring(r.kind) .. " " .. tostring(r.error)
  end
  if r.body then bytes = bytes + #r.body end
end
local first = (first_bad or ""):sub(1, 200):gsub('[%c"\\]', " ")
print(string.format('RESULT {"n":%d,"ok":%d,"fail":%d,"elapsed":%.6f,"bytes":%d,"first_error":"%s","lua_kb":%.0f}',
  n, good, n - good, elapsed, bytes, first, collectgarbage("count")))
return good == n and 0 or 1
