---@meta task
-- LuaLS stubs for `require "task"` (lua/task.lua over core/lua/lua_task.c). DESIGN.md "task".

---@class task
local task = {}

---@class Task
local Task = {}
---Waits for the task: true and its results, or false and its error.
---@return boolean ok
---@return any ...
function Task:join() end
---Cancels the task: its requests in flight are cancelled, its to-be-closed variables closed.
function Task:cancel() end
---@return "ready"|"running"|"waiting"|"done"
function Task:status() end

---Runs fn(...) as a new task.
---@param fn function
---@param ... any
---@return Task
function task.spawn(fn, ...) end

---Yields the calling task for a while.
---@param seconds number
function task.sleep(seconds) end

---Monotonic seconds.
---@return number
function task.now() end

---The running task, or nil outside one.
---@return Task|nil
function task.current() end

---Runs fn(signal_name) as a task on SIGINT/SIGTERM (a second signal ends at once). Returns the
---previous handler.
---@param fn fun(signal: "SIGINT"|"SIGTERM")|nil
---@return function|nil previous
function task.on_signal(fn) end

---Tasks alive now.
---@return integer
function task.count() end

---@class Semaphore
local Semaphore = {}
---Waits for a permit.
function Semaphore:acquire() end
---Takes a permit if one is free.
---@return boolean
function Semaphore:try_acquire() end
function Semaphore:release() end
---@return integer
function Semaphore:available() end

---@param n integer permits
---@return Semaphore
function task.semaphore(n) end

return task
