-- many_downloads.lua — N concurrent downloads to files with `output = PATH`: URL?i=1 .. URL?i=N
-- written to DIR/1.bin .. DIR/N.bin, either from N tasks (`task.spawn` + `http.download`) or
-- through `fetcher.new{ max_concurrent = N }` with `output` in each entry. Checks that every
-- download succeeded with status 200 and reports `RESULT {json}`: bytes, seconds, the peak RSS
-- (VmHWM) and, sampled every 10 ms, the peaks of RssAnon, RssFile and the Lua heap, so a peak can
-- be placed on the C side (malloc) or the Lua side. The sizes and checksums of the files are
-- checked by the caller (bench/body_memory.sh). `slow` is the bound, not the target's workload:
-- N tasks whose consumer is slower than the network (a `sink` that writes DIR/i.bin and sleeps
-- 20 ms every 4th chunk, as a disk slower than loopback would be), so every download's buffer
-- fills to the pause threshold.
--
-- usage: luafetch run bench/many_downloads.lua URL N DIR tasks|fetcher|slow
local http = require "http"
local task = require "task"

local url, n, dir, mode = arg[1], tonumber(arg[2]), arg[3], arg[4]
if not (url and n and dir and (mode == "tasks" or mode == "fetcher" or mode == "slow")) then
  io.stderr:write("usage: luafetch run many_downloads.lua URL N DIR tasks|fetcher|slow\n")
  return 2
end

local function status_kb()
  local t = {}
  for line in io.lines("/proc/self/status") do
    local k, v = line:match("^(%w+):%s+(%d+) kB")
    if k then t[k] = tonumber(v) end
  end
  return t
end

-- Sampler: peaks of the anonymous and file-backed resident memory and of the Lua heap.
local peak = { anon = 0, file = 0, lua = 0 }
local running = true
local sampler = task.spawn(function()
  while running do
    local s = status_kb()
    if (s.RssAnon or 0) > peak.anon then peak.anon = s.RssAnon end
    if (s.RssFile or 0) > peak.file then peak.file = s.RssFile end
    local lua_kb = collectgarbage("count")
    if lua_kb > peak.lua then peak.lua = lua_kb end
    task.sleep(0.01)
  end
end)
-- the sampler stops however this chunk ends (the program ends when every task has ended)
local _ <close> = setmetatable({}, { __close = function() running = false end })

local function target(i) return ("%s/%d.bin"):format(dir, i) end
local function source(i) return ("%s?i=%d"):format(url, i) end

local t0 = task.now()
local failures = {}
-- a slow consumer: the body to the file, 20 ms asleep every 4th chunk
local function slow_download(i)
  local f <close> = assert(io.open(target(i), "wb"))
  local k = 0
  return http.request{ url = source(i), timeout = { read = 30 }, sink = function(chunk)
    assert(f:write(chunk))
    k = k + 1
    if k % 4 == 0 then task.sleep(0.02) end
  end }
end

if mode == "tasks" or mode == "slow" then
  local ts = {}
  for i = 1, n do
    ts[i] = task.spawn(function()
      if mode == "slow" then return slow_download(i) end
      return http.download(source(i), target(i), { timeout = { read = 30 } })
    end)
  end
  for i = 1, n do
    local ok, res, err = ts[i]:join()
    if not (ok and res and res.status == 200) then
      failures[#failures + 1] = ("%d: %s"):format(i, tostring(ok and (res and res.status or err) or res))
    end
  end
else
  local fetcher = require "fetcher"
  local f = fetcher.new{ max_concurrent = n, max_retries = 0, keep_body = false,
                         timeout = { read = 30 } }
  local entries = {}
  -- max_body = 1 applies to res.body only: with output honoured it changes nothing, and a
  -- fetcher that dropped output fails each entry at once (kind "limit") instead of holding
  -- N bodies in memory
  for i = 1, n do entries[i] = { url = source(i), output = target(i), key = i, max_body = 1 } end
  local _, _, list = f:fetch_urls(entries)
  if list[1] and list[1].kind == "limit" then
    error("the fetcher did not pass `output` on to http.request: the body went to res.body and "
      .. "hit this script's max_body = 1 guard (" .. tostring(list[1].error) .. ")")
  end
  for i = 1, n do
    local r = list[i]
    if not (r and r.success and r.status_code == 200) then
      failures[#failures + 1] = ("%d: %s"):format(i, r and tostring(r.error or r.status_code) or "no result")
    end
  end
end
local secs = task.now() - t0
running = false
sampler:join()
if #failures > 0 then
  error(("%d of %d downloads failed: %s"):format(#failures, n, table.concat(failures, "; ", 1, math.min(5, #failures))))
end
-- the bytes on disk (a fetcher result's `bytes` counts res.body, which output leaves nil)
local bytes = 0
for i = 1, n do
  local f = assert(io.open(target(i), "rb"))
  bytes = bytes + f:seek("end")
  f:close()
end
print(("RESULT {\"mode\": \"%s\", \"n\": %d, \"bytes\": %d, \"seconds\": %.3f, \"mb_per_s\": %.1f, "
  .. "\"peak_rss_kb\": %d, \"peak_anon_kb\": %d, \"peak_file_kb\": %d, \"peak_lua_kb\": %d}")
  :format(mode, n, bytes, secs, bytes / secs / 1e6, status_kb().VmHWM, peak.anon, peak.file,
          math.floor(peak.lua)))
