-- plugins_metrics_spec.lua: plugins/metrics.lua, alone and under the fetcher.

local metrics = require "plugins.metrics"
local logger = require "plugins.logger"

local function result(ok, elapsed, extra)
  local r = { success = ok, elapsed = elapsed, attempts = 1, bytes = 10 }
  for k, v in pairs(extra or {}) do r[k] = v end
  return r
end

describe("plugins.metrics", function()
  it("computes nearest-rank percentiles", function()
    local sorted = {}
    for i = 1, 100 do sorted[i] = i end
    assert.are.equal(50, metrics.percentile(sorted, 50))
    assert.are.equal(95, metrics.percentile(sorted, 95))
    assert.are.equal(99, metrics.percentile(sorted, 99))
    assert.are.equal(7, metrics.percentile({ 7 }, 99))
    assert.is_nil(metrics.percentile({}, 50))
  end)

  it("summarises a run and logs it at INFO", function()
    local log, lines = logger.capture{ format = "{level} {message}" }
    local m = metrics.new{ logger = log }
    for i = 1, 10 do
      m.on_result("u" .. i, result(i ~= 3, i / 100, i == 3 and { kind = "timeout", attempts = 3 } or nil))
    end
    m.on_finish({}, { elapsed = 2, http = { connections_opened = 1, connections_reused = 3 },
                      breaker = { ["h:80"] = { state = "open" }, ["g:80"] = { state = "closed" } } })
    local s = m:summary()
    assert.are.equal(10, s.count)
    assert.are.equal(9, s.succeeded)
    assert.are.equal(0.9, s.success_rate)
    assert.are.equal(5, s.requests_per_sec)
    assert.are.equal(0.05, s.p50)
    assert.are.equal(0.1, s.p95)
    assert.are.equal(0.1, s.p99)
    assert.are.equal(0.75, s.reuse_rate)
    assert.are.equal(2, s.retries)
    assert.are.equal(100, s.bytes)
    assert.are.same({ timeout = 1 }, s.kinds)
    assert.are.same({ ["h:80"] = "open" }, s.circuits)
    assert.are.equal(1, #lines)
    assert.matches("^INFO metrics: 10 URLs in 2%.000s: 90%.0%% ok, 5%.0 req/s, p50 50%.0ms p95 100%.0ms p99 100%.0ms, reuse 75%.0%%, 2 retries, 100 B, failures timeout=1, circuits h:80 open$", lines[1])
  end)

  it("starts afresh for each run", function()
    local m = metrics.new{ silent = true }
    m.on_result("a", result(true, 1))
    m.on_finish(nil, { elapsed = 1 })
    m.on_result("b", result(false, 2, { kind = "dns" }))
    m.on_finish(nil, { elapsed = 1 })
    assert.are.equal(1, m:summary().count)
    assert.are.equal(0, m:summary().success_rate)
  end)

  it("keeps at most max_samples latencies", function()
    local m = metrics.new{ silent = true, max_samples = 50 }
    for i = 1, 1000 do m.on_result("u", result(true, i)) end
    m.on_finish(nil, { elapsed = 1 })
    local s = m:summary()
    assert.are.equal(1000, s.count)
    assert.is_true(s.p50 >= 1 and s.p50 <= 1000)
  end)

  it("measures a real fetch, connection reuse included", function()
    local base = os.getenv("FIXTURE_URL")
    assert(base, "FIXTURE_URL is not set (run tests/run_specs.sh)")
    local fetcher = require "fetcher"
    local log, lines = logger.capture{ format = "json" }
    local m = metrics.new{ logger = log }
    local urls = {}
    for i = 1, 20 do urls[i] = base .. "/bytes/" .. (100 + i) end
    local f = fetcher.new{ max_concurrent = 2, plugins = { m }, logger = log }
    f:fetch_urls(urls)
    local s = m:summary()
    assert.are.equal(20, s.count)
    assert.are.equal(1, s.success_rate)
    assert.are.equal(20 * 100 + 210, s.bytes)
    assert.is_true(s.p50 > 0 and s.p50 <= s.p95 and s.p95 <= s.p99)
    assert.is_true(s.requests_per_sec > 0)
    assert.is_true(s.reuse_rate and s.reuse_rate >= 0.5, "reuse " .. tostring(s.reuse_rate))
    local record = require("cjson").decode(lines[#lines])
    assert.are.equal(20, record.count)
    assert.matches("^metrics: 20 URLs", record.message)
    -- the fetcher's own summary line is left out: one summary per run
    for _, line in ipairs(lines) do
      assert.is_nil(line:find("reused a connection", 1, true), line)
    end
  end)
end)
