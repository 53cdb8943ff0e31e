-- plugins_breaker_spec.lua: plugins/breaker.lua's state machine on a fake clock.

local breaker = require "plugins.breaker"

describe("plugins.breaker", function()
  local clock, b, changes

  before_each(function()
    clock = 0
    changes = {}
    b = breaker.new{ failure_threshold = 3, open_seconds = 10,
                     now = function() return clock end,
                     on_change = function(host, from, to)
                       changes[#changes + 1] = host .. " " .. from .. ">" .. to
                     end }
  end)

  local function fail(host) b:record(host, true) end
  local function succeed(host) b:record(host, false) end

  it("opens after failure_threshold consecutive failures", function()
    fail("a:80"); fail("a:80")
    assert.are.equal("closed", b:state("a:80"))
    succeed("a:80") -- resets the count
    fail("a:80"); fail("a:80")
    assert.are.equal("closed", b:state("a:80"))
    fail("a:80")
    assert.are.equal("open", b:state("a:80"))
    assert.are.equal("closed", b:state("b:80")) -- per host
  end)

  it("fails fast while open, then half-opens after open_seconds", function()
    for _ = 1, 3 do fail("a:80") end
    local allowed, retry_in = b:allow("a:80")
    assert.is_false(allowed)
    assert.are.equal(10, retry_in)
    clock = 9.9
    assert.is_false((b:allow("a:80")))
    clock = 10
    assert.are.equal("half_open", b:state("a:80"))
    assert.is_true((b:allow("a:80")))  -- the probe
    assert.is_false((b:allow("a:80"))) -- one probe at a time
    succeed("a:80")
    assert.are.equal("closed", b:state("a:80"))
    assert.are.same({ "a:80 closed>open", "a:80 open>half_open", "a:80 half_open>closed" }, changes)
  end)

  it("reopens when the probe fails", function()
    for _ = 1, 3 do fail("a:80") end
    clock = 10
    assert.is_true((b:allow("a:80")))
    fail("a:80")
    assert.are.equal("open", b:state("a:80"))
    clock = 15
    assert.are.equal("open", b:state("a:80"))
    clock = 20
    assert.are.equal("half_open", b:state("a:80"))
    assert.are.equal(2, b:states()["a:80"].times_opened)
  end)

  it("call() refuses with kind circuit_open without calling the function", function()
    local calls = 0
    local function down() calls = calls + 1; return nil, "refused", "connect" end
    for _ = 1, 3 do b:call("h:1", down) end
    assert.are.equal(3, calls)
    local res, err, kind = b:call("h:1", down)
    assert.is_nil(res)
    assert.are.equal("circuit_open", kind)
    assert.matches("circuit open for h:1", err)
    assert.are.equal(3, calls)
    assert.are.equal(1, b:states()["h:1"].rejected)
  end)

  it("counts 5xx and host-side kinds as failures, 4xx and invalid not", function()
    assert.is_true(breaker.default_is_failure({ status = 503 }))
    assert.is_true(breaker.default_is_failure(nil, "x", "timeout"))
    assert.is_true(breaker.default_is_failure(nil, "x", "tls"))
    assert.is_false(breaker.default_is_failure({ status = 404 }))
    assert.is_false(breaker.default_is_failure({ status = 200 }))
    assert.is_false(breaker.default_is_failure(nil, "x", "invalid"))
    assert.is_false(breaker.default_is_failure(nil, "x", "canceled"))
  end)

  it("keys hosts by host:port", function()
    assert.are.equal("example.com:80", breaker.host_of("http://Example.com/x"))
    assert.are.equal("example.com:443", breaker.host_of("https://example.com"))
    assert.are.equal("127.0.0.1:8080", breaker.host_of("http://user:pw@127.0.0.1:8080/p?q"))
    assert.are.equal("[::1]:9000", breaker.host_of("http://[::1]:9000/"))
  end)
end)
