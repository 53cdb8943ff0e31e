-- lua/fetcher.lua: the seed's AsyncHTTPFetcher. Fetches many URLs with a worker
-- pool of `max_concurrent` tasks (URLs start in list order), per-host limits,
-- retries (plugins.retry), a circuit breaker (plugins.breaker), per-URL
-- timeouts and plugin hooks. `fetch_urls` returns every result; `each` streams
-- results from an iterator and keeps none of them.

local http = require "http"
local task = require "task"
local logger = require "plugins.logger"
local retry = require "plugins.retry"
local breaker = require "plugins.breaker"

local M = {}

M.DEFAULTS = {
  max_concurrent = 100,
  timeout = 30,
  max_retries = 3,
  backoff_factor = 1.5,
  max_backoff = 60,
  jitter = 0.1,
}

M.HOOKS = { "on_start", "on_request", "on_response", "on_error", "on_result", "on_finish" }

--- Fields of a request entry handed on to `http.request`.
local HTTP_FIELDS = { "url", "method", "headers", "body", "json", "timeout",
                      "max_redirects", "max_body", "verify", "ca_file", "cert_file",
                      "key_file", "decompress", "proxy" }

---------------------------------------------------------------------------
-- Environment defaults
---------------------------------------------------------------------------

---@param text string
---@return number|nil
local function plain_number(text)
  local trimmed = text:match("^%s*(.-)%s*$")
  if not (trimmed:match("^%d+%.?%d*$") or trimmed:match("^%.%d+$")
          or trimmed:match("^%d+%.?%d*[eE][+-]?%d+$")) then
    return nil
  end
  return tonumber(trimmed)
end

local PARSERS = {
  positive_integer = function(text)
    local n = plain_number(text)
    if n and n >= 1 and n == math.floor(n) then return math.tointeger(n) end
  end,
  non_negative_integer = function(text)
    local n = plain_number(text)
    if n and n >= 0 and n == math.floor(n) then return math.tointeger(n) end
  end,
  positive_number = function(text)
    local n = plain_number(text)
    if n and n > 0 and n < math.huge then return n end
  end,
  non_negative_number = function(text)
    local n = plain_number(text)
    if n and n >= 0 and n < math.huge then return n end
  end,
}

--- How each kind of value is named in messages.
local KIND_TEXT = {
  positive_integer = "positive integer", non_negative_integer = "non-negative integer",
  positive_number = "positive number", non_negative_number = "non-negative number",
}

local ENV_VARS = {
  { var = "MAX_CONCURRENT", key = "max_concurrent", kind = "positive_integer" },
  { var = "HTTP_TIMEOUT", key = "timeout", kind = "positive_number" },
  { var = "MAX_RETRIES", key = "max_retries", kind = "non_negative_integer" },
  { var = "BACKOFF_FACTOR", key = "backoff_factor", kind = "non_negative_number" },
}

--- Defaults read from MAX_CONCURRENT, HTTP_TIMEOUT, MAX_RETRIES, BACKOFF_FACTOR
--- (LOG_LEVEL is checked too). Unset or empty variables are skipped; a bad value
--- raises `{exit_code = 2, message = ...}`, which the host turns into exit 2.
---@param getenv? fun(name: string): string|nil  default os.getenv
---@return table<string, number>
function M.env_defaults(getenv)
  getenv = getenv or os.getenv
  local out = {}
  for _, spec in ipairs(ENV_VARS) do
    local raw = getenv(spec.var)
    if raw ~= nil and raw ~= "" then
      local value = PARSERS[spec.kind](raw)
      if value == nil then
        error({ exit_code = 2, message = string.format("%s must be a %s, got '%s'",
          spec.var, KIND_TEXT[spec.kind], raw) }, 0)
      end
      out[spec.key] = value
    end
  end
  logger.env_level(getenv)
  return out
end

---------------------------------------------------------------------------
-- Option checks
---------------------------------------------------------------------------

---@param value any
---@param name string
---@param kind string  a PARSERS key
---@return number|nil
local function check_option(value, name, kind)
  if value == nil then return nil end
  local ok = type(value) == "number" and PARSERS[kind](string.format("%.17g", value))
  if not ok then
    error(string.format("fetcher: %s must be a %s, got %s", name,
      KIND_TEXT[kind], tostring(value)), 3)
  end
  if kind:find("integer") then return math.tointeger(value) end
  return value
end

--- A timeout option: seconds, or a table of phases for http.request.
---@param value any
---@param name string
local function check_timeout(value, name)
  if type(value) == "table" then return value end
  return check_option(value, name, "positive_number")
end

---@alias TimeoutRule { pattern: string, timeout: number|table }

--- Compile `timeouts` into an ordered list of rules. Array form
--- `{ {pattern, seconds}, ... }` keeps its order; map form
--- `{ [pattern] = seconds }` is ordered longest pattern first, then
--- alphabetically, so the most specific pattern wins deterministically.
---@param timeouts table|nil
---@return TimeoutRule[]
function M.compile_timeouts(timeouts)
  local rules = {}
  if timeouts == nil then return rules end
  assert(type(timeouts) == "table", "fetcher: timeouts must be a table")
  local array_form = #timeouts > 0
  if array_form then
    for i, rule in ipairs(timeouts) do
      local pattern = rule.pattern or rule[1]
      local seconds = rule.timeout or rule[2]
      if type(pattern) ~= "string" then
        error(string.format("fetcher: timeouts[%d] needs a pattern string", i), 3)
      end
      rules[#rules + 1] = { pattern = pattern, timeout = seconds }
    end
  else
    for pattern, seconds in pairs(timeouts) do
      if type(pattern) ~= "string" then
        error("fetcher: timeouts keys must be Lua pattern strings", 3)
      end
      rules[#rules + 1] = { pattern = pattern, timeout = seconds }
    end
    table.sort(rules, function(a, b)
      if #a.pattern ~= #b.pattern then return #a.pattern > #b.pattern end
      return a.pattern < b.pattern
    end)
  end
  for _, rule in ipairs(rules) do
    local ok, err = pcall(string.find, "", rule.pattern)
    if not ok then
      error(string.format("fetcher: bad timeout pattern '%s': %s", rule.pattern, err), 3)
    end
    check_timeout(rule.timeout, "timeout for '" .. rule.pattern .. "'")
  end
  return rules
end

---------------------------------------------------------------------------
-- Plugins
---------------------------------------------------------------------------

---@param plugin table
---@return boolean
local function has_hooks(plugin)
  for _, hook in ipairs(M.HOOKS) do
    if type(plugin[hook]) == "function" then return true end
  end
  return false
end

---@param plugin table
---@return boolean
local function is_breaker(plugin)
  return type(plugin.allow) == "function" and type(plugin.record_result) == "function"
end

---@class LoadedPlugin
---@field name string
---@field plugin table
---@field reported table<string, boolean>  hooks whose failure was logged already

--- Turn the `plugins` option into loaded plugins. An entry is a plugin table,
--- a module with `new` and no hooks (called with no argument), or a name
--- ("metrics" → require "plugins.metrics"). A breaker object found here becomes
--- the fetcher's breaker.
---@param list table|nil
---@return LoadedPlugin[] loaded
---@return Breaker|nil found_breaker
local function load_plugins(list)
  if list ~= nil and type(list) ~= "table" then
    error("fetcher: plugins must be an array of plugin tables or names, got " .. type(list), 3)
  end
  local loaded, found_breaker = {}, nil
  for i, entry in ipairs(list or {}) do
    local name
    if type(entry) == "string" then
      name = entry
      entry = require("plugins." .. entry)
    end
    if type(entry) ~= "table" then
      error(string.format("fetcher: plugins[%d] must be a table or a name", i), 3)
    end
    if is_breaker(entry) then
      found_breaker = entry
    else
      if not has_hooks(entry) and type(entry.new) == "function" then
        entry = entry.new()
      end
      loaded[#loaded + 1] = {
        name = tostring(entry.name or name or ("plugins[" .. i .. "]")),
        plugin = entry, reported = {},
      }
    end
  end
  return loaded, found_breaker
end

---------------------------------------------------------------------------
-- The fetcher
---------------------------------------------------------------------------

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
---@field request_defaults table
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
---@field plugins? table[]          hook tables, modules or plugin names
---@field logger? Logger            default: the shared logger

--- A new fetcher. Options left out come from the environment, then defaults.
---@param opts? FetcherOptions
---@return Fetcher
function M.new(opts)
  opts = opts or {}
  local env = M.env_defaults()
  local function pick(key) -- explicit option, environment, default
    if opts[key] ~= nil then return opts[key] end
    if env[key] ~= nil then return env[key] end
    return M.DEFAULTS[key]
  end
  local self = setmetatable({}, Fetcher)
  self.max_concurrent = check_option(pick("max_concurrent"), "max_concurrent", "positive_integer")
  self.max_per_host = check_option(opts.max_per_host, "max_per_host", "positive_integer")
  self.timeout = check_timeout(pick("timeout"), "timeout")
  self.timeout_rules = M.compile_timeouts(opts.timeouts)
  self.deadline = check_option(opts.deadline, "deadline", "positive_number")
  self.chunk_size = check_option(opts.chunk_size, "chunk_size", "positive_integer")
  self.keep_body = opts.keep_body ~= false
  self.logger = opts.logger
  self.policy = opts.retry or retry.new{
    max_retries = check_option(pick("max_retries"), "max_retries", "non_negative_integer"),
    backoff_factor = check_option(pick("backoff_factor"), "backoff_factor", "non_negative_number"),
    max_backoff = check_option(pick("max_backoff"), "max_backoff", "non_negative_number"),
    jitter = check_option(pick("jitter"), "jitter", "non_negative_number"),
  }
  local found_breaker
  self.plugins, found_breaker = load_plugins(opts.plugins)
  self.breaker = M.make_breaker(opts.breaker) or found_breaker
  self.request_defaults = {
    max_redirects = opts.max_redirects, max_body = opts.max_body,
    verify = opts.verify, ca_file = opts.ca_file, cert_file = opts.cert_file,
    key_file = opts.key_file, decompress = opts.decompress, proxy = opts.proxy,
  }
  self.headers = opts.headers
  self.host_slots = {}
  return self
end

--- `breaker` option → a breaker or nil: true (defaults), options, or an object.
---@param value any
---@return Breaker|nil
function M.make_breaker(value)
  if value == nil or value == false then return nil end
  if value == true then return breaker.new() end
  if type(value) == "table" and is_breaker(value) then return value end
  if type(value) == "table" then return breaker.new(value) end
  error("fetcher: breaker must be true, options or a breaker object", 3)
end

---@return Logger
function Fetcher:log()
  return self.logger or logger.get()
end

--- Add a plugin after creation (same forms as the `plugins` option).
---@param plugin table|string
---@return Fetcher self
function Fetcher:use(plugin)
  local loaded, found_breaker = load_plugins({ plugin })
  if found_breaker then self.breaker = found_breaker end
  for _, p in ipairs(loaded) do self.plugins[#self.plugins + 1] = p end
  return self
end

--- The timeout of a URL: the first matching `timeouts` rule, else `timeout`.
---@param url string
---@return number|table
function Fetcher:timeout_for(url)
  for _, rule in ipairs(self.timeout_rules) do
    if url:find(rule.pattern) then return rule.timeout end
  end
  return self.timeout
end

--- Call hook `name` of every plugin in registration order. A raising hook is
--- logged once per plugin and hook, counted in `run.hook_errors`, and ignored.
---@param run table|nil
---@param name string
function Fetcher:call_hooks(run, name, ...)
  for _, p in ipairs(self.plugins) do
    local fn = p.plugin[name]
    if fn then
      local ok, err = pcall(fn, ...)
      if not ok then
        if run then run.hook_errors = run.hook_errors + 1 end
        if not p.reported[name] then
          p.reported[name] = true
          self:log():error("plugin '%s' failed in %s: %s (later failures of this hook are counted, not logged)",
            p.name, name, tostring(err))
        end
      end
    end
  end
end

---------------------------------------------------------------------------
-- Entries, permits, one attempt, one URL
---------------------------------------------------------------------------

---@class FetchEntry
---@field url string
---@field method string
---@field key string     key of the result in fetch_urls' table (default url)
---@field host string    "host:port"

--- Normalise a URL string or request table into an entry (a fresh table).
---@param raw any
---@return FetchEntry|nil entry
---@return string|nil err
function M.entry_of(raw)
  local entry
  if type(raw) == "string" then
    entry = { url = raw }
  elseif type(raw) == "table" and type(raw.url) == "string" then
    entry = {}
    for k, v in pairs(raw) do entry[k] = v end
  else
    return nil, "an entry must be a URL string or a table with a url field, got "
      .. (type(raw) == "table" and "a table without url" or type(raw))
  end
  if entry.method ~= nil and type(entry.method) ~= "string" then
    return nil, "an entry's method must be a string, got " .. type(entry.method)
  end
  entry.method = string.upper(entry.method or "GET")
  entry.key = entry.key or entry.url
  entry.host = breaker.host_of(entry.url)
  return entry
end

local Permit = {}
Permit.__index = Permit

--- Give the permit back (once): the semaphore's permit if it was taken, and the slot's user
--- count, dropping the slot when no task uses or waits for it.
function Permit:release()
  if self.released then return end
  self.released = true
  local slot = self.slot
  if self.held then slot.sem:release() end
  slot.users = slot.users - 1
  if slot.users == 0 and self.slots[self.host] == slot then self.slots[self.host] = nil end
end
Permit.__close = Permit.release

-- Closed when host_permit returns, or when its task is canceled while waiting for the slot's
-- semaphore: then the permit was never held, and only the user count is given back.
local Waiting = { __close = function(w) if not w.permit.held then w.permit:release() end end }

--- Wait for a request slot on `host` (only when max_per_host is set). Slots of
--- idle hosts are dropped, so memory does not grow with the number of hosts.
---@param host string
---@return table|nil permit  release with permit:release() or <close>
function Fetcher:host_permit(host)
  if not self.max_per_host then return nil end
  local slot = self.host_slots[host]
  if not slot then
    slot = { sem = task.semaphore(self.max_per_host), users = 0 }
    self.host_slots[host] = slot
  end
  slot.users = slot.users + 1
  local permit = setmetatable({ slot = slot, slots = self.host_slots, host = host, held = false }, Permit)
  local waiting <close> = setmetatable({ permit = permit }, Waiting)
  slot.sem:acquire()
  permit.held = true
  return permit
end

--- The attempt's timeout, shortened to what is left before the deadline.
---@param timeout number|table
---@param deadline_at number|nil
---@return number|table|nil timeout  nil when the deadline has passed
local function bounded_timeout(timeout, deadline_at)
  if not deadline_at then return timeout end
  local left = deadline_at - task.now()
  if left <= 0 then return nil end
  if type(timeout) == "number" then return math.min(timeout, left) end
  local copy = {}
  for k, v in pairs(timeout) do copy[k] = v end
  copy.total = math.min(copy.total or left, left)
  return copy
end

--- The request table of one attempt, as the hooks see it.
---@param self Fetcher
---@param entry FetchEntry
---@param attempt integer
---@param index integer
---@param timeout number|table
---@return table
local function request_of(self, entry, attempt, index, timeout)
  local req = {}
  for k, v in pairs(self.request_defaults) do req[k] = v end
  for k, v in pairs(entry) do req[k] = v end
  if self.headers then
    local headers = {}
    for k, v in pairs(self.headers) do headers[k] = v end
    for k, v in pairs(entry.headers or {}) do headers[k] = v end
    req.headers = headers
  elseif entry.headers then
    local headers = {}
    for k, v in pairs(entry.headers) do headers[k] = v end
    req.headers = headers
  end
  req.timeout = timeout
  req.attempt = attempt
  req.index = index
  return req
end

---@param req table
---@return table
local function http_options(req)
  local opts = {}
  for _, field in ipairs(HTTP_FIELDS) do opts[field] = req[field] end
  return opts
end

local BreakerSlot = {
  __close = function(slot)
    if not slot.done then slot.breaker:abandon(slot.host) end
  end,
}

--- Ask the breaker (if any) about `host`: a refusal message, or nil and a
--- to-be-closed guard for the allowed call (nil without a breaker).
---@param host string
---@return string|nil refused
---@return table|nil slot
function Fetcher:breaker_gate(host)
  if not self.breaker then return nil, nil end
  local allowed, retry_in = self.breaker:allow(host)
  if not allowed then
    return string.format("circuit open for %s (next probe in %.1fs)", host, retry_in or 0)
  end
  return nil, setmetatable({ breaker = self.breaker, host = host, done = false }, BreakerSlot)
end

--- One try of one URL: host slot, breaker, hooks, the request.
---@param run table
---@param entry FetchEntry
---@param index integer
---@param attempt integer
---@param deadline_at number|nil
---@param held table|nil  a host permit taken at dispatch (first attempt)
---@return table|nil res
---@return string|nil err
---@return string|nil kind
function Fetcher:attempt(run, entry, index, attempt, deadline_at, held)
  local permit <close> = held or self:host_permit(entry.host)
  local timeout = bounded_timeout(entry.timeout or self:timeout_for(entry.url), deadline_at)
  local req = request_of(self, entry, attempt, index, timeout or 0)
  if not timeout then
    local err = "deadline exceeded"
    self:call_hooks(run, "on_error", req, err, "timeout")
    return nil, err, "timeout"
  end
  local refused, slot = self:breaker_gate(entry.host)
  if refused then
    run.rejected = run.rejected + 1
    self:call_hooks(run, "on_error", req, refused, "circuit_open")
    return nil, refused, "circuit_open"
  end
  local pending <close> = slot -- gives the breaker slot back if the task is canceled
  self:call_hooks(run, "on_request", req)
  run.attempts = run.attempts + 1
  local res, err, kind = http.request(http_options(req))
  if pending then
    pending.done = true
    self.breaker:record_result(entry.host, res, err, kind)
  end
  if permit then permit:release() end
  if res then
    self:call_hooks(run, "on_response", req, res)
  else
    self:call_hooks(run, "on_error", req, err, kind)
  end
  return res, err, kind
end

---@class FetchResult
---@field url string
---@field method string
---@field success boolean          2xx/3xx response (after retries)
---@field status_code integer|nil
---@field error string|nil         transport error, or "HTTP 404 Not Found"
---@field kind string|nil          http kind, "circuit_open", or "status" for a non-2xx/3xx response
---@field elapsed number           seconds, retries and pauses included
---@field attempts integer
---@field body string|nil          nil when keep_body is false
---@field headers table|nil
---@field bytes integer            body size
---@field reused boolean|nil       last response came over a pooled connection
---@field final_url string|nil     URL after redirects

---@param entry FetchEntry
---@param res table|nil
---@param err string|nil
---@param kind string|nil
---@param attempts integer
---@param elapsed number
---@param keep_body boolean
---@return FetchResult
local function result_of(entry, res, err, kind, attempts, elapsed, keep_body)
  local result = { url = entry.url, method = entry.method, success = false,
                   attempts = attempts, elapsed = elapsed, bytes = 0 }
  if res then
    local status = res.status
    result.status_code = status
    result.headers = res.headers
    result.bytes = res.body and #res.body or 0
    result.body = keep_body and res.body or nil
    result.reused = res.reused
    result.final_url = res.url
    if status >= 200 and status < 400 then
      result.success = true
    else
      result.error = string.format("HTTP %d %s", status, res.reason or "")
        :gsub("%s+$", "")
      result.kind = "status"
    end
  else
    result.error = tostring(err)
    result.kind = kind or "error"
  end
  return result
end

---@param res table|nil
---@param err string|nil
---@param kind string|nil
---@return string
local function reason_of(res, err, kind)
  if res then return "HTTP " .. tostring(res.status) end
  return string.format("%s: %s", tostring(kind), tostring(err))
end

--- Fetch one entry with retries; call on_result hooks; count it in `run`.
---@param run table
---@param entry FetchEntry
---@param index integer
---@param held table|nil  host permit taken at dispatch
---@return FetchResult
function Fetcher:fetch_entry(run, entry, index, held)
  local started = task.now()
  if entry.invalid then
    if held then held:release() end
    return self:finish_entry(run, entry, result_of(entry, nil, entry.invalid,
      "invalid", 0, 0, false))
  end
  local deadline = entry.deadline or self.deadline
  local deadline_at = deadline and started + deadline
  local first_permit = held
  local res, err, kind, attempts = self.policy:run(function(attempt)
    local permit = first_permit
    first_permit = nil
    return self:attempt(run, entry, index, attempt, deadline_at, permit)
  end, {
    method = entry.method,
    deadline = deadline_at,
    on_retry = function(attempt, wait, r, e, k)
      run.retries = run.retries + 1
      self:log():info("retry %d/%d of %s %s in %.2fs after %s", attempt,
        self.policy.max_retries, entry.method, entry.url, wait, reason_of(r, e, k))
    end,
  })
  if first_permit then first_permit:release() end
  local result = result_of(entry, res, err, kind, attempts, task.now() - started,
                           self.keep_body)
  return self:finish_entry(run, entry, result)
end

--- Count a finished URL in `run` and call the on_result hooks.
---@param run table
---@param entry FetchEntry
---@param result FetchResult
---@return FetchResult
function Fetcher:finish_entry(run, entry, result)
  run.count = run.count + 1
  run.bytes = run.bytes + result.bytes
  if result.success then
    run.succeeded = run.succeeded + 1
  else
    run.failed = run.failed + 1
    self:log():debug("%s %s failed after %d attempt(s): %s", entry.method,
      entry.url, result.attempts, result.error)
  end
  self:call_hooks(run, "on_result", entry.key, result)
  return result
end

---------------------------------------------------------------------------
-- Runs and the worker pool
---------------------------------------------------------------------------

---@return table
local function http_stats()
  local ok, stats = pcall(http.stats)
  return ok and type(stats) == "table" and stats or {}
end

---@return table run
function Fetcher:begin_run()
  return { started = task.now(), http_before = http_stats(), count = 0,
           succeeded = 0, failed = 0, attempts = 0, retries = 0, bytes = 0,
           rejected = 0, hook_errors = 0, abort = nil }
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

--- Close a run: stats, on_finish hooks.
---@param run table
---@param results table|nil
---@return FetchStats
function Fetcher:finish_run(run, results)
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
    http = delta, breaker = self.breaker and self.breaker:states() or nil,
    hook_errors = run.hook_errors,
  }
  self.last_stats = stats
  self:call_hooks(run, "on_finish", results, stats)
  stats.hook_errors = run.hook_errors
  self:log():debug("fetched %d URL(s): %d ok, %d failed, %d retries in %.3fs",
    stats.count, stats.succeeded, stats.failed, stats.retries, elapsed)
  return stats
end

local Unlock = { __close = function(u) u.sem:release() end }

--- Run `workers` tasks that take entries from `next_entry` (in order) and
--- hand each result to `deliver(index, result, entry)`. With `needs_lock`,
--- taking an entry and its host slot happens under a lock, so no URL starts
--- before an earlier one even when a host slot or the source makes a worker wait.
---@param run table
---@param next_entry fun(): FetchEntry|nil, integer|nil
---@param workers integer
---@param deliver fun(index: integer, result: FetchResult, entry: FetchEntry)
---@param needs_lock boolean
function Fetcher:run_pool(run, next_entry, workers, deliver, needs_lock)
  local lock = needs_lock and task.semaphore(1) or nil
  local function take()
    if run.abort then return nil end
    local ok, entry, index, permit
    do
      if lock then lock:acquire() end
      -- released when this block ends, also when the worker is canceled inside it (the source
      -- or the host slot can make it wait while it holds the lock)
      local _ <close> = lock and setmetatable({ sem = lock }, Unlock)
      ok, entry, index = pcall(next_entry)
      if ok and entry then
        ok, permit = pcall(self.host_permit, self, entry.host)
        if not ok then entry = permit end
      end
    end
    if not ok then
      run.abort = run.abort or entry
      return nil
    end
    return entry, index, permit
  end
  local function work()
    while true do
      local entry, index, permit = take()
      if not entry then return end
      local ok, err = xpcall(function()
        deliver(index, self:fetch_entry(run, entry, index, permit), entry)
      end, debug.traceback)
      if not ok then
        if permit then permit:release() end
        run.abort = run.abort or err
        return
      end
    end
  end
  local tasks = {}
  -- if this task is canceled (or raises) while waiting, cancel the workers too
  local _ <close> = setmetatable({}, { __close = function()
    for _, t in ipairs(tasks) do
      if t:status() ~= "done" then t:cancel() end
    end
  end })
  for i = 1, workers do tasks[i] = task.spawn(work) end
  for _, t in ipairs(tasks) do
    local ok, err = t:join()
    if not ok then run.abort = run.abort or err end
  end
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
  for i, raw in ipairs(urls) do
    local entry, err = M.entry_of(raw)
    if not entry then error(string.format("fetch_urls: urls[%d]: %s", i, err), 2) end
    entries[i] = entry
  end
  local run = self:begin_run()
  self:call_hooks(run, "on_start", { total = #entries })
  local list = {}
  local chunk = self.chunk_size or math.max(#entries, 1)
  for first = 1, #entries, chunk do
    local last = math.min(first + chunk - 1, #entries)
    local i = first - 1
    local function next_entry()
      if i >= last then return nil end
      i = i + 1
      return entries[i], i
    end
    self:run_pool(run, next_entry, math.min(self.max_concurrent, last - first + 1),
      function(index, result) list[index] = result end, self.max_per_host ~= nil)
    if run.abort then error(run.abort, 0) end
  end
  local results = {}
  for i, entry in ipairs(entries) do results[entry.key] = list[i] end
  return results, self:finish_run(run, results), list
end

--- Turn a source into a function returning raw entries: a function (such as
--- `io.lines(path)`) is used as is; an array is walked in order.
---@param source function|table
---@return fun(): any
local function iterator_of(source)
  if type(source) == "function" then return source end
  if type(source) == "table" then
    local i = 0
    return function()
      i = i + 1
      return source[i]
    end
  end
  error("each expects an iterator function or an array", 3)
end

--- Streaming form: fetch entries produced by `source` and call
--- `on_result(key, result, index)` as each one finishes. Nothing is kept, so
--- memory stays flat however many entries the source yields. An entry that is
--- not a URL or request table gives a failed result of kind "invalid". If
--- on_result raises, no new URL starts and the error is raised once the
--- requests in flight have finished. The on_finish hooks get `nil` results.
---@param source function|table  iterator of URL strings / request tables, or an array
---@param on_result? fun(key: string, result: FetchResult, index: integer)
---@return FetchStats
function Fetcher:each(source, on_result)
  local produce = iterator_of(source)
  local run = self:begin_run()
  self:call_hooks(run, "on_start", { total = nil })
  local index = 0
  local function next_entry()
    local raw = produce()
    if raw == nil then return nil end
    index = index + 1
    local entry, err = M.entry_of(raw)
    if not entry then
      local url = tostring(type(raw) == "table" and type(raw.url) == "string" and raw.url or raw)
      entry = { url = url, method = "GET", key = url, host = "", invalid = err }
    end
    return entry, index
  end
  local function deliver(i, result, entry)
    if on_result then on_result(entry.key, result, i) end
  end
  self:run_pool(run, next_entry, self.max_concurrent, deliver, true)
  if run.abort then error(run.abort, 0) end
  return self:finish_run(run, nil)
end

--- Fetch a single URL or request table through the fetcher's policy, breaker
--- and hooks (on_finish is not called).
---@param raw string|table
---@return FetchResult
function Fetcher:fetch(raw)
  local entry, err = M.entry_of(raw)
  if not entry then error("fetch: " .. err, 2) end
  local run = self:begin_run()
  local permit = self:host_permit(entry.host)
  return self:fetch_entry(run, entry, 1, permit)
end

return M
