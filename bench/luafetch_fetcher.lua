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
local f = fetcher.new{ max_concurrent = conc, timeout = 60 }
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
