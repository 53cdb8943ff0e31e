-- health_check.lua — check a list of endpoints concurrently and print UP/DOWN with latency.
--
-- usage: luafetch run scripts/health_check.lua URL...
--        (or edit DEFAULT_URLS below)
-- Exit status: 0 when every endpoint answered 2xx/3xx, 1 otherwise.
local http = require "http"
local task = require "task"

local DEFAULT_URLS = {
  "http://127.0.0.1:8080/health",
}
local MAX_CONCURRENT = 20
local TIMEOUT = 5

local urls = #arg > 0 and arg or DEFAULT_URLS

local sem = task.semaphore(MAX_CONCURRENT)
local checks = {}
local started = task.now()
for i, url in ipairs(urls) do
  checks[i] = task.spawn(function()
    sem:acquire()
    local res, err, kind = http.get(url, { timeout = TIMEOUT })
    sem:release()
    if not res then
      return { url = url, up = false, detail = kind .. ": " .. err }
    end
    local up = res.status < 400
    return { url = url, up = up, status = res.status, ms = res.timings.total * 1000, size = #res.body }
  end)
end

local down = 0
for i = 1, #checks do
  local _, r = checks[i]:join()
  if r.up then
    print(("UP    %-50s %d  %7.1f ms  %6d bytes"):format(r.url, r.status, r.ms, r.size))
  else
    down = down + 1
    print(("DOWN  %-50s %s"):format(r.url, r.detail or ("status " .. r.status)))
  end
end

local stats = http.stats()
print(("\n%d checked, %d down, in %.3f s; %d connections opened, %d reused"):format(
  #urls, down, task.now() - started, stats.connections_opened, stats.connections_reused))
return down == 0 and 0 or 1
