-- schedule_spec.lua: the `schedule` module: interval parsing; `every` anchored to its start (no
-- drift), immediate, jitter, overlap skip/queue/allow, cancel, failing runs logged; cron parsing
-- and next_time (lists, ranges, steps, names, 0/7 = Sunday, the day-of-month/day-of-week OR rule,
-- macros, clear errors); a cron job firing on a fake wall clock; stop() with its bounded wait and
-- on_stop; and graceful SIGTERM/SIGINT stops of a child `luafetch run` that lose no run.
-- Jobs, cron and stop() run on a virtual clock (below): their times are exact, so the specs
-- assert the schedule's arithmetic and hold on a loaded machine or under valgrind.

local schedule = require "schedule"
local task = require "task"
local logger = require "plugins.logger"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")

-- Tolerance on the virtual clock: its times are exact but for floating-point rounding.
local LATE = 1e-6
local EARLY = 1e-6

-- The virtual clock. schedule reads task.now and task.sleep from the task module at every call;
-- while a spec runs they are replaced by a clock that stands still while any task can run and,
-- once every task waits, jumps to the earliest sleeper's wake-up time and wakes it (the
-- "autojump" clocks of Trio and asyncio test loops). A run then starts at exactly its tick however
-- late the host's timers fire; the host's timer accuracy is task_spec's concern.
local real_now, real_sleep = task.now, task.sleep
local clock

local function use_virtual_clock()
  local c = { now = 1000.0, sleepers = {}, seq = 0, activity = 0 }
  task.now = function() return c.now end
  task.sleep = function(d)
    if not (type(d) == "number" and d > 0) then return real_sleep(d) end
    local gate = task.semaphore(0)
    c.seq, c.activity = c.seq + 1, c.activity + 1
    c.sleepers[#c.sleepers + 1] = { at = c.now + d, seq = c.seq, gate = gate, task = task.current() }
    gate:acquire()
  end
  -- Three loop turns with no new sleeper and no wake-up: every task is waiting (a task spawned
  -- in a turn starts in the next one).
  c.driver = task.spawn(function()
    while true do
      local before = c.activity
      for _ = 1, 3 do real_sleep(0) end
      if c.activity == before then
        local best
        for i = #c.sleepers, 1, -1 do
          local s = c.sleepers[i]
          if s.task:status() == "done" then -- cancelled while asleep
            table.remove(c.sleepers, i)
          elseif not best or s.at < best.at or (s.at == best.at and s.seq < best.seq) then
            best = s
          end
        end
        if best then
          for i, s in ipairs(c.sleepers) do
            if s == best then table.remove(c.sleepers, i) break end
          end
          if best.at > c.now then c.now = best.at end
          c.activity = c.activity + 1
          best.gate:release()
        else
          real_sleep(0.001)
        end
      end
    end
  end)
  clock = c
end

local function use_real_clock()
  task.now, task.sleep = real_now, real_sleep
  if not clock then return end
  clock.driver:cancel()
  -- tasks a spec left asleep (runs of cancelled jobs) wake now rather than never
  for _, s in ipairs(clock.sleepers) do s.gate:release() end
  clock = nil
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function read_file(path)
  local fh = io.open(path)
  if not fh then return "" end
  local text = fh:read("a")
  fh:close()
  return text
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

-- Local time as seconds since the epoch.
local function at(y, mo, d, h, mi)
  return os.time{ year = y, month = mo, day = d, hour = h or 0, min = mi or 0, sec = 0 }
end

local function fmt(ts)
  return os.date("%Y-%m-%d %a %H:%M", ts)
end

-- Cancel whatever a failed test left behind, so no driver task outlives its test.
local function cleanup()
  for _, job in ipairs(schedule.jobs()) do job:cancel() end
  schedule.wall_clock = os.time
  schedule.stop_timeout = 10
  schedule.logger = nil
end

describe("schedule.parse_interval", function()
  it("reads seconds and unit strings", function()
    assert.are.equal(0.5, schedule.parse_interval(0.5))
    assert.are.equal(0.5, schedule.parse_interval("500ms"))
    assert.are.equal(30, schedule.parse_interval("30s"))
    assert.are.equal(300, schedule.parse_interval("5m"))
    assert.are.equal(3600, schedule.parse_interval("1h"))
    assert.are.equal(86400, schedule.parse_interval("1d"))
    assert.are.equal(5400, schedule.parse_interval("1h30m"))
    assert.are.equal(1.5, schedule.parse_interval("1.5s"))
    assert.are.equal(12, schedule.parse_interval("12"))
    assert.are.equal(90, schedule.parse_interval(" 1M 30S "))
  end)

  it("rejects bad intervals with a clear message", function()
    for _, bad in ipairs{ "5x", "", "s", "-5s", "0s", 0, -1, 0 / 0, math.huge, "5 m x", "1h-2m" } do
      local v, err = schedule.parse_interval(bad)
      assert.is_nil(v, tostring(bad))
      assert.truthy(err:find("bad interval", 1, true), err)
      assert.truthy(err:find('"30s"', 1, true), err)
    end
    local v, err = schedule.parse_interval({})
    assert.is_nil(v)
    assert.truthy(err:find("got table", 1, true), err)
  end)

  it("schedule.every raises the error at the caller", function()
    local ok, err = pcall(schedule.every, "5 minutes", function() end)
    assert.is_false(ok)
    assert.truthy(err:find('schedule.every: bad interval "5 minutes"', 1, true), err)
    assert.are.equal(0, #schedule.jobs())
  end)
end)

describe("schedule.every", function()
  before_each(use_virtual_clock)
  after_each(function() cleanup(); use_real_clock() end)

  it("runs anchored to the start: the k-th run at start + k*interval, however long runs take",
    function()
      local t0 = task.now()
      local starts = {}
      local job = schedule.every(0.1, function()
        starts[#starts + 1] = task.now() - t0
        task.sleep(0.05) -- end + interval scheduling would drift 0.05 s per run
      end)
      assert.are.equal("every", job.kind)
      assert.are.equal(0.1, job.interval)
      while #starts < 6 do task.sleep(0.01) end
      job:cancel()
      for k, s in ipairs(starts) do
        assert.is_true(s >= k * 0.1 - EARLY and s <= k * 0.1 + LATE,
          string.format("run %d at %.3f s, expected %.3f s", k, s, k * 0.1))
      end
      assert.are.equal(0, job.skipped)
      assert.are.equal(6, job.runs)
    end)

  it("accepts interval strings", function()
    local t0 = task.now()
    local first
    local job = schedule.every("60ms", function() first = first or task.now() - t0 end)
    while not first do task.sleep(0.01) end
    job:cancel()
    assert.are.equal(0.06, job.interval)
    assert.is_true(first >= 0.06 - EARLY and first <= 0.06 + LATE, tostring(first))
  end)

  it("immediate = true runs at once, then on the interval", function()
    local t0 = task.now()
    local starts = {}
    local job = schedule.every(0.1, function() starts[#starts + 1] = task.now() - t0 end,
      { immediate = true })
    while #starts < 3 do task.sleep(0.01) end
    job:cancel()
    for k, s in ipairs(starts) do
      local want = (k - 1) * 0.1
      assert.is_true(s >= want - EARLY and s <= want + LATE,
        string.format("run %d at %.3f s, expected %.3f s", k, s, want))
    end
  end)

  it("passes the job to fn; a job may cancel itself", function()
    local seen
    local job
    job = schedule.every(0.03, function(j)
      seen = j
      j:cancel()
    end, { name = "once" })
    assert.are.equal("once", job.name)
    task.sleep(0.2)
    assert.are.equal(job, seen)
    assert.are.equal(1, job.runs)
    assert.is_true(job.cancelled)
    assert.are.equal(0, #schedule.jobs())
  end)

  it("jitter delays each tick by 0..jitter without moving the anchor", function()
    local t0 = task.now()
    local offsets = {}
    local job = schedule.every(0.1, function()
      local s = task.now() - t0
      offsets[#offsets + 1] = s - #offsets * 0.1 - 0.1
    end, { jitter = 0.05 })
    while #offsets < 5 do task.sleep(0.01) end
    job:cancel()
    local moved = 0
    for k, off in ipairs(offsets) do
      assert.is_true(off >= -EARLY and off <= 0.05 + LATE,
        string.format("run %d is %.3f s after its tick", k, off))
      if off > 0.004 then moved = moved + 1 end
    end
    assert.is_true(moved >= 1, "no run was jittered")
  end)

  it("overlap = skip (the default) skips ticks while the previous run is going", function()
    local t0 = task.now()
    local running, max_running, starts = 0, 0, {}
    local job = schedule.every(0.05, function()
      starts[#starts + 1] = task.now() - t0
      running = running + 1
      max_running = math.max(max_running, running)
      task.sleep(0.12)
      running = running - 1
    end)
    task.sleep(0.62)
    job:cancel()
    while running > 0 do task.sleep(0.01) end
    assert.are.equal(1, max_running)
    -- ticks at 0.05, 0.10, ... 0.60: a run covers the two ticks after its own, which are skipped
    assert.is_true(job.runs >= 3 and job.runs <= 5, "runs " .. job.runs)
    assert.is_true(job.skipped >= 5, "skipped " .. job.skipped)
    assert.is_true(job.runs + job.skipped >= 10 and job.runs + job.skipped <= 12,
      string.format("%d runs + %d skipped", job.runs, job.skipped))
    -- a run restarts on the first tick after the previous one ended, never during it
    for k = 2, #starts do
      local gap = starts[k] - starts[k - 1]
      assert.is_true(gap >= 0.12 - EARLY and gap <= 0.17 + LATE,
        string.format("run %d started %.3f s after run %d", k, gap, k - 1))
    end
  end)

  it("overlap = queue runs a missed tick right after the previous run", function()
    local t0 = task.now()
    local running, max_running, spans = 0, 0, {}
    local job = schedule.every(0.05, function()
      local span = { start = task.now() - t0 }
      spans[#spans + 1] = span
      running = running + 1
      max_running = math.max(max_running, running)
      task.sleep(0.08)
      running = running - 1
      span.stop = task.now() - t0
    end, { overlap = "queue" })
    task.sleep(0.5)
    job:cancel()
    while running > 0 do task.sleep(0.01) end
    assert.are.equal(1, max_running)
    assert.are.equal("queue", job.overlap)
    -- each run follows the previous one at once: back to back, as long as ticks come faster
    assert.is_true(#spans >= 5, "runs " .. #spans)
    for k = 2, #spans do
      local gap = spans[k].start - spans[k - 1].stop
      assert.is_true(gap >= -EARLY and gap <= 0.03,
        string.format("run %d started %.3f s after run %d ended", k, gap, k - 1))
    end
    -- a run lasting 1.6 intervals: one tick queued, the other (max_queue = 1) skipped now and then
    assert.is_true(job.skipped >= 1, "skipped " .. job.skipped)
  end)

  it("overlap = allow runs concurrently", function()
    local running, max_running = 0, 0
    local job = schedule.every(0.03, function()
      running = running + 1
      max_running = math.max(max_running, running)
      task.sleep(0.1)
      running = running - 1
    end, { overlap = "allow" })
    task.sleep(0.25)
    job:cancel()
    while running > 0 do task.sleep(0.01) end
    assert.is_true(max_running >= 2, "max concurrent " .. max_running)
    assert.are.equal(0, job.skipped)
  end)

  it("cancel stops future runs; the run in flight finishes", function()
    local started, finished = 0, 0
    local job = schedule.every(0.05, function()
      started = started + 1
      task.sleep(0.1)
      finished = finished + 1
    end)
    while started < 1 do task.sleep(0.01) end
    assert.are.equal(1, #schedule.jobs())
    assert.are.equal(job, schedule.jobs()[1])
    assert.is_true(job:cancel())
    assert.is_false(job:cancel())
    assert.are.equal(0, #schedule.jobs())
    assert.are.equal(1, job.running)
    task.sleep(0.3)
    assert.are.equal(1, started)
    assert.are.equal(1, finished)
    assert.are.equal(0, job.running)
  end)

  it("a failing run is logged with its traceback and the job goes on", function()
    local log, lines = logger.capture{ level = "DEBUG" }
    local n = 0
    local job = schedule.every(0.03, function()
      n = n + 1
      if n <= 2 then error("boom " .. n) end
    end, { name = "flaky", logger = log })
    while n < 4 do task.sleep(0.01) end
    job:cancel()
    assert.are.equal(2, job.failures)
    assert.is_true(job.runs >= 4)
    assert.truthy(tostring(job.last_error):find("boom 2", 1, true))
    local errors = {}
    for _, l in ipairs(lines) do if l:find("ERROR", 1, true) then errors[#errors + 1] = l end end
    assert.are.equal(2, #errors)
    assert.truthy(errors[1]:find("job 'flaky' run 1 failed: .*boom 1"), errors[1])
    assert.truthy(errors[1]:find("stack traceback", 1, true), errors[1])
    assert.truthy(errors[2]:find("run 2 failed: .*boom 2"), errors[2])
  end)

  it("rejects bad arguments", function()
    local noop = function() end
    local cases = {
      { function() schedule.every(1, "nope") end, "fn must be a function" },
      { function() schedule.every(1, noop, { overlap = "bogus" }) end, 'overlap must be "skip"' },
      { function() schedule.every(1, noop, { jitter = "x" }) end, "jitter: bad interval" },
      { function() schedule.every(1, noop, { max_queue = 0 }) end, "max_queue" },
      { function() schedule.every(1, noop, { name = 3 }) end, "name must be a string" },
      { function() schedule.every(1, noop, 5) end, "options must be a table" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), tostring(err))
    end
    assert.are.equal(0, #schedule.jobs())
  end)
end)

describe("schedule cron expressions", function()
  -- 2025-01-01 is a Wednesday.
  local cases = {
    { "*/5 * * * *", at(2025, 1, 1, 0, 3), at(2025, 1, 1, 0, 5) },
    { "*/5 * * * *", at(2025, 1, 1, 0, 5), at(2025, 1, 1, 0, 10) },     -- strictly after
    { "*/5 * * * *", at(2025, 1, 1, 0, 4) + 59, at(2025, 1, 1, 0, 5) },
    { "* * * * *", at(2025, 1, 1, 0, 0) + 30, at(2025, 1, 1, 0, 1) },
    { "0 * * * *", at(2025, 1, 1, 10, 0) + 30, at(2025, 1, 1, 11, 0) },
    { "30 2 * * *", at(2025, 1, 1, 3, 0), at(2025, 1, 2, 2, 30) },
    { "0 0 1 1 *", at(2025, 12, 31, 23, 59), at(2026, 1, 1, 0, 0) },   -- year roll-over
    { "15,45 8-9 * * *", at(2025, 1, 1, 8, 50), at(2025, 1, 1, 9, 15) },
    { "10-30/10 * * * *", at(2025, 1, 1, 0, 30), at(2025, 1, 1, 1, 10) },
    { "5/15 * * * *", at(2025, 1, 1, 0, 36), at(2025, 1, 1, 0, 50) },  -- a/step = a-max/step
    { "0 0 1,15 * *", at(2025, 1, 2), at(2025, 1, 15) },
    { "0 0 1,15 * *", at(2025, 1, 15), at(2025, 2, 1) },
    { "0 9 * * MON-FRI", at(2025, 1, 4, 10), at(2025, 1, 6, 9) },       -- Saturday -> Monday
    { "0 9 * * mon-fri", at(2025, 1, 6, 9), at(2025, 1, 7, 9) },
    { "0 12 * * 7", at(2025, 1, 1), at(2025, 1, 5, 12) },               -- 7 is Sunday
    { "0 12 * * 0", at(2025, 1, 1), at(2025, 1, 5, 12) },
    { "0 12 * * SUN", at(2025, 1, 1), at(2025, 1, 5, 12) },
    { "0 0 * * 5-7", at(2025, 1, 4, 1), at(2025, 1, 5) },               -- Fri..Sun
    { "0 0 * * */2", at(2025, 1, 1, 1), at(2025, 1, 2) },                -- Sun, Tue, Thu, Sat
    { "0 0 1 JAN,jul *", at(2025, 2, 1), at(2025, 7, 1) },
    { "0 0 1 jan,JUL *", at(2025, 7, 1), at(2026, 1, 1) },
    { "0 0 * FEB-MAR MON", at(2025, 1, 1), at(2025, 2, 3) },
    { "0 0 29 2 *", at(2025, 3, 1), at(2028, 2, 29) },                  -- leap day
    { "0 0 31 * *", at(2025, 4, 1), at(2025, 5, 31) },                  -- April has no 31st
    -- both day fields restricted: either matches (13th OR Friday)
    { "0 0 13 * FRI", at(2025, 1, 1), at(2025, 1, 3) },
    { "0 0 13 * FRI", at(2025, 1, 10), at(2025, 1, 13) },
    { "0 0 13 * FRI", at(2025, 1, 13), at(2025, 1, 17) },
    -- one of them "*": both must match (only Mondays / only the 13th)
    { "0 0 * * MON", at(2025, 1, 1), at(2025, 1, 6) },
    { "0 0 13 * *", at(2025, 1, 1), at(2025, 1, 13) },
    { "0 0 */10 * MON", at(2025, 1, 1), at(2025, 3, 31) },               -- star-step day: AND
    { "@hourly", at(2025, 1, 1, 5, 1), at(2025, 1, 1, 6) },
    { "@daily", at(2025, 1, 1, 5), at(2025, 1, 2) },
    { "@midnight", at(2025, 1, 1, 5), at(2025, 1, 2) },
    { "@weekly", at(2025, 1, 1), at(2025, 1, 5) },
    { "@monthly", at(2025, 1, 1), at(2025, 2, 1) },
    { "@yearly", at(2025, 1, 1), at(2026, 1, 1) },
    { "  0   0   *  *  *  ", at(2025, 1, 1, 5), at(2025, 1, 2) },
  }

  for _, c in ipairs(cases) do
    it(string.format("%q after %s", c[1], fmt(c[2])), function()
      local got = schedule.next_time(c[1], c[2])
      assert.are.equal(fmt(c[3]), fmt(got))
      assert.are.equal(c[3], got)
    end)
  end

  it("steps through many matches in order", function()
    local t = at(2025, 1, 1)
    local got = {}
    for i = 1, 6 do
      t = schedule.next_time("0 8,20 * * TUE,THU", t)
      got[i] = fmt(t)
    end
    assert.are.same({ "2025-01-02 Thu 08:00", "2025-01-02 Thu 20:00", "2025-01-07 Tue 08:00",
                      "2025-01-07 Tue 20:00", "2025-01-09 Thu 08:00", "2025-01-09 Thu 20:00" }, got)
  end)

  it("daylight saving (America/New_York, child process): a missing time is skipped, a repeated "
    .. "one fires once, every-hour jobs go through both hours", function()
    local code = [[
local schedule = require "schedule"
local function seq(expr, y, mo, d, h, mi, n)
  local t, out = os.time{ year = y, month = mo, day = d, hour = h, min = mi }, {}
  for i = 1, n do t = schedule.next_time(expr, t); out[i] = os.date("%m-%d %H:%M %Z", t) end
  print(expr .. " = " .. table.concat(out, ", "))
end
seq("30 2 * * *", 2025, 3, 9, 1, 0, 2)     -- 02:30 does not exist on 9 March
seq("*/30 * * * *", 2025, 3, 9, 1, 0, 3)
seq("30 1 * * *", 2025, 11, 2, 0, 50, 2)   -- 01:30 happens twice on 2 November
seq("*/30 * * * *", 2025, 11, 2, 0, 50, 5)
seq("0 * * * *", 2025, 11, 2, 0, 50, 3)
]]
    local p = assert(io.popen("TZ=America/New_York timeout 20 " .. shell_quote(BIN) .. " -e "
      .. shell_quote(code) .. " 2>&1"))
    local out = p:read("a")
    p:close()
    assert.are.same({
      "30 2 * * * = 03-10 02:30 EDT, 03-11 02:30 EDT",
      "*/30 * * * * = 03-09 01:30 EST, 03-09 03:00 EDT, 03-09 03:30 EDT",
      "30 1 * * * = 11-02 01:30 EDT, 11-03 01:30 EST",
      "*/30 * * * * = 11-02 01:00 EDT, 11-02 01:30 EDT, 11-02 01:00 EST, 11-02 01:30 EST, "
        .. "11-02 02:00 EST",
      "0 * * * * = 11-02 01:00 EDT, 11-02 01:00 EST, 11-02 02:00 EST",
    }, lines_of(out))
  end)

  it("defaults `from` to now", function()
    local now = os.time()
    local got = schedule.next_time("* * * * *")
    assert.is_true(got > now and got <= now + 60)
    assert.are.equal(0, os.date("*t", got).sec)
  end)

  local bad = {
    { "* * * *", "expected 5 fields (minute hour day-of-month month day-of-week), got 4" },
    { "* * * * * *", "got 6" },
    { "", "got 0" },
    { "60 * * * *", "minute value 60 out of range 0-59" },
    { "* 24 * * *", "hour value 24 out of range 0-23" },
    { "* * 0 * *", "day-of-month value 0 out of range 1-31" },
    { "* * 32 * *", "day-of-month value 32 out of range 1-31" },
    { "* * * 13 *", "month value 13 out of range 1-12" },
    { "* * * * 8", "day-of-week value 8 out of range 0-7" },
    { "*/0 * * * *", 'bad minute step "0"' },
    { "*/x * * * *", 'bad minute step "x"' },
    { "5-1 * * * *", 'minute range "5-1" runs backwards' },
    { "* * * * FRI-MON", 'day-of-week range "FRI-MON" runs backwards' },
    { "abc * * * *", 'minute value "abc" is not a number' },
    { "* * * FOO *", 'unknown month name "FOO"' },
    { "* * * * MONDAY", 'unknown day-of-week name "MONDAY"' },
    { "* * * MON *", 'unknown month name "MON"' },
    { "1,,2 * * * *", "empty item in minute field" },
    { "1-2-3 * * * *", 'bad minute range "1-2-3"' },
    { "@reboot", "unknown macro" },
    { "0 0 30 2 *", "never matches" },
    { "0 0 31 4,6,9,11 *", "never matches" },
  }
  for _, c in ipairs(bad) do
    it(string.format("rejects %q", c[1]), function()
      local ok, err = pcall(schedule.next_time, c[1], at(2025, 1, 1))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("cron: ", 1, true), err)
      assert.truthy(tostring(err):find(c[2], 1, true), err)
      if c[2] ~= "never matches" then
        assert.truthy(tostring(err):find(string.format("%q", c[1]), 1, true), err)
      end
    end)
  end

  it("schedule.cron raises a bad expression at once and creates no job", function()
    local ok, err = pcall(schedule.cron, "61 * * * *", function() end)
    assert.is_false(ok)
    assert.truthy(err:find("minute value 61", 1, true), err)
    ok, err = pcall(schedule.cron, "0 0 30 2 *", function() end)
    assert.is_false(ok)
    assert.truthy(err:find("never matches", 1, true), err)
    assert.are.equal(0, #schedule.jobs())
  end)
end)

describe("schedule.cron jobs", function()
  before_each(use_virtual_clock)
  after_each(function() cleanup(); use_real_clock() end)

  it("fires when the wall clock reaches the next matching minute", function()
    -- a wall clock 0.2 s before a minute boundary, running at real speed
    local base = at(2025, 1, 1, 12, 0) - 0.2
    local m0 = task.now()
    schedule.wall_clock = function() return base + (task.now() - m0) end
    local fired = {}
    local job = schedule.cron("* * * * *", function(j) fired[#fired + 1] = task.now() - m0 end,
      { name = "minutely" })
    assert.are.equal("cron", job.kind)
    assert.are.equal("* * * * *", job.expr)
    assert.are.equal(at(2025, 1, 1, 12, 0), job.next_time)
    task.sleep(0.5)
    assert.are.equal(1, #fired)
    assert.is_true(fired[1] >= 0.2 - EARLY and fired[1] <= 0.2 + LATE, tostring(fired[1]))
    assert.are.equal(at(2025, 1, 1, 12, 1), job.next_time) -- waiting for the next minute
    job:cancel()
  end)

  it("late by more than a minute (a clock jump), it runs once and goes on from the new time",
    function()
      local base = at(2025, 1, 1, 12, 0) - 0.3
      local m0 = task.now()
      local skew = 0
      schedule.wall_clock = function() return base + skew + (task.now() - m0) end
      local fired = 0
      local job = schedule.cron("*/5 * * * *", function() fired = fired + 1 end)
      task.sleep(0.1)
      skew = 3660 -- the machine slept for an hour and a minute just before 12:00
      task.sleep(0.3)
      assert.are.equal(1, fired)
      assert.are.equal(at(2025, 1, 1, 13, 5), job.next_time) -- not 12:05, 12:10, ...
      task.sleep(0.1)
      assert.are.equal(1, fired)
      job:cancel()
    end)
end)

describe("schedule.stop", function()
  before_each(use_virtual_clock)
  after_each(function() cleanup(); use_real_clock() end)

  it("stops every job, waits for runs in flight, then calls on_stop", function()
    local events = {}
    local a = schedule.every(0.03, function()
      events[#events + 1] = "a start"
      task.sleep(0.15)
      events[#events + 1] = "a end"
    end)
    local b = schedule.cron("* * * * *", function() end)
    schedule.on_stop(function() events[#events + 1] = "on_stop 1" end)
    schedule.on_stop(function() error("sink broke") end)
    schedule.on_stop(function() events[#events + 1] = "on_stop 2" end)
    while #events < 1 do task.sleep(0.01) end
    local log, lines = logger.capture()
    schedule.logger = log
    local t0 = task.now()
    local result = schedule.stop()
    assert.is_true(task.now() - t0 < 0.5)
    assert.are.same({ "a start", "a end", "on_stop 1", "on_stop 2" }, events)
    assert.are.same({ jobs = 2, waited = 1, canceled = 0 }, result)
    assert.is_true(a.cancelled and b.cancelled)
    assert.are.equal(0, #schedule.jobs())
    assert.truthy(table.concat(lines, "\n"):find("on_stop function failed: .*sink broke"))
    task.sleep(0.1)
    assert.are.equal(1, a.runs) -- no new run
    -- on_stop functions run once: a later stop has none
    assert.are.same({ jobs = 0, waited = 0, canceled = 0 }, schedule.stop())
    assert.are.equal(4, #events)
  end)

  it("cancels runs still going after stop_timeout", function()
    schedule.stop_timeout = 0.1
    local closed, stopped = false, false
    local log, lines = logger.capture()
    schedule.every(0.02, function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      task.sleep(30)
    end, { name = "stuck", logger = log })
    schedule.on_stop(function() stopped = true end)
    task.sleep(0.06)
    local t0 = task.now()
    local result = schedule.stop()
    local took = task.now() - t0
    assert.is_true(took >= 0.1 - EARLY and took < 0.1 + LATE + 0.1, tostring(took))
    assert.are.same({ jobs = 1, waited = 1, canceled = 1 }, result)
    assert.is_true(closed)
    assert.is_true(stopped)
    assert.truthy(lines[1]:find("job 'stuck': run cancelled after waiting 0.1s", 1, true), lines[1])
  end)

  it("a run may call schedule.stop(): it is not waited for, on_stop still runs", function()
    local stopped, result = false, nil
    local job = schedule.every(0.02, function()
      result = schedule.stop()
    end)
    schedule.on_stop(function() stopped = true end)
    local t0 = task.now()
    while not result and task.now() - t0 < 2 do task.sleep(0.01) end
    assert.are.same({ jobs = 1, waited = 0, canceled = 0 }, result)
    assert.is_true(stopped)
    assert.is_true(job.cancelled)
    assert.are.equal(1, job.runs)
  end)

  it("a new job after a stop works", function()
    schedule.stop()
    local n = 0
    local job = schedule.every(0.02, function() n = n + 1 end)
    task.sleep(0.09)
    job:cancel()
    assert.is_true(n >= 2)
  end)
end)

describe("graceful stop of `luafetch run` on a signal", function()
  local tmp = os.tmpname()
  os.remove(tmp)
  os.execute("mkdir -p " .. shell_quote(tmp))
  teardown(function() os.execute("rm -rf " .. shell_quote(tmp)) end)

  local function write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end

  -- Starts `BIN run script out` in the background (its pid written by the shell before exec),
  -- waits until `out` holds `want` lines starting with `ready_prefix`, sends `signal`, waits for
  -- the exit; returns the exit status, the output file's lines and stderr.
  local function run_and_signal(name, source, signal, ready_prefix, want)
    local script, out, pidf, errf = tmp .. "/" .. name .. ".lua", tmp .. "/" .. name .. ".out",
      tmp .. "/" .. name .. ".pid", tmp .. "/" .. name .. ".err"
    write(script, source)
    local sh = table.concat({
      "exec 2>/dev/null", -- no "Terminated" notice from this shell
      "LF_BIN=" .. shell_quote(BIN) .. " timeout -s KILL 20 sh -c 'echo $$ > " .. pidf
        .. "; exec \"$LF_BIN\" run " .. script .. " " .. out .. "' 2>" .. errf .. " &",
      "child=$!",
      "i=0",
      "while [ \"$(cat " .. out .. " 2>/dev/null | grep -c '^" .. ready_prefix .. "')\" -lt " .. want
        .. " ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done",
      "while [ ! -s " .. pidf .. " ]; do sleep 0.01; done",
      "kill -" .. signal .. " $(cat " .. pidf .. ")",
      "wait $child",
      "echo $?",
    }, "\n")
    local f = assert(io.popen(sh))
    local status = tonumber(f:read("a"):match("%d+"))
    f:close()
    return status, lines_of(read_file(out)), read_file(errf)
  end

  local RUNS = [[
local schedule = require "schedule"
local http = require "http"
local task = require "task"
local out = assert(io.open(arg[1], "a"))
out:setvbuf("line")
local n = 0
schedule.every(0.04, function()
  n = n + 1
  local me = n
  out:write("start ", me, "\n")
  local res, err = http.get(os.getenv("FIXTURE_URL") .. "/delay/0.3")
  out:write("end ", me, " ", res and res.status or err, "\n")
end, { overlap = "allow" })
schedule.on_stop(function() out:write("on_stop\n") out:close() end)
]]

  local function check_no_run_lost(lines)
    local started, ended, stop_at = {}, {}, nil
    for i, l in ipairs(lines) do
      local s = l:match("^start (%d+)$")
      if s then
        assert.is_nil(stop_at, "a run started after on_stop")
        started[#started + 1] = s
      end
      local e, status = l:match("^end (%d+) (%S+)$")
      if e then
        assert.is_nil(stop_at, "a run ended after on_stop")
        assert.are.equal("200", status, l)
        ended[e] = true
      end
      if l == "on_stop" then stop_at = i end
    end
    assert.is_true(#started >= 3, table.concat(lines, "\n"))
    for _, s in ipairs(started) do assert.is_true(ended[s], "run " .. s .. " never finished") end
    assert.are.equal(#lines, stop_at, "on_stop must come last:\n" .. table.concat(lines, "\n"))
  end

  it("SIGTERM: no new run, every run in flight finishes, on_stop runs, exit 0", function()
    local status, lines, err = run_and_signal("term", RUNS, "TERM", "start", 5)
    assert.are.equal(0, status, err)
    check_no_run_lost(lines)
    assert.truthy(err:find("schedule: SIGTERM: stopping 1 job(s)", 1, true), err)
  end)

  it("SIGINT does the same", function()
    local status, lines, err = run_and_signal("int", RUNS, "INT", "start", 3)
    assert.are.equal(0, status, err)
    check_no_run_lost(lines)
  end)

  it("a run past stop_timeout is cancelled and the program still ends with 0", function()
    local status, lines, err = run_and_signal("stuck", [[
local schedule = require "schedule"
local task = require "task"
local out = assert(io.open(arg[1], "a"))
out:setvbuf("line")
schedule.stop_timeout = 0.2
schedule.every(0.03, function()
  out:write("start\n")
  task.sleep(60)
  out:write("never\n")
end, { name = "stuck" })
schedule.on_stop(function() out:write("on_stop\n") end)
]], "TERM", "start", 1)
    assert.are.equal(0, status, err)
    assert.are.same({ "start", "on_stop" }, lines)
    assert.truthy(err:find("job 'stuck': run cancelled after waiting 0.2s", 1, true), err)
  end)

  it("once the last job is cancelled, a signal ends the program at once again", function()
    local status, lines = run_and_signal("cancelled", [[
local schedule = require "schedule"
local task = require "task"
local out = assert(io.open(arg[1], "a"))
out:setvbuf("line")
local job = schedule.every(0.02, function() end)
task.sleep(0.05)
job:cancel()
out:write("cancelled\n")
task.sleep(30)
out:write("slept\n")
]], "TERM", "cancelled", 1)
    assert.are.equal(128 + 15, status) -- killed by SIGTERM, not a graceful stop
    assert.are.same({ "cancelled" }, lines)
  end)
end)
