-- luafetch_get.lua — luafetch's program for the benchmark workloads P1-P4 (bench/run.sh), written
-- as a user's script would be: CONC worker tasks take the next URL, `http.get` it and keep the
-- status and body in a Lua table keyed by URL.
--
-- usage: luafetch run bench/luafetch_get.lua PREFIX N CONC REUSE CAFILE
--   fetches PREFIX1 .. PREFIXN; REUSE 0 = a new connection per request (no idle pooling);
--   CAFILE is the PEM bundle to trust for https ("-": the system one). Prints one `RESULT {json}` line.
local http = require "http"
local task = require "task"

local prefix, n, conc, reuse, cafile = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] == "1", arg[5]
if not cafile then
  io.stderr:write("usage: luafetch run luafetch_get.lua PREFIX N CONC REUSE CAFILE\n")
  return 2
end
conc = math.min(conc, n)
if not reuse then http.configure{ max_idle_per_host = 0 } end
-- P3 opens CONC connections at once; the default max_connecting (128) paces them.
if os.getenv("BENCH_MAX_CONNECTING") then
  http.configure{ max_connecting = tonumber(os.getenv("BENCH_MAX_CONNECTING")) }
end
local opts = { timeout = 60 }
if cafile ~= "-" then opts.ca_file = cafile end

local results, errors = {}, {}
local next_i = 0

local function worker()
  while next_i < n do
    next_i = next_i + 1
    local url = prefix .. next_i
    local res, err, kind = http.get(url, opts)
    if res then
      results[url] = { status = res.status, body = res.body }
    else
      results[url] = { status = false }
      errors[#errors + 1] = url .. ": " .. tostring(kind) .. ": " .. tostring(err)
    end
  end
end

local t0 = task.now()
local tasks = {}
for i = 1, conc do tasks[i] = task.spawn(worker) end
for i = 1, conc do
  local ok, err = tasks[i]:join()
  if not ok then errors[#errors + 1] = "task: " .. tostring(err) end
end
local elapsed = task.now() - t0

local good, bytes, first_bad = 0, 0, nil
for url, r in pairs(results) do
  if r.status == 200 then good = good + 1 elseif not first_bad then first_bad = url .. ": status " .. tostring(r.status) end
  if r.body then bytes = bytes + #r.body end
end
local s = http.stats()
local first = (errors[1] or first_bad or ""):sub(1, 200):gsub('[%c"\\]', " ")
print(string.format('RESULT {"n":%d,"ok":%d,"fail":%d,"elapsed":%.6f,"bytes":%d,"first_error":"%s",'
  .. '"errors":%d,"connections_opened":%d,"connections_reused":%d,"lua_kb":%.0f}',
  n, good, n - good, elapsed, bytes, first, #errors, s.connections_opened or 0, s.connections_reused or 0,
  collectgarbage("count")))
return good == n and 0 or 1
