---@meta plugins.retry
-- LuaLS stubs for `require "plugins.retry"`: the fetcher's retry policy, usable around any
-- function returning `res, err, kind`.

---@class plugins.retry
---@field DEFAULT_STATUSES integer[]  429 500 502 503 504
---@field DEFAULT_KINDS string[]      timeout connect closed dns
---@field DEFAULT_METHODS string[]    GET HEAD PUT DELETE OPTIONS TRACE
local retry = {}

---@class RetryOptions
---@field max_retries? integer      default 3
---@field backoff_factor? number    default 1.5: sleeps of f * 2^(n-1) s
---@field max_backoff? number       default 60
---@field jitter? number            default 0.1 (0 disables)
---@field respect_retry_after? boolean  default true
---@field statuses? integer[]
---@field kinds? string[]
---@field methods? string[]
---@field now? fun(): number
---@field sleep? fun(seconds: number)
---@field random? fun(): number

---@class RetryPolicy
---@field max_retries integer
---@field backoff_factor number
---@field max_backoff number
---@field jitter number
local RetryPolicy = {}
---@param method? string
---@return boolean
function RetryPolicy:idempotent(method) end
---@return boolean
function RetryPolicy:retryable(res, err, kind) end
---@param attempt integer
---@param res? table
---@return number seconds
---@return "retry-after"|"backoff" source
function RetryPolicy:delay(attempt, res) end
---Calls fn(attempt) until success, a final failure, the budget or the deadline.
---@param fn fun(attempt: integer): any, any, string|nil
---@param opts? { method?: string, deadline?: number, on_retry?: fun(attempt: integer, delay: number, res: any, err: any, kind: string|nil) }
---@return any res
---@return any err
---@return string|nil kind
---@return integer attempts
function RetryPolicy:run(fn, opts) end
---@return any res, any err, string|nil kind, integer attempts
function RetryPolicy:call(fn, ...) end
---@generic F: function
---@param fn F
---@return F
function RetryPolicy:wrap(fn) end

---@param opts? RetryOptions
---@return RetryPolicy
function retry.new(opts) end

---@param text string
---@return integer|nil
function retry.parse_http_date(text) end

---@param value string|nil
---@param wall_now? integer
---@return number|nil
function retry.parse_retry_after(value, wall_now) end

return retry
