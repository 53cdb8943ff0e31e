-- soak.lua — TASKS tasks loop over the fixture server's fault endpoints for SECONDS, while a sampler
-- records this process's RSS, open fds and Lua heap every quarter second and prints a line every PRINT
-- seconds (the largest RSS seen in the window, so a short spike is not missed).
--   luafetch run tests/soak/soak.lua BASE_URL SECONDS [TASKS] [PRINT]
-- Ends with a summary; exits 1 when memory or fds keep growing or RSS passes SOAK_MAX_RSS_MB.
local http = require "http"
local task = require "task"

local base = assert(arg[1], "usage: soak.lua BASE_URL SECONDS [TASKS] [PRINT]")
local seconds = tonumber(arg[2]) or 600
local ntasks = math.tointeger(tonumber(arg[3] or "")) or 1000
local print_every = tonumber(arg[4]) or 5
local max_rss_mb = tonumber(os.getenv("SOAK_MAX_RSS_MB") or "") or 120

-- The endpoints (tests/fixtures/README.md): each with the options a careful script would use.
-- A request that fails is part of the load: only the outcome is counted.
local T = { timeout = 3 }
local BOMB = "/gzip-bomb/209715200"
local endpoints = {
  { "/status/200", T }, { "/status/503", T }, { "/status/204", T }, { "/json", T },
  { "/echo", { timeout = 3, method = "POST", body = string.rep("b", 3000) } },
  { "/bytes/20000", T }, { "/chunked/20000?chunks=10&trailer=1", T }, { "/eof/20000", T },
  { "/gzip/50000", T }, { "/deflate/50000", T },
  { BOMB, { timeout = 3, max_body = 1024 * 1024 } },
  { "/delay/0.5", T }, { "/silence", { timeout = 1 } }, { "/drip?bytes=20&interval=0.05", T },
  { "/headers-then-stall", { timeout = 1 } }, { "/truncated", T }, { "/truncated-chunked", T },
  { "/reset", T }, { "/reset-mid", T }, { "/close-no-response", T }, { "/garbage", T },
  { "/badchunk", T }, { "/conflict", T }, { "/double-cl", T },
  { "/huge-headers?size=100000", T }, { "/many-headers?count=300", T },
  { "/redirect/3", T }, { "/loop", T }, { "/close", T }, { "/http10", T },
  { "/keepalive-then-close?after=0.05", T }, { "/repeat-headers", T },
}

-- SOAK_SKIP: a Lua pattern; endpoints whose path matches it are left out (to bisect a spike)
local skip = os.getenv("SOAK_SKIP")
if skip and skip ~= "" then
  for n = #endpoints, 1, -1 do
    if endpoints[n][1]:find(skip) then table.remove(endpoints, n) end
  end
end

local pid = assert(io.open("/proc/self/stat")):read("l"):match("^(%d+)")

local function rss_kib()
  local fh = assert(io.open("/proc/self/status"))
  local status = fh:read("a")
  fh:close()
  return tonumber(status:match("VmRSS:%s*(%d+)")), tonumber(status:match("VmHWM:%s*(%d+)"))
end

-- Lua cannot list a directory; ls does, for this process's pid (not its own).
local function fd_count()
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return (n or 0) - 1 -- the pipe to ls
end

local outcomes, requests = {}, 0
local inflight = {} -- endpoint index -> tasks in a request to it now
local deadline = task.now() + seconds
local started = task.now()

local function worker(id)
  local i = id
  while task.now() < deadline do
    local n = i % #endpoints + 1
    local e = endpoints[n]
    i = i + 1
    local opts = e[2]
    local r, _, kind
    inflight[n] = (inflight[n] or 0) + 1
    if opts.method == "POST" then
      r, _, kind = http.post(base .. e[1], opts.body, { timeout = opts.timeout })
    else
      r, _, kind = http.get(base .. e[1], opts)
    end
    inflight[n] = inflight[n] - 1
    local key = r and ("http " .. r.status) or kind or "?"
    outcomes[key] = (outcomes[key] or 0) + 1
    requests = requests + 1
  end
end

local series = {}
local function sampler()
  local window_rss, last_requests, crowd, crowd_at, bombs = 0, 0, 0, 1, 0
  local bomb_at
  for n, e in ipairs(endpoints) do if e[1] == BOMB then bomb_at = n end end
  local next_print = started + print_every
  print(string.format("soak: %d tasks over %d endpoints of %s for %d s", ntasks, #endpoints, base, seconds))
  print("    t_s  rss_mb  max_rss_mb  fds  lua_heap_mb  req_per_s  max_bombs  most_tasks_on_one_endpoint")
  while task.now() < deadline + 0.5 do
    task.sleep(0.25)
    local rss = rss_kib()
    if rss > window_rss then window_rss = rss end
    if bomb_at and (inflight[bomb_at] or 0) > bombs then bombs = inflight[bomb_at] end
    -- the largest crowd of tasks on one endpoint in the window: convoys explain spikes
    for n = 1, #endpoints do
      if (inflight[n] or 0) > crowd then crowd, crowd_at = inflight[n], n end
    end
    if task.now() >= next_print then
      local now = task.now()
      local s = {
        t = now - started, rss = rss / 1024, max_rss = window_rss / 1024, fds = fd_count(),
        heap = collectgarbage("count") / 1024,
        rate = (requests - last_requests) / (now - next_print + print_every),
      }
      series[#series + 1] = s
      s.bombs = bombs
      print(string.format("%7.0f %7.1f %11.1f %4d %12.1f %10.0f %10d  %d %s", s.t, s.rss, s.max_rss,
        s.fds, s.heap, s.rate, bombs, crowd, endpoints[crowd_at][1]))
      io.stdout:flush()
      window_rss, last_requests, crowd, bombs = 0, requests, 0, 0
      next_print = next_print + print_every
    end
  end
end

local workers = {}
for id = 1, ntasks do workers[id] = task.spawn(worker, id) end
local s = task.spawn(sampler)
for _, w in ipairs(workers) do w:join() end
s:join()

-- Summary. Growth is judged by quarters: a leak keeps climbing, so the last quarter's lowest
-- reading would pass the second quarter's highest; a plateau (the allocator keeping what a burst
-- took) does not. The first quarter is warm-up.
local _, hwm = rss_kib()
local keys = {}
for k in pairs(outcomes) do keys[#keys + 1] = k end
table.sort(keys)
local parts = {}
for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. outcomes[k] end
print(string.format("requests: %d in %.0f s (%.0f/s); outcomes: %s", requests, task.now() - started,
  requests / (task.now() - started), table.concat(parts, " ")))
local function range(from, to, field, pick)
  local v
  for k = math.max(1, from), math.min(#series, to) do
    local x = series[k][field]
    if v == nil or pick(x, v) then v = x end
  end
  return v or 0
end
local gt, lt = function(a, b) return a > b end, function(a, b) return a < b end
local q = #series / 4
local q2_rss, q4_rss = range(math.floor(q) + 1, math.floor(2 * q), "rss", gt),
  range(math.floor(3 * q) + 1, #series, "rss", lt)
local q2_fds, q4_fds = range(math.floor(q) + 1, math.floor(2 * q), "fds", gt),
  range(math.floor(3 * q) + 1, #series, "fds", lt)
local peak = range(1, #series, "max_rss", gt)
print(string.format("RSS: highest in the 2nd quarter %.1f MB, lowest in the 4th %.1f MB; peak %.1f MB "
  .. "(VmHWM %.1f MB); fds: %d -> %d; Lua heap %.1f -> %.1f MB", q2_rss, q4_rss, peak, hwm / 1024,
  q2_fds, q4_fds, series[1] and series[1].heap or 0, series[#series] and series[#series].heap or 0))
local bad = {}
if hwm / 1024 > max_rss_mb then
  bad[#bad + 1] = string.format("peak RSS %.1f MB over SOAK_MAX_RSS_MB=%d", hwm / 1024, max_rss_mb)
end
if #series >= 8 and q4_rss > q2_rss + 16 then
  bad[#bad + 1] = string.format("RSS still growing: %.1f MB -> %.1f MB", q2_rss, q4_rss)
end
if #series >= 8 and q4_fds > q2_fds + 64 then
  bad[#bad + 1] = string.format("fds still growing: %d -> %d", q2_fds, q4_fds)
end
if #bad > 0 then
  print("soak: FAIL: " .. table.concat(bad, "; "))
  return 1
end
print("soak: ok")
return 0
