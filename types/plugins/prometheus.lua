---@meta plugins.prometheus
-- LuaLS stubs for `require "plugins.prometheus"`: metrics in the Prometheus text exposition
-- format, served with http.serve or written as a node_exporter textfile.

---@class plugins.prometheus
---@field CONTENT_TYPE string
local prometheus = {}

---@class PromFamily
---@field name string
---@field help string
---@field type "gauge"|"counter"|"histogram"
local PromFamily = {}
---@param labels? table<string, string>
---@param v number
function PromFamily:set(labels, v) end
---@param labels? table<string, string>
---@param v? number  default 1
function PromFamily:inc(labels, v) end
---@param labels? table<string, string>
---@param v number
function PromFamily:observe(labels, v) end
---@param labels? table<string, string>
---@return number|nil
function PromFamily:get(labels) end
---@param match table<string, string>
function PromFamily:remove(match) end

---@class PrometheusOptions
---@field namespace? string   prefix of the built-in metric names ("luafetch")
---@field per_target? boolean per-target probe gauges (true)
---@field http_stats? boolean mirror http.stats() at render (true)
---@field buckets? number[]
---@field textfile? string    written atomically at every on_finish
---@field logger? Logger

---@class Prometheus: FetcherPlugin
local Prometheus = {}
---@param name string
---@param help string
---@param label_names? string[]
---@return PromFamily
function Prometheus:gauge(name, help, label_names) end
---@return PromFamily
function Prometheus:counter(name, help, label_names) end
---@param buckets? number[]
---@return PromFamily
function Prometheus:histogram(name, help, buckets, label_names) end
---Records one probe (a FetchResult, or a table with success, status, kind, timings, tls).
function Prometheus:observe(name, url, result, err, kind) end
---@param name string
function Prometheus:forget(name) end
---@return string  the exposition text
function Prometheus:render() end
---@param path string
---@return boolean|nil ok
---@return string|nil err
function Prometheus:write_textfile(path) end
---A handler for http.serve.
---@param opts? { path?: string }
---@return fun(req: ServerRequest): ServerResponse
function Prometheus:handler(opts) end

---@param opts? PrometheusOptions
---@return Prometheus
function prometheus.new(opts) end

return prometheus
