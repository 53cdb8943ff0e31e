-- worker.lua — fetch what a shared frontier (a Redis stream) holds, with any number of workers on
-- any number of hosts; results go to <stream>:results, final failures to <stream>:dead.
--
-- usage: luafetch run worker --redis URL --stream S [options]           (--help lists them)
--
--   --group G            consumer group (default fetchers); --consumer NAME (default host:pid)
--   --concurrency N      requests in flight (default MAX_CONCURRENT, else 100)
--   --lease S            seconds before a dead worker's entries are taken over (default 60)
--   --max-deliveries N   deliveries without a response before an entry is dead-lettered (default 5)
--   --host-limit N       requests in flight per host across every worker (shared through Redis)
--   --host-rate R        requests per second per host across every worker
--   --metrics PORT       serve Prometheus /metrics on 127.0.0.1:PORT (0: any port)
--   --drain              exit 0 once nothing is new or pending (default: run until a signal)
--
-- SIGTERM or SIGINT: stop reading, fetch and acknowledge what was read, exit 0 with nothing
-- pending for this worker. Exit status: 0, 1 (could not run), 2 bad usage.
local queue = require "queue"
local fetcher = require "fetcher"
local http = require "http"
local task = require "task"
local argparse = require "argparse"

local M = {}

local function usage_error(message)
  error({ exit_code = 2, message = "worker.lua: " .. message }, 0)
end

function M.parser()
  local p = argparse("luafetch run worker",
    "Fetch what a shared frontier (a Redis stream) holds; results to <stream>:results, final "
    .. "failures to <stream>:dead. Run as many as you like, on as many hosts.",
    "Fill the stream with scripts/enqueue.lua. docs/scale-out.md: the model and a systemd unit.\n"
    .. "SIGTERM/SIGINT: stop reading, finish and acknowledge what was read, exit 0.\n"
    .. "Exit status: 0, 1 (could not run), 2 bad usage.")
  p:add_help(false)
  p:help_max_width(80)
  p:flag("-h --help", "Show this help and exit.")
  p:option("--redis", "redis://[[user]:password@]host[:port][/db] (default: REDIS_URL, else redis://127.0.0.1:6379)."):argname("<url>")
  p:option("--stream", "The stream's key, e.g. crawl (Redis Cluster: {crawl})."):argname("<key>")
  p:option("--group", "Consumer group (default fetchers)."):argname("<name>")
  p:option("--consumer", "This worker's name in the group (default host:pid)."):argname("<name>")
  p:option("--concurrency", "Requests in flight (default MAX_CONCURRENT, else 100)."):argname("<n>")
  p:option("--lease", "Seconds before a dead worker's entries are taken over (default 60)."):argname("<s>")
  p:option("--max-deliveries", "Deliveries without a response before dead-lettering (default 5)."):argname("<n>")
  p:option("--batch", "Entries per read (default 64)."):argname("<n>")
  p:option("--host-limit", "Requests in flight per host, across every worker."):argname("<n>")
  p:option("--host-rate", "Requests per second per host, across every worker."):argname("<r>")
  p:option("--timeout", "Seconds per request (default HTTP_TIMEOUT, else 30)."):argname("<s>")
  p:option("--retries", "Retries per delivery (default MAX_RETRIES, else 3)."):argname("<n>")
  p:flag("--keep-body", "Store response bodies in the results.")
  p:option("--metrics", "Serve Prometheus /metrics on this port (0: any)."):argname("<port>")
  p:option("--metrics-host", "Listen address for --metrics (default 127.0.0.1)."):argname("<host>")
  p:flag("--drain", "Exit 0 once nothing is new or pending.")
  p:flag("--quiet", "No progress lines.")
  return p
end

local function number_option(given, name, integer, allow_zero)
  local v = given[name]
  if v == nil then return nil end
  local n = tonumber(v)
  if integer then n = n and math.tointeger(n) end
  if not n or n < 0 or (n == 0 and not allow_zero) then
    usage_error(("--%s needs a %s number"):format(name:gsub("_", "-"),
      integer and "positive whole" or "positive"))
  end
  return n
end

---Settings from the arguments; nil when --help was asked for (and printed).
function M.settings(args)
  local p = M.parser()
  local ok, given = p:pparse(args)
  if not ok then usage_error(given .. " (try --help)") end
  if given.help then
    io.stdout:write(p:get_help(), "\n")
    return nil
  end
  if not given.stream then usage_error("--stream is required (try --help)") end
  local cfg = {
    redis = given.redis, stream = given.stream, group = given.group, consumer = given.consumer,
    concurrency = number_option(given, "concurrency", true),
    lease = number_option(given, "lease"),
    max_deliveries = number_option(given, "max_deliveries", true),
    batch = number_option(given, "batch", true),
    host_limit = number_option(given, "host_limit", true),
    host_rate = number_option(given, "host_rate"),
    timeout = number_option(given, "timeout"),
    retries = number_option(given, "retries", true, true),
    metrics = number_option(given, "metrics", true, true),
    metrics_host = given.metrics_host or "127.0.0.1",
    keep_body = given.keep_body, drain = given.drain, quiet = given.quiet,
  }
  if cfg.metrics and cfg.metrics > 65535 then usage_error("--metrics needs a port number") end
  return cfg
end

---The /metrics text: the queue's (shared) numbers and this worker's own.
function M.metrics_text(q, w)
  local L = {}
  local function metric(name, kind, help, value, labels)
    L[#L + 1] = ("# HELP %s %s\n# TYPE %s %s"):format(name, help, name, kind)
    L[#L + 1] = ("%s%s %s"):format(name, labels or "", value)
  end
  local s = q:stats()
  local stream = ('{stream="%s"}'):format(q.stream:gsub('[\\"]', "\\%0"))
  if s then
    metric("luafetch_queue_length", "gauge", "Entries in the stream not yet settled (new or pending).", s.length, stream)
    metric("luafetch_queue_pending", "gauge", "Entries delivered and not yet acknowledged, all workers.", s.pending, stream)
    metric("luafetch_queue_dead", "gauge", "Entries in the dead-letter stream.", s.dead, stream)
    metric("luafetch_queue_results", "gauge", "Records in the result stream.", s.results, stream)
  end
  metric("luafetch_queue_up", "gauge", "1 when Redis answered this scrape.", s and 1 or 0, stream)
  local c = q:counters()
  local me = ('{stream="%s",consumer="%s"}'):format(q.stream:gsub('[\\"]', "\\%0"), q.consumer:gsub('[\\"]', "\\%0"))
  metric("luafetch_worker_results_total", "counter", "Results this worker wrote.", c.results, me)
  metric("luafetch_worker_dead_total", "counter", "Entries this worker dead-lettered.", c.dead, me)
  metric("luafetch_worker_retried_total", "counter", "Failures this worker left for another delivery.", c.parked, me)
  metric("luafetch_worker_reclaimed_total", "counter", "Entries this worker took over from stopped workers.", c.reclaimed, me)
  metric("luafetch_worker_in_flight", "gauge", "Entries this worker holds (read, not yet settled).", c.held, me)
  metric("luafetch_worker_redis_round_trips_total", "counter", "Redis round trips of this worker.", c.round_trips, me)
  local elapsed = task.now() - w.started
  metric("luafetch_worker_throughput", "gauge", "URLs settled per second by this worker, over the last minute.",
    ("%.3f"):format(w:rate()), me)
  metric("luafetch_worker_uptime_seconds", "gauge", "Seconds since this worker started.", ("%.1f"):format(elapsed), me)
  return table.concat(L, "\n") .. "\n"
end

local function main(args)
  local cfg = M.settings(args)
  if not cfg then return 0 end
  local q, err = queue.redis{ url = cfg.redis, stream = cfg.stream, group = cfg.group,
                              consumer = cfg.consumer, lease = cfg.lease,
                              max_deliveries = cfg.max_deliveries, batch = cfg.batch }
  if not q then usage_error(err) end
  local log = cfg.quiet and function() end or function(fmt, ...)
    io.stdout:write(("worker %s: " .. fmt .. "\n"):format(q.consumer, ...))
    io.stdout:flush()
  end

  local stopping = false
  task.on_signal(function(sig)
    stopping = true
    log("%s: stop reading; finishing the %d entries read", sig, q:held())
    q:stop()
  end)

  -- Redis first: wait (and say why) until it answers and the keys are streams
  local backoff = 0.1
  while not stopping do
    local ok, why = q:check()
    if ok then break end
    io.stderr:write(("worker %s: %s (retrying in %gs)\n"):format(q.consumer, why, backoff))
    task.sleep(backoff)
    backoff = math.min(backoff * 2, 5)
  end
  if stopping then
    q:close()
    return 0
  end

  -- settled URLs per second over a sliding minute, for /metrics and the progress lines
  local w = { started = task.now(), marks = {} }
  function w:rate()
    local c = q:counters()
    local now = task.now()
    local marks = self.marks
    marks[#marks + 1] = { now, c.results + c.dead }
    while #marks > 2 and now - marks[1][1] > 60 do table.remove(marks, 1) end
    local first, last = marks[1], marks[#marks]
    return last[1] > first[1] and (last[2] - first[2]) / (last[1] - first[1]) or 0
  end

  local server
  if cfg.metrics then
    local why
    server, why = http.serve{ host = cfg.metrics_host, port = cfg.metrics, handler = function(req)
      if req.path ~= "/metrics" then return { status = 404, body = "try /metrics\n" } end
      return { status = 200, headers = { ["content-type"] = "text/plain; version=0.0.4; charset=utf-8" },
               body = M.metrics_text(q, w) }
    end }
    if not server then usage_error("cannot serve metrics: " .. tostring(why)) end
    log("metrics on %s/metrics", server.url)
  end

  local plugins = {}
  if cfg.host_limit or cfg.host_rate then
    plugins[1] = q:politeness{ limit = cfg.host_limit, rate = cfg.host_rate }
  end
  local f = fetcher.new{ max_concurrent = cfg.concurrency, max_per_host = cfg.host_limit,
                         timeout = cfg.timeout, max_retries = cfg.retries, plugins = plugins }
  local source = q:source{ drain = cfg.drain, prefetch = f.max_concurrent }
  log("reading %s (group %s) at %s, %d in flight at most%s", q.stream, q.group, q.cmd:address(),
    f.max_concurrent, cfg.drain and ", until drained" or "")
  local progress = not cfg.quiet and task.spawn(function()
    while true do
      task.sleep(10)
      local c = q:counters()
      log("%d results, %d retried, %d dead, %d in flight, %.0f/s", c.results, c.parked, c.dead, c.held, w:rate())
    end
  end)
  local ok, run_err = pcall(f.each, f, source, q:sink{ keep_body = cfg.keep_body })
  if progress then progress:cancel() end
  local c = q:counters()
  local elapsed = task.now() - w.started
  local settled = c.results + c.dead + c.parked
  log("done: %d results, %d retried, %d dead, %d taken over, %d repeats dropped in %.1fs; "
    .. "%d Redis round trips (%.2f per URL)", c.results, c.parked, c.dead, c.reclaimed, c.repeats,
    elapsed, c.round_trips, settled > 0 and c.round_trips / settled or 0)
  if server then server:close() end
  q:close()
  if not ok then
    io.stderr:write("worker: ", tostring(run_err), "\n")
    return 1
  end
  return 0
end

if ... == "--as-module" then return M end
return main(arg)
