-- task_safety_spec.lua — the scheduler's invariants under misuse and failure: a semaphore permit
-- handed to a waiter that is canceled before it runs is passed on, not lost; an error value whose
-- __tostring or __index raises, results too many for a joiner's stack, and a response that
-- cannot be copied into Lua (out of memory) end as task errors, never as an abort of the host;
-- a task's coroutine cannot be resumed or closed from Lua. The crash cases run in child processes.

local task = require "task"
local child = require "tests.spec.support.child"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")

local scripts = {}

-- Runs `luafetch run` on the Lua source; returns stdout, stderr, exit status (a signal shows as
-- a status above 128, which no case here expects).
local function run_code(source)
  local path = os.tmpname() .. ".lua"
  child.write(path, source)
  scripts[#scripts + 1] = path
  return child.run_script(path, {}, 60)
end

local function wait_status(t, status)
  while t:status() ~= status do task.sleep(0) end
end

describe("semaphore permits survive canceled waiters", function()
  it("a permit handed to a waiter that is canceled before it runs goes back", function()
    local sem = task.semaphore(1)
    sem:acquire()
    local waiter = task.spawn(function() sem:acquire(); sem:release() end)
    wait_status(waiter, "waiting")
    sem:release() -- handed to the waiter, which is ready but has not run yet
    assert.are.equal("ready", waiter:status())
    assert.is_true(waiter:cancel())
    assert.are.equal(1, sem:available())
    assert.is_true(sem:try_acquire())
  end)

  it("the handed-on permit reaches the next waiter in line", function()
    local sem = task.semaphore(1)
    sem:acquire()
    local first = task.spawn(function() sem:acquire(); return "first" end)
    local second = task.spawn(function() sem:acquire(); sem:release(); return "second" end)
    wait_status(first, "waiting")
    wait_status(second, "waiting")
    sem:release()
    assert.is_true(first:cancel())
    assert.are.same({ true, "second" }, { second:join() })
    assert.are.equal(1, sem:available())
  end)

  it("a waiter canceled while still queued is skipped, and the count stays right", function()
    local sem = task.semaphore(1)
    sem:acquire()
    local ts = {}
    for i = 1, 3 do ts[i] = task.spawn(function() sem:acquire(); sem:release(); return i end) end
    for i = 1, 3 do wait_status(ts[i], "waiting") end
    assert.is_true(ts[2]:cancel())
    sem:release()
    assert.are.same({ true, 1 }, { ts[1]:join() })
    assert.are.same({ true, 3 }, { ts[3]:join() })
    assert.are.equal(1, sem:available())
  end)
end)

describe("errors raised around the scheduler end as task errors, not aborts", function()
  teardown(function()
    for _, p in ipairs(scripts) do os.remove(p) end
  end)

  it("an error value whose __tostring raises", function()
    local out, err, code = run_code([[
      local task = require "task"
      task.spawn(function() error(setmetatable({}, { __tostring = function() error("boom") end })) end)
      task.sleep(0.01)
      print("still running")
    ]])
    assert.are.equal(1, code, err)
    assert.are.equal("still running\n", out)
    assert.truthy(err:find("task error", 1, true), err)
    assert.truthy(err:find("boom", 1, true), err)
    assert.is_nil(err:find("unprotected", 1, true), err)
  end)

  it("an error value whose __index raises", function()
    local _, err, code = run_code([[
      require("task").spawn(function() error(setmetatable({}, { __index = function() error("idx") end })) end)
    ]])
    assert.are.equal(1, code, err)
    assert.truthy(err:find("idx", 1, true), err)
  end)

  it("such a value still reaches a joiner as it is", function()
    local out, err, code = run_code([[
      local task = require "task"
      local bad = setmetatable({ tag = "mine" }, { __tostring = function() error("boom") end })
      local ok, e = task.spawn(function() error(bad) end):join()
      print(ok, rawequal(e, bad))
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("false\ttrue\n", out)
  end)

  it("results too many for the joiner's stack are an error in the joiner", function()
    local out, err, code = run_code([[
      local task = require "task"
      local n = 999000
      local big = {}
      for i = 1, n do big[i] = i end
      local t = task.spawn(function() return table.unpack(big, 1, n) end)
      local pad = {}
      for i = 1, 2000 do pad[i] = i end
      -- the joiner keeps 2000 values on its stack while it waits
      local ok, e = (function(...) return pcall(t.join, t) end)(table.unpack(pad))
      print(ok, e)
      print(select("#", t:join()))
    ]])
    assert.are.equal(0, code, err)
    assert.truthy(out:find("^false\t[^\n]*too many results"), out)
    assert.truthy(out:find("\n999001\n$"), out)
  end)

  it("a response that cannot be copied into Lua fails its task with 'not enough memory'", function()
    -- The process's address space is capped just above what it uses once the C side holds the
    -- body, so copying the body into a Lua string fails (in the task, not in the I/O callback).
    local out, err, code = run_code(([[
      local http = require "http"
      local base = %q
      assert(http.get(base .. "/bytes/10")) -- start the pool, the DNS threads, the connection
      local status = io.open("/proc/self/status"):read("a")
      local vm = tonumber(status:match("VmSize:%%s*(%%d+) kB")) * 1024
      local maps = io.open("/proc/self/maps"):read("a")
      -- ASan reserves terabytes; valgrind's own memory lives in the same address space
      if vm > 2^40 or maps:find("vgpreload", 1, true) then print("SKIP") return end
      local pid = io.open("/proc/self/stat"):read("l"):match("^(%%d+)")
      local n = 32 * 1024 * 1024 - 1 -- the C buffer is exactly 32 MiB
      assert(os.execute(("prlimit --pid %%s --as=%%d"):format(pid, vm + 32 * 1024 * 1024 + 24 * 1024 * 1024)))
      local ok, e = pcall(http.get, base .. "/bytes/" .. n)
      print(ok, e)
      local again = http.get(base .. "/bytes/10")
      print(again and again.status)
    ]]):format(BASE))
    if out:find("^SKIP") then
      pending("an address-space limit does not fit under ASan or valgrind")
      return
    end
    assert.are.equal(0, code, err)
    assert.are.equal("false\tnot enough memory\n200\n", out)
  end)
end)

describe("a task's coroutine belongs to the scheduler", function()
  it("coroutine.resume and coroutine.close refuse it, and the task runs on undisturbed", function()
    local co
    local t = task.spawn(function()
      co = coroutine.running()
      task.sleep(0.02)
      return "finished"
    end)
    wait_status(t, "waiting")
    local ok, err = pcall(coroutine.resume, co)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cannot resume a task's coroutine", 1, true), err)
    ok, err = pcall(coroutine.close, co)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cannot close a task's coroutine", 1, true), err)
    assert.are.equal("suspended", coroutine.status(co))
    assert.are.same({ true, "finished" }, { t:join() })
  end)

  it("refuses a task's own coroutine from a nested one, with the same message", function()
    local me = coroutine.running()
    local ok, err = coroutine.resume(coroutine.create(function() return coroutine.resume(me) end))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cannot resume a task's coroutine", 1, true), err)
  end)

  it("an HTTP result is never delivered into other code", function()
    local co, got
    local t = task.spawn(function()
      co = coroutine.running()
      local res = require("http").get(BASE .. "/delay/0.1")
      got = res and res.status
    end)
    wait_status(t, "waiting")
    assert.is_false((pcall(coroutine.resume, co)))
    t:join()
    assert.are.equal(200, got)
  end)

  it("leaves plain coroutines alone", function()
    local c = coroutine.create(function(a) local b = coroutine.yield(a + 1); return b * 2 end)
    assert.are.same({ true, 2 }, { coroutine.resume(c, 1) })
    assert.are.same({ true, 10 }, { coroutine.resume(c, 5) })
    assert.are.equal("dead", coroutine.status(c))
    local d = coroutine.create(function() coroutine.yield() end)
    coroutine.resume(d)
    assert.is_true(coroutine.close(d))
    local w = coroutine.wrap(function() coroutine.yield(7) end)
    assert.are.equal(7, w())
    assert.has_error(function() coroutine.resume(42) end)
  end)
end)
