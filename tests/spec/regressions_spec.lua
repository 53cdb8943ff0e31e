-- regressions_spec.lua — cases a code review found in the core, kept so they stay fixed:
-- Lua stack limits between tasks, cancel re-entered from a __close handler, compressed
-- responses without a body, deadlines measured from a fresh clock, a DNS retry from a callback.

local http = require "http"
local task = require "task"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")

describe("regressions", function()
  it("passes thousands of arguments into a task and hundreds of results out", function()
    local args = {}
    for i = 1, 5000 do args[i] = i end
    local t = task.spawn(function(...) return select("#", ...), select(5000, ...) end, table.unpack(args))
    local ok, n, last = t:join()
    assert.is_true(ok)
    assert.are.equal(5000, n)
    assert.are.equal(5000, last)

    local many = task.spawn(function()
      local out = {}
      for i = 1, 300 do out[i] = i * 2 end
      return table.unpack(out)
    end)
    local results = table.pack(many:join())
    assert.are.equal(301, results.n)
    assert.is_true(results[1])
    assert.are.equal(600, results[301])
  end)

  it("survives a __close handler that cancels its own task again", function()
    local before = task.count()
    local victim
    victim = task.spawn(function()
      local guard <close> = setmetatable({}, { __close = function() victim:cancel() end })
      task.sleep(10)
    end)
    task.sleep(0.01)
    assert.is_true(victim:cancel())
    local ok, err = victim:join()
    assert.is_false(ok)
    assert.are.equal("task canceled", err)
    assert.are.equal(before, task.count())
  end)

  it("accepts HEAD, and an empty body, on a gzip endpoint", function()
    local res, err, kind = http.head(BASE .. "/gzip/100")
    assert(res, tostring(kind) .. ": " .. tostring(err))
    assert.are.equal(200, res.status)
    assert.are.equal("", res.body)
    local empty = assert(http.get(BASE .. "/gzip/0"))
    assert.are.equal(200, empty.status)
    assert.are.equal("", empty.body)
  end)

  it("counts a request's deadline from when it starts, not from the loop turn", function()
    local t0 = os.clock()
    while os.clock() - t0 < 1.2 do end -- busy Lua work in the same loop turn
    local res, err, kind = http.get(BASE .. "/json", { timeout = 1 })
    assert(res, tostring(kind) .. ": " .. tostring(err))
    assert.are.equal(200, res.status)
  end)

  it("starts a fresh lookup when a failed lookup's callback retries the same name", function()
    local before = http.stats().dns_lookups
    local _, _, k1 = http.get("http://retry-me.invalid/")
    local _, _, k2 = http.get("http://retry-me.invalid/")
    assert.are.equal("dns", k1)
    assert.are.equal("dns", k2)
    -- failures are not cached: the second attempt asks again rather than reusing the failure
    assert.are.equal(before + 2, http.stats().dns_lookups)
  end)
end)
