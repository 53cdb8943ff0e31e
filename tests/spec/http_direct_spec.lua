-- http_direct_spec.lua: http.get and friends with no options, or only options the core takes as
-- they are (timeout as a number, headers, max_body, max_redirects, verify, ca_file, cert_file,
-- key_file, decompress, http2), send their first hop straight from the caller's table: no request
-- table exists while they wait. The behaviour must be the usual one: options applied, redirects
-- followed with the same options, bad values refused with the usual messages.

local http = require "http"
local task = require "task"
local cjson = require "cjson.safe"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function ok(res, err, kind)
  assert(res, ("request failed: %s (%s)"):format(tostring(err), tostring(kind)))
  return res
end

-- The request headers the fixture saw, names in lower case.
local function seen_headers(res)
  assert.are.equal(200, res.status)
  local info = assert(cjson.decode(res.body))
  local h = {}
  for _, pair in ipairs(info.raw_headers) do h[pair[1]:lower()] = pair[2] end
  return h, info
end

describe("the direct first hop", function()
  it("sends the caller's headers and applies its options", function()
    local opts = { timeout = 5, headers = { ["X-Probe"] = "one" }, decompress = false }
    local h, info = seen_headers(ok(http.get(BASE .. "/echo?a=1", opts)))
    assert.are.equal("one", h["x-probe"])
    assert.is_nil(h["accept-encoding"]) -- decompress = false: nothing offered
    assert.are.equal("GET", info.method)
    assert.are.equal("/echo", info.path)
    assert.are.same({ timeout = 5, headers = { ["X-Probe"] = "one" }, decompress = false }, opts)
  end)

  it("keeps the method of http.head, http.delete and http.options", function()
    local res = ok(http.delete(BASE .. "/echo", { timeout = 5 }))
    local _, info = seen_headers(res)
    assert.are.equal("DELETE", info.method)
    res = ok(http.head(BASE .. "/echo", { timeout = 5 }))
    assert.are.equal(200, res.status)
    assert.are.equal("", res.body)
  end)

  it("follows a redirect with the same options, and reports the final URL and the hops", function()
    local target = BASE .. "/echo?hop=2"
    local url = BASE .. "/redirect-to?url=" .. urlencode(target)
    local res = ok(http.get(url, { timeout = 5, headers = { ["X-Probe"] = "two" } }))
    local h = seen_headers(res)
    assert.are.equal("two", h["x-probe"])
    assert.are.equal(target, res.url)
    assert.are.equal(1, res.redirects)
    res = ok(http.get(BASE .. "/redirect/2"))
    assert.are.equal(2, res.redirects)
    assert.are.equal(200, res.status)
  end)

  it("keeps the caller's options for the next hop when another task changed the table meanwhile", function()
    -- The first hop goes out from the caller's table; the redirect reads it again. An option the
    -- quick way does not take, added while the first hop waits, must not make the next hop drop
    -- the headers: it goes the full way with what the table holds then.
    local target = BASE .. "/echo?hop=mid"
    local url = BASE .. "/redirect-to?delay=0.3&url=" .. urlencode(target)
    local opts = { timeout = 5, headers = { ["X-Probe"] = "three" } }
    local t = task.spawn(function() return http.get(url, opts) end)
    task.sleep(0.1)
    opts.proxy = false -- not a quick option; means "no proxy", so the route is the same
    local done, res, err, kind = t:join()
    assert.is_true(done)
    ok(res, err, kind)
    local h = seen_headers(res)
    assert.are.equal("three", h["x-probe"])
    assert.are.equal(target, res.url)
    assert.are.equal(1, res.redirects)
    -- and a bad value added meanwhile is refused with the usual message, not ignored
    local bad = { timeout = 5 }
    t = task.spawn(function() return http.get(url, bad) end)
    task.sleep(0.1)
    bad.proxy = 42
    local done2, r2
    done2, r2, err, kind = t:join()
    assert.is_true(done2)
    assert.is_nil(r2)
    assert.are.equal("invalid", kind)
    assert.matches("proxy must be", err)
  end)

  it("reads an options table with a metatable the usual way (its __pairs is seen)", function()
    -- the quick way reads the table raw, as the core does: one that lists its options through
    -- __pairs goes the usual way, which iterates with pairs
    local opts = setmetatable({}, { __pairs = function() return next, { max_body = 10 }, nil end })
    local res, err, kind = http.get(BASE .. "/echo?m=1", opts)
    assert.is_nil(res)
    assert.are.equal("limit", kind, err)
  end)

  it("gives a redirect itself back with max_redirects = 0", function()
    local res = ok(http.get(BASE .. "/redirect/1", { timeout = 5, max_redirects = 0 }))
    assert.are.equal(302, res.status)
    assert.are.equal(0, res.redirects)
    assert.are.equal(BASE .. "/redirect/1", res.url)
  end)

  it("refuses bad values with the usual messages", function()
    local res, err, kind = http.get(BASE .. "/echo", { timeout = -1 })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("timeout must be a positive number", err, 1, true)
    res, err, kind = http.get(BASE .. "/echo", { timeout = 5, max_body = "big" })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("max_body", err, 1, true)
    res, err, kind = http.get(BASE .. "/echo", { timeout = 5, headers = { ["Bad Name"] = "x" } })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    res, err, kind = http.get("nope://x", { timeout = 5 })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    -- a per-phase timeout table takes the usual way and still works
    ok(http.get(BASE .. "/echo", { timeout = { connect = 5, total = 5 } }))
  end)

  it("holds no request table while the request waits", function()
    -- Lua bytes per task waiting in http.get, over those of a task waiting in task.sleep: the URL
    -- string and the frames, not a request table too (measured 240-260 bytes; about 1,030 with the
    -- request built as a table first).
    local n = 60
    local function live() collectgarbage("collect"); collectgarbage("collect"); return collectgarbage("count") * 1024 end
    local function per_task(spawn_one)
      local tasks = {}
      local before = live()
      for i = 1, n do tasks[i] = spawn_one(i) end
      task.sleep(0.15)
      local bytes = (live() - before) / n
      for i = 1, n do tasks[i]:join() end
      return bytes
    end
    local opts = { timeout = 5 }
    local sleeping = per_task(function() return task.spawn(function() task.sleep(0.5) end) end)
    local waiting = per_task(function(i)
      return task.spawn(function() ok(http.get(BASE .. "/delay/0.5?i=" .. i, opts)) end)
    end)
    assert.is_true(waiting - sleeping < 350, ("%.0f bytes more per waiting request"):format(waiting - sleeping))
  end)
end)
