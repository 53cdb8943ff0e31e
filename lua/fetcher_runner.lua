-- fetcher_runner.lua — the fetcher's work: one entry's attempts under the retry policy (host slot,
-- breaker, hooks, the request, its result), and the pool of worker tasks that takes entries in order.
-- A request with no plugin hook, no breaker, no per-host limit and no deadline pays for none of
-- them: a URL string goes out as http.get(url, options) with options shared by every such request.

local http = require "http"
local task = require "task"
local retry = require "plugins.retry"
local config = require "fetcher_config"
local hooks = require "fetcher_hooks"
local hosts = require "fetcher_hosts"
local results = require "fetcher_results"
local stats = require "fetcher_stats"

local M = {}

local now = task.now
local setmetatable, type = setmetatable, type
local http_get, http_request = http.get, http.request
local call1, call2, call3 = hooks.call1, hooks.call2, hooks.call3
local HTTP_FIELDS = config.HTTP_FIELDS
local BATCH = stats.BATCH
local WORKER_BATCH = 32 -- durations a worker of run_list keeps before handing them to the samples

---------------------------------------------------------------------------
-- Request options
---------------------------------------------------------------------------

--- The http options every URL string with this timeout is sent with when no hook sees the
--- request: built once per run and timeout, then shared (http never changes its options).
---@param f Fetcher
---@param timeout number|table
---@return table
local function shared_options(f, timeout)
  local opts = f.shared_options[timeout]
  if not opts then
    opts = {}
    for k, v in pairs(f.request_defaults) do opts[k] = v end
    opts.headers = f.headers
    opts.timeout = timeout
    f.shared_options[timeout] = opts
  end
  return opts
end

--- The attempt's timeout, shortened to what is left before the deadline.
---@param timeout number|table
---@param deadline_at number
---@return number|table|nil timeout  nil when the deadline has passed
local function bounded_timeout(timeout, deadline_at)
  local left = deadline_at - now()
  if left <= 0 then return nil end
  if type(timeout) == "number" then return math.min(timeout, left) end
  local copy = {}
  for k, v in pairs(timeout) do copy[k] = v end
  copy.total = math.min(copy.total or left, left)
  return copy
end

--- The request of one attempt as hooks see it: the fetcher's request options, the entry's
--- fields, merged headers (a fresh table a hook may change), timeout, attempt and index.
---@param f Fetcher
---@param entry string|table
---@param host string
---@param attempt integer
---@param index integer
---@param timeout number|table
---@return table
local function request_of(f, entry, host, attempt, index, timeout)
  local etable = type(entry) == "table" and entry or nil
  local headers
  local own = etable and etable.headers
  if f.headers or own then
    headers = {}
    for k, v in pairs(f.headers or {}) do headers[k] = v end
    for k, v in pairs(own or {}) do headers[k] = v end
  end
  -- one constructor for what every request has (a table grown field by field is rehashed at
  -- each power of two), then the entry's other fields, then the fetcher's defaults under them
  local req = { url = etable and etable.url or entry, method = etable and etable.method or "GET",
                key = etable and etable.key or entry, host = host, headers = headers,
                timeout = timeout, attempt = attempt, index = index }
  if etable then
    for k, v in pairs(etable) do
      if req[k] == nil then req[k] = v end
    end
  end
  for k, v in pairs(f.request_defaults) do
    if req[k] == nil then req[k] = v end
  end
  return req
end

-- options_of(t): the HTTP_FIELDS of `t` in a new table, as one table constructor (compiled once
-- from the list: a loop over the fields costs twice as much per request).
local options_of
do
  local fields = {}
  for i, field in ipairs(HTTP_FIELDS) do fields[i] = field .. " = t." .. field end
  options_of = assert(load("local t = ... return { " .. table.concat(fields, ", ") .. " }",
                           "=fetcher_runner.options_of"))
end

--- The options of `http.request` for an entry table no hook sees: the fetcher's request
--- options, the entry's (which win), merged headers, the attempt's timeout.
---@param f Fetcher
---@param entry table
---@param timeout number|table
---@return table
local function entry_options(f, entry, timeout)
  local opts = options_of(entry)
  for k, v in pairs(f.request_defaults) do
    if opts[k] == nil then opts[k] = v end
  end
  opts.timeout = timeout
  if f.headers then
    local headers = {}
    for k, v in pairs(f.headers) do headers[k] = v end
    for k, v in pairs(entry.headers or {}) do headers[k] = v end
    opts.headers = headers
  end
  return opts
end

---------------------------------------------------------------------------
-- One attempt, one entry
---------------------------------------------------------------------------

--- One try of one entry: host slot, breaker, hooks, the request.
---@param f Fetcher
---@param run FetchRun
---@param entry string|table
---@param index integer
---@param n integer        the attempt, from 1
---@param deadline_at number|nil
---@param permit HostPermit|nil  a host slot taken at dispatch (first attempt)
---@return Response|nil res
---@return string|nil err
---@return string|nil kind
local function attempt(f, run, entry, index, n, deadline_at, permit)
  local max_per_host, b = f.max_per_host, f.breaker
  local host -- only when something keeps per-host state or a hook sees the request
  if max_per_host or b or run.sees_requests then host = hosts.host_of(entry) end
  if max_per_host and not permit then
    permit = hosts.permit(f.host_slots, max_per_host, host)
  end
  local _ <close> = permit -- handed back also when the task is canceled during the request
  local etable = type(entry) == "table" and entry or nil
  local url = etable and etable.url or entry
  local timeout = etable and etable.timeout
  if timeout == nil then
    local rules = f.timeout_rules
    timeout = rules[1] and config.timeout_for(rules, url, f.timeout) or f.timeout
  end
  if deadline_at then timeout = bounded_timeout(timeout, deadline_at) end
  local by_hook = run.hooks
  local req
  if run.sees_requests then req = request_of(f, entry, host, n, index, timeout or 0) end
  if not timeout then
    local err = "deadline exceeded"
    if by_hook.on_error then call3(by_hook.on_error, run, run.log, "on_error", req, err, "timeout") end
    return nil, err, "timeout"
  end
  local guard
  if b then
    local refused
    refused, guard = hosts.gate(b, host)
    if refused then
      run.rejected = run.rejected + 1
      if by_hook.on_error then
        call3(by_hook.on_error, run, run.log, "on_error", req, refused, "circuit_open")
      end
      return nil, refused, "circuit_open"
    end
  end
  local pending <close> = guard -- gives the breaker slot back if the task is canceled
  local res, err, kind
  if req then
    if by_hook.on_request then call1(by_hook.on_request, run, run.log, "on_request", req) end
    run.attempts = run.attempts + 1
    res, err, kind = (f.request or http_request)(options_of(req))
  elseif etable then
    run.attempts = run.attempts + 1
    res, err, kind = (f.request or http_request)(entry_options(f, etable, timeout))
  elseif deadline_at then
    run.attempts = run.attempts + 1
    local opts = options_of(shared_options(f, f.timeout))
    opts.timeout = timeout
    res, err, kind = (f.get or http_get)(url, opts)
  else
    run.attempts = run.attempts + 1
    res, err, kind = (f.get or http_get)(url, shared_options(f, timeout))
  end
  if guard then
    guard.done = true
    b:record_result(host, res, err, kind)
  end
  if permit then permit:release() end
  if res then
    if by_hook.on_response then call2(by_hook.on_response, run, run.log, "on_response", req, res) end
  elseif by_hook.on_error then
    call3(by_hook.on_error, run, run.log, "on_error", req, err, kind)
  end
  return res, err, kind
end

--- Count a finished entry, log a failure (DEBUG), call the on_result hooks.
---@param run FetchRun
---@param key string
---@param result FetchResult
---@return FetchResult
local function finish(run, key, result)
  run.count = run.count + 1
  run.bytes = run.bytes + result.bytes
  if result.success then
    run.succeeded = run.succeeded + 1
  else
    run.failed = run.failed + 1
    local log = run.log
    if log.level <= 10 then
      log:debug("%s %s failed after %d attempt(s): %s", result.method, result.url,
        result.attempts, result.error)
    end
  end
  if result.reused then run.reused = run.reused + 1 end
  local pending = run.pending
  if pending then -- durations go to the samples in batches (fetcher_stats.begin)
    local n = run.npending + 1
    pending[n] = result.elapsed
    if n == BATCH then run.samples:add_all(pending, n); n = 0 end
    run.npending = n
  end
  local list = run.hooks.on_result
  if list then call2(list, run, run.log, "on_result", key, result) end
  return result
end

--- After attempt `n` of an entry: retry while the policy says so, then the result.
---@param wait number|nil  the policy's answer after attempt n (nil: no retry)
---@return FetchResult
local function conclude(f, run, entry, index, url, method, key, started, deadline_at,
                        n, res, err, kind, wait)
  local policy = f.policy
  while wait do
    run.retries = run.retries + 1
    local log = run.log
    if log.level <= 20 then
      log:info("retry %d/%d of %s %s in %.2fs after %s", n, policy.max_retries, method, url,
        wait, results.reason(res, err, kind))
    end
    if wait > 0 then policy.sleep(wait) end
    n = n + 1
    res, err, kind = attempt(f, run, entry, index, n, deadline_at, nil)
    wait = policy:after(n, res, err, kind, method, deadline_at)
  end
  local elapsed = now() - started
  if res then
    return finish(run, key, results.of_response(url, method, res, n, elapsed, f.keep_body,
                                                run.sees_requests))
  end
  return finish(run, key, results.of_failure(url, method, err, kind, n, elapsed))
end

--- Fetch one entry with retries; call the on_result hooks; count it in `run`.
---@param f Fetcher
---@param run FetchRun
---@param entry string|table  a URL string, or an entry table (fetcher_sources.entry)
---@param index integer
---@param permit HostPermit|nil  host slot taken at dispatch
---@return FetchResult
local function fetch_entry(f, run, entry, index, permit)
  local plain = run.plain
  if plain and type(entry) == "string" then
    -- the common case: a URL string and nothing to do but the request
    local started = now()
    run.attempts = run.attempts + 1
    local res, err, kind = (f.get or http_get)(entry, plain)
    local wait
    -- a response whose status the policy never retries ends here (run.final_statuses: M.begin)
    if not (res and run.final_statuses and not run.final_statuses[res.status]) then
      wait = f.policy:after(1, res, err, kind, "GET", nil)
    end
    if res and not wait then
      local elapsed = now() - started
      local result = results.of_response(entry, "GET", res, 1, elapsed, f.keep_body, false)
      if result.success and not run.hooks.on_result then
        run.count = run.count + 1
        run.succeeded = run.succeeded + 1
        run.bytes = run.bytes + result.bytes
        if result.reused then run.reused = run.reused + 1 end
        local pending = run.pending
        if pending then -- as in finish
          local n = run.npending + 1
          pending[n] = elapsed
          if n == BATCH then run.samples:add_all(pending, n); n = 0 end
          run.npending = n
        end
        return result
      end
      return finish(run, entry, result)
    end
    return conclude(f, run, entry, index, entry, "GET", entry, started, nil, 1, res, err, kind, wait)
  end
  local url, method, key, deadline = entry, "GET", entry, f.deadline
  if type(entry) == "table" then
    url, method, key = entry.url, entry.method, entry.key
    if entry.invalid then
      if permit then permit:release() end
      return finish(run, key, results.of_failure(url, method, entry.invalid, "invalid", 0, 0))
    end
    deadline = entry.deadline or deadline
  end
  local started = now()
  local deadline_at = deadline and started + deadline
  local res, err, kind = attempt(f, run, entry, index, 1, deadline_at, permit)
  local wait = f.policy:after(1, res, err, kind, method, deadline_at)
  return conclude(f, run, entry, index, url, method, key, started, deadline_at, 1, res, err, kind, wait)
end
M.fetch_entry = fetch_entry

--- Start a run of `f` (fetcher_stats.begin) and decide whether its URL strings may take the
--- short way: `run.plain` is then the http options they all share.
---@param f Fetcher
---@return FetchRun
function M.begin(f)
  local run = stats.begin(f)
  f.shared_options = {} -- built afresh each run: f.headers or a default may have changed since
  if not (run.sees_requests or f.breaker or f.max_per_host or f.deadline
          or f.timeout_rules[1]) then
    run.plain = shared_options(f, f.timeout)
  end
  -- plugins.retry's own test of a response is `statuses[status]`: with it, a response of any
  -- other status is final without asking the policy
  local policy = f.policy
  if policy.retryable == retry.Policy.retryable and type(policy.statuses) == "table" then
    run.final_statuses = policy.statuses
  end
  return run
end

---------------------------------------------------------------------------
-- The worker pool
---------------------------------------------------------------------------

--- Start `workers` tasks running `work` and wait for them all; an error of a worker is left in
--- `run.abort` (the first one wins). If this task is canceled while waiting, so are the workers.
---@param run FetchRun
---@param workers integer
---@param work fun()
local function spawn_workers(run, workers, work)
  local function worker()
    local ok, err = xpcall(work, debug.traceback)
    if not ok then run.abort = run.abort or err end
  end
  local tasks = {}
  local _ <close> = setmetatable({}, { __close = function()
    for _, t in ipairs(tasks) do
      if t:status() ~= "done" then t:cancel() end
    end
  end })
  for i = 1, workers do tasks[i] = task.spawn(worker) end
  for _, t in ipairs(tasks) do
    local ok, err = t:join()
    if not ok then run.abort = run.abort or err end
  end
end

--- Fetch `entries[first..last]` (checked entries) with `workers` tasks, in order, into
--- `list[i]`. Without a per-host limit nothing can make a worker wait between taking an entry
--- and starting it, so no lock is needed.
---@param f Fetcher
---@param run FetchRun
---@param entries (string|table)[]
---@param first integer
---@param last integer
---@param workers integer
---@param list FetchResult[]
---@param strings_only boolean  every entry is a URL string
function M.run_list(f, run, entries, first, last, workers, list, strings_only)
  local i = first - 1
  local plain = run.plain
  if not plain then
    spawn_workers(run, workers, function()
      while not run.abort do
        local index = i + 1
        if index > last then return end
        i = index
        list[index] = fetch_entry(f, run, entries[index], index, nil)
      end
    end)
    return
  end
  -- The short way of fetch_entry, with each worker's counts in locals (a table field costs
  -- several times a local) handed to the run when the worker ends: nothing reads them before
  -- (hooks are handed results, not the run; a run that stops on an error reports no stats).
  -- The durations are in the results, and fetch_urls hands them to the samples at the end
  -- (run.pending is nil), unless an on_result hook (which might change a result) sees them
  -- first: then each worker hands over its successes' durations WORKER_BATCH at a time.
  local get, policy, keep_body = f.get or http_get, f.policy, f.keep_body
  local final_statuses, on_result = run.final_statuses, run.hooks.on_result
  local samples = on_result and run.samples
  local of_response, META, DETAILS = results.of_response, results.META, results.DETAILS
  spawn_workers(run, workers, function()
    local count, bytes, reused, attempts = 0, 0, 0, 0
    local durations, nd = samples and {} or nil, 0
    while not run.abort do
      local index = i + 1
      if index > last then break end
      i = index
      local entry = entries[index]
      if not strings_only and type(entry) ~= "string" then
        list[index] = fetch_entry(f, run, entry, index, nil)
      else
        local started = now()
        attempts = attempts + 1
        local res, err, kind = get(entry, plain)
        local status = res and res.status
        local wait
        if not (status and final_statuses and not final_statuses[status]) then
          wait = policy:after(1, res, err, kind, "GET", nil)
          if wait then status = nil end
        end
        if status and status >= 200 and status < 400 then
          local elapsed = now() - started
          -- results.of_response's success, written out here (a call costs more than its body)
          local body = res.body
          local size = body and #body or res.size or 0
          local was_reused = res.reused
          local result = setmetatable({ url = entry, method = "GET", success = true,
            status_code = status, attempts = 1, elapsed = elapsed, bytes = size,
            body = keep_body and body or nil, reused = was_reused, final_url = res.url }, META)
          DETAILS[result] = res._details
          count = count + 1
          bytes = bytes + size
          if was_reused then reused = reused + 1 end
          if durations then
            nd = nd + 1
            durations[nd] = elapsed
            if nd == WORKER_BATCH then samples:add_all(durations, nd); nd = 0 end
          end
          if on_result then call2(on_result, run, run.log, "on_result", entry, result) end
          list[index] = result
        elseif status then
          list[index] = finish(run, entry, of_response(entry, "GET", res, 1, now() - started, keep_body,
                                                       false))
        else
          list[index] = conclude(f, run, entry, index, entry, "GET", entry, started, nil, 1, res, err,
                                 kind, wait)
        end
      end
    end
    run.count = run.count + count
    run.succeeded = run.succeeded + count
    run.bytes = run.bytes + bytes
    run.reused = run.reused + reused
    run.attempts = run.attempts + attempts
    if nd > 0 then samples:add_all(durations, nd) end
  end)
end

local Unlock = { __close = function(u) u.sem:release() end }

--- Run `workers` tasks that take entries from `next_entry` (in order) and hand each result to
--- `deliver(index, result, entry, item)` (item: what the source gave). With `needs_lock`, taking
--- an entry and its host slot happens under a lock, so no URL starts before an earlier one even
--- when a host slot or the source makes a worker wait. The first error (the source's, deliver's)
--- stops the run: no entry is taken after it, and it is left in `run.abort`.
---@param f Fetcher
---@param run FetchRun
---@param next_entry fun(): (string|table|nil), integer|nil, any
---@param workers integer
---@param deliver fun(index: integer, result: FetchResult, entry: string|table, item: any)
---@param needs_lock boolean
function M.run_pool(f, run, next_entry, workers, deliver, needs_lock)
  local lock = needs_lock and task.semaphore(1) or nil
  -- one guard for every take: it only releases the lock, which one task holds at a time
  local unlock = lock and setmetatable({ sem = lock }, Unlock) or nil
  local max_per_host = f.max_per_host
  local function take()
    if run.abort then return nil end
    local ok, entry, index, item, permit
    do
      if lock then lock:acquire() end
      -- released when this block ends, also when the worker is canceled inside it (the source
      -- or the host slot can make it wait while it holds the lock)
      local _ <close> = unlock
      ok, entry, index, item = pcall(next_entry)
      if ok and entry and max_per_host and not (type(entry) == "table" and entry.invalid) then
        ok, permit = pcall(hosts.permit, f.host_slots, max_per_host, hosts.host_of(entry))
        if not ok then entry = permit end
      end
    end
    if not ok then
      run.abort = run.abort or entry
      return nil
    end
    return entry, index, permit, item
  end
  spawn_workers(run, workers, function()
    while true do
      local entry, index, permit, item = take()
      if not entry then return end
      local _ <close> = permit -- handed back if fetching or deliver raises
      deliver(index, fetch_entry(f, run, entry, index, permit), entry, item)
    end
  end)
end

return M
