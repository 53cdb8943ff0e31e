-- h2_spec.lua: HTTP/2 against real servers on loopback (tests/fixtures/h2_servers.py starts
-- nginx-light with http2, nghttpd, h2o, tinyproxy and the Node peer tests/fixtures/h2_node.js):
-- ALPN and its fallback, h2c by prior knowledge, many requests on one connection, bodies both
-- ways, GOAWAY, REFUSED_STREAM, RST_STREAM codes, a server breaking the framing, per-stream
-- cancel and timeouts, a connection dying under 100 streams, PING liveness, and the HTTP/1.1
-- behaviours (gzip, redirects, limits, trailers, 1xx) over h2.

local http = require "http"
local task = require "task"
local cjson = require "cjson.safe"

local CERTS = assert(os.getenv("FIXTURE_CERTS"), "FIXTURE_CERTS is not set (run tests/run_specs.sh)")
local ROOT = os.getenv("LUAFETCH_ROOT") or "."
local TLS_GOOD = os.getenv("FIXTURE_TLS_GOOD")

local S = {}        -- server name → base URL
local stop_servers

-- Each call gives another spelling of the CA bundle's path: the pool key holds ca_file, so a
-- request with it never meets a connection an earlier test left in the pool.
local fresh_n = 0
local function fresh_ca()
  fresh_n = fresh_n + 1
  return CERTS .. ("/."):rep(fresh_n) .. "/ca.pem"
end

-- The same for plain http: another spelling of 127.0.0.1 (glibc reads zero-padded octets).
local function fresh_h2c(base)
  fresh_n = fresh_n + 1
  local n = fresh_n
  local port = base:match(":(%d+)$")
  return ("http://127.%s.%s.1:%s"):format(("0"):rep(n % 16 + 1), ("0"):rep((n // 16) % 16 + 1), port)
end

local function sha256(s)
  local name = os.tmpname()
  local f = assert(io.open(name, "wb"))
  f:write(s)
  f:close()
  local p = assert(io.popen("sha256sum " .. name))
  local out = p:read("a")
  p:close()
  os.remove(name)
  return out:match("^(%x+)")
end

local function opened()
  return http.stats().connections_opened
end

local function ok(res, err, kind)
  assert(res, ("request failed: %s (%s)"):format(tostring(err), tostring(kind)))
  return res
end

-- Runs fn(i) in n tasks at once; returns their results in order.
local function all(n, fn)
  local ts = {}
  for i = 1, n do
    ts[i] = task.spawn(function() return fn(i) end)
  end
  local out = {}
  for i = 1, n do
    local good, v = ts[i]:join()
    assert(good, v)
    out[i] = v
  end
  return out
end

local function wait_until(cond, what)
  local deadline = task.now() + 10
  while not cond() do
    if task.now() > deadline then error("timed out waiting for " .. what, 2) end
    task.sleep(0.01)
  end
end

local function node_stats()
  local res = ok(http.get(S.node_h2c .. "/stats", { http2 = "prior-knowledge" }))
  return assert(cjson.decode(res.body))
end

setup(function()
  S, stop_servers = require("tests.spec.support.child").start_fixture("h2_servers.py", CERTS)
end)

teardown(function()
  if stop_servers then stop_servers() end
end)

describe("HTTP/2 negotiation", function()
  it("speaks h2 when the server picks it by ALPN (nginx, nghttpd, h2o)", function()
    for _, name in ipairs({ "nginx_h2", "nghttpd_tls", "h2o" }) do
      if S[name] then
        local res = ok(http.get(S[name] .. "/index.html", { ca_file = fresh_ca() }))
        assert.are.equal(200, res.status, name)
        assert.are.equal("2", res.version, name)
        assert.are.equal("hello from h2\n", res.body, name)
        assert.is_true(res.tls.verified)
      end
    end
  end)

  it("falls back to HTTP/1.1 on a server without h2, and with http2 = false", function()
    local res = ok(http.get(S.nginx_h1 .. "/json", { ca_file = fresh_ca() }))
    assert.are.equal("1.1", res.version)
    assert.are.equal('{"ok":true}', res.body)
    res = ok(http.get(S.nginx_h2 .. "/json", { ca_file = fresh_ca(), http2 = false }))
    assert.are.equal("1.1", res.version)
    if TLS_GOOD then -- Python's ssl server: no ALPN at all
      res = ok(http.get(TLS_GOOD .. "/", { ca_file = fresh_ca() }))
      assert.are.equal("1.1", res.version)
    end
  end)

  it("refuses a bad http2 value", function()
    local res, err, kind = http.get(S.nginx_h2 .. "/json", { http2 = "yes" })
    assert.is_nil(res)
    assert.are.equal("invalid", kind)
    assert.matches("http2", err)
  end)

  it("speaks h2c by prior knowledge on plain http", function()
    local res = ok(http.get(S.nghttpd_h2c .. "/index.html", { http2 = "prior-knowledge" }))
    assert.are.equal("2", res.version)
    assert.are.equal("hello from h2\n", res.body)
    assert.is_nil(res.tls)
  end)

  it("works inside a CONNECT tunnel", function()
    if not S.tinyproxy then return pending("tinyproxy is not installed") end
    local res = ok(http.get(S.nginx_h2 .. "/json", { ca_file = fresh_ca(), proxy = S.tinyproxy }))
    assert.are.equal("2", res.version)
    assert.are.equal('{"ok":true}', res.body)
  end)

  it("makes requests wait for the first connection's ALPN answer; HTTP/1.1 ones then open their own", function()
    local ca = fresh_ca()
    local before = opened()
    local out = all(20, function()
      local res = ok(http.get(S.nginx_h1 .. "/json", { ca_file = ca }))
      return res.version
    end)
    for i = 1, 20 do assert.are.equal("1.1", out[i]) end
    assert.is_true(opened() - before > 1)
  end)
end)

describe("HTTP/2 multiplexing", function()
  it("carries 200 concurrent requests on one connection", function()
    local ca = fresh_ca()
    local before = opened()
    local out = all(200, function(i)
      local res = ok(http.get(S.nginx_h2 .. "/json?i=" .. i, { ca_file = ca }))
      return res.status .. " " .. res.version .. " " .. res.body
    end)
    for i = 1, 200 do assert.are.equal('200 2 {"ok":true}', out[i]) end
    assert.are.equal(1, opened() - before)
  end)

  it("queues beyond the server's MAX_CONCURRENT_STREAMS with tiny windows, bodies intact", function()
    local base = fresh_h2c(S.node_tiny)
    local payload = ("0123456789abcdef"):rep(65536 + 7) -- 1 MiB and a bit
    local digest = sha256(payload)
    local before = opened()
    local out = all(5, function()
      local res = ok(http.post(base .. "/echo", payload, { http2 = "prior-knowledge" }))
      return assert(cjson.decode(res.body))
    end)
    for i = 1, 5 do
      assert.are.equal(#payload, out[i].len)
      assert.are.equal(digest, out[i].sha256)
    end
    assert.are.equal(1, opened() - before)
  end)

  it("sends POST and PUT bodies of 1 MB and more", function()
    local payload = ("x"):rep(1024 * 1024 + 11) .. "end"
    local digest = sha256(payload)
    for _, method in ipairs({ "POST", "PUT" }) do
      local res = ok(http.request{ url = S.node_tls .. "/echo", method = method, body = payload, ca_file = fresh_ca() })
      assert.are.equal("2", res.version)
      local e = assert(cjson.decode(res.body))
      assert.are.equal(method, e.method)
      assert.are.equal(#payload, e.len)
      assert.are.equal(digest, e.sha256)
      assert.are.equal(tostring(#payload), e.headers["content-length"])
    end
  end)

  it("sends bodies from a file and from functions (chunked, sized), many streams at once", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    local parts = {}
    for i = 1, 48 do parts[i] = ("%05d"):format(i):rep(13108) end -- 48 pieces of 65,540 bytes
    local payload = table.concat(parts)
    f:write(payload)
    f:close()
    local digest = sha256(payload)
    local ca = fresh_ca()
    local function check(res, with_length)
      assert.are.equal("2", res.version)
      local e = assert(cjson.decode(res.body))
      assert.are.equal(#payload, e.len)
      assert.are.equal(digest, e.sha256)
      assert.are.equal(with_length and tostring(#payload) or nil, e.headers["content-length"])
      assert.is_nil(e.headers["transfer-encoding"])
      return e
    end
    local before = opened()
    local file = assert(io.open(path, "rb"))
    local first = check(ok(http.request{ url = S.node_tls .. "/echo", method = "PUT", body = file, ca_file = ca }), true)
    file:close()
    -- 8 function bodies at once on the one connection, half with their size declared; each
    -- piece is asked for only once the previous one went into DATA frames
    local results = all(8, function(i)
      local n = 0
      local res = ok(http.request{ url = S.node_tls .. "/echo?f=" .. i, method = "POST", ca_file = ca,
        body = function()
          n = n + 1
          if n % 7 == 0 then task.sleep(0.001) end -- a function that yields
          return parts[n]
        end, body_size = i % 2 == 0 and #payload or nil })
      return { e = check(res, i % 2 == 0), calls = n }
    end)
    for _, r in ipairs(results) do
      assert.are.equal(first.session, r.e.session)
      assert.is_true(r.calls == 48 or r.calls == 49) -- a sized body ends with its last byte
    end
    assert.are.equal(1, opened() - before)
    -- a function that gives fewer bytes than its body_size fails as invalid, the connection goes on
    local _, err, kind = http.request{ url = S.node_tls .. "/echo?short", method = "POST", ca_file = ca,
      body = function() return nil end, body_size = 10 }
    assert.are.equal("invalid", kind)
    assert.matches("fewer than the body_size of 10 bytes", err, 1, true)
    check(ok(http.request{ url = S.node_tls .. "/echo", method = "PUT", body = assert(io.open(path, "rb")), ca_file = ca }), true)
    assert.are.equal(1, opened() - before)
    -- a stream refused once its function was asked fails (what it gave cannot be given again);
    -- a file body refused is sent again from its start
    local n = 0
    local _, rerr, rkind = http.request{ url = S.node_h2c .. "/refuse-once?fn", method = "POST",
      http2 = "prior-knowledge", body = function() n = n + 1; return n == 1 and "piece" or nil end }
    assert.are.equal("closed", rkind)
    assert.matches("after the body's function was asked", rerr, 1, true)
    local refused = ok(http.request{ url = S.node_h2c .. "/refuse-once?file", method = "POST",
      http2 = "prior-knowledge", body = assert(io.open(path, "rb")) })
    assert.matches("^taken on session", refused.body)
    os.remove(path)
  end)

  it("downloads 20 MB intact (nginx, nghttpd, h2o)", function()
    for _, name in ipairs({ "nginx_h2", "nghttpd_tls", "h2o" }) do
      if S[name] then
        local res = ok(http.get(S[name] .. "/big.bin", { ca_file = fresh_ca(), max_body = 64 * 1024 * 1024 }))
        assert.are.equal("2", res.version, name)
        assert.are.equal(20 * 1024 * 1024 + 123, #res.body, name)
        assert.are.equal(S.big_sha256, sha256(res.body), name)
      end
    end
  end)

  it("sends request headers as HTTP/2 fields: pseudo-headers, lower case, no connection headers", function()
    local res = ok(http.get(S.node_tls .. "/echo", { ca_file = fresh_ca(), headers = {
      ["X-Mixed-Case"] = "v", Connection = "keep-alive", ["Keep-Alive"] = "5", TE = "trailers",
      Upgrade = "h2c" } }))
    local h = assert(cjson.decode(res.body)).headers
    assert.are.equal("v", h["x-mixed-case"])
    assert.are.equal("trailers", h.te)
    assert.is_nil(h.connection)
    assert.is_nil(h["keep-alive"])
    assert.is_nil(h.upgrade)
    assert.are.equal("GET", h[":method"])
    assert.are.equal("https", h[":scheme"])
    assert.matches("^127%.0%.0%.1:%d+$", h[":authority"])
    assert.are.equal("/echo", h[":path"])
    assert.matches("^luafetch/", h["user-agent"])
  end)
end)

describe("HTTP/2 failures", function()
  it("retries every stream above a GOAWAY's last-stream-id: all succeed (nginx keepalive_requests 10)", function()
    local ca = fresh_ca()
    local before = opened()
    local out = all(50, function(i)
      local res, err, kind = http.get(S.nginx_goaway .. "/json?i=" .. i, { ca_file = ca })
      return res and res.status or (tostring(err) .. " " .. tostring(kind))
    end)
    for i = 1, 50 do assert.are.equal(200, out[i]) end
    assert.is_true(opened() - before >= 5) -- 10 streams per connection
  end)

  it("retries streams refused by a GOAWAY mid-flight, whatever their method", function()
    local base = fresh_h2c(S.node_h2c)
    local out = all(8, function(i)
      local res, err, kind = http.post(base .. "/goaway-after/3?i=" .. i, "data", { http2 = "prior-knowledge" })
      return res and res.status or (tostring(err) .. " " .. tostring(kind))
    end)
    for i = 1, 8 do assert.are.equal(200, out[i]) end
  end)

  it("retries a REFUSED_STREAM on a new connection", function()
    local base = fresh_h2c(S.node_h2c)
    local before = opened()
    local res = ok(http.post(base .. "/refuse-once?" .. fresh_n, "x", { http2 = "prior-knowledge" }))
    assert.are.equal(200, res.status)
    assert.are.equal(2, opened() - before)
  end)

  -- the raw peer of h2_node.js: its mode says what it answers
  local function raw(mode)
    return tonumber(ok(http.get(S.node_raw_ctl .. "/mode/" .. mode, { http2 = false })).body)
  end

  it("maps RST_STREAM codes: PROTOCOL_ERROR → protocol, CANCEL → closed, named; the connection goes on", function()
    local base = fresh_h2c(S.node_raw)
    local o = { http2 = "prior-knowledge" }
    local n0 = raw("rst-1")
    local res, err, kind = http.get(base .. "/a", o)
    assert.is_nil(res)
    assert.are.equal("protocol", kind)
    assert.matches("PROTOCOL_ERROR", err)
    raw("rst-8")
    res, err, kind = http.get(base .. "/b", o)
    assert.is_nil(res)
    assert.are.equal("closed", kind)
    assert.matches("CANCEL", err)
    raw("ok")
    res = ok(http.get(base .. "/c", o))
    assert.are.equal(200, res.status)
    assert.is_true(res.reused)
    assert.are.equal(n0 + 1, raw("ok"))
  end)

  it("drops a connection whose server breaks the framing (protocol) and reuses nothing", function()
    local base = fresh_h2c(S.node_raw)
    local n0 = raw("frame-size")
    for _ = 1, 2 do
      local res, err, kind = http.get(base .. "/x", { http2 = "prior-knowledge", timeout = 5 })
      assert.is_nil(res)
      assert.are.equal("protocol", kind)
      assert.matches("FRAME_SIZE_ERROR", err)
    end
    assert.are.equal(n0 + 2, raw("ok"))
  end)

  it("cancels one stream while the others on the connection go on", function()
    local base = fresh_h2c(S.node_h2c)
    -- counted before the stalled request can reach the server (node_stats yields, and the spawned
    -- task may run meanwhile: read after it, the count could already include it)
    local before = node_stats().hold
    local stalled = task.spawn(function()
      return http.get(base .. "/hold", { http2 = "prior-knowledge" })
    end)
    wait_until(function() return node_stats().hold > before end, "the stalled stream")
    local others = all(5, function()
      return ok(http.get(base .. "/echo", { http2 = "prior-knowledge" })).status
    end)
    stalled:cancel()
    for i = 1, 5 do assert.are.equal(200, others[i]) end
    local good, err = stalled:join()
    assert.is_false(good)
    assert.matches("cancel", err)
    local res = ok(http.get(base .. "/echo", { http2 = "prior-knowledge" }))
    assert.is_true(res.reused)
  end)

  it("times out one stream (read timeout) without touching the others", function()
    local base = fresh_h2c(S.node_h2c)
    local slow = task.spawn(function()
      return { http.get(base .. "/hold", { http2 = "prior-knowledge", timeout = { read = 0.3 } }) }
    end)
    local fine = ok(http.get(base .. "/echo", { http2 = "prior-knowledge" }))
    assert.are.equal(200, fine.status)
    local _, r = slow:join()
    assert.is_nil(r[1])
    assert.are.equal("timeout", r[3])
    assert.is_true(ok(http.get(base .. "/echo", { http2 = "prior-knowledge" })).reused)
  end)

  it("fails each of 100 streams once, with no retry, when their connection dies", function()
    http.get(S.node_h2c .. "/stats/reset", { http2 = "prior-knowledge" })
    local base = fresh_h2c(S.node_relay)
    local ts = {}
    for i = 1, 100 do
      ts[i] = task.spawn(function() return { http.get(base .. "/hold?i=" .. i, { http2 = "prior-knowledge" }) } end)
    end
    wait_until(function() return node_stats().hold == 100 end, "100 streams held")
    assert.are.equal("1", ok(http.get(S.node_relay_ctl .. "/cut", { http2 = false })).body)
    for i = 1, 100 do
      local _, r = ts[i]:join()
      assert.is_nil(r[1])
      assert.are.equal("closed", r[3])
    end
    task.sleep(0.1)
    assert.are.equal(100, node_stats().hold) -- nothing was sent twice
  end)

  it("checks a pooled connection idle for a while with PING and replaces a dead one", function()
    local base = fresh_h2c(S.node_relay)
    local ctl = S.node_relay_ctl
    local first = ok(http.get(base .. "/echo", { http2 = "prior-knowledge" }))
    assert.are.equal(200, first.status)
    ok(http.get(ctl .. "/freeze", { http2 = false }))
    task.sleep(1.1) -- idle past H2_PING_AFTER_MS
    local before = opened()
    local res = ok(http.get(base .. "/echo", { http2 = "prior-knowledge", timeout = { connect = 0.5, total = 5 } }))
    assert.are.equal(200, res.status)
    assert.is_false(res.reused)
    assert.are.equal(1, opened() - before)
    ok(http.get(ctl .. "/thaw", { http2 = false }))
  end)
end)

describe("HTTP/2 responses as over HTTP/1.1", function()
  it("decodes gzip, follows redirects, skips 1xx, ignores trailers", function()
    local base = fresh_h2c(S.node_h2c)
    local o = { http2 = "prior-knowledge" }
    local res = ok(http.get(base .. "/gzip", o))
    assert.are.equal(("compressed "):rep(1000), res.body)
    res = ok(http.get(base .. "/redirect", o))
    assert.are.equal(1, res.redirects)
    assert.matches("/echo%?redirected$", res.url)
    res = ok(http.get(base .. "/early-hints", o))
    assert.are.equal(200, res.status)
    assert.are.equal("yes", res.headers["x-final"])
    assert.is_nil(res.headers.link)
    res = ok(http.get(base .. "/trailers", o))
    assert.are.equal("body with trailers", res.body)
    assert.is_nil(res.headers["x-checksum"])
  end)

  it("applies max_body and the header size limit per stream", function()
    local base = fresh_h2c(S.node_h2c)
    local res, err, kind = http.get(base .. "/bytes/200000", { http2 = "prior-knowledge", max_body = 1000 })
    assert.is_nil(res)
    assert.are.equal("limit", kind)
    assert.matches("max_body", err)
    http.configure{ max_header_bytes = 8192 }
    res, err, kind = http.get(base .. "/big-headers/10000", { http2 = "prior-knowledge" })
    http.configure{ max_header_bytes = 64 * 1024 }
    assert.is_nil(res)
    assert.are.equal("limit", kind)
    assert.matches("headers too large", err)
    res = ok(http.get(base .. "/bytes/5000", { http2 = "prior-knowledge" }))
    assert.are.equal(5000, #res.body)
  end)
end)
