-- cli_spec.lua: the command line of DESIGN.md, run as child processes of LUAFETCH_BIN: --version,
-- --help, usage errors (exit 2), `run SCRIPT [ARG...]` with `arg` and `...`, a returned integer
-- as the exit status, syntax and runtime errors (exit 1), `-e`, error{exit_code=N}, and an orderly
-- shutdown (no libuv handle left open) after pooled connections and cancelled requests.

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs BIN with the given (unquoted) arguments under `timeout 20` (a hang shows as status 124);
-- returns stdout, stderr, exit code.
local function run(args, env)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = shell_quote(a) end
  local errfile = os.tmpname()
  local cmd = (env or "") .. " timeout 20 " .. shell_quote(BIN) .. " " .. table.concat(quoted, " ") .. " 2>" .. shell_quote(errfile) .. " </dev/null"
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  local _, how, code = f:close()
  local ef = assert(io.open(errfile))
  local err = ef:read("a")
  ef:close()
  os.remove(errfile)
  assert.are.equal("exit", how, "killed by signal " .. tostring(code) .. ": " .. err)
  return out, err, code
end

local scripts = {}
local function script(source)
  local path = os.tmpname() .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  scripts[#scripts + 1] = path
  return path
end

local function assert_clean_exit(err)
  assert.is_nil(err:find("left open", 1, true), err)
  assert.is_nil(err:find("did not close cleanly", 1, true), err)
end

describe("luafetch command line", function()
  teardown(function()
    for _, p in ipairs(scripts) do os.remove(p) end
  end)

  it("--version prints the version and exits 0", function()
    local out, err, code = run{ "--version" }
    assert.are.equal(0, code, err)
    assert.truthy(out:match("^luafetch %d+%.%d+%.%d+"), out)
  end)

  it("--help prints the usage on stdout and exits 0", function()
    local out, err, code = run{ "--help" }
    assert.are.equal(0, code, err)
    assert.truthy(out:find("usage", 1, true))
    for _, cmd in ipairs{ "run SCRIPT", "get", "test", "-e CODE", "--version" } do
      assert.truthy(out:find(cmd, 1, true), cmd)
    end
  end)

  it("no command is bad usage: exit 2 with the usage on stderr", function()
    local out, err, code = run{}
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.truthy(err:find("usage", 1, true))
  end)

  it("an unknown command exits 2", function()
    local out, err, code = run{ "frobnicate" }
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.truthy(err:find("frobnicate", 1, true), err)
    assert_clean_exit(err)
  end)

  it("run without a script and -e without code exit 2", function()
    assert.are.equal(2, select(3, run{ "run" }))
    assert.are.equal(2, select(3, run{ "-e" }))
  end)

  it("run passes arguments in `arg` and as the chunk's `...`", function()
    local path = script([[
      print(arg[0])
      print(#arg, arg[1], arg[2], arg[3])
      print(select("#", ...), ...)
    ]])
    local out, err, code = run{ "run", path, "one", "two words", "" }
    assert.are.equal(0, code, err)
    local lines = {}
    for line in out:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
    assert.are.equal(path, lines[1])
    assert.are.equal("3\tone\ttwo words\t", lines[2])
    assert.are.equal("3\tone\ttwo words\t", lines[3])
  end)

  it("run with no arguments has an empty `arg` list", function()
    local out, err, code = run{ "run", script("print(#arg, select('#', ...))") }
    assert.are.equal(0, code, err)
    assert.are.equal("0\t0\n", out)
  end)

  it("an integer returned by the main chunk is the exit status", function()
    assert.are.equal(3, select(3, run{ "run", script("return 3") }))
    assert.are.equal(0, select(3, run{ "run", script("return 0") }))
    assert.are.equal(0, select(3, run{ "run", script("local x = 1") }))
    assert.are.equal(0, select(3, run{ "run", script("return 'not a number'") }))
  end)

  it("a returned number outside 0-255 warns and exits 1 instead of wrapping", function()
    for _, case in ipairs{ { "return 300", "300" }, { "return -1", "-1" }, { "return 256", "256" },
                           { "return 2.5", "2.5" } } do
      local out, err, code = run{ "run", script(case[1]) }
      assert.are.equal(1, code, case[1] .. ": " .. err)
      assert.are.equal("", out)
      assert.truthy(err:find("warning: the script returned " .. case[2], 1, true), err)
      assert.truthy(err:find("0-255", 1, true), err)
    end
    assert.are.equal(255, select(3, run{ "run", script("return 255") }))
    assert.are.equal(7, select(3, run{ "-e", "return 7.0" }))
  end)

  it("the returned status waits for the other tasks", function()
    local out, err, code = run{ "run", script([[
      local task = require "task"
      task.spawn(function() task.sleep(0.05); print("late") end)
      return 5
    ]]) }
    assert.are.equal(5, code, err)
    assert.are.equal("late\n", out)
  end)

  it("a syntax error exits 1 and names the script", function()
    local path = script("local x = = 1\n")
    local out, err, code = run{ "run", path }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find(path, 1, true), err)
    assert.truthy(err:find("1:", 1, true), err) -- the line
    assert_clean_exit(err)
  end)

  it("a missing script exits 1", function()
    local _, err, code = run{ "run", "/nonexistent/script.lua" }
    assert.are.equal(1, code)
    assert.truthy(err:find("/nonexistent/script.lua", 1, true), err)
  end)

  it("a runtime error exits 1 with a traceback", function()
    local path = script("local function f() error('kaput') end\nf()\n")
    local out, err, code = run{ "run", path }
    assert.are.equal(1, code)
    assert.truthy(err:find("kaput", 1, true), err)
    assert.truthy(err:find("traceback", 1, true), err)
  end)

  it("-e runs a chunk", function()
    local out, err, code = run{ "-e", "print(1 + 1); io.write('x')" }
    assert.are.equal(0, code, err)
    assert.are.equal("2\nx", out)
    assert.are.equal("", err)
  end)

  it("-e can use http and task at the top level", function()
    local out, err, code = run{ "-e", ("local r = require('http').get(%q); print(r.status, r.body)"):format(BASE .. "/bytes/3") }
    assert.are.equal(0, code, err)
    assert.are.equal("200\tabc\n", out)
  end)

  it("-e with a syntax error exits 1", function()
    local out, err, code = run{ "-e", "print(" }
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(#err > 0)
  end)

  it("error{exit_code = N, message = ...} exits N with the message and no traceback", function()
    local out, err, code = run{ "-e", "print('before'); error({ exit_code = 2, message = 'bad input given' })" }
    assert.are.equal(2, code)
    assert.are.equal("before\n", out)
    assert.truthy(err:find("bad input given", 1, true), err)
    assert.is_nil(err:find("traceback", 1, true), err)
    local _, err2, code2 = run{ "run", script("error({ exit_code = 7, message = 'seven' })") }
    assert.are.equal(7, code2)
    assert.truthy(err2:find("seven", 1, true))
  end)

  it("a bad HTTP_TIMEOUT is bad usage: exit 2", function()
    local _, err, code = run({ "-e", ("require('http').get(%q)"):format(BASE .. "/status/200") }, "HTTP_TIMEOUT=soon")
    assert.are.equal(2, code)
    assert.truthy(err:find("HTTP_TIMEOUT", 1, true), err)
  end)

  it("shuts down in order after idle pooled connections and cancelled requests", function()
    local path = script(([[
      local http, task = require "http", require "task"
      local base = %q
      -- idle keep-alive connections left in the pool
      local ts = {}
      for i = 1, 5 do ts[i] = task.spawn(function() return http.get(base .. "/delay/0.05") end) end
      for i = 1, 5 do
        local ok, res = ts[i]:join()
        assert(ok and res and res.status == 200)
      end
      -- a request cancelled while waiting for a silent server
      local silent = task.spawn(function() return http.get(base .. "/silence") end)
      -- a request cancelled while its name is being resolved
      local lookup = task.spawn(function() return http.get("http://nonexistent.invalid/") end)
      -- a request cancelled in the middle of a body
      local drip = task.spawn(function() return http.get(base .. "/drip?bytes=100&interval=0.01") end)
      task.sleep(0.1)
      silent:cancel()
      lookup:cancel()
      drip:cancel()
      -- a sleeping task cancelled
      local sleeper = task.spawn(function() task.sleep(60) end)
      task.sleep(0)
      sleeper:cancel()
      print("in_flight", http.stats().in_flight)
      return 0
    ]]):format(BASE))
    local out, err, code = run{ "run", path }
    assert.are.equal(0, code, err)
    assert.are.equal("in_flight\t0\n", out)
    assert.are.equal("", err)
  end)

  it("shuts down in order when the script fails with requests pooled", function()
    local out, err, code = run{ "-e", ("local http = require 'http'; assert(http.get(%q)); error('after a request')"):format(BASE .. "/bytes/1") }
    assert.are.equal(1, code)
    assert.truthy(err:find("after a request", 1, true))
    assert_clean_exit(err)
  end)

  it("shuts down in order after a deadlock with a request pooled", function()
    local _, err, code = run{ "-e", ("assert(require('http').get(%q)); require('task').semaphore(0):acquire()"):format(BASE .. "/bytes/1") }
    assert.are.equal(1, code)
    assert.truthy(err:find("deadlock", 1, true), err)
    assert_clean_exit(err)
  end)
end)
