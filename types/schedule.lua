---@meta schedule
-- LuaLS stubs for `require "schedule"` (lua/schedule.lua). DESIGN.md "schedule"; docs/schedule.md.

---@class schedule
---@field stop_timeout number   seconds stop() waits for runs in flight before cancelling them (10)
---@field logger Logger|nil
local schedule = {}

---@class Job
---@field name string
---@field kind "every"|"cron"
---@field interval number|nil   seconds, for `every`
---@field expr string|nil       for `cron`
---@field runs integer          runs started
---@field failures integer      runs that raised an error
---@field skipped integer       ticks not run because a run was still going
---@field running integer       runs in flight now
---@field cancelled boolean
---@field last_error any
local Job = {}
---Stops the job; a run in flight finishes.
function Job:cancel() end

---@class ScheduleOptions
---@field jitter? number|string   add a random 0..jitter seconds to each tick
---@field overlap? "skip"|"queue"|"allow"  a tick while a run is going (default "skip")
---@field max_queue? integer      ticks kept waiting in "queue" mode (1)
---@field name? string            used in log lines
---@field immediate? boolean      `every`: run at once too
---@field logger? Logger

---Runs fn every `interval` (seconds, or "500ms", "30s", "5m", "1h", "1d").
---@param interval number|string
---@param fn fun(job: Job)
---@param opts? ScheduleOptions
---@return Job
function schedule.every(interval, fn, opts) end

---Runs fn at the times of a five-field cron expression (local time; also @hourly, @daily ...).
---@param expr string
---@param fn fun(job: Job)
---@param opts? ScheduleOptions
---@return Job
function schedule.cron(expr, fn, opts) end

---@param value number|string
---@return number|nil seconds
---@return string|nil err
function schedule.parse_interval(value) end

---@param expr string
---@return table|nil spec
---@return string|nil err
function schedule.parse_cron(expr) end

---The next time (seconds since the epoch) after `from` that matches `expr`.
---@param expr string
---@param from? integer
---@return integer|nil
function schedule.next_time(expr, from) end

---@return Job[]
function schedule.jobs() end

---fn runs once every job has stopped (after stop(), SIGINT or SIGTERM).
---@param fn function
function schedule.on_stop(fn) end

---Stops every job, waits for runs in flight (up to stop_timeout), then cancels the rest.
---@return { jobs: integer, waited: integer, canceled: integer }
function schedule.stop() end

return schedule
