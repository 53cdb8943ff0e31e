-- net_spec.lua: the connect phase and the bounds of the network layer. Happy Eyeballs (RFC 8305)
-- against a real black-holed address (tests/fixtures/blackhole.py fills a listener's accept queue,
-- so the kernel drops further SYNs), http.configure{hosts=} (fixed addresses before DNS), liveness
-- of pooled connections, and the caps on idle connections across hosts and on the DNS cache.

local http = require "http"
local task = require "task"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local PORT = tonumber(assert(BASE:match(":(%d+)$")))
local TLS_GOOD = assert(os.getenv("FIXTURE_TLS_GOOD"), "FIXTURE_TLS_GOOD is not set")
local ROOT = os.getenv("LUAFETCH_ROOT") or "."

-- Pool keys no other spec file uses (see pool_spec.lua: glibc reads 127.00.0.1 as 127.0.0.1).
local fresh_n = 4096
local function fresh_base(port)
  fresh_n = fresh_n + 1
  local n = fresh_n
  local a, b, c = n % 16 + 1, (n // 16) % 16 + 1, (n // 256) % 16
  return ("http://127.%s.%s.%s1:%s"):format(("0"):rep(a), ("0"):rep(b), ("0"):rep(c), port or PORT)
end

-- Host names only this file maps with `hosts`; the .test TLD never resolves through DNS.
local name_n = 0
local function fresh_name()
  name_n = name_n + 1
  return ("he%d.luafetch.test"):format(name_n)
end

local function block(seconds)
  os.execute("sleep " .. seconds)
end

-- Starts a black hole on addr:PORT (the fixture's port on another loopback address) and returns a
-- function that stops it.
local function black_hole(addr)
  local cmd = ("exec python3 %s/tests/fixtures/blackhole.py %s %d 60"):format(ROOT, addr, PORT)
  local p = assert(io.popen(cmd, "r"))
  local line = p:read("l") or ""
  local pid = line:match("^READY (%d+)$")
  assert(pid, "blackhole.py did not start: " .. line)
  return function()
    os.execute("kill " .. pid)
    p:close()
  end
end

local function restore()
  http.configure{ max_idle_total = 512, dns_cache_size = 10000, idle_timeout = 30 }
end

describe("Happy Eyeballs and fixed addresses", function()
  local stop_v4, stop_v6
  setup(function()
    stop_v4 = black_hole("127.0.0.2")
    stop_v6 = black_hole("::1")
  end)
  teardown(function()
    if stop_v4 then stop_v4() end
    if stop_v6 then stop_v6() end
  end)

  it("a black-holed first address costs one stagger step, not the connect timeout", function()
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "127.0.0.2", "127.0.0.1" } } }
    local t0 = task.now()
    local res, err, kind = http.get(("http://%s:%d/bytes/3"):format(name, PORT), { timeout = { connect = 5 } })
    local elapsed = task.now() - t0
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
    assert.are.equal(3, #res.body)
    -- the second address starts 250 ms after the first: never before, and far from 5 s
    assert.is_true(res.timings.connect >= 0.24, "connect " .. res.timings.connect)
    assert.is_true(elapsed < 4, "took " .. elapsed)
    http.configure{ hosts = { [name] = false } }
  end)

  it("alternates families: a black-holed IPv6 address, then IPv4", function()
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "[::1]", "127.0.0.1" } } }
    local res, err, kind = http.get(("http://%s:%d/host"):format(name, PORT), { timeout = { connect = 5 } })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
    -- the Host header names the URL's host, not the address used
    assert.truthy(res.body:find(name, 1, true))
  end)

  it("a refused address is followed by the next one at once, not after the stagger", function()
    local name = fresh_name()
    -- nothing listens on 127.0.0.3 at the fixture's port: refused at once
    http.configure{ hosts = { [name] = { "127.0.0.3", "127.0.0.1" } } }
    local res, err, kind = http.get(("http://%s:%d/bytes/1"):format(name, PORT))
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.is_true(res.timings.connect < 0.2, "connect " .. res.timings.connect)
  end)

  it("every address refused: kind connect, naming how many were tried", function()
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "127.0.0.3", "127.0.0.4", "127.0.0.5" } } }
    local res, err, kind = http.get(("http://%s:%d/"):format(name, PORT))
    assert.is_nil(res)
    assert.are.equal("connect", kind)
    assert.truthy(err:find("3 addresses tried", 1, true), err)
  end)

  it("only black holes: the connect timeout covers the whole phase", function()
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "127.0.0.2", "[::1]" } } }
    local t0 = task.now()
    local res, err, kind = http.get(("http://%s:%d/"):format(name, PORT), { timeout = { connect = 0.6 } })
    local elapsed = task.now() - t0
    assert.is_nil(res)
    assert.are.equal("timeout", kind, err)
    assert.is_true(elapsed >= 0.55 and elapsed < 3, "took " .. elapsed)
  end)

  it("fixed addresses are used before DNS and keep TLS checks on the URL's name", function()
    local before = http.stats().dns_lookups
    -- "localhost" is in the good certificate; the fixed address skips the resolver
    http.configure{ hosts = { localhost = { "127.0.0.1" } } }
    local tls_port = TLS_GOOD:match(":(%d+)$")
    local res, err, kind = http.get(("https://localhost:%s/bytes/2"):format(tls_port),
                                    { ca_file = os.getenv("FIXTURE_CERTS") .. "/ca.pem" })
    http.configure{ hosts = { localhost = false } }
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
    assert.are.equal(before, http.stats().dns_lookups)
    -- a fixed address does not make a wrong name pass: the certificate has no such name
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "127.0.0.1" } } }
    local res2, err2, kind2 = http.get(("https://%s:%s/"):format(name, tls_port),
                                       { ca_file = os.getenv("FIXTURE_CERTS") .. "/ca.pem" })
    assert.is_nil(res2)
    assert.are.equal("tls", kind2, err2)
  end)

  it("bad hosts entries are usage errors", function()
    assert.has_error(function() http.configure{ hosts = { x = { "not-an-ip" } } } end)
    assert.has_error(function() http.configure{ hosts = { x = "127.0.0.1" } } end)
    assert.has_error(function() http.configure{ hosts = { x = {} } } end)
    assert.has_error(function() http.configure{ hosts = 5 } end)
  end)
end)

describe("pooled connections and liveness", function()
  it("an https connection the server closed while the loop was blocked is not used", function()
    local ca = os.getenv("FIXTURE_CERTS") .. "/./ca.pem" -- a pool key of this test's own
    local first = assert(http.get(TLS_GOOD .. "/keepalive-then-close?after=0.05", { ca_file = ca }))
    assert.are.equal(200, first.status)
    block(0.4) -- the close_notify and FIN arrive unseen by the loop
    local res, err, kind = http.post(TLS_GOOD .. "/echo", "once", { ca_file = ca })
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
    assert.is_false(res.reused)
  end)
end)

describe("bounds", function()
  after_each(restore)

  it("max_idle_total caps idle connections across hosts, least recently used closed first", function()
    http.configure{ max_idle_total = 3 }
    local bases = {}
    for i = 1, 6 do
      bases[i] = fresh_base()
      assert(http.get(bases[i] .. "/bytes/1"))
    end
    local s = http.stats()
    assert.is_true(s.idle_connections <= 3, "idle " .. s.idle_connections)
    assert.is_true(s.idle_hosts <= 3, "hosts " .. s.idle_hosts) -- empty buckets are freed
    assert.is_true(assert(http.get(bases[6] .. "/bytes/1")).reused)  -- the most recent stayed
    assert.is_false(assert(http.get(bases[1] .. "/bytes/1")).reused) -- the oldest was closed
  end)

  it("max_idle_total = 0 keeps nothing idle", function()
    http.configure{ max_idle_total = 0 }
    local base = fresh_base()
    assert(http.get(base .. "/bytes/1"))
    assert.are.equal(0, http.stats().idle_connections)
    assert.is_false(assert(http.get(base .. "/bytes/1")).reused)
  end)

  it("a host's pool entry goes when its last idle connection does", function()
    local before = http.stats().idle_hosts
    local base = fresh_base()
    assert(http.get(base .. "/bytes/1"))
    assert.are.equal(before + 1, http.stats().idle_hosts)
    -- taken for a request that ends with Connection: close: the bucket empties and is freed
    assert(http.get(base .. "/close"))
    assert.are.equal(before, http.stats().idle_hosts)
  end)

  it("dns_cache_size bounds the names cached", function()
    http.configure{ dns_cache_size = 4 }
    for _ = 1, 10 do
      assert(http.get(fresh_base() .. "/bytes/1", { headers = { Connection = "close" } }))
    end
    assert.is_true(http.stats().dns_cache_entries <= 4, "entries " .. http.stats().dns_cache_entries)
  end)
end)

describe("res.version", function()
  it("is the response's HTTP version: 1.1, and 1.0 from an HTTP/1.0 server", function()
    local res = assert(http.get(BASE .. "/bytes/1"))
    assert.are.equal("1.1", res.version)
    local old = assert(http.get(BASE .. "/http10"))
    assert.are.equal("1.0", old.version)
  end)
end)

-- A misbehave.py server (see its docstring); returns its base URL and a stop function.
local function misbehave(mode, scheme, ...)
  local args = table.concat({ ... }, " ")
  local p = assert(io.popen(("exec python3 %s/tests/fixtures/misbehave.py %s %s"):format(ROOT, mode, args), "r"))
  local port, pid = (p:read("l") or ""):match("^PORT (%d+) PID (%d+)$")
  assert(port, "misbehave.py " .. mode .. " did not start")
  return ("%s://127.0.0.1:%s"):format(scheme, port), function()
    os.execute("kill " .. pid)
    p:close()
  end
end

describe("regressions from the review of the connect path", function()
  after_each(restore)

  it("a small DNS cache with lookups in flight does not free an IP literal's addresses in use", function()
    http.configure{ dns_cache_size = 1 }
    local slow = task.spawn(function() return http.get("http://still-resolving.invalid/", { timeout = 5 }) end)
    task.sleep(0)
    local res, err, kind = http.get(BASE .. "/bytes/1")
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    slow:join()
  end)

  it("the read timeout is the server's silence: a slow but steady upload is not cut", function()
    local url, stop = misbehave("slowread", "http")
    local body = string.rep("x", 4 * 1024 * 1024) -- ~1.6 s at the server's pace
    local res, err, kind = http.post(url .. "/", body, { timeout = { read = 0.8, total = 30 } })
    stop()
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.are.equal(200, res.status)
  end)

  it("the stagger starts the next address even when every connect slot is taken", function()
    local stop = black_hole("127.0.0.2")
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "127.0.0.2", "127.0.0.1" } }, max_connecting = 1 }
    local res, err, kind = http.get(("http://%s:%d/bytes/1"):format(name, PORT), { timeout = { connect = 3 } })
    http.configure{ max_connecting = 128, hosts = { [name] = false } }
    stop()
    assert.is_table(res, tostring(err) .. " " .. tostring(kind))
    assert.is_true(res.timings.connect < 2, "connect " .. res.timings.connect)
  end)

  it("an address the kernel refuses outright (link-local without a scope) is kind connect, and the next is tried", function()
    local res, err, kind = http.get("http://[fe80::1]:80/")
    assert.is_nil(res)
    assert.are.equal("connect", kind, err)
    local name = fresh_name()
    http.configure{ hosts = { [name] = { "fe80::1", "127.0.0.1" } } }
    local ok = http.get(("http://%s:%d/bytes/1"):format(name, PORT))
    http.configure{ hosts = { [name] = false } }
    assert.is_table(ok)
  end)

  it("a reset right after the TLS handshake is kind closed (retryable), not tls", function()
    local certs = os.getenv("FIXTURE_CERTS")
    local url, stop = misbehave("tls-rst", "https", certs .. "/good.pem", certs .. "/good.key")
    local kinds = {}
    for _ = 1, 8 do
      local res, err, kind = http.get(url .. "/", { ca_file = certs .. "/ca.pem" })
      assert.is_nil(res)
      kinds[kind] = (kinds[kind] or 0) + 1
    end
    stop()
    local seen = {}
    for k, n in pairs(kinds) do seen[#seen + 1] = k .. "=" .. n end
    assert.is_nil(kinds.tls, "kinds: " .. table.concat(seen, " "))
  end)
end)

describe("the shared budget of decompressed bytes (a crowd of gzip bombs)", function()
  after_each(function() http.configure{ max_inflated_total = 128 * 1024 * 1024 } end)

  it("responses in flight together cannot inflate past max_inflated_total: the excess fails with limit", function()
    -- room for one body: any two that wait together (decoded, for their tasks to be resumed)
    -- go past it, which on a loaded machine is still all but certain among 20 (with room for four
    -- it was not: the responses could trickle in one loop turn at a time)
    http.configure{ max_inflated_total = 1024 * 1024 }
    local jobs, limited, whole = {}, 0, 0
    -- bodies under max_body complete and wait, decoded, until their tasks take them: 20 of them
    -- in flight at once hold far more than the budget
    for i = 1, 20 do
      jobs[i] = task.spawn(function()
        return http.get(BASE .. "/gzip-bomb/900000", { max_body = 1024 * 1024 })
      end)
    end
    for i = 1, 20 do
      local _, res, err, kind = jobs[i]:join()
      if res then
        whole = whole + 1
      else
        assert.are.equal("limit", kind, err)
        if err:find("max_inflated_total", 1, true) then limited = limited + 1 end
      end
    end
    -- 20 bodies of 900 kB cannot all be held in 1 MiB at once; some were refused by the budget
    assert.is_true(limited > 0, "none refused by the shared budget (" .. whole .. " whole)")
    -- and the budget is given back: a lone bomb afterwards gets its own max_body limit
    local _, err, kind = http.get(BASE .. "/gzip-bomb/20000000", { max_body = 1024 * 1024 })
    assert.are.equal("limit", kind)
    assert.truthy(err:find("max_body", 1, true), err)
  end)
end)
