-- schedule.lua — recurring jobs: `every(interval, fn)` anchored to its start (no drift) and
-- `cron(expr, fn)` (5 fields, local time). Each job has one driver task that sleeps until the next
-- tick; each run is a task of its own. SIGINT/SIGTERM (via task.on_signal) or `stop()` end every
-- job, wait for runs in flight (bounded), then call the `on_stop` functions (sinks flush there).
local task = require "task"
local logger = require "plugins.logger"

local M = {}

--- Seconds `stop()` waits for runs in flight before it cancels them.
M.stop_timeout = 10

--- Where failed runs and stop messages are logged when a job has no `logger` of its own
--- (nil: the shared logger of plugins.logger).
---@type Logger|nil
M.logger = nil

--- The wall clock cron reads (seconds since the epoch, local-time conversions by os.date).
--- Tests may replace it with a function returning a float.
---@type fun(): number
M.wall_clock = function() return os.time() end -- read at each call: a virtual clock (cassette) replaces os.time

local jobs = {}        ---@type Job[]  live jobs in creation order
local inflight = {}    ---@type table<userdata, Job>  run task -> its job
local stop_fns = {}    ---@type function[]
local stopping = false ---@type boolean|table  the running stop's result table while stopping
local signal_installed = false

---@param job Job|nil
local function log_of(job)
  return (job and job.logger) or M.logger or logger.get()
end

---------------------------------------------------------------------------
-- Intervals
---------------------------------------------------------------------------

local UNITS = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }

--- Seconds of an interval: a positive number, or a string of number+unit parts such as
--- "500ms", "30s", "5m", "1h", "1d", "1h30m", "1.5s" (a bare number string means seconds).
---@param value number|string
---@return number|nil seconds
---@return string|nil err
function M.parse_interval(value)
  local seconds
  if type(value) == "number" then
    seconds = value
  elseif type(value) == "string" then
    local s = value:gsub("%s+", ""):lower()
    if s:match("^%d+%.?%d*$") or s:match("^%.%d+$") then
      seconds = tonumber(s)
    elseif s ~= "" then
      local total, pos = 0, 1
      while pos <= #s do
        local num, unit, nxt = s:match("^(%d*%.?%d+)(%a+)()", pos)
        if not num or not UNITS[unit] then total = nil; break end
        total = total + tonumber(num) * UNITS[unit]
        pos = nxt
      end
      seconds = total
    end
  else
    return nil, "interval must be a number of seconds or a string such as \"30s\", got " .. type(value)
  end
  if not seconds or seconds ~= seconds or seconds <= 0 or seconds == math.huge then
    return nil, string.format("bad interval %q: use positive seconds or a string such as "
      .. "\"500ms\", \"30s\", \"5m\", \"1h\", \"1d\"", tostring(value))
  end
  return seconds
end

---------------------------------------------------------------------------
-- Cron expressions
---------------------------------------------------------------------------

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6, jul = 7, aug = 8,
                 sep = 9, oct = 10, nov = 11, dec = 12 }
local DAYS = { sun = 0, mon = 1, tue = 2, wed = 3, thu = 4, fri = 5, sat = 6 }

local FIELDS = {
  { name = "minute", min = 0, max = 59 },
  { name = "hour", min = 0, max = 23 },
  { name = "day-of-month", min = 1, max = 31 },
  { name = "month", min = 1, max = 12, names = MONTHS },
  { name = "day-of-week", min = 0, max = 7, names = DAYS },
}

local MACROS = {
  ["@yearly"] = "0 0 1 1 *", ["@annually"] = "0 0 1 1 *", ["@monthly"] = "0 0 1 * *",
  ["@weekly"] = "0 0 * * 0", ["@daily"] = "0 0 * * *", ["@midnight"] = "0 0 * * *",
  ["@hourly"] = "0 * * * *",
}

---@param expr string
---@param fmt string
local function cron_error(expr, fmt, ...)
  error(string.format("cron: bad expression %q: " .. fmt, expr, ...), 0)
end

---@param expr string
---@param field table
---@param text string
---@return integer
local function cron_value(expr, field, text)
  local n
  if text:match("^%d+$") then
    n = tonumber(text)
  elseif field.names then
    n = field.names[text:lower()]
    if not n then cron_error(expr, "unknown %s name %q", field.name, text) end
  else
    cron_error(expr, "%s value %q is not a number", field.name, text)
  end
  if n < field.min or n > field.max then
    cron_error(expr, "%s value %d out of range %d-%d", field.name, n, field.min, field.max)
  end
  return n
end

---@param expr string
---@param field table
---@param text string
---@return table<integer, boolean> set
local function cron_field(expr, field, text)
  local set = {}
  for item in (text .. ","):gmatch("([^,]*),") do
    if item == "" then cron_error(expr, "empty item in %s field %q", field.name, text) end
    local range, step = item:match("^([^/]+)/(.*)$")
    range = range or item
    local lo, hi
    if range == "*" or range == "?" then
      lo, hi = field.min, field.max
      if field.name == "day-of-week" then hi = 6 end
    else
      local a, b = range:match("^([^-]+)-([^-]+)$")
      if a then
        lo, hi = cron_value(expr, field, a), cron_value(expr, field, b)
        if lo > hi then
          cron_error(expr, "%s range %q runs backwards", field.name, range)
        end
      elseif range:find("-", 1, true) then
        cron_error(expr, "bad %s range %q", field.name, range)
      else
        lo = cron_value(expr, field, range)
        hi = step and field.max or lo -- "5/15" means 5-max/15
      end
    end
    local by = 1
    if step then
      if not step:match("^%d+$") or tonumber(step) == 0 then
        cron_error(expr, "bad %s step %q (a positive integer)", field.name, step)
      end
      by = tonumber(step)
    end
    for v = lo, hi, by do set[v] = true end
  end
  if field.name == "day-of-week" and set[7] then set[0] = true; set[7] = nil end
  return set
end

---@class CronSpec
---@field expr string
---@field minute table<integer, boolean>
---@field hour table<integer, boolean>
---@field dom table<integer, boolean>
---@field month table<integer, boolean>
---@field dow table<integer, boolean>
---@field dom_star boolean  the day-of-month field starts with "*" (Vixie cron's rule)
---@field dow_star boolean
---@field every_hour boolean  the hour field covers all 24 hours

--- Parse a 5-field cron expression (minute hour day-of-month month day-of-week) or a macro
--- (@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually). Raises a clear error.
---@param expr string
---@return CronSpec
function M.parse_cron(expr)
  if type(expr) == "table" and expr.minute then return expr end
  if type(expr) ~= "string" then
    error("cron: expression must be a string, got " .. type(expr), 0)
  end
  local text = expr:match("^%s*(.-)%s*$")
  if text:sub(1, 1) == "@" then
    text = MACROS[text:lower()] or cron_error(expr, "unknown macro (use @hourly, @daily, "
      .. "@midnight, @weekly, @monthly, @yearly or @annually)")
  end
  local parts = {}
  for p in text:gmatch("%S+") do parts[#parts + 1] = p end
  if #parts ~= 5 then
    cron_error(expr, "expected 5 fields (minute hour day-of-month month day-of-week), got %d",
      #parts)
  end
  local sets = {}
  for i, field in ipairs(FIELDS) do sets[i] = cron_field(expr, field, parts[i]) end
  local every_hour = true
  for h = 0, 23 do every_hour = every_hour and sets[2][h] == true end
  return {
    every_hour = every_hour,
    expr = expr, minute = sets[1], hour = sets[2], dom = sets[3], month = sets[4], dow = sets[5],
    dom_star = parts[3]:sub(1, 1) == "*" or parts[3] == "?",
    dow_star = parts[5]:sub(1, 1) == "*" or parts[5] == "?",
  }
end

---@param spec CronSpec
---@param d table  os.date("*t") fields
---@return boolean
local function day_matches(spec, d)
  local dom, dow = spec.dom[d.day], spec.dow[d.wday - 1]
  if spec.dom_star or spec.dow_star then return dom and dow or false end
  return dom or dow -- both restricted: either one matches (the cron OR rule)
end

local SEARCH_YEARS = 9 -- Feb 29 can be 8 years away (2096 -> 2104)

--- The first time strictly after `from` (default now) at which `expr` fires: whole minutes,
--- local time, as seconds since the epoch. Raises when the expression is bad or never matches.
--- Daylight saving: a wall time that does not exist that day is skipped; in the hour that
--- repeats, a job with fixed hours fires once, one with every hour fires in both.
---@param expr string|CronSpec
---@param from? number
---@return integer
function M.next_time(expr, from)
  local spec = M.parse_cron(expr)
  from = math.floor(from or M.wall_clock())
  local from_label = os.date("%Y-%m-%d %H:%M", from)
  -- every time zone in use is offset by whole minutes, so local minutes start at epoch minutes
  local ts = from - from % 60 + 60
  local limit = from + SEARCH_YEARS * 366 * 86400
  while ts <= limit do
    local d = os.date("*t", ts)
    local nxt
    if not spec.month[d.month] then
      nxt = os.time{ year = d.year, month = d.month + 1, day = 1, hour = 0, min = 0, sec = 0 }
    elseif not day_matches(spec, d) then
      nxt = os.time{ year = d.year, month = d.month, day = d.day + 1, hour = 0, min = 0, sec = 0 }
    elseif not spec.hour[d.hour] then
      nxt = ts + (60 - d.min) * 60 -- the next hour, counted in real time (DST-proof)
    elseif not spec.minute[d.min] then
      local m = d.min + 1
      while m < 60 and not spec.minute[m] do m = m + 1 end
      nxt = ts + (m - d.min) * 60
    elseif not spec.every_hour and os.date("%Y-%m-%d %H:%M", ts) == from_label then
      nxt = ts + 60 -- the same wall time again (the hour that repeats when DST ends)
    else
      return ts
    end
    -- a daylight-saving change can map a local time back onto `ts`: step past it
    if nxt <= ts then nxt = ts + 60 end
    ts = nxt
  end
  error(string.format("cron: expression %q never matches", spec.expr), 0)
end

---------------------------------------------------------------------------
-- Jobs
---------------------------------------------------------------------------

---@class Job
---@field name string
---@field kind "every"|"cron"
---@field interval number|nil   seconds, for `every`
---@field expr string|nil       for `cron`
---@field runs integer          runs started
---@field failures integer      runs that raised an error
---@field skipped integer       ticks not run because a run was still going (or the queue was full)
---@field running integer       runs in flight now
---@field cancelled boolean
---@field last_error any        the error of the last failed run
local Job = {}
Job.__index = Job

function Job:__tostring()
  return string.format("schedule job '%s' (%d runs, %d skipped)", self.name, self.runs, self.skipped)
end

local function forget(job)
  for i, j in ipairs(jobs) do
    if j == job then table.remove(jobs, i); break end
  end
  -- the last job gone with nothing in flight: let a signal end the program again
  if #jobs == 0 and next(inflight) == nil and signal_installed and not stopping then
    task.on_signal(nil)
    signal_installed = false
  end
end

--- Stops future runs of the job; a run in flight goes on. Returns false if already cancelled.
---@return boolean
function Job:cancel()
  if self.cancelled then return false end
  self.cancelled = true
  self.pending = 0
  local driver = self.driver
  self.driver = nil
  if driver and driver ~= task.current() then pcall(driver.cancel, driver) end
  forget(self)
  return true
end

local function traceback(err)
  if type(err) == "table" and err.message then err = err.message end
  return debug.traceback(tostring(err), 2)
end

---@param job Job
local function run_once(job)
  job.runs = job.runs + 1
  local n = job.runs
  local ok, err = xpcall(job.fn, traceback, job)
  if not ok then
    job.failures = job.failures + 1
    job.last_error = err
    log_of(job):error("schedule: job '%s' run %d failed: %s", job.name, n, err)
  end
end

---@param job Job
local function start_run(job)
  job.running = job.running + 1
  local t = task.spawn(function()
    local me = task.current()
    local _ <close> = setmetatable({}, { __close = function()
      job.running = job.running - 1
      inflight[me] = nil
      job.active[me] = nil
      if job.cancelled and #jobs == 0 then forget(job) end
    end })
    repeat
      run_once(job)
      local again = job.pending > 0 and not job.cancelled and not stopping
      if again then job.pending = job.pending - 1 end
    until not again
  end)
  inflight[t] = job
  job.active[t] = true
end

--- One tick of the schedule: run now, or skip/queue if a run is still going.
---@param job Job
local function tick(job)
  if job.cancelled or stopping then return end
  if job.running > 0 and job.overlap ~= "allow" then
    if job.overlap == "queue" and job.pending < job.max_queue then
      job.pending = job.pending + 1
    else
      job.skipped = job.skipped + 1
      log_of(job):debug("schedule: job '%s' skipped a tick: the previous run is still going",
        job.name)
    end
    return
  end
  start_run(job)
end

local function install_signal()
  if signal_installed then return end
  signal_installed = true
  task.on_signal(function(signame)
    log_of():info("schedule: %s: stopping %d job(s), waiting for runs in flight", signame, #jobs)
    M.stop()
  end)
end

local OVERLAP = { skip = true, queue = true, allow = true }

---@param opts table|nil
---@param default_name string
---@return Job
local function new_job(kind, fn, opts, default_name)
  if type(fn) ~= "function" then
    error("schedule." .. kind .. ": fn must be a function, got " .. type(fn), 3)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("schedule." .. kind .. ": options must be a table", 3)
  end
  opts = opts or {}
  if stopping then error("schedule." .. kind .. ": the schedule is stopping", 3) end
  local overlap = opts.overlap or "skip"
  if not OVERLAP[overlap] then
    error(string.format("schedule.%s: overlap must be \"skip\", \"queue\" or \"allow\", got %q",
      kind, tostring(overlap)), 3)
  end
  local jitter = 0
  if opts.jitter ~= nil and opts.jitter ~= 0 then
    local j, err = M.parse_interval(opts.jitter)
    if not j then error("schedule." .. kind .. ": jitter: " .. err, 3) end
    jitter = j
  end
  local max_queue = opts.max_queue or 1
  if math.type(max_queue) ~= "integer" or max_queue < 1 then
    error("schedule." .. kind .. ": max_queue must be a positive integer", 3)
  end
  if opts.name ~= nil and type(opts.name) ~= "string" then
    error("schedule." .. kind .. ": name must be a string", 3)
  end
  return setmetatable({
    name = opts.name or default_name, kind = kind, fn = fn, overlap = overlap, jitter = jitter,
    max_queue = max_queue, immediate = opts.immediate and true or false, logger = opts.logger,
    runs = 0, failures = 0, skipped = 0, running = 0, pending = 0, cancelled = false,
    active = {},
  }, Job)
end

---@param job Job
---@param driver_fn function
local function launch(job, driver_fn)
  install_signal()
  jobs[#jobs + 1] = job
  job.driver = task.spawn(driver_fn)
  return job
end

---@class ScheduleOptions
---@field jitter? number|string   add a random 0..jitter seconds to each tick
---@field overlap? "skip"|"queue"|"allow"  a tick while a run is going: skip it (default), run it
---                               right after (up to max_queue ticks), or run concurrently
---@field max_queue? integer      ticks kept waiting in "queue" mode (default 1); more are skipped
---@field name? string            used in log lines
---@field immediate? boolean      `every`: run at once too, not only after the first interval
---@field logger? Logger          where failed runs are logged (default the shared logger)

--- Run `fn(job)` every `interval` (seconds or "500ms", "30s", "5m", "1h", "1d"). Ticks are
--- anchored to the call: the k-th comes at start + k*interval however long runs take.
---@param interval number|string
---@param fn fun(job: Job)
---@param opts? ScheduleOptions
---@return Job
function M.every(interval, fn, opts)
  local seconds, err = M.parse_interval(interval)
  if not seconds then error("schedule.every: " .. err, 2) end
  local job = new_job("every", fn, opts, "every " .. tostring(interval))
  job.interval = seconds
  local start = task.now()
  return launch(job, function()
    local k = job.immediate and 0 or 1
    while not job.cancelled do
      local due = start + k * seconds
      local at = due + (job.jitter > 0 and math.random() * job.jitter or 0)
      job.next_at = at
      local wait = at - task.now()
      if wait > 0 then task.sleep(wait) end
      if job.cancelled then break end
      tick(job)
      k = k + 1
      -- more than a whole interval behind (the loop was blocked): drop the missed ticks
      local now = task.now()
      if start + k * seconds < now - seconds then
        local caught = math.floor((now - start) / seconds) + 1
        job.skipped = job.skipped + (caught - k)
        k = caught
      end
    end
  end)
end

--- Sleep until the wall clock reaches `at` (checked at least every minute, so clock changes and
--- suspends are noticed; the last second is polled because os.time has whole seconds).
---@param at number
local function sleep_until_wall(at)
  while true do
    local left = at - M.wall_clock()
    if left <= 0 then return end
    if left > 1.5 then
      task.sleep(math.min(left - 1, 60))
    else
      task.sleep(math.min(left, 0.05))
    end
  end
end

--- Run `fn(job)` whenever the 5-field cron expression matches, in local time.
---@param expr string
---@param fn fun(job: Job)
---@param opts? ScheduleOptions
---@return Job
function M.cron(expr, fn, opts)
  local ok, spec = pcall(M.parse_cron, expr)
  if not ok then error(spec, 2) end
  local first
  ok, first = pcall(M.next_time, spec, M.wall_clock())
  if not ok then error(first, 2) end
  local job = new_job("cron", fn, opts, "cron " .. tostring(expr))
  job.expr = spec.expr
  job.next_time = first
  return launch(job, function()
    local at = first
    while not job.cancelled do
      job.next_time = at
      sleep_until_wall(at + (job.jitter > 0 and math.random() * job.jitter or 0))
      if job.cancelled then break end
      tick(job)
      -- late by more than a minute (suspend, clock change): continue from now, not from `at`
      at = M.next_time(spec, math.max(at, M.wall_clock()))
    end
  end)
end

--- The live (not cancelled) jobs, in creation order.
---@return Job[]
function M.jobs()
  local out = {}
  for i, j in ipairs(jobs) do out[i] = j end
  return out
end

--- Register fn() to run when the schedule stops (after runs in flight ended): flush sinks,
--- close servers. Called in registration order, once, then forgotten.
---@param fn function
function M.on_stop(fn)
  if type(fn) ~= "function" then error("schedule.on_stop: fn must be a function", 2) end
  stop_fns[#stop_fns + 1] = fn
end

---@class StopResult
---@field jobs integer      jobs stopped
---@field waited integer    runs that were in flight
---@field canceled integer  runs cancelled after stop_timeout

--- Stop every job (no new runs), wait up to `schedule.stop_timeout` seconds for runs in flight
--- (then cancel them), call the `on_stop` functions, and return. Must run in a task. A second
--- call while a stop is going waits for it.
---@return StopResult
function M.stop()
  if stopping then
    while stopping do task.sleep(0.01) end
    return { jobs = 0, waited = 0, canceled = 0 }
  end
  local result = { jobs = #jobs, waited = 0, canceled = 0 }
  stopping = result
  local ok, err = pcall(function()
    for _, job in ipairs(M.jobs()) do job:cancel() end
    local me = task.current()
    local runs = {}
    for t in pairs(inflight) do
      if t ~= me then runs[#runs + 1] = t end
    end
    result.waited = #runs
    if #runs > 0 then
      local timeout = M.stop_timeout
      local watchdog = task.spawn(function()
        task.sleep(timeout)
        for _, t in ipairs(runs) do
          local job = inflight[t]
          if t:status() ~= "done" and t:cancel() then
            result.canceled = result.canceled + 1
            log_of(job):warning("schedule: job '%s': run cancelled after waiting %gs",
              job and job.name or "?", timeout)
            inflight[t] = nil
          end
        end
      end)
      for _, t in ipairs(runs) do t:join() end
      watchdog:cancel()
    end
    local fns = stop_fns
    stop_fns = {}
    for _, fn in ipairs(fns) do
      local fok, ferr = xpcall(fn, traceback)
      if not fok then log_of():error("schedule: on_stop function failed: %s", ferr) end
    end
  end)
  if signal_installed then
    task.on_signal(nil)
    signal_installed = false
  end
  stopping = false
  if not ok then error(err, 0) end
  return result
end

return M
