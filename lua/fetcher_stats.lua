-- fetcher_stats.lua — one run of the fetcher (a fetch_urls, each or fetch call): its counters,
-- its thresholds (lua/thresholds.lua), and the stats it ends with.

local http = require "http"
local task = require "task"
local logger = require "plugins.logger"
local thresholds = require "thresholds"
local hooks = require "fetcher_hooks"

local M = {}

---@return table
local function http_stats()
  local ok, stats = pcall(http.stats)
  return ok and type(stats) == "table" and stats or {}
end

--- The `thresholds` option parsed (nil when absent); a bad one raises.
---@param spec any
---@return Threshold[]|nil
function M.parse_thresholds(spec)
  if spec == nil then return nil end
  local list, err = thresholds.parse(spec)
  if not list then error("fetcher: " .. err, 3) end
  return list
end

---@class FetchRun
---@field started number
---@field hooks table<string, LoadedPlugin[]>  plugins by hook, for this run
---@field sees_requests boolean  a plugin has on_request, on_response or on_error
---@field log Logger
---@field recorder Recorder|nil  with thresholds
---@field abort any              the error that stops the run

--- A new run of fetcher `f`.
---@param f Fetcher
---@return FetchRun
function M.begin(f)
  local by_hook = hooks.index(f.plugins)
  return { started = task.now(), http_before = http_stats(), count = 0,
           succeeded = 0, failed = 0, attempts = 0, retries = 0, bytes = 0,
           rejected = 0, hook_errors = 0, abort = nil,
           hooks = by_hook, log = f.logger or logger.get(),
           -- a hook that is handed the request: each attempt builds one (request_of)
           sees_requests = (by_hook.on_request or by_hook.on_response or by_hook.on_error) ~= nil,
           recorder = f.thresholds and thresholds.recorder() or nil }
end

---@class FetchStats
---@field count integer          URLs finished
---@field succeeded integer
---@field failed integer
---@field attempts integer       requests sent
---@field retries integer
---@field rejected integer       attempts refused by the breaker
---@field bytes integer          body bytes received (final responses)
---@field elapsed number         seconds for the run
---@field requests_per_sec number  URLs finished per second
---@field http table             http.stats() counters during the run
---@field breaker table|nil      breaker:states() at the end
---@field hook_errors integer
---@field thresholds ThresholdCheck[]|nil  with the thresholds option: every check
---@field thresholds_ok boolean|nil        every threshold passed
---@field failed_thresholds string[]|nil   the thresholds that failed, as written ("p95<0.5")

--- Close a run: its stats, thresholds checked (failures logged at WARNING), on_finish hooks.
---@param f Fetcher
---@param run FetchRun
---@param results table|nil
---@return FetchStats
function M.finish(f, run, results)
  local elapsed = task.now() - run.started
  local after = http_stats()
  local delta = {}
  for k, v in pairs(after) do
    if type(v) == "number" then
      delta[k] = k == "in_flight" and v or v - (run.http_before[k] or 0)
    end
  end
  local stats = {
    count = run.count, succeeded = run.succeeded, failed = run.failed,
    attempts = run.attempts, retries = run.retries, rejected = run.rejected,
    bytes = run.bytes, elapsed = elapsed,
    requests_per_sec = elapsed > 0 and run.count / elapsed or 0,
    http = delta, breaker = f.breaker and f.breaker:states() or nil,
    hook_errors = run.hook_errors,
  }
  if run.recorder then
    local checks, ok = thresholds.evaluate(f.thresholds, run.recorder:metrics())
    local failed = {}
    for _, c in ipairs(checks) do
      if not c.ok then failed[#failed + 1] = c.name end
    end
    stats.thresholds, stats.thresholds_ok, stats.failed_thresholds = checks, ok, failed
    for _, line in ipairs(thresholds.report_lines(checks, true)) do run.log:warning("%s", line) end
  end
  f.last_stats = stats
  local list = run.hooks.on_finish
  if list then hooks.call2(list, run, run.log, "on_finish", results, stats) end
  stats.hook_errors = run.hook_errors
  run.log:debug("fetched %d URL(s): %d ok, %d failed, %d retries in %.3fs",
    stats.count, stats.succeeded, stats.failed, stats.retries, elapsed)
  return stats
end

return M
