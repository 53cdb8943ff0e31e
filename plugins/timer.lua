-- plugins/timer.lua: the seed's timer decorator and timer context manager.
-- `timer.wrap(fn, name)` times every call; `local t <close> = timer.scope(name)`
-- times a block. Both log "name: 0.123s" at INFO; scopes opened inside other
-- scopes (in the same task) are indented one step per level.

local logger = require "plugins.logger"

local M = {}

--- Indentation added per nesting level.
M.indent = "  "

---@type Logger|nil  nil: use the shared logger at the time of logging
local configured_logger = nil

-- Open scopes per coroutine (task): nesting is tracked per task, so timers in
-- concurrent tasks do not indent each other.
local depth_of = setmetatable({}, { __mode = "k" })
local MAIN = {}

local function clock()
  local ok, task = pcall(require, "task")
  if ok and type(task) == "table" and task.now then return task.now end
  return os.clock
end
local now = clock()

---@return thread|table
local function current_key()
  return coroutine.running() or MAIN
end

--- Options for every timer: `logger` (a Logger; default the shared one),
--- `clock` (a function returning seconds, default task.now).
---@param opts { logger?: Logger, clock?: fun(): number }
function M.configure(opts)
  configured_logger = opts.logger
  if opts.clock then now = opts.clock end
end

---@param seconds number
---@return string
function M.format_seconds(seconds)
  if seconds < 1e-3 then return string.format("%.1fus", seconds * 1e6) end
  if seconds < 1 then return string.format("%.2fms", seconds * 1e3) end
  return string.format("%.3fs", seconds)
end

---@class TimerScope
---@field name string
---@field started number      clock value at the start
---@field depth integer       0 for an outermost scope
---@field elapsed_s number|nil  set when the scope closes
---@field logger Logger|nil
local Scope = {}
Scope.__index = Scope

--- Seconds since the scope opened (or its total once closed).
---@return number
function Scope:elapsed()
  return self.elapsed_s or (now() - self.started)
end

--- Close the scope now (also done by `<close>`); returns the elapsed seconds.
--- Closing twice logs once.
---@param err? any  the error unwinding the block, if any
---@return number
function Scope:stop(err)
  if self.elapsed_s then return self.elapsed_s end
  self.elapsed_s = now() - self.started
  local key = self.key
  depth_of[key] = math.max((depth_of[key] or 1) - 1, 0)
  local log = self.logger or configured_logger or logger.get()
  local prefix = string.rep(M.indent, self.depth)
  if err ~= nil then
    log:info("%s%s: %s (failed: %s)", prefix, self.name,
             M.format_seconds(self.elapsed_s), tostring(err))
  else
    log:info("%s%s: %s", prefix, self.name, M.format_seconds(self.elapsed_s))
  end
  return self.elapsed_s
end

Scope.__close = Scope.stop

--- Open a timing scope; use it as `local t <close> = timer.scope("Fetching")`.
--- The scope logs its name and elapsed time when it goes out of scope, also on
--- error.
---@param name string
---@param opts? { logger?: Logger }
---@return TimerScope
function M.scope(name, opts)
  local key = current_key()
  local depth = depth_of[key] or 0
  depth_of[key] = depth + 1
  local log = (opts and opts.logger) or configured_logger or logger.get()
  log:debug("%s%s started", string.rep(M.indent, depth), name)
  return setmetatable({
    name = name, started = now(), depth = depth, key = key,
    logger = opts and opts.logger,
  }, Scope)
end

---@param fn function
---@return string
local function function_name(fn)
  local info = debug.getinfo(fn, "S")
  return string.format("function <%s:%d>", info.short_src, info.linedefined)
end

--- The decorator: a function that calls `fn` with the same arguments, returns
--- all of its results (errors pass through) and logs the time it took.
---@generic F: function
---@param fn F
---@param name? string  default "function <file:line>"
---@return F
function M.wrap(fn, name)
  assert(type(fn) == "function", "timer.wrap expects a function")
  name = name or function_name(fn)
  return function(...)
    local _ <close> = M.scope(name)
    return fn(...)
  end
end

--- Time a single call: returns the elapsed seconds and then fn's results.
---@param fn function
---@param ... any
---@return number elapsed
---@return any ...
function M.measure(fn, ...)
  local started = now()
  local results = table.pack(fn(...))
  return now() - started, table.unpack(results, 1, results.n)
end

return M
