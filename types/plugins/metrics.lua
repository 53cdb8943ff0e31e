---@meta plugins.metrics
-- LuaLS stubs for `require "plugins.metrics"`: counts, latency percentiles, reuse; logs a summary
-- at the end of each fetch.

---@class plugins.metrics
local metrics = {}

---@class MetricsSummary
---@field count integer
---@field succeeded integer
---@field failed integer
---@field success_rate number        0..1
---@field elapsed number
---@field requests_per_sec number
---@field p50 number|nil
---@field p95 number|nil
---@field p99 number|nil
---@field max number|nil
---@field reuse_rate number|nil
---@field retries integer
---@field bytes integer
---@field kinds table<string, integer>
---@field circuits table<string, string>

---@class MetricsOptions
---@field logger? Logger
---@field level? string        level of the summary line (INFO)
---@field max_samples? integer latencies kept exactly (10000), then a uniform sample
---@field breaker? Breaker
---@field silent? boolean      keep the summary without logging it

---@class MetricsPlugin: FetcherPlugin
---@field last MetricsSummary|nil  the summary of the last run

---@param opts? MetricsOptions
---@return MetricsPlugin
function metrics.new(opts) end

---@param sorted number[]
---@param p number
---@return number|nil
function metrics.percentile(sorted, p) end

---@param bytes integer
---@return string
function metrics.format_bytes(bytes) end

---@param s MetricsSummary
---@return string
function metrics.describe(s) end

return metrics
