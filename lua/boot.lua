-- boot.lua — run once at start-up: the module search path, the plugin searchers, and the guard
-- that keeps coroutine.resume/close off a task's coroutine (only the scheduler resumes a task).
-- `require "plugins.NAME"` looks in ./plugins, the install's share directory,
-- then each directory of LUAFETCH_PLUGIN_PATH (NAME.lua), then the copy built into the binary.

-- A task's coroutine (coroutine.running() inside a task) resumed or closed by Lua code would
-- leave the scheduler resuming a dead coroutine, or delivering an I/O result into unrelated code.
local function guard_task_threads()
  local is_task_thread = require("_task").is_task_thread
  local resume, close = coroutine.resume, coroutine.close
  local MESSAGE = "cannot %s a task's coroutine: use task.spawn/join (and task:cancel)"
  coroutine.resume = function(co, ...)
    if is_task_thread(co) then error(MESSAGE:format("resume"), 2) end
    return resume(co, ...)
  end
  coroutine.close = function(co)
    if is_task_thread(co) then error(MESSAGE:format("close"), 2) end
    return close(co)
  end
end

---@param embedded_plugins table<string, function> loaders of the built-in plugins
---@param sharedir string the install's share directory
return function(embedded_plugins, sharedir)
  guard_task_threads()
  package.path = "./?.lua;./?/init.lua;" .. sharedir .. "/?.lua;" .. package.path

  local dirs = {}
  for dir in (os.getenv("LUAFETCH_PLUGIN_PATH") or ""):gmatch("[^:]+") do
    dirs[#dirs + 1] = dir
  end

  package.searchers[#package.searchers + 1] = function(name)
    local short = name:match("^plugins%.(.+)$")
    if not short then
      return nil
    end
    local tried = {}
    for _, dir in ipairs(dirs) do
      local path, err = package.searchpath(short, dir .. "/?.lua")
      if path then
        return assert(loadfile(path)), path
      end
      tried[#tried + 1] = err
    end
    local loader = embedded_plugins[name]
    if loader then
      return loader, "[luafetch]"
    end
    return table.concat(tried) .. "\n\tno built-in plugin '" .. name .. "'"
  end
end
