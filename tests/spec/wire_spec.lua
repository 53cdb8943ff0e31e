-- wire_spec.lua: HTTP/1.1 framing checks on both sides of the wire, beyond what llhttp 8.1 checks.
-- Client side: malformed or unusual responses from tests/fixtures/server.py (its /raw endpoint sends
-- exact bytes). Server side: http.serve in this process, fed exact bytes by a raw Python client
-- started in the background (os.execute ... &) that writes its result to a file this task polls,
-- so the loop keeps serving meanwhile. Listener recovery runs a child luafetch with a preloaded
-- shim that makes one uv_tcp_init fail. A slow reader checks the write timeout; the 4 GiB response
-- needs about 10 GB of memory and runs only with LUAFETCH_HUGE_TESTS=1 (pending otherwise).

local http = require "http"
local task = require "task"
local cjson = require "cjson.safe"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")
local PY = io.open("/usr/bin/python3") and "/usr/bin/python3" or "python3"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local tmpfiles = {}
local function tmpfile(suffix, content)
  local path = os.tmpname() .. (suffix or "")
  if content then
    local f = assert(io.open(path, "wb"))
    f:write(content)
    f:close()
  end
  tmpfiles[#tmpfiles + 1] = path
  return path
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- n bytes of the fixture's pattern "abc...zabc..."
local function pattern(n)
  return ("abcdefghijklmnopqrstuvwxyz"):rep(n // 26 + 1):sub(1, n)
end

-- --- client side ---------------------------------------------------------

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- The response the fixture sends verbatim (then it closes the connection).
local function raw_get(bytes, opts)
  return http.get(BASE .. "/raw?hex=" .. hex(bytes), opts)
end

local function chunked(body_bytes, extra_head)
  return "HTTP/1.1 200 OK\r\n" .. (extra_head or "") .. "Transfer-Encoding: chunked\r\n\r\n" .. body_bytes
end

local function assert_protocol(res, err, kind, what)
  assert(res == nil, what .. ": expected a protocol error, got status " .. tostring(res and res.status)
    .. " body " .. tostring(res and res.body))
  assert.are.equal("protocol", kind, what .. ": " .. tostring(err))
end

-- --- server side ---------------------------------------------------------

-- Connects, sends each (bytes, seconds to read afterwards) step, then reads until EOF or
-- read_timeout; writes {data, eof} as JSON (renamed into place).
local RAW_CLIENT = [==[
import json, os, select, socket, sys, time
port, out, steps, read_timeout = int(sys.argv[1]), sys.argv[2], eval(sys.argv[3]), float(sys.argv[4])
chunks, res = [], {"eof": False}
s = socket.create_connection(("127.0.0.1", port), timeout=5)
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
            return True
        if not d:
            return True
        chunks.append(d)
ended = False
for data, delay in steps:
    try:
        s.sendall(data)
    except OSError:
        break
    if pump(delay):
        ended = True
        break
res["eof"] = ended or pump(read_timeout)
res["data"] = b"".join(chunks).decode("latin-1")
with open(out + ".tmp", "w") as f:
    json.dump(res, f)
os.rename(out + ".tmp", out)
]==]

local raw_script

-- Runs the raw client against port in the background and waits (yielding) for its result.
-- steps is a Python expression: a list of (bytes, seconds) pairs.
local function raw(port, steps, read_timeout)
  raw_script = raw_script or tmpfile(".py", RAW_CLIENT)
  local out = tmpfile(".json")
  os.remove(out)
  os.execute(("timeout 30 %s %s %d %s %s %s >/dev/null 2>&1 &"):format(PY, q(raw_script), port, q(out),
    q(steps), tostring(read_timeout or 3)))
  local deadline = task.now() + 30
  while task.now() < deadline do
    local s = read_file(out)
    if s then return assert(cjson.decode(s)) end
    task.sleep(0.02)
  end
  error("the raw client did not finish")
end

-- Status lines and bodies of the responses in data (Content-Length framing).
local function responses(data)
  local out, pos = {}, 1
  while pos <= #data do
    local head_end = data:find("\r\n\r\n", pos, true)
    if not head_end then break end
    local head = data:sub(pos, head_end - 1)
    local len = tonumber(head:match("\r\n[Cc]ontent%-[Ll]ength: (%d+)") or 0)
    out[#out + 1] = { status = tonumber(head:match("^HTTP/1%.1 (%d%d%d)")),
                      body = data:sub(head_end + 4, head_end + 3 + len) }
    pos = head_end + 4 + len
  end
  return out
end

local servers = {}
local seen -- paths the handler was called for, in order

local function start()
  seen = {}
  local srv = assert(http.serve{ host = "127.0.0.1", port = 0, handler = function(req)
    seen[#seen + 1] = req.path
    return { status = 200, body = req.body ~= "" and req.body or req.path }
  end })
  servers[#servers + 1] = srv
  return srv
end

local POST_CHUNKED = [[b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"]]

describe("wire", function()
  teardown(function()
    for _, p in ipairs(tmpfiles) do os.remove(p) end
  end)

  after_each(function()
    for _, srv in ipairs(servers) do srv:close() end
    servers = {}
  end)

  describe("client: chunked framing", function()
    it("refuses chunk data that is not followed by CRLF (it is not skipped unchecked)", function()
      local res, err, kind = raw_get(chunked("3\r\nabcXX0\r\n\r\n"))
      assert_protocol(res, err, kind, "XX after chunk data")
      res, err, kind = raw_get(chunked("3\r\nabc\rX0\r\n\r\n"))
      assert_protocol(res, err, kind, "CR then X after chunk data")
      res, err, kind = raw_get(chunked("3\r\nabc\n\r0\r\n\r\n"))
      assert_protocol(res, err, kind, "LF CR after chunk data")
      -- the well-formed response still parses
      res = assert(raw_get(chunked("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")))
      assert.are.equal("abcde", res.body)
    end)

    it("accepts chunk extensions with several parameters, and still refuses bad ones", function()
      local res, err, kind = raw_get(chunked("2;a=b;c=d\r\nab\r\n3;x=1;y;z=\"q;r\"\r\ncde\r\n0;last=1;k=v\r\n\r\n"))
      assert(res, tostring(err) .. " " .. tostring(kind))
      assert.are.equal("abcde", res.body)
      res, err, kind = raw_get(chunked("2;a=b;c d\r\nab\r\n0\r\n\r\n"))
      assert_protocol(res, err, kind, "a space inside the extensions")
      res, err, kind = raw_get(chunked("2;a=b;c=\"open\r\nab\r\n0\r\n\r\n"))
      assert_protocol(res, err, kind, "an unterminated quoted value")
      res, err, kind = raw_get(chunked("2;a=b;\1\r\nab\r\n0\r\n\r\n"))
      assert_protocol(res, err, kind, "a control byte in the extensions")
    end)
  end)

  describe("client: status line and header names", function()
    it("refuses status codes below 100", function()
      for _, line in ipairs{ "HTTP/1.1 000 Zero", "HTTP/1.1 099 Low", "HTTP/1.1 20 Short" } do
        local res, err, kind = raw_get(line .. "\r\nContent-Length: 2\r\n\r\nok")
        assert_protocol(res, err, kind, line)
      end
      local res = assert(raw_get("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
      assert.are.equal(200, res.status)
    end)

    it("refuses a header name with whitespace before the colon or inside it", function()
      local res, err, kind = raw_get("HTTP/1.1 200 OK\r\nX-A : v\r\nContent-Length: 2\r\n\r\nok")
      assert_protocol(res, err, kind, "X-A : v")
      res, err, kind = raw_get("HTTP/1.1 200 OK\r\nX A: v\r\nContent-Length: 2\r\n\r\nok")
      assert_protocol(res, err, kind, "X A: v")
      res = assert(raw_get("HTTP/1.1 200 OK\r\nX-A:  v \r\nContent-Length: 2\r\n\r\nok"))
      assert.are.equal("v", res.headers["x-a"])
    end)
  end)

  describe("client: codings", function()
    it("decodes every member of a multi-member gzip body", function()
      local res = assert(http.get(BASE .. "/gzip-members/3?n=1000"))
      assert.are.equal(3000, #res.body)
      assert.are.equal(pattern(3000), res.body)
      res = assert(http.get(BASE .. "/gzip-members/1?n=5000"))
      assert.are.equal(pattern(5000), res.body)
    end)

    it("refuses trailing garbage after the last gzip member", function()
      local res, err, kind = http.get(BASE .. "/gzip-members/2?garbage=1")
      assert_protocol(res, err, kind, "garbage after gzip members")
    end)

    it("decodes Transfer-Encoding: gzip, chunked (and a Content-Encoding beneath it)", function()
      local res = assert(http.get(BASE .. "/te-gzip/5000"))
      assert.are.equal(pattern(5000), res.body)
      res = assert(http.get(BASE .. "/te-gzip/5000?ce=1"))
      assert.are.equal(pattern(5000), res.body)
      -- decompress = false leaves the content coding but still removes the transfer coding
      res = assert(http.get(BASE .. "/te-gzip/5000?ce=1", { decompress = false }))
      assert.are.equal("\31\139", res.body:sub(1, 2))
      assert.is_true(#res.body < 5000)
      res = assert(http.get(BASE .. "/te-gzip/5000", { decompress = false }))
      assert.are.equal(pattern(5000), res.body)
    end)

    it("refuses transfer codings it cannot remove", function()
      local res, err, kind = raw_get((chunked("2\r\nab\r\n0\r\n\r\n"):gsub("chunked", "br, chunked")))
      assert_protocol(res, err, kind, "br, chunked")
      res, err, kind = raw_get("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxx")
      assert_protocol(res, err, kind, "chunked, gzip")
    end)
  end)

  describe("client: redirects", function()
    it("percent-encodes raw UTF-8 in a Location before sending it", function()
      local res = assert(http.get(BASE .. "/redirect-utf8"))
      assert.are.equal(200, res.status)
      assert.are.equal("/target/caf%C3%A9?q=%E2%82%AC", res.body)
      assert.are.equal(BASE .. "/target/caf%C3%A9?q=%E2%82%AC", res.url)
    end)
  end)

  describe("server: request framing", function()
    it("answers 400 to chunk data not followed by CRLF, and serves nothing pipelined after it", function()
      local srv = start()
      local r = raw(srv.port, "[(" .. POST_CHUNKED .. [=[ + b"3\r\nabcXX0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n", 0)]]=])
      local got = responses(r.data)
      assert.are.equal(1, #got, r.data)
      assert.are.equal(400, got[1].status)
      assert.are.same({}, seen)
      assert.is_true(r.eof)
    end)

    it("checks the CRLF after chunk data when it arrives in separate reads", function()
      local srv = start()
      local r = raw(srv.port, "[(" .. POST_CHUNKED .. [=[ + b"3\r\nabc", 0.1), (b"\r", 0.1), (b"\n0\r\n\r\n", 0)]]=])
      local got = responses(r.data)
      assert.are.equal(200, got[1] and got[1].status, r.data)
      assert.are.equal("abc", got[1].body)
      r = raw(srv.port, "[(" .. POST_CHUNKED .. [=[ + b"3\r\nabc\r", 0.1), (b"X0\r\n\r\n", 0)]]=])
      got = responses(r.data)
      assert.are.equal(400, got[1] and got[1].status, r.data)
      assert.are.same({ "/up" }, seen)
    end)

    it("accepts chunk extensions with several parameters", function()
      local srv = start()
      local r = raw(srv.port, "[(" .. POST_CHUNKED .. [=[ + b"2;a=b;c=d\r\nab\r\n1;e\r\nc\r\n0;f=g;h=i\r\n\r\n", 0)]]=])
      local got = responses(r.data)
      assert.are.equal(200, got[1] and got[1].status, r.data)
      assert.are.equal("abc", got[1].body)
    end)

    it("answers 400 to two Host headers", function()
      local srv = start()
      for _, hosts in ipairs{ [[Host: a\r\nHost: b\r\n]], [[Host: a\r\nHost: a\r\n]] } do
        local r = raw(srv.port, [[ [(b"GET /h HTTP/1.1\r\n]] .. hosts .. [[\r\n", 0)] ]])
        local got = responses(r.data)
        assert.are.equal(400, got[1] and got[1].status, hosts .. ": " .. r.data)
      end
      assert.are.same({}, seen)
    end)

    it("answers 400 to a header name with whitespace before the colon", function()
      local srv = start()
      local r = raw(srv.port, [[ [(b"GET /w HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n", 0)] ]])
      assert.are.equal(400, responses(r.data)[1].status)
      assert.are.same({}, seen)
    end)

    it("answers 501 to a request transfer coding other than chunked", function()
      local srv = start()
      local r = raw(srv.port, [[ [(b"POST /te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"2\r\nab\r\n0\r\n\r\n", 0)] ]])
      assert.are.equal(501, responses(r.data)[1].status)
      assert.are.same({}, seen)
    end)
  end)

  describe("server: listener", function()
    -- A preloaded shim makes the Nth call of uv_tcp_init fail (call 1 is the listener's own).
    local SHIM = [[
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <uv.h>
int uv_tcp_init(uv_loop_t *loop, uv_tcp_t *h)
{
    static int calls;
    static int (*real)(uv_loop_t *, uv_tcp_t *);
    if (!real)
        real = (int (*)(uv_loop_t *, uv_tcp_t *))dlsym(RTLD_NEXT, "uv_tcp_init");
    const char *fail = getenv("SHIM_FAIL_TCP_INIT");
    if (fail && ++calls == atoi(fail))
        return UV_ENOMEM;
    return real(loop, h);
}
]]

    it("keeps accepting after a connection could not be set up", function()
      local src = tmpfile(".c", SHIM)
      local so = tmpfile(".so")
      assert(os.execute(("cc -shared -fPIC -o %s %s -ldl"):format(q(so), q(src))), "cannot build the shim")
      local portfile = tmpfile(".port")
      os.remove(portfile)
      local script = tmpfile(".lua", ([[
local http = require "http"
local srv = assert(http.serve{ handler = function(req) return "served " .. req.path end })
local f = io.open(%q .. ".tmp", "w"); f:write(srv.port); f:close()
os.rename(%q .. ".tmp", %q)
require("task").sleep(8)
srv:close()
]]):format(portfile, portfile, portfile))
      local errfile = tmpfile(".err")
      os.execute(("SHIM_FAIL_TCP_INIT=2 LD_PRELOAD=%s timeout 20 %s run %s >/dev/null 2>%s &"):format(q(so),
        q(BIN), q(script), q(errfile)))
      local deadline, port = task.now() + 10, nil
      while not port and task.now() < deadline do
        port = tonumber(read_file(portfile) or "")
        if not port then task.sleep(0.05) end
      end
      assert(port, "the child server did not start: " .. tostring(read_file(errfile)))
      local url = "http://127.0.0.1:" .. port
      -- the first connection's uv_tcp_init fails: it is served once the server retries
      local res, err = http.get(url .. "/first", { timeout = 3 })
      assert(res, "first: " .. tostring(err) .. " " .. tostring(read_file(errfile)))
      assert.are.equal("served /first", res.body)
      res, err = http.get(url .. "/second", { timeout = 3, headers = { Connection = "close" } })
      assert(res, "second: " .. tostring(err))
      assert.are.equal("served /second", res.body)
      local errs = read_file(errfile) or ""
      assert.is_nil(errs:find("Sanitizer", 1, true), errs)
    end)
  end)

  describe("server: slow readers", function()
    -- Reads the response to one GET in 64 KiB pieces, 20 ms apart, with a small receive buffer;
    -- writes the number of body bytes received when the server closes.
    local SLOW_READER = [==[
import os, socket, sys, time
port, out = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    data += d
    time.sleep(0.05)
body = data[data.find(b"\r\n\r\n") + 4:]
open(out + ".tmp", "w").write(str(len(body)))
os.rename(out + ".tmp", out)
]==]

    it("keeps writing to a reader that is slow but steady past idle_timeout (only a stall ends it)", function()
      local n = 8 * 1024 * 1024
      -- idle_timeout 2 s (not shorter: under valgrind one turn of the loop can take a good part of
      -- a second); the reader takes ~6 s for the body, three times the timeout, never stalling
      local srv = assert(http.serve{ idle_timeout = 2, handler = function() return ("y"):rep(n) end })
      servers[#servers + 1] = srv
      local script, out = tmpfile(".py", SLOW_READER), tmpfile(".count")
      os.remove(out)
      local t0 = task.now()
      os.execute(("timeout 60 %s %s %d %s >/dev/null 2>&1 &"):format(PY, q(script), srv.port, q(out)))
      local got
      while not got and task.now() < t0 + 60 do
        got = tonumber(read_file(out) or "")
        if not got then task.sleep(0.05) end
      end
      assert.are.equal(n, got)
      assert.is_true(task.now() - t0 > 2, "the read took longer than idle_timeout")
    end)
  end)

  describe("server: huge responses", function()
    -- Needs about 10 GB of memory and half a minute: run with LUAFETCH_HUGE_TESTS=1.
    local huge = os.getenv("LUAFETCH_HUGE_TESTS") == "1"
    local it_huge = huge and it or pending
    it_huge("sends a body over 4 GiB whole (no 32-bit truncation)", function()
      local n = 4 * 1024 * 1024 * 1024 + 10
      local srv = assert(http.serve{ handler = function()
        local half = string.rep("x", 2 ^ 31 - 1) -- string.rep stops at 2 GiB; .. does not
        return half .. half .. string.rep("x", n - 2 * #half)
      end })
      servers[#servers + 1] = srv
      local counted = tmpfile(".count")
      os.remove(counted)
      local py = ([[
import socket, sys, os
s = socket.create_connection(("127.0.0.1", %d))
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
total, head = 0, b""
while True:
    d = s.recv(1 << 20)
    if not d: break
    if head is not None:
        head += d
        i = head.find(b"\r\n\r\n")
        if i < 0: continue
        total, head = len(head) - i - 4, None
    else:
        total += len(d)
open(sys.argv[1] + ".tmp", "w").write(str(total)); os.rename(sys.argv[1] + ".tmp", sys.argv[1])
]]):format(srv.port)
      local script = tmpfile(".py", py)
      os.execute(("timeout 300 %s %s %s >/dev/null 2>&1 &"):format(PY, q(script), q(counted)))
      local deadline = task.now() + 300
      local total
      while not total and task.now() < deadline do
        total = tonumber(read_file(counted) or "")
        if not total then task.sleep(0.2) end
      end
      assert.are.equal(n, total)
    end)
  end)
end)
