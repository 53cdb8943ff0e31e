-- plugins/metrics.lua: a per-run summary of a fetch, logged when the run ends:
-- count, success rate, requests/s, p50/p95/p99 latency, connection reuse rate
-- (from http.stats deltas), retries, bytes, error kinds and open circuits.
-- Latencies are kept exactly up to `max_samples`, then reservoir-sampled, so a
-- streaming run of any length uses bounded memory.

local logger = require "plugins.logger"

local M = {}

--- Nearest-rank percentile of a sorted array (nil when empty).
---@param sorted number[]
---@param p number  0..100
---@return number|nil
function M.percentile(sorted, p)
  local n = #sorted
  if n == 0 then return nil end
  local rank = math.ceil(p / 100 * n)
  return sorted[math.min(math.max(rank, 1), n)]
end

---@param bytes number
---@return string
function M.format_bytes(bytes)
  if bytes < 1024 then return string.format("%d B", bytes) end
  if bytes < 1024 * 1024 then return string.format("%.1f KiB", bytes / 1024) end
  if bytes < 1024 ^ 3 then return string.format("%.1f MiB", bytes / 1024 ^ 2) end
  return string.format("%.2f GiB", bytes / 1024 ^ 3)
end

---@param seconds number|nil
---@return string
local function ms(seconds)
  if seconds == nil then return "-" end
  return string.format("%.1fms", seconds * 1000)
end

---@class MetricsSummary
---@field count integer
---@field succeeded integer
---@field failed integer
---@field success_rate number        0..1
---@field elapsed number             seconds
---@field requests_per_sec number
---@field p50 number|nil             seconds
---@field p95 number|nil
---@field p99 number|nil
---@field max number|nil
---@field reuse_rate number|nil      reused / (reused + opened) connections; nil if none
---@field retries integer
---@field bytes integer
---@field kinds table<string, integer>   failures by kind
---@field circuits table<string, string> host → state, for circuits not closed

--- One-line text of a summary.
---@param s MetricsSummary
---@return string
function M.describe(s)
  local parts = {
    string.format("%d URLs in %.3fs: %.1f%% ok, %.1f req/s, p50 %s p95 %s p99 %s",
      s.count, s.elapsed, s.success_rate * 100, s.requests_per_sec,
      ms(s.p50), ms(s.p95), ms(s.p99)),
    s.reuse_rate and string.format("reuse %.1f%%", s.reuse_rate * 100) or "reuse -",
    string.format("%d retries", s.retries),
    M.format_bytes(s.bytes),
  }
  local kinds = {}
  for kind, n in pairs(s.kinds) do kinds[#kinds + 1] = kind .. "=" .. n end
  table.sort(kinds)
  if #kinds > 0 then parts[#parts + 1] = "failures " .. table.concat(kinds, " ") end
  local open = {}
  for host, state in pairs(s.circuits) do open[#open + 1] = host .. " " .. state end
  table.sort(open)
  if #open > 0 then parts[#parts + 1] = "circuits " .. table.concat(open, ", ") end
  return table.concat(parts, ", ")
end

---@class MetricsOptions
---@field logger? Logger       default: the shared logger
---@field level? string        level of the summary line (default "INFO")
---@field max_samples? integer latencies kept exactly (default 10000), then a uniform sample of that size
---@field breaker? Breaker     report its circuits (the fetcher's stats already carry its breaker's)
---@field silent? boolean      keep the summary without logging it

--- A metrics plugin; pass it in the fetcher's `plugins`. After each run
--- `m.last` (and `m:summary()`) holds the summary.
---@param opts? MetricsOptions
---@return table plugin
function M.new(opts)
  opts = opts or {}
  local max_samples = opts.max_samples or 10000
  -- logs_summary: the fetcher leaves out its own summary line when this plugin logs one
  local plugin = { name = "metrics", last = nil, logs_summary = not opts.silent }
  local run

  local function fresh_run()
    return { count = 0, succeeded = 0, retries = 0, bytes = 0, seen = 0,
             samples = {}, kinds = {} }
  end
  run = fresh_run()

  local function add_sample(value)
    run.seen = run.seen + 1
    if #run.samples < max_samples then
      run.samples[#run.samples + 1] = value
    else
      local slot = math.random(run.seen)
      if slot <= max_samples then run.samples[slot] = value end
    end
  end

  function plugin.on_result(_, result)
    run.count = run.count + 1
    if result.success then
      run.succeeded = run.succeeded + 1
    else
      local kind = result.kind or "error"
      run.kinds[kind] = (run.kinds[kind] or 0) + 1
    end
    run.retries = run.retries + math.max((result.attempts or 1) - 1, 0)
    run.bytes = run.bytes + (result.bytes or 0)
    add_sample(result.elapsed or 0)
  end

  ---@param stats FetchStats|nil
  ---@return MetricsSummary
  local function summarise(stats)
    stats = stats or {}
    table.sort(run.samples)
    local elapsed = stats.elapsed or 0
    local http_delta = stats.http or {}
    local reused = http_delta.connections_reused
    local opened = http_delta.connections_opened
    local reuse_rate
    if reused and opened and reused + opened > 0 then
      reuse_rate = reused / (reused + opened)
    end
    local circuits = {}
    local states = stats.breaker or (opts.breaker and opts.breaker:states()) or {}
    for host, c in pairs(states) do
      if c.state ~= "closed" then circuits[host] = c.state end
    end
    return {
      count = run.count, succeeded = run.succeeded,
      failed = run.count - run.succeeded,
      success_rate = run.count > 0 and run.succeeded / run.count or 0,
      elapsed = elapsed,
      requests_per_sec = elapsed > 0 and run.count / elapsed or 0,
      p50 = M.percentile(run.samples, 50), p95 = M.percentile(run.samples, 95),
      p99 = M.percentile(run.samples, 99), max = run.samples[#run.samples],
      reuse_rate = reuse_rate, retries = run.retries, bytes = run.bytes,
      kinds = run.kinds, circuits = circuits,
    }
  end

  function plugin.on_finish(_, stats)
    local s = summarise(stats)
    plugin.last = s
    run = fresh_run()
    if opts.silent then return end
    local log = opts.logger or logger.get()
    log:event(opts.level or "INFO", "metrics: " .. M.describe(s), {
      count = s.count, success_rate = s.success_rate,
      requests_per_sec = s.requests_per_sec, p50 = s.p50, p95 = s.p95,
      p99 = s.p99, reuse_rate = s.reuse_rate, retries = s.retries,
      bytes = s.bytes,
    })
  end

  --- The summary of the last finished run (nil before the first).
  ---@return MetricsSummary|nil
  function plugin:summary()
    return self.last
  end

  return plugin
end

return M
