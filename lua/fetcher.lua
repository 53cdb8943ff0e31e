-- fetcher.lua — the seed's AsyncHTTPFetcher, its public face: `fetcher.new`, `fetch_urls` (every
-- result), `each` (streams results from a source, keeps none) and `fetch` (one URL). Many URLs
-- through a pool of `max_concurrent` worker tasks (URLs start in order), with per-host limits,
-- retries (plugins.retry), a circuit breaker (plugins.breaker), per-URL timeouts, thresholds and
-- plugin hooks. The work is done by the fetcher_* modules, one concern each:
--   fetcher_config   defaults, environment, option checks, timeout rules
--   fetcher_hooks    plugins: loading, which hooks they have, calling them safely
--   fetcher_hosts    per-host request slots and the breaker's gate
--   fetcher_sources  entries and the `each` source interface
--   fetcher_runner   one entry's attempts and the worker pool
--   fetcher_results  the result of an entry
--   fetcher_stats    a run's counters, thresholds and stats

local retry = require "plugins.retry"
local logger = require "plugins.logger"
local config = require "fetcher_config"
local hooks = require "fetcher_hooks"
local hosts = require "fetcher_hosts"
local sources = require "fetcher_sources"
local runner = require "fetcher_runner"
local stats = require "fetcher_stats"

local M = {}

M.DEFAULTS = config.DEFAULTS
M.HOOKS = hooks.HOOKS
M.env_defaults = config.env_defaults
M.compile_timeouts = config.compile_timeouts
M.make_breaker = hosts.make_breaker
M.entry_of = sources.entry_table

---@class Fetcher
---@field max_concurrent integer
---@field max_per_host integer|nil
---@field timeout number|table
---@field timeout_rules TimeoutRule[]
---@field deadline number|nil
---@field chunk_size integer|nil
---@field keep_body boolean
---@field policy RetryPolicy
---@field breaker Breaker|nil
---@field plugins LoadedPlugin[]
---@field thresholds Threshold[]|nil
---@field request_defaults table
---@field headers table<string, string>|nil
---@field host_slots table<string, table>
---@field shared_options table       http options by timeout, for requests no hook sees
---@field logger Logger|nil
---@field last_stats FetchStats|nil
local Fetcher = {}
Fetcher.__index = Fetcher

---@class FetcherOptions
---@field max_concurrent? integer   requests in flight at most (MAX_CONCURRENT, 100)
---@field max_per_host? integer     requests in flight per host:port at most
---@field timeout? number|table     seconds per attempt (HTTP_TIMEOUT, 30)
---@field timeouts? table           per-URL timeouts: {[pattern]=s} or {{pattern, s}, ...}
---@field deadline? number          seconds one URL may take, retries and sleeps included
---@field max_retries? integer      (MAX_RETRIES, 3)
---@field backoff_factor? number    (BACKOFF_FACTOR, 1.5)
---@field max_backoff? number       cap on a pause, Retry-After included (60)
---@field jitter? number            fraction added at random to backoff pauses (0.1)
---@field retry? RetryPolicy        a ready policy (replaces the four above)
---@field breaker? Breaker|BreakerOptions|boolean
---@field chunk_size? integer       fetch_urls works through the list in chunks this big
---@field keep_body? boolean        keep bodies in results (default true)
---@field headers? table<string,string>  headers sent with every request
---@field max_redirects? integer
---@field max_body? integer
---@field verify? boolean
---@field ca_file? string
---@field cert_file? string
---@field key_file? string
---@field decompress? boolean
---@field proxy? string|false     a proxy URL for every request, or false for none (docs/proxies.md)
---@field thresholds? string|table  pass/fail criteria: {p95 = "<0.5", success_rate = ">0.99"} or {"p95<0.5"}
---@field summary? boolean         log a k6-like summary line at INFO when a run ends (default true;
---                                false also keeps no durations: stats.latency and summary are nil)
---@field plugins? table[]          hook tables, modules or plugin names
---@field logger? Logger            default: the shared logger

--- A new fetcher. Options left out come from the environment, then defaults.
---@param opts? FetcherOptions
---@return Fetcher
function M.new(opts)
  opts = opts or {}
  local s = config.settings(opts)
  local self = setmetatable({}, Fetcher)
  self.max_concurrent = s.max_concurrent
  self.max_per_host = s.max_per_host
  self.timeout = s.timeout
  self.timeout_rules = s.timeout_rules
  self.deadline = s.deadline
  self.chunk_size = s.chunk_size
  self.keep_body = opts.keep_body ~= false
  self.logger = opts.logger
  self.policy = opts.retry or retry.new{
    max_retries = s.max_retries, backoff_factor = s.backoff_factor,
    max_backoff = s.max_backoff, jitter = s.jitter,
  }
  local found_breaker
  self.plugins, found_breaker = hooks.load(opts.plugins)
  self.breaker = hosts.make_breaker(opts.breaker) or found_breaker
  self.thresholds = stats.parse_thresholds(opts.thresholds)
  if opts.summary ~= nil and type(opts.summary) ~= "boolean" then
    error("fetcher.new: summary must be a boolean, got " .. type(opts.summary), 2)
  end
  self.summary = opts.summary ~= false
  self.request_defaults = config.request_defaults(opts)
  self.headers = opts.headers
  local session = opts.session
  if session ~= nil then
    -- every request goes through the session: its base URL, headers, auth and cookie jar
    if type(session) ~= "table" or type(session.request) ~= "function" then
      error("fetcher.new: session must be an http.session", 2)
    end
    self.request = function(o) return session:request(o) end
    self.get = function(url, o) return session:get(url, o) end
  end
  self.host_slots = {}
  self.shared_options = {}
  return self
end

---@return Logger
function Fetcher:log()
  return self.logger or logger.get()
end

--- Add a plugin after creation (same forms as the `plugins` option).
---@param plugin table|string
---@return Fetcher self
function Fetcher:use(plugin)
  local loaded, found_breaker = hooks.load({ plugin })
  if found_breaker then self.breaker = found_breaker end
  for _, p in ipairs(loaded) do self.plugins[#self.plugins + 1] = p end
  return self
end

--- The timeout of a URL: the first matching `timeouts` rule, else `timeout`.
---@param url string
---@return number|table
function Fetcher:timeout_for(url)
  return config.timeout_for(self.timeout_rules, url, self.timeout)
end

--- Wait for a request slot on `host` (only when max_per_host is set). Slots of
--- idle hosts are dropped, so memory does not grow with the number of hosts.
---@param host string
---@return HostPermit|nil permit  release with permit:release() or <close>
function Fetcher:host_permit(host)
  if not self.max_per_host then return nil end
  return hosts.permit(self.host_slots, self.max_per_host, host)
end

--- Fetch every entry of `urls` (URL strings or request tables).
--- Returns the results by key (the URL, or the entry's `key`), the run's stats
--- and the results as a list in input order.
---@param urls (string|table)[]
---@return table<string, FetchResult> results
---@return FetchStats stats
---@return FetchResult[] list
function Fetcher:fetch_urls(urls)
  assert(type(urls) == "table", "fetch_urls expects a list of URLs")
  local entries = {}
  local strings_only = true -- every entry a URL string: the workers need not look
  local i = 1
  while true do -- as ipairs, without a call per item
    local raw = urls[i]
    if raw == nil then break end
    if type(raw) == "string" then -- a URL string is its own entry
      entries[i] = raw
    else
      local entry, err = sources.entry(raw)
      if not entry then error(string.format("fetch_urls: urls[%d]: %s", i, err), 2) end
      entries[i] = entry
      strings_only = false
    end
    i = i + 1
  end
  local run = runner.begin(self)
  -- every result stays in `list`: with no hook to see (and perhaps change) them on the way, their
  -- durations go to the samples in one call at the end
  local from_list = run.samples and not run.hooks.on_result
  if from_list then run.pending = nil end
  if run.hooks.on_start then
    hooks.call1(run.hooks.on_start, run, run.log, "on_start", { total = #entries })
  end
  local list = {}
  local function deliver(index, result) list[index] = result end
  local chunk = self.chunk_size or math.max(#entries, 1)
  for first = 1, #entries, chunk do
    local last = math.min(first + chunk - 1, #entries)
    local workers = math.min(self.max_concurrent, last - first + 1)
    if self.max_per_host then
      local i = first - 1
      local function next_entry()
        if i >= last then return nil end
        i = i + 1
        return entries[i], i
      end
      runner.run_pool(self, run, next_entry, workers, deliver, true)
    else
      runner.run_list(self, run, entries, first, last, workers, list, strings_only)
    end
    if run.abort then error(run.abort, 0) end
  end
  if from_list then run.samples:add_field(list, #entries, "elapsed") end
  local results = {}
  if strings_only then
    for i = 1, #entries do results[entries[i]] = list[i] end
  else
    for i = 1, #entries do
      local entry = entries[i]
      if type(entry) == "table" then entry = entry.key end
      results[entry] = list[i]
    end
  end
  return results, stats.finish(self, run, results), list
end

--- Streaming form: fetch the entries `source` gives and call `on_result(key, result, index,
--- item)` as each one finishes (item: what the source gave). Nothing is kept, so memory stays
--- flat however many entries the source yields. The source is a function returning the next
--- entry or nil (such as `io.lines(path)`), an object with a `next` method, or an array; once it
--- has returned nil it is not called again. An entry that is not a URL or request table gives a
--- failed result of kind "invalid". If on_result (or the source) raises, no new URL starts and
--- the error is raised once the requests in flight have finished. The on_finish hooks get `nil`
--- results.
---@param source function|table  iterator of URL strings / request tables, object with :next(), or an array
---@param on_result? fun(key: string, result: FetchResult, index: integer, item: any)
---@return FetchStats
function Fetcher:each(source, on_result)
  local read = sources.reader(source)
  local run = runner.begin(self)
  if run.hooks.on_start then
    hooks.call1(run.hooks.on_start, run, run.log, "on_start", { total = nil })
  end
  local index = 0
  local function next_entry()
    local raw = read()
    if raw == nil then return nil end
    index = index + 1
    local entry, err = sources.entry(raw)
    if not entry then entry = sources.invalid(raw, err) end
    return entry, index, raw
  end
  local deliver
  if on_result then
    deliver = function(i, result, entry, item)
      on_result(type(entry) == "string" and entry or entry.key, result, i, item)
    end
  else
    deliver = function() end
  end
  runner.run_pool(self, run, next_entry, self.max_concurrent, deliver, true)
  if run.abort then error(run.abort, 0) end
  return stats.finish(self, run, nil)
end

--- Fetch a single URL or request table through the fetcher's policy, breaker
--- and hooks (on_finish is not called).
---@param raw string|table
---@return FetchResult
function Fetcher:fetch(raw)
  local entry, err = sources.entry(raw)
  if not entry then error("fetch: " .. err, 2) end
  local run = runner.begin(self)
  local permit = self:host_permit(hosts.host_of(entry))
  return runner.fetch_entry(self, run, entry, 1, permit)
end

return M
