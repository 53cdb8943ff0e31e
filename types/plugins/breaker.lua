---@meta plugins.breaker
-- LuaLS stubs for `require "plugins.breaker"`: a per-host circuit breaker.

---@class plugins.breaker
local breaker = {}

---@alias CircuitState "closed"|"open"|"half_open"

---@class BreakerOptions
---@field failure_threshold? integer  consecutive failures that open a circuit (5)
---@field open_seconds? number        how long a circuit stays open (30)
---@field half_open_probes? integer   calls let through at once while half-open (1)
---@field success_threshold? integer  probe successes that close it (1)
---@field is_failure? fun(res: any, err: any, kind: string|nil): boolean
---@field now? fun(): number
---@field on_change? fun(host: string, from: CircuitState, to: CircuitState)

---@class Breaker
local Breaker = {}
---@param host string
---@return CircuitState
function Breaker:state(host) end
---@param host string
---@return boolean allowed
---@return number|nil retry_in  seconds until the next probe, when refused
function Breaker:allow(host) end
---@param host string
---@param failed boolean
function Breaker:record(host, failed) end
---@param host string
function Breaker:abandon(host) end
---@param host string
function Breaker:record_result(host, res, err, kind) end
---Calls fn(...) when the circuit allows it; otherwise nil, message, "circuit_open".
---@param host string
---@param fn function
---@return any ...
function Breaker:call(host, fn, ...) end
---@return table<string, table>
function Breaker:states() end
function Breaker:reset() end

---@param opts? BreakerOptions
---@return Breaker
function breaker.new(opts) end

---"host:port" of a URL.
---@param url string
---@return string
function breaker.host_of(url) end

---@return boolean
function breaker.default_is_failure(res, err, kind) end

return breaker
