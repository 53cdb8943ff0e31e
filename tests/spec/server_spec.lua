-- server_spec.lua: http.serve (lua/server.lua over core/http/server.c) inside the host, on real sockets.
-- Servers run in this process on port 0 and are called with http.get/post from this task, so the
-- handler tasks and the client share the loop. Byte-level cases (garbage, oversized heads and
-- bodies, slowloris, pipelining, 100-continue, HTTP/1.0) use a raw Python client started in the
-- background (os.execute ... &) that writes its result to a file, which this task polls with
-- task.sleep: the loop keeps serving meanwhile. Lifetime cases (a listening server keeps the
-- program alive, clean exit, shutdown with a stuck handler, SIGTERM) run child luafetch processes.

local http = require "http"
local task = require "task"
local cjson = require "cjson.safe"
local serve = http.serve or require("server").serve

local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")
local PY = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local tmpfiles = {}
local function tmpfile(suffix, content)
  local path = os.tmpname() .. (suffix or "")
  if content then
    local f = assert(io.open(path, "w"))
    f:write(content)
    f:close()
  end
  tmpfiles[#tmpfiles + 1] = path
  return path
end

-- The raw client: connects, sends each (bytes, seconds to read afterwards) step, then reads until
-- EOF or read_timeout; writes {data, eof, reset, sent_all, elapsed} as JSON (renamed into place).
local RAW_CLIENT = [==[
import json, os, select, socket, sys, time
port, out, steps = int(sys.argv[1]), sys.argv[2], eval(sys.argv[3])
read_timeout = float(sys.argv[4])
res = {"eof": False, "reset": False, "sent_all": True}
chunks = []
t0 = time.monotonic()
s = socket.create_connection((sys.argv[5], port), timeout=5)
def pump(wait):
    end = time.monotonic() + wait
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([s], [], [], left)
        if not r:
            return False
        try:
            d = s.recv(65536)
        except OSError:
            res["reset"] = True
            return True
        if not d:
            return True
        chunks.append(d)
ended = False
for data, delay in steps:
    try:
        s.sendall(data)
    except OSError:
        res["sent_all"] = False
        break
    if pump(delay):
        ended = True
        break
if not ended:
    ended = pump(read_timeout)
res["eof"] = ended
res["elapsed"] = time.monotonic() - t0
res["data"] = b"".join(chunks).decode("latin-1")
with open(out + ".tmp", "w") as f:
    json.dump(res, f)
os.rename(out + ".tmp", out)
]==]

local raw_script

-- Runs the raw client against port in the background and waits (yielding) for its result.
-- steps is a Python expression: a list of (bytes, seconds) pairs.
local function raw(port, steps, read_timeout, host)
  raw_script = raw_script or tmpfile(".py", RAW_CLIENT)
  local out = tmpfile(".json")
  os.remove(out)
  local cmd = ("timeout 30 %s %s %d %s %s %s %s >/dev/null 2>&1 &"):format(PY, shell_quote(raw_script),
    port, shell_quote(out), shell_quote(steps), tostring(read_timeout or 3), host or "127.0.0.1")
  os.execute(cmd)
  local deadline = task.now() + 30
  while task.now() < deadline do
    local f = io.open(out)
    if f then
      local s = f:read("a")
      f:close()
      return assert(cjson.decode(s))
    end
    task.sleep(0.02)
  end
  error("the raw client did not finish: " .. cmd)
end

-- Responses in raw bytes: { {status=, headers={lower=value}, body=} ... } (Content-Length framing).
local function parse_responses(data)
  local out, pos = {}, 1
  while pos <= #data do
    local head_end = data:find("\r\n\r\n", pos, true)
    if not head_end then break end
    local head = data:sub(pos, head_end - 1)
    local status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)"))
    local headers = {}
    for name, value in head:gmatch("\r\n([^:\r\n]+): ([^\r\n]*)") do
      headers[name:lower()] = value
    end
    local len = tonumber(headers["content-length"] or 0)
    if status and status < 200 then len = 0 end
    out[#out + 1] = { status = status, headers = headers, body = data:sub(head_end + 4, head_end + 3 + len) }
    pos = head_end + 4 + len
  end
  return out
end

-- Runs BIN with a script under `timeout 20`; returns stdout, stderr, exit code.
local function run_child(source, ...)
  local script = tmpfile(".lua", source)
  local errfile = tmpfile(".err")
  local args = {}
  for i, a in ipairs{ ... } do args[i] = shell_quote(a) end
  local f = assert(io.popen(("timeout 20 %s run %s %s 2>%s </dev/null"):format(shell_quote(BIN),
    shell_quote(script), table.concat(args, " "), shell_quote(errfile))))
  local out = f:read("a")
  local _, _, code = f:close()
  local ef = assert(io.open(errfile))
  local err = ef:read("a")
  ef:close()
  return out, err, code
end

local function assert_clean(err)
  assert.is_nil(err:find("left open", 1, true), err)
  assert.is_nil(err:find("did not close cleanly", 1, true), err)
  assert.is_nil(err:find("Sanitizer", 1, true), err)
  assert.is_nil(err:find("runtime error", 1, true), err)
end

local servers = {}

-- Starts a server that after_each closes; returns it.
local function start(opts)
  local srv = assert(serve(opts))
  servers[#servers + 1] = srv
  return srv
end

local function get_ok(url, opts)
  local res, err, kind = http.get(url, opts)
  assert(res, ("GET %s failed: %s (%s)"):format(url, tostring(err), tostring(kind)))
  return res
end

local function echo_handler(req)
  return {
    status = 200,
    headers = { ["Content-Type"] = "application/json" },
    body = cjson.encode{ method = req.method, path = req.path, query = req.query, args = req.args,
                         headers = req.headers, body = req.body, version = req.version,
                         remote_addr = req.remote_addr, target = req.target },
  }
end

describe("http.serve", function()
  after_each(function()
    for _, srv in ipairs(servers) do srv:close() end
    servers = {}
  end)

  teardown(function()
    for _, p in ipairs(tmpfiles) do os.remove(p) end
  end)

  describe("requests and responses", function()
    it("binds port 0 to a free port and answers a GET with the request's fields", function()
      local srv = start{ host = "127.0.0.1", port = 0, handler = echo_handler }
      assert.is_true(math.type(srv.port) == "integer" and srv.port > 0)
      assert.are.equal("http://127.0.0.1:" .. srv.port, srv.url)
      local res = get_ok(srv.url .. "/a/b%20c?x=1&y=two+words&z=%41&x=3", {
        headers = { ["X-Custom"] = "v1", ["X-Multi"] = { "a", "b" } },
      })
      assert.are.equal(200, res.status)
      local r = assert(cjson.decode(res.body))
      assert.are.equal("GET", r.method)
      assert.are.equal("/a/b%20c", r.path)
      assert.are.equal("x=1&y=two+words&z=%41&x=3", r.query)
      assert.are.equal("/a/b%20c?x=1&y=two+words&z=%41&x=3", r.target)
      assert.are.same({ x = "3", y = "two words", z = "A" }, r.args)
      assert.are.equal("v1", r.headers["x-custom"])
      assert.are.equal("a, b", r.headers["x-multi"])
      assert.are.equal("127.0.0.1:" .. srv.port, r.headers.host)
      assert.are.equal("1.1", r.version)
      assert.are.equal("127.0.0.1", r.remote_addr)
      assert.are.equal("", r.body)
    end)

    it("sets Content-Length, Date and Server: luafetch on every response", function()
      local srv = start{ handler = function() return { body = "hello" } end }
      local res = get_ok(srv.url)
      assert.are.equal(200, res.status) -- status defaults to 200
      assert.are.equal("5", res.headers["content-length"])
      assert.are.equal("luafetch", res.headers.server)
      assert.truthy(res.headers.date:match("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"), res.headers.date)
    end)

    it("echoes a POST body byte for byte (also NUL and 1 MiB)", function()
      local srv = start{ handler = function(req) return { status = 201, body = req.body } end }
      local body = "a\0b\r\n" .. ("x"):rep(1024 * 1024)
      local res = assert(http.post(srv.url .. "/echo", body))
      assert.are.equal(201, res.status)
      assert.are.equal(#body, #res.body)
      assert.is_true(res.body == body)
    end)

    it("takes a string as a 200 body, status/headers/body tables, repeated headers and json", function()
      local srv = start{ handler = function(req)
        if req.path == "/string" then return "just text" end
        if req.path == "/json" then return { status = 202, json = { ok = true, n = 3 } } end
        return { status = 418, headers = { ["Set-Cookie"] = { "a=1", "b=2" }, ["X-N"] = 7 }, body = "tea" }
      end }
      local res = get_ok(srv.url .. "/string")
      assert.are.equal(200, res.status)
      assert.are.equal("just text", res.body)
      res = get_ok(srv.url .. "/json")
      assert.are.equal(202, res.status)
      assert.are.equal("application/json", res.headers["content-type"])
      assert.are.same({ ok = true, n = 3 }, res:json())
      res = get_ok(srv.url .. "/other")
      assert.are.equal(418, res.status)
      assert.are.equal("a=1, b=2", res.headers["set-cookie"])
      assert.are.equal("7", res.headers["x-n"])
      assert.are.equal("tea", res.body)
    end)

    it("answers HEAD with the Content-Length of the body but no body, and 204 without either", function()
      local srv = start{ handler = function(req)
        if req.path == "/empty" then return { status = 204, body = "ignored" } end
        return "twelve bytes"
      end }
      local res = assert(http.head(srv.url .. "/x"))
      assert.are.equal(200, res.status)
      assert.are.equal("12", res.headers["content-length"])
      assert.are.equal("", res.body)
      res = get_ok(srv.url .. "/empty")
      assert.are.equal(204, res.status)
      assert.is_nil(res.headers["content-length"])
      assert.are.equal("", res.body)
      -- the connection is still in step afterwards
      assert.are.equal("twelve bytes", get_ok(srv.url .. "/y").body)
    end)

    it("runs handlers as tasks: they may call http.get on another local server and sleep", function()
      local backend = start{ handler = function(req)
        task.sleep(0.2)
        return { body = "backend says " .. req.path }
      end }
      local front = start{ handler = function(req)
        local res, err = http.get(backend.url .. req.path)
        if not res then return { status = 502, body = err } end
        return { status = 200, body = "front got [" .. res.body .. "]" }
      end }
      -- five at once: handlers run concurrently, so this takes ~0.2 s, not 1 s
      local t0 = task.now()
      local tasks = {}
      for i = 1, 5 do
        tasks[i] = task.spawn(function() return get_ok(front.url .. "/item" .. i).body end)
      end
      for i = 1, 5 do
        local ok, body = tasks[i]:join()
        assert.is_true(ok, body)
        assert.are.equal("front got [backend says /item" .. i .. "]", body)
      end
      assert.is_true(task.now() - t0 < 0.9, "handlers did not run concurrently")
    end)

    it("listens on IPv6 literals", function()
      local srv, err = serve{ host = "::1", handler = function(req) return req.remote_addr end }
      if not srv then
        pending("no IPv6 loopback here: " .. tostring(err))
        return
      end
      servers[#servers + 1] = srv
      assert.are.equal("http://[::1]:" .. srv.port, srv.url)
      assert.are.equal("::1", get_ok(srv.url .. "/").body)
    end)
  end)

  describe("options", function()
    it("raises on bad options", function()
      local h = function() return "" end
      assert.has_error(function() serve() end)
      assert.has_error(function() serve{} end, "http.serve: handler is required")
      assert.has_error(function() serve{ handler = h, bogus = 1 } end, "http.serve: unknown option 'bogus'")
      assert.has_error(function() serve{ handler = h, port = 70000 } end)
      assert.has_error(function() serve{ handler = h, port = 1.5 } end)
      assert.has_error(function() serve{ handler = h, max_body = -1 } end)
      assert.has_error(function() serve{ handler = "nope" } end)
    end)

    it("returns nil and a message when it cannot listen", function()
      local a = start{ handler = function() return "" end }
      local srv, err = serve{ port = a.port, handler = function() return "" end }
      assert.is_nil(srv)
      assert.truthy(err:find("address already in use", 1, true), err)
      srv, err = serve{ host = "example.com", handler = function() return "" end }
      assert.is_nil(srv)
      assert.truthy(err:find("literal", 1, true), err)
    end)
  end)

  describe("keep-alive", function()
    it("serves many requests over one connection", function()
      local srv = start{ handler = function(req) return req.path end }
      for i = 1, 20 do
        local res = get_ok(srv.url .. "/n" .. i)
        assert.are.equal("/n" .. i, res.body)
        assert.are.equal(i > 1, res.reused)
      end
      local st = srv:stats()
      assert.are.equal(1, st.connections)
      assert.are.equal(20, st.requests)
    end)

    it("honours Connection: close from the client", function()
      local srv = start{ handler = function() return "bye" end }
      for _ = 1, 3 do
        local res = get_ok(srv.url, { headers = { Connection = "close" } })
        assert.are.equal("close", res.headers.connection)
        assert.is_false(res.reused)
      end
      assert.are.equal(3, srv:stats().connections)
    end)

    it("closes after a response whose handler set Connection: close", function()
      local srv = start{ handler = function() return { headers = { Connection = "close" }, body = "x" } end }
      get_ok(srv.url)
      local res = get_ok(srv.url)
      assert.is_false(res.reused)
      assert.are.equal(2, srv:stats().connections)
    end)

    it("answers pipelined requests in order, one at a time", function()
      local srv = start{ handler = function(req)
        if req.path == "/slow" then task.sleep(0.2) end
        return req.method .. " " .. req.path .. " " .. req.body
      end }
      local r = raw(srv.port, [[ [(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
        b"POST /last HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", 0)] ]])
      assert.is_true(r.eof)
      local rs = parse_responses(r.data)
      assert.are.equal(3, #rs)
      assert.are.equal("GET /slow ", rs[1].body)
      assert.are.equal("GET /fast ", rs[2].body)
      assert.are.equal("POST /last abc", rs[3].body)
      assert.are.equal("close", rs[3].headers.connection)
      assert.are.equal(1, srv:stats().connections)
    end)

    it("keeps an HTTP/1.0 connection only when asked", function()
      local srv = start{ handler = function(req) return req.version .. " " .. req.path end }
      local r = raw(srv.port, [[ [(b"GET /plain HTTP/1.0\r\n\r\n", 0)] ]])
      assert.is_true(r.eof)
      local rs = parse_responses(r.data)
      assert.are.equal("1.0 /plain", rs[1].body)
      assert.are.equal("close", rs[1].headers.connection)
      r = raw(srv.port, [[ [(b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 0.3),
                            (b"GET /then HTTP/1.0\r\n\r\n", 0)] ]])
      rs = parse_responses(r.data)
      assert.are.equal(2, #rs)
      assert.are.equal("keep-alive", rs[1].headers.connection)
      assert.are.equal("1.0 /then", rs[2].body)
      assert.is_true(r.eof)
    end)

    it("closes a keep-alive connection idle longer than idle_timeout", function()
      local srv = start{ idle_timeout = 0.3, handler = function() return "ok" end }
      local r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0)] ]], 5)
      assert.is_true(r.eof, "still open after 5 s")
      assert.are.equal(200, parse_responses(r.data)[1].status)
      assert.is_true(r.elapsed >= 0.25 and r.elapsed < 2.5, "closed after " .. r.elapsed .. " s")
      assert.are.equal(0, srv:stats().open)
    end)

    it("answers Expect: 100-continue before the body comes", function()
      local srv = start{ handler = function(req) return "got " .. req.body end }
      local r = raw(srv.port, [[ [(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
        b"Content-Length: 5\r\nConnection: close\r\n\r\n", 0.5), (b"hello", 0)] ]])
      assert.truthy(r.data:find("^HTTP/1%.1 100 Continue\r\n\r\n"), r.data)
      local rs = parse_responses(r.data)
      assert.are.equal(200, rs[2].status)
      assert.are.equal("got hello", rs[2].body)
      -- an expectation the server cannot meet
      r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 0)] ]])
      assert.are.equal(417, parse_responses(r.data)[1].status)
    end)
  end)

  describe("bad requests and limits", function()
    it("answers garbage with 400, closes, and goes on serving", function()
      local srv = start{ handler = function() return "fine" end }
      local r = raw(srv.port, [[ [(b"BLAH\x01 nonsense\r\n\r\n", 0)] ]])
      assert.is_true(r.eof)
      local rs = parse_responses(r.data)
      assert.are.equal(400, rs[1].status)
      assert.are.equal("close", rs[1].headers.connection)
      -- HTTP/1.1 without Host, and garbage after a good request on the same connection
      r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\n\r\n", 0)] ]])
      assert.are.equal(400, parse_responses(r.data)[1].status)
      r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n", 0)] ]])
      rs = parse_responses(r.data)
      assert.are.equal(200, rs[1].status)
      assert.are.equal(400, rs[2].status)
      assert.is_true(r.eof)
      assert.are.equal("fine", get_ok(srv.url).body)
      assert.are.equal(3, srv:stats().rejected)
    end)

    it("answers a head over 16 KiB or over 100 headers with 431 and closes", function()
      local srv = start{ handler = function() return "fine" end }
      local r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 0)] ]])
      assert.is_true(r.eof)
      assert.are.equal(431, parse_responses(r.data)[1].status)
      r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\nHost: x\r\n" +
        b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n", 0)] ]])
      assert.is_true(r.eof)
      assert.are.equal(431, parse_responses(r.data)[1].status)
      -- 99 headers + Host are fine
      r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" +
        b"".join(b"X-H%d: v\r\n" % i for i in range(98)) + b"\r\n", 0)] ]])
      assert.are.equal(200, parse_responses(r.data)[1].status)
    end)

    it("answers a body over max_body with 413 (Content-Length or chunked) and closes", function()
      local srv = start{ max_body = 1000, handler = function(req) return "len " .. #req.body end }
      local r = raw(srv.port, [[ [(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200000, 0)] ]])
      assert.is_true(r.eof)
      assert.are.equal(413, parse_responses(r.data)[1].status)
      r = raw(srv.port, [[ [(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3e8\r\n" + b"y" * 1000 + b"\r\n5\r\nzzzzz\r\n0\r\n\r\n", 0)] ]])
      assert.is_true(r.eof)
      assert.are.equal(413, parse_responses(r.data)[1].status)
      -- exactly max_body is fine, chunked too
      r = raw(srv.port, [[ [(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3e8\r\n" + b"y" * 1000 + b"\r\n0\r\n\r\n", 0)] ]])
      assert.are.equal("len 1000", parse_responses(r.data)[1].body)
      -- the default cap is 8 MiB
      local big = start{ handler = function(req) return "len " .. #req.body end }
      local res = assert(http.post(big.url, ("b"):rep(8 * 1024 * 1024 + 1)))
      assert.are.equal(413, res.status)
    end)

    it("closes a connection whose head does not arrive within header_timeout (slowloris)", function()
      local srv = start{ header_timeout = 0.3, handler = function() return "fine" end }
      local r = raw(srv.port, [[ [(b"GET / HTTP/1.1\r\n", 0.1)] + [(b"X-Drip: 1\r\n", 0.1)] * 30 ]], 3)
      assert.is_true(r.eof)
      assert.is_true(r.elapsed < 2, "closed after " .. r.elapsed .. " s")
      assert.are.equal(408, parse_responses(r.data)[1].status)
      -- a connection that sends nothing at all is closed too, silently
      r = raw(srv.port, "[]", 3)
      assert.is_true(r.eof)
      assert.are.equal("", r.data)
      assert.is_true(r.elapsed < 2, "closed after " .. r.elapsed .. " s")
      assert.are.equal("fine", get_ok(srv.url).body)
    end)

    it("closes a connection whose body stalls longer than body_timeout", function()
      local srv = start{ body_timeout = 0.3, handler = function() return "fine" end }
      local r = raw(srv.port, [[ [(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", 0)] ]], 3)
      assert.is_true(r.eof)
      assert.is_true(r.elapsed < 2, "closed after " .. r.elapsed .. " s")
      assert.are.equal(408, parse_responses(r.data)[1].status)
    end)
  end)

  describe("handler failures", function()
    it("answers 500 when a handler raises, reports the traceback once, and goes on", function()
      local reports = {}
      local srv = start{
        handler = function(req)
          if req.path == "/boom" then error("kaboom") end
          return "fine"
        end,
        on_error = function(err, req) reports[#reports + 1] = { err = err, path = req.path } end,
      }
      local res = get_ok(srv.url .. "/boom")
      assert.are.equal(500, res.status)
      assert.are.equal(1, #reports)
      assert.are.equal("/boom", reports[1].path)
      assert.truthy(reports[1].err:find("kaboom", 1, true), reports[1].err)
      assert.truthy(reports[1].err:find("stack traceback", 1, true), reports[1].err)
      assert.are.equal("fine", get_ok(srv.url .. "/ok").body)
      assert.is_true(get_ok(srv.url .. "/ok").reused) -- the 500 kept the connection
    end)

    it("answers 500 for an unusable response: bad header, bad status, nothing returned", function()
      local reports = {}
      local srv = start{
        handler = function(req)
          if req.path == "/crlf" then return { headers = { ["X-Evil"] = "a\r\nInjected: 1" }, body = "x" } end
          if req.path == "/name" then return { headers = { ["Bad Name"] = "v" }, body = "x" } end
          if req.path == "/length" then return { headers = { ["Content-Length"] = "99" }, body = "x" } end
          if req.path == "/status" then return { status = 99, body = "x" } end
          if req.path == "/body" then return { body = {} } end
          return nil
        end,
        on_error = function(err) reports[#reports + 1] = err end,
      }
      for _, p in ipairs{ "/crlf", "/name", "/length", "/status", "/body", "/nothing" } do
        local res = get_ok(srv.url .. p)
        assert.are.equal(500, res.status, p)
        assert.is_nil(res.headers.injected)
      end
      assert.are.equal(6, #reports)
      assert.truthy(reports[1]:find("X-Evil", 1, true), reports[1])
      assert.truthy(reports[4]:find("status 99", 1, true), reports[4])
    end)

    it("answers 500 when a handler task is cancelled", function()
      local t
      local srv = start{ handler = function()
        t = task.current()
        task.sleep(10)
        return "never"
      end }
      local canceller = task.spawn(function()
        while not t do task.sleep(0.01) end
        t:cancel()
      end)
      local res = get_ok(srv.url)
      assert.are.equal(500, res.status)
      assert.is_true((canceller:join()))
    end)
  end)

  describe("close", function()
    it("stops listening: a connect fails afterwards; close is idempotent", function()
      local srv = assert(serve{ handler = function() return "x" end })
      assert.are.equal("x", get_ok(srv.url).body) -- leaves an idle keep-alive connection
      srv:close()
      srv:close()
      task.sleep(0.05)
      local res, err, kind = http.get(srv.url)
      assert.is_nil(res, "still served after close")
      assert.are.equal("connect", kind, err)
      assert.are.equal(0, srv:stats().open)
    end)

    it("lets a handler in flight finish; its connection closes after the response", function()
      local srv = assert(serve{ handler = function() task.sleep(0.3) return "late" end })
      local client = task.spawn(function() return http.get(srv.url) end)
      task.sleep(0.1)
      srv:close()
      local ok, res = client:join()
      assert.is_true(ok)
      assert.are.equal(200, res.status)
      assert.are.equal("late", res.body)
      assert.are.equal("close", res.headers.connection)
      local _, _, kind = http.get(srv.url)
      assert.are.equal("connect", kind)
    end)

    it("works as a to-be-closed variable", function()
      local url
      do
        local srv <close> = assert(serve{ handler = function() return "x" end })
        url = srv.url
        assert.are.equal("x", get_ok(url).body)
      end
      local _, _, kind = http.get(url)
      assert.are.equal("connect", kind)
    end)
  end)

  describe("program lifetime", function()
    it("a listening server keeps the program alive; after close it ends cleanly", function()
      -- The only client is a Python process the script starts in the background after a delay:
      -- meanwhile nothing but the listening server keeps the loop running.
      local client = tmpfile(".py", [==[
import sys, time, urllib.request, urllib.error
time.sleep(0.3)
for path in ("/one", "/boom", "/stop"):
    try:
        urllib.request.urlopen(sys.argv[1] + path, timeout=5).read()
    except urllib.error.HTTPError:
        pass
]==])
      local out, err, code = run_child(([[
        local srv
        srv = require("server").serve{ handler = function(req)
          print("served " .. req.path)
          if req.path == "/boom" then error("kaboom") end
          if req.path == "/stop" then srv:close() end
          return "ok"
        end }
        os.execute("%s %s " .. srv.url .. " >/dev/null 2>&1 &")
      ]]):format(PY, client))
      assert.are.equal(0, code, err)
      assert.are.equal("served /one\nserved /boom\nserved /stop\n", out)
      assert_clean(err)
      -- the default report: the traceback on stderr, once
      local _, n = err:gsub("kaboom", "")
      assert.are.equal(1, n, err)
      assert.truthy(err:find("stack traceback", 1, true), err)
    end)

    it("shuts down cleanly with a handler stuck forever (deadlock) and an open connection", function()
      local out, err, code = run_child([[
        local http = require "http"
        local task = require "task"
        local sem = task.semaphore(0)
        local srv = require("server").serve{ handler = function()
          sem:acquire() -- never released
          return "never"
        end }
        local res, e, kind = http.get(srv.url, { timeout = 0.3 })
        print(kind)
        srv:close()
      ]])
      assert.are.equal("timeout\n", out)
      assert.are.equal(1, code, err) -- the host reports the deadlock
      assert.truthy(err:find("deadlock", 1, true), err)
      assert_clean(err)
    end)

    it("stops gracefully on SIGTERM when a signal handler closes the server", function()
      local out, err, code = run_child([[
        local http = require "http"
        local task = require "task"
        local srv = require("server").serve{ handler = function() return "up" end }
        task.on_signal(function(sig) print("got " .. sig); srv:close() end)
        print(http.get(srv.url).body)
        local pid = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
        os.execute("kill -TERM " .. pid)
      ]])
      assert.are.equal(0, code, err)
      assert.are.equal("up\ngot SIGTERM\n", out)
      assert_clean(err)
    end)
  end)
end)
