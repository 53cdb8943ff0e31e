-- fetcher_spec.lua: lua/fetcher.lua against the fixture server (FIXTURE_URL).
-- Runs inside the host (`luafetch test`), so http and task are the real ones.

local http = require "http"
local task = require "task"
local fetcher = require "fetcher"
local logger = require "plugins.logger"
local breaker = require "plugins.breaker"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
-- the program under test (run_specs.sh exports it)
local BIN = os.getenv("LUAFETCH_BIN") or "build/luafetch"

local function unique(prefix)
  return string.format("%s-%d-%d", prefix, os.time(), math.random(1, 1000000000))
end

local function server_stats()
  local res = assert(http.get(BASE .. "/stats"))
  return assert(res:json())
end

local function reset_server()
  assert(http.get(BASE .. "/stats/reset"))
end

local function flaky_count(key)
  local res = assert(http.get(BASE .. "/flaky-count/" .. key))
  return assert(res:json()).count
end

--- A fetcher with fast retries and a logger that keeps its lines.
local function quick(opts)
  local log, lines = logger.capture{ level = "DEBUG" }
  local o = { backoff_factor = 0.01, max_backoff = 1, jitter = 0, logger = log,
              timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return fetcher.new(o), lines
end

local function count_matching(lines, pattern)
  local n = 0
  for _, line in ipairs(lines) do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

describe("fetcher concurrency", function()
  it("never has more than max_concurrent requests in flight (server side)", function()
    reset_server()
    local urls = {}
    for i = 1, 30 do urls[i] = BASE .. "/inflight?delay=0.1&i=" .. i end
    local f = quick{ max_concurrent = 5 }
    local results, stats = f:fetch_urls(urls)
    assert.are.equal(30, stats.count)
    assert.are.equal(30, stats.succeeded)
    local s = server_stats()
    assert.are.equal(5, s.max_inflight)
    for _, url in ipairs(urls) do
      assert.is_true(results[url].success)
      assert.is_true(tonumber(results[url].body) <= 5)
    end
  end)

  it("keeps to max_per_host on one host", function()
    reset_server()
    local urls = {}
    for i = 1, 12 do urls[i] = BASE .. "/inflight?delay=0.1&i=" .. i end
    local f = quick{ max_concurrent = 10, max_per_host = 3 }
    local _, stats = f:fetch_urls(urls)
    assert.are.equal(12, stats.succeeded)
    assert.are.equal(3, server_stats().max_inflight)
    assert.is_nil(next(f.host_slots)) -- idle hosts are forgotten
  end)

  it("starts URLs in list order, with and without max_per_host", function()
    for _, per_host in ipairs{ false, 2 } do
      local started = {}
      local urls = {}
      for i = 1, 25 do urls[i] = BASE .. "/delay/0.0" .. (i % 3) .. "?i=" .. i end
      local f = quick{ max_concurrent = 4, max_per_host = per_host or nil, plugins = {
        { on_request = function(req) started[#started + 1] = req.index end },
      } }
      f:fetch_urls(urls)
      assert.are.equal(25, #started)
      for i = 1, 25 do assert.are.equal(i, started[i]) end
    end
  end)

  it("works through the list in chunks of chunk_size", function()
    reset_server()
    local urls = {}
    for i = 1, 10 do urls[i] = BASE .. "/inflight?delay=0.05&i=" .. i end
    local f = quick{ max_concurrent = 10, chunk_size = 3 }
    local _, stats = f:fetch_urls(urls)
    assert.are.equal(10, stats.succeeded)
    assert.are.equal(3, server_stats().max_inflight)
  end)
end)

describe("fetcher results", function()
  it("has the result shape of the contract", function()
    local ok_url, missing = BASE .. "/json", BASE .. "/status/404"
    local results, stats, list = quick():fetch_urls{ ok_url, missing }
    local ok = results[ok_url]
    assert.is_true(ok.success)
    assert.are.equal(200, ok.status_code)
    assert.is_nil(ok.error)
    assert.is_nil(ok.kind)
    assert.are.equal(1, ok.attempts)
    assert.is_true(ok.elapsed > 0 and ok.elapsed < 5)
    assert.are.equal("application/json", ok.headers["content-type"]:match("^[^;]+"))
    assert.are.equal(42, require("cjson").decode(ok.body).n)
    local bad = results[missing]
    assert.is_false(bad.success)
    assert.are.equal(404, bad.status_code)
    assert.are.equal("status", bad.kind)
    assert.matches("^HTTP 404", bad.error)
    assert.are.equal(1, bad.attempts) -- 404 is not retried
    assert.are.equal(ok, list[1])
    assert.are.equal(bad, list[2])
    assert.are.equal(1, stats.succeeded)
    assert.are.equal(1, stats.failed)
  end)

  it("sends request tables with method, headers and body", function()
    local f = quick{ headers = { ["X-Default"] = "d" } }
    local res = f:fetch{ url = BASE .. "/echo", method = "PUT", body = "hello",
                         headers = { ["X-Test"] = "yes" } }
    assert.is_true(res.success)
    local echo = require("cjson").decode(res.body)
    assert.are.equal("PUT", echo.method)
    assert.are.equal("hello", echo.body)
    assert.are.equal("yes", echo.headers["x-test"])
    assert.are.equal("d", echo.headers["x-default"])
  end)

  it("keys results by the entry's key when given", function()
    local results = quick():fetch_urls{
      { url = BASE .. "/echo", method = "POST", body = "a", key = "first" },
      { url = BASE .. "/echo", method = "POST", body = "b", key = "second" },
    }
    assert.are.equal("a", require("cjson").decode(results.first.body).body)
    assert.are.equal("b", require("cjson").decode(results.second.body).body)
  end)

  it("drops bodies when keep_body is false but still counts bytes", function()
    local res = quick{ keep_body = false }:fetch(BASE .. "/bytes/1000")
    assert.is_nil(res.body)
    assert.are.equal(1000, res.bytes)
  end)

  it("rejects a bad entry before fetching anything", function()
    assert.has_error(function() quick():fetch_urls{ BASE .. "/json", 42 } end)
  end)

  it("reports transport failures with their kind", function()
    local res = quick{ max_retries = 0 }:fetch("http://127.0.0.1:1/")
    assert.is_false(res.success)
    assert.are.equal("connect", res.kind)
    assert.is_string(res.error)
    assert.is_nil(res.status_code)
  end)
end)

describe("fetcher retries", function()
  it("retries a flaky endpoint until it succeeds", function()
    local key = unique("flaky")
    local res = quick{ max_retries = 3 }:fetch(BASE .. "/flaky/" .. key .. "?fail=2&status=503")
    assert.is_true(res.success)
    assert.are.equal(3, res.attempts)
    assert.are.equal(3, flaky_count(key))
  end)

  it("retries resets (kind closed)", function()
    local key = unique("reset")
    -- two resets: the host itself retries a reset on a reused pooled connection
    -- once, so at least one of them reaches the fetcher's retry policy.
    local res = quick{ max_retries = 3 }:fetch(BASE .. "/flaky/" .. key .. "?fail=2&mode=reset")
    assert.is_true(res.success)
    assert.is_true(res.attempts >= 2, "attempts " .. res.attempts)
    assert.are.equal(3, flaky_count(key))
  end)

  it("gives up after max_retries with the last response", function()
    local key = unique("exhaust")
    local f = quick{ max_retries = 2 }
    local res = f:fetch(BASE .. "/flaky/" .. key .. "?fail=10&status=502")
    assert.is_false(res.success)
    assert.are.equal(3, res.attempts)
    assert.are.equal(502, res.status_code)
    assert.are.equal(3, flaky_count(key))
  end)

  it("retries each of 429 500 502 503 504 and nothing else", function()
    for _, status in ipairs{ 429, 500, 502, 503, 504, 400, 404, 501 } do
      local key = unique("st" .. status)
      local res = quick{ max_retries = 1 }:fetch(
        BASE .. "/flaky/" .. key .. "?fail=1&status=" .. status)
      local retryable = status ~= 400 and status ~= 404 and status ~= 501
      assert.are.equal(retryable and 2 or 1, res.attempts, "status " .. status)
      assert.are.equal(retryable, res.success, "status " .. status)
    end
  end)

  it("honours Retry-After (seconds)", function()
    local key = unique("ra")
    local started = task.now()
    local res = quick{ max_retries = 2 }:fetch(
      BASE .. "/flaky/" .. key .. "?fail=1&status=503&retry_after=1")
    local elapsed = task.now() - started
    assert.is_true(res.success)
    assert.are.equal(2, res.attempts)
    assert.is_true(elapsed >= 1.0, "elapsed " .. elapsed)
    assert.is_true(elapsed < 3, "elapsed " .. elapsed)
  end)

  it("caps Retry-After at max_backoff", function()
    local key = unique("racap")
    local started = task.now()
    local res = quick{ max_retries = 1, max_backoff = 0.2 }:fetch(
      BASE .. "/flaky/" .. key .. "?fail=1&status=429&retry_after=30")
    assert.is_true(res.success)
    assert.is_true(task.now() - started < 2)
  end)

  it("never retries a POST", function()
    local key = unique("post")
    local res = quick{ max_retries = 3 }:fetch{
      url = BASE .. "/flaky/" .. key .. "?fail=1&status=503", method = "POST", body = "x" }
    assert.is_false(res.success)
    assert.are.equal(1, res.attempts)
    assert.are.equal(503, res.status_code)
    assert.are.equal(1, flaky_count(key))
  end)

  it("retries PUT and DELETE (idempotent)", function()
    for _, method in ipairs{ "PUT", "DELETE" } do
      local key = unique(method)
      local res = quick{ max_retries = 2 }:fetch{
        url = BASE .. "/flaky/" .. key .. "?fail=1&status=503", method = method }
      assert.is_true(res.success, method)
      assert.are.equal(2, res.attempts, method)
    end
  end)

  it("counts retries in the stats and logs them", function()
    local key = unique("stats")
    local f, lines = quick{ max_retries = 3 }
    local _, stats = f:fetch_urls{ BASE .. "/flaky/" .. key .. "?fail=2" }
    assert.are.equal(2, stats.retries)
    assert.are.equal(3, stats.attempts)
    assert.are.equal(2, count_matching(lines, "retry %d/3 of GET"))
  end)

  it("stops at the deadline, retries and pauses included", function()
    local started = task.now()
    local res = quick{ max_retries = 10, deadline = 0.4, timeout = 5 }:fetch(BASE .. "/silence")
    local elapsed = task.now() - started
    assert.is_false(res.success)
    assert.are.equal("timeout", res.kind)
    assert.is_true(elapsed >= 0.35 and elapsed < 2, "elapsed " .. elapsed)
  end)
end)

describe("fetcher per-URL timeouts", function()
  it("applies the first matching pattern", function()
    local f = quick{ timeout = 5, max_retries = 0,
                     timeouts = { ["/delay/"] = 0.2, ["/json$"] = 3 } }
    local slow, fast = BASE .. "/delay/2", BASE .. "/json"
    local started = task.now()
    local results = f:fetch_urls{ slow, fast }
    assert.is_true(task.now() - started < 1.5)
    assert.are.equal("timeout", results[slow].kind)
    assert.is_true(results[fast].success)
  end)

  it("orders the map form longest pattern first", function()
    local f = quick{ timeout = 9, timeouts = { ["/api/"] = 1, ["/api/slow"] = 7, ["/api/slow/x"] = 8 } }
    assert.are.equal(8, f:timeout_for("http://h/api/slow/x"))
    assert.are.equal(7, f:timeout_for("http://h/api/slow"))
    assert.are.equal(1, f:timeout_for("http://h/api/fast"))
    assert.are.equal(9, f:timeout_for("http://h/other"))
  end)

  it("keeps the order of the array form", function()
    local f = quick{ timeout = 9, timeouts = { { "/api/", 1 }, { "/api/slow", 7 } } }
    assert.are.equal(1, f:timeout_for("http://h/api/slow"))
  end)

  it("lets a request table's own timeout win", function()
    local f = quick{ timeout = 5, max_retries = 0, timeouts = { ["/delay/"] = 5 } }
    local res = f:fetch{ url = BASE .. "/delay/2", timeout = 0.2 }
    assert.are.equal("timeout", res.kind)
    assert.is_true(res.elapsed < 1.5)
  end)

  it("rejects a bad pattern", function()
    assert.has_error(function() quick{ timeouts = { ["[a"] = 1 } } end)
  end)
end)

describe("fetcher hooks", function()
  it("calls hooks in order, plugin by plugin", function()
    local calls = {}
    local function recorder(name)
      return {
        name = name,
        on_request = function(req) calls[#calls + 1] = name .. ":request:" .. req.attempt end,
        on_response = function(_, res) calls[#calls + 1] = name .. ":response:" .. res.status end,
        on_error = function(_, _, kind) calls[#calls + 1] = name .. ":error:" .. kind end,
        on_result = function(url) calls[#calls + 1] = name .. ":result:" .. url:match("[^/]+$") end,
        on_finish = function(results, stats)
          calls[#calls + 1] = name .. ":finish:" .. stats.count .. ":" .. tostring(results ~= nil)
        end,
      }
    end
    local f = quick{ max_concurrent = 1, max_retries = 0, plugins = { recorder("A"), recorder("B") } }
    f:fetch_urls{ BASE .. "/json", "http://127.0.0.1:1/x" }
    assert.are.same({
      "A:request:1", "B:request:1", "A:response:200", "B:response:200",
      "A:result:json", "B:result:json",
      "A:request:1", "B:request:1", "A:error:connect", "B:error:connect",
      "A:result:x", "B:result:x",
      "A:finish:2:true", "B:finish:2:true",
    }, calls)
  end)

  it("reports a raising hook once, with its plugin's name, and goes on", function()
    local results_seen = 0
    local bad = { name = "exploder" }
    for _, hook in ipairs(fetcher.HOOKS) do bad[hook] = function() error("boom in " .. hook) end end
    local good = { name = "good", on_result = function() results_seen = results_seen + 1 end }
    local f, lines = quick{ plugins = { bad, good } }
    local urls = { BASE .. "/json", BASE .. "/bytes/5", BASE .. "/bytes/6" }
    local results, stats = f:fetch_urls(urls)
    for _, url in ipairs(urls) do assert.is_true(results[url].success) end
    assert.are.equal(3, results_seen)
    assert.are.equal(1, count_matching(lines, "plugin 'exploder' failed in on_request: .*boom in on_request"))
    assert.are.equal(1, count_matching(lines, "plugin 'exploder' failed in on_response"))
    assert.are.equal(1, count_matching(lines, "plugin 'exploder' failed in on_result"))
    assert.are.equal(1, count_matching(lines, "plugin 'exploder' failed in on_finish"))
    assert.are.equal(1, count_matching(lines, "plugin 'exploder' failed in on_start"))
    assert.are.equal(0, count_matching(lines, "plugin 'good'"))
    assert.are.equal(11, stats.hook_errors) -- on_start + 3 URLs x 3 hooks + on_finish
  end)

  it("lets on_request add headers", function()
    local f = quick{ plugins = { { on_request = function(req)
      req.headers = req.headers or {}
      req.headers["X-Token"] = "secret"
    end } } }
    local res = f:fetch(BASE .. "/echo")
    assert.are.equal("secret", require("cjson").decode(res.body).headers["x-token"])
  end)

  it("loads plugins by name", function()
    local f = quick{ plugins = { "metrics" } }
    assert.are.equal("metrics", f.plugins[1].name)
  end)
end)

describe("fetcher circuit breaker", function()
  it("opens, fails fast, half-opens and closes", function()
    local b = breaker.new{ failure_threshold = 2, open_seconds = 0.3 }
    local f = quick{ breaker = b, max_retries = 0, max_concurrent = 1 }
    local host = breaker.host_of(BASE)
    for _ = 1, 2 do
      local r = f:fetch(BASE .. "/status/500")
      assert.are.equal(500, r.status_code)
    end
    assert.are.equal("open", b:state(host))
    local key = unique("cb")
    local refused = f:fetch(BASE .. "/flaky/" .. key .. "?fail=0")
    assert.is_false(refused.success)
    assert.are.equal("circuit_open", refused.kind)
    assert.are.equal(0, flaky_count(key)) -- nothing was sent
    task.sleep(0.35)
    assert.are.equal("half_open", b:state(host))
    local probe = f:fetch(BASE .. "/flaky/" .. key .. "?fail=0")
    assert.is_true(probe.success)
    assert.are.equal("closed", b:state(host))
    assert.are.equal(1, flaky_count(key))
  end)

  it("reopens when the half-open probe fails", function()
    local b = breaker.new{ failure_threshold = 1, open_seconds = 0.2 }
    local f = quick{ breaker = b, max_retries = 0 }
    local host = breaker.host_of(BASE)
    f:fetch(BASE .. "/status/503")
    assert.are.equal("open", b:state(host))
    task.sleep(0.25)
    f:fetch(BASE .. "/status/500")
    assert.are.equal("open", b:state(host))
    assert.are.equal(2, b:states()[host].times_opened)
  end)

  it("does not retry a refused request and shows the state in the stats", function()
    local b = breaker.new{ failure_threshold = 1, open_seconds = 10 }
    local f = quick{ breaker = b, max_retries = 3, max_concurrent = 1 }
    local key = unique("cbstats")
    -- the first URL fails 3 times: the breaker opens after the first failure,
    -- so the retries are refused and the second URL fails fast too.
    local results, stats = f:fetch_urls{
      BASE .. "/flaky/" .. key .. "?fail=5&status=503", BASE .. "/json" }
    assert.are.equal(1, flaky_count(key))
    assert.are.equal("circuit_open", results[BASE .. "/json"].kind)
    assert.are.equal("open", stats.breaker[breaker.host_of(BASE)].state)
    assert.is_true(stats.rejected >= 2)
  end)
end)

describe("fetcher cancellation", function()
  it("cancels the workers and their requests with the task that fetches", function()
    local before = http.stats().in_flight
    local b = breaker.new{ failure_threshold = 1, open_seconds = 0 }
    local f = quick{ max_concurrent = 4, timeout = 30, breaker = b }
    local host = breaker.host_of(BASE)
    f:fetch(BASE .. "/status/500") -- opens; open_seconds = 0: next call is a probe
    assert.are.equal("half_open", b:state(host))
    local t = task.spawn(function()
      return f:fetch_urls{ BASE .. "/silence", BASE .. "/silence?2", BASE .. "/silence?3" }
    end)
    task.sleep(0.2)
    assert.are.equal(before + 1, http.stats().in_flight) -- the one probe
    t:cancel()
    task.sleep(0.05)
    assert.are.equal(before, http.stats().in_flight)
    assert.is_true((b:allow(host))) -- the canceled probe gave its slot back
  end)
end)

describe("fetcher streaming (each)", function()
  it("hands on every result from an iterator", function()
    local n, seen, indexes = 200, 0, {}
    local i = 0
    local f = quick{ max_concurrent = 20 }
    local stats = f:each(function()
      i = i + 1
      if i <= n then return BASE .. "/bytes/" .. (i % 7 + 1) end
    end, function(url, result, index)
      seen = seen + 1
      assert.is_true(result.success)
      assert.are.equal(index % 7 + 1, result.bytes)
      assert.are.equal(BASE .. "/bytes/" .. (index % 7 + 1), url)
      indexes[index] = (indexes[index] or 0) + 1
    end)
    assert.are.equal(n, seen)
    assert.are.equal(n, stats.count)
    for k = 1, n do assert.are.equal(1, indexes[k]) end
  end)

  it("turns a bad entry into an invalid result", function()
    local kinds = {}
    quick():each({ BASE .. "/json", 42 }, function(_, result, index) kinds[index] = result.kind or "ok" end)
    assert.are.same({ "ok", "invalid" }, kinds)
  end)

  it("stops starting URLs and raises when on_result raises", function()
    local started = 0
    local f = quick{ max_concurrent = 2, plugins = { { on_request = function() started = started + 1 end } } }
    local urls = {}
    for k = 1, 50 do urls[k] = BASE .. "/bytes/" .. k end
    assert.has_error(function()
      f:each(urls, function() error("stop here") end)
    end)
    assert.is_true(started < 10, "started " .. started)
  end)
end)

describe("fetcher sources (the each source interface)", function()
  it("runs the documented io.lines example to the end of the file", function()
    -- docs/fetcher.md, "Streaming a million URLs", with the file names of this test. More workers
    -- than lines: every idle worker asks the source again after it ran dry, and an io.lines
    -- iterator raises "file is already closed" when called after the end of its file.
    local urls_txt, out_jsonl = os.tmpname(), os.tmpname()
    local file = assert(io.open(urls_txt, "w"))
    for k = 1, 30 do file:write(BASE, "/bytes/", k, "\n") end
    file:write(BASE, "/status/404\n")
    file:close()
    local failures = {}
    local sink = require("plugins.jsonl").new{ path = out_jsonl }
    local f = fetcher.new{ max_concurrent = 200, keep_body = false, plugins = { sink } }
    local stats = f:each(io.lines(urls_txt), function(url, result)
      if not result.success then failures[#failures + 1] = url .. " " .. result.error end
    end)
    sink.close()
    assert.are.equal(31, stats.count)
    assert.are.equal(30, stats.succeeded)
    assert.are.same({ BASE .. "/status/404 HTTP 404 Not Found" }, failures)
    local lines = 0
    for _ in io.lines(out_jsonl) do lines = lines + 1 end
    assert.are.equal(31, lines)
    os.remove(urls_txt)
    os.remove(out_jsonl)
  end)

  it("never calls a source again once it returned nil", function()
    local calls, after_end = 0, 0
    local i = 0
    local function source()
      calls = calls + 1
      if i < 0 then after_end = after_end + 1; return nil end
      i = i + 1
      if i > 5 then i = -1; return nil end
      return BASE .. "/bytes/" .. i
    end
    local stats = quick{ max_concurrent = 8 }:each(source)
    assert.are.equal(5, stats.count)
    assert.are.equal(6, calls)
    assert.are.equal(0, after_end)
  end)

  it("takes entries from an object with a next method, and hands on what it gave", function()
    local queue = { items = { BASE .. "/bytes/3", { url = BASE .. "/echo", method = "post", body = "x",
                                                    key = "posted" } },
                    taken = 0, called_after_end = false }
    function queue:next()
      if self.taken >= #self.items then
        if self.ended then self.called_after_end = true end
        self.ended = true
        return nil
      end
      self.taken = self.taken + 1
      return self.items[self.taken]
    end
    local got = {}
    local stats = quick{ max_concurrent = 4 }:each(queue, function(key, result, index, item)
      got[index] = { key = key, item = item, status = result.status_code, method = result.method }
    end)
    assert.are.equal(2, stats.count)
    assert.is_false(queue.called_after_end)
    assert.are.same({ key = BASE .. "/bytes/3", item = queue.items[1], status = 200, method = "GET" }, got[1])
    assert.are.equal("posted", got[2].key)
    assert.are.equal(queue.items[2], got[2].item) -- the table the source gave, not a copy
    assert.are.equal("POST", got[2].method)
  end)

  it("refuses a source that is none of the three", function()
    local ok, err = pcall(quick().each, quick(), 42)
    assert.is_false(ok)
    assert.matches("each expects an iterator function, an object with a next method, or an array", err, 1, true)
  end)
end)

describe("fetcher results", function()
  it("builds headers when first read and decodes JSON bodies", function()
    local results = quick():fetch_urls{ BASE .. "/json" }
    local r = results[BASE .. "/json"]
    assert.are.equal("application/json", r.headers["content-type"]:match("^[^;]+"))
    assert.are.equal(r.headers, r.headers) -- built once
    assert.are.equal(42, r:json().n)
    local bare = quick{ keep_body = false }:fetch(BASE .. "/json")
    assert.is_nil(bare.body)
    assert.is_nil((bare:json()))
    assert.is_table(bare.headers)
  end)

  it("shares the response's headers when a hook built them already", function()
    local seen
    local f = quick{ plugins = { { on_response = function(_, res) seen = res.headers end } } }
    local r = f:fetch(BASE .. "/json")
    assert.are.equal(seen, r.headers)
  end)
end)

describe("fetcher thresholds", function()
  it("names the thresholds a run failed in its stats", function()
    local f = quick{ max_retries = 0, thresholds = { p95 = "<30", success_rate = ">0.99" } }
    local _, stats = f:fetch_urls{ BASE .. "/json", BASE .. "/bytes/5", BASE .. "/status/500" }
    assert.is_false(stats.thresholds_ok)
    assert.are.same({ "success_rate>0.99" }, stats.failed_thresholds)
    assert.are.equal(2, #stats.thresholds)
    assert.are.equal("p95<30", stats.thresholds[1].name)
    assert.is_true(stats.thresholds[1].ok)
    assert.are.equal(2 / 3, stats.thresholds[2].value)
  end)

  it("passes when every threshold holds, in each too", function()
    local f = quick{ thresholds = { "success_rate>=1", "count==3" } }
    local stats = f:each({ BASE .. "/bytes/1", BASE .. "/bytes/2", BASE .. "/bytes/3" })
    assert.is_true(stats.thresholds_ok)
    assert.are.same({}, stats.failed_thresholds)
    -- every run starts afresh
    stats = f:each({ BASE .. "/bytes/1" })
    assert.are.same({ "count==3" }, stats.failed_thresholds)
  end)

  it("logs failed thresholds and lets a script exit 1 on them", function()
    local script = os.tmpname()
    local file = assert(io.open(script, "w"))
    file:write([[
local fetcher = require "fetcher"
local f = fetcher.new{ max_retries = 0, thresholds = { success_rate = ">0.99" } }
local _, stats = f:fetch_urls{ arg[1] .. "/json", arg[1] .. "/status/503" }
if not stats.thresholds_ok then return 1 end
]])
    file:close()
    local p = io.popen(BIN .. " run " .. script .. " " .. BASE .. " 2>&1")
    local out = p:read("a")
    local _, how, code = p:close()
    os.remove(script)
    assert.are.equal("exit", how)
    assert.are.equal(1, code)
    assert.matches("threshold success_rate>0.99: FAILED (success_rate = 0.5)", out, 1, true)
    -- the k6-like summary comes first, then the failed thresholds
    local summary = out:find("INFO - 2 URLs: 1 ok, 1 failed (50.0% ok) in ", 1, true)
    assert.truthy(summary, out)
    assert.truthy(summary < out:find("threshold success_rate", 1, true), out)
  end)

  it("refuses a bad threshold at fetcher.new", function()
    local ok, err = pcall(fetcher.new, { thresholds = { p95 = "fast" } })
    assert.is_false(ok)
    assert.matches("fetcher: bad threshold", err, 1, true)
  end)
end)

describe("fetcher entries with streamed bodies", function()
  it("writes each entry's body to its output file; bytes counts it", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. dir))
    local entries = {}
    for i = 1, 5 do entries[i] = { url = BASE .. "/bytes/" .. (1000 * i), output = dir .. "/f" .. i } end
    local got = {}
    entries[6] = { url = BASE .. "/bytes/777", sink = function(c) got[#got + 1] = c end }
    local _, stats, list = quick{ summary = false }:fetch_urls(entries)
    assert.are.equal(6, stats.succeeded)
    for i = 1, 5 do
      local f = assert(io.open(dir .. "/f" .. i, "rb"))
      assert.are.equal(1000 * i, #f:read("a"))
      f:close()
      assert.are.equal(1000 * i, list[i].bytes)
      assert.is_nil(list[i].body)
      os.remove(dir .. "/f" .. i)
    end
    assert.are.equal(777, #table.concat(got))
    assert.are.equal(777, list[6].bytes)
    assert.are.equal(15000 + 777, stats.bytes)
    os.remove(dir)
  end)
end)

describe("fetcher summary line", function()
  it("is logged at INFO when a run ends, after the on_finish hooks, with its figures in stats", function()
    local order = {}
    local log = logger.new{ level = "INFO", format = "{level} {message}",
                            output = function(line) order[#order + 1] = line end }
    local f = fetcher.new{ logger = log, max_retries = 0, plugins = {
      { name = "last", on_finish = function() order[#order + 1] = "on_finish" end } } }
    local urls = { BASE .. "/json", BASE .. "/bytes/10", BASE .. "/status/404", BASE .. "/json?2" }
    local _, stats, list = f:fetch_urls(urls)
    assert.are.equal("on_finish", order[1])
    assert.are.equal(2, #order, table.concat(order, "\n"))
    assert.matches("^INFO 4 URLs: 3 ok, 1 failed %(75%.0%% ok%) in [%d.]+m?s, [%d.]+/s; "
      .. "p50 [%d.]+m?s p95 [%d.]+m?s p99 [%d.]+m?s max [%d.]+m?s; %d/4 reused a connection$", order[2])
    assert.are.equal(order[2], "INFO " .. stats.summary)
    assert.truthy(stats.latency.p50 <= stats.latency.p95 and stats.latency.p95 <= stats.latency.p99
      and stats.latency.p99 <= stats.latency.max)
    local reused = 0
    for _, r in ipairs(list) do if r.reused then reused = reused + 1 end end
    assert.are.equal(reused, stats.reused)
    assert.matches("; " .. reused .. "/4 reused", stats.summary, 1, true)
    -- each ends with one too; an empty run and summary = false print none
    order = {}
    f:each({ BASE .. "/bytes/1" })
    assert.matches("^INFO 1 URL: 1 ok, 0 failed", order[2])
    order = {}
    f:each({})
    assert.are.same({ "on_finish" }, order)
    local quiet = fetcher.new{ logger = log, summary = false }
    order = {}
    local q_stats = quiet:each({ BASE .. "/bytes/1" })
    assert.are.same({}, order)
    assert.is_nil(q_stats.summary) -- nor are the durations kept
    assert.are.equal(1, q_stats.succeeded)
    assert.has_error(function() fetcher.new{ summary = "yes" } end,
      "fetcher.new: summary must be a boolean, got string")
  end)

  it("keeps durations in C samples, sorted on demand", function()
    local samples = require("_stats").samples()
    assert.are.same({}, samples:sorted())
    for _, x in ipairs({ 0.3, 0.1, 0.2, 0.1 }) do samples:add(x) end
    assert.are.equal(4, #samples)
    assert.are.same({ 0.1, 0.1, 0.2, 0.3 }, samples:sorted())
    samples:add(0.05) -- after a sort: sorted again
    assert.are.same({ 0.05, 0.1, 0.1, 0.2, 0.3 }, samples:sorted())
    assert.has_error(function() samples:add("slow") end)
    local m = require("thresholds").metrics_of(5, 4, 1, 2, samples, 2)
    assert.are.equal(0.8, m.success_rate)
    assert.are.equal(0.4, m.reuse_rate)
    assert.are.equal(0.1, m.p50)
    assert.are.equal(0.3, m.max)
    assert.are.equal(2.5, m.rps)
    assert.are.equal(0.2, m.percentile(75))
  end)

  it("folds durations past 65,536 into a histogram: flat memory, percentiles within 0.4%", function()
    local samples = require("_stats").samples()
    local n = 200000
    -- 1 ms .. 200 ms, in an order that is not sorted
    for i = 1, n do samples:add(((i * 7919) % n + 1) / 1000) end
    assert.is_false(samples:exact())
    assert.is_nil(samples:sorted())
    assert.are.equal(n, #samples)
    local count, min, max, sum = samples:stats()
    assert.are.equal(n, count)
    assert.are.equal(0.001, min)
    assert.are.equal(200, max)
    assert.is_true(math.abs(sum - (n + 1) / 2 * n / 1000) < 1e-3, tostring(sum))
    for _, p in ipairs{ 1, 50, 90, 95, 99, 99.9, 100 } do
      local want = math.ceil(p / 100 * n) / 1000
      local got = samples:percentile(p)
      assert.is_true(math.abs(got - want) <= 0.004 * want, ("p%s: %s, want %s"):format(p, got, want))
    end
    local m = require("thresholds").metrics_of(n, n, 0, 0, samples, 1)
    assert.are.equal(200, m.max)
    assert.is_true(math.abs(m.avg - 100.0005) < 1e-6, tostring(m.avg))
    local exact = require("_stats").samples()
    for i = 1, 65536 do exact:add(i) end
    assert.is_true(exact:exact())
    assert.are.equal(32768, exact:percentile(50))
    exact:add(0.5)
    assert.is_false(exact:exact())
    assert.are.equal(0.5, exact:percentile(0.0001), "the smallest is min, not its bucket's middle")
  end)
end)

describe("fetcher environment defaults", function()
  local function env(map) return function(name) return map[name] end end

  it("reads valid values", function()
    local d = fetcher.env_defaults(env{ MAX_CONCURRENT = "7", HTTP_TIMEOUT = "2.5",
                                        MAX_RETRIES = "0", BACKOFF_FACTOR = "0.25",
                                        LOG_LEVEL = "debug" })
    assert.are.same({ max_concurrent = 7, timeout = 2.5, max_retries = 0, backoff_factor = 0.25 }, d)
    assert.are.same({}, fetcher.env_defaults(env{ MAX_CONCURRENT = "" }))
  end)

  for var, bad in pairs{ MAX_CONCURRENT = "abc", HTTP_TIMEOUT = "-1", MAX_RETRIES = "1.5",
                         BACKOFF_FACTOR = "fast", LOG_LEVEL = "LOUD" } do
    it("rejects " .. var .. "=" .. bad .. " with exit code 2", function()
      local ok, err = pcall(fetcher.env_defaults, env{ [var] = bad })
      assert.is_false(ok)
      assert.are.equal(2, err.exit_code)
      assert.matches(var, err.message)
      assert.matches("'" .. bad .. "'", err.message, 1, true)
    end)
  end

  it("makes the program exit 2 with the message on a bad value", function()
    local p = io.popen("MAX_CONCURRENT=abc " .. BIN .. " -e 'require(\"fetcher\").new{}' 2>&1")
    local out = p:read("a")
    local _, how, code = p:close()
    assert.are.equal("exit", how)
    assert.are.equal(2, code)
    assert.matches("MAX_CONCURRENT must be a positive integer, got 'abc'", out, 1, true)
  end)

  it("uses valid values as the fetcher's defaults", function()
    local p = io.popen("MAX_CONCURRENT=7 HTTP_TIMEOUT=2.5 MAX_RETRIES=1 BACKOFF_FACTOR=0.25 "
      .. BIN .. " -e 'local f = require(\"fetcher\").new{} "
      .. "print(f.max_concurrent, f.timeout, f.policy.max_retries, f.policy.backoff_factor)' 2>&1")
    local out = p:read("a")
    local _, how, code = p:close()
    assert.are.equal("exit", how)
    assert.are.equal(0, code)
    assert.are.equal("7\t2.5\t1\t0.25\n", out)
  end)

  it("lets explicit options win over the environment", function()
    local p = io.popen("MAX_CONCURRENT=7 " .. BIN .. " -e "
      .. "'print(require(\"fetcher\").new{ max_concurrent = 3 }.max_concurrent)' 2>&1")
    local out = p:read("a")
    p:close()
    assert.are.equal("3\n", out)
  end)

  it("rejects bad options", function()
    assert.has_error(function() fetcher.new{ max_concurrent = 0 } end)
    assert.has_error(function() fetcher.new{ max_retries = -1 } end)
    assert.has_error(function() fetcher.new{ timeout = "fast" } end)
    assert.has_error(function() fetcher.new{ deadline = 0 } end)
  end)
end)

describe("fetcher permits and locks when a waiting task is canceled", function()
  local function wait_status(t, status)
    while t:status() ~= status do task.sleep(0) end
  end

  it("a task canceled while waiting for a host slot gives its place back", function()
    local f = quick{ max_per_host = 1 }
    local host = "127.0.0.1:1"
    local held = f:host_permit(host)
    local waiter = task.spawn(function() return f:host_permit(host) end)
    wait_status(waiter, "waiting")
    assert.is_true(waiter:cancel())
    held:release()
    assert.is_nil(next(f.host_slots)) -- no user left: the slot is dropped
    local again = f:host_permit(host)
    again:release()
    assert.is_nil(next(f.host_slots))
  end)

  it("a host slot handed to a waiter canceled before it runs is not lost", function()
    local f = quick{ max_per_host = 1 }
    local host = "127.0.0.1:2"
    local held = f:host_permit(host)
    local waiter = task.spawn(function() return f:host_permit(host) end)
    wait_status(waiter, "waiting")
    held:release() -- handed to the waiter, which has not run yet
    assert.is_true(waiter:cancel())
    assert.is_nil(next(f.host_slots))
    local got = task.spawn(function() local p = f:host_permit(host); p:release(); return true end)
    assert.are.same({ true, true }, { got:join() })
  end)

  it("a worker canceled while it holds the pool's lock does not stop the others", function()
    local f = quick{ max_concurrent = 2 }
    local i = 0
    local results = {}
    local ok, err = pcall(f.each, f, function()
      i = i + 1
      if i == 2 then
        -- the second call waits inside the source, holding the lock: cancel that worker
        local stuck = task.current()
        task.spawn(function() stuck:cancel() end)
        task.sleep(30)
      end
      if i <= 4 then return BASE .. "/bytes/" .. i end
    end, function(_, result, index) results[index] = result.bytes end)
    -- the other worker took the lock and fetched the rest; the canceled one ends the run
    assert.is_false(ok)
    assert.matches("task canceled", err, 1, true)
    assert.are.same({ 1, 3, 4 }, results)
  end)
end)

describe("fetcher option checks", function()
  it("says what plugins must be", function()
    local ok, err = pcall(fetcher.new, { plugins = 42 })
    assert.is_false(ok)
    assert.matches("plugins must be an array of plugin tables or names, got number", err, 1, true)
    ok, err = pcall(fetcher.new, { plugins = "metrics" })
    assert.is_false(ok)
    assert.matches("got string", err, 1, true)
  end)

  it("turns an entry whose method is not a string into an invalid result", function()
    local kinds = {}
    quick():each({ { url = BASE .. "/json", method = true } }, function(url, result)
      kinds[#kinds + 1] = result.kind
      assert.are.equal(BASE .. "/json", url)
      assert.matches("method must be a string", result.error, 1, true)
    end)
    assert.are.same({ "invalid" }, kinds)
  end)
end)
