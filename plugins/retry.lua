-- plugins/retry.lua: the retry policy of the fetcher, usable around any function
-- that returns `res, err, kind` (the http convention). It decides whether an
-- outcome is worth another try, how long to wait (Retry-After, else exponential
-- backoff with jitter, capped) and keeps to an optional deadline.

local M = {}

M.DEFAULT_STATUSES = { 429, 500, 502, 503, 504 }
M.DEFAULT_KINDS = { "timeout", "connect", "closed", "dns" }
M.DEFAULT_METHODS = { "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE" }

---@param list any[]
---@return table<any, boolean>
local function set_of(list)
  local set = {}
  for _, item in ipairs(list) do set[item] = true end
  return set
end

local function default_clock()
  local ok, task = pcall(require, "task")
  if ok and type(task) == "table" then return task.now, task.sleep end
  return os.clock, function() end
end

---@class RetryPolicy
---@field max_retries integer      retries after the first attempt (3 → up to 4 attempts)
---@field backoff_factor number    sleep backoff_factor * 2^(n-1) after the n-th failed attempt
---@field max_backoff number       cap on any sleep, Retry-After included (seconds)
---@field jitter number            each backoff sleep is lengthened by up to this fraction
---@field respect_retry_after boolean
---@field statuses table<integer, boolean>
---@field kinds table<string, boolean>
---@field methods table<string, boolean>
---@field now fun(): number
---@field sleep fun(seconds: number)
---@field random fun(): number
local Policy = {}
Policy.__index = Policy
--- The class of every policy (its methods), for callers that check which ones an object keeps.
M.Policy = Policy

---@class RetryOptions
---@field max_retries? integer      default 3
---@field backoff_factor? number    default 1.5
---@field max_backoff? number       default 60
---@field jitter? number            default 0.1 (0 disables)
---@field respect_retry_after? boolean  default true
---@field statuses? integer[]       default 429 500 502 503 504
---@field kinds? string[]           default timeout connect closed dns
---@field methods? string[]         idempotent methods, default GET HEAD PUT DELETE OPTIONS TRACE
---@field now? fun(): number        clock (default task.now)
---@field sleep? fun(seconds: number)  default task.sleep
---@field random? fun(): number     uniform [0,1) (default math.random)

---@param value any
---@param what string
---@param integer boolean
local function check_non_negative(value, what, integer)
  if type(value) ~= "number" or value < 0 or value ~= value
      or (integer and math.type(value) ~= "integer" and value ~= math.floor(value)) then
    error(string.format("retry: %s must be a non-negative %s, got %s",
      what, integer and "integer" or "number", tostring(value)), 3)
  end
end

--- A new policy.
---@param opts? RetryOptions
---@return RetryPolicy
function M.new(opts)
  opts = opts or {}
  local now, sleep = default_clock()
  local self = setmetatable({
    max_retries = opts.max_retries or 3,
    backoff_factor = opts.backoff_factor or 1.5,
    max_backoff = opts.max_backoff or 60,
    jitter = opts.jitter or 0.1,
    respect_retry_after = opts.respect_retry_after ~= false,
    statuses = set_of(opts.statuses or M.DEFAULT_STATUSES),
    kinds = set_of(opts.kinds or M.DEFAULT_KINDS),
    methods = set_of(opts.methods or M.DEFAULT_METHODS),
    now = opts.now or now,
    sleep = opts.sleep or sleep,
    random = opts.random or math.random,
  }, Policy)
  check_non_negative(self.max_retries, "max_retries", true)
  check_non_negative(self.backoff_factor, "backoff_factor", false)
  check_non_negative(self.max_backoff, "max_backoff", false)
  check_non_negative(self.jitter, "jitter", false)
  self.max_retries = math.tointeger(self.max_retries)
  return self
end

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                 jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }

--- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
---@return integer
local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- Seconds since the epoch of an HTTP-date (IMF-fixdate, RFC 850 or asctime),
--- or nil when `text` is not one.
---@param text string
---@return integer|nil
function M.parse_http_date(text)
  local d, mon, y, h, mi, s =
    text:match("^%a+,%s+(%d%d?)%s+(%a%a%a)%s+(%d%d%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT$")
  if not d then -- RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    d, mon, y, h, mi, s =
      text:match("^%a+,%s+(%d%d)%-(%a%a%a)%-(%d%d)%s+(%d%d):(%d%d):(%d%d)%s+GMT$")
    if y then
      y = tonumber(y)
      y = tostring(y < 70 and 2000 + y or 1900 + y)
    end
  end
  if not d then -- asctime: Sun Nov  6 08:49:37 1994
    mon, d, h, mi, s, y =
      text:match("^%a+%s+(%a%a%a)%s+(%d%d?)%s+(%d%d):(%d%d):(%d%d)%s+(%d%d%d%d)$")
  end
  if not d then return nil end
  local month = MONTHS[mon:lower()]
  if not month then return nil end
  local days = days_from_civil(tonumber(y), month, tonumber(d))
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

--- Seconds to wait according to a Retry-After value (delta seconds or an
--- HTTP-date), or nil when absent or unreadable. Never negative.
---@param value string|nil
---@param wall_now? integer  seconds since the epoch (default os.time())
---@return number|nil
function M.parse_retry_after(value, wall_now)
  if type(value) ~= "string" then return nil end
  value = value:match("^%s*(.-)%s*$")
  local seconds = value:match("^%d+%.?%d*$") and tonumber(value)
  if seconds then return seconds end
  local at = M.parse_http_date(value)
  if not at then return nil end
  return math.max(0, at - (wall_now or os.time()))
end

--- True when the method may be repeated safely (nil counts as GET).
---@param method? string
---@return boolean
function Policy:idempotent(method)
  return self.methods[(method or "GET"):upper()] == true
end

--- Is this outcome worth another attempt (ignoring the attempt budget)?
---@param res table|nil   a response ({status=...}) or any result
---@param err any
---@param kind string|nil
---@return boolean
function Policy:retryable(res, err, kind)
  if res == nil then return kind ~= nil and self.kinds[kind] == true end
  return type(res) == "table" and self.statuses[res.status] == true
end

--- The pause before attempt `attempt + 1`, after attempt `attempt` failed with
--- `res` (used for its Retry-After header). Returns seconds and their source:
--- "retry-after" or "backoff".
---@param attempt integer  1 for the first attempt
---@param res? table
---@return number seconds
---@return string source
function Policy:delay(attempt, res)
  if self.respect_retry_after and type(res) == "table" and type(res.headers) == "table" then
    local wait = M.parse_retry_after(res.headers["retry-after"])
    if wait then return math.min(wait, self.max_backoff), "retry-after" end
  end
  local base = self.backoff_factor * 2 ^ (attempt - 1)
  local jittered = base * (1 + self.jitter * self.random())
  return math.min(jittered, self.max_backoff), "backoff"
end

--- What follows attempt `attempt`, which ended with `res, err, kind`: the seconds to wait before
--- the next attempt, or nil to stop (a success or an outcome not worth retrying, a method that
--- is not idempotent, the budget spent, or a pause that would end at or past `deadline`). One
--- call per attempt, no closure: the loop that `run` is, for callers that keep their own state.
---@param attempt integer  1 for the first attempt
---@param res any
---@param err any
---@param kind string|nil
---@param method? string   the request method (nil counts as GET)
---@param deadline? number absolute time on the policy clock
---@return number|nil wait
function Policy:after(attempt, res, err, kind, method, deadline)
  if attempt > self.max_retries or not self:retryable(res, err, kind)
      or not self:idempotent(method) then
    return nil
  end
  local wait = self:delay(attempt, res)
  if deadline and self.now() + wait >= deadline then return nil end
  return wait
end

---@class RetryRunOptions
---@field method? string     the request method; non-idempotent ones are never retried
---@field deadline? number   absolute time on the policy clock after which no attempt starts
---@field on_retry? fun(attempt: integer, delay: number, res: any, err: any, kind: string|nil)

--- Call `fn(attempt)` until it succeeds, is not retryable, the budget is spent
--- or the deadline would pass during the pause. Returns fn's last `res, err,
--- kind` and the number of attempts made.
---@param fn fun(attempt: integer): any, any, string|nil
---@param opts? RetryRunOptions
---@return any res
---@return any err
---@return string|nil kind
---@return integer attempts
function Policy:run(fn, opts)
  opts = opts or {}
  local attempt = 0
  while true do
    attempt = attempt + 1
    local res, err, kind = fn(attempt)
    local wait = self:after(attempt, res, err, kind, opts.method, opts.deadline)
    if not wait then return res, err, kind, attempt end
    if opts.on_retry then opts.on_retry(attempt, wait, res, err, kind) end
    if wait > 0 then self.sleep(wait) end
  end
end

--- Call `fn(...)` under the policy (treated as idempotent). Returns fn's last
--- `res, err, kind` and the attempts made.
---@param fn fun(...): any, any, string|nil
---@param ... any
---@return any res
---@return any err
---@return string|nil kind
---@return integer attempts
function Policy:call(fn, ...)
  local args = table.pack(...)
  return self:run(function() return fn(table.unpack(args, 1, args.n)) end)
end

--- A function with fn's signature that retries under this policy.
---@param fn fun(...): any, any, string|nil
---@return fun(...): any, any, string|nil, integer
function Policy:wrap(fn)
  return function(...) return self:call(fn, ...) end
end

return M
