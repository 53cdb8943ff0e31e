-- fetcher_hooks.lua — the fetcher's plugins: loading the `plugins` option (tables, modules, names),
-- which plugins have which hook, and calling a hook so that a raising plugin never stops a fetch.

local logger = require "plugins.logger"

local M = {}

M.HOOKS = { "on_start", "on_request", "on_response", "on_error", "on_result", "on_finish" }

---@param plugin table
---@return boolean
local function has_hooks(plugin)
  for _, hook in ipairs(M.HOOKS) do
    if type(plugin[hook]) == "function" then return true end
  end
  return false
end

--- A breaker object (plugins.breaker or alike) rather than a hook table.
---@param plugin any
---@return boolean
function M.is_breaker(plugin)
  return type(plugin) == "table" and type(plugin.allow) == "function"
    and type(plugin.record_result) == "function"
end

---@class LoadedPlugin
---@field name string
---@field plugin table
---@field reported table<string, boolean>  hooks whose failure was logged already

--- Turn the `plugins` option into loaded plugins. An entry is a plugin table,
--- a module with `new` and no hooks (called with no argument), or a name
--- ("metrics" → require "plugins.metrics"). A breaker object found here becomes
--- the fetcher's breaker.
---@param list table|nil
---@return LoadedPlugin[] loaded
---@return Breaker|nil found_breaker
function M.load(list)
  if list ~= nil and type(list) ~= "table" then
    error("fetcher: plugins must be an array of plugin tables or names, got " .. type(list), 3)
  end
  local loaded, found_breaker = {}, nil
  for i, entry in ipairs(list or {}) do
    local name
    if type(entry) == "string" then
      name = entry
      entry = require("plugins." .. entry)
    end
    if type(entry) ~= "table" then
      error(string.format("fetcher: plugins[%d] must be a table or a name", i), 3)
    end
    if M.is_breaker(entry) then
      found_breaker = entry
    else
      if not has_hooks(entry) and type(entry.new) == "function" then
        entry = entry.new()
      end
      loaded[#loaded + 1] = {
        name = tostring(entry.name or name or ("plugins[" .. i .. "]")),
        plugin = entry, reported = {},
      }
    end
  end
  return loaded, found_breaker
end

--- For each hook, the plugins that have it (in registration order); a hook no plugin has is
--- absent, so the fetcher skips it with one table read. Taken at the start of each run.
---@param plugins LoadedPlugin[]
---@return table<string, LoadedPlugin[]>
function M.index(plugins)
  local by_hook = {}
  for _, p in ipairs(plugins) do
    for _, hook in ipairs(M.HOOKS) do
      if p.plugin[hook] ~= nil then
        local list = by_hook[hook]
        if not list then
          list = {}
          by_hook[hook] = list
        end
        list[#list + 1] = p
      end
    end
  end
  return by_hook
end

-- A hook raised: log it once per plugin and hook, count it in `run.hook_errors`.
---@param p LoadedPlugin
---@param run table|nil
---@param log Logger|nil
---@param name string
---@param err any
local function failed(p, run, log, name, err)
  if run then run.hook_errors = run.hook_errors + 1 end
  if not p.reported[name] then
    p.reported[name] = true
    ;(log or logger.get()):error(
      "plugin '%s' failed in %s: %s (later failures of this hook are counted, not logged)",
      p.name, name, tostring(err))
  end
end

-- Call hook `name` of each plugin of `list` (from `index`) with one, two or three arguments (no
-- vararg function on the way: every request passes here when a plugin has the hook). A raising
-- hook is reported (`failed`) and ignored.

---@param list LoadedPlugin[]
---@param run table|nil
---@param log Logger|nil  default: the shared logger
---@param name string
function M.call1(list, run, log, name, a)
  for i = 1, #list do
    local p = list[i]
    local fn = p.plugin[name]
    if fn then
      local ok, err = pcall(fn, a)
      if not ok then failed(p, run, log, name, err) end
    end
  end
end

---@param list LoadedPlugin[]
---@param run table|nil
---@param log Logger|nil
---@param name string
function M.call2(list, run, log, name, a, b)
  for i = 1, #list do
    local p = list[i]
    local fn = p.plugin[name]
    if fn then
      local ok, err = pcall(fn, a, b)
      if not ok then failed(p, run, log, name, err) end
    end
  end
end

---@param list LoadedPlugin[]
---@param run table|nil
---@param log Logger|nil
---@param name string
function M.call3(list, run, log, name, a, b, c)
  for i = 1, #list do
    local p = list[i]
    local fn = p.plugin[name]
    if fn then
      local ok, err = pcall(fn, a, b, c)
      if not ok then failed(p, run, log, name, err) end
    end
  end
end

return M
