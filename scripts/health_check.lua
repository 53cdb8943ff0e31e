-- health_check.lua — check a list of endpoints concurrently and print UP/DOWN with latency.
--
-- usage: luafetch run health_check [--timeout S] [--concurrency N] URL...   (--help)
-- Exit status: 0 when every endpoint answered 2xx/3xx, 1 otherwise, 2 bad usage.
local http = require "http"
local task = require "task"
local argparse = require "argparse"

local function positive(name)
  return function(text)
    local n = tonumber(text)
    if not n or n <= 0 then return nil, name .. " needs a positive number, got '" .. text .. "'" end
    return n
  end
end

local parser = argparse("luafetch run health_check",
  "Check endpoints concurrently and print UP/DOWN with latency.",
  "Exit status: 0 every endpoint answered 2xx/3xx, 1 otherwise, 2 bad usage.")
parser:add_help(false)
parser:flag("-h --help", "Show this help and exit.")
parser:argument("urls", "The endpoints to check."):args("*")
parser:option("--timeout", "Seconds per check (5)."):argname("<s>"):convert(positive("--timeout"))
parser:option("-c --concurrency", "Checks in flight at most (20)."):argname("<n>"):convert(positive("--concurrency"))

local ok, opts = parser:pparse(arg)
if not ok then error({ exit_code = 2, message = "health_check.lua: " .. opts .. " (try --help)" }, 0) end
if opts.help then
  io.stdout:write(parser:get_help(), "\n")
  return 0
end
if #opts.urls == 0 then
  error({ exit_code = 2, message = "health_check.lua: no URL given (try --help)" }, 0)
end
local urls = opts.urls
local MAX_CONCURRENT = math.floor(opts.concurrency or 20)
local TIMEOUT = opts.timeout or 5

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
