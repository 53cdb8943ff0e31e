---@meta plugins.timer
-- LuaLS stubs for `require "plugins.timer"`: the decorator and the context manager of the seed.

---@class plugins.timer
---@field indent string  per nesting level in log lines
local timer = {}

---@class TimerScope
---@field name string
---@field started number
---@field depth integer       0 for an outermost scope
---@field elapsed_s number|nil  set when the scope closes
local TimerScope = {}
---Seconds since the scope opened.
---@return number
function TimerScope:elapsed() end
---Closes the scope (logs name and time); `<close>` calls it.
---@param err? any
---@return number seconds
function TimerScope:stop(err) end

---@param opts { logger?: Logger, clock?: fun(): number }
function timer.configure(opts) end

---@param seconds number
---@return string
function timer.format_seconds(seconds) end

---`local t <close> = timer.scope("Fetching")`: logs the name and elapsed time at INFO when it
---goes out of scope, also on error; nested scopes are indented.
---@param name string
---@param opts? { logger?: Logger }
---@return TimerScope
function timer.scope(name, opts) end

---The decorator: fn wrapped so that each call is timed and logged under `name`.
---@generic F: function
---@param fn F
---@param name? string
---@return F
function timer.wrap(fn, name) end

---Calls fn(...) and returns its seconds first, then its results.
---@param fn function
---@return number seconds
---@return any ...
function timer.measure(fn, ...) end

return timer
