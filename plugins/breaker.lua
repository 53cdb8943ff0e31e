-- plugins/breaker.lua: a per-host circuit breaker. After `failure_threshold`
-- consecutive failures a host's circuit opens and calls fail fast with kind
-- "circuit_open"; after `open_seconds` one probe is let through (half-open):
-- its success closes the circuit, its failure opens it again.

local M = {}

---@alias CircuitState "closed"|"open"|"half_open"

M.FAILURE_KINDS = { timeout = true, connect = true, closed = true, dns = true,
                    tls = true, protocol = true }

---@class Circuit
---@field state CircuitState
---@field failures integer     consecutive failures while closed
---@field opened_at number|nil clock time of the last opening
---@field probes integer       probes in flight while half-open
---@field successes integer    probe successes while half-open
---@field times_opened integer
---@field rejected integer     calls refused while open

---@class Breaker
---@field failure_threshold integer
---@field open_seconds number
---@field half_open_probes integer
---@field success_threshold integer
---@field circuits table<string, Circuit>
---@field now fun(): number
---@field on_change fun(host: string, from: CircuitState, to: CircuitState)|nil
local Breaker = {}
Breaker.__index = Breaker

local function default_now()
  local ok, task = pcall(require, "task")
  if ok and type(task) == "table" and task.now then return task.now end
  return os.clock
end

--- Default failure test: a transport failure of a kind that says the host is
--- unwell, or a 5xx response. 4xx, "invalid", "limit" and "canceled" are not
--- the host's fault and count as successes.
---@param res table|nil
---@param err any
---@param kind string|nil
---@return boolean
function M.default_is_failure(res, err, kind)
  if res == nil then return M.FAILURE_KINDS[kind] == true end
  return type(res) == "table" and type(res.status) == "number" and res.status >= 500
end

---@class BreakerOptions
---@field failure_threshold? integer  consecutive failures that open a circuit (default 5)
---@field open_seconds? number        how long a circuit stays open (default 30)
---@field half_open_probes? integer   calls let through at once while half-open (default 1)
---@field success_threshold? integer  probe successes that close it (default 1)
---@field is_failure? fun(res: any, err: any, kind: string|nil): boolean
---@field now? fun(): number          clock (default task.now)
---@field on_change? fun(host: string, from: CircuitState, to: CircuitState)

---@param opts? BreakerOptions
---@return Breaker
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({
    name = "breaker",
    failure_threshold = opts.failure_threshold or 5,
    open_seconds = opts.open_seconds or opts.reset_timeout or 30,
    half_open_probes = opts.half_open_probes or 1,
    success_threshold = opts.success_threshold or 1,
    is_failure = opts.is_failure or M.default_is_failure,
    now = opts.now or default_now(),
    on_change = opts.on_change,
    circuits = {},
  }, Breaker)
  assert(self.failure_threshold >= 1, "breaker: failure_threshold must be >= 1")
  assert(self.open_seconds >= 0, "breaker: open_seconds must be >= 0")
  assert(self.half_open_probes >= 1, "breaker: half_open_probes must be >= 1")
  assert(self.success_threshold >= 1, "breaker: success_threshold must be >= 1")
  return self
end

--- The host key of a URL's origin ("scheme://authority", no path): see host_of.
---@param origin string
---@return string
local function host_of_origin(origin)
  local scheme, authority = origin:match("^(%a[%w+.-]*)://(.*)$")
  authority = authority:gsub("^.*@", ""):lower()
  if authority:find(":%d+$") then return authority end
  local port = scheme:lower() == "https" and 443 or 80
  return authority .. ":" .. port
end

-- origin → host key, for the origins seen last; emptied when it reaches CACHE_MAX, so a crawl
-- of many hosts keeps it bounded. An origin is usually short enough for Lua to intern, so looking
-- one up costs a find and a sub.
local host_cache, host_cache_size, CACHE_MAX = {}, 0, 1024

--- The host key of a URL: "host:port" in lower case (default ports filled in), or "" when the
--- URL has no scheme.
---@param url string
---@return string
function M.host_of(url)
  local _, stop = url:find("^%a[%w+.-]*://[^/?#]*")
  if not stop then return "" end
  local origin = url:sub(1, stop)
  local host = host_cache[origin]
  if not host then
    host = host_of_origin(origin)
    if host_cache_size >= CACHE_MAX then host_cache, host_cache_size = {}, 0 end
    host_cache[origin] = host
    host_cache_size = host_cache_size + 1
  end
  return host
end

---@param self Breaker
---@param host string
---@return Circuit
local function circuit(self, host)
  local c = self.circuits[host]
  if not c then
    c = { state = "closed", failures = 0, probes = 0, successes = 0,
          times_opened = 0, rejected = 0 }
    self.circuits[host] = c
  end
  return c
end

---@param self Breaker
---@param host string
---@param c Circuit
---@param to CircuitState
local function move(self, host, c, to)
  local from = c.state
  if from == to then return end
  c.state = to
  if to == "open" then
    c.opened_at = self.now()
    c.times_opened = c.times_opened + 1
  end
  c.probes, c.successes = 0, 0
  if to == "closed" then c.failures = 0 end
  if self.on_change then self.on_change(host, from, to) end
end

--- The state of a host's circuit now (an open circuit past its period reads
--- "half_open").
---@param host string
---@return CircuitState
function Breaker:state(host)
  local c = self.circuits[host]
  if not c then return "closed" end
  if c.state == "open" and self.now() - c.opened_at >= self.open_seconds then
    move(self, host, c, "half_open")
  end
  return c.state
end

--- May a call to `host` go ahead? When it may not: false and the seconds
--- until the next probe. A true answer while half-open takes a probe slot;
--- report its outcome with `record`.
---@param host string
---@return boolean allowed
---@return number|nil retry_in
function Breaker:allow(host)
  local state = self:state(host)
  local c = circuit(self, host)
  if state == "closed" then return true end
  if state == "half_open" and c.probes < self.half_open_probes then
    c.probes = c.probes + 1
    return true
  end
  c.rejected = c.rejected + 1
  local retry_in = 0
  if state == "open" then
    retry_in = math.max(0, self.open_seconds - (self.now() - c.opened_at))
  end
  return false, retry_in
end

--- Report the outcome of an allowed call.
---@param host string
---@param failed boolean
function Breaker:record(host, failed)
  local c = circuit(self, host)
  if c.state == "half_open" then
    c.probes = math.max(c.probes - 1, 0)
    if failed then
      move(self, host, c, "open")
    else
      c.successes = c.successes + 1
      if c.successes >= self.success_threshold then move(self, host, c, "closed") end
    end
  elseif c.state == "closed" then
    if failed then
      c.failures = c.failures + 1
      if c.failures >= self.failure_threshold then move(self, host, c, "open") end
    else
      c.failures = 0
    end
  end
  -- outcomes that arrive while open (calls started before it opened) are ignored
end

--- Give back an allowed call's slot without an outcome (the call was
--- canceled): a half-open circuit may probe again.
---@param host string
function Breaker:abandon(host)
  local c = self.circuits[host]
  if c and c.state == "half_open" then c.probes = math.max(c.probes - 1, 0) end
end

--- Report an outcome in the http convention (`res, err, kind`).
---@param host string
---@return boolean failed
function Breaker:record_result(host, res, err, kind)
  local failed = self.is_failure(res, err, kind)
  self:record(host, failed)
  return failed
end

--- Run `fn(...)` through the host's circuit. Refused: `nil, message,
--- "circuit_open"`; otherwise fn's results, whose outcome is recorded.
---@param host string
---@param fn fun(...): any, any, string|nil
---@return any res
---@return any err
---@return string|nil kind
function Breaker:call(host, fn, ...)
  local allowed, retry_in = self:allow(host)
  if not allowed then
    return nil, string.format("circuit open for %s (next probe in %.1fs)",
      host, retry_in or 0), "circuit_open"
  end
  local res, err, kind = fn(...)
  self:record_result(host, res, err, kind)
  return res, err, kind
end

--- A snapshot of every circuit: host → {state, failures, times_opened, rejected}.
---@return table<string, {state: CircuitState, failures: integer, times_opened: integer, rejected: integer}>
function Breaker:states()
  local out = {}
  for host in pairs(self.circuits) do
    local state = self:state(host)
    local c = self.circuits[host]
    out[host] = { state = state, failures = c.failures,
                  times_opened = c.times_opened, rejected = c.rejected }
  end
  return out
end

--- Forget every circuit (all closed).
function Breaker:reset()
  self.circuits = {}
end

return M
