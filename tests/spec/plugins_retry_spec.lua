-- plugins_retry_spec.lua: plugins/retry.lua with a fake clock (no server needed).

local retry = require "plugins.retry"

--- A policy on a fake clock: sleeps only advance `clock.t` and are recorded.
local function fake_policy(opts)
  local clock = { t = 0, sleeps = {} }
  local o = { now = function() return clock.t end,
              sleep = function(s) clock.sleeps[#clock.sleeps + 1] = s; clock.t = clock.t + s end,
              random = function() return 0.5 end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return retry.new(o), clock
end

--- A function failing `n` times with (res, err, kind) before answering 200.
local function failing(n, res, err, kind)
  local calls = 0
  return function()
    calls = calls + 1
    if calls <= n then return res, err, kind end
    return { status = 200, headers = {} }
  end, function() return calls end
end

describe("plugins.retry", function()
  it("backs off backoff_factor * 2^(n-1) plus jitter, capped", function()
    local p = fake_policy{ backoff_factor = 1.5, jitter = 0.1, max_backoff = 10 }
    assert.are.equal(1.5 * 1.05, p:delay(1))
    assert.are.equal(3 * 1.05, p:delay(2))
    assert.are.equal(6 * 1.05, p:delay(3))
    assert.are.equal(10, p:delay(4))
    local plain = fake_policy{ backoff_factor = 0.5, jitter = 0 }
    assert.are.same({ 0.5, 1, 2 }, { (plain:delay(1)), (plain:delay(2)), (plain:delay(3)) })
  end)

  it("keeps jitter within [base, base * (1 + jitter))", function()
    local p = retry.new{ backoff_factor = 1, jitter = 0.2, max_backoff = 100 }
    for _ = 1, 200 do
      local d = p:delay(2)
      assert.is_true(d >= 2 and d < 2.4, tostring(d))
    end
  end)

  it("retries up to max_retries and counts attempts", function()
    local p, clock = fake_policy{ max_retries = 3, backoff_factor = 1, jitter = 0 }
    local fn, calls = failing(10, nil, "refused", "connect")
    local res, err, kind, attempts = p:run(fn)
    assert.is_nil(res)
    assert.are.equal("refused", err)
    assert.are.equal("connect", kind)
    assert.are.equal(4, attempts)
    assert.are.equal(4, calls())
    assert.are.same({ 1, 2, 4 }, clock.sleeps)
  end)

  it("returns as soon as the function succeeds", function()
    local p = fake_policy{ max_retries = 5 }
    local fn = failing(2, { status = 503, headers = {} })
    local res, _, _, attempts = p:run(fn)
    assert.are.equal(200, res.status)
    assert.are.equal(3, attempts)
  end)

  it("retries only the listed kinds and statuses", function()
    local p = fake_policy{}
    for _, kind in ipairs{ "timeout", "connect", "closed", "dns" } do
      assert.is_true(p:retryable(nil, "x", kind), kind)
    end
    for _, kind in ipairs{ "tls", "protocol", "limit", "redirect", "canceled", "invalid", "circuit_open" } do
      assert.is_false(p:retryable(nil, "x", kind), kind)
    end
    for _, status in ipairs{ 429, 500, 502, 503, 504 } do
      assert.is_true(p:retryable({ status = status }), tostring(status))
    end
    for _, status in ipairs{ 200, 301, 400, 404, 501 } do
      assert.is_false(p:retryable({ status = status }), tostring(status))
    end
  end)

  it("never retries a non-idempotent method", function()
    local p = fake_policy{ max_retries = 3 }
    for _, method in ipairs{ "POST", "PATCH", "post" } do
      local fn, calls = failing(5, { status = 503, headers = {} })
      local _, _, _, attempts = p:run(fn, { method = method })
      assert.are.equal(1, attempts, method)
      assert.are.equal(1, calls(), method)
    end
    for _, method in ipairs{ "GET", "HEAD", "PUT", "DELETE", "OPTIONS" } do
      local _, _, _, attempts = p:run((failing(1, { status = 503, headers = {} })), { method = method })
      assert.are.equal(2, attempts, method)
    end
  end)

  it("honours Retry-After in seconds, capped at max_backoff", function()
    local p, clock = fake_policy{ backoff_factor = 0.01, max_backoff = 60 }
    p:run((failing(1, { status = 429, headers = { ["retry-after"] = "7" } })))
    assert.are.same({ 7 }, clock.sleeps)
    local capped, clock2 = fake_policy{ max_backoff = 5 }
    capped:run((failing(1, { status = 503, headers = { ["retry-after"] = "120" } })))
    assert.are.same({ 5 }, clock2.sleeps)
  end)

  it("ignores Retry-After when told to", function()
    local p, clock = fake_policy{ backoff_factor = 1, jitter = 0, respect_retry_after = false }
    p:run((failing(1, { status = 503, headers = { ["retry-after"] = "30" } })))
    assert.are.same({ 1 }, clock.sleeps)
  end)

  it("parses Retry-After HTTP-dates in all three formats", function()
    local now = retry.parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    assert.are.equal(784111777, now)
    assert.are.equal(now, retry.parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.are.equal(now, retry.parse_http_date("Sun Nov  6 08:49:37 1994"))
    assert.are.equal(30, retry.parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now))
    assert.are.equal(0, retry.parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now))
    assert.are.equal(12, retry.parse_retry_after(" 12 "))
    assert.is_nil(retry.parse_retry_after("soon"))
    assert.is_nil(retry.parse_retry_after("-5"))
    assert.is_nil(retry.parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"))
  end)

  it("waits for a Retry-After date in the future", function()
    local p, clock = fake_policy{}
    local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 20)
    p:run((failing(1, { status = 503, headers = { ["retry-after"] = date } })))
    assert.is_true(clock.sleeps[1] >= 18 and clock.sleeps[1] <= 20, tostring(clock.sleeps[1]))
  end)

  it("does not start a pause that would end past the deadline", function()
    local p, clock = fake_policy{ max_retries = 10, backoff_factor = 1, jitter = 0 }
    local fn, calls = failing(100, nil, "timed out", "timeout")
    local _, _, kind, attempts = p:run(fn, { deadline = 5 })
    assert.are.equal("timeout", kind)
    assert.are.same({ 1, 2 }, clock.sleeps) -- a pause of 4 would end at 7 > 5
    assert.are.equal(3, attempts)
    assert.are.equal(3, calls())
  end)

  it("calls on_retry before each pause", function()
    local p = fake_policy{ max_retries = 2, backoff_factor = 1, jitter = 0 }
    local seen = {}
    p:run((failing(5, nil, "reset", "closed")), { on_retry = function(attempt, wait, _, _, kind)
      seen[#seen + 1] = string.format("%d:%g:%s", attempt, wait, kind)
    end })
    assert.are.same({ "1:1:closed", "2:2:closed" }, seen)
  end)

  it("wraps any function returning res, err, kind", function()
    local p = fake_policy{ max_retries = 4, backoff_factor = 0 }
    local calls = 0
    local lookup = p:wrap(function(name)
      calls = calls + 1
      if calls < 3 then return nil, "busy", "timeout" end
      return "value of " .. name
    end)
    local value, err, kind, attempts = lookup("x")
    assert.are.equal("value of x", value)
    assert.is_nil(err)
    assert.is_nil(kind)
    assert.are.equal(3, attempts)
  end)

  it("rejects bad options", function()
    assert.has_error(function() retry.new{ max_retries = -1 } end)
    assert.has_error(function() retry.new{ max_retries = 1.5 } end)
    assert.has_error(function() retry.new{ backoff_factor = "x" } end)
  end)
end)
