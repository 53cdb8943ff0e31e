-- task.lua — tasks (coroutines the host schedules), sleeping, time, and semaphores.
-- spawn/join/sleep/now come from the C core (_task); the semaphore is built on suspend/wake.
local C = require "_task"

local M = {}

---Runs fn(...) as a new task, starting on the next loop turn.
---@param fn function
---@return userdata task handle with :join(), :cancel(), :status()
M.spawn = C.spawn

---Suspends the running task for `seconds` (0 lets other ready tasks run first).
---@param seconds number
M.sleep = C.sleep

---Monotonic clock in seconds (float).
---@return number
M.now = C.now

---The running task's handle, or nil outside a task.
M.current = C.current

---Runs fn(signame) as a task on the first SIGINT or SIGTERM ("SIGINT"/"SIGTERM"), for a graceful
---stop; a second signal, or one with no handler, ends the program at once. nil removes it.
---Returns the previous handler, so a module can chain to a script's own.
---@param fn function|nil
---@return function|nil previous
M.on_signal = C.on_signal

---Number of unfinished tasks.
---@return integer
M.count = C.count

---@class Semaphore
---@field private permits integer
---@field private waiters table  queue of Waiter entries, from index head
local Semaphore = {}
Semaphore.__index = Semaphore

-- A waiting acquire's entry. It is a to-be-closed variable of acquire, so it is closed when acquire
-- returns and also when its task is canceled while waiting (task_cancel closes pending
-- to-be-closed variables): then a permit already handed to it is passed on, and an entry still
-- queued is marked so release skips it. Either way no permit is lost.
---@class Waiter
---@field task userdata
---@field sem Semaphore
---@field granted boolean|nil  release handed it a permit
---@field done boolean|nil     acquire returned with the permit
---@field canceled boolean|nil
local Waiter = {}
Waiter.__close = function(w)
  if w.done then return end
  if w.granted then
    w.sem:release()
  else
    w.canceled = true
  end
end

---Takes a permit, waiting (in arrival order) until one is free.
function Semaphore:acquire()
  if self.permits > 0 and #self.waiters == self.head - 1 then
    self.permits = self.permits - 1
    return true
  end
  local me = C.current() or error("semaphore:acquire must be called from a task", 2)
  if not coroutine.isyieldable() then
    -- checked before queueing, so a failed wait leaves no waiter behind
    error("semaphore:acquire cannot wait here: called through a C function (such as string.gsub)", 2)
  end
  local w <close> = setmetatable({ task = me, sem = self }, Waiter)
  self.waiters[#self.waiters + 1] = w
  C.suspend() -- release() hands the permit straight to us
  w.done = true
  return true
end

---Takes a permit if one is free now.
---@return boolean
function Semaphore:try_acquire()
  if self.permits > 0 then
    self.permits = self.permits - 1
    return true
  end
  return false
end

---Returns a permit, handing it to the longest waiter if any.
function Semaphore:release()
  local w = self.waiters
  while self.head <= #w do
    local entry = w[self.head]
    w[self.head] = false
    self.head = self.head + 1
    if self.head > #w then
      -- queue drained: reset so the array does not grow forever
      for i = #w, 1, -1 do w[i] = nil end
      self.head = 1
    end
    if not entry.canceled then
      entry.granted = true
      if C.wake(entry.task) then
        return
      end
      entry.granted = false -- not waiting any more (cannot happen: canceled waiters are marked)
    end
  end
  self.permits = self.permits + 1
end

---Permits free now.
---@return integer
function Semaphore:available()
  return self.permits
end

---A counting semaphore with n permits.
---@param n integer
---@return Semaphore
function M.semaphore(n)
  assert(math.type(n) == "integer" and n >= 0, "semaphore(n): n must be a non-negative integer")
  return setmetatable({ permits = n, waiters = {}, head = 1 }, Semaphore)
end

return M
