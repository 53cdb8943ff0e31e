-- plugins_prometheus_spec.lua: the Prometheus text exposition 0.0.4 (value formatting, HELP and
-- label escaping, HELP/TYPE once per family, no duplicate series, histograms), probes observed
-- from fetcher results and http responses (phases, status, TLS expiry), the plugin hooks in a real
-- fetch, http.stats counters, forget, the atomic textfile, and the handler for http.serve.

local prometheus = require "plugins.prometheus"
local fetcher = require "fetcher"
local logger = require "plugins.logger"
local http = require "http"
local task = require "task"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local TLS_GOOD = os.getenv("FIXTURE_TLS_GOOD")
local CERTS = os.getenv("FIXTURE_CERTS")

local function read_file(path)
  local fh = assert(io.open(path))
  local text = fh:read("a")
  fh:close()
  return text
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

-- A strict reader of the exposition: every line is HELP, TYPE or a sample; HELP and TYPE come
-- once per family, before its samples; a family's samples are contiguous; no series repeats; every
-- value parses. Returns samples by series text ("name{labels}") and types by family.
local function parse_exposition(text)
  assert.are.equal("\n", text:sub(-1), "the exposition ends with a line feed")
  local samples, types, helps, closed, current = {}, {}, {}, {}, nil
  local function family_of(name)
    for _, suffix in ipairs{ "_bucket", "_sum", "_count" } do
      local base = name:sub(1, -#suffix - 1)
      if name:sub(-#suffix) == suffix and types[base] == "histogram" then return base end
    end
    return name
  end
  local function enter(fam)
    if fam ~= current then
      assert.is_nil(closed[fam], "samples of " .. fam .. " are not contiguous")
      if current then closed[current] = true end
      current = fam
    end
  end
  for _, line in ipairs(lines_of(text)) do
    local kind, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) (.*)$")
    if kind == "HELP" then
      assert.is_nil(helps[name], "HELP twice for " .. name)
      assert.is_nil(rest:find("\n", 1, true))
      helps[name] = rest
      enter(name)
    elseif kind == "TYPE" then
      assert.is_nil(types[name], "TYPE twice for " .. name)
      assert.truthy(({ gauge = 1, counter = 1, histogram = 1, untyped = 1, summary = 1 })[rest], line)
      types[name] = rest
      enter(name)
    else
      local name, labels, value = line:match("^([%a_:][%w_:]*)(.-) (%S+)$")
      assert.truthy(name, "not a sample line: " .. line)
      assert.truthy(labels == "" or labels:match("^{.*}$"), "not a sample line: " .. line)
      local series = name .. labels
      if labels ~= "" then
        -- label pairs: name="value" (escapes \\ \" \n only), comma separated
        local body, pos, seen = labels:sub(2, -2), 1, {}
        while pos <= #body do
          local lname, after = body:match('^([%a_][%w_]*)="()', pos)
          assert.truthy(lname, "bad label name in: " .. line)
          assert.is_nil(seen[lname], "label twice in: " .. line)
          seen[lname] = true
          pos = after
          while true do
            local c = body:sub(pos, pos)
            assert.are_not.equal("", c, "unterminated value in: " .. line)
            if c == "\\" then
              assert.truthy(body:sub(pos + 1, pos + 1):match('[\\"n]'), "bad escape in: " .. line)
              pos = pos + 2
            elseif c == '"' then
              pos = pos + 1
              break
            else
              assert.are_not.equal("\n", c)
              pos = pos + 1
            end
          end
          if pos <= #body then
            assert.are.equal(",", body:sub(pos, pos), "bad separator in: " .. line)
            pos = pos + 1
          end
        end
      end
      local fam = family_of(name)
      assert.truthy(types[fam], "sample before TYPE: " .. line)
      enter(fam)
      assert.is_nil(samples[series], "duplicate series " .. series)
      local v = value == "+Inf" and math.huge or value == "-Inf" and -math.huge
        or value == "NaN" and 0 / 0 or tonumber(value)
      assert.truthy(v, "bad value: " .. line)
      samples[series] = v
    end
  end
  return samples, types
end

describe("plugins.prometheus text format", function()
  it("formats values", function()
    local f = prometheus.format_value
    assert.are.equal("1", f(1))
    assert.are.equal("1", f(1.0))
    assert.are.equal("-3", f(-3.0))
    assert.are.equal("0.1", f(0.1))
    assert.are.equal("0.005", f(0.005))
    assert.are.equal("0.3333333333333333", f(1 / 3))
    assert.are.equal(1 / 3, tonumber(f(1 / 3)))
    assert.are.equal("1795489847", f(1795489847))
    assert.are.equal("1e+21", f(1e21))
    assert.are.equal("NaN", f(0 / 0))
    assert.are.equal("+Inf", f(math.huge))
    assert.are.equal("-Inf", f(-math.huge))
    assert.are.equal("1", f(true))
    assert.are.equal("0", f(false))
  end)

  it("escapes label values and HELP text", function()
    assert.are.equal('a\\\\b\\"c\\nd', prometheus.escape_label('a\\b"c\nd'))
    assert.are.equal("plain", prometheus.escape_label("plain"))
    assert.are.equal("200", prometheus.escape_label(200))
    assert.are.equal('say "hi" \\\\ \\n', prometheus.escape_help('say "hi" \\ \n'))
  end)

  it("renders gauges and counters with HELP and TYPE once per family", function()
    local prom = prometheus.new{ http_stats = false }
    local g = prom:gauge("app_temperature", "Temperature \\ in\nC", { "room" })
    g:set({ room = "b" }, 21.5)
    g:set({ room = 'a "quoted"\\' }, -1)
    local c = prom:counter("app_events_total", "Events")
    c:inc()
    c:inc(nil, 2)
    prom:gauge("app_unused", "Never set") -- no series: not written
    assert.are.equal(table.concat({
      "# HELP app_temperature Temperature \\\\ in\\nC",
      "# TYPE app_temperature gauge",
      'app_temperature{room="a \\"quoted\\"\\\\"} -1',
      'app_temperature{room="b"} 21.5',
      "# HELP app_events_total Events",
      "# TYPE app_events_total counter",
      "app_events_total 3",
      "",
    }, "\n"), prom:render())
  end)

  it("an empty registry renders nothing", function()
    assert.are.equal("", prometheus.new{ http_stats = false }:render())
  end)

  it("keeps one series per label set, whatever the table order or value type", function()
    local prom = prometheus.new{ http_stats = false }
    local g = prom:gauge("x", "x", { "b", "a" })
    g:set({ a = "1", b = "2" }, 1)
    g:set({ b = 2, a = 1 }, 5)
    g:set({ a = "1", b = "2", c = "3" }, 7)
    local samples = parse_exposition(prom:render())
    assert.are.same({ ['x{b="2",a="1"}'] = 5, ['x{b="2",a="1",c="3"}'] = 7 }, samples)
    assert.are.equal(5, g:get{ a = 1, b = 2 })
    -- registering a name again returns the family; another type is refused
    assert.are.equal(g, prom:gauge("x"))
    assert.has_error(function() prom:counter("x") end, "prometheus: x is already a gauge")
  end)

  it("renders histograms with cumulative buckets, +Inf, _sum and _count", function()
    local prom = prometheus.new{ http_stats = false }
    local h = prom:histogram("rt_seconds", "Response time", { 1, 0.1 }, { "host" })
    h:observe({ host = "a" }, 0.05)
    h:observe({ host = "a" }, 0.5)
    h:observe({ host = "a" }, 3)
    local plain = prom:histogram("plain_seconds", "No labels", { 0.5 })
    plain:observe(nil, 0.25)
    assert.are.equal(table.concat({
      "# HELP rt_seconds Response time",
      "# TYPE rt_seconds histogram",
      'rt_seconds_bucket{host="a",le="0.1"} 1',
      'rt_seconds_bucket{host="a",le="1"} 2',
      'rt_seconds_bucket{host="a",le="+Inf"} 3',
      'rt_seconds_sum{host="a"} 3.55',
      'rt_seconds_count{host="a"} 3',
      "# HELP plain_seconds No labels",
      "# TYPE plain_seconds histogram",
      'plain_seconds_bucket{le="0.5"} 1',
      'plain_seconds_bucket{le="+Inf"} 1',
      "plain_seconds_sum 0.25",
      "plain_seconds_count 1",
      "",
    }, "\n"), prom:render())
    parse_exposition(prom:render())
    assert.has_error(function() prom:gauge("rt_seconds_count") end,
      "prometheus: rt_seconds_count clashes with histogram rt_seconds")
  end)

  it("refuses bad names, bad values and counters going down", function()
    local prom = prometheus.new{ http_stats = false }
    assert.has_error(function() prom:gauge("1abc") end, 'prometheus: bad metric name "1abc"')
    assert.has_error(function() prom:gauge("a-b") end, 'prometheus: bad metric name "a-b"')
    assert.has_error(function() prom:gauge("ok", "h", { "__reserved" }) end)
    local g = prom:gauge("ok")
    assert.has_error(function() g:set({ ["bad-label"] = 1 }, 1) end)
    assert.has_error(function() g:set(nil, "NaN") end)
    local c = prom:counter("c_total")
    assert.has_error(function() c:inc(nil, -1) end, "prometheus: counter c_total cannot go down")
    assert.has_error(function() prometheus.new{ namespace = "my-app" } end)
  end)

  it("removes series by a partial label match", function()
    local prom = prometheus.new{ http_stats = false }
    local g = prom:gauge("g", "g")
    g:set({ target = "a", phase = "dns" }, 1)
    g:set({ target = "a", phase = "total" }, 2)
    g:set({ target = "ab", phase = "dns" }, 3)
    assert.are.equal(2, g:remove{ target = "a" })
    assert.are.same({ ['g{phase="dns",target="ab"}'] = 3 }, (parse_exposition(prom:render())))
  end)
end)

describe("plugins.prometheus probes", function()
  it("observes an http response: success, status, phases, timestamp", function()
    local prom = prometheus.new{ http_stats = false }
    local url = BASE .. "/json"
    local res = assert(http.get(url))
    prom:observe("api", url, res)
    local samples, types = parse_exposition(prom:render())
    local t = string.format('target="api",url="%s"', url)
    assert.are.equal(1, samples["luafetch_probe_success{" .. t .. "}"])
    assert.are.equal(200, samples["luafetch_probe_status_code{" .. t .. "}"])
    for _, phase in ipairs{ "dns", "connect", "tls", "ttfb", "total" } do
      local v = samples["luafetch_probe_duration_seconds{" .. t .. ',phase="' .. phase .. '"}']
      assert.is_number(v, phase)
      assert.are.equal(res.timings[phase], v)
    end
    local ts = samples["luafetch_probe_timestamp_seconds{" .. t .. "}"]
    assert.is_true(math.abs(ts - os.time()) <= 2)
    assert.is_nil(samples["luafetch_tls_cert_expiry_timestamp_seconds{" .. t .. "}"]) -- http
    assert.are.equal(1, samples['luafetch_requests_total{result="success"}'])
    assert.are.equal(1, samples["luafetch_request_duration_seconds_count"])
    assert.are.equal("gauge", types.luafetch_probe_success)
    assert.are.equal("counter", types.luafetch_requests_total)
    assert.are.equal("histogram", types.luafetch_request_duration_seconds)
  end)

  it("an https probe reports the certificate's expiry", function()
    assert.truthy(TLS_GOOD and CERTS, "FIXTURE_TLS_GOOD / FIXTURE_CERTS not set")
    local prom = prometheus.new{ http_stats = false }
    local url = TLS_GOOD .. "/json"
    local res = assert(http.get(url, { ca_file = CERTS .. "/ca.pem" }))
    prom:observe("secure", url, res)
    local samples = parse_exposition(prom:render())
    local key = string.format('luafetch_tls_cert_expiry_timestamp_seconds{target="secure",url="%s"}', url)
    assert.are.equal(res.tls.expires, samples[key])
    assert.is_true(samples[key] > os.time())
  end)

  it("a failure: success 0, status 0, the kind counted; stale phases dropped", function()
    local prom = prometheus.new{ http_stats = false }
    local url = "http://127.0.0.1:1/"
    prom:observe("db", url, { status = 200, timings = { dns = 0, connect = 0.1, tls = 0, ttfb = 0.2, total = 0.3 } })
    local res, err, kind = http.get(url, { timeout = 5 })
    assert.is_nil(res)
    prom:observe("db", url, res, err, kind)
    local samples = parse_exposition(prom:render())
    local t = 'target="db",url="http://127.0.0.1:1/"'
    assert.are.equal(0, samples["luafetch_probe_success{" .. t .. "}"])
    assert.are.equal(0, samples["luafetch_probe_status_code{" .. t .. "}"])
    assert.is_nil(samples["luafetch_probe_duration_seconds{" .. t .. ',phase="ttfb"}'])
    assert.are.equal(1, samples['luafetch_requests_total{result="' .. kind .. '"}'])
    assert.are.equal(1, samples['luafetch_requests_total{result="success"}'])
  end)

  it("a table with `success` wins over the status (a monitor's own verdict)", function()
    local prom = prometheus.new{ http_stats = false }
    prom:observe("body-check", "http://x/", { success = false, status = 200, kind = "body", elapsed = 0.25 })
    local samples = parse_exposition(prom:render())
    local t = 'target="body-check",url="http://x/"'
    assert.are.equal(0, samples["luafetch_probe_success{" .. t .. "}"])
    assert.are.equal(200, samples["luafetch_probe_status_code{" .. t .. "}"])
    assert.are.equal(0.25, samples["luafetch_probe_duration_seconds{" .. t .. ',phase="total"}'])
    assert.are.equal(1, samples['luafetch_requests_total{result="body"}'])
  end)

  it("forget drops a target's series; the counters stay", function()
    local prom = prometheus.new{ http_stats = false }
    prom:observe("a", "http://a/", { success = true, status_code = 200, elapsed = 0.1 })
    prom:observe("b", "http://b/", { success = true, status_code = 204, elapsed = 0.1 })
    prom:forget("a")
    local text = prom:render()
    assert.is_nil(text:find('target="a"', 1, true))
    assert.truthy(text:find('luafetch_probe_status_code{target="b",url="http://b/"} 204', 1, true))
    assert.truthy(text:find('luafetch_requests_total{result="success"} 2', 1, true))
  end)

  it("observes many targets in time linear in their number", function()
    -- each observation used to scan every duration series for the target's stale phases: 4000
    -- targets took tens of seconds; by key it is a fraction of one
    local prom = prometheus.new{ http_stats = false }
    local timings = { dns = 0, connect = 0.001, tls = 0, ttfb = 0.002, total = 0.003 }
    local started = os.clock()
    for i = 1, 4000 do
      prom:observe("t" .. i, "http://h/" .. i, { status = 200, timings = timings })
    end
    prom:observe("t1", "http://h/1", { status = 200, timings = { total = 0.5 } })
    local seconds = os.clock() - started
    assert.is_true(seconds < 3, string.format("4000 targets took %.1fs of CPU", seconds))
    local duration = prom.probe.duration
    assert.are.equal(0.5, duration:get{ target = "t1", url = "http://h/1", phase = "total" })
    assert.is_nil(duration:get{ target = "t1", url = "http://h/1", phase = "ttfb" })
    assert.are.equal(0.002, duration:get{ target = "t2", url = "http://h/2", phase = "ttfb" })
  end)

  it("per_target = false keeps only the aggregate series; namespace renames them", function()
    local prom = prometheus.new{ namespace = "crawl", per_target = false, http_stats = false }
    prom:observe("a", "http://a/", { success = true, status_code = 200, elapsed = 0.1 })
    local samples = parse_exposition(prom:render())
    for series in pairs(samples) do
      assert.is_nil(series:find("probe", 1, true), series)
      assert.truthy(series:find("^crawl_"), series)
    end
    assert.are.equal(1, samples['crawl_requests_total{result="success"}'])
  end)

  it("mirrors http.stats() as counters and gauges", function()
    local prom = prometheus.new()
    assert(http.get(BASE .. "/json"))
    local samples, types = parse_exposition(prom:render())
    local s = http.stats()
    assert.are.equal(s.requests, samples.luafetch_http_requests_total)
    assert.are.equal(s.connections_opened, samples.luafetch_connections_opened_total)
    assert.are.equal(s.connections_reused, samples.luafetch_connections_reused_total)
    assert.are.equal(s.dns_lookups, samples.luafetch_dns_lookups_total)
    assert.are.equal(s.dns_hits, samples.luafetch_dns_cache_hits_total)
    assert.are.equal(s.in_flight, samples.luafetch_http_in_flight)
    assert.are.equal("counter", types.luafetch_connections_opened_total)
    assert.are.equal("gauge", types.luafetch_http_in_flight)
    assert.is_true(samples.luafetch_http_requests_total >= 1)
  end)
end)

describe("plugins.prometheus as a fetcher plugin", function()
  it("records every result with its phases, the run, and retries", function()
    local prom = prometheus.new()
    local f = fetcher.new{ plugins = { prom }, max_retries = 1, backoff_factor = 0.01, jitter = 0,
                           timeout = 5, logger = logger.new{ level = "ERROR" } }
    local ok_url, bad_url, down_url = BASE .. "/json", BASE .. "/status/503", "http://127.0.0.1:1/x"
    local results = f:fetch_urls{ ok_url, bad_url, down_url }
    assert.is_true(results[ok_url].success)
    local samples = parse_exposition(prom:render())
    local function t(url) return string.format('target="%s",url="%s"', url, url) end
    assert.are.equal(1, samples["luafetch_probe_success{" .. t(ok_url) .. "}"])
    assert.are.equal(0, samples["luafetch_probe_success{" .. t(bad_url) .. "}"])
    assert.are.equal(0, samples["luafetch_probe_success{" .. t(down_url) .. "}"])
    assert.are.equal(200, samples["luafetch_probe_status_code{" .. t(ok_url) .. "}"])
    assert.are.equal(503, samples["luafetch_probe_status_code{" .. t(bad_url) .. "}"])
    assert.are.equal(0, samples["luafetch_probe_status_code{" .. t(down_url) .. "}"])
    for _, phase in ipairs{ "dns", "connect", "tls", "ttfb", "total" } do
      assert.is_number(samples["luafetch_probe_duration_seconds{" .. t(ok_url) .. ',phase="' .. phase .. '"}'], phase)
    end
    assert.are.equal(results[ok_url].elapsed,
      samples["luafetch_probe_duration_seconds{" .. t(ok_url) .. ',phase="total"}'])
    -- the connection failure had no response: only its total
    assert.is_nil(samples["luafetch_probe_duration_seconds{" .. t(down_url) .. ',phase="ttfb"}'])
    assert.is_number(samples["luafetch_probe_duration_seconds{" .. t(down_url) .. ',phase="total"}'])
    assert.are.equal(1, samples['luafetch_requests_total{result="success"}'])
    assert.are.equal(1, samples['luafetch_requests_total{result="status"}'])
    assert.are.equal(1, samples['luafetch_requests_total{result="connect"}'])
    assert.are.equal(3, samples.luafetch_request_duration_seconds_count)
    assert.are.equal(2, samples.luafetch_retries_total) -- 503 and connect, once each
    assert.are.equal(1, samples['luafetch_last_run_urls{result="succeeded"}'])
    assert.are.equal(2, samples['luafetch_last_run_urls{result="failed"}'])
    assert.is_number(samples.luafetch_last_run_duration_seconds)
    -- a second run adds to the counters and replaces the gauges
    f:fetch_urls{ ok_url }
    samples = parse_exposition(prom:render())
    assert.are.equal(2, samples['luafetch_requests_total{result="success"}'])
    assert.are.equal(1, samples['luafetch_last_run_urls{result="succeeded"}'])
    assert.are.equal(0, samples['luafetch_last_run_urls{result="failed"}'])
  end)

  it("loads by name", function()
    local f = fetcher.new{ plugins = { "prometheus" } }
    local results, stats = f:fetch_urls{ BASE .. "/json" }
    assert.is_true(results[BASE .. "/json"].success)
    assert.are.equal(0, stats.hook_errors)
  end)
end)

describe("plugins.prometheus textfile", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p '" .. dir .. "'")
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function listing()
    local p = io.popen("ls -A '" .. dir .. "'")
    local names = lines_of(p:read("a"))
    p:close()
    return names
  end

  it("writes the exposition atomically: a temporary file renamed into place", function()
    local prom = prometheus.new{ http_stats = false }
    prom:gauge("g", "g"):set(nil, 1)
    local path = dir .. "/luafetch.prom"
    assert.is_true(prom:write_textfile(path))
    assert.are.equal(prom:render(), read_file(path))
    prom:gauge("g"):set(nil, 2)
    assert.is_true(prom:write_textfile(path))
    assert.are.equal("# HELP g g\n# TYPE g gauge\ng 2\n", read_file(path))
    assert.are.same({ "luafetch.prom" }, listing()) -- no temporary file left
  end)

  it("replaces the file by rename, so a reader holding the old one sees it whole", function()
    local prom = prometheus.new{ http_stats = false }
    prom:gauge("g", "g"):set(nil, 1)
    local path = dir .. "/m.prom"
    assert(prom:write_textfile(path))
    local old = assert(io.open(path))
    prom:gauge("g"):set(nil, 2)
    assert(prom:write_textfile(path))
    assert.are.equal("# HELP g g\n# TYPE g gauge\ng 1\n", old:read("a")) -- the old inode
    old:close()
  end)

  it("returns nil and a message when it cannot write", function()
    local prom = prometheus.new{ http_stats = false }
    local ok, err = prom:write_textfile(dir .. "/missing/dir/x.prom")
    assert.is_nil(ok)
    assert.truthy(err:find("missing", 1, true), err)
    assert.are.same({}, listing())
  end)

  it("textfile = path writes at every on_finish", function()
    local path = dir .. "/fetch.prom"
    local f = fetcher.new{ plugins = { prometheus.new{ textfile = path } } }
    f:fetch_urls{ BASE .. "/json" }
    local samples = parse_exposition(read_file(path))
    assert.are.equal(1, samples['luafetch_requests_total{result="success"}'])
    assert.is_number(samples.luafetch_connections_opened_total)
  end)
end)

describe("plugins.prometheus handler", function()
  it("answers GET with the exposition and its content type", function()
    local prom = prometheus.new{ http_stats = false }
    prom:gauge("up", "up"):set(nil, 1)
    local h = prom:handler()
    local res = h{ method = "GET", path = "/metrics", headers = {} }
    assert.are.equal(200, res.status)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    assert.are.equal("# HELP up up\n# TYPE up gauge\nup 1\n", res.body)
    -- rendered per request
    prom:gauge("up"):set(nil, 0)
    assert.truthy(h{ method = "GET", path = "/metrics" }.body:find("up 0", 1, true))
  end)

  it("with a path, other paths get 404; other methods get 405", function()
    local h = prometheus.new{ http_stats = false }:handler{ path = "/metrics" }
    assert.are.equal(404, h{ method = "GET", path = "/" }.status)
    assert.are.equal(200, h{ method = "HEAD", path = "/metrics" }.status)
    local res = h{ method = "POST", path = "/metrics" }
    assert.are.equal(405, res.status)
    assert.are.equal("GET, HEAD", res.headers.allow)
  end)

  -- registered once http.serve exists (it is being built alongside this plugin)
  local serve_ok, probe = pcall(http.serve, { host = "127.0.0.1", port = 0, handler = function() end })
  if serve_ok then pcall(function() probe:close() end) end
  local it_serve = serve_ok and it or function() end
  it_serve("is served on /metrics by http.serve", function()
    local prom = prometheus.new()
    prom:observe("api", BASE .. "/json", assert(http.get(BASE .. "/json")))
    local srv = http.serve{ host = "127.0.0.1", port = 0, handler = prom:handler{ path = "/metrics" } }
    local res = assert(http.get("http://127.0.0.1:" .. srv.port .. "/metrics"))
    srv:close()
    assert.are.equal(200, res.status)
    assert.truthy(res.headers["content-type"]:find("text/plain; version=0.0.4", 1, true))
    local samples = parse_exposition(res.body)
    assert.are.equal(1, samples[string.format('luafetch_probe_success{target="api",url="%s/json"}', BASE)])
    task.sleep(0)
  end)
end)
