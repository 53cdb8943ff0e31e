-- monitor.lua — check endpoints on a schedule, print UP/DOWN with latency, alert when a target
-- changes state (a log line, a webhook POST, a shell command), and serve Prometheus /metrics.
--
-- usage: luafetch run monitor [--targets] TARGETS_FILE [options]      (--help lists them)
--
--   TARGETS_FILE        a Lua file returning the targets; a relative name not found in the current
--                       folder is looked up beside this script, so `--targets targets.example.lua`
--                       works from anywhere (the fields: that file and docs/scripts/monitor.md)
--   --once              one round, then exit: 0 when every target is UP, 1 otherwise (cron, CI)
--   --interval 30s      time between rounds (default: the file's `interval`, else 30s)
--   --for 1m            stop after this long (default: run until SIGINT or SIGTERM)
--   --metrics-port N    serve /metrics (Prometheus) and /status (JSON) on 127.0.0.1:N (0: any port)
--   --metrics-host H    listen address for the above (default 127.0.0.1)
--   --textfile PATH     write the metrics to PATH after every round (node_exporter textfile)
--   --webhook URL       POST a JSON alert to URL on every state change (Slack-style "text" field)
--   --on-change CMD     run `sh -c CMD` in the background on every state change, with MONITOR_NAME,
--                       MONITOR_URL, MONITOR_STATE, MONITOR_PREVIOUS, MONITOR_REASON in its environment
--   --state FILE        remember states across runs (so --once from cron alerts on changes only)
--   --base URL          prefix for target URLs that start with "/"
--   --timeout S         seconds per check unless a target says otherwise (default 10)
--   --quiet             print state changes only, not every check
--
-- A target is UP when it answers with the expected status, its body matches `body_match` and
-- not `body_not_match`, it answers within `max_latency`, and (https) its certificate has at least
-- `tls_days` days left. The first round alerts only for targets that are DOWN.
-- Exit status: 0 (--once: every target UP), 1 (--once: a target DOWN), 2 bad usage.
local http = require "http"
local task = require "task"
local schedule = require "schedule"
local prometheus = require "plugins.prometheus"
local cjson = require "cjson.safe"
local argparse = require "argparse"

-- the folder of this script: example files are looked up beside it
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local CONFIG = {
  targets_file = nil,    -- required: TARGETS_FILE or --targets
  interval = nil,        -- nil: the targets file's `interval`, else "30s"
  duration = nil,        -- stop after this long (seconds or "1m"); nil: run until a signal
  once = false,
  metrics_port = nil,    -- e.g. 9101; nil: no server
  metrics_host = "127.0.0.1",
  textfile = nil,
  webhook = nil,
  on_change = nil,
  state_file = nil,
  base_url = nil,
  quiet = false,
  timeout = 10,          -- seconds per check, unless a target says otherwise
}

local M = {} -- the functions below, returned to specs that load this file with "--as-module"

local function usage_error(message)
  error({ exit_code = 2, message = "monitor.lua: " .. message }, 0)
end

---------------------------------------------------------------------------
-- Targets
---------------------------------------------------------------------------

local TARGET_FIELDS = {
  name = "string", url = "string", method = "string", headers = "table", body = "string",
  expect_status = "number|table", body_match = "string", body_not_match = "string",
  max_latency = "number", tls_days = "number", timeout = "number", verify = "boolean",
  ca_file = "string", max_redirects = "number",
}

---Reads a targets file: an array of targets, or a table { interval=, base_url=, defaults=,
---targets= }. Checks every field; returns the targets and the file's settings.
---@param path string
---@param base_url? string overrides the file's base_url
---@return table[] targets
---@return table settings
function M.load_targets(path, base_url)
  local chunk, err = loadfile(path)
  if not chunk then usage_error(err) end
  local ok, t = pcall(chunk)
  if not ok then usage_error(path .. ": " .. tostring(t)) end
  if type(t) ~= "table" then usage_error(path .. " must return a table") end
  local settings = t.targets and t or { targets = t }
  base_url = base_url or settings.base_url
  local targets, names = {}, {}
  for i, spec in ipairs(settings.targets) do
    local target = {}
    for k, v in pairs(settings.defaults or {}) do target[k] = v end
    for k, v in pairs(spec) do target[k] = v end
    local where = ("%s: target %d"):format(path, i)
    for k, v in pairs(target) do
      local want = TARGET_FIELDS[k]
      if not want then usage_error(where .. ": unknown field '" .. tostring(k) .. "'") end
      if not want:find(type(v), 1, true) then usage_error(("%s: %s must be a %s"):format(where, k, want)) end
    end
    if not target.name or not target.url then usage_error(where .. ": name and url are required") end
    if names[target.name] then usage_error(where .. ": the name '" .. target.name .. "' is used twice") end
    names[target.name] = true
    if target.url:sub(1, 1) == "/" then
      if not base_url then usage_error(where .. ": a URL starting with / needs base_url or --base") end
      target.url = base_url:gsub("/+$", "") .. target.url
    end
    for _, k in ipairs{ "body_match", "body_not_match" } do
      if target[k] and not pcall(string.find, "", target[k]) then
        usage_error(("%s: %s is not a valid Lua pattern: %s"):format(where, k, target[k]))
      end
    end
    if target.tls_days and not target.url:match("^https://") then
      usage_error(where .. ": tls_days needs an https URL")
    end
    targets[#targets + 1] = target
  end
  if #targets == 0 then usage_error(path .. ": no targets") end
  return targets, settings
end

local function status_expected(target, status)
  local want = target.expect_status
  if want == nil then return status >= 200 and status < 400 end
  if type(want) == "number" then return status == want end
  for _, s in ipairs(want) do
    if s == status then return true end
  end
  return false
end

local function describe_expected(want)
  if want == nil then return "2xx/3xx" end
  if type(want) == "number" then return tostring(want) end
  return table.concat(want, " or ")
end

---Checks one target once.
---@param target table
---@param default_timeout number
---@return table result name, url, up, reason, status, latency, days_left, res
function M.check(target, default_timeout)
  local res, err, kind = http.request{
    url = target.url, method = target.method, headers = target.headers, body = target.body,
    timeout = target.timeout or default_timeout, verify = target.verify, ca_file = target.ca_file,
    max_redirects = target.max_redirects,
  }
  local r = { name = target.name, url = target.url }
  if not res then
    r.up, r.reason, r.kind = false, kind .. ": " .. err, kind
    return r
  end
  r.res, r.status, r.latency = res, res.status, res.timings.total
  local problems = {}
  if not status_expected(target, res.status) then
    problems[#problems + 1] = ("status %d, expected %s"):format(res.status, describe_expected(target.expect_status))
  end
  if target.body_match and not res.body:find(target.body_match) then
    problems[#problems + 1] = "body does not match " .. target.body_match
  end
  if target.body_not_match and res.body:find(target.body_not_match) then
    problems[#problems + 1] = "body matches " .. target.body_not_match
  end
  if target.max_latency and r.latency > target.max_latency then
    problems[#problems + 1] = ("took %.0f ms, more than %.0f ms"):format(r.latency * 1000, target.max_latency * 1000)
  end
  local expires = res.tls and res.tls.expires
  if expires then
    r.days_left = (expires - os.time()) / 86400
    if target.tls_days and r.days_left < target.tls_days then
      problems[#problems + 1] = ("certificate expires in %.1f days (less than %g)"):format(r.days_left, target.tls_days)
    end
  end
  r.up = #problems == 0
  r.reason = table.concat(problems, "; ")
  return r
end

---------------------------------------------------------------------------
-- Alerts
---------------------------------------------------------------------------

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function alert_text(r, state, previous)
  return ("%s is %s (was %s)%s"):format(r.name, state, previous or "UNKNOWN",
    r.reason ~= "" and (": " .. r.reason) or "")
end

-- Sends the alert of one state change: a log line, the webhook, the command.
local function alert(cfg, r, state, previous)
  local text = alert_text(r, state, previous)
  print(os.date("%H:%M:%S") .. " ALERT " .. text)
  if cfg.on_change then
    local env = { MONITOR_NAME = r.name, MONITOR_URL = r.url, MONITOR_STATE = state,
                  MONITOR_PREVIOUS = previous or "UNKNOWN", MONITOR_REASON = r.reason }
    local parts = {}
    for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
    table.sort(parts)
    -- in the background: a slow command never holds up the checks
    os.execute(table.concat(parts, " ") .. " sh -c " .. shell_quote(cfg.on_change) .. " &")
  end
  if cfg.webhook then
    local res, err = http.post(cfg.webhook, {
      text = text, target = r.name, url = r.url, state = state, previous = previous or "UNKNOWN",
      reason = r.reason, status = r.status, latency = r.latency,
      time = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    }, { timeout = 5 })
    if not res or res.status >= 300 then
      io.stderr:write("monitor: webhook failed: ", err or ("status " .. res.status), "\n")
    end
  end
end

---------------------------------------------------------------------------
-- Rounds
---------------------------------------------------------------------------

local function format_line(r)
  local latency = r.latency and ("%7.1f ms"):format(r.latency * 1000) or "      --  "
  local cert = r.days_left and ("  cert %dd"):format(math.floor(r.days_left)) or ""
  return ("%-5s %-18s %-4s %s%s%s"):format(r.up and "UP" or "DOWN", r.name, r.status or "---", latency,
    cert, (not r.up and r.reason ~= "") and ("  " .. r.reason) or "")
end

---A monitor: its targets, their states, metrics; `:round()` checks every target once.
---@param cfg table settings as CONFIG
---@param targets table[]
function M.new(cfg, targets)
  local self = { cfg = cfg, targets = targets, states = {}, rounds = 0,
                 prom = prometheus.new{ http_stats = false } }
  local changes = self.prom:counter("luafetch_monitor_state_changes_total",
    "Times a target changed between UP and DOWN", { "target" })

  if cfg.state_file then
    local f = io.open(cfg.state_file)
    if f then
      local saved = cjson.decode(f:read("a"))
      f:close()
      local known = {}
      for _, t in ipairs(targets) do known[t.name] = true end
      for name, s in pairs(type(saved) == "table" and saved or {}) do
        if known[name] and type(s) == "table" then self.states[name] = s end -- drop removed targets
      end
    end
  end

  ---Checks every target (concurrently), prints, alerts on changes, records metrics.
  ---@return integer down targets DOWN this round
  function self:round()
    self.rounds = self.rounds + 1
    local checks = {}
    for i, target in ipairs(self.targets) do
      checks[i] = task.spawn(M.check, target, cfg.timeout)
    end
    local results, down = {}, 0
    for i, t in ipairs(checks) do
      local ok, r = t:join()
      if not ok then
        r = { name = self.targets[i].name, url = self.targets[i].url, up = false, reason = "check failed: " .. tostring(r) }
      end
      results[i] = r
      if not r.up then down = down + 1 end
    end
    if not cfg.quiet then
      print(("-- %s  round %d: %d up, %d down"):format(os.date("%H:%M:%S"), self.rounds, #results - down, down))
      for _, r in ipairs(results) do print(format_line(r)) end
    end
    local alerts = {}
    for _, r in ipairs(results) do
      local state = r.up and "UP" or "DOWN"
      local prev = self.states[r.name]
      local previous = prev and prev.state
      local res = r.res or {}
      self.prom:observe(r.name, r.url, { success = r.up, status = r.status, kind = r.kind,
                                         timings = res.timings, tls = res.tls })
      if state ~= previous then
        if previous or state == "DOWN" then
          changes:inc{ target = r.name }
          alerts[#alerts + 1] = task.spawn(alert, cfg, r, state, previous)
        end
        self.states[r.name] = { state = state, since = os.time(), reason = r.reason }
      end
      local s = self.states[r.name]
      s.latency, s.status, s.reason, s.checked = r.latency, r.status, r.reason, os.time()
    end
    for _, t in ipairs(alerts) do t:join() end
    if cfg.textfile then
      local ok, err = self.prom:write_textfile(cfg.textfile)
      if not ok then io.stderr:write("monitor: cannot write ", cfg.textfile, ": ", tostring(err), "\n") end
    end
    if cfg.state_file then
      local f = io.open(cfg.state_file, "w")
      if f then
        f:write(cjson.encode(self.states), "\n")
        f:close()
      end
    end
    io.stdout:flush()
    return down
  end

  ---The handler of the metrics server: /metrics, /status, else 404.
  function self:handler()
    local metrics = self.prom:handler()
    return function(req)
      if req.path == "/metrics" then return metrics(req) end
      if req.path == "/status" then return { json = self.states } end
      return { status = 404, body = "try /metrics or /status\n" }
    end
  end

  return self
end

---------------------------------------------------------------------------
-- Command line
---------------------------------------------------------------------------

local function is_file(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

---A relative path not found from the current folder is looked up beside this script.
---@param path string
---@return string
function M.find_file(path)
  if is_file(path) or path:sub(1, 1) == "/" then return path end
  local beside = HERE .. "/" .. path
  return is_file(beside) and beside or path
end

---The argument parser (lua-argparse).
function M.parser()
  local p = argparse("luafetch run monitor",
    "Check endpoints on a schedule, print UP/DOWN with latency, alert when a target changes "
    .. "state, serve Prometheus /metrics.",
    "An example targets file: " .. HERE .. "/targets.example.lua (try: luafetch run monitor "
    .. "--targets targets.example.lua --base http://127.0.0.1:8080 --once).\n"
    .. "Exit status: 0 (--once: every target UP), 1 (--once: a target DOWN), 2 bad usage.")
  p:add_help(false)
  p:help_max_width(80)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("targets_file", "Lua file returning the targets (same as --targets)."):args("?")
  p:option("--targets", "Lua file returning the targets; a relative name is also looked up beside this script.")
    :argname("<file>")
  p:flag("--once", "One round, then exit: 0 when every target is UP, 1 otherwise (cron, CI).")
  p:option("--interval", "Time between rounds (default: the file's interval, else 30s)."):argname("<time>")
  p:option("--for", "Stop after this long (default: run until SIGINT or SIGTERM)."):argname("<time>")
    :target("duration")
  p:option("--metrics-port", "Serve /metrics and /status on this port (0: any)."):argname("<port>")
  p:option("--metrics-host", "Listen address for the above (default 127.0.0.1)."):argname("<host>")
  p:option("--textfile", "Write the metrics to PATH after every round (node_exporter textfile).")
    :argname("<path>")
  p:option("--webhook", "POST a JSON alert to URL on every state change."):argname("<url>")
  p:option("--on-change", "Run `sh -c CMD` in the background on every state change."):argname("<cmd>")
  p:option("--state", "Remember states across runs in FILE."):argname("<file>"):target("state_file")
  p:option("--base", "Prefix for target URLs that start with /."):argname("<url>"):target("base_url")
  p:option("--timeout", "Seconds per check unless a target says otherwise (default 10)."):argname("<s>")
  p:flag("--quiet", "Print state changes only, not every check.")
  return p
end

---Settings from CONFIG and the arguments; nil when --help was asked for (and printed).
---@param args string[]
---@return table|nil
function M.settings(args)
  local p = M.parser()
  local ok, given = p:pparse(args)
  if not ok then usage_error(given .. " (try --help)") end
  if given.help then
    io.stdout:write(p:get_help(), "\n")
    return nil
  end
  local cfg = {}
  for k, v in pairs(CONFIG) do cfg[k] = v end
  for _, k in ipairs{ "interval", "duration", "metrics_port", "metrics_host", "textfile", "webhook",
                      "on_change", "state_file", "base_url", "once", "quiet", "timeout" } do
    if given[k] ~= nil then cfg[k] = given[k] end
  end
  if given.targets_file and given.targets and given.targets_file ~= given.targets then
    usage_error("give the targets file once (TARGETS_FILE or --targets)")
  end
  local targets = given.targets or given.targets_file
  if not targets then
    usage_error("no targets file: give one with --targets FILE (an example: " .. HERE
      .. "/targets.example.lua; see --help)")
  end
  cfg.targets_file = M.find_file(targets)
  if cfg.metrics_port ~= nil then
    local port = math.tointeger(tonumber(cfg.metrics_port))
    if not port or port < 0 or port > 65535 then usage_error("--metrics-port needs a port number") end
    cfg.metrics_port = port
  end
  if given.timeout ~= nil then
    local t = tonumber(given.timeout)
    if not t or t <= 0 then usage_error("--timeout needs a positive number of seconds") end
    cfg.timeout = t
  end
  if cfg.duration ~= nil then
    local seconds, err = schedule.parse_interval(cfg.duration)
    if not seconds then usage_error("--for: " .. err) end
    cfg.duration = seconds
  end
  return cfg
end

local function main(args)
  local cfg = M.settings(args)
  if not cfg then return 0 end
  local targets, file = M.load_targets(cfg.targets_file, cfg.base_url)
  local monitor = M.new(cfg, targets)

  if cfg.once then
    local down = monitor:round()
    return down == 0 and 0 or 1
  end

  local interval, err = schedule.parse_interval(cfg.interval or file.interval or "30s")
  if not interval then usage_error(err) end
  local server
  if cfg.metrics_port then
    local why
    server, why = http.serve{ host = cfg.metrics_host, port = cfg.metrics_port, handler = monitor:handler() }
    if not server then usage_error("cannot serve metrics: " .. tostring(why)) end
    print(("metrics on %s/metrics, states on %s/status"):format(server.url, server.url))
  end
  print(("monitoring %d targets every %gs (Ctrl-C stops)"):format(#targets, interval))

  schedule.every(interval, function() monitor:round() end, { immediate = true, overlap = "skip", name = "monitor" })
  local timer -- ends the run after --for
  if cfg.duration then
    timer = task.spawn(function()
      task.sleep(cfg.duration)
      timer = nil
      schedule.stop()
    end)
  end
  schedule.on_stop(function() -- after SIGINT/SIGTERM or --for, once the round in flight is done
    if timer then timer:cancel() end
    if server then server:close() end
    local up, down = 0, 0
    for _, s in pairs(monitor.states) do
      if s.state == "UP" then up = up + 1 else down = down + 1 end
    end
    print(("monitor stopped after %d rounds: %d up, %d down"):format(monitor.rounds, up, down))
  end)
  return 0
end

if ... == "--as-module" then return M end
return main(arg)
