-- task_spec.lua: the `task` contract: spawn/join with results and errors, status, current, count,
-- cancel (in sleep, in http.get, in join, in a semaphore) with to-be-closed variables closed,
-- semaphores (FIFO order, limits, try_acquire, cancelled waiters), sleep accuracy, task.now,
-- the nested-coroutine guard; error reporting, exit status and deadlock in child processes.

local http = require "http"
local task = require "task"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs `luafetch -e code` under `timeout limit` (default 20 s: a hang shows as exit status 124
-- instead of stopping the suite); returns stdout, stderr, and the exit code.
local function run_code(code, limit)
  local errfile = os.tmpname()
  local cmd = "timeout " .. (limit or 20) .. " " .. shell_quote(BIN) .. " -e " .. shell_quote(code) .. " 2>" .. shell_quote(errfile)
  local f = assert(io.popen(cmd))
  local out = f:read("a")
  local ok, how, status = f:close()
  local ef = assert(io.open(errfile))
  local err = ef:read("a")
  ef:close()
  os.remove(errfile)
  assert.are.equal("exit", how, "killed by a signal: " .. tostring(status) .. "\n" .. err)
  return out, err, status, ok
end

local function closer(log, name)
  return setmetatable({}, { __close = function() log[#log + 1] = name end })
end

-- Waits for an event (cond() true), polling every 5 ms: the specs never guess how long something
-- takes, so a loaded machine or valgrind makes them slower, not flaky. Fails after `limit` s.
local function wait_until(cond, what, limit)
  local deadline = task.now() + (limit or 10)
  while not cond() do
    if task.now() > deadline then error("timed out waiting for " .. what, 2) end
    task.sleep(0.005)
  end
end

local function waiting(t)
  return function() return t:status() == "waiting" end
end

describe("task.spawn and join", function()
  it("join returns true and every result", function()
    local t = task.spawn(function(a, b) return a + b, "x", nil, false end, 1, 2)
    local r = table.pack(t:join())
    assert.are.equal(5, r.n)
    assert.are.same({ true, 3, "x", nil, false }, { r[1], r[2], r[3], r[4], r[5] })
  end)

  it("passes arguments, including nils, in order", function()
    local t = task.spawn(function(...) return select("#", ...), ... end, "a", nil, 3)
    local ok, n, a, b, c = t:join()
    assert.is_true(ok)
    assert.are.equal(3, n)
    assert.are.equal("a", a)
    assert.is_nil(b)
    assert.are.equal(3, c)
  end)

  it("join on a finished task returns its results again", function()
    local t = task.spawn(function() return "once" end)
    assert.are.same({ true, "once" }, { t:join() })
    task.sleep(0.01)
    assert.are.same({ true, "once" }, { t:join() })
  end)

  it("join returns false and the error message", function()
    local t = task.spawn(function() error("boom") end)
    local ok, err = t:join()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("boom", 1, true))
  end)

  it("join returns an error value that is not a string as it is", function()
    local value = { code = 7 }
    local ok, err = task.spawn(function() error(value) end):join()
    assert.is_false(ok)
    assert.are.equal(value, err)
  end)

  it("several tasks can join one task", function()
    local target = task.spawn(function() task.sleep(0.05); return 42 end)
    local joiners = {}
    for i = 1, 3 do
      joiners[i] = task.spawn(function() return select(2, target:join()) end)
    end
    for i = 1, 3 do
      assert.are.same({ true, 42 }, { joiners[i]:join() })
    end
  end)

  it("tasks start in spawn order and interleave at yields", function()
    local log = {}
    local ts = {}
    for i = 1, 3 do
      ts[i] = task.spawn(function()
        log[#log + 1] = "start " .. i
        task.sleep(0)
        log[#log + 1] = "end " .. i
      end)
    end
    for i = 1, 3 do ts[i]:join() end
    assert.are.same({ "start 1", "start 2", "start 3", "end 1", "end 2", "end 3" }, log)
  end)

  it("a spawned task starts on a later loop turn, not inside spawn", function()
    local started = false
    local t = task.spawn(function() started = true end)
    assert.is_false(started)
    t:join()
    assert.is_true(started)
  end)

  it("a task keeps running when its handle is dropped", function()
    local done = false
    task.spawn(function() task.sleep(0.05); done = true end)
    collectgarbage()
    collectgarbage()
    wait_until(function() return done end, "the task whose handle was dropped")
    assert.is_true(done)
  end)

  it("a bare coroutine.yield() in a task just gives others a turn", function()
    local log = {}
    local a = task.spawn(function() log[#log + 1] = "a1"; coroutine.yield(); log[#log + 1] = "a2"; return "a" end)
    local b = task.spawn(function() log[#log + 1] = "b1" end)
    assert.are.same({ true, "a" }, { a:join() })
    b:join()
    assert.are.same({ "a1", "b1", "a2" }, log)
  end)

  it("a task cannot join itself", function()
    local t
    t = task.spawn(function()
      task.sleep(0)
      return pcall(t.join, t)
    end)
    local ok, pok, err = t:join()
    assert.is_true(ok)
    assert.is_false(pok)
    assert.truthy(tostring(err):find("itself", 1, true))
  end)
end)

describe("task status, current and count", function()
  it("status goes ready → running → waiting → done", function()
    local t
    local seen_inside
    local gate = task.semaphore(0)
    t = task.spawn(function()
      seen_inside = t:status()
      gate:acquire()
    end)
    assert.are.equal("ready", t:status())
    wait_until(function() return seen_inside ~= nil end, "the task to start")
    assert.are.equal("running", seen_inside)
    assert.are.equal("waiting", t:status())
    gate:release()
    t:join()
    assert.are.equal("done", t:status())
  end)

  it("task.current() is the running task's handle", function()
    local t
    t = task.spawn(function() return task.current() end)
    local ok, cur = t:join()
    assert.is_true(ok)
    assert.are.equal(t, cur)
    assert.is_not_nil(task.current()) -- the spec itself runs in the main task
    assert.are_not.equal(t, task.current())
  end)

  it("task.current() is nil in a nested coroutine", function()
    local inside = coroutine.wrap(function() return task.current() end)()
    assert.is_nil(inside)
  end)

  it("task.count() counts unfinished tasks", function()
    local n0 = task.count()
    local ts = {}
    for i = 1, 5 do ts[i] = task.spawn(function() task.sleep(0.02) end) end
    assert.are.equal(n0 + 5, task.count())
    for i = 1, 5 do ts[i]:join() end
    assert.are.equal(n0, task.count())
  end)
end)

describe("task cancel", function()
  it("cancels a task in sleep at once; join reports the cancel", function()
    local after = false
    local t = task.spawn(function() task.sleep(10); after = true end)
    wait_until(waiting(t), "the task to sleep")
    local t0 = task.now()
    assert.is_true(t:cancel())
    assert.are.equal("done", t:status())
    local ok, err = t:join()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cancel", 1, true))
    assert.is_true(task.now() - t0 < 5) -- not the 10 s sleep
    task.sleep(0.02)
    assert.is_false(after)
  end)

  it("cancels a task that has not started yet", function()
    local ran = false
    local t = task.spawn(function() ran = true end)
    assert.is_true(t:cancel())
    task.sleep(0.02)
    assert.is_false(ran)
    assert.is_false((t:join()))
  end)

  it("cancel of a finished task returns false", function()
    local t = task.spawn(function() return 1 end)
    t:join()
    assert.is_false(t:cancel())
    local s = task.spawn(function() task.sleep(1) end)
    task.sleep(0)
    assert.is_true(s:cancel())
    assert.is_false(s:cancel())
  end)

  it("a task cannot cancel itself", function()
    local t
    t = task.spawn(function() return pcall(t.cancel, t) end)
    local ok, pok, err = t:join()
    assert.is_true(ok)
    assert.is_false(pok)
    assert.truthy(tostring(err):find("itself", 1, true))
  end)

  it("cancels a task waiting in http.get: the request is abandoned", function()
    local after = false
    local before = http.stats()
    local t = task.spawn(function()
      local res = http.get(BASE .. "/silence", { timeout = 10 })
      after = true
      return res
    end)
    wait_until(function() return http.stats().in_flight > before.in_flight end, "the request")
    assert.are.equal(before.in_flight + 1, http.stats().in_flight)
    assert.are.equal("waiting", t:status())
    assert.is_true(t:cancel())
    assert.are.equal(before.in_flight, http.stats().in_flight)
    assert.are.equal(0, http.stats().in_flight)
    local ok, err = t:join()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("cancel", 1, true))
    task.sleep(0.05)
    assert.is_false(after)
    -- the abandoned connection is not offered to the next request
    local res = assert(http.get(BASE .. "/bytes/3", { timeout = 2 }))
    assert.are.equal("abc", res.body)
  end)

  it("cancels a task waiting in http.get while it connects and resolves", function()
    local t1 = task.spawn(function() return http.get("http://nonexistent.invalid/", { timeout = 5 }) end)
    local t2 = task.spawn(function() return http.get(BASE .. "/delay/1", { timeout = 5 }) end)
    task.sleep(0)
    t1:cancel()
    t2:cancel()
    assert.are.equal(0, http.stats().in_flight)
    task.sleep(0.05)
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("cancels many requests in flight", function()
    local ts = {}
    for i = 1, 50 do
      ts[i] = task.spawn(function() return http.get(BASE .. "/drip?bytes=10&interval=0.5&i=" .. i) end)
    end
    -- each drip lasts 5 s: all 50 are in flight long before the first could end
    wait_until(function() return http.stats().in_flight == 50 end, "50 requests in flight")
    assert.are.equal(50, http.stats().in_flight)
    for i = 1, 50 do assert.is_true(ts[i]:cancel()) end
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("closes to-be-closed variables on cancel, innermost first, once", function()
    local log = {}
    local t = task.spawn(function()
      local a <close> = closer(log, "outer")
      do
        local b <close> = closer(log, "inner")
        task.sleep(10)
      end
    end)
    wait_until(waiting(t), "the task to sleep")
    assert.are.same({}, log)
    t:cancel()
    assert.are.same({ "inner", "outer" }, log)
    task.sleep(0.01)
    assert.are.same({ "inner", "outer" }, log)
  end)

  it("closes to-be-closed variables of a task cancelled in http.get", function()
    local log = {}
    local t = task.spawn(function()
      local c <close> = closer(log, "request scope")
      return http.get(BASE .. "/silence", { timeout = 10 })
    end)
    wait_until(waiting(t), "the task to wait in http.get")
    t:cancel()
    assert.are.same({ "request scope" }, log)
  end)

  it("closes to-be-closed variables when a task returns or fails", function()
    local log = {}
    local ok = task.spawn(function()
      local c <close> = closer(log, "returned")
      task.sleep(0)
      return 1
    end):join()
    assert.is_true(ok)
    local failed = task.spawn(function()
      local c <close> = closer(log, "failed")
      task.sleep(0)
      error("x")
    end):join()
    assert.is_false(failed)
    assert.are.same({ "returned", "failed" }, log)
  end)

  it("cancels a task waiting in join; the joined task goes on", function()
    local gate = task.semaphore(0)
    local target = task.spawn(function() gate:acquire(); return "target done" end)
    local joiner = task.spawn(function() return target:join() end)
    wait_until(waiting(joiner), "the joiner to wait")
    assert.is_true(joiner:cancel())
    gate:release()
    assert.are.same({ true, "target done" }, { target:join() })
    assert.is_false((joiner:join()))
  end)

  it("joiners of a cancelled task get false and the cancel", function()
    local target = task.spawn(function() task.sleep(10) end)
    local joiner = task.spawn(function() return target:join() end)
    wait_until(waiting(joiner), "the joiner to wait")
    target:cancel()
    local ok, tok, err = joiner:join()
    assert.is_true(ok)
    assert.is_false(tok)
    assert.truthy(tostring(err):find("cancel", 1, true))
  end)
end)

describe("task.semaphore", function()
  it("hands permits out in arrival order", function()
    local sem = task.semaphore(1)
    sem:acquire()
    local order = {}
    local ts = {}
    for i = 1, 5 do
      ts[i] = task.spawn(function()
        sem:acquire()
        order[#order + 1] = i
        task.sleep(0.005)
        sem:release()
      end)
    end
    for i = 1, 5 do wait_until(waiting(ts[i]), "waiter " .. i) end
    assert.are.same({}, order)
    sem:release()
    for i = 1, 5 do ts[i]:join() end
    assert.are.same({ 1, 2, 3, 4, 5 }, order)
    assert.are.equal(1, sem:available())
  end)

  it("never lets more than n tasks in", function()
    local sem = task.semaphore(3)
    local active, max_active = 0, 0
    local ts = {}
    for i = 1, 12 do
      ts[i] = task.spawn(function()
        sem:acquire()
        active = active + 1
        max_active = math.max(max_active, active)
        task.sleep(0.02)
        active = active - 1
        sem:release()
      end)
    end
    for i = 1, 12 do assert.is_true((ts[i]:join())) end
    assert.are.equal(3, max_active)
    assert.are.equal(3, sem:available())
  end)

  it("limits concurrent requests (server side)", function()
    assert(http.get(BASE .. "/stats/reset"))
    local sem = task.semaphore(4)
    local ts = {}
    for i = 1, 16 do
      ts[i] = task.spawn(function()
        sem:acquire()
        local res = http.get(BASE .. "/inflight?delay=0.05&i=" .. i)
        sem:release()
        return res.status
      end)
    end
    for i = 1, 16 do assert.are.same({ true, 200 }, { ts[i]:join() }) end
    local stats = assert(assert(http.get(BASE .. "/stats")):json())
    assert.are.equal(4, stats.max_inflight)
  end)

  it("try_acquire and available", function()
    local sem = task.semaphore(2)
    assert.are.equal(2, sem:available())
    assert.is_true(sem:try_acquire())
    assert.is_true(sem:try_acquire())
    assert.is_false(sem:try_acquire())
    assert.are.equal(0, sem:available())
    sem:release()
    assert.are.equal(1, sem:available())
    assert.is_true(sem:acquire())
    assert.are.equal(0, sem:available())
  end)

  it("a released permit goes to the waiter, not to a newcomer", function()
    local sem = task.semaphore(1)
    sem:acquire()
    local got = false
    local waiter = task.spawn(function() sem:acquire(); got = true; task.sleep(0.02); sem:release() end)
    wait_until(waiting(waiter), "the waiter")
    sem:release()
    assert.is_false(sem:try_acquire()) -- the permit belongs to the waiter now
    assert.are.equal(0, sem:available())
    waiter:join()
    assert.is_true(got)
    assert.are.equal(1, sem:available())
  end)

  it("skips waiters that were cancelled", function()
    local sem = task.semaphore(0)
    local t1 = task.spawn(function() sem:acquire(); return "t1" end)
    local t2 = task.spawn(function() sem:acquire(); return "t2" end)
    wait_until(waiting(t1), "t1")
    wait_until(waiting(t2), "t2")
    assert.is_true(t1:cancel())
    sem:release()
    assert.are.same({ true, "t2" }, { t2:join() })
    assert.are.equal(0, sem:available())
    sem:release()
    assert.are.equal(1, sem:available())
  end)

  it("semaphore(0) blocks until a release", function()
    local sem = task.semaphore(0)
    local t0 = task.now()
    task.spawn(function() task.sleep(0.05); sem:release() end)
    sem:acquire()
    assert.is_true(task.now() - t0 >= 0.045)
  end)

  it("refuses a bad size", function()
    assert.has_error(function() task.semaphore(-1) end)
    assert.has_error(function() task.semaphore(1.5) end)
    assert.has_error(function() task.semaphore("2") end)
  end)
end)

describe("task.sleep and task.now", function()
  it("sleeps about as long as asked", function()
    for _, s in ipairs{ 0.05, 0.1 } do
      local t0 = task.now()
      task.sleep(s)
      local elapsed = task.now() - t0
      assert.is_true(elapsed >= s - 0.002, ("slept %.4f for %.3f"):format(elapsed, s))
      -- a loaded machine wakes late by any amount; a sleep rounded up to whole seconds or
      -- taken in the wrong unit is caught without a tight upper bound
      assert.is_true(elapsed < s + 0.5, ("slept %.4f for %.3f"):format(elapsed, s))
    end
  end)

  it("sleeps of many tasks overlap", function()
    local t0 = task.now()
    local ts = {}
    for i = 1, 20 do ts[i] = task.spawn(function() task.sleep(0.1) end) end
    for i = 1, 20 do ts[i]:join() end
    local elapsed = task.now() - t0
    -- one after the other they would take 2 s
    assert.is_true(elapsed >= 0.098 and elapsed < 1, ("took %.3f"):format(elapsed))
  end)

  it("shorter sleeps wake first", function()
    local log = {}
    local ts = {}
    for _, d in ipairs{ 0.06, 0.02, 0.04 } do
      ts[#ts + 1] = task.spawn(function() task.sleep(d); log[#log + 1] = d end)
    end
    for _, t in ipairs(ts) do t:join() end
    assert.are.same({ 0.02, 0.04, 0.06 }, log)
  end)

  it("sleep(0) lets the other ready tasks run first", function()
    local ran = false
    task.spawn(function() ran = true end)
    task.sleep(0)
    assert.is_true(ran)
  end)

  it("a NaN sleep does not hang the task forever (child process)", function()
    -- `timeout 5` guards the suite: an endless sleep shows as exit status 124
    local out, err, code = run_code("pcall(require('task').sleep, 0/0); io.write('woke')", 5)
    assert.are_not.equal(124, code, "task.sleep(0/0) never returned")
    assert.are.equal("woke", out, err)
  end)

  it("an infinite sleep can be cancelled (child process: no undefined behaviour)", function()
    local out, err, code = run_code([[
      local task = require "task"
      local t = task.spawn(function() task.sleep(math.huge) end)
      task.sleep(0.01)
      io.write(tostring(t:cancel()))
    ]], 5)
    assert.are.equal(0, code, err)
    assert.are.equal("true", out)
    assert.are.equal("", err)
  end)

  it("task.now is monotonic and in seconds", function()
    local prev = task.now()
    assert.are.equal("float", math.type(prev))
    for _ = 1, 10000 do
      local t = task.now()
      assert(t >= prev, "task.now went backwards")
      prev = t
    end
    local t0 = task.now()
    task.sleep(0.05)
    local d = task.now() - t0
    assert.is_true(d > 0.04 and d < 1, tostring(d)) -- seconds, not milliseconds
  end)
end)

describe("yielding outside a task", function()
  it("http.get from a nested coroutine raises a clear error and sends nothing", function()
    local before = http.stats().requests
    local co = coroutine.wrap(function() return http.get(BASE .. "/status/200") end)
    local ok, err = pcall(co)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("task", 1, true), tostring(err))
    assert.truthy(tostring(err):find("coroutine", 1, true), tostring(err))
    assert.are.equal(before, http.stats().requests)
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("task.sleep, join and acquire from a nested coroutine raise", function()
    local t = task.spawn(function() task.sleep(0.01) end)
    local sem = task.semaphore(0)
    for _, fn in ipairs{
      function() task.sleep(0.01) end,
      function() t:join() end,
      function() sem:acquire() end,
    } do
      local ok, err = coroutine.resume(coroutine.create(fn))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("task", 1, true), tostring(err))
    end
    t:join()
  end)
end)

describe("yielding across a C call (child processes)", function()
  -- A task that calls http.get or task.sleep from inside a C function (a string.gsub callback,
  -- a table.sort comparator) cannot yield: the call must fail before any I/O starts, so that
  -- nothing is left to resume the task later at the wrong place.
  it("http.get in a string.gsub callback fails and leaves no request behind", function()
    local out, err, code = run_code(([[
      local http, task = require "http", require "task"
      local ok = pcall(string.gsub, "a", "a", function() return http.get(%q).body end)
      io.write(tostring(ok), " ", http.stats().in_flight, "\n")
      local t0 = task.now()
      local extra = select("#", task.sleep(0.4))
      -- a response delivered into this sleep would end it at 0.2 s
      io.write(("%%s %%d\n"):format(task.now() - t0 >= 0.398 and "slept" or "woke early", extra))
    ]]):format(BASE .. "/delay/0.2"))
    assert.are.equal(0, code, err)
    assert.are.equal("false 0\nslept 0\n", out)
  end)

  it("task.sleep in a table.sort comparator fails and leaves no timer behind", function()
    local out, err, code = run_code([[
      local task = require "task"
      local ok = pcall(table.sort, { 3, 1, 2 }, function(a, b) task.sleep(0.01); return a < b end)
      io.write(tostring(ok), "\n")
      task.sleep(0.1)
      io.write("end\n")
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("false\nend\n", out)
    assert.are.equal("", err)
  end)

  it("a semaphore acquire that cannot wait leaves no waiter behind", function()
    -- the failed acquire must not stay queued: sem1's release would otherwise wake the task out
    -- of an unrelated wait (sem2) and the permit would be lost
    local out, err, code = run_code([[
      local task = require "task"
      local sem1, sem2 = task.semaphore(0), task.semaphore(0)
      local ok = pcall(string.gsub, "a", "a", function() sem1:acquire() end)
      task.spawn(function() sem1:release() end)
      task.spawn(function() task.sleep(0.1); io.write("release2 "); sem2:release() end)
      sem2:acquire()
      io.write(tostring(ok), " ", sem1:available(), "\n")
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("release2 false 1\n", out)
  end)

  it("a join that cannot wait leaves no joiner behind", function()
    local out, err, code = run_code([[
      local task = require "task"
      local target = task.spawn(function() task.sleep(0.05); return "t" end)
      local ok = pcall(string.gsub, "a", "a", function() target:join() end)
      task.sleep(0.1)
      io.write(tostring(ok), " ", select(2, target:join()), "\n")
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("false t\n", out)
    assert.are.equal("", err)
  end)

  it("http.get and task.sleep work inside pcall (yieldable)", function()
    local ok, res = pcall(http.get, BASE .. "/bytes/3")
    assert.is_true(ok)
    assert.are.equal("abc", res.body)
    local t0 = task.now()
    assert.is_true(pcall(task.sleep, 0.02))
    assert.is_true(task.now() - t0 >= 0.018)
  end)
end)

describe("task errors and the exit status (child processes)", function()
  it("an uncaught task error prints a traceback, the others go on, exit status 1", function()
    local out, err, code = run_code([[
      local task = require "task"
      task.spawn(function() error("boom in task") end)
      task.spawn(function() task.sleep(0.05); print("other task finished") end)
      print("main done")
    ]])
    assert.are.equal(1, code)
    assert.truthy(out:find("main done", 1, true))
    assert.truthy(out:find("other task finished", 1, true))
    assert.truthy(err:find("boom in task", 1, true), err)
    assert.truthy(err:find("traceback", 1, true), err)
    assert.is_nil(err:find("left open", 1, true))
  end)

  it("an error in the main chunk exits 1 while other tasks finish", function()
    local out, err, code = run_code([[
      local task = require "task"
      task.spawn(function() task.sleep(0.05); print("survivor") end)
      error("main failed")
    ]])
    assert.are.equal(1, code)
    assert.truthy(out:find("survivor", 1, true))
    assert.truthy(err:find("main failed", 1, true), err)
  end)

  it("an error delivered to a joiner is not an uncaught error: exit 0", function()
    local out, err, code = run_code([[
      local task = require "task"
      local ok, e = task.spawn(function() error("handled") end):join()
      print(ok, e ~= nil)
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("false\ttrue\n", out)
    assert.are.equal("", err)
  end)

  it("the program waits for every task", function()
    local out, err, code = run_code([[
      local task = require "task"
      task.spawn(function() task.sleep(0.1); print("late task") end)
      print("main returns")
    ]])
    assert.are.equal(0, code, err)
    assert.are.equal("main returns\nlate task\n", out)
  end)

  it("{exit_code = N} raised in a spawned task exits N", function()
    local _, err, code = run_code([[
      local task = require "task"
      task.spawn(function() error({ exit_code = 4, message = "stopping with 4" }) end)
    ]])
    assert.are.equal(4, code)
    assert.truthy(err:find("stopping with 4", 1, true), err)
    assert.is_nil(err:find("traceback", 1, true))
  end)

  it("a deadlock (waiting on a semaphore forever) exits 1 with a message", function()
    local out, err, code = run_code([[
      local sem = require("task").semaphore(0)
      sem:acquire()
      print("unreachable")
    ]])
    assert.are.equal(1, code)
    assert.are.equal("", out)
    assert.truthy(err:find("deadlock", 1, true), err)
    assert.is_nil(err:find("left open", 1, true))
  end)

  it("two tasks joining each other deadlock: exit 1 with a message", function()
    local _, err, code = run_code([[
      local task = require "task"
      local a, b
      a = task.spawn(function() task.sleep(0); return b:join() end)
      b = task.spawn(function() task.sleep(0); return a:join() end)
    ]])
    assert.are.equal(1, code)
    assert.truthy(err:find("deadlock", 1, true), err)
  end)

  it("a task error while a request is in flight elsewhere: that request completes", function()
    local out, err, code = run_code(([[
      local http, task = require "http", require "task"
      task.spawn(function()
        while http.stats().in_flight == 0 do task.sleep(0.005) end
        error("early failure")
      end)
      local res = http.get(%q)
      print(res and res.status)
    ]]):format(BASE .. "/delay/0.3"))
    assert.are.equal(1, code)
    assert.are.equal("200\n", out)
    assert.truthy(err:find("early failure", 1, true))
  end)
end)
