-- plugins/prometheus.lua: metrics in the Prometheus text exposition format 0.0.4, for scraping on
-- /metrics (`prom:handler()` with http.serve) or for node_exporter's textfile collector
-- (`prom:write_textfile(path)`, atomic). A fetcher plugin (per-target probe gauges, result
-- counters, a duration histogram, the last run) and a small registry of gauges, counters and
-- histograms for monitors. Each series exists once: families are keyed by name, series by labels.

local M = {}

--- The Content-Type of the exposition.
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

--- Default histogram buckets (seconds), as the Go and Python clients have them.
M.DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }

--- Timing phases reported by luafetch_probe_duration_seconds.
M.PHASES = { "dns", "connect", "tls", "ttfb", "total" }

---------------------------------------------------------------------------
-- The text format
---------------------------------------------------------------------------

--- A sample value as the format writes it: integers plainly, floats in the shortest form that
--- reads back the same, NaN, +Inf, -Inf.
---@param v number
---@return string
function M.format_value(v)
  if type(v) == "boolean" then return v and "1" or "0" end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if math.type(v) == "integer" then return tostring(v) end
  if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
  for digits = 15, 16 do
    local s = string.format("%." .. digits .. "g", v)
    if tonumber(s) == v then return s end
  end
  return string.format("%.17g", v)
end

--- A label value escaped: backslash, double quote and line feed.
---@param s any
---@return string
function M.escape_label(s)
  return (tostring(s):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

--- HELP text escaped: backslash and line feed.
---@param s string
---@return string
function M.escape_help(s)
  return (tostring(s):gsub("[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

---@param name string
---@return boolean
function M.valid_metric_name(name)
  return type(name) == "string" and name:match("^[%a_:][%w_:]*$") ~= nil
end

---@param name string
---@return boolean
function M.valid_label_name(name)
  return type(name) == "string" and name:match("^[%a_][%w_]*$") ~= nil
    and name:sub(1, 2) ~= "__"
end

---------------------------------------------------------------------------
-- Families: a metric name, its help, type, and its series by label set
---------------------------------------------------------------------------

---@class PromFamily
---@field name string
---@field help string
---@field type "gauge"|"counter"|"histogram"
---@field label_names string[]|nil  fixed label order (others follow, sorted)
---@field series table<string, table>  label text -> { labels = text, value = n } or histogram state
local Family = {}
Family.__index = Family

--- The label text of a label table: `a="x",b="y"` (declared names first, then sorted).
---@param labels table<string, any>|nil
---@return string
function Family:label_text(labels)
  if labels == nil or next(labels) == nil then return "" end
  local names, seen = {}, {}
  for _, n in ipairs(self.label_names or {}) do
    if labels[n] ~= nil then names[#names + 1] = n; seen[n] = true end
  end
  local rest = {}
  for n in pairs(labels) do
    if not seen[n] then
      if not M.valid_label_name(n) then
        error(string.format("prometheus: %s: bad label name %q", self.name, tostring(n)), 3)
      end
      rest[#rest + 1] = n
    end
  end
  table.sort(rest)
  for _, n in ipairs(rest) do names[#names + 1] = n end
  local parts = {}
  for i, n in ipairs(names) do parts[i] = n .. '="' .. M.escape_label(labels[n]) .. '"' end
  return table.concat(parts, ",")
end

---@param labels table|nil
---@return table series
function Family:child(labels)
  local text = self:label_text(labels)
  local s = self.series[text]
  if not s then
    local values = {}
    for k, v in pairs(labels or {}) do values[k] = tostring(v) end
    s = { labels = text, values = values, value = 0 }
    if self.type == "histogram" then
      s.counts, s.sum, s.count = {}, 0, 0
      for i = 1, #self.buckets do s.counts[i] = 0 end
    end
    self.series[text] = s
  end
  return s
end

---@param v any
---@return number
local function check_number(self, v)
  if type(v) == "boolean" then return v and 1 or 0 end
  if type(v) ~= "number" then
    error(string.format("prometheus: %s: value must be a number, got %s", self.name, type(v)), 3)
  end
  return v
end

--- Set a gauge (or a counter mirrored from another count) to v.
---@param labels table|nil
---@param v number|boolean
function Family:set(labels, v)
  if self.type == "histogram" then error("prometheus: " .. self.name .. " is a histogram", 2) end
  self:child(labels).value = check_number(self, v)
end

--- Add v (default 1); counters only go up.
---@param labels table|nil
---@param v? number
function Family:inc(labels, v)
  v = check_number(self, v == nil and 1 or v)
  if self.type == "counter" and v < 0 then
    error("prometheus: counter " .. self.name .. " cannot go down", 2)
  end
  if self.type == "histogram" then error("prometheus: " .. self.name .. " is a histogram", 2) end
  local s = self:child(labels)
  s.value = s.value + v
end

--- Record one observation in a histogram.
---@param labels table|nil
---@param v number
function Family:observe(labels, v)
  if self.type ~= "histogram" then error("prometheus: " .. self.name .. " is not a histogram", 2) end
  v = check_number(self, v)
  local s = self:child(labels)
  for i, bound in ipairs(self.buckets) do
    if v <= bound then s.counts[i] = s.counts[i] + 1 end
  end
  s.sum = s.sum + v
  s.count = s.count + 1
end

--- The value of one series (nil when absent).
---@param labels table|nil
---@return number|nil
function Family:get(labels)
  local s = self.series[self:label_text(labels)]
  if not s then return nil end
  if self.type == "histogram" then return s.count end
  return s.value
end

--- Remove one series, or every series whose labels include all of `match` (a partial table).
---@param match table|nil
---@return integer removed
function Family:remove(match)
  local removed = 0
  if match == nil then
    for k in pairs(self.series) do self.series[k] = nil; removed = removed + 1 end
    return removed
  end
  for k, s in pairs(self.series) do
    local all = true
    for name, v in pairs(match) do
      if s.values[name] ~= tostring(v) then all = false; break end
    end
    if all then self.series[k] = nil; removed = removed + 1 end
  end
  return removed
end

---@param out string[]
function Family:render(out)
  local keys = {}
  for k in pairs(self.series) do keys[#keys + 1] = k end
  if #keys == 0 then return end
  table.sort(keys)
  out[#out + 1] = "# HELP " .. self.name .. " " .. M.escape_help(self.help)
  out[#out + 1] = "# TYPE " .. self.name .. " " .. self.type
  for _, k in ipairs(keys) do
    local s = self.series[k]
    if self.type == "histogram" then
      local sep = k == "" and "" or ","
      for i, bound in ipairs(self.buckets) do
        out[#out + 1] = string.format('%s_bucket{%s%sle="%s"} %s', self.name, k, sep,
          M.format_value(bound), M.format_value(s.counts[i]))
      end
      out[#out + 1] = string.format('%s_bucket{%s%sle="+Inf"} %s', self.name, k, sep,
        M.format_value(s.count))
      local braces = k == "" and "" or "{" .. k .. "}"
      out[#out + 1] = self.name .. "_sum" .. braces .. " " .. M.format_value(s.sum)
      out[#out + 1] = self.name .. "_count" .. braces .. " " .. M.format_value(s.count)
    else
      local braces = k == "" and "" or "{" .. k .. "}"
      out[#out + 1] = self.name .. braces .. " " .. M.format_value(s.value)
    end
  end
end

---------------------------------------------------------------------------
-- The registry / plugin object
---------------------------------------------------------------------------

---@class Prometheus
---@field name string
---@field namespace string
local Prom = {}
Prom.__index = Prom

---@param kind "gauge"|"counter"|"histogram"
---@return PromFamily
local function family(self, kind, name, help, label_names, buckets)
  if not M.valid_metric_name(name) then
    error(string.format("prometheus: bad metric name %q", tostring(name)), 3)
  end
  local f = self.families[name]
  if f then
    if f.type ~= kind then
      error(string.format("prometheus: %s is already a %s", name, f.type), 3)
    end
    return f
  end
  for _, suffix in ipairs{ "_bucket", "_sum", "_count" } do
    local base = name:sub(1, -#suffix - 1)
    if name:sub(-#suffix) == suffix and self.families[base]
        and self.families[base].type == "histogram" then
      error(string.format("prometheus: %s clashes with histogram %s", name, base), 3)
    end
    if kind == "histogram" and self.families[name .. suffix] then
      error(string.format("prometheus: histogram %s clashes with %s", name, name .. suffix), 3)
    end
  end
  for _, n in ipairs(label_names or {}) do
    if not M.valid_label_name(n) then
      error(string.format("prometheus: %s: bad label name %q", name, tostring(n)), 3)
    end
  end
  if buckets then
    local sorted = {}
    for i, b in ipairs(buckets) do sorted[i] = b end
    table.sort(sorted)
    buckets = sorted
  end
  f = setmetatable({ name = name, help = help or name, type = kind, label_names = label_names,
                     buckets = buckets, series = {} }, Family)
  self.families[name] = f
  self.order[#self.order + 1] = name
  return f
end

--- A gauge family (created once; later calls return it).
---@param name string
---@param help? string
---@param label_names? string[]  label order in the output
---@return PromFamily
function Prom:gauge(name, help, label_names)
  return family(self, "gauge", name, help, label_names)
end

--- A counter family; by convention its name ends in `_total`.
---@param name string
---@param help? string
---@param label_names? string[]
---@return PromFamily
function Prom:counter(name, help, label_names)
  return family(self, "counter", name, help, label_names)
end

--- A histogram family with upper bounds `buckets` (default M.DEFAULT_BUCKETS).
---@param name string
---@param help? string
---@param buckets? number[]
---@param label_names? string[]
---@return PromFamily
function Prom:histogram(name, help, buckets, label_names)
  return family(self, "histogram", name, help, label_names, buckets or M.DEFAULT_BUCKETS)
end

---@param self Prometheus
---@param suffix string
local function n(self, suffix)
  return self.namespace .. "_" .. suffix
end

local TARGET = { "target", "url" }
local TARGET_PHASE = { "target", "url", "phase" }

--- Per-target families of probe results.
---@param self Prometheus
local function probe_families(self)
  return {
    success = self:gauge(n(self, "probe_success"),
      "1 if the last probe of the target succeeded, else 0", TARGET),
    status = self:gauge(n(self, "probe_status_code"),
      "HTTP status of the last probe (0 when no response came)", TARGET),
    duration = self:gauge(n(self, "probe_duration_seconds"),
      "Seconds the last probe took, by phase (total includes retries)", TARGET_PHASE),
    expiry = self:gauge(n(self, "tls_cert_expiry_timestamp_seconds"),
      "Unix time at which the server certificate of the last https probe expires", TARGET),
    time = self:gauge(n(self, "probe_timestamp_seconds"),
      "Unix time of the last probe of the target", TARGET),
  }
end

--- Record one outcome for target `name`. `result` is a fetcher result (`success`,
--- `status_code`, `elapsed`, `kind`), an http response (`status`, `timings`, `tls`), or any table
--- with those fields (`success` wins over the status); nil with `err, kind` for a failed request.
---@param name string
---@param url string|nil
---@param result table|nil
---@param err? string
---@param kind? string
function Prom:observe(name, url, result, err, kind)
  result = result or { success = false, error = err, kind = kind or "failure" }
  local status = result.status_code or result.status
  local success = result.success
  if success == nil then success = status ~= nil and status < 400 end
  local label = success and "success" or (result.kind or (status and "status") or "failure")
  self.requests:inc{ result = label }
  local timings = result.timings
  local total = result.elapsed or (timings and timings.total)
  if total then self.durations:observe(nil, total) end
  if not self.per_target then return end
  local t = { target = name, url = url or result.url or name }
  local p = self.probe
  p.success:set(t, success and 1 or 0)
  p.status:set(t, math.tointeger(status) or 0)
  p.time:set(t, os.time())
  -- the previous probe's phases of this target go (each by its key: a scan of every series per
  -- observation made a run over many targets quadratic)
  local series = p.duration.series
  for _, phase in ipairs(M.PHASES) do
    series[p.duration:label_text{ target = t.target, url = t.url, phase = phase }] = nil
  end
  if timings then
    for _, phase in ipairs(M.PHASES) do
      local v = timings[phase]
      if type(v) == "number" and phase ~= "total" then
        p.duration:set({ target = t.target, url = t.url, phase = phase }, v)
      end
    end
  end
  if total then p.duration:set({ target = t.target, url = t.url, phase = "total" }, total) end
  local tls = result.tls
  if type(tls) == "table" and type(tls.expires) == "number" then
    p.expiry:set(t, tls.expires)
  end
end

--- Drop every per-target series of target `name` (a target removed from the list).
---@param name string
function Prom:forget(name)
  for _, f in pairs(self.probe) do f:remove{ target = name } end
end

--- Mirror http.stats() into counters and gauges (done by render).
function Prom:collect_http()
  local ok, http = pcall(require, "http")
  if not ok or type(http) ~= "table" or not http.stats then return end
  local sok, s = pcall(http.stats)
  if not sok or type(s) ~= "table" then return end
  for key, m in pairs(self.http_metrics) do
    if type(s[key]) == "number" then m:set(nil, s[key]) end
  end
end

--- The exposition: every family with at least one series, in creation order.
---@return string
function Prom:render()
  if self.http_stats then self:collect_http() end
  local out = {}
  for _, name in ipairs(self.order) do self.families[name]:render(out) end
  if #out == 0 then return "" end
  return table.concat(out, "\n") .. "\n"
end

--- Write the exposition to `path` atomically (a temporary file beside it, then rename), for
--- node_exporter's textfile collector.
---@param path string
---@return boolean|nil ok
---@return string|nil err
function Prom:write_textfile(path)
  local tmp = string.format("%s.tmp.%d%d", path, os.time(), math.random(1e6))
  local f, err = io.open(tmp, "w")
  if not f then return nil, err end
  local ok, werr = f:write(self:render())
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    return nil, werr or cerr
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, rerr
  end
  return true
end

--- A handler for http.serve answering with the exposition. `opts.path` limits it to one path
--- (others get 404); methods other than GET and HEAD get 405.
---@param opts? { path?: string }
---@return fun(req: table): table
function Prom:handler(opts)
  local path = opts and opts.path
  return function(req)
    if path and (req.path or "/") ~= path then
      return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "not found\n" }
    end
    local method = req.method or "GET"
    if method ~= "GET" and method ~= "HEAD" then
      return { status = 405, headers = { ["content-type"] = "text/plain", allow = "GET, HEAD" },
               body = "method not allowed\n" }
    end
    return { status = 200, headers = { ["content-type"] = M.CONTENT_TYPE }, body = self:render() }
  end
end

---@class PrometheusOptions
---@field namespace? string   prefix of the built-in metric names (default "luafetch")
---@field per_target? boolean per-target probe gauges (default true; false for big crawls)
---@field http_stats? boolean mirror http.stats() at render (default true)
---@field buckets? number[]   of <namespace>_request_duration_seconds
---@field textfile? string    written (atomically) at every on_finish
---@field logger? Logger      where a failed textfile write is logged

--- A registry that is also a fetcher plugin (on_response, on_result, on_finish).
---@param opts? PrometheusOptions
---@return Prometheus
function M.new(opts)
  opts = opts or {}
  local ns = opts.namespace or "luafetch"
  if not M.valid_metric_name(ns) then
    error(string.format("prometheus: bad namespace %q", tostring(ns)), 2)
  end
  local self = setmetatable({
    name = "prometheus", namespace = ns, families = {}, order = {},
    per_target = opts.per_target ~= false, http_stats = opts.http_stats ~= false,
    textfile = opts.textfile,
  }, Prom)
  if self.per_target then self.probe = probe_families(self) else self.probe = {} end
  self.requests = self:counter(n(self, "requests_total"),
    "URLs and probes finished, by result (success, or the failure kind)", { "result" })
  self.durations = self:histogram(n(self, "request_duration_seconds"),
    "Seconds per URL or probe, retries included", opts.buckets)
  self.retries = self:counter(n(self, "retries_total"), "Retries made by the fetcher")
  self.run = {
    duration = self:gauge(n(self, "last_run_duration_seconds"), "Seconds the last fetch run took"),
    urls = self:gauge(n(self, "last_run_urls"), "URLs of the last fetch run, by result",
      { "result" }),
    time = self:gauge(n(self, "last_run_timestamp_seconds"), "Unix time the last fetch run ended"),
  }
  self.http_metrics = {}
  if self.http_stats then
    local H = self.http_metrics
    H.requests = self:counter(n(self, "http_requests_total"), "HTTP requests sent (every attempt)")
    H.connections_opened = self:counter(n(self, "connections_opened_total"),
      "Connections opened")
    H.connections_reused = self:counter(n(self, "connections_reused_total"),
      "Requests sent over a pooled keep-alive connection")
    H.dns_lookups = self:counter(n(self, "dns_lookups_total"), "DNS lookups started")
    H.dns_hits = self:counter(n(self, "dns_cache_hits_total"), "DNS answers served from the cache")
    H.in_flight = self:gauge(n(self, "http_in_flight"), "HTTP requests in flight")
    H.idle_connections = self:gauge(n(self, "idle_connections"),
      "Idle keep-alive connections in the pool")
    H.connecting = self:gauge(n(self, "connecting"), "Connections being established")
  end

  -- fetcher hooks: plain functions over this object
  local pending = {} -- key -> the last response's timings and tls, until on_result
  -- only with per-target series: a plugin with on_response makes the fetcher build a request
  -- table per attempt for it
  if self.per_target then
    function self.on_response(req, res)
      if not self.per_target then return end
      pending[req.key or req.url] = { timings = res.timings, tls = res.tls }
    end
  end
  function self.on_result(key, result)
    local extra = pending[key]
    pending[key] = nil
    local r = result
    if extra then
      r = setmetatable({ timings = extra.timings, tls = extra.tls }, { __index = result })
    end
    self:observe(key, result.url or key, r)
  end
  function self.on_finish(_, stats)
    stats = stats or {}
    if stats.retries then self.retries:inc(nil, stats.retries) end
    if stats.elapsed then self.run.duration:set(nil, stats.elapsed) end
    self.run.urls:set({ result = "succeeded" }, stats.succeeded or 0)
    self.run.urls:set({ result = "failed" }, stats.failed or 0)
    self.run.time:set(nil, os.time())
    if self.textfile then
      local ok, err = self:write_textfile(self.textfile)
      if not ok then
        local log = opts.logger or require("plugins.logger").get()
        log:error("prometheus: cannot write %s: %s", self.textfile, tostring(err))
      end
    end
  end
  return self
end

return M
