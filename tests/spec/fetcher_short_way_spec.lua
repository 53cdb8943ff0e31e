-- fetcher_short_way_spec.lua: fetch_urls's short way (URL strings, no plugin hook, no limit: the
-- worker builds successes itself and keeps its counts in locals) gives what the general way gives,
-- and the durations reach the C samples in one call at the end. Runs inside the host against
-- FIXTURE_URL.

local fetcher = require "fetcher"
local logger = require "plugins.logger"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")

local function quiet(opts)
  local o = { logger = logger.capture{ level = "DEBUG" }, max_retries = 0, timeout = 5 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return fetcher.new(o)
end

-- The raw fields of a result, without those that differ from run to run.
local function shape(r)
  local t = {}
  for k, v in next, r do
    if k ~= "elapsed" and k ~= "reused" then t[k] = v end
  end
  return t
end

local function nearest_rank(sorted, p)
  return sorted[math.max(1, math.min(#sorted, math.ceil(p / 100 * #sorted)))]
end

describe("fetch_urls's short way", function()
  local urls = { BASE .. "/json", BASE .. "/bytes/100", BASE .. "/status/404", "http://127.0.0.1:1/",
                 BASE .. "/json?x=1", BASE .. "/bytes/3" }

  it("gives the results and counts the general way gives", function()
    local plain = quiet()
    -- a hook that is handed the request sends every URL the general way
    local general = quiet{ plugins = { { name = "noop", on_request = function() end } } }
    local r1, s1, l1 = plain:fetch_urls(urls)
    local r2, s2, l2 = general:fetch_urls(urls)
    for i, url in ipairs(urls) do
      assert.are.same(shape(l2[i]), shape(l1[i]), url)
      assert.are.equal(r1[url], l1[i])
      assert.are.equal(type(l2[i].elapsed), type(l1[i].elapsed))
      assert.are.equal(type(l2[i].reused), type(l1[i].reused))
    end
    assert.is_true(l1[1].success)
    assert.are.equal(42, l1[1]:json().n)
    assert.are.equal("application/json", l1[1].headers["content-type"]:match("^[^;]+"))
    assert.are.equal(100, l1[2].bytes)
    assert.are.equal("status", l1[3].kind)
    assert.are.equal("connect", l1[4].kind)
    for _, k in ipairs{ "count", "succeeded", "failed", "attempts", "retries", "bytes" } do
      assert.are.equal(s2[k], s1[k], k)
    end
    assert.are.equal(6, s1.count)
    assert.are.equal(4, s1.succeeded)
    local bytes = 0
    for _, r in ipairs(l1) do bytes = bytes + r.bytes end
    assert.are.equal(bytes, s1.bytes)
    local reused = 0
    for _, r in ipairs(l1) do if r.reused then reused = reused + 1 end end
    assert.are.equal(reused, s1.reused)
  end)

  it("hands each result to the on_result hooks once, its duration taken before", function()
    local seen, calls = {}, 0
    local f = quiet{ max_concurrent = 3, plugins = {
      { name = "late", on_result = function(key, r)
          calls = calls + 1
          seen[key] = r
          r.elapsed = 1000 -- a hook that changes a result does not change the run's durations
        end },
      { name = "raises", on_result = function() error("boom") end } } }
    local many = {}
    for i = 1, 40 do many[i] = BASE .. "/bytes/" .. i end
    many[7] = BASE .. "/status/404"
    local results, stats = f:fetch_urls(many)
    assert.are.equal(40, calls)
    for _, url in ipairs(many) do assert.are.equal(results[url], seen[url]) end
    assert.are.equal(39, stats.succeeded)
    assert.are.equal(40, stats.hook_errors)
    assert.is_true(stats.latency.max < 1000)
    assert.matches("^40 URLs: 39 ok, 1 failed", stats.summary)
  end)

  it("takes entry tables among the strings the general way", function()
    local list = { BASE .. "/json", { url = BASE .. "/echo", method = "POST", body = "b", key = "post" },
                   BASE .. "/bytes/5" }
    local results, stats = quiet():fetch_urls(list)
    assert.are.equal("POST", results.post.method)
    assert.are.equal("b", results.post:json().body)
    assert.are.equal("GET", results[BASE .. "/json"].method)
    assert.are.equal(5, results[BASE .. "/bytes/5"].bytes)
    assert.are.equal(3, stats.succeeded)
  end)

  it("hands every duration to the samples once: exact percentiles", function()
    -- 2 workers, 75 URLs, and a 404 and a refused connection that finish the general way
    local many = {}
    for i = 1, 75 do many[i] = BASE .. "/bytes/" .. i end
    many[40] = BASE .. "/status/404"
    many[60] = "http://127.0.0.1:1/"
    local _, stats, list = quiet{ max_concurrent = 2 }:fetch_urls(many)
    assert.are.equal(73, stats.succeeded)
    local sorted = {}
    for i, r in ipairs(list) do sorted[i] = r.elapsed end
    table.sort(sorted)
    assert.are.equal(nearest_rank(sorted, 50), stats.latency.p50)
    assert.are.equal(nearest_rank(sorted, 90), stats.latency.p90)
    assert.are.equal(nearest_rank(sorted, 99), stats.latency.p99)
    assert.are.equal(sorted[#sorted], stats.latency.max)
    assert.matches("^75 URLs: 73 ok, 2 failed", stats.summary)
  end)
end)

describe("C samples", function()
  it("take durations in batches, find percentiles by selection and sort by bits", function()
    local S = require "_stats"
    math.randomseed(7)
    for _, n in ipairs{ 0, 1, 5, 63, 64, 65, 1000, 5000 } do
      local s, want, batch = S.samples(), {}, {}
      for i = 1, n do
        local r, x = math.random(), nil
        if r < 0.05 then x = -math.random() * 10
        elseif r < 0.1 then x = 0.0
        elseif r < 0.12 then x = math.huge
        elseif r < 0.14 then x = -math.huge
        else x = math.random() ^ 3 * 100 end
        want[i] = x
        batch[#batch + 1] = x
        if #batch == 7 then s:add_all(batch, 7); batch = {} end
      end
      s:add_all(batch, #batch)
      table.sort(want)
      assert.are.equal(n, #s)
      if n > 0 then
        -- before any sort (each rank found between those found before), then after one
        for _, p in ipairs{ 50, 99, 1, 90, 50, 100, 95, 0.5 } do
          assert.are.equal(nearest_rank(want, p), s:percentile(p), p)
        end
      end
      assert.are.same(want, s:sorted())
      if n > 0 then
        for _, p in ipairs{ 1, 50, 90, 99, 100 } do
          assert.are.equal(nearest_rank(want, p), s:percentile(p))
        end
      end
    end
    -- a percentile, then more durations: the ranks found before no longer hold
    local s2 = S.samples()
    for _, x in ipairs{ 5, 3, 9, 1 } do s2:add(x) end
    assert.are.equal(3, s2:percentile(50))
    s2:add(0)
    s2:add(2)
    assert.are.equal(2, s2:percentile(50))
    assert.are.equal(9, s2:percentile(100))
    -- one call for a field of many tables (the durations of a run's results)
    local s3 = S.samples()
    s3:add_field({ { elapsed = 0.3 }, { elapsed = 0.1 }, { elapsed = 0.2 } }, 3, "elapsed")
    assert.are.same({ 0.1, 0.2, 0.3 }, s3:sorted())
    assert.has_error(function() s3:add_field({ { elapsed = "x" } }, 1, "elapsed") end)
    assert.has_error(function() s3:add_field({ 1 }, 1, "elapsed") end)
    local s = S.samples()
    s:add_all({ 0 / 0, 1 }, 2) -- NaN is no duration, as with add
    assert.are.equal(1, #s)
    assert.has_error(function() s:add_all({ 1, "slow" }, 2) end)
    assert.has_error(function() s.add_all({}, {}, 0) end)
    assert.has_error(function() s.add(io.stdout, 1) end)
  end)
end)
