---@meta thresholds
-- LuaLS stubs for `require "thresholds"` (lua/thresholds.lua): k6-style pass/fail criteria,
-- the metrics they are checked against, and the summary line of `luafetch get`.

---@class thresholds
---@field METRICS table<string, string>  metric name → meaning (plus pN: any percentile)
local thresholds = {}

---@class Threshold
---@field name string    the expression as written ("p95<0.5")
---@field metric string
---@field op "<"|"<="|">"|">="|"=="|"!="
---@field limit number   seconds for latency metrics ("250ms" is converted)

---@class ThresholdCheck
---@field threshold Threshold
---@field name string
---@field value number|nil  nil: no sample, and the check fails
---@field ok boolean

---@class ThresholdMetrics
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
---@field sorted number[]

---@class ThresholdRecorder
local Recorder = {}
---Counts one finished URL (a FetchResult does).
---@param result { success: boolean, elapsed: number|nil, reused: boolean|nil }
function Recorder:add(result) end
---@return ThresholdMetrics
function Recorder:metrics() end

---"METRIC OP NUMBER", or a metric and "OP NUMBER".
---@param expr string
---@param metric? string
---@return Threshold|nil, string|nil
function thresholds.parse_one(expr, metric) end

---A string, an array of strings, a map metric → "OP NUMBER", or both.
---@param spec string|string[]|table<string, string>|nil
---@return Threshold[]|nil, string|nil
function thresholds.parse(spec) end

---@param clock? fun(): number
---@return ThresholdRecorder
function thresholds.recorder(clock) end

---Nearest-rank percentile of a sorted array.
---@param sorted number[]
---@param p number
---@return number|nil
function thresholds.percentile(sorted, p) end

---@param list Threshold[]
---@param metrics ThresholdMetrics
---@return ThresholdCheck[] checks
---@return boolean ok
function thresholds.evaluate(list, metrics) end

---@param s number|nil
---@return string
function thresholds.format_seconds(s) end

---@param m ThresholdMetrics
---@return string
function thresholds.summary_line(m) end

---@param checks ThresholdCheck[]
---@param only_failed? boolean
---@return string[]
function thresholds.report_lines(checks, only_failed) end

---A fetcher plugin that records results and checks `spec` at each on_finish: then
---plugin.metrics, plugin.checks and plugin.ok.
---@param spec string|string[]|table<string, string>
---@return FetcherPlugin|{ ok: boolean, checks: ThresholdCheck[]|nil, metrics: ThresholdMetrics|nil }
function thresholds.plugin(spec) end

return thresholds
