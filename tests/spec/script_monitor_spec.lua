-- script_monitor_spec.lua: scripts/monitor.lua run as a child process: --once and its exit status,
-- every UP/DOWN rule, alerts on state changes only (log line, webhook, command, --state across
-- runs), the schedule with /metrics and /status served while it runs, a graceful stop on SIGTERM,
-- bad targets files; and check() itself (the script loaded with "--as-module"). Most checks are
-- answered from the HARs of tests/fixtures/har/ (`luafetch run --replay`, on the virtual clock:
-- a slow answer or a schedule's waits pass at once); the live cases use scripts/mock_services.lua
-- (its own process) and the TLS fixture server over real sockets: webhooks, a refused connection,
-- a certificate, /metrics fetched while the schedule runs, SIGTERM, a timeout, and a check that
-- the committed HARs are still what the mock serves and that a replay sends it nothing.

local cjson = require "cjson"
local http = require "http"
local task = require "task"
local cassette = require "cassette"

local child = require "tests.spec.support.child"
local q, read, write, assert_clean = child.q, child.read, child.write, child.assert_clean
local wait_for, gone, start_mock = child.wait_for, child.gone, child.start_mock
local BIN, ROOT = child.BIN, child.ROOT
local SCRIPT = ROOT .. "/scripts/monitor.lua"
local HAR_UP = child.HAR_DIR .. "/monitor_up.har"       -- every target once, /service/checkout up
local HAR_DOWN = child.HAR_DIR .. "/monitor_down.har"   -- /health, and /service/checkout down
local HAR_FLAP = child.HAR_DIR .. "/monitor_flap.har"   -- five rounds: checkout up, up, down, down, up
local ORIGIN = child.HAR_ORIGIN -- the mock's origin in the HARs (a host that does not resolve)

-- Runs monitor.lua to its end from the repository root; returns stdout, stderr, exit code.
local function monitor(args)
  return child.run_script(SCRIPT, args, 30)
end

-- Runs monitor.lua answered from a HAR on the virtual clock (opts: miss = "network", cwd);
-- returns stdout, stderr, exit code, and the exchanges it made.
local function monitor_replay(har, args, opts)
  opts = opts or {}
  opts.timeout = 30
  return child.replay_script(SCRIPT, har, args, opts)
end

-- Starts monitor.lua in the background (give it --for: it must end by itself); returns
-- { pid, out = path, rc = path, pidfile = path }.
local function monitor_background(args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = q(a) end
  local bg = { out = os.tmpname(), rc = os.tmpname(), pidfile = os.tmpname() }
  os.remove(bg.rc)
  os.execute(("cd %s && ( %s run %s %s >%s 2>&1 </dev/null & echo $! >%s; wait $!; echo $? >%s ) >/dev/null 2>&1 &")
    :format(q(ROOT), q(BIN), q(SCRIPT), table.concat(quoted, " "), q(bg.out), q(bg.pidfile), q(bg.rc)))
  bg.pid = wait_for("the monitor's pid", function() return (read(bg.pidfile) or ""):match("%d+") end)
  return bg
end

local function exit_code(bg, limit)
  local code = tonumber(wait_for("the monitor to end", function() return (read(bg.rc) or ""):match("%d+") end, limit))
  assert_clean(read(bg.out))
  return code
end

-- one mock for the live cases of both groups below (check()'s timeout case comes first: the
-- mock's answer to it, 2 s late, is then over or nearly when the mock is stopped, which waits
-- for it)
local mock
setup(function() mock = start_mock() end)
teardown(function() child.end_mock(mock) end)

describe("monitor.lua check()", function()
  local mod = assert(loadfile(SCRIPT))("--as-module")

  it("any 2xx or 3xx is UP by default; expect_status takes a list (replayed in this process)", function()
    local opened = http.stats().connections_opened
    cassette.use(HAR_UP, function()
      local r = mod.check({ name = "a", url = ORIGIN .. "/health" }, 5)
      assert.is_true(r.up)
      assert.are.equal("", r.reason)
      assert.are.equal(200, r.status)
      assert.is_true(r.latency > 0)
      r = mod.check({ name = "b", url = ORIGIN .. "/status/404" }, 5)
      assert.is_false(r.up)
      assert.are.equal("status 404, expected 2xx/3xx", r.reason)
      r = mod.check({ name = "c", url = ORIGIN .. "/status/404", expect_status = { 404, 410 } }, 5)
      assert.is_true(r.up)
      r = mod.check({ name = "d", url = ORIGIN .. "/status/500", expect_status = 200, body_match = "ok" }, 5)
      assert.are.equal("status 500, expected 200; body does not match ok", r.reason)
    end)
    assert.are.equal(opened, http.stats().connections_opened)
  end)

  it("a transport failure is DOWN with its kind (live)", function()
    local r = mod.check({ name = "x", url = mock.url .. "/slow?delay=2" }, 0.2)
    assert.is_false(r.up)
    assert.are.equal("timeout", r.kind)
    assert.truthy(r.reason:find("^timeout: "))
  end)
end)

describe("scripts/monitor.lua", function()
  local files = {}
  local function tmpfile(text)
    local path = os.tmpname()
    if text then write(path, text) end
    files[#files + 1] = path
    return path
  end
  -- a targets file with base_url: the live mock's, or (replay) the HARs' origin
  local function targets(body, base)
    return tmpfile(("return { base_url = %q, targets = { %s } }"):format(base or mock.url, body))
  end

  teardown(function()
    for _, p in ipairs(files) do os.remove(p) end
  end)
  before_each(function()
    assert(http.get(mock.url .. "/stats/reset"))
    assert(http.post(mock.url .. "/admin/up/checkout", ""))
  end)

  it("--once: every target UP prints UP lines and exits 0 (replayed)", function()
    local file = targets([[
      { name = "health", url = "/health", body_match = '"status":"ok"', max_latency = 2 },
      { name = "teapot", url = "/status/418", expect_status = { 200, 418 } },
      { name = "no-content", url = "/status/204" },
    ]], ORIGIN)
    local out, err, code = monitor_replay(HAR_UP, { file, "--once" })
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("round 1: 3 up, 0 down", 1, true), out)
    assert.truthy(out:find("\nUP    health             200 "), out)
    assert.truthy(out:find("\nUP    teapot             418 "), out)
    assert.truthy(out:find(" ms", 1, true), out)
    assert.is_nil(out:find("ALERT", 1, true), out)
  end)

  it("--once: each DOWN rule, with its reason, alerts and exits 1 (replayed; webhook and refused live)", function()
    -- the checks are answered from the HAR (the slow one in no real time); what it lacks goes to
    -- the network: the refused connection and the webhook's POSTs to the live mock
    local file = targets(([[
      { name = "status", url = "/status/503", expect_status = 200 },
      { name = "match", url = "/health", body_match = "nope" },
      { name = "not-match", url = "/", body_not_match = "mock" },
      { name = "latency", url = "/slow?delay=0.3", max_latency = 0.1 },
      { name = "refused", url = "http://127.0.0.1:1/", timeout = 2 },
      { name = "fine", url = "/health" },
    ]]), ORIGIN)
    local marker = tmpfile()
    local out, err, code = monitor_replay(HAR_UP, { file, "--once", "--webhook", mock.url .. "/hooks",
      "--on-change", "echo \"$MONITOR_NAME $MONITOR_PREVIOUS $MONITOR_STATE\" >> " .. marker }, { miss = "network" })
    assert.are.equal(1, code, out .. err)
    assert.truthy(out:find("round 1: 1 up, 5 down", 1, true), out)
    assert.truthy(out:find("DOWN  status             503 .-status 503, expected 200"), out)
    assert.truthy(out:find("DOWN  match .-body does not match nope"), out)
    assert.truthy(out:find("DOWN  not%-match .-body matches mock"), out)
    assert.truthy(out:find("DOWN  latency .-took %d+ ms, more than 100 ms"), out)
    assert.truthy(out:find("DOWN  refused            %-%-%-        %-%-    connect: "), out)
    assert.truthy(out:find("ALERT status is DOWN (was UNKNOWN): status 503, expected 200", 1, true), out)
    assert.is_nil(out:find("ALERT fine", 1, true), out) -- a first UP is not news

    local hooks = assert(http.get(mock.url .. "/hooks")):json()
    assert.are.equal(5, #hooks)
    local by_target = {}
    for _, body in ipairs(hooks) do
      local h = cjson.decode(body)
      by_target[h.target] = h
    end
    local h = by_target.status
    assert.are.equal("DOWN", h.state)
    assert.are.equal("UNKNOWN", h.previous)
    assert.are.equal(503, h.status)
    assert.are.equal(ORIGIN .. "/status/503", h.url)
    assert.are.equal("status is DOWN (was UNKNOWN): status 503, expected 200", h.text)

    -- the command runs in the background: wait for its five lines
    local lines = wait_for("the on-change command", function()
      local text = read(marker) or ""
      return select(2, text:gsub("\n", "")) == 5 and text
    end)
    assert.truthy(lines:find("refused UNKNOWN DOWN\n", 1, true), lines)
  end)

  it("--state: alerts only when a state changes between runs (replayed: checkout up, down, down, up)", function()
    local file = targets([[ { name = "checkout", url = "/service/checkout" } ]], ORIGIN)
    local state = tmpfile()
    os.remove(state)
    local out, _, code = monitor_replay(HAR_UP, { file, "--once", "--state", state })
    assert.are.equal(0, code)
    assert.is_nil(out:find("ALERT", 1, true), out)
    assert.are.equal("UP", cjson.decode(read(state)).checkout.state)

    out, _, code = monitor_replay(HAR_DOWN, { file, "--once", "--state", state })
    assert.are.equal(1, code)
    assert.truthy(out:find("ALERT checkout is DOWN (was UP): status 503, expected 2xx/3xx", 1, true), out)

    out, _, code = monitor_replay(HAR_DOWN, { file, "--once", "--state", state })
    assert.are.equal(1, code)
    assert.is_nil(out:find("ALERT", 1, true), out)

    out, _, code = monitor_replay(HAR_UP, { file, "--once", "--state", state, "--quiet" })
    assert.are.equal(0, code)
    assert.truthy(out:find("ALERT checkout is UP (was DOWN)", 1, true), out)
    assert.is_nil(out:find("round", 1, true), out) -- --quiet: state changes only
  end)

  it("checks the certificate's days left on https targets (live)", function()
    local tls = assert(os.getenv("FIXTURE_TLS_GOOD"), "FIXTURE_TLS_GOOD is not set")
    local ca = assert(os.getenv("FIXTURE_CERTS")) .. "/ca.pem"
    local file = tmpfile(([[return {
      { name = "fresh", url = %q, ca_file = %q, tls_days = 7 },
      { name = "expiring", url = %q, ca_file = %q, tls_days = 400 },
    }]]):format(tls .. "/json", ca, tls .. "/json", ca))
    local out, err, code = monitor{ file, "--once" }
    assert.are.equal(1, code, out .. err)
    assert.truthy(out:find("UP    fresh .- cert %d+d"), out)
    assert.truthy(out:find("DOWN  expiring .-certificate expires in [%d.]+ days %(less than 400%)"), out)
  end)

  it("runs on a schedule, alerts on changes, stops after --for (replayed, virtual time)", function()
    local file = targets([[
      { name = "health", url = "/health" },
      { name = "checkout", url = "/service/checkout" },
    ]], ORIGIN)
    local textfile = tmpfile()
    local t0 = task.now()
    local out, err, code = monitor_replay(HAR_FLAP, { file, "--interval", "0.2", "--for", "3", "--metrics-port", "0",
                                                      "--textfile", textfile })
    local took = task.now() - t0
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("metrics on http://[%d.:]+/metrics"), out)
    -- checkout answers 200, 200, 503, 503, then 200 (the last answer again): DOWN in rounds 3
    -- and 4 only, an alert when it goes down and one when it comes back
    local n = 0
    for round, up, down in out:gmatch("round (%d+): (%d) up, (%d) down") do
      n = n + 1
      assert.are.equal(n, tonumber(round))
      local want = (n == 3 or n == 4) and "1 1" or "2 0"
      assert.are.equal(want, up .. " " .. down, "round " .. round)
    end
    assert.truthy(out:find("round 3: 1 up, 1 down\n[^\n]*\nDOWN  checkout"), out)
    assert.truthy(out:find("round 3: 1 up, 1 down\n.-ALERT checkout is DOWN %(was UP%): status 503.-round 4:"), out)
    assert.truthy(out:find("round 5: 2 up, 0 down\n.-ALERT checkout is UP %(was DOWN%).-round 6:"), out)
    local _, alerts = out:gsub("ALERT", "")
    assert.are.equal(2, alerts)
    -- 0.2 s apart for 3 s of the virtual clock: 15 rounds (a 16th if it falls on the 3 s mark)
    local rounds = tonumber(out:match("monitor stopped after (%d+) rounds: 2 up, 0 down"))
    assert.is_true(rounds ~= nil and rounds >= 15 and rounds <= 16, out)
    assert.are.equal(rounds, n)
    assert.is_true(took < 2.5, ("took %.2f s of real time"):format(took))
    local metrics = read(textfile) or ""
    assert.truthy(metrics:find('luafetch_probe_success{target="health",url="' .. ORIGIN .. '/health"} 1', 1, true), metrics)
    assert.truthy(metrics:find('luafetch_probe_success{target="checkout",url="' .. ORIGIN .. '/service/checkout"} 1', 1, true), metrics)
    assert.truthy(metrics:find('luafetch_monitor_state_changes_total{target="checkout"} 2', 1, true), metrics)
  end)

  it("serves /metrics and /status while it runs, alerts on changes (live)", function()
    local file = targets([[
      { name = "health", url = "/health" },
      { name = "checkout", url = "/service/checkout" },
    ]])
    local textfile = tmpfile()
    local t0 = task.now()
    -- --for: a safety net; it is stopped with SIGTERM once the changes are seen (the replayed
    -- case above runs the schedule to the end of --for)
    local bg = monitor_background{ file, "--interval", "0.2", "--for", "20", "--metrics-port", "0",
                                   "--textfile", textfile }
    local metrics_url = wait_for("the metrics line", function()
      return (read(bg.out) or ""):match("metrics on (http://[%d.:]+)/metrics")
    end)
    wait_for("a first round", function() return (read(bg.out) or ""):find("round 1", 1, true) end)
    local res = assert(http.get(metrics_url .. "/metrics"))
    assert.are.equal(200, res.status)
    assert.truthy(res.headers["content-type"]:find("text/plain", 1, true))
    assert.truthy(res.body:find('luafetch_probe_success{target="health",url="' .. mock.url .. '/health"} 1', 1, true), res.body)
    local status = assert(http.get(metrics_url .. "/status")):json()
    assert.are.equal("UP", status.checkout.state)
    assert.are.equal(404, assert(http.get(metrics_url .. "/nothing")).status)

    assert(http.post(mock.url .. "/admin/down/checkout", ""))
    wait_for("checkout DOWN", function() return (read(bg.out) or ""):find("ALERT checkout is DOWN", 1, true) end)
    res = assert(http.get(metrics_url .. "/metrics"))
    assert.truthy(res.body:find('luafetch_probe_success{target="checkout",url="' .. mock.url .. '/service/checkout"} 0', 1, true), res.body)
    assert.truthy(res.body:find('luafetch_monitor_state_changes_total{target="checkout"} 1', 1, true), res.body)
    assert(http.post(mock.url .. "/admin/up/checkout", ""))
    wait_for("checkout UP", function() return (read(bg.out) or ""):find("ALERT checkout is UP", 1, true) end)

    os.execute("kill -TERM " .. bg.pid)
    assert.are.equal(0, exit_code(bg))
    local took = task.now() - t0
    local out = read(bg.out)
    assert.truthy(out:find("ALERT checkout is DOWN (was UP): status 503", 1, true), out)
    assert.truthy(out:find("ALERT checkout is UP (was DOWN)", 1, true), out)
    local rounds = tonumber(out:match("monitor stopped after (%d+) rounds: 2 up, 0 down"))
    -- up, down, up again: three rounds at least; 0.2 s apart, so no more than the time allows
    assert.is_true(rounds ~= nil and rounds >= 3 and rounds <= took / 0.2 + 2, ("%s rounds in %.2f s\n%s"):format(rounds, took, out))
    assert.truthy((read(textfile) or ""):find("luafetch_probe_success", 1, true))
    for _, p in ipairs{ bg.out, bg.rc, bg.pidfile } do os.remove(p) end
  end)

  it("stops gracefully on SIGTERM (live)", function()
    local file = targets([[ { name = "health", url = "/health" } ]])
    local bg = monitor_background{ file, "--interval", "0.2", "--for", "20" } -- --for: a safety net
    wait_for("two rounds", function() return (read(bg.out) or ""):find("round 2", 1, true) end)
    os.execute("kill -TERM " .. bg.pid)
    assert.are.equal(0, exit_code(bg))
    local out = read(bg.out)
    assert.truthy(out:find("monitor stopped after %d+ rounds: 1 up, 0 down"), out)
    assert.is_true(gone(bg.pid))
    for _, p in ipairs{ bg.out, bg.rc, bg.pidfile } do os.remove(p) end
  end)

  it("refuses a bad targets file or option with exit status 2", function()
    local cases = {
      { "{ name = 'a', url = '/x', max_latancy = 1 }", "unknown field 'max_latancy'" },
      { "{ name = 'a' }", "name and url are required" },
      { "{ name = 'a', url = '/x' }, { name = 'a', url = '/y' }", "the name 'a' is used twice" },
      { "{ name = 'a', url = '/x', body_match = '[' }", "not a valid Lua pattern" },
      { "{ name = 'a', url = '/x', tls_days = 3 }", "tls_days needs an https URL" },
      { "{ name = 'a', url = '/x', timeout = 'soon' }", "timeout must be a number" },
    }
    for _, c in ipairs(cases) do
      local _, err, code = monitor{ targets(c[1]), "--once" }
      assert.are.equal(2, code, c[1])
      assert.truthy(err:find(c[2], 1, true), err)
    end
    local _, err, code = monitor{ targets("{ name = 'a', url = '/x' }"), "--nope" }
    assert.are.equal(2, code)
    assert.truthy(err:find("unknown option '--nope'", 1, true), err)
    _, err, code = monitor{ "/nonexistent/targets.lua", "--once" }
    assert.are.equal(2, code, err)
  end)

  it("--help prints the options and exits 0; no targets file is bad usage, never a run", function()
    local out, err, code = monitor{ "--help" }
    assert.are.equal(0, code, err)
    assert.truthy(out:find("Usage: luafetch run monitor", 1, true), out)
    assert.truthy(out:find("--once", 1, true), out)
    assert.truthy(out:find("--metrics-port", 1, true), out)
    -- with no arguments it used to check 127.0.0.1:8080 forever
    out, err, code = monitor{}
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.truthy(err:find("no targets file", 1, true), err)
    assert.truthy(err:find(ROOT .. "/scripts/targets.example.lua", 1, true), err)
  end)

  it("finds targets.example.lua beside itself from any folder (replayed)", function()
    -- from /, by path, with the example named relative to the script
    local out, err, code = monitor_replay(HAR_UP, { "--targets", "targets.example.lua", "--base", ORIGIN, "--once" },
                                          { cwd = "/" })
    assert.are.equal(1, code, out .. err) -- the example has DOWN targets on purpose
    assert.truthy(out:find("round 1:", 1, true), out)
    assert.truthy(out:find("UP    health ", 1, true), out)
  end)

  it("the committed HARs are what the mock serves, and a replay sends it nothing (live)", function()
    -- what regenerate.lua records: every target up, then the two with checkout down
    local out, err, _, up = child.record_script(SCRIPT, { child.HAR_DIR .. "/monitor_targets.lua", "--base", mock.url, "--once" })
    assert.truthy(out:find("round 1:", 1, true), out .. err)
    assert(http.post(mock.url .. "/admin/down/checkout", ""))
    local _, _, _, down = child.record_script(SCRIPT, { child.HAR_DIR .. "/monitor_flap_targets.lua", "--base", mock.url, "--once" })
    assert.are.equal(10, #up)
    assert.are.same(child.har_summary(up), child.har_summary(child.har_entries(HAR_UP)))
    assert.are.same(child.har_summary(down), child.har_summary(child.har_entries(HAR_DOWN)))
    -- the five rounds: answers the mock gives now (up or down), in the order the case expects
    local live = {}
    for _, line in ipairs(child.har_summary(up)) do live[line] = true end
    for _, line in ipairs(child.har_summary(down)) do live[line] = true end
    local flap = {}
    for _, e in ipairs(child.har_entries(HAR_FLAP)) do
      local line = child.har_summary({ e })[1]
      assert.truthy(live[line], line)
      flap[#flap + 1] = line
    end
    local h, c_up, c_down = "GET /health 200", "GET /service/checkout 200", "GET /service/checkout 503"
    assert.are.same({ h, c_up, h, c_up, h, c_down, h, c_down, h, c_up }, flap)

    -- monitor_up.har aimed at the live mock: the same states, and not one request reaches it
    local file = child.HAR_DIR .. "/monitor_targets.lua"
    local har = child.har_at(HAR_UP, mock.url)
    assert(http.get(mock.url .. "/stats/reset"))
    local replayed, err2, code = monitor_replay(har, { file, "--base", mock.url, "--once" })
    os.remove(har)
    assert.are.equal(1, code, replayed .. err2) -- 503, 404 and 500 are DOWN
    local function states(text)
      local list = {}
      for state, name, status in text:gmatch("\n(%u+)%s+(%S+)%s+(%d+)") do list[#list + 1] = state .. " " .. name .. " " .. status end
      table.sort(list)
      return list
    end
    assert.are.same(states(out), states(replayed))
    local s = assert(http.get(mock.url .. "/stats")):json()
    assert.are.equal(0, s.requests)
  end)
end)
