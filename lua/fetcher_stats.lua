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
---@field samples table|nil  durations (thresholds.samples), with thresholds or the summary line
---@field pending number[]|nil  durations not yet in samples: the first npending (M.BATCH at most);
---                             nil when the run hands them over from its list of results at the end
---@field npending integer
---@field reused integer      URLs whose last response came over a pooled connection
---@field abort any              the error that stops the run

-- Durations reach the samples object this many at a time (one call instead of one per URL);
-- the runner fills run.pending and hands it over when full, M.finish hands over the rest.
M.BATCH = 256

--- A new run of fetcher `f`.
---@param f Fetcher
---@return FetchRun
function M.begin(f)
  local by_hook = hooks.index(f.plugins)
  local samples = (f.thresholds or f.summary) and thresholds.samples() or nil
  return { started = task.now(), http_before = http_stats(), count = 0,
           succeeded = 0, failed = 0, attempts = 0, retries = 0, bytes = 0,
           rejected = 0, hook_errors = 0, abort = nil,
           hooks = by_hook, log = f.logger or logger.get(),
           -- a hook that is handed the request: each attempt builds one (request_of)
           sees_requests = (by_hook.on_request or by_hook.on_response or by_hook.on_error) ~= nil,
           samples = samples, pending = samples and {}, npending = 0, reused = 0 }
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
---@field latency table|nil    p50, p90, p95, p99 and max seconds of the URLs (failures included)
---@field reused integer|nil    URLs whose last response came over a pooled connection
---@field summary string|nil    the k6-like summary line (logged at INFO unless summary = false)
---@field thresholds ThresholdCheck[]|nil  with the thresholds option: every check
---@field thresholds_ok boolean|nil        every threshold passed
---@field failed_thresholds string[]|nil   the thresholds that failed, as written ("p95<0.5")

--- True when a loaded plugin (plugins.metrics) logs a summary of its own.
---@param f Fetcher
---@return boolean
function M.plugin_logs_summary(f)
  for _, p in ipairs(f.plugins) do
    if p.plugin.logs_summary then return true end
  end
  return false
end

--- Close a run: its stats and thresholds checked, the on_finish hooks, then the summary line
--- (INFO) and the failed thresholds (WARNING).
---@param f Fetcher
---@param run FetchRun
---@param results table|nil
---@return FetchStats
function M.finish(f, run, results)
  local elapsed = task.now() - run.started
  if run.npending > 0 then
    run.samples:add_all(run.pending, run.npending)
    run.npending = 0
  end
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
  local metrics = run.samples and thresholds.metrics_of(run.count, run.succeeded, run.failed, run.reused,
                                                        run.samples, elapsed)
  local failed_lines
  if metrics then
    stats.latency = { p50 = metrics.p50, p90 = metrics.p90, p95 = metrics.p95, p99 = metrics.p99,
                      max = metrics.max }
    stats.reused = metrics.reused
    stats.summary = thresholds.summary_line(metrics)
  end
  if f.thresholds then
    local checks, ok = thresholds.evaluate(f.thresholds, metrics)
    local failed = {}
    for _, c in ipairs(checks) do
      if not c.ok then failed[#failed + 1] = c.name end
    end
    stats.thresholds, stats.thresholds_ok, stats.failed_thresholds = checks, ok, failed
    failed_lines = thresholds.report_lines(checks, true)
  end
  f.last_stats = stats
  local list = run.hooks.on_finish
  if list then hooks.call2(list, run, run.log, "on_finish", results, stats) end
  stats.hook_errors = run.hook_errors
  -- after on_finish, so a progress bar has ended its line; a run that fetched nothing has
  -- nothing to report
  if f.summary and run.count > 0 and not M.plugin_logs_summary(f) then
    run.log:info("%s", stats.summary)
  end
  if failed_lines then
    for _, line in ipairs(failed_lines) do run.log:warning("%s", line) end
  end
  return stats
end

return M
