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

describe("regressions (second review)", function()
  it("keeps a response's chunked trailer out of res.headers", function()
    local res = assert(http.get(BASE .. "/chunked/10?trailer=1"))
    assert.are.equal(200, res.status)
    assert.are.equal(10, #res.body)
    assert.are.equal("X-Trailer, X-Body-Length", res.headers.trailer) -- the announcement is a header
    assert.is_nil(res.headers["x-trailer"])
    assert.is_nil(res.headers["x-body-length"])
  end)

  it("answers 500 when what a handler returned raises on the way out", function()
    local srv = http.serve{ port = 0, on_error = function() end, handler = function(req)
      if req.path == "/status" then
        return { status = setmetatable({}, { __tostring = function() error("no") end }) }
      elseif req.path == "/index" then
        return setmetatable({}, { __index = function() error("no") end })
      end
      req.target = nil
      error("handler failed after changing req")
    end }
    for _, path in ipairs{ "/status", "/index", "/mutated" } do
      local res, err, kind = http.get(srv.url .. path, { timeout = 3 })
      assert(res, path .. ": " .. tostring(kind) .. ": " .. tostring(err))
      assert.are.equal(500, res.status)
    end
    srv:close()
  end)

  it("finds elements and meta tags the way the docs say", function()
    local html = require "html"
    local doc = html.parse([[<html><head><meta name="x" property="og:title" content="OG"></head>
      <body><p data-x="a]b">hi</p><div><span>s</span></div></body></html>]])
    assert.are.equal("OG", doc:meta("og:title"))
    assert.are.equal("OG", doc:meta("x"))
    local found = doc:select('[data-x="a]b"]')
    assert.are.equal(1, #found)
    assert.are.equal("hi", found[1]:text())
    assert.is_true(#doc:descendants() >= 5)
    assert.are.equal(1, #doc:descendants("span"))
  end)
end)

describe("regressions (script input)", function()
  it("refuses a method that is not a string instead of sending TRUE", function()
    local res, err, kind = http.request{ url = BASE .. "/json", method = true }
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("method must be a string", err, 1, true)
    assert.are.equal("invalid", select(3, http.request{ url = BASE .. "/json", method = 42 }))
  end)

  it("refuses a URL with a NUL byte inside instead of cutting it there", function()
    local res, err, kind = http.get(BASE .. "/json\0/../../elsewhere")
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("url contains a NUL byte", err, 1, true)
    local parsed, perr = http.parse_url("http://example.com\0.evil/")
    assert.is_nil(parsed)
    assert.matches("NUL", perr, 1, true)
    assert.is_nil((http.resolve_url(BASE .. "/a", "b\0c")))
  end)

  it("refuses a file option with a NUL byte inside", function()
    local res, err, kind = http.get(BASE .. "/json", { ca_file = "/etc/ssl/certs\0/x.pem" })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("ca_file contains a NUL byte", err, 1, true)
  end)
end)
