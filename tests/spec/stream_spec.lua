-- stream_spec.lua: response bodies as streams (DESIGN "Bodies as streams — contract") against the
-- fixture server and, for HTTP/2, nginx from tests/fixtures/h2_servers.py: output= (PATH.part
-- renamed when complete, removed on any failure or cancel; devices written in place), sink=
-- (which may yield), stream = true with res:read/chunks/close, gzip decoded in every mode,
-- max_body not applying, a slow consumer keeping memory bounded (the socket is not read, the
-- HTTP/2 window not reopened), the read timeout counting the server's silence only, and a task
-- cancelled mid-stream.

local http = require "http"
local task = require "task"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local CERTS = assert(os.getenv("FIXTURE_CERTS"), "FIXTURE_CERTS is not set (run tests/run_specs.sh)")
local ROOT = os.getenv("LUAFETCH_ROOT") or "."
-- ASan's quarantine keeps freed memory resident: the RSS bounds hold for the plain build only
local ASAN = assert(os.getenv("LUAFETCH_BIN")):find("/asan/", 1, true) ~= nil

local function ok(res, err, kind)
  assert(res, ("request failed: %s (%s)"):format(tostring(err), tostring(kind)))
  return res
end

-- The fixture's pattern: n bytes of abc…xyzabc…
local function pattern(n)
  local abc = "abcdefghijklmnopqrstuvwxyz"
  return (abc:rep(n // 26 + 1)):sub(1, n)
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function status_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local function tmp_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

describe("output =", function()
  it("writes the body to PATH through PATH.part; res.body is nil, res.size the byte count", function()
    local path = tmp_path()
    local res = ok(http.request{ url = BASE .. "/bytes/300000", output = path })
    assert.are.equal(200, res.status)
    assert.is_nil(res.body)
    assert.are.equal(300000, res.size)
    assert.are.equal(pattern(300000), slurp(path))
    assert.is_false(exists(path .. ".part"))
    os.remove(path)
  end)

  it("http.download(url, path) is the same", function()
    local path = tmp_path()
    local res = ok(http.download(BASE .. "/chunked/100000?chunks=7", path))
    assert.are.equal(100000, res.size)
    assert.are.equal(pattern(100000), slurp(path))
    os.remove(path)
  end)

  it("decodes gzip into the file", function()
    local path = tmp_path()
    local res = ok(http.download(BASE .. "/gzip/500000", path))
    assert.are.equal(500000, res.size)
    assert.are.equal(pattern(500000), slurp(path))
    os.remove(path)
  end)

  for _, case in ipairs{ "/truncated", "/truncated-chunked", "/reset-mid" } do
    it("leaves no file when the body is cut (" .. case .. ")", function()
      local path = tmp_path()
      local res, err, kind = http.download(BASE .. case, path)
      assert.is_nil(res)
      assert.are.equal("closed", kind, err)
      assert.is_false(exists(path))
      assert.is_false(exists(path .. ".part"))
    end)
  end

  it("leaves no file when a gzip body ends early", function()
    -- Content-Length cut short is "closed"; a bad gzip stream is "protocol": neither leaves a file
    local path = tmp_path()
    local res, _, kind = http.download(BASE .. "/truncated", path, { timeout = { read = 2 } })
    assert.is_nil(res)
    assert.is_string(kind)
    assert.is_false(exists(path .. ".part"))
  end)

  it("takes the body of any status, and max_body does not apply", function()
    local path = tmp_path()
    local res = ok(http.download(BASE .. "/status/404", path))
    assert.are.equal(404, res.status)
    assert.are.equal("status 404", slurp(path))
    os.remove(path)
    res = ok(http.download(BASE .. "/bytes/100000", path, { max_body = 10 }))
    assert.are.equal(100000, #slurp(path))
    os.remove(path)
  end)

  it("writes a device in place (no PATH.part next to it)", function()
    local res = ok(http.download(BASE .. "/bytes/70000", "/dev/null"))
    assert.are.equal(70000, res.size)
    assert.is_false(exists("/dev/null.part"))
  end)

  it("fails with a message when the path cannot be written, and leaves nothing", function()
    local res, err = http.download(BASE .. "/bytes/10", "/nonexistent-dir/x")
    assert.is_nil(res)
    assert.matches("cannot write", err)
    assert.are.equal(0, http.stats().in_flight)
    -- a write that fails mid-body (the core writes the chunks): a full device, small and large
    for _, n in ipairs({ 100, 300000 }) do
      local r2, err2, kind = http.download(BASE .. "/bytes/" .. n, "/dev/full")
      assert.is_nil(r2)
      assert.are.equal("invalid", kind)
      assert.matches("cannot write /dev/full: No space left on device", err2, 1, true)
    end
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("removes PATH.part when the task is cancelled mid-body", function()
    local path = tmp_path()
    local t = task.spawn(function()
      return http.download(BASE .. "/drip?bytes=100&interval=0.05", path)
    end)
    task.sleep(0.3)
    assert.is_true(exists(path .. ".part"))
    t:cancel()
    task.sleep(0.05)
    assert.is_false(exists(path .. ".part"))
    assert.is_false(exists(path))
    assert.are.equal(0, http.stats().in_flight)
  end)
end)

describe("sink =", function()
  it("gets each decoded chunk, may yield, and res.size counts them", function()
    local parts = {}
    local res = ok(http.request{ url = BASE .. "/gzip/200000", sink = function(chunk)
      parts[#parts + 1] = chunk
      task.sleep(0.001)
    end })
    assert.are.equal(200, res.status)
    assert.is_nil(res.body)
    assert.are.equal(200000, res.size)
    assert.are.equal(pattern(200000), table.concat(parts))
  end)

  it("reports a body cut mid-way", function()
    local res, err, kind = http.request{ url = BASE .. "/truncated-chunked", sink = function() end }
    assert.is_nil(res)
    assert.are.equal("closed", kind, err)
  end)
end)

describe("stream = true", function()
  it("returns after the head; res:read() gives chunks then nil", function()
    local res = ok(http.request{ url = BASE .. "/bytes/1000000", stream = true })
    assert.are.equal(200, res.status)
    assert.are.equal("1000000", res.headers["content-length"])
    assert.is_nil(res.body)
    local parts = {}
    for chunk in res:chunks() do parts[#parts + 1] = chunk end
    assert.are.equal(pattern(1000000), table.concat(parts))
    assert.are.equal(1000000, res.size)
    assert.is_nil(res:read())
  end)

  it("returns before the body is in (/drip); timings.total runs to the body's end", function()
    local t0 = task.now()
    local res = ok(http.request{ url = BASE .. "/drip?bytes=5&interval=0.2", stream = true })
    assert.is_true(task.now() - t0 < 0.5)
    local parts = {}
    for chunk in res:chunks() do parts[#parts + 1] = chunk end
    assert.are.equal(5, #table.concat(parts))
    assert.is_true(res.timings.total >= 0.8, tostring(res.timings.total))
  end)

  it("output=: timings.total counts the whole body", function()
    local res = ok(http.download(BASE .. "/drip?bytes=4&interval=0.2", "/dev/null"))
    assert.is_true(res.timings.total >= 0.6, tostring(res.timings.total))
  end)

  it("decodes gzip chunk by chunk", function()
    local res = ok(http.request{ url = BASE .. "/gzip/300000", stream = true })
    local parts = {}
    for chunk in res:chunks() do parts[#parts + 1] = chunk end
    assert.are.equal(pattern(300000), table.concat(parts))
  end)

  it("decodes a highly compressed body a bounded piece at a time (/gzip-bomb)", function()
    local n = 50 * 1024 * 1024
    local res = ok(http.request{ url = BASE .. "/gzip-bomb/" .. n, stream = true })
    local total, biggest = 0, 0
    for chunk in res:chunks() do
      total = total + #chunk
      biggest = math.max(biggest, #chunk)
    end
    assert.are.equal(n, total)
    assert.is_true(biggest <= 1024 * 1024, ("a chunk of %d bytes"):format(biggest))
  end)

  it("res:read() after a cut body gives nil, msg, kind", function()
    local res = ok(http.request{ url = BASE .. "/truncated", stream = true })
    local chunk, err, kind
    repeat chunk, err, kind = res:read() until not chunk
    assert.are.equal("closed", kind, err)
  end)

  it("res:close() ends early and closes the connection; then read gives nil, closed, canceled", function()
    -- a spelling of 127.0.0.1 no other spec uses: its own pool key, whatever other specs left idle
    local base = BASE:gsub("127%.0%.0%.1", "127.0000000000000000000000.0.1")
    local opened = http.stats().connections_opened
    local res = ok(http.request{ url = base .. "/bytes/50000000", stream = true })
    assert.is_string(res:read())
    res:close()
    local chunk, err, kind = res:read()
    assert.is_nil(chunk)
    assert.are.equal("closed", err)
    assert.are.equal("canceled", kind)
    assert.are.equal(0, http.stats().in_flight)
    -- the connection was not pooled: the next request opens another
    ok(http.get(base .. "/bytes/10"))
    assert.are.equal(opened + 2, http.stats().connections_opened)
  end)

  it("follows redirects to the final body", function()
    local res = ok(http.request{ url = BASE .. "/redirect/2", stream = true })
    assert.are.equal(2, res.redirects)
    assert.are.equal("done", res:read())
    assert.is_nil(res:read())
  end)

  it("the read timeout is the server's silence (/headers-then-stall)", function()
    local res = ok(http.request{ url = BASE .. "/headers-then-stall", stream = true, timeout = { read = 0.3 } })
    local chunk, err, kind = res:read()
    assert.is_nil(chunk)
    assert.are.equal("timeout", kind, err)
  end)

  it("keeps memory bounded for a slow consumer, and the consumer's slowness is no read timeout", function()
    local n = 200 * 1024 * 1024
    collectgarbage()
    local rss0 = status_kb("VmRSS")
    -- read = 1 s: the consumer's 1.5 s pause must not count, while the fixture server (python,
    -- sharing two cores with an ASan or valgrind client) may itself stall for a few tenths
    local res = ok(http.request{ url = BASE .. "/bytes/" .. n, stream = true, timeout = { read = 1 } })
    local got = #assert(res:read())
    task.sleep(1.5) -- a fast server and a consumer that does not read
    local peak = status_kb("VmRSS")
    -- one read takes everything buffered: no more than the bound and one socket read
    local held = #assert(res:read())
    assert.is_true(held <= 512 * 1024, ("%d bytes were buffered"):format(held))
    got = got + held
    local i = 0
    while true do
      local chunk, err, kind = res:read()
      if not chunk then
        assert.is_nil(err, kind)
        break
      end
      got = got + #chunk
      i = i + 1
      if i % 200 == 0 then
        task.sleep(0.5)
        peak = math.max(peak, status_kb("VmRSS"))
      end
    end
    assert.are.equal(n, got)
    assert.is_true(ASAN or peak - rss0 < 32 * 1024, ("RSS grew by %d kB"):format(peak - rss0))
  end)

  it("a task cancelled while it waits for a chunk ends the exchange", function()
    local t = task.spawn(function()
      local res = ok(http.request{ url = BASE .. "/drip?bytes=100&interval=0.05", stream = true })
      while res:read() do end
    end)
    task.sleep(0.3)
    assert.are.equal(1, http.stats().in_flight)
    t:cancel()
    task.sleep(0.05)
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("a script that ends without reading its streamed body to the end ends", function()
    local script = tmp_path() .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write(([[
local http = require "http"
local res = assert(http.request{ url = %q, stream = true })
assert(res:read())
]]):format(BASE .. "/bytes/50000000"))
    f:close()
    local t0 = os.time()
    local okx, how, code = os.execute(("timeout 20 %s run %s"):format(os.getenv("LUAFETCH_BIN"), script))
    os.remove(script)
    assert.is_true(okx, ("%s %s"):format(tostring(how), tostring(code)))
    assert.is_true(os.time() - t0 < 10)
  end)

  it("a response not read to the end is freed when collected", function()
    do
      local res = ok(http.request{ url = BASE .. "/bytes/10000000", stream = true })
      assert.is_string(res:read())
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, http.stats().in_flight)
  end)
end)

describe("request bodies from files and functions", function()
  local cjson = require "cjson.safe"

  local function echo(res)
    assert.are.equal(200, res.status)
    return assert(cjson.decode(res.body))
  end

  local function sha256(s)
    local path = tmp_path()
    local f = assert(io.open(path, "wb"))
    f:write(s)
    f:close()
    local p = assert(io.popen("sha256sum " .. path))
    local out = p:read("a")
    p:close()
    os.remove(path)
    return out:match("^(%x+)")
  end

  it("body = file: sent from its position to its end, with Content-Length", function()
    local path = tmp_path()
    local data = pattern(300000)
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
    f = assert(io.open(path, "rb"))
    f:read(1000)
    local e = echo(ok(http.request{ url = BASE .. "/echo", method = "POST", body = f }))
    assert.are.equal(299000, e.body_length)
    assert.are.equal("299000", e.headers["content-length"])
    assert.is_false(e.chunked)
    assert.are.equal(sha256(data:sub(1001)), e.body_sha256)
    f:close()
    os.remove(path)
  end)

  it("body = file is sent again on a 307", function()
    local path = tmp_path()
    local f = assert(io.open(path, "wb"))
    f:write(pattern(50000))
    f:close()
    f = assert(io.open(path, "rb"))
    local e = echo(ok(http.request{ url = BASE .. "/redirect-to?url=/echo&status=307", method = "POST", body = f }))
    assert.are.equal(50000, e.body_length)
    f:close()
    os.remove(path)
  end)

  it("body = function: each piece (the function may yield), sent chunked", function()
    local i = 0
    local e = echo(ok(http.request{ url = BASE .. "/echo", method = "PUT", body = function()
      i = i + 1
      if i > 5 then return nil end
      task.sleep(0.005)
      return ("%d:"):format(i) .. ("x"):rep(70000)
    end }))
    assert.is_true(e.chunked)
    assert.is_nil(e.headers["content-length"])
    assert.are.equal(5 * 70002, e.body_length)
    assert.are.equal("1:xxx", e.body:sub(1, 5))
  end)

  it("body = function with body_size: sent with Content-Length; a wrong size fails as invalid", function()
    local pieces = { pattern(70000), pattern(1), pattern(30000) }
    local i = 0
    local e = echo(ok(http.request{ url = BASE .. "/echo", method = "POST", body_size = 100001,
      body = function() i = i + 1; return pieces[i] end }))
    assert.is_false(e.chunked)
    assert.are.equal("100001", e.headers["content-length"])
    assert.are.equal(100001, e.body_length)
    assert.are.equal(sha256(table.concat(pieces)), e.body_sha256)
    assert.are.equal(3, i) -- not asked again once the size is reached
    for _, case in ipairs({ { 100000, "more" }, { 100002, "fewer" } }) do
      i = 0
      local res, err, kind = http.request{ url = BASE .. "/echo", method = "POST", body_size = case[1],
        body = function() i = i + 1; return pieces[i] end }
      assert.is_nil(res)
      assert.are.equal("invalid", kind)
      assert.are.equal(("body: the function gave %s than the body_size of %d bytes"):format(case[2], case[1]), err)
    end
    assert.are.equal(0, http.stats().in_flight)
    local res, err, kind = http.request{ url = BASE .. "/echo", method = "POST", body = "x", body_size = 1 }
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("body_size must be a size in bytes, given with body = function", err, 1, true)
  end)

  it("body = function is asked for the next piece only once the last one is written", function()
    -- a peer that accepts and never reads: once the socket buffers are full no piece is asked for
    local p = assert(io.popen([[exec python3 -c "
import os, socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
print(s.getsockname()[1], os.getpid(), flush=True)
c, _ = s.accept(); time.sleep(20)"]], "r"))
    local port, pid = p:read("l"):match("^(%d+) (%d+)$")
    local calls = 0
    local piece = ("y"):rep(256 * 1024)
    local res, _, kind = http.request{ url = "http://127.0.0.1:" .. port .. "/", method = "POST",
      timeout = 1.5, body = function() calls = calls + 1; return piece end }
    os.execute("kill " .. pid)
    p:close()
    assert.is_nil(res)
    assert.are.equal("timeout", kind)
    assert.is_true(calls < 100, ("asked %d times (%d MB)"):format(calls, calls // 4))
  end)

  it("a task cancelled inside the body function ends the exchange", function()
    local t = task.spawn(function()
      return http.request{ url = BASE .. "/echo", method = "POST", body = function()
        task.sleep(10)
        return "never"
      end }
    end)
    task.sleep(0.2)
    assert.are.equal(1, http.stats().in_flight)
    t:cancel()
    task.sleep(0.05)
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("an error in the body function ends the exchange and reaches the caller", function()
    local okp, err = pcall(http.request, { url = BASE .. "/echo", method = "POST",
      body = function() error("no more data") end })
    assert.is_false(okp)
    assert.matches("no more data", tostring(err))
    task.sleep(0.05)
    assert.are.equal(0, http.stats().in_flight)
  end)

  it("a 307 of a function body fails with kind redirect", function()
    local res, err, kind = http.request{ url = BASE .. "/redirect-to?url=/echo&status=307", method = "POST",
      body = function() return nil end }
    assert.is_nil(res)
    assert.are.equal("redirect", kind)
    assert.matches("function", err)
  end)

  it("a function returning something else fails with kind invalid", function()
    local res, _, kind = http.request{ url = BASE .. "/echo", method = "POST", body = function() return 42 end }
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.are.equal(0, http.stats().in_flight)
  end)
end)

describe("HTTP/2 streamed bodies", function()
  local S, stop = {}, nil

  setup(function()
    S, stop = require("tests.spec.support.child").start_fixture("h2_servers.py", CERTS)
  end)


  teardown(function()
    if stop then stop() end
  end)

  local function sha256_file(path)
    local p = assert(io.popen("sha256sum " .. path))
    local out = p:read("a")
    p:close()
    return out:match("^(%x+)")
  end

  it("output= over h2 (nginx): 20 MiB intact", function()
    local path = tmp_path()
    local res = ok(http.download(S.nginx_h2 .. "/big.bin", path, { ca_file = CERTS .. "/ca.pem" }))
    assert.are.equal("2", res.version)
    assert.are.equal(20 * 1024 * 1024 + 123, res.size)
    assert.are.equal(S.big_sha256, sha256_file(path))
    os.remove(path)
  end)

  it("a slow consumer stops the stream's window: memory bounded, body intact", function()
    collectgarbage()
    local rss0 = status_kb("VmRSS")
    local res = ok(http.request{ url = S.nginx_h2 .. "/big.bin", stream = true,
                                 ca_file = CERTS .. "/./ca.pem", timeout = { read = 0.4 } })
    assert.are.equal("2", res.version)
    local path = tmp_path()
    local f = assert(io.open(path, "wb"))
    local first = res:read()
    assert.is_string(first)
    f:write(first)
    task.sleep(1) -- nginx would send all 20 MiB by now if the window reopened
    local peak = status_kb("VmRSS")
    -- one read takes everything buffered: the bound and at most one stream window (1 MiB)
    local held = assert(res:read())
    assert.is_true(#held <= 1536 * 1024, ("%d bytes were buffered"):format(#held))
    f:write(held)
    for chunk in res:chunks() do f:write(chunk) end
    f:close()
    assert.is_true(ASAN or peak - rss0 < 8 * 1024, ("RSS grew by %d kB"):format(peak - rss0))
    assert.are.equal(S.big_sha256, sha256_file(path))
    os.remove(path)
  end)
end)
