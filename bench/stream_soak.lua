-- bench/stream_soak.lua: the streaming fetcher (f:each) over many URLs, with the
-- process's resident memory sampled as it goes, to show that memory stays flat.
--
--   luafetch run bench/stream_soak.lua [COUNT] [BASE_URL] [CONCURRENCY]
--
-- COUNT defaults to 100000, BASE_URL to $FIXTURE_URL (e.g. the fixture server:
-- `python3 tests/fixtures/server.py` prints its port), CONCURRENCY to 50.
-- Each URL is BASE_URL/bytes/<64..127>?i=<n>, so every URL is distinct.
-- Prints RSS every 10% and a summary: time, rate, first/last/peak RSS, and
-- whether the growth between 10% and 100% stayed under 10 MiB. Exit 1 if not.

local fetcher = require "fetcher"
local metrics = require "plugins.metrics"
local logger = require "plugins.logger"
local task = require "task"

local count = math.tointeger(tonumber(arg and arg[1] or "") or 100000)
local base = (arg and arg[2]) or os.getenv("FIXTURE_URL")
local concurrency = math.tointeger(tonumber(arg and arg[3] or "") or 50)
if not base then
  error({ exit_code = 2, message = "usage: stream_soak.lua [COUNT] BASE_URL [CONCURRENCY] (or set FIXTURE_URL)" })
end

--- Resident and peak resident memory of this process, in KiB.
---@return integer rss
---@return integer peak
local function memory_kib()
  local fh = assert(io.open("/proc/self/status"))
  local status = fh:read("a")
  fh:close()
  return tonumber(status:match("VmRSS:%s*(%d+)")), tonumber(status:match("VmHWM:%s*(%d+)"))
end

local log = logger.new{ format = "{message}", output = io.stdout }
local m = metrics.new{ logger = log }
local f = fetcher.new{ max_concurrent = concurrency, max_retries = 1,
                       backoff_factor = 0.05, keep_body = false, plugins = { m } }

local produced = 0
local function next_url()
  if produced >= count then return nil end
  produced = produced + 1
  return string.format("%s/bytes/%d?i=%d", base, 64 + produced % 64, produced)
end

local samples = {}
local step = math.max(count // 10, 1)
local done, failed = 0, 0
local started = task.now()
log:info("stream soak: %d URLs, concurrency %d, base %s", count, concurrency, base)

f:each(next_url, function(_, result)
  done = done + 1
  if not result.success then failed = failed + 1 end
  if done % step == 0 then
    collectgarbage("step")
    local rss = memory_kib()
    samples[#samples + 1] = rss
    log:info("%7d done  %6.1fs  RSS %6.1f MiB  Lua heap %6.1f MiB", done,
      task.now() - started, rss / 1024, collectgarbage("count") / 1024)
  end
end)

local elapsed = task.now() - started
local rss, peak = memory_kib()
local first = samples[1] or rss
local growth = (samples[#samples] or rss) - first
log:info("done: %d URLs (%d failed) in %.1fs = %.0f URLs/s", done, failed, elapsed, done / elapsed)
log:info("RSS at 10%%: %.1f MiB, at the end: %.1f MiB, growth %.1f MiB, peak RSS %.1f MiB",
  first / 1024, rss / 1024, growth / 1024, peak / 1024)
if growth > 10 * 1024 then
  error({ exit_code = 1, message = "FAIL: memory grew by more than 10 MiB" })
end
log:info("OK: memory stayed flat")
