-- http_spec.lua: the `http` contract of DESIGN.md against the fault-injecting fixture server
-- (tests/fixtures/server.py, FIXTURE_URL): statuses, headers, bodies and their framings, decoding,
-- limits, every failure kind, timeouts, validation, methods, JSON, timings, stats, concurrency.
-- Runs inside the host (`luafetch test`), in the main task: real loop, real sockets.

local http = require "http"
local task = require "task"
local cjson = require "cjson.safe"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local PORT = assert(BASE:match(":(%d+)$"))
local BIN = os.getenv("LUAFETCH_BIN")

-- n bytes of the fixture's "abc...xyzabc..." pattern
local function pattern(n)
  return ("abcdefghijklmnopqrstuvwxyz"):rep(n // 26 + 1):sub(1, n)
end

-- A base URL whose host is a spelling of 127.0.0.1 never used before: glibc's getaddrinfo reads
-- "127.00.0.1", "127.0.000.01", ... (zero-padded, octal) as 127.0.0.1. Its pool key is new, so the
-- next request to it opens a fresh connection whatever earlier specs left idle in the pool.
-- Each spec file counts from its own offset (http 0, pool 1024, redirect 2048, task 3072).
local fresh_n = 0
local function fresh_base()
  fresh_n = fresh_n + 1
  local n = fresh_n
  local a, b, c = n % 16 + 1, (n // 16) % 16 + 1, (n // 256) % 16
  return ("http://127.%s.%s.%s1:%s"):format(("0"):rep(a), ("0"):rep(b), ("0"):rep(c), PORT)
end

local function get_ok(url, opts)
  local res, err, kind = http.get(url, opts)
  assert(res, ("GET %s failed: %s (%s)"):format(url, tostring(err), tostring(kind)))
  return res
end

local function echo(res)
  assert.are.equal(200, res.status)
  return assert(cjson.decode(res.body))
end

-- Asserts a failure triple of the given kind; returns the message.
local function assert_kind(kind, res, err, got)
  assert.is_nil(res, "expected a failure of kind " .. kind .. ", got a response")
  assert.are.equal(kind, got, "message: " .. tostring(err))
  assert.is_string(err)
  assert.is_true(#err > 0)
  return err
end

-- Runs fn and returns the elapsed seconds and its three results.
local function timed(fn, ...)
  local t0 = task.now()
  local a, b, c = fn(...)
  return task.now() - t0, a, b, c
end

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

describe("http statuses", function()
  for _, code in ipairs{ 200, 201, 202, 204, 301, 302, 400, 401, 403, 404, 418, 429, 500, 502, 503, 504 } do
    it("returns status " .. code .. " as a response, not a failure", function()
      local res, err, kind = http.get(BASE .. "/status/" .. code)
      assert.is_table(res, tostring(err) .. " " .. tostring(kind))
      assert.is_nil(err)
      assert.are.equal(code, res.status)
      assert.are.equal("integer", math.type(res.status))
      assert.are.equal(code == 204 and "" or "status " .. code, res.body)
    end)
  end

  it("gives the reason phrase", function()
    assert.are.equal("Not Found", get_ok(BASE .. "/status/404").reason)
    assert.are.equal("OK", get_ok(BASE .. "/status/200").reason)
    assert.are.equal("Service Unavailable", get_ok(BASE .. "/status/503").reason)
  end)

  it("skips interim 1xx responses and returns the final one", function()
    for _, code in ipairs{ 100, 102, 103 } do
      local res = get_ok(BASE .. "/status/" .. code)
      assert.are.equal(200, res.status)
      assert.are.equal("status " .. code, res.body)
    end
  end)

  it("returns 404 for an unknown path", function()
    local res = get_ok(BASE .. "/no/such/path")
    assert.are.equal(404, res.status)
    assert.are.equal("not found", res.body)
  end)
end)

describe("http response headers", function()
  it("lower-cases every name", function()
    local res = get_ok(BASE .. "/json")
    local n = 0
    for k in pairs(res.headers) do
      assert.are.equal(k:lower(), k)
      n = n + 1
    end
    assert.is_true(n >= 2)
    assert.are.equal("application/json", res.headers["content-type"])
    assert.is_nil(res.headers["Content-Type"])
    assert.are.equal(tostring(#res.body), res.headers["content-length"])
  end)

  it("joins repeated headers with ', ' in arrival order", function()
    local res = get_ok(BASE .. "/repeat-headers")
    assert.are.equal("a=1; Path=/, b=2; Path=/", res.headers["set-cookie"])
    assert.are.equal("one, two", res.headers["x-multi"])
  end)

  it("keeps many headers", function()
    local res = get_ok(BASE .. "/many-headers?count=100")
    for i = 0, 99 do
      assert.are.equal(tostring(i), res.headers["x-h-" .. i])
    end
  end)
end)

describe("http request headers", function()
  it("sends the defaults: Host, User-Agent, Accept, Accept-Encoding", function()
    local e = echo(get_ok(BASE .. "/echo"))
    assert.are.equal("127.0.0.1:" .. PORT, e.headers.host)
    assert.truthy(e.headers["user-agent"]:match("^luafetch/%d"))
    assert.are.equal("*/*", e.headers.accept)
    assert.are.equal("gzip, deflate", e.headers["accept-encoding"])
    assert.is_nil(e.headers["content-length"]) -- a GET without a body
    assert.are.equal("HTTP/1.1", e.version)
    assert.are.equal("GET", e.method)
  end)

  it("sends script headers: strings, numbers, and arrays as repeated headers", function()
    local e = echo(get_ok(BASE .. "/echo", { headers = {
      ["X-Custom"] = "value with spaces", ["X-Num"] = 42, ["X-List"] = { "a", "b" },
      ["X-Latin1"] = "caf\xe9",
    } }))
    assert.are.equal("value with spaces", e.headers["x-custom"])
    assert.are.equal("42", e.headers["x-num"])
    assert.are.equal("a, b", e.headers["x-list"])
    assert.are.equal("caf\xc3\xa9", e.headers["x-latin1"]) -- the server decodes Latin-1
    local list = 0
    for _, pair in ipairs(e.raw_headers) do
      if pair[1] == "X-List" then list = list + 1 end
    end
    assert.are.equal(2, list)
  end)

  it("lets scripts replace the defaults without duplicates", function()
    local e = echo(get_ok(BASE .. "/echo", { headers = {
      ["user-agent"] = "spec/1", Accept = "application/json", Host = "virtual.test" } }))
    assert.are.equal("spec/1", e.headers["user-agent"])
    assert.are.equal("application/json", e.headers.accept)
    assert.are.equal("virtual.test", e.headers.host)
    local hosts = 0
    for _, pair in ipairs(e.raw_headers) do
      if pair[1]:lower() == "host" then hosts = hosts + 1 end
    end
    assert.are.equal(1, hosts)
  end)

  it("sends the path and query, and never the fragment", function()
    local e = echo(get_ok(BASE .. "/echo?a=1&b=two%20words&a=3#fragment"))
    assert.are.equal("/echo", e.path)
    assert.are.equal("a=1&b=two%20words&a=3", e.raw_query)
    assert.are.same({ "1", "3" }, e.query.a)
    assert.are.equal("two words", e.query.b)
  end)
end)

describe("http bodies", function()
  for _, n in ipairs{ 0, 1, 26, 100000, 1000000 } do
    it("reads a Content-Length body of " .. n .. " bytes", function()
      local res = get_ok(BASE .. "/bytes/" .. n)
      assert.are.equal(n, #res.body)
      assert.are.equal(pattern(n), res.body)
      assert.are.equal(tostring(n), res.headers["content-length"])
    end)
  end

  for _, case in ipairs{ { 0, 1 }, { 1, 1 }, { 1000, 4 }, { 100000, 7 }, { 300000, 100 } } do
    local n, k = case[1], case[2]
    it(("reads a chunked body of %d bytes in %d chunks"):format(n, k), function()
      local res = get_ok(("%s/chunked/%d?chunks=%d"):format(BASE, n, k))
      assert.are.equal("chunked", res.headers["transfer-encoding"])
      assert.are.equal(pattern(n), res.body)
    end)
  end

  it("reads a chunked body with trailers", function()
    local res = get_ok(BASE .. "/chunked/1000?trailer=1")
    assert.are.equal(pattern(1000), res.body)
  end)

  for _, n in ipairs{ 0, 10, 50000 } do
    it("reads a body delimited by EOF (" .. n .. " bytes)", function()
      local res = get_ok(BASE .. "/eof/" .. n)
      assert.are.equal("close", res.headers.connection)
      assert.are.equal(pattern(n), res.body)
    end)
  end

  it("reads an HTTP/1.0 response", function()
    local res = get_ok(BASE .. "/http10")
    assert.are.equal(200, res.status)
    assert.are.equal("http/1.0", res.body)
  end)

  it("keeps binary bytes intact", function()
    local body = ""
    for i = 0, 255 do body = body .. string.char(i) end
    body = body:rep(40)
    local e = echo(assert(http.post(BASE .. "/echo", body)))
    assert.are.equal(#body, e.body_length)
  end)
end)

describe("http decoding", function()
  it("decodes gzip and asks for it", function()
    local res = get_ok(BASE .. "/gzip/100000")
    assert.are.equal("gzip", res.headers["content-encoding"])
    assert.are.equal(100000, #res.body)
    assert.are.equal(pattern(100000), res.body)
    assert.truthy(res.headers["x-accept-encoding"]:match("gzip"))
  end)

  it("decodes deflate (zlib-wrapped)", function()
    local res = get_ok(BASE .. "/deflate/100000")
    assert.are.equal("deflate", res.headers["content-encoding"])
    assert.are.equal(pattern(100000), res.body)
    assert.truthy(res.headers["x-accept-encoding"]:match("deflate"))
  end)

  it("decompress=false sends no Accept-Encoding and leaves the body raw", function()
    local res = get_ok(BASE .. "/gzip/100000", { decompress = false })
    assert.are.equal("\31\139", res.body:sub(1, 2)) -- gzip magic
    assert.is_true(#res.body < 100000)
    assert.is_nil(res.headers["x-accept-encoding"])
    local d = get_ok(BASE .. "/deflate/1000", { decompress = false })
    assert.are.equal(0x78, d.body:byte(1)) -- zlib header
    assert.are_not.equal(pattern(1000), d.body)
  end)

  it("applies max_body to the decoded size", function()
    -- 100000 pattern bytes gzip to well under 1000 bytes
    assert.is_true(#get_ok(BASE .. "/gzip/100000", { decompress = false }).body < 1000)
    assert_kind("limit", http.get(BASE .. "/gzip/100000", { max_body = 99999 }))
    assert_kind("limit", http.get(BASE .. "/deflate/100000", { max_body = 5000 }))
  end)

  it("accepts a decoded body exactly max_body long", function()
    local res, err, kind = http.get(BASE .. "/gzip/100000", { max_body = 100000 })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(100000, #res.body)
    -- a larger stream arrives in several reads: the gzip trailer may come after the last
    -- decoded byte has filled the cap
    res, err, kind = http.get(BASE .. "/gzip-bomb/20971520", { max_body = 20971520 })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(20971520, #res.body)
  end)

  it("stops a gzip bomb at max_body", function()
    local elapsed, res, err, kind = timed(http.get, BASE .. "/gzip-bomb/104857600", { max_body = 1048576 })
    assert_kind("limit", res, err, kind)
    assert.is_true(elapsed < 5)
  end)

  it("stops a gzip bomb at the default max_body (64 MiB)", function()
    assert_kind("limit", http.get(BASE .. "/gzip-bomb/104857600"))
  end)
end)

describe("http limits", function()
  it("max_body caps Content-Length, chunked and EOF bodies", function()
    assert.are.equal(1000, #get_ok(BASE .. "/bytes/1000", { max_body = 1000 }).body)
    assert_kind("limit", http.get(BASE .. "/bytes/1000", { max_body = 999 }))
    assert.are.equal(1000, #get_ok(BASE .. "/chunked/1000", { max_body = 1000 }).body)
    assert_kind("limit", http.get(BASE .. "/chunked/1000", { max_body = 999 }))
    assert_kind("limit", http.get(BASE .. "/eof/1000", { max_body = 999 }))
    assert.are.equal("", get_ok(BASE .. "/bytes/0", { max_body = 0 }).body)
    assert_kind("limit", http.get(BASE .. "/bytes/1", { max_body = 0 }))
  end)

  it("refuses huge response headers with kind limit", function()
    assert_kind("limit", http.get(BASE .. "/huge-headers?size=100000"))
    assert.are.equal(("x"):rep(1000), get_ok(BASE .. "/huge-headers?size=1000").headers["x-big"])
  end)

  it("refuses too many response headers with kind limit", function()
    assert_kind("limit", http.get(BASE .. "/many-headers?count=300"))
  end)

  it("http.configure sets the header caps", function()
    local ok, err = pcall(function()
      http.configure{ max_header_bytes = 2048, max_header_count = 10 }
      assert_kind("limit", http.get(BASE .. "/huge-headers?size=3000"))
      assert_kind("limit", http.get(BASE .. "/many-headers?count=20"))
      assert.are.equal(200, get_ok(BASE .. "/many-headers?count=3").status)
    end)
    http.configure{ max_header_bytes = 64 * 1024, max_header_count = 256 }
    assert(ok, err)
    assert.are.equal(200, get_ok(BASE .. "/huge-headers?size=3000").status)
    assert.are.equal(200, get_ok(BASE .. "/many-headers?count=20").status)
  end)
end)

describe("http failure kinds", function()
  for _, path in ipairs{ "/garbage", "/badchunk", "/conflict", "/double-cl" } do
    it("protocol: " .. path, function()
      assert_kind("protocol", http.get(BASE .. path, { timeout = 5 }))
    end)
  end

  for _, path in ipairs{ "/truncated", "/truncated-chunked", "/reset", "/reset-mid", "/close-no-response" } do
    it("closed: " .. path, function()
      assert_kind("closed", http.get(BASE .. path, { timeout = 5 }))
    end)
  end

  it("closed: a POST to /close-no-response and /reset", function()
    assert_kind("closed", http.post(BASE .. "/close-no-response", "x", { timeout = 5 }))
    assert_kind("closed", http.post(BASE .. "/reset", "x", { timeout = 5 }))
  end)

  it("dns: a name that cannot resolve", function()
    local elapsed, res, err, kind = timed(http.get, "http://nonexistent.invalid/", { timeout = 5 })
    local msg = assert_kind("dns", res, err, kind)
    assert.truthy(msg:find("nonexistent.invalid", 1, true))
    assert.is_true(elapsed < 5)
  end)

  it("connect: a refused port", function()
    local msg = assert_kind("connect", http.get("http://127.0.0.1:1/", { timeout = 5 }))
    assert.truthy(msg:find("127.0.0.1", 1, true))
  end)

  it("keeps working after each kind of failure", function()
    assert.are.equal(pattern(100), get_ok(BASE .. "/bytes/100").body)
  end)
end)

describe("http timeouts", function()
  local function assert_timeout_near(limit, which, elapsed, res, err, kind)
    local msg = assert_kind("timeout", res, err, kind)
    assert.is_true(elapsed >= limit - 0.02, ("fired early: %.3fs < %.3fs"):format(elapsed, limit))
    assert.is_true(elapsed < limit + 0.3, ("fired late: %.3fs for %.3fs"):format(elapsed, limit))
    if which then assert.truthy(msg:find(which, 1, true), msg) end
  end

  it("read timeout on a silent server", function()
    assert_timeout_near(0.3, "read", timed(http.get, BASE .. "/silence", { timeout = { read = 0.3 } }))
  end)

  it("total timeout on a silent server", function()
    assert_timeout_near(0.3, "total", timed(http.get, BASE .. "/silence", { timeout = 0.3 }))
  end)

  it("read timeout after the headers", function()
    assert_timeout_near(0.3, "read", timed(http.get, BASE .. "/headers-then-stall", { timeout = { read = 0.3 } }))
  end)

  it("total timeout after the headers", function()
    assert_timeout_near(0.3, "total", timed(http.get, BASE .. "/headers-then-stall", { timeout = 0.3 }))
  end)

  it("a slow delay hits the total timeout", function()
    assert_timeout_near(0.3, "total", timed(http.get, BASE .. "/delay/3", { timeout = 0.3 }))
  end)

  it("the read timeout is idle time: a steady drip longer than it succeeds", function()
    local elapsed, res, err, kind = timed(http.get, BASE .. "/drip?bytes=6&interval=0.1", { timeout = { read = 0.3 } })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(pattern(6), res.body)
    assert.is_true(elapsed > 0.5)
  end)

  it("a gap longer than the read timeout fails", function()
    assert_timeout_near(0.3, "read", timed(http.get, BASE .. "/drip?bytes=3&interval=0.6", { timeout = { read = 0.3 } }))
  end)

  it("the total timeout stops a drip that never goes idle", function()
    assert_timeout_near(0.3, "total", timed(http.get, BASE .. "/drip?bytes=50&interval=0.05", { timeout = 0.3 }))
  end)

  it("read and total together: the first to expire wins", function()
    assert_timeout_near(0.4, "total", timed(http.get, BASE .. "/drip?bytes=50&interval=0.05",
      { timeout = { read = 0.3, total = 0.4 } }))
    assert_timeout_near(0.2, "read", timed(http.get, BASE .. "/silence", { timeout = { read = 0.2, total = 2 } }))
  end)

  it("a timeout table without total still works for quick responses", function()
    local res = get_ok(BASE .. "/status/200", { timeout = { connect = 1, read = 1 } })
    assert.are.equal(200, res.status)
  end)

  it("infinite timeouts and limits mean none (child process: no undefined behaviour)", function()
    assert.is_string(BIN, "LUAFETCH_BIN is not set")
    local code = ([[
      local http = require "http"
      local url = %q
      local function try(opts)
        local r, err, kind = http.get(url, opts)
        io.write(r and r.body or (tostring(kind) .. ": " .. tostring(err)), "\n")
      end
      try{ timeout = math.huge }
      try{ timeout = { read = math.huge } }
      try{ timeout = { total = 1e300 } }
      try{ max_body = math.huge }
    ]]):format(BASE .. "/delay/0.1")
    local errfile = os.tmpname()
    local f = assert(io.popen("timeout 10 " .. shell_quote(BIN) .. " -e " .. shell_quote(code) .. " 2>" .. errfile))
    local out = f:read("a")
    local _, _, status = f:close()
    local ef = io.open(errfile)
    local err = ef:read("a")
    ef:close()
    os.remove(errfile)
    assert.are.equal(("delayed\n"):rep(4), out)
    assert.are.equal("", err)
    assert.are.equal(0, status)
  end)

  it("HTTP_TIMEOUT sets the default timeout", function()
    assert.is_string(BIN, "LUAFETCH_BIN is not set")
    -- timed inside the child: start-up (slow under valgrind) is not the request's time
    local code = ("local t = require('task'); local t0 = t.now(); local r, e, k = require('http').get(%q); "
                  .. "io.write(tostring(k), ' ', t.now() - t0)"):format(BASE .. "/silence")
    local f = assert(io.popen("HTTP_TIMEOUT=0.3 " .. shell_quote(BIN) .. " -e " .. shell_quote(code) .. " 2>&1"))
    local out = f:read("a")
    f:close()
    local kind, elapsed = out:match("^(%S+) (%S+)$")
    assert.are.equal("timeout", kind, out)
    -- 0.3 s, not the default 30 s
    assert.is_true(tonumber(elapsed) >= 0.29 and tonumber(elapsed) < 5, out)
  end)
end)

describe("http request validation", function()
  local url = BASE .. "/echo"
  local bad = {
    { "an ftp URL", { url = "ftp://127.0.0.1/" } },
    { "a URL without scheme", { url = "127.0.0.1:" .. PORT .. "/" } },
    { "an empty host", { url = "http:///x" } },
    { "a space in the URL", { url = BASE .. "/a b" } },
    { "CR LF in the URL", { url = BASE .. "/\r\nX-Injected: 1" } },
    { "a bad port", { url = "http://127.0.0.1:99999/" } },
    { "a non-string url", { url = 42 } },
    { "no url", {} },
    { "a space in a header name", { url = url, headers = { ["Bad Name"] = "x" } } },
    { "a colon in a header name", { url = url, headers = { ["X:Y"] = "x" } } },
    { "an empty header name", { url = url, headers = { [""] = "x" } } },
    { "NUL in a header name", { url = url, headers = { ["X\0Y"] = "x" } } },
    { "CR LF in a header name", { url = url, headers = { ["X\r\nY"] = "x" } } },
    { "CR LF in a header value", { url = url, headers = { ["X-A"] = "a\r\nX-Injected: 1" } } },
    { "LF in a header value", { url = url, headers = { ["X-A"] = "a\nb" } } },
    { "CR in a header value", { url = url, headers = { ["X-A"] = "a\rb" } } },
    { "NUL in a header value", { url = url, headers = { ["X-A"] = "a\0b" } } },
    { "CR LF in one of repeated values", { url = url, headers = { ["X-A"] = { "ok", "a\r\nb" } } } },
    { "a boolean header value", { url = url, headers = { ["X-A"] = true } } },
    { "a non-string header name", { url = url, headers = { [1] = "x" } } },
    { "headers that are not a table", { url = url, headers = "X-A: 1" } },
    { "a script Content-Length", { url = url, headers = { ["Content-Length"] = "5" } } },
    { "a script Transfer-Encoding", { url = url, headers = { ["transfer-encoding"] = "chunked" } } },
    { "a space in the method", { url = url, method = "GE T" } },
    { "CR LF in the method", { url = url, method = "GET\r\nX: y" } },
    { "an empty method", { url = url, method = "" } },
    { "an unknown option", { url = url, foo = 1 } },
    { "a misspelled option", { url = url, timout = 1 } },
    { "a negative timeout", { url = url, timeout = -1 } },
    { "a zero timeout", { url = url, timeout = 0 } },
    { "a string timeout", { url = url, timeout = "5" } },
    { "an unknown timeout field", { url = url, timeout = { bogus = 1 } } },
    { "a negative read timeout", { url = url, timeout = { read = -1 } } },
    { "negative max_redirects", { url = url, max_redirects = -1 } },
    { "fractional max_redirects", { url = url, max_redirects = 1.5 } },
    { "negative max_body", { url = url, max_body = -1 } },
    { "a non-string body", { url = url, method = "POST", body = 123 } },
    { "both body and json", { url = url, method = "POST", body = "x", json = { a = 1 } } },
    { "json that cannot be encoded", { url = url, method = "POST", json = { f = print } } },
  }
  for _, case in ipairs(bad) do
    it("returns invalid at once for " .. case[1], function()
      local before = http.stats().requests
      local elapsed, res, err, kind = timed(http.request, case[2])
      assert_kind("invalid", res, err, kind)
      assert.is_true(elapsed < 0.05, ("took %.3fs"):format(elapsed))
      assert.are.equal(before, http.stats().requests, "a request was started")
    end)
  end

  it("returns invalid for NaN timeouts and sizes", function()
    local nan = 0 / 0
    assert_kind("invalid", http.get(BASE .. "/status/200", { timeout = nan }))
    assert_kind("invalid", http.get(BASE .. "/status/200", { timeout = { read = nan } }))
    assert_kind("invalid", http.get(BASE .. "/status/200", { timeout = { total = nan } }))
  end)

  it("returns invalid at once from http.get without options too", function()
    for _, url in ipairs{ "ftp://127.0.0.1/", "http://a b/", BASE .. "/\r\n", "" } do
      local before = http.stats().requests
      local elapsed, res, err, kind = timed(http.get, url)
      assert_kind("invalid", res, err, kind)
      assert.is_true(elapsed < 0.05)
      assert.are.equal(before, http.stats().requests)
    end
    assert_kind("invalid", http.get(nil))
    assert_kind("invalid", http.get(42))
    assert_kind("invalid", http.head("ftp://127.0.0.1/"))
    assert_kind("invalid", http.post("ftp://127.0.0.1/", "x"))
  end)

  it("returns invalid when the options are not a table", function()
    assert_kind("invalid", http.request("http://127.0.0.1/"))
    assert_kind("invalid", http.request())
  end)

  it("sends nothing for an invalid request (server side)", function()
    local before = assert(cjson.decode(get_ok(BASE .. "/stats").body)).requests
    assert_kind("invalid", http.get(BASE .. "/echo", { headers = { ["X-A"] = "a\r\nb" } }))
    local after = assert(cjson.decode(get_ok(BASE .. "/stats").body)).requests
    assert.are.equal(before, after)
  end)
end)

describe("http methods and bodies", function()
  it("get/post/put/patch/delete/options send their method", function()
    assert.are.equal("GET", echo(assert(http.get(BASE .. "/echo"))).method)
    assert.are.equal("POST", echo(assert(http.post(BASE .. "/echo", "b"))).method)
    assert.are.equal("PUT", echo(assert(http.put(BASE .. "/echo", "b"))).method)
    assert.are.equal("PATCH", echo(assert(http.patch(BASE .. "/echo", "b"))).method)
    assert.are.equal("DELETE", echo(assert(http.delete(BASE .. "/echo"))).method)
    assert.are.equal("OPTIONS", echo(assert(http.options(BASE .. "/echo"))).method)
  end)

  it("request{} takes any token method and upper-cases it", function()
    assert.are.equal("PROPFIND", echo(assert(http.request{ url = BASE .. "/echo", method = "PROPFIND" })).method)
    assert.are.equal("PATCH", echo(assert(http.request{ url = BASE .. "/echo", method = "patch", body = "x" })).method)
  end)

  it("echoes a POST body with its Content-Length", function()
    local e = echo(assert(http.post(BASE .. "/echo", "hello body")))
    assert.are.equal("hello body", e.body)
    assert.are.equal(10, e.body_length)
    assert.are.equal("10", e.headers["content-length"])
    assert.is_false(e.chunked)
    assert.is_nil(e.headers["content-type"])
  end)

  it("sends a large body (beyond one write)", function()
    local body = pattern(300000)
    local e = echo(assert(http.put(BASE .. "/echo", body)))
    assert.are.equal(300000, e.body_length)
    assert.are.equal(body, e.body)
  end)

  it("sends Content-Length: 0 for an empty POST", function()
    local e = echo(assert(http.post(BASE .. "/echo", "")))
    assert.are.equal("0", e.headers["content-length"])
    assert.are.equal(0, e.body_length)
    e = echo(assert(http.request{ url = BASE .. "/echo", method = "POST" }))
    assert.are.equal("0", e.headers["content-length"])
  end)

  it("json= encodes the body and sets Content-Type", function()
    local e = echo(assert(http.request{ url = BASE .. "/echo", method = "POST",
                                        json = { name = "x", list = { 1, 2, 3 }, nested = { ok = true } } }))
    assert.are.equal("application/json", e.headers["content-type"])
    local sent = assert(cjson.decode(e.body))
    assert.are.same({ name = "x", list = { 1, 2, 3 }, nested = { ok = true } }, sent)
    assert.are.equal(tostring(#e.body), e.headers["content-length"])
  end)

  it("a table body to post/put/patch is sent as JSON", function()
    for _, fn in ipairs{ http.post, http.put, http.patch } do
      local e = echo(assert(fn(BASE .. "/echo", { a = 1 })))
      assert.are.equal("application/json", e.headers["content-type"])
      assert.are.same({ a = 1 }, cjson.decode(e.body))
    end
  end)

  it("json= keeps a Content-Type the script set", function()
    local e = echo(assert(http.post(BASE .. "/echo", { a = 1 },
      { headers = { ["content-type"] = "application/vnd.test+json" } })))
    assert.are.equal("application/vnd.test+json", e.headers["content-type"])
  end)

  it("HEAD has an empty body and the connection stays usable", function()
    local res = assert(http.head(BASE .. "/bytes/1000"))
    assert.are.equal(200, res.status)
    assert.are.equal("", res.body)
    assert.are.equal("1000", res.headers["content-length"])
    local chunked = assert(http.head(BASE .. "/chunked/1000"))
    assert.are.equal("", chunked.body)
    -- the next request on the pooled connection must not read a body that never came
    local after = get_ok(BASE .. "/bytes/10", { timeout = 2 })
    assert.are.equal(pattern(10), after.body)
  end)
end)

describe("res:json()", function()
  it("decodes a JSON body", function()
    local v = assert(get_ok(BASE .. "/json"):json())
    assert.is_true(v.ok)
    assert.are.equal(42, v.n)
    assert.are.same({ 1, 2, 3 }, v.list)
  end)

  it("returns nil and a message for a body that is not JSON", function()
    local v, err = get_ok(BASE .. "/bytes/10"):json()
    assert.is_nil(v)
    assert.is_string(err)
  end)
end)

describe("res.url, res.reused, res.timings", function()
  it("res.url is the requested URL without redirects", function()
    assert.are.equal(BASE .. "/status/200", get_ok(BASE .. "/status/200").url)
  end)

  it("timings of a fresh connection are present and ordered", function()
    local base = fresh_base()
    local res = get_ok(base .. "/bytes/10")
    assert.is_false(res.reused)
    local t = res.timings
    for _, k in ipairs{ "dns", "connect", "tls", "ttfb", "total" } do
      assert.are.equal("number", type(t[k]), k)
      assert.is_true(t[k] >= 0, k)
    end
    assert.are.equal(0, t.tls)
    assert.is_true(t.connect > 0)
    assert.is_true(t.ttfb > 0)
    assert.is_true(t.ttfb >= t.connect)
    assert.is_true(t.ttfb >= t.dns)
    assert.is_true(t.total >= t.ttfb)
    assert.is_true(t.total >= t.dns + t.connect)
    assert.is_true(t.total < 5)
  end)

  it("a reused connection has no dns or connect time", function()
    local base = fresh_base()
    get_ok(base .. "/bytes/10")
    local res = get_ok(base .. "/bytes/10")
    assert.is_true(res.reused)
    assert.are.equal(0, res.timings.dns)
    assert.are.equal(0, res.timings.connect)
    assert.is_true(res.timings.ttfb > 0)
    assert.is_true(res.timings.total >= res.timings.ttfb)
  end)

  it("ttfb reflects a slow server", function()
    local res = get_ok(BASE .. "/delay/0.2")
    assert.is_true(res.timings.ttfb >= 0.19)
    assert.is_true(res.timings.total >= res.timings.ttfb)
  end)
end)

describe("http.stats()", function()
  it("has every counter", function()
    local s = http.stats()
    for _, k in ipairs{ "requests", "connections_opened", "connections_reused", "dns_lookups", "dns_hits", "in_flight" } do
      assert.are.equal("integer", math.type(s[k]), k)
    end
  end)

  it("counters move with requests, connections and lookups", function()
    local base = fresh_base()
    local s0 = http.stats()
    get_ok(base .. "/status/200")
    local s1 = http.stats()
    assert.are.equal(s0.requests + 1, s1.requests)
    assert.are.equal(s0.connections_opened + 1, s1.connections_opened)
    assert.are.equal(s0.dns_lookups + 1, s1.dns_lookups)
    assert.are.equal(0, s1.in_flight)

    get_ok(base .. "/status/200") -- over the pooled connection
    local s2 = http.stats()
    assert.are.equal(s1.requests + 1, s2.requests)
    assert.are.equal(s1.connections_reused + 1, s2.connections_reused)
    assert.are.equal(s1.connections_opened, s2.connections_opened)
    assert.are.equal(s1.dns_lookups, s2.dns_lookups)

    get_ok(base .. "/close") -- the server closes: the next request connects again
    get_ok(base .. "/status/200")
    local s3 = http.stats()
    assert.are.equal(s2.requests + 2, s3.requests)
    assert.are.equal(s2.connections_opened + 1, s3.connections_opened)
    assert.are.equal(s2.dns_lookups, s3.dns_lookups) -- the name came from the cache
    assert.are.equal(s2.dns_hits + 1, s3.dns_hits)
  end)

  it("in_flight counts requests under way", function()
    local t = task.spawn(function() return http.get(BASE .. "/delay/0.2") end)
    task.sleep(0.05)
    assert.are.equal(1, http.stats().in_flight)
    local ok, res = t:join()
    assert.is_true(ok)
    assert.are.equal(200, res.status)
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("concurrent lookups of one name are merged into one", function()
    local base = fresh_base()
    local s0 = http.stats()
    local ts = {}
    for i = 1, 10 do ts[i] = task.spawn(function() return http.get(base .. "/bytes/1") end) end
    for i = 1, 10 do
      local ok, res = ts[i]:join()
      assert.is_true(ok)
      assert.are.equal(200, res.status)
    end
    local s1 = http.stats()
    assert.are.equal(s0.dns_lookups + 1, s1.dns_lookups)
    assert.are.equal(s0.dns_hits + 9, s1.dns_hits)
    assert.are.equal(s0.connections_opened + 10, s1.connections_opened)
  end)

  it("IP literals need no lookup", function()
    local s0 = http.stats()
    get_ok("http://127.0.0.1:" .. PORT .. "/close")
    get_ok("http://127.0.0.1:" .. PORT .. "/close")
    local s1 = http.stats()
    assert.are.equal(s0.dns_lookups, s1.dns_lookups)
  end)
end)

describe("http concurrency", function()
  it("1000 concurrent tasks each doing a GET all succeed", function()
    local n = 1000
    local tasks = {}
    local t0 = task.now()
    for i = 1, n do
      tasks[i] = task.spawn(function()
        return http.get(BASE .. "/bytes/64?i=" .. i, { timeout = 20 })
      end)
    end
    local good = 0
    local failures = {}
    for i = 1, n do
      local ok, res, err, kind = tasks[i]:join()
      if ok and res and res.status == 200 and res.body == pattern(64) then
        good = good + 1
      else
        failures[#failures + 1] = tostring(err) .. " (" .. tostring(kind) .. ")"
      end
    end
    assert.are.equal(n, good, table.concat(failures, "; ", 1, math.min(5, #failures)))
    assert.are.equal(0, http.stats().in_flight)
    assert.is_true(task.now() - t0 < 20)
  end)

  it("imposes no concurrency limit of its own (server side)", function()
    local base = fresh_base()
    assert(http.get(BASE .. "/stats/reset"))
    local ts = {}
    for i = 1, 100 do
      ts[i] = task.spawn(function() return http.get(base .. "/inflight?delay=0.6&i=" .. i) end)
    end
    for i = 1, 100 do
      local ok, res = ts[i]:join()
      assert.is_true(ok)
      assert.are.equal(200, res.status)
    end
    local s = assert(get_ok(BASE .. "/stats"):json())
    assert.are.equal(100, s.max_inflight)
  end)

  it("many tasks share the pool: a second wave reuses connections", function()
    local base = fresh_base()
    local function wave()
      local ts = {}
      for i = 1, 50 do
        ts[i] = task.spawn(function() return http.get(base .. "/bytes/8") end)
      end
      local reused = 0
      for i = 1, 50 do
        local ok, res = ts[i]:join()
        assert.is_true(ok)
        assert.are.equal(200, res.status)
        if res.reused then reused = reused + 1 end
      end
      return reused
    end
    assert.are.equal(0, wave())
    local s0 = http.stats()
    assert.are.equal(50, wave())
    assert.are.equal(s0.connections_opened, http.stats().connections_opened)
  end)
end)
