-- queue_spec.lua: the shared frontier on Redis Streams (lua/queue.lua, scripts/enqueue.lua,
-- scripts/worker.lua) against a real redis-server this spec starts on a free loopback port (and
-- stops by pid), workers as child processes and the fixture server (FIXTURE_URL): three workers with
-- one killed by SIGKILL mid-run, dead letters after max_deliveries, a SIGTERM drain, a Redis restart
-- mid-run (appendonly), dedupe, lease extension for a slow fetch, a result for an entry acknowledged
-- elsewhere, a per-host limit shared by three workers, and bad input (a wrong password, a key of another type, malformed entries).
--
-- The kill test runs 10,000 URLs with the release build and 2,000 with the sanitizer build (its
-- workers are several times slower); QUEUE_SPEC_URLS overrides. `make bench` (P7) runs 20,000.

local R = require "_redis"
local http = require "http"
local task = require "task"
local queue = require "queue"
local fetcher = require "fetcher"

local child = require "tests.spec.support.child"
local q, read, write, wait_for, gone, assert_clean = child.q, child.read, child.write, child.wait_for,
  child.gone, child.assert_clean
local BIN, ROOT = child.BIN, child.ROOT
local FIXTURE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local ASAN = BIN:find("/asan/", 1, true) ~= nil
local N_KILL = tonumber(os.getenv("QUEUE_SPEC_URLS") or "") or (ASAN and 2000 or 10000)

---------------------------------------------------------------------------
-- redis-server and workers as child processes
---------------------------------------------------------------------------

local function free_port()
  local srv = assert(http.serve{ host = "127.0.0.1", port = 0, handler = function() return "" end })
  local port = srv.port
  srv:close()
  return port
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local redis_running = {}

---Starts redis-server with `extra` arguments in `dir` (made if nil) on a free port, or on `port`;
---retries on another port when the chosen one was taken meanwhile. { pid, port, url, dir }.
local function start_redis(extra, dir, port)
  dir = dir or sh("mktemp -d /tmp/luafetch-redis.XXXXXX"):gsub("%s+$", "")
  for _ = 1, 5 do
    local p = port or free_port()
    local pid = sh(("cd %s && redis-server --port %d --bind 127.0.0.1 --daemonize no --dir %s "
      .. "--logfile %s %s >/dev/null 2>&1 </dev/null & echo $!"):format(q(dir), p, q(dir),
      q(dir .. "/redis.log"), extra or "--save '' --appendonly no")):match("%d+")
    local url = "redis://127.0.0.1:" .. p
    local c = R.connect(url, { timeout = 1, connect_timeout = 1 })
    local up = pcall(wait_for, "redis-server on port " .. p, function()
      if gone(pid) then error("redis-server exited: " .. (read(dir .. "/redis.log") or ""):sub(-300)) end
      local r, _, kind = c:call{ "PING" }
      return r == "PONG" or kind == "server" -- NOAUTH: up, and wants a password
    end, 10)
    c:close()
    if up then
      local r = { pid = pid, port = p, url = url, dir = dir }
      redis_running[pid] = r
      return r
    end
    os.execute("kill " .. pid .. " 2>/dev/null")
    if port then task.sleep(0.2) end -- the same port again: wait for it to be free
  end
  error("could not start redis-server (is the redis-server package installed? make deps)")
end

local function stop_redis(r, keep_dir)
  child.stop(r.pid)
  redis_running[r.pid] = nil
  if not keep_dir then os.execute("rm -rf " .. q(r.dir)) end
end

local workers = {}

---Starts `luafetch run scripts/worker.lua ARGS` in the background; { pid, out, rc }.
local function start_worker(args, env)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = q(a) end
  local w = { out = os.tmpname(), rc = os.tmpname(), pidfile = os.tmpname() }
  os.remove(w.rc)
  os.execute(("cd %s && ( %s %s run scripts/worker.lua %s >%s 2>&1 </dev/null & echo $! >%s; wait $!; echo $? >%s ) >/dev/null 2>&1 &")
    :format(q(ROOT), env or "", q(BIN), table.concat(quoted, " "), q(w.out), q(w.pidfile), q(w.rc)))
  w.pid = wait_for("the worker's pid", function() return (read(w.pidfile) or ""):match("%d+") end)
  workers[#workers + 1] = w
  return w
end

---Waits for a worker to end; its exit status and output.
local function finish(w, limit)
  local code = tonumber(wait_for("the worker to end", function() return (read(w.rc) or ""):match("%d+") end,
    limit or 60))
  local out = read(w.out) or ""
  assert_clean(out)
  return code, out
end

local function client(url)
  return assert(R.connect(url))
end

-- the records of a stream: { {id=, field=value...}, ... }
local function records(c, key)
  local list = assert(c:call{ "XRANGE", key, "-", "+" })
  local out = {}
  for i, e in ipairs(list) do
    local rec = { stream_id = e[1] }
    for j = 1, #e[2], 2 do rec[e[2][j]] = e[2][j + 1] end
    out[i] = rec
  end
  return out
end

local function pending_of(c, stream, group, consumer)
  local r, err = c:call{ "XPENDING", stream, group or "fetchers", "-", "+", 100000, consumer }
  if not r and err:find("^NOGROUP") then return {} end -- no worker has started yet
  return assert(r, err)
end

local function count(c, key)
  return assert(c:call{ "XLEN", key })
end

local function fixture_stats()
  local res = assert(http.get(FIXTURE .. "/stats"))
  return res:json()
end

---------------------------------------------------------------------------

describe("queue on Redis Streams", function()
  local redis, rc

  setup(function()
    redis = start_redis()
    rc = client(redis.url)
  end)

  teardown(function()
    for _, w in ipairs(workers) do
      if not gone(w.pid) then os.execute("kill -KILL " .. w.pid .. " 2>/dev/null") end
      os.remove(w.out)
      os.remove(w.rc)
      os.remove(w.pidfile)
    end
    if rc then rc:close() end
    for _, r in pairs(redis_running) do stop_redis(r) end
  end)

  it("three workers, one killed by SIGKILL mid-run: every URL has a result, nothing is pending, "
    .. "repeats only among the killed worker's entries", function()
    local n = N_KILL
    local qq = assert(queue.redis{ url = redis.url, stream = "kill" })
    local urls = {}
    for i = 1, n do urls[i] = FIXTURE .. "/status/200?i=" .. i end
    assert.are.equal(n, (qq:push_many(urls)))
    qq:close()
    local ws = {}
    for i = 1, 3 do
      ws[i] = start_worker({ "--redis", redis.url, "--stream", "kill", "--consumer", "w" .. i, "--drain",
                             "--lease", "2", "--concurrency", "16", "--quiet" }, "MAX_RETRIES=0")
    end
    wait_for("a quarter of the results", function() return count(rc, "kill:results") >= n // 4 end, 60)
    -- killed while it holds entries (read, not settled), whatever the build's speed
    wait_for("the second worker to hold entries", function()
      return #pending_of(rc, "kill", "fetchers", "w2") > 0
    end, 60)
    os.execute("kill -KILL " .. ws[2].pid)
    wait_for("the killed worker to be gone", function() return gone(ws[2].pid) end)
    -- what it held when it died: read, not settled
    local held = {}
    local nheld = 0
    for _, row in ipairs(pending_of(rc, "kill", "fetchers", "w2")) do
      held[row[1]] = true
      nheld = nheld + 1
    end
    for _, i in ipairs{ 1, 3 } do
      local code, out = finish(ws[i], 120)
      assert.are.equal(0, code, out)
    end
    local results = records(rc, "kill:results")
    local seen_url, seen_id, repeats = {}, {}, 0
    for _, r in ipairs(results) do
      seen_url[r.url] = true
      if seen_id[r.id] then
        repeats = repeats + 1
        assert.is_true(held[r.id] ~= nil, "a repeat of an entry the killed worker did not hold: " .. r.id)
      end
      seen_id[r.id] = true
      assert.are.equal("200", r.status)
    end
    for i = 1, n do assert.is_true(seen_url[urls[i]], "no result for " .. urls[i]) end
    local qs = assert(queue.redis{ url = redis.url, stream = "kill" })
    assert.are.same({ length = 0, pending = 0, dead = 0, results = #results }, assert(qs:stats()))
    qs:close()
    assert.is_true(nheld > 0, "the killed worker held nothing: kill it earlier")
    print(("\n  [queue kill test] %d URLs, 3 workers, SIGKILL after %d results: %d results, %d repeats, "
      .. "the killed worker held %d, %d pending at the end"):format(n, n // 4, #results, repeats, nheld,
      assert(rc:call{ "XPENDING", "kill", "fetchers" })[1]))
  end)

  it("dead-letters an entry after max_deliveries deliveries without a response, with the last error", function()
    local qq = assert(queue.redis{ url = redis.url, stream = "dl" })
    local id = assert(qq:push("http://127.0.0.1:1/refused"))
    qq:close()
    local t0 = task.now()
    local w = start_worker({ "--redis", redis.url, "--stream", "dl", "--drain", "--lease", "1",
                             "--max-deliveries", "3" }, "MAX_RETRIES=0")
    local code, out = finish(w, 30)
    assert.are.equal(0, code, out)
    assert.is_true(task.now() - t0 >= 2, "three deliveries need two leases to pass")
    local dead = records(rc, "dl:dead")
    assert.are.equal(1, #dead)
    assert.are.equal(id, dead[1].id)
    assert.are.equal("http://127.0.0.1:1/refused", dead[1].url)
    assert.are.equal("connect", dead[1].kind)
    assert.are.equal("3", dead[1].deliveries)
    assert.truthy(dead[1].error:find("refused", 1, true), dead[1].error)
    assert.are.equal(0, count(rc, "dl:results"))
    assert.are.equal(0, assert(rc:call{ "XPENDING", "dl", "fetchers" })[1])
    assert.are.equal(0, assert(rc:call{ "EXISTS", "dl:errors" }))
    assert.truthy(out:find("2 retried, 1 dead", 1, true), out)
  end)

  it("SIGTERM: stops reading, fetches and acknowledges what was read, exits 0 with nothing pending", function()
    local qq = assert(queue.redis{ url = redis.url, stream = "term" })
    local urls = {}
    for i = 1, 60 do urls[i] = FIXTURE .. "/delay/0.5?i=" .. i end
    qq:push_many(urls)
    qq:close()
    local w = start_worker{ "--redis", redis.url, "--stream", "term", "--consumer", "t1", "--concurrency", "5",
                            "--batch", "5" }
    wait_for("the worker to read", function() return #pending_of(rc, "term", "fetchers", "t1") >= 5 end, 20)
    local read_n = #pending_of(rc, "term", "fetchers", "t1")
    os.execute("kill -TERM " .. w.pid)
    local code, out = finish(w, 20)
    assert.are.equal(0, code, out)
    assert.truthy(out:find("SIGTERM: stop reading", 1, true), out)
    assert.are.same({}, pending_of(rc, "term", "fetchers", "t1"))
    local results = count(rc, "term:results")
    assert.is_true(results >= read_n, ("%d results for %d entries read"):format(results, read_n))
    assert.is_true(results < 60, "it went on reading after SIGTERM")
    local qs = assert(queue.redis{ url = redis.url, stream = "term" })
    assert.are.equal(60 - results, assert(qs:stats()).length)
    qs:close()
  end)

  it("Redis restarted mid-run (appendonly): the workers reconnect and finish", function()
    local r2 = start_redis("--appendonly yes --appendfsync always --save ''")
    local c2 = client(r2.url)
    local qq = assert(queue.redis{ url = r2.url, stream = "rs" })
    local n = 3000
    local urls = {}
    for i = 1, n do urls[i] = FIXTURE .. "/status/200?i=" .. i end
    qq:push_many(urls)
    qq:close()
    local ws = {}
    for i = 1, 2 do
      ws[i] = start_worker({ "--redis", r2.url, "--stream", "rs", "--drain", "--lease", "3",
                             "--concurrency", "8" }, "MAX_RETRIES=0")
    end
    wait_for("some results", function() return (c2:call{ "XLEN", "rs:results" } or 0) >= 300 end, 60)
    child.stop(r2.pid) -- SIGTERM: redis writes its append-only file and exits
    task.sleep(0.5)
    local r3 = start_redis("--appendonly yes --appendfsync always --save ''", r2.dir, r2.port)
    for i = 1, 2 do
      local code, out = finish(ws[i], 120)
      assert.are.equal(0, code, out)
      -- seen while reading (queue: ...) or, by a worker that was still starting, while waiting
      -- for Redis to answer (worker ...: redis: ... (retrying in ...))
      assert.truthy(out:find("queue: redis:", 1, true) or out:find(": redis: [^\n]*%(retrying in"),
        "the outage went unseen: " .. out)
    end
    c2:close()
    local c3 = client(r3.url)
    local seen = {}
    for _, r in ipairs(records(c3, "rs:results")) do seen[r.url] = true end
    for i = 1, n do assert.is_true(seen[urls[i]], "no result for " .. urls[i]) end
    assert.are.equal(0, assert(c3:call{ "XPENDING", "rs", "fetchers" })[1])
    c3:close()
    stop_redis(r3)
  end)

  it("dedupe: a URL pushed with dedupe once is skipped after; pushes without it record nothing", function()
    local qq = assert(queue.redis{ url = redis.url, stream = "dd" })
    local u = FIXTURE .. "/status/200?dedupe"
    assert.is_string((qq:push(u, { dedupe = true })))
    local ok, why = qq:push(u, { dedupe = true })
    assert.are.equal(false, ok)
    assert.are.equal("duplicate", why)
    assert.is_string((qq:push(u))) -- without dedupe: pushed again
    assert.is_string((qq:push({ url = u, method = "POST", body = "a" }, { dedupe = true })))
    assert.are.equal(false, (qq:push({ url = u, method = "POST", body = "a" }, { dedupe = true })))
    assert.is_string((qq:push({ url = u, method = "POST", body = "b" }, { dedupe = true })))
    assert.are.equal(4, count(rc, "dd"))
    assert.are.equal(3, assert(rc:call{ "SCARD", "dd:seen" }))
    qq:close()
    local file = os.tmpname()
    write(file, "# a comment\n" .. FIXTURE .. "/a\n\n" .. FIXTURE .. "/b\n" .. FIXTURE .. "/a\n"
      .. '{"url": "' .. FIXTURE .. '/c", "method": "HEAD"}\n')
    local out, err, code = child.run_script(ROOT .. "/scripts/enqueue.lua",
      { "--redis", redis.url, "--stream", "dd2", "--dedupe", file }, 30)
    os.remove(file)
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("enqueued 3 entries to dd2 (1 duplicates skipped)", 1, true), out)
    local recs = records(rc, "dd2")
    assert.are.equal(3, #recs)
    assert.are.equal(FIXTURE .. "/c", recs[3].url)
    assert.are.equal("HEAD", require("cjson").decode(recs[3].req).method)
  end)

  it("f:each(q:source(), q:sink()) in one process: result records, stats, keep_body", function()
    local qq = assert(queue.redis{ url = redis.url, stream = "inproc", lease = 5 })
    local id1 = assert(qq:push(FIXTURE .. "/status/201"))
    local id2 = assert(qq:push{ url = FIXTURE .. "/echo", method = "POST", body = "hello" })
    local f = fetcher.new{ max_concurrent = 4, max_retries = 0 }
    f:each(qq:source{ drain = true }, qq:sink{ keep_body = true })
    local recs = records(rc, "inproc:results")
    assert.are.equal(2, #recs)
    local by = {}
    for _, r in ipairs(recs) do by[r.id] = r end
    assert.are.equal("201", by[id1].status)
    assert.are.equal("true", by[id1].success)
    assert.are.equal("1", by[id1].attempts)
    assert.is_true(tonumber(by[id1].elapsed) >= 0)
    assert.are.equal("status 201", by[id1].body)
    assert.are.equal("POST", require("cjson").decode(by[id2].body).method)
    assert.are.same({ length = 0, pending = 0, dead = 0, results = 2 }, assert(qq:stats()))
    local c = qq:counters()
    assert.are.equal(2, c.results)
    qq:close()
    -- without keep_body: no body field
    local q2 = assert(queue.redis{ url = redis.url, stream = "inproc2" })
    q2:push(FIXTURE .. "/status/200")
    f:each(q2:source{ drain = true }, q2:sink())
    assert.is_nil(records(rc, "inproc2:results")[1].body)
    q2:close()
  end)

  it("a result for an entry acknowledged elsewhere meanwhile: the others are acknowledged and written, "
    .. "the repeat is written and counted, nothing stays pending", function()
    local qq = assert(queue.redis{ url = redis.url, stream = "acked", lease = 5 })
    local ids = {}
    for i = 1, 3 do ids[i] = assert(qq:push(FIXTURE .. "/status/20" .. i)) end
    local f = fetcher.new{ max_concurrent = 3, max_retries = 0 }
    local sink, first = qq:sink(), true
    f:each(qq:source{ drain = true }, function(url, r, index, item)
      if first then
        first = false -- another worker, its lease taken over, settled the second entry already
        assert.are.equal(1, rc:call{ "XACK", "acked", "fetchers", ids[2] })
      end
      sink(url, r, index, item)
    end)
    local recs = records(rc, "acked:results")
    assert.are.equal(3, #recs)
    local by = {}
    for _, r in ipairs(recs) do by[r.id] = r end
    for i = 1, 3 do assert.are.equal("20" .. i, by[ids[i]].status) end
    assert.are.same({ length = 0, pending = 0, dead = 0, results = 3 }, assert(qq:stats()))
    local c = qq:counters()
    assert.are.equal(2, c.results)
    assert.are.equal(1, c.repeats)
    qq:close()
  end)

  it("lease extension: a slow (5 s) fetch is not taken by another worker when lease is 2 s", function()
    local key = "lease" .. math.floor(task.now() * 1000)
    local qq = assert(queue.redis{ url = redis.url, stream = "ls" })
    assert(qq:push(FIXTURE .. "/flaky/" .. key .. "?fail=1&mode=delay&delay=5&status=200"))
    qq:close()
    local a = start_worker({ "--redis", redis.url, "--stream", "ls", "--consumer", "A", "--drain", "--lease", "2",
                             "--timeout", "20" }, "MAX_RETRIES=0")
    wait_for("A to hold the entry", function() return #pending_of(rc, "ls", "fetchers", "A") == 1 end, 20)
    local b = start_worker({ "--redis", redis.url, "--stream", "ls", "--consumer", "B", "--drain", "--lease", "2",
                             "--timeout", "20" }, "MAX_RETRIES=0")
    local code_a, out_a = finish(a, 30)
    local code_b, out_b = finish(b, 30)
    assert.are.equal(0, code_a, out_a)
    assert.are.equal(0, code_b, out_b)
    local res = assert(http.get(FIXTURE .. "/flaky-count/" .. key))
    assert.are.equal(1, res:json().count, "the slow entry was fetched twice:\n" .. out_a .. out_b)
    local recs = records(rc, "ls:results")
    assert.are.equal(1, #recs)
    assert.is_true(tonumber(recs[1].elapsed) >= 4.5)
    assert.truthy(out_b:find("0 taken over", 1, true), out_b)
  end)

  it("a per-host limit shared through Redis: 3 workers, limit 4, the server never sees more than 4", function()
    local function run(stream, extra)
      local qq = assert(queue.redis{ url = redis.url, stream = stream })
      local urls = {}
      for i = 1, 60 do urls[i] = FIXTURE .. "/inflight?delay=0.1&i=" .. i end
      qq:push_many(urls)
      qq:close()
      assert(http.get(FIXTURE .. "/stats/reset"))
      local ws = {}
      for i = 1, 3 do
        local args = { "--redis", redis.url, "--stream", stream, "--drain", "--concurrency", "10", "--quiet" }
        for _, a in ipairs(extra) do args[#args + 1] = a end
        ws[i] = start_worker(args, "MAX_RETRIES=0")
      end
      for i = 1, 3 do
        local code, out = finish(ws[i], 60)
        assert.are.equal(0, code, out)
      end
      assert.are.equal(60, count(rc, stream .. ":results"))
      return fixture_stats().max_inflight
    end
    local limited = run("polite", { "--host-limit", "4" })
    assert.is_true(limited <= 4, "the server saw " .. limited .. " requests at once")
    assert.is_true(limited >= 2, "the limit left no concurrency: " .. limited)
    -- the same without the shared limit goes above 4 (so the check above can fail)
    local free = run("impolite", {})
    assert.is_true(free > 4, "without the limit the server saw only " .. free)
  end)

  describe("bad input", function()
    it("a wrong password: clear errors; the worker keeps trying and stops cleanly", function()
      local locked = start_redis("--save '' --appendonly no --requirepass sekret")
      local bad = assert(queue.redis{ url = "redis://:wrong@127.0.0.1:" .. locked.port, stream = "pw" })
      local ok, err, kind = bad:check()
      assert.is_nil(ok)
      assert.are.equal("redis", kind)
      assert.truthy(err:find("WRONGPASS", 1, true), err)
      local id, perr, pkind = bad:push(FIXTURE .. "/status/200")
      assert.is_nil(id)
      assert.are.equal("redis", pkind)
      assert.truthy(perr:find("refused AUTH", 1, true), perr)
      bad:close()
      local good = assert(queue.redis{ url = "redis://:sekret@127.0.0.1:" .. locked.port, stream = "pw" })
      assert.is_string((good:push(FIXTURE .. "/status/200")))
      good:close()
      local w = start_worker{ "--redis", "redis://:wrong@127.0.0.1:" .. locked.port, "--stream", "pw" }
      wait_for("the error", function() return (read(w.out) or ""):find("WRONGPASS", 1, true) end, 10)
      task.sleep(1)
      assert.is_false(gone(w.pid))
      assert.truthy(read(w.out):find("retrying", 1, true))
      os.execute("kill -TERM " .. w.pid)
      local code, out = finish(w, 10)
      assert.are.equal(0, code, out)
      stop_redis(locked)
    end)

    it("a key of another type: clear errors; the worker waits and goes on once the key is a stream", function()
      assert(rc:call{ "SET", "typed", "oops" })
      local qq = assert(queue.redis{ url = redis.url, stream = "typed" })
      local id, err, kind = qq:push(FIXTURE .. "/status/200")
      assert.is_nil(id)
      assert.are.equal("redis", kind)
      assert.truthy(err:find("WRONGTYPE", 1, true), err)
      local ok, cerr = qq:check()
      assert.is_nil(ok)
      assert.truthy(cerr:find("key typed holds a string, not a stream", 1, true), cerr)
      local w = start_worker{ "--redis", redis.url, "--stream", "typed" }
      wait_for("the error", function()
        return (read(w.out) or ""):find("key typed holds a string, not a stream", 1, true)
      end, 10)
      assert.is_false(gone(w.pid))
      assert(rc:call{ "DEL", "typed" })
      assert.is_string((qq:push(FIXTURE .. "/status/200")))
      wait_for("the result", function() return count(rc, "typed:results") == 1 end, 20)
      os.execute("kill -TERM " .. w.pid)
      local code, out = finish(w, 10)
      assert.are.equal(0, code, out)
      qq:close()
    end)

    it("malformed entries go to the dead letters (kind invalid) and the worker goes on", function()
      assert(rc:call{ "XADD", "mal", "*", "foo", "bar" })
      assert(rc:call{ "XADD", "mal", "*", "url", FIXTURE .. "/x", "req", "{not json" })
      local qq = assert(queue.redis{ url = redis.url, stream = "mal" })
      assert(qq:push("not a url"))
      local good = assert(qq:push(FIXTURE .. "/status/200?good"))
      local w = start_worker({ "--redis", redis.url, "--stream", "mal", "--drain" }, "MAX_RETRIES=0")
      local code, out = finish(w, 30)
      assert.are.equal(0, code, out)
      local dead = records(rc, "mal:dead")
      assert.are.equal(3, #dead)
      local errors = {}
      for _, d in ipairs(dead) do
        assert.are.equal("invalid", d.kind)
        errors[#errors + 1] = d.error
      end
      table.sort(errors)
      assert.truthy(errors[1]:find("malformed entry: no url field", 1, true), errors[1])
      assert.truthy(errors[2]:find("malformed entry: req is not JSON", 1, true), errors[2])
      local results = records(rc, "mal:results")
      assert.are.equal(1, #results)
      assert.are.equal(good, results[1].id)
      -- bad pushes and options are refused before anything is sent
      local _, e1, k1 = qq:push(42)
      assert.are.equal("invalid", k1)
      assert.truthy(e1:find("a URL or a request table", 1, true), e1)
      local _, e2, k2 = qq:push{ url = FIXTURE, bogus = 1 }
      assert.are.equal("invalid", k2)
      assert.truthy(e2:find("unknown request field 'bogus'", 1, true), e2)
      qq:close()
      local _, e3, k3 = queue.redis{ url = "rediss://127.0.0.1:1", stream = "x" }
      assert.are.equal("invalid", k3)
      assert.truthy(e3:find("stunnel", 1, true), e3)
      local _, e4, k4 = queue.redis{ url = redis.url }
      assert.are.equal("invalid", k4)
      assert.truthy(e4:find("stream", 1, true), e4)
    end)
  end)

  it("the scripts answer --help and refuse a missing --stream", function()
    for _, s in ipairs{ "worker", "enqueue" } do
      local out, err, code = child.run_script(ROOT .. "/scripts/" .. s .. ".lua", { "--help" }, 10)
      assert.are.equal(0, code, err)
      assert.truthy(out:find("--stream", 1, true), out)
      local _, err2, code2 = child.run_script(ROOT .. "/scripts/" .. s .. ".lua", {}, 10)
      assert.are.equal(2, code2)
      assert.truthy(err2:find("--stream is required", 1, true), err2)
    end
  end)

  it("worker --metrics serves queue length, pending, dead, results and its throughput", function()
    local qq = assert(queue.redis{ url = redis.url, stream = "met" })
    qq:push(FIXTURE .. "/status/200")
    local port = free_port()
    local w = start_worker{ "--redis", redis.url, "--stream", "met", "--metrics", tostring(port) }
    wait_for("the result", function() return count(rc, "met:results") == 1 end, 20)
    local res = assert(http.get("http://127.0.0.1:" .. port .. "/metrics"))
    assert.are.equal(200, res.status)
    for _, name in ipairs{ 'luafetch_queue_length{stream="met"} 0', 'luafetch_queue_pending{stream="met"} 0',
                           'luafetch_queue_dead{stream="met"} 0', 'luafetch_queue_results{stream="met"} 1',
                           "luafetch_worker_results_total{", "luafetch_worker_throughput{" } do
      assert.truthy(res.body:find(name, 1, true), name .. "\n" .. res.body)
    end
    os.execute("kill -TERM " .. w.pid)
    local code, out = finish(w, 10)
    assert.are.equal(0, code, out)
    qq:close()
  end)
end)
