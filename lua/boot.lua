-- boot.lua — run once at start-up: the module search path and the plugin searchers.
-- `require "plugins.NAME"` looks in ./plugins, the install's share directory,
-- then each directory of LUAFETCH_PLUGIN_PATH (NAME.lua), then the copy built into the binary.

---@param embedded_plugins table<string, function> loaders of the built-in plugins
---@param sharedir string the install's share directory
return function(embedded_plugins, sharedir)
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
