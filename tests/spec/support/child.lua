-- support/child.lua — shared by the specs: run luafetch scripts and the mock services as child
-- processes (a script run blocks this process's loop, so the mock needs a process of its own),
-- start the fixtures that print NAME VALUE lines then READY PID, and pass any sanitizer report
-- from a child on to the suite.
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

---Starts a fixture of tests/fixtures that prints "NAME VALUE" lines, then "READY PID", and stops
---(with everything it started) on SIGTERM or when this process is gone: h2_servers.py, proxies.py.
---It runs as `python3 SCRIPT DIR ARGS...` with DIR a scratch folder of its own. Returns the
---NAME → VALUE table and a function that stops it by its pid and removes DIR.
---@param script string  file name in tests/fixtures
---@return table<string, string> values
---@return fun() stop
function M.start_fixture(script, ...)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. M.q(dir)))
  local args = { M.q(dir) }
  for _, a in ipairs({ ... }) do args[#args + 1] = M.q(a) end
  local p = assert(io.popen(("exec python3 %s %s"):format(M.q(M.ROOT .. "/tests/fixtures/" .. script),
    table.concat(args, " ")), "r"))
  local values, pid = {}, nil
  for line in p:lines() do
    local name, v = line:match("^(%S+) (%S+)$")
    if name == "READY" then
      pid = v
      break
    elseif name then
      values[name] = v
    end
  end
  if not pid then
    p:close()
    os.execute("rm -rf " .. M.q(dir))
    error(script .. " did not start", 2)
  end
  return values, function()
    os.execute("kill " .. pid)
    p:close()
    os.execute("rm -rf " .. M.q(dir))
  end
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

---Ends a process this spec started, by its pid, and waits (up to 5 s) until it has exited (not
---until it is reaped: see M.ended).
function M.stop(pid)
  os.execute("kill " .. pid .. " 2>/dev/null")
  pcall(M.wait_for, "process " .. pid .. " to end", function() return M.ended(pid) end, 5)
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

---@return boolean the process has exited: gone, or a zombie that its new parent (init, which
---reaps orphans only now and then) has not reaped yet; `gone` waits for the reaping too
function M.ended(pid)
  local stat = M.read("/proc/" .. pid .. "/stat")
  if not stat then
    return M.read("/proc/self/stat") ~= nil or M.gone(pid) -- no /proc: ask kill -0
  end
  return stat:match(".*%) (%a)") == "Z"
end

---The same as stop_mock.
M.end_mock = M.stop_mock

---Runs `luafetch run OPTIONS... SCRIPT ARGS...` (OPTIONS: run options such as --replay, which go
---before the script) from `cwd` (default: the repository root) to its end, bounded by `timeout`
---seconds (default 30); returns stdout, stderr, exit code.
function M.run_with(options, script, args, timeout, cwd)
  local quoted = {}
  for _, a in ipairs(options) do quoted[#quoted + 1] = M.q(a) end
  quoted[#quoted + 1] = M.q(script)
  for _, a in ipairs(args) do quoted[#quoted + 1] = M.q(a) end
  local errfile = os.tmpname()
  local f = assert(io.popen(("cd %s && timeout %d %s run %s 2>%s </dev/null"):format(
    M.q(cwd or M.ROOT), timeout or 30, M.q(M.BIN), table.concat(quoted, " "), M.q(errfile))))
  local out = f:read("a")
  local _, _, code = f:close()
  local err = M.read(errfile)
  os.remove(errfile)
  M.assert_clean(err)
  return out, err, code
end

---------------------------------------------------------------------------------------------------
-- Replayed runs. tests/fixtures/har/regenerate.lua records the HARs there from
-- scripts/mock_services.lua and writes the mock's origin as HAR_ORIGIN, a host that does not
-- resolve: a replay that reached for the network would find nothing.

M.HAR_DIR = M.ROOT .. "/tests/fixtures/har"
M.HAR_ORIGIN = "http://mock.test:8080"

---@return table[] the entries of the HAR at path ({} when there is no such file)
function M.har_entries(path)
  local text = M.read(path)
  if not text then return {} end
  return require("cjson").decode(text).log.entries
end

---Runs SCRIPT with its requests answered from the HAR `har` (`--replay`), on the virtual clock
---unless opts.clock == "real"; opts.miss = "network" sends requests the HAR lacks to the network;
---opts.timeout, opts.cwd as run_with. What the script asked for is recorded at the same time
---(`--record`). Returns stdout, stderr, exit code and the recorded entries: the exchanges the
---script made, in order (a request that found no answer is not among them).
function M.replay_script(script, har, args, opts)
  opts = opts or {}
  local record = os.tmpname()
  local out, err, code = M.run_with({ "--replay", har, "--clock", opts.clock or "virtual",
    "--replay-miss", opts.miss or "error", "--record", record }, script, args, opts.timeout, opts.cwd)
  local entries = M.har_entries(record)
  os.remove(record)
  return out, err, code, entries
end

---Runs SCRIPT live (the network) with `--record`; returns stdout, stderr, exit code and the
---recorded entries.
function M.record_script(script, args, timeout)
  local record = os.tmpname()
  local out, err, code = M.run_with({ "--record", record }, script, args, timeout)
  local entries = M.har_entries(record)
  os.remove(record)
  return out, err, code, entries
end

---The path and query of a URL (its origin dropped).
function M.path_of(url)
  return url:match("^%a[%w+.-]*://[^/]*(.*)$") or url
end

---Entries as sorted lines "METHOD /path?query STATUS" (with_text: and the body), so recordings of
---one run against servers on different origins compare equal.
---@return string[]
function M.har_summary(entries, with_text)
  local lines = {}
  for _, e in ipairs(entries) do
    local line = ("%s %s %d"):format(e.request.method, M.path_of(e.request.url), e.response.status)
    if with_text then line = line .. "\n" .. tostring(e.response.content.text) end
    lines[#lines + 1] = line
  end
  table.sort(lines)
  return lines
end

---A copy of the HAR at `path` (in a temporary file, returned) with HAR_ORIGIN replaced by
---`origin`: a replay aimed at a live server, to show it sends that server nothing.
function M.har_at(path, origin)
  local text = assert(M.read(path))
  local escaped = M.HAR_ORIGIN:gsub("/", "\\/")
  text = text:gsub(escaped:gsub("%p", "%%%0"), (origin:gsub("/", "\\/"):gsub("%%", "%%%%")))
  text = text:gsub(M.HAR_ORIGIN:gsub("%p", "%%%0"), (origin:gsub("%%", "%%%%")))
  local copy = os.tmpname()
  M.write(copy, text)
  return copy
end

return M
