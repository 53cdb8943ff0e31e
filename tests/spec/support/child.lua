-- support/child.lua — shared by the script specs: run luafetch scripts and the mock services as
-- child processes (a script run blocks this process's loop, so the mock needs a process of its
-- own), and pass any sanitizer report from a child on to the suite.
local task = require "task"

local M = {}

M.BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")
M.ROOT = assert(os.getenv("LUAFETCH_ROOT"), "LUAFETCH_ROOT is not set (run tests/run_specs.sh)")

---Shell-quotes s.
---@param s any
---@return string
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

---@return string|nil text of the file, nil if it cannot be opened
function M.read(path)
  local f = io.open(path)
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

function M.write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

---Under the ASan build a child's sanitizer report would stay in its captured stderr: copy it to
---ours (where tests/run_all.sh looks for reports) and fail.
function M.assert_clean(text)
  if text and (text:find("Sanitizer", 1, true) or text:find("runtime error:", 1, true)) then
    io.stderr:write(text)
    error("sanitizer report from a child process", 2)
  end
end

---Polls fn every 50 ms until it returns a true value (returned) or `limit` seconds pass.
function M.wait_for(what, fn, limit)
  local deadline = task.now() + (limit or 10)
  while task.now() < deadline do
    local v = fn()
    if v then return v end
    task.sleep(0.05)
  end
  error("timed out waiting for " .. what)
end

---@return boolean the process has ended
function M.gone(pid)
  return not os.execute("kill -0 " .. pid .. " 2>/dev/null")
end

---Ends a process this spec started, by its pid, and waits (up to 5 s) until it is gone.
function M.stop(pid)
  os.execute("kill " .. pid .. " 2>/dev/null")
  pcall(M.wait_for, "process " .. pid .. " to end", function() return M.gone(pid) end, 5)
end

---Starts scripts/mock_services.lua; returns { pid, url, err = path of its stderr }.
function M.start_mock()
  local out, err = os.tmpname(), os.tmpname()
  local p = assert(io.popen(("%s run %s >%s 2>%s </dev/null & echo $!"):format(
    M.q(M.BIN), M.q(M.ROOT .. "/scripts/mock_services.lua"), M.q(out), M.q(err))))
  local pid = p:read("l")
  p:close()
  local ok, port = pcall(M.wait_for, "the mock services",
    function() return (M.read(out) or ""):match("PORT (%d+)") end, 20)
  os.remove(out)
  if not ok then
    M.stop(pid)
    error(port, 2)
  end
  return { pid = pid, url = "http://127.0.0.1:" .. port, err = err }
end

---Stops the mock (no process left behind) and checks its stderr for sanitizer reports.
function M.stop_mock(mock)
  M.stop(mock.pid)
  local err = M.read(mock.err)
  os.remove(mock.err)
  M.assert_clean(err)
end

---Runs `luafetch run SCRIPT ARGS...` from the repository root to its end (bounded by `timeout`
---seconds); returns stdout, stderr, exit code.
function M.run_script(script, args, timeout)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = M.q(a) end
  local errfile = os.tmpname()
  local f = assert(io.popen(("cd %s && timeout %d %s run %s %s 2>%s </dev/null"):format(
    M.q(M.ROOT), timeout or 30, M.q(M.BIN), M.q(script), table.concat(quoted, " "), M.q(errfile))))
  local out = f:read("a")
  local _, _, code = f:close()
  local err = M.read(errfile)
  os.remove(errfile)
  M.assert_clean(err)
  return out, err, code
end

return M
