-- luafetch_stream.lua — P5: N URLs streamed through the fetcher's streaming form (`f:each`), which
-- keeps no results. Samples elapsed time, resident memory (VmRSS) and the Lua heap every N/SAMPLES
-- results, so the harness can check that RSS stays flat after warm-up and time grows linearly.
--
-- usage: luafetch run bench/luafetch_stream.lua PREFIX N CONC [SAMPLES]   (prints one `RESULT {json}` line)
local fetcher = require "fetcher"
local task = require "task"

local prefix, n, conc, samples = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4] or 20)
if not conc then
  io.stderr:write("usage: luafetch run luafetch_stream.lua PREFIX N CONC [SAMPLES]\n")
  return 2
end

local function rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) or 0
end

local i = 0
local function source()
  if i >= n then return nil end
  i = i + 1
  return prefix .. i
end

local every = math.max(1, n // samples)
local done, good, bad, first_bad = 0, 0, 0, nil
local points = {}
local f = fetcher.new{ max_concurrent = conc, timeout = 60 }
local t0 = task.now()
f:each(source, function(url, r)
  done = done + 1
  if r.success and r.status_code == 200 then good = good + 1
  else
    bad = bad + 1
    first_bad = first_bad or (url .. ": " .. tostring(r.status_code) .. " " .. tostring(r.kind) .. " " .. tostring(r.error))
  end
  if done % every == 0 then
    points[#points + 1] = string.format("[%d,%.4f,%d,%.0f]", done, task.now() - t0, rss_kb(), collectgarbage("count"))
  end
end)
local elapsed = task.now() - t0
local first = (first_bad or ""):sub(1, 200):gsub('[%c"\\]', " ")
print(string.format('RESULT {"n":%d,"ok":%d,"fail":%d,"elapsed":%.6f,"first_error":"%s","samples":[%s]}',
  n, good, n - good, elapsed, first, table.concat(points, ",")))
return good == n and 0 or 1
