-- proxy_spec.lua: requests through real proxies from Debian (tinyproxy for HTTP and CONNECT,
-- microsocks for SOCKS5, each also with credentials) and through misbehaving ones
-- (tests/fixtures/proxies.py starts them all on loopback ports it picks). The proxy option and
-- the environment (run in a child host with the variables set), no_proxy forms, credentials,
-- keep-alive through a proxy, TLS names checked inside a tunnel, errors and timeouts.

local http = require "http"
local task = require "task"
local proxy = require "proxy"
local cjson = require "cjson.safe"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local PORT = tonumber(assert(BASE:match(":(%d+)$")))
local TLS_GOOD = assert(os.getenv("FIXTURE_TLS_GOOD"))
local TLS_WRONGHOST = assert(os.getenv("FIXTURE_TLS_WRONGHOST"))
local CERTS = assert(os.getenv("FIXTURE_CERTS"))
local CA = CERTS .. "/ca.pem"
local ROOT = os.getenv("LUAFETCH_ROOT") or "."
local BIN = assert(os.getenv("LUAFETCH_BIN"))
local USER, PASS = "proxyuser", "secret"

local P = {}        -- name → proxy URL
local stop_proxies

local function with_auth(url, user, pass)
  return (url:gsub("^(%a[%w]*://)", function(scheme) return scheme .. user .. ":" .. pass .. "@" end))
end

-- Server-side counters of the plain fixture: requests and accepted connections since a reset.
local function fixture_stats()
  local res = assert(http.get(BASE .. "/stats", { proxy = false, headers = { Connection = "close" } }))
  return assert(cjson.decode(res.body))
end
local function fixture_reset()
  assert(http.get(BASE .. "/stats/reset", { proxy = false, headers = { Connection = "close" } }))
end

-- Runs code in a child host with env set (the environment is read once per process).
local function child(env, code)
  local parts = {}
  for k, v in pairs(env) do
    parts[#parts + 1] = ("%s=%q"):format(k, v)
  end
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local cmd = ("env -u http_proxy -u HTTP_PROXY -u https_proxy -u HTTPS_PROXY -u all_proxy " ..
               "-u ALL_PROXY -u no_proxy -u NO_PROXY -u REQUEST_METHOD %s %s run %s 2>&1")
              :format(table.concat(parts, " "), BIN, script)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok, _, code_ = p:close()
  os.remove(script)
  return out, ok and 0 or code_
end

setup(function()
  P, stop_proxies = require("tests.spec.support.child").start_fixture("proxies.py")
end)

teardown(function()
  if stop_proxies then stop_proxies() end
end)

describe("proxy URLs and no_proxy rules", function()
  it("parses schemes, credentials (percent-decoded), IPv6 hosts and default ports", function()
    local p = assert(proxy.parse("http://us%40er:p%3Ass@Proxy.example:3128"))
    assert.are.same({ kind = "http", host = "proxy.example", port = 3128, user = "us@er", pass = "p:ss" }, p)
    p = assert(proxy.parse("socks5h://[::1]:1081"))
    assert.are.equal("socks5h", p.kind)
    assert.are.equal("::1", p.host)
    assert.are.equal(1080, assert(proxy.parse("proxy.example")).port) -- scheme-less: http, curl's 1080
    assert.is_nil(proxy.parse("https://proxy.example:443"))
    assert.is_nil(proxy.parse("socks4://proxy.example"))
    assert.is_nil(proxy.parse("http://proxy.example:99999"))
    assert.is_nil(proxy.parse("http://proxy.example/path"))
  end)

  it("matches names, domain suffixes, addresses, CIDR ranges and *", function()
    local rules = proxy.parse_no_proxy("localhost, .internal.example,example.org,10.0.0.0/8 , ::1,[fd00::]/8")
    assert.is_true(proxy.bypass("localhost", rules))
    assert.is_true(proxy.bypass("a.internal.example", rules))
    assert.is_true(proxy.bypass("internal.example", rules))
    assert.is_true(proxy.bypass("www.example.org", rules))
    assert.is_true(proxy.bypass("example.org", rules))
    assert.is_false(proxy.bypass("badexample.org", rules))
    assert.is_true(proxy.bypass("10.1.2.3", rules))
    assert.is_false(proxy.bypass("11.1.2.3", rules))
    assert.is_true(proxy.bypass("::1", rules))
    assert.is_true(proxy.bypass("fd12:3456::1", rules))
    assert.is_false(proxy.bypass("fe80::1", rules))
    assert.is_false(proxy.bypass("example.com", rules))
    assert.is_true(proxy.bypass("anything", proxy.parse_no_proxy("*")))
  end)
end)

describe("HTTP proxy (tinyproxy)", function()
  it("sends http:// through the proxy", function()
    fixture_reset()
    for i = 1, 3 do
      local res, err, kind = http.get(BASE .. "/bytes/" .. i, { proxy = P.TINYPROXY })
      assert.is_table(res, tostring(err) .. " " .. tostring(kind))
      assert.are.equal(200, res.status)
      assert.are.equal(i, #res.body)
    end
    assert.are.equal(3, fixture_stats().requests)
  end)

  it("keeps a CONNECT tunnel alive: five https requests, one connection to the origin", function()
    local ca = CERTS .. "/./././ca.pem" -- a pool key of this test's own
    local function tls_stats(path)
      local res = assert(http.get(TLS_GOOD .. path, { proxy = false, verify = false, headers = { Connection = "close" } }))
      return res.body
    end
    tls_stats("/stats/reset")
    local before = http.stats().connections_opened
    for i = 1, 5 do
      local res, err, kind = http.get(TLS_GOOD .. "/bytes/" .. i, { proxy = P.TINYPROXY, ca_file = ca })
      assert.is_table(res, tostring(err) .. " " .. tostring(kind))
      assert.are.equal(i, #res.body)
    end
    assert.are.equal(1, http.stats().connections_opened - before)
    local s = assert(cjson.decode(tls_stats("/stats")))
    assert.are.equal(5, s.requests)
    assert.are.equal(2, s.connections) -- the tunnel's, and the one reading these stats
  end)

  it("puts the absolute URL and Proxy-Authorization on the request line's side only", function()
    local url = "http://origin.example:8080/path?q=1"
    local res = assert(http.get(url, { proxy = with_auth(P.RECORD, "u", "p%20w") }))
    assert.truthy(res.body:find("^GET http://origin%.example:8080/path%?q=1 HTTP/1%.1\r\n"), res.body)
    assert.truthy(res.body:find("\r\nProxy%-Authorization: Basic dTpwIHc=\r\n"), res.body)
    assert.truthy(res.body:find("\r\nHost: origin%.example:8080\r\n"), res.body)
  end)

  it("tunnels https:// with CONNECT and checks the origin's certificate inside", function()
    local res, err, kind = http.get(TLS_GOOD .. "/bytes/7", { proxy = P.TINYPROXY, ca_file = CA })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
    assert.are.equal(7, #res.body)
    assert.is_true(res.tls.verified)
    assert.is_true(res.timings.connect > 0)
    -- the tunnel is pooled for its origin: the next request reuses it
    local again = assert(http.get(TLS_GOOD .. "/bytes/1", { proxy = P.TINYPROXY, ca_file = CA }))
    assert.is_true(again.reused)
  end)

  it("never reuses a tunnel opened with other credentials, however they are spelt", function()
    -- user "a:b" with password "c", and user "a" with password "b:c": one string if unescaped
    local ca = CERTS .. "/././././ca.pem"
    local first = assert(http.get(TLS_GOOD .. "/bytes/1", { proxy = with_auth(P.TINYPROXY, "a%3Ab", "c"), ca_file = ca }))
    assert.is_false(first.reused)
    local second = assert(http.get(TLS_GOOD .. "/bytes/1", { proxy = with_auth(P.TINYPROXY, "a", "b%3Ac"), ca_file = ca }))
    assert.is_false(second.reused)
  end)

  it("still refuses a wrong-host certificate inside the tunnel", function()
    local res, err, kind = http.get(TLS_WRONGHOST .. "/", { proxy = P.TINYPROXY, ca_file = CA })
    assert.is_nil(res)
    assert.are.equal("tls", kind, err)
  end)

  it("passes credentials to a proxy that requires them", function()
    local res, err, kind = http.get(BASE .. "/bytes/3", { proxy = with_auth(P.TINYPROXY_AUTH, USER, PASS) })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
    local res2, err2, kind2 = http.get(TLS_GOOD .. "/bytes/3", { proxy = with_auth(P.TINYPROXY_AUTH, USER, PASS), ca_file = CA })
    assert.is_table(res2, tostring(err2) .. " " .. tostring(kind2))
  end)

  it("wrong credentials: the refused CONNECT is kind proxy; plain http gets the refusal as a response", function()
    -- tinyproxy 1.11 answers a bad login with 401 (not 407): the status is reported as sent
    local res, err, kind = http.get(TLS_GOOD .. "/", { proxy = with_auth(P.TINYPROXY_AUTH, USER, "wrong"), ca_file = CA })
    assert.is_nil(res)
    assert.are.equal("proxy", kind)
    assert.truthy(err:find("refused CONNECT", 1, true) and err:find("40[17]"), err)
    assert.falsy(err:find("wrong", 1, true), "the password must not appear in messages")
    local plain = assert(http.get(BASE .. "/", { proxy = with_auth(P.TINYPROXY_AUTH, USER, "wrong") }))
    assert.truthy(plain.status == 401 or plain.status == 407, plain.status)
  end)
end)

describe("SOCKS5 proxy (microsocks)", function()
  it("reaches http and https origins, names resolved here (socks5) or by the proxy (socks5h)", function()
    for _, scheme in ipairs{ "socks5", "socks5h" } do
      local px = P.SOCKS:gsub("^socks5", scheme)
      local res, err, kind = http.get(("http://localhost:%d/bytes/4"):format(PORT), { proxy = px })
      assert.is_table(res, scheme .. ": " .. tostring(err) .. " " .. tostring(kind))
      assert.are.equal(4, #res.body)
      local tls_port = TLS_GOOD:match(":(%d+)$")
      local res2, err2, kind2 = http.get(("https://localhost:%s/bytes/2"):format(tls_port), { proxy = px, ca_file = CA })
      assert.is_table(res2, scheme .. ": " .. tostring(err2) .. " " .. tostring(kind2))
      assert.is_true(res2.tls.verified)
    end
  end)

  it("logs in with username and password; a wrong password is kind proxy", function()
    local res, err, kind = http.get(BASE .. "/bytes/2", { proxy = with_auth(P.SOCKS_AUTH, USER, PASS) })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    local bad, err2, kind2 = http.get(BASE .. "/bytes/2", { proxy = with_auth(P.SOCKS_AUTH, USER, "nope") })
    assert.is_nil(bad)
    assert.are.equal("proxy", kind2)
    assert.truthy(err2:find("SOCKS5", 1, true), err2)
    local none, err3, kind3 = http.get(BASE .. "/bytes/2", { proxy = P.SOCKS_AUTH })
    assert.is_nil(none)
    assert.are.equal("proxy", kind3, err3)
  end)

  it("a SOCKS error reply (origin refused) is kind proxy and names the reason", function()
    local res, err, kind = http.get("http://127.0.0.1:1/", { proxy = P.SOCKS })
    assert.is_nil(res)
    assert.are.equal("proxy", kind)
    assert.truthy(err:lower():find("refused") or err:lower():find("unreachable") or err:find("failure"), err)
  end)
end)

describe("misbehaving proxies", function()
  it("CONNECT answered 403: kind proxy with the status and reason", function()
    local res, err, kind = http.get(TLS_GOOD .. "/", { proxy = P.REFUSE403, ca_file = CA })
    assert.is_nil(res)
    assert.are.equal("proxy", kind)
    assert.truthy(err:find("403 Forbidden", 1, true), err)
  end)

  it("CONNECT answered 407: kind proxy, saying authentication was refused", function()
    local res, err, kind = http.get(TLS_GOOD .. "/", { proxy = P.REFUSE407, ca_file = CA })
    assert.is_nil(res)
    assert.are.equal("proxy", kind)
    assert.truthy(err:find("407", 1, true) and err:find("authentication", 1, true), err)
  end)

  it("a garbled answer is kind proxy, for CONNECT and for SOCKS5", function()
    local res, err, kind = http.get(TLS_GOOD .. "/", { proxy = P.GARBAGE, ca_file = CA })
    assert.is_nil(res)
    assert.are.equal("proxy", kind, err)
    local res2, err2, kind2 = http.get(BASE .. "/", { proxy = P.GARBAGE:gsub("^http", "socks5") })
    assert.is_nil(res2)
    assert.are.equal("proxy", kind2, err2)
  end)

  it("a silent proxy: the connect timeout covers the tunnel", function()
    local t0 = task.now()
    local res, err, kind = http.get(TLS_GOOD .. "/", { proxy = P.SILENT, ca_file = CA, timeout = { connect = 0.5 } })
    assert.is_nil(res)
    assert.are.equal("timeout", kind, err)
    assert.is_true(task.now() - t0 < 3)
  end)

  it("an unreachable proxy is kind connect, naming the proxy", function()
    local res, err, kind = http.get(BASE .. "/", { proxy = "http://127.0.0.1:1" })
    assert.is_nil(res)
    assert.are.equal("connect", kind)
    assert.truthy(err:find("proxy 127.0.0.1 port 1", 1, true), err)
  end)

  it("a bad proxy option is invalid", function()
    local res, err, kind = http.get(BASE .. "/", { proxy = "ftp://x" })
    assert.is_nil(res)
    assert.are.equal("invalid", kind, err)
  end)
end)

describe("proxies from the environment", function()
  local code = ([[
    local http = require "http"
    local function show(url)
      local res, err, kind = http.get(url, { ca_file = %q })
      print(url, res and res.status or kind, res and #res.body or err)
    end
    show(%q) show(%q)
  ]]):format(CA, BASE .. "/bytes/5", TLS_GOOD .. "/bytes/6")

  it("http_proxy and https_proxy are used; a request through the proxy keeps its result", function()
    local out, rc = child({ http_proxy = P.REFUSE403, https_proxy = P.TINYPROXY }, code)
    assert.are.equal(0, rc, out)
    -- http:// went to the refusing proxy (it answers 403 to anything), https:// through tinyproxy
    assert.truthy(out:find("/bytes/5\t403", 1, true), out)
    assert.truthy(out:find("/bytes/6\t200\t6", 1, true), out)
  end)

  it("HTTP_PROXY counts unless REQUEST_METHOD is set (httpoxy)", function()
    local out = child({ HTTP_PROXY = P.REFUSE403 }, code)
    assert.truthy(out:find("/bytes/5\t403", 1, true), out)
    out = child({ HTTP_PROXY = P.REFUSE403, REQUEST_METHOD = "GET" }, code)
    assert.truthy(out:find("/bytes/5\t200\t5", 1, true), out)
  end)

  it("all_proxy covers both schemes; no_proxy excludes by address and by *", function()
    local out = child({ all_proxy = P.REFUSE403 }, code)
    assert.truthy(out:find("/bytes/5\t403", 1, true), out)
    assert.truthy(out:find("/bytes/6\tproxy", 1, true), out)
    out = child({ all_proxy = P.REFUSE403, no_proxy = "127.0.0.0/8" }, code)
    assert.truthy(out:find("/bytes/5\t200", 1, true), out)
    assert.truthy(out:find("/bytes/6\t200", 1, true), out)
    out = child({ all_proxy = P.REFUSE403, NO_PROXY = "*" }, code)
    assert.truthy(out:find("/bytes/5\t200", 1, true), out)
  end)

  it("proxy = false bypasses the environment", function()
    local out = child({ all_proxy = P.REFUSE403 }, ([[
      local http = require "http"
      local res = assert(http.get(%q, { proxy = false }))
      print("status", res.status)
    ]]):format(BASE .. "/bytes/1"))
    assert.truthy(out:find("status\t200", 1, true), out)
  end)

  it("a redirect that leaves the proxy's scope goes direct (no_proxy per hop)", function()
    -- localhost is excluded, 127.0.0.1 is not: the first hop goes through the refusing proxy
    -- unless redirected... so start at localhost (direct) and redirect to 127.0.0.1 (proxied)
    local target = BASE .. "/bytes/2"
    local start = ("http://localhost:%d/redirect-to?url=%s"):format(PORT, http.urlencode and http.urlencode(target) or target)
    local out = child({ http_proxy = P.REFUSE403, no_proxy = "localhost" }, ([[
      local http = require "http"
      local res, err, kind = http.get(%q)
      print("result", res and res.status or kind, res and res.url or err)
    ]]):format(start))
    -- the second hop (127.0.0.1) went through the proxy, which answers 403
    assert.truthy(out:find("result\t403", 1, true), out)
  end)
end)

describe("the fetcher passes the proxy on", function()
  it("fetcher.new{proxy=} sends every request through the proxy; proxy = false goes direct", function()
    local fetcher = require "fetcher"
    local url = BASE .. "/bytes/2"
    local via = fetcher.new{ proxy = P.REFUSE403, max_retries = 0 }:fetch_urls{ url }
    assert.are.equal(403, via[url].status_code) -- the refusing proxy answered, not the origin
    local direct = fetcher.new{ proxy = false, max_retries = 0 }:fetch_urls{ url }
    assert.are.equal(200, direct[url].status_code)
    local tunnel = fetcher.new{ proxy = P.TINYPROXY, ca_file = CA, max_retries = 0 }:fetch_urls{ TLS_GOOD .. "/bytes/3" }
    assert.is_true(tunnel[TLS_GOOD .. "/bytes/3"].success)
  end)
end)
