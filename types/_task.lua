---@meta
-- LuaLS stubs for the C module `_task` (core/lua/lua_task.c), which lua/task.lua wraps.

---@class TaskHandle
local TaskHandle = {}
---Waits for the task: true + its results, or false + its error.
---@return boolean ok
---@return any ...
function TaskHandle:join() end
---Cancels the task (its request or timer, its to-be-closed variables). False if already done.
---@return boolean
function TaskHandle:cancel() end
---@return "ready"|"running"|"waiting"|"done"
function TaskHandle:status() end

---@class _task
local _task = {}
---@param fn function
---@return TaskHandle
function _task.spawn(fn, ...) end
---@param seconds number
function _task.sleep(seconds) end
---@return number seconds on a monotonic clock
function _task.now() end

---The real time of day in seconds since 1970, with microseconds (not the virtual clock).
---@return number
function _task.wall() end
---Yields the running task until _task.wake passes values to it.
---@return any ...
function _task.suspend() end
---Wakes a task suspended in _task.suspend with values; false if it was not suspended there.
---@param t TaskHandle
---@return boolean
function _task.wake(t, ...) end
---@return TaskHandle|nil
function _task.current() end
---@return integer unfinished tasks
function _task.count() end

return _task
