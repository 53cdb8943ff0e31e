-- thresholds.lua — pass/fail criteria for a run, as k6 has them ("p95<0.5", "success_rate>0.99"),
-- the metrics they are checked against (latency percentiles, counts, connection reuse), and the
-- one-line summary printed at the end of `luafetch get`. Used by cli_get.lua; the fetcher can use
-- the same API (see `M.plugin`).
--
--   local thresholds = require "thresholds"
--   local set = assert(thresholds.parse{ "p95<0.5", success_rate = ">0.99" })
--   local rec = thresholds.recorder()
--   rec:add{ success = true, elapsed = 0.12, reused = false }   -- once per URL
--   local metrics = rec:metrics()
--   local checks, ok = thresholds.evaluate(set, metrics)        -- ok: every threshold passed
--   print(thresholds.summary_line(metrics))
--   for _, line in ipairs(thresholds.report_lines(checks)) do print(line) end
--
-- Latency metrics are in seconds; percentiles are nearest-rank over every sample (k6 keeps every
-- sample of a trend too), exact up to 65,536 samples; past that the host folds them into a
-- histogram of fixed size, so a run of millions of URLs keeps flat memory, and percentiles are then
-- within 0.4% (min, max and avg stay exact).

local M = {}

--- Every metric a threshold may name, with what it means (also shown in error messages).
M.METRICS = {
  count = "URLs finished",
  succeeded = "URLs that succeeded",
  failed = "URLs that failed",
  success_rate = "succeeded / count (0..1)",
  failure_rate = "failed / count (0..1)",
  reused = "requests served over a pooled connection",
  reuse_rate = "reused / count (0..1)",
  min = "fastest URL, seconds", max = "slowest URL, seconds", avg = "mean, seconds",
  med = "median, seconds (p50)",
  rps = "URLs finished per second of the run",
  elapsed = "seconds the run took",
}
-- pN: any percentile 0 < N <= 100 (p50, p90, p95, p99, p99.9 ...)

local OPS = {
  ["<"] = function(a, b) return a < b end,
  ["<="] = function(a, b) return a <= b end,
  [">"] = function(a, b) return a > b end,
  [">="] = function(a, b) return a >= b end,
  ["=="] = function(a, b) return a == b end,
  ["!="] = function(a, b) return a ~= b end,
}

---@class Threshold
---@field name string    the expression as written ("p95<0.5")
---@field metric string  "p95", "success_rate", ...
---@field op string      one of < <= > >= == !=
---@field limit number   seconds for latency metrics (a "ms" suffix is converted)

---@param metric string
---@return boolean
local function known_metric(metric)
  if M.METRICS[metric] then return true end
  local n = tonumber(metric:match("^p(%d+%.?%d*)$"))
  return n ~= nil and n > 0 and n <= 100
end

---@param metric string
---@return boolean  a latency metric (in seconds)
local function is_latency(metric)
  return metric:match("^p%d") ~= nil or metric == "min" or metric == "max" or metric == "avg"
    or metric == "med"
end

--- One threshold from "METRIC OP NUMBER" ("p95<0.5", "p99 <= 250ms", "success_rate>0.99"), or
--- from a metric and "OP NUMBER" (the fetcher's table form: ["p95"] = "<0.5").
---@param expr string
---@param metric? string
---@return Threshold|nil threshold
---@return string|nil err
function M.parse_one(expr, metric)
  if type(expr) ~= "string" then
    return nil, "a threshold must be a string such as \"p95<0.5\", got " .. type(expr)
  end
  local name = metric and (metric .. expr) or expr
  local text = name:gsub("%s+", "")
  local m, op, number, unit = text:match("^([%a_][%w_%.]*)([<>=!]=?)(%-?%d*%.?%d+)(m?s?)$")
  if not m or not OPS[op] then
    return nil, string.format("bad threshold '%s': expected METRIC OP NUMBER, e.g. p95<0.5 or "
      .. "success_rate>0.99 (OP: < <= > >= == !=)", name)
  end
  if not known_metric(m) then
    local names = {}
    for k in pairs(M.METRICS) do names[#names + 1] = k end
    table.sort(names)
    return nil, string.format("bad threshold '%s': unknown metric '%s' (pN such as p95, %s)",
      name, m, table.concat(names, ", "))
  end
  local limit = tonumber(number)
  if unit ~= "" then
    if not is_latency(m) then
      return nil, string.format("bad threshold '%s': a unit (s, ms) only fits a latency metric", name)
    end
    if unit == "ms" then limit = limit / 1000 elseif unit ~= "s" then
      return nil, string.format("bad threshold '%s': unit '%s' (use s or ms)", name, unit)
    end
  end
  return { name = name, metric = m, op = op, limit = limit }
end

--- Thresholds from a string, an array of strings, a map metric → "OP NUMBER", or a mix of both
--- (array part first, then the map part in metric order).
---@param spec string|table|nil
---@return Threshold[]|nil thresholds
---@return string|nil err
function M.parse(spec)
  if spec == nil then return {} end
  if type(spec) == "string" then spec = { spec } end
  if type(spec) ~= "table" then
    return nil, "thresholds must be a string or a table, got " .. type(spec)
  end
  local out = {}
  for _, expr in ipairs(spec) do
    local t, err = M.parse_one(expr)
    if not t then return nil, err end
    out[#out + 1] = t
  end
  local keys = {}
  for k in pairs(spec) do
    if math.type(k) ~= "integer" or k < 1 or k > #spec then
      if type(k) ~= "string" then return nil, "a threshold key must be a metric name" end
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local t, err = M.parse_one(spec[k], k)
    if not t then return nil, err end
    out[#out + 1] = t
  end
  return out
end

---------------------------------------------------------------------------
-- Metrics
---------------------------------------------------------------------------

-- The durations of a run: in the luafetch host a C samples object (core/lua/lua_stats.c: no
-- table of thousands of numbers for the collector to walk, bounded memory), elsewhere a table.
-- Both answer add(x), add_all(t, n) (t[1..n]), add_field(t, n, key) (t[1][key]..t[n][key]),
-- percentile(p) (nearest rank), stats() → count, min, max, sum, and #.
local has_stats, stats = pcall(require, "_stats")
local TableSamples = {}
TableSamples.__index = TableSamples
function TableSamples:add(x)
  self[#self + 1] = x
  self.is_sorted = false
end
function TableSamples:add_all(t, n)
  for i = 1, n do self[#self + 1] = t[i] end
  self.is_sorted = false
end
function TableSamples:add_field(t, n, key)
  for i = 1, n do self[#self + 1] = t[i][key] end
  self.is_sorted = false
end
function TableSamples:sorted()
  local sorted = table.move(self, 1, #self, 1, {})
  table.sort(sorted)
  return sorted
end
function TableSamples:percentile(p)
  if not self.is_sorted then
    table.sort(self)
    self.is_sorted = true
  end
  return M.percentile(self, p)
end
function TableSamples:stats()
  local n, sum = #self, 0
  local min, max
  for i = 1, n do
    local d = self[i]
    sum = sum + d
    if not min or d < min then min = d end
    if not max or d > max then max = d end
  end
  return n, min, max, sum
end
local function new_samples()
  if has_stats then return stats.samples() end
  return setmetatable({}, TableSamples)
end

---@class Recorder
---@field durations table  samples: add(x), percentile(p), stats(), #
---@field count integer
---@field succeeded integer
---@field failed integer
---@field reused integer
---@field started number
local Recorder = {}
Recorder.__index = Recorder

--- A new recorder; `clock` gives seconds (default task.now when it exists, else os.clock).
---@param clock? fun(): number
---@return Recorder
function M.recorder(clock)
  if not clock then
    local ok, task = pcall(require, "task")
    clock = ok and task.now or os.clock
  end
  return setmetatable({ durations = new_samples(), count = 0, succeeded = 0, failed = 0, reused = 0,
                        clock = clock, started = clock() }, Recorder)
end

--- Count one finished URL: `success` (boolean), `elapsed` (seconds, any failure included: a
--- failed URL's time counts in the latency metrics too, as k6's does), `reused` (boolean).
---@param result { success: boolean, elapsed: number|nil, reused: boolean|nil }
function Recorder:add(result)
  self.count = self.count + 1
  if result.success then self.succeeded = self.succeeded + 1 else self.failed = self.failed + 1 end
  if result.reused then self.reused = self.reused + 1 end
  if type(result.elapsed) == "number" and result.elapsed == result.elapsed then
    self.durations:add(result.elapsed)
  end
end

--- The nearest-rank percentile `p` (0 < p <= 100) of a sorted array; nil when it is empty.
---@param sorted number[]
---@param p number
---@return number|nil
function M.percentile(sorted, p)
  local n = #sorted
  if n == 0 then return nil end
  local rank = math.ceil(p / 100 * n)
  return sorted[math.max(1, math.min(n, rank))]
end

---@class Metrics
---@field count integer
---@field succeeded integer
---@field failed integer
---@field success_rate number
---@field failure_rate number
---@field reused integer
---@field reuse_rate number
---@field min number|nil
---@field max number|nil
---@field avg number|nil
---@field med number|nil
---@field p50 number|nil
---@field p90 number|nil
---@field p95 number|nil
---@field p99 number|nil
---@field elapsed number
---@field rps number
---@field percentile fun(p: number): number|nil  any other percentile of the durations

--- A new, empty samples object for durations (`add(x)`, `percentile(p)`, `stats()`), as a
--- Recorder keeps them.
M.samples = new_samples

--- The metrics of a run from its counts, its durations (a samples object) and its length.
---@return Metrics
function M.metrics_of(count, succeeded, failed, reused, durations, elapsed)
  local n, min, max, sum = durations:stats()
  local function percentile(p) return durations:percentile(p) end
  return {
    count = count, succeeded = succeeded, failed = failed,
    -- an empty run has nothing that failed: success_rate 1 keeps "success_rate>0.99" honest only
    -- when something ran, so count is there to check too
    success_rate = count > 0 and succeeded / count or 1,
    failure_rate = count > 0 and failed / count or 0,
    reused = reused, reuse_rate = count > 0 and reused / count or 0,
    min = min, max = max, avg = n > 0 and sum / n or nil,
    med = percentile(50), p50 = percentile(50), p90 = percentile(90), p95 = percentile(95),
    p99 = percentile(99),
    elapsed = elapsed, rps = elapsed > 0 and count / elapsed or 0,
    percentile = percentile,
  }
end

--- The metrics of what was added so far.
---@return Metrics
function Recorder:metrics()
  return M.metrics_of(self.count, self.succeeded, self.failed, self.reused, self.durations,
    self.clock() - self.started)
end

---@param metrics Metrics
---@param metric string
---@return number|nil
local function value_of(metrics, metric)
  local v = metrics[metric]
  if v == nil then
    local p = tonumber(metric:match("^p(%d+%.?%d*)$"))
    if p and metrics.percentile then v = metrics.percentile(p) end
  end
  return v
end

---@class ThresholdCheck
---@field threshold Threshold
---@field name string
---@field value number|nil   nil: no sample (a latency metric of an empty run): the check fails
---@field ok boolean

--- Check every threshold against `metrics`.
---@param list Threshold[]
---@param metrics Metrics
---@return ThresholdCheck[] checks
---@return boolean ok  every threshold passed
function M.evaluate(list, metrics)
  local checks, all = {}, true
  for _, t in ipairs(list) do
    local v = value_of(metrics, t.metric)
    local ok = v ~= nil and OPS[t.op](v, t.limit)
    checks[#checks + 1] = { threshold = t, name = t.name, value = v, ok = ok }
    all = all and ok
  end
  return checks, all
end

---------------------------------------------------------------------------
-- Text
---------------------------------------------------------------------------

--- Seconds as "12.3ms" or "1.24s".
---@param s number|nil
---@return string
function M.format_seconds(s)
  if s == nil then return "-" end
  if s < 1 then return string.format("%.1fms", s * 1000) end
  return string.format("%.2fs", s)
end

--- The one-line summary, k6-style:
--- `3 URLs: 2 ok, 1 failed (66.7% ok) in 0.52s, 5.8/s; p50 12.3ms p95 40.1ms p99 41.0ms max 45.0ms; 2/3 reused a connection`
---@param m Metrics
---@return string
function M.summary_line(m)
  return string.format("%d URL%s: %d ok, %d failed (%.1f%% ok) in %s, %.1f/s; "
    .. "p50 %s p95 %s p99 %s max %s; %d/%d reused a connection",
    m.count, m.count == 1 and "" or "s", m.succeeded, m.failed, m.success_rate * 100,
    M.format_seconds(m.elapsed), m.rps, M.format_seconds(m.p50), M.format_seconds(m.p95),
    M.format_seconds(m.p99), M.format_seconds(m.max), m.reused, m.count)
end

--- One line per check: "threshold p95<0.5: ok (p95 = 40.1ms)" or "... FAILED (...)".
---@param checks ThresholdCheck[]
---@param only_failed? boolean
---@return string[]
function M.report_lines(checks, only_failed)
  local lines = {}
  for _, c in ipairs(checks) do
    if not (only_failed and c.ok) then
      local t = c.threshold
      local shown
      if c.value == nil then shown = "no samples"
      elseif is_latency(t.metric) then shown = M.format_seconds(c.value)
      else shown = string.format("%.4g", c.value) end
      lines[#lines + 1] = string.format("threshold %s: %s (%s = %s)", c.name,
        c.ok and "ok" or "FAILED", t.metric, shown)
    end
  end
  return lines
end

---------------------------------------------------------------------------
-- For the fetcher
---------------------------------------------------------------------------

--- A fetcher plugin that records every result (on_start resets it) and checks `spec` at the end
--- of each run. After the run: `plugin.metrics`, `plugin.checks`, `plugin.ok` (false when a
--- threshold failed: the caller turns that into exit status 1). Raises on a bad spec.
---@param spec string|table
---@return table plugin
function M.plugin(spec)
  local list, err = M.parse(spec)
  if not list then error(err, 2) end
  local plugin = { name = "thresholds", thresholds = list, ok = true }
  local rec = M.recorder()
  function plugin.on_start() rec = M.recorder() end
  function plugin.on_result(_, result) rec:add(result) end
  function plugin.on_finish()
    plugin.metrics = rec:metrics()
    plugin.checks, plugin.ok = M.evaluate(list, plugin.metrics)
  end
  return plugin
end

return M
