-- test_runner.lua — `luafetch test`: busted specs run inside the host, in the main task,
-- so specs use real tasks, the real loop and real sockets.
local M = {}

local EXIT = {}

---@param args string[] busted's command-line arguments
---@return integer exit status
function M.main(args)
  package.path = package.path .. ";/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua"
  local ok_busted = pcall(require, "busted.runner")
  if not ok_busted then
    io.stderr:write("luafetch test: busted for Lua 5.4 is not installed (apt-get install lua-busted)\n")
    return 2
  end
  -- busted ends with os.exit: turn that into a return so the host shuts down in order.
  local real_exit = os.exit
  os.exit = function(code)
    if code == true or code == nil then code = 0 elseif code == false then code = 1 end
    error({ [EXIT] = true, code = code }, 0)
  end
  _G.arg = args
  local ok, err = pcall(require("busted.runner"), { standalone = false, output = nil })
  os.exit = real_exit
  if not ok then
    if type(err) == "table" and err[EXIT] then
      return err.code
    end
    error(err, 0)
  end
  return 0
end

return M
