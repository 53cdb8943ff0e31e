-- fetcher_hosts.lua — what the fetcher keeps per host ("host:port"): request slots when
-- `max_per_host` is set, and the circuit breaker's gate. Neither costs anything when not configured.

local task = require "task"
local breaker = require "plugins.breaker"
local hooks = require "fetcher_hooks"

local M = {}

--- The host key ("host:port") of an entry: a URL string or a request table.
---@param entry string|table
---@return string
function M.host_of(entry)
  if type(entry) == "string" then return breaker.host_of(entry) end
  local host = entry.host
  if not host then
    host = breaker.host_of(entry.url)
    entry.host = host
  end
  return host
end

---------------------------------------------------------------------------
-- Request slots per host
---------------------------------------------------------------------------

---@class HostPermit
---@field slot { sem: Semaphore, users: integer }
---@field slots table<string, table>
---@field host string
---@field held boolean
---@field released boolean|nil
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

-- Closed when `permit` returns, or when its task is canceled while waiting for the slot's
-- semaphore: then the permit was never held, and only the user count is given back.
local Waiting = { __close = function(w) if not w.permit.held then w.permit:release() end end }

--- Wait for a request slot on `host` among `slots` (a host's slot is dropped once idle, so
--- memory does not grow with the number of hosts).
---@param slots table<string, table>
---@param max_per_host integer
---@param host string
---@return HostPermit permit  release with permit:release() or <close>
function M.permit(slots, max_per_host, host)
  local slot = slots[host]
  if not slot then
    slot = { sem = task.semaphore(max_per_host), users = 0 }
    slots[host] = slot
  end
  slot.users = slot.users + 1
  local sem = slot.sem
  if sem:try_acquire() then -- free now (nobody waits then: release hands permits to waiters)
    return setmetatable({ slot = slot, slots = slots, host = host, held = true }, Permit)
  end
  local permit = setmetatable({ slot = slot, slots = slots, host = host, held = false }, Permit)
  local waiting <close> = setmetatable({ permit = permit }, Waiting)
  sem:acquire()
  permit.held = true
  return permit
end

---------------------------------------------------------------------------
-- The circuit breaker's gate
---------------------------------------------------------------------------

--- `breaker` option → a breaker or nil: true (defaults), options, or an object.
---@param value any
---@return Breaker|nil
function M.make_breaker(value)
  if value == nil or value == false then return nil end
  if value == true then return breaker.new() end
  if hooks.is_breaker(value) then return value end
  if type(value) == "table" then return breaker.new(value) end
  error("fetcher: breaker must be true, options or a breaker object", 3)
end

-- An allowed call's slot in the breaker: closed without `done` (the task was canceled during
-- the request), it is handed back so a half-open circuit may probe again.
local BreakerSlot = {
  __close = function(slot)
    if not slot.done then slot.breaker:abandon(slot.host) end
  end,
}

--- Ask `b` about `host`: a refusal message, or nil and a to-be-closed guard for the allowed
--- call (set `guard.done` once its outcome is recorded).
---@param b Breaker
---@param host string
---@return string|nil refused
---@return table|nil guard
function M.gate(b, host)
  local allowed, retry_in = b:allow(host)
  if not allowed then
    return string.format("circuit open for %s (next probe in %.1fs)", host, retry_in or 0)
  end
  return nil, setmetatable({ breaker = b, host = host, done = false }, BreakerSlot)
end

return M
