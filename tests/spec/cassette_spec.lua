-- cassette_spec.lua: record and replay as HAR 1.2 (lua/cassette.lua, DESIGN.md "Record, replay and
-- virtual time — contract"): a recording against a real local server (http.serve on a port the
-- OS picks) holds one entry per redirect hop with the contract's fields, binary bodies as base64,
-- secrets redacted, long bodies truncated; replay answers with the server closed and no socket
-- opened, query parameters in any order, bodies told apart, repeated requests in recorded order
-- then the last, misses of kind "replay" naming the closest entry (or sent to the network), the
-- retry plugin and sessions running as live; HARs in Chromium's and Firefox's export formats; the command line (--record,
-- --replay, a truncated HAR → exit 2, a recording killed half-way is still valid JSON); and the
-- virtual clock: a 24 h schedule.every("30s") monitor replayed in virtual time.

local cjson = require "cjson"
local http = require "http"
local task = require "task"
local cassette = require "cassette"
local schedule = require "schedule"

local child = require "tests.spec.support.child"
local q, read, write = child.q, child.read, child.write
local BIN, ROOT = child.BIN, child.ROOT
-- the 2 s bound is for the release build; a sanitizer build is several times slower
local BUDGET = BIN:find("/asan/", 1, true) and 10 or 2

-- A real server whose answers change with every request (a replay must give the recorded ones).
local function start_server()
  local s = { hits = 0, states = {} }
  s.srv = http.serve{ port = 0, handler = function(req)
    s.hits = s.hits + 1
    local path = req.path
    if path == "/hop" then
      return { status = 302, headers = { Location = "/final?b=2&a=1" }, body = "" }
    elseif path == "/bin" then
      return { status = 200, headers = { ["Content-Type"] = "application/octet-stream" }, body = "\0\255\254binary\0" }
    elseif path == "/big" then
      return { status = 200, body = ("x"):rep(5000) }
    elseif path == "/huge" then
      return { status = 200, headers = { ["Content-Type"] = "application/octet-stream" },
               body = ("\0\255\2\3"):rep(1024 * 1024) } -- 4 MiB, not UTF-8
    elseif path == "/cookie" then
      return { status = 200, headers = { ["Set-Cookie"] = "sid=s3cr3t; Path=/" }, body = "set" }
    elseif path == "/echo" then
      return { status = 200, body = "got " .. (req.body or "") }
    elseif path == "/flaky" then
      return s.hits % 2 == 1 and { status = 503, body = "busy" } or { status = 200, body = "fine" }
    elseif path == "/state" then
      local st = table.remove(s.states, 1) or 200
      return { status = st, body = "state " .. st }
    end
    return { status = 200, headers = { ["Content-Type"] = "text/plain" }, body = "hit " .. s.hits .. " " .. path }
  end }
  s.url = "http://127.0.0.1:" .. s.srv.port
  return s
end

local function tmp(text)
  local p = os.tmpname()
  if text then write(p, text) end
  return p
end

local function load(path)
  return cjson.decode((assert(read(path))))
end

describe("cassette", function()
  describe("recording", function()
    local s, har, path
    setup(function()
      s = start_server()
      path = tmp()
      cassette.record(path, function()
        assert(http.get(s.url .. "/hop", { headers = { Authorization = "Bearer tok", Cookie = "k=cookieval" } }))
        assert(http.get(s.url .. "/bin"))
        assert(http.get(s.url .. "/cookie"))
        assert(http.post(s.url .. "/echo", "one"))
      end, { body_max = 1000 })
      cassette.record(path .. ".big", function() assert(http.get(s.url .. "/big")) end, { body_max = 1000 })
      har = load(path)
    end)
    teardown(function()
      s.srv:close()
      os.remove(path)
      os.remove(path .. ".big")
    end)

    it("writes HAR 1.2 with one entry per redirect hop and the contract's fields", function()
      assert.equal("1.2", har.log.version)
      assert.equal("luafetch", har.log.creator.name)
      local e = har.log.entries
      assert.equal(5, #e) -- /hop, /final, /bin, /cookie, /echo
      assert.equal(302, e[1].response.status)
      assert.equal("/final?b=2&a=1", e[1].response.redirectURL)
      assert.equal(s.url .. "/final?b=2&a=1", e[2].request.url)
      assert.same({ { name = "b", value = "2" }, { name = "a", value = "1" } }, e[2].request.queryString)
      for _, entry in ipairs(e) do
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", entry.startedDateTime)
        assert.is_number(entry.time)
        for _, k in ipairs({ "blocked", "dns", "connect", "ssl", "send", "wait", "receive" }) do
          assert.is_number(entry.timings[k])
        end
        assert.equal("HTTP/1.1", entry.request.httpVersion)
        assert.equal("HTTP/1.1", entry.response.httpVersion)
        assert.equal("table", type(entry.request.headers))
        assert.equal("table", type(entry.request.cookies))
        assert.equal("table", type(entry.response.cookies))
        assert.equal(-1, entry.response.headersSize)
        assert.is_number(entry.response.content.size)
      end
      assert.equal("OK", e[2].response.statusText)
      assert.equal("text/plain", e[2].response.content.mimeType)
      assert.matches("^hit %d+ /final$", e[2].response.content.text)
      assert.equal("one", e[5].request.postData.text)
      assert.equal(3, e[5].request.bodySize)
      -- empty lists are JSON arrays, as HAR readers expect
      assert.matches('"queryString":%[%]', read(path))
    end)

    it("dates each entry to the millisecond (startedDateTime is the real time of day)", function()
      local T = require "_task"
      local p = tmp()
      local before = T.wall()
      cassette.record(p, function() assert(http.get(s.url .. "/x")) end)
      local after = T.wall()
      local y, mo, d, h, mi, sec, ms = load(p).log.entries[1].startedDateTime
        :match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z$")
      local utc_offset = os.time() - os.time(os.date("!*t"))
      local started = os.time{ year = y, month = mo, day = d, hour = h, min = mi, sec = sec, isdst = false }
        + utc_offset + tonumber(ms) / 1000
      assert.is_true(started >= before - 0.002 and started <= after + 0.002,
        ("%.3f not within %.3f .. %.3f"):format(started, before, after))
      os.remove(p)
    end)

    it("writes a binary body as base64", function()
      local c = har.log.entries[3].response.content
      assert.equal("base64", c.encoding)
      assert.equal("\0\255\254binary\0", http.unbase64(c.text))
      assert.equal(10, c.size)
    end)

    it("redacts credentials and cookies", function()
      local text = read(path)
      assert.not_matches("Bearer tok", text, 1, true)
      assert.not_matches("s3cr3t", text, 1, true)
      assert.not_matches("cookieval", text, 1, true)
      local e = har.log.entries
      local function header(list, name)
        for _, h in ipairs(list) do if h.name:lower() == name then return h.value end end
      end
      assert.equal("[redacted]", header(e[1].request.headers, "authorization"))
      assert.equal("[redacted]", header(e[1].request.headers, "cookie"))
      assert.same({ { name = "k", value = "[redacted]" } }, e[1].request.cookies)
      assert.equal("[redacted]", header(e[4].response.headers, "set-cookie"))
      assert.same({ { name = "sid", value = "[redacted]" } }, e[4].response.cookies)
    end)

    it("keeps secrets when asked", function()
      local p = tmp()
      cassette.record(p, function() assert(http.get(s.url .. "/cookie")) end, { secrets = true })
      local text = read(p)
      os.remove(p)
      assert.matches("sid=s3cr3t", text, 1, true)
    end)

    it("truncates a body over body_max, keeping its size", function()
      local c = load(path .. ".big").log.entries[1].response.content
      assert.equal(5000, c.size)
      assert.equal(1000, #c.text)
      assert.is_true(c._truncated)
    end)

    it("leaves a valid file when the function fails", function()
      local p = tmp()
      local ok, err = pcall(cassette.record, p, function()
        assert(http.get(s.url .. "/x"))
        error("boom")
      end)
      assert.is_false(ok)
      assert.matches("boom", err)
      assert.equal(1, #load(p).log.entries)
      os.remove(p)
    end)
  end)

  describe("streamed bodies", function()
    it("are recorded when they end (output, sink, stream), cut at body_max, and replay", function()
      local s = start_server()
      local path, file = tmp(), tmp()
      local sunk, streamed, first = {}, {}, nil
      cassette.record(path, function()
        assert(http.get(s.url .. "/big", { output = file }))
        assert(http.get(s.url .. "/bin", { sink = function(c) sunk[#sunk + 1] = c end }))
        local r = assert(http.get(s.url .. "/big", { stream = true }))
        for c in r:chunks() do streamed[#streamed + 1] = c end
        local h = assert(http.get(s.url .. "/huge", { stream = true })) -- closed early
        first = assert(h:read())
        h:close()
      end, { body_max = 3000 })
      s.srv:close()
      local e = load(path).log.entries
      assert.equal(4, #e)
      local out = e[1].response.content
      assert.equal(5000, out.size)
      assert.equal(5000, e[1].response.bodySize)
      assert.equal(("x"):rep(3000), out.text)
      assert.is_true(out._truncated)
      assert.equal("\0\255\254binary\0", http.unbase64(e[2].response.content.text))
      assert.equal(10, e[2].response.content.size)
      assert.is_nil(e[2].response.content._truncated)
      assert.equal(5000, e[3].response.content.size)
      assert.equal(5000, #table.concat(streamed))
      -- the body closed early: the bytes seen, and a mark saying so
      local h = e[4].response
      assert.equal(#first, h.content.size)
      assert.truthy(#first < 4 * 1024 * 1024)
      assert.matches("closed", h._error)
      assert.equal(first:sub(1, 3000), http.unbase64(h.content.text))
      -- replay: the recorded bytes come back through output and stream alike
      local replayed = tmp()
      cassette.use(path, function()
        assert(http.get(s.url .. "/big", { output = replayed }))
        local b = assert(http.get(s.url .. "/bin", { stream = true }))
        assert.equal("\0\255\254binary\0", table.concat((function()
          local t = {}
          for c in b:chunks() do t[#t + 1] = c end
          return t
        end)()))
      end)
      -- a streamed body never read to its end is written when the recording ends; a streamed
      -- redirect hop (its body closed unread by http.lua) carries no error
      local p3 = tmp()
      local s3 = start_server()
      local kept
      cassette.record(p3, function()
        kept = assert(http.get(s3.url .. "/big", { stream = true }))
        assert(http.get(s3.url .. "/hop", { stream = true })):close()
      end)
      s3.srv:close()
      local e3 = load(p3).log.entries
      assert.equal(3, #e3) -- /hop, /final, then /big at the end of the recording
      assert.equal(302, e3[1].response.status)
      assert.is_nil(e3[1].response._error)
      assert.equal(s3.url .. "/big", e3[3].request.url)
      assert.equal("not read to its end before the recording ended", e3[3].response._error)
      kept:close()
      assert.equal(3, #load(p3).log.entries) -- nothing more once the recording ended
      os.remove(p3)
      -- a body from a function is not recorded: its request matches on method and URL
      local p2 = tmp()
      local s2 = start_server()
      local n = 0
      local function body() n = n + 1; return n == 1 and "piece" or nil end
      cassette.record(p2, function() assert(http.post(s2.url .. "/echo", body)) end)
      s2.srv:close()
      cassette.use(p2, function()
        local r = assert(http.post(s2.url .. "/echo", function() error("not called in replay") end))
        assert.equal("got piece", r.body)
      end)
      os.remove(p2)
      assert.equal(("x"):rep(3000), read(replayed))
      assert.equal(("x"):rep(5000), read(file))
      for _, p in ipairs({ path, file, replayed }) do os.remove(p) end
    end)
  end)

  describe("replay", function()
    local s, path, live = nil, nil, {}
    setup(function()
      s = start_server()
      path = tmp()
      cassette.record(path, function()
        live.hop = assert(http.get(s.url .. "/hop"))
        live.bin = assert(http.get(s.url .. "/bin"))
        live.r1 = assert(http.get(s.url .. "/again"))
        live.r2 = assert(http.get(s.url .. "/again"))
        live.one = assert(http.post(s.url .. "/echo", "one"))
        live.two = assert(http.post(s.url .. "/echo", "two"))
        live.sess = http.session()
        assert(live.sess:get(s.url .. "/cookie"))
        live.flaky = { assert(http.get(s.url .. "/flaky")), assert(http.get(s.url .. "/flaky")) }
      end, { secrets = true })
      s.srv:close() -- replay must not need it
    end)
    teardown(function() os.remove(path) end)

    it("answers from the HAR with the server gone and no socket opened", function()
      local before = http.stats().connections_opened
      cassette.use(path, function()
        local r = assert(http.get(s.url .. "/hop"))
        assert.equal(200, r.status)
        assert.equal(live.hop.body, r.body)
        assert.equal(1, r.redirects)
        assert.equal(s.url .. "/final?b=2&a=1", r.url)
        assert.equal("text/plain", r.headers["content-type"])
        assert.equal("1.1", r.version)
        assert.is_number(r.timings.total)
        local b = assert(http.get(s.url .. "/bin"))
        assert.equal("\0\255\254binary\0", b.body)
      end)
      assert.equal(before, http.stats().connections_opened)
    end)

    it("matches query parameters in any order", function()
      cassette.use(path, function()
        assert.equal(live.hop.body, assert(http.get(s.url .. "/final?a=1&b=2")).body)
      end)
    end)

    it("takes repeated requests in recorded order, then the last again", function()
      cassette.use(path, function()
        assert.equal(live.r1.body, assert(http.get(s.url .. "/again")).body)
        assert.equal(live.r2.body, assert(http.get(s.url .. "/again")).body)
        assert.equal(live.r2.body, assert(http.get(s.url .. "/again")).body)
        assert.not_equal(live.r1.body, live.r2.body)
      end)
    end)

    it("tells requests apart by their body", function()
      cassette.use(path, function()
        assert.equal("got two", assert(http.post(s.url .. "/echo", "two")).body)
        assert.equal("got one", assert(http.post(s.url .. "/echo", "one")).body)
      end)
    end)

    it("fails a miss with kind replay, naming the request and the closest entry", function()
      cassette.use(path, function()
        local res, err, kind = http.get(s.url .. "/agian")
        assert.is_nil(res)
        assert.equal("replay", kind)
        assert.matches("GET " .. s.url .. "/agian", err, 1, true)
        assert.matches("closest recorded: GET " .. s.url .. "/again", err, 1, true)
        local _, err2, kind2 = http.post(s.url .. "/echo", "three")
        assert.equal("replay", kind2)
        assert.matches("POST " .. s.url .. "/echo", err2, 1, true)
      end)
    end)

    it("sends a miss to the network with miss = network", function()
      local s2 = start_server()
      cassette.use(path, function()
        local r = assert(http.get(s2.url .. "/live"))
        assert.equal("hit 1 /live", r.body)
      end, { miss = "network" })
      s2.srv:close()
      assert.equal(1, s2.hits)
    end)

    it("runs sessions (cookies from a replayed Set-Cookie) and the retry plugin as live", function()
      cassette.use(path, function()
        local sess = http.session()
        assert(sess:get(s.url .. "/cookie"))
        assert.equal("sid=s3cr3t", sess.cookies:get(s.url .. "/"))
        local policy = require("plugins.retry").new({ backoff_factor = 1, jitter = 0 })
        local t0 = task.now()
        local res, _, _, attempts = policy:run(function() return http.get(s.url .. "/flaky") end)
        assert.equal(200, res.status)
        assert.equal(2, attempts)
        assert.near(1, task.now() - t0, 0.1) -- the backoff on the virtual clock
      end)
    end)
  end)

  it("records and replays the fixture server: a gzip body decoded, a redirect chain hop by hop", function()
    local base = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
    local p = tmp()
    local live = {}
    cassette.record(p, function()
      live.gz = assert(http.get(base .. "/gzip/3000"))
      live.chain = assert(http.get(base .. "/redirect/3"))
    end)
    local e = load(p).log.entries
    assert.equal(5, #e) -- the gzip body, then /redirect/3, /2, /1, /0
    assert.equal(#live.gz.body, e[1].response.content.size)
    assert.equal("gzip", live.gz.headers["content-encoding"])
    local before = http.stats().connections_opened
    cassette.use(p, function()
      local gz = assert(http.get(base .. "/gzip/3000"))
      assert.equal(live.gz.body, gz.body)
      local chain = assert(http.get(base .. "/redirect/3"))
      assert.equal(3, chain.redirects)
      assert.equal(live.chain.url, chain.url)
      assert.equal("done", chain.body)
    end)
    assert.equal(before, http.stats().connections_opened)
    os.remove(p)
  end)

  it("replays a HAR saved by a browser's developer tools", function()
    local p = ROOT .. "/tests/fixtures/chromium_devtools.har"
    cassette.use(p, function()
      local r = assert(http.get("https://shop.example.test/"))
      assert.equal(200, r.status)
      assert.equal("2", r.version)
      assert.matches("<h1>Café</h1>", r.body, 1, true)
      assert.is_nil(r.headers[":status"])
      local j = assert(http.get("https://shop.example.test/api/items?sort=price&page=2")):json()
      assert.equal(7, j.items[1].id)
      assert.equal("\137PNG\r\n\26\n", assert(http.get("https://shop.example.test/logo.png")).body)
      local _, _, kind = http.get("https://ads.example.test/track.js") -- blocked in the browser
      assert.equal("replay", kind)
    end)
  end)

  it("replays a Firefox HAR: a login POST matched on its body, a 303 hop, the session's cookie", function()
    cassette.use(ROOT .. "/tests/fixtures/firefox_devtools.har", function()
      local sess = http.session()
      local r = assert(sess:post("https://status.example.test/api/login", '{"user":"ops","pin":1234}',
        { headers = { ["Content-Type"] = "application/json" } }))
      assert.equal(200, r.status)
      assert.equal(1, r.redirects)
      assert.equal("https://status.example.test/dashboard", r.url)
      assert.equal("2", r.version)
      assert.matches("12 of 12 up", r.body, 1, true)
      assert.equal("session=Zm9v", sess.cookies:get("https://status.example.test/"))
      local _, err, kind = http.post("https://status.example.test/api/login", '{"user":"ops","pin":0}')
      assert.equal("replay", kind)
      assert.matches("closest recorded: POST https://status.example.test/api/login", err, 1, true)
    end)
  end)

  it("refuses a truncated or invalid HAR with a clear error", function()
    local p = tmp('{"log":{"version":"1.2","entries":[{"request":')
    local ok, err = pcall(cassette.use, p, function() end)
    assert.is_false(ok)
    assert.equal(2, err.exit_code)
    assert.matches("not valid JSON", err.message)
    write(p, '{"hello":1}')
    ok, err = pcall(cassette.use, p, function() end)
    assert.matches("not a HAR", err.message)
    os.remove(p)
  end)

  describe("virtual clock", function()
    it("runs a 24 h schedule.every('30s') monitor in under 2 s, with the recorded states", function()
      local s = start_server()
      local path = tmp()
      -- the recorded states: up, down three times, up again
      s.states = { 200, 503, 503, 503, 200 }
      cassette.record(path, function()
        for _ = 1, 5 do assert(http.get(s.url .. "/state")) end
      end)
      s.srv:close()
      local runs, alerts, last = 0, {}, nil
      local real0 = os.clock()
      local wall = {}
      cassette.use(path, function()
        local t0, w0 = task.now(), os.time()
        local job
        job = schedule.every("30s", function()
          runs = runs + 1
          local r = assert(http.get(s.url .. "/state"))
          local state = r.status < 400 and "UP" or "DOWN"
          if state ~= last then
            alerts[#alerts + 1] = state .. " at +" .. math.floor(task.now() - t0)
            last = state
          end
          if runs == 2880 then job:cancel() end
        end)
        while not job.cancelled do task.sleep(60) end
        wall.elapsed, wall.os = task.now() - t0, os.time() - w0
      end)
      local real = os.clock() - real0
      os.remove(path)
      assert.equal(2880, runs)
      assert.same({ "UP at +30", "DOWN at +60", "UP at +150" }, alerts)
      assert.near(86400, wall.elapsed, 61)
      assert.near(86400, wall.os, 62)
      assert.is_true(real < BUDGET, "took " .. real .. " s")
    end)

    it("is off with clock = real: a replay answers at once and sleeps are real", function()
      local s = start_server()
      local path = tmp()
      cassette.record(path, function() assert(http.get(s.url .. "/x")) end)
      s.srv:close()
      cassette.use(path, function()
        local t0 = task.now()
        task.sleep(0.05)
        assert.is_true(task.now() - t0 >= 0.045)
        assert.equal(200, assert(http.get(s.url .. "/x")).status)
      end, { clock = "real" })
      os.remove(path)
    end)
  end)

  describe("command line", function()
    local s, script, har
    setup(function()
      s = start_server()
      script = tmp(([[
        local http = require "http"
        local r = assert(http.get(%q))
        local r2 = assert(http.get(%q))
        print(r.status, r.body, r2.body, r.redirects)
        return r.status == 200 and 3 or 4
      ]]):format(s.url .. "/hop", s.url .. "/bin2"))
      har = tmp()
    end)
    teardown(function()
      s.srv:close()
      os.remove(script)
      os.remove(har)
    end)

    -- runs luafetch in the background (the server lives in this process); returns out, code
    local function run(args)
      local out, rc = tmp(), tmp()
      os.remove(rc)
      os.execute(("( %s run %s >%s 2>&1; echo $? >%s ) &"):format(q(BIN), args, q(out), q(rc)))
      local code = tonumber(child.wait_for("luafetch to end", function()
        task.sleep(0.01)
        return (read(rc) or ""):match("%d+")
      end, 20))
      local text = read(out)
      os.remove(out)
      os.remove(rc)
      child.assert_clean(text)
      return text, code
    end

    it("records with --record and replays with --replay: same output and exit status, no server", function()
      local out1, code1 = run("--record " .. q(har) .. " " .. q(script))
      assert.equal(3, code1)
      assert.equal(3, #load(har).log.entries)
      local hits = s.hits
      local out2, code2 = run("--replay " .. q(har) .. " --clock virtual " .. q(script))
      assert.equal(out1, out2)
      assert.equal(3, code2)
      assert.equal(hits, s.hits)
    end)

    it("exits 2 on a truncated HAR, naming the file", function()
      local bad = tmp('{"log":{"entries":[')
      local out, code = run("--replay " .. q(bad) .. " " .. q(script))
      os.remove(bad)
      assert.equal(2, code)
      assert.matches("not valid JSON", out, 1, true)
      assert.matches(bad, out, 1, true)
    end)

    it("exits 2 on a bad --replay-miss", function()
      local _, code = run("--replay " .. q(har) .. " --replay-miss maybe " .. q(script))
      assert.equal(2, code)
    end)

    it("leaves a valid HAR when the script is killed half-way", function()
      local slow = tmp(([[
        local http = require "http"
        local task = require "task"
        for i = 1, 1000 do assert(http.get(%q .. i)); task.sleep(0.01) end
      ]]):format(s.url .. "/n"))
      local out, pidfile = tmp(), tmp()
      os.execute(("( %s run --record %s %s >%s 2>&1 & echo $! >%s )"):format(q(BIN), q(har), q(slow), q(out), q(pidfile)))
      local pid = child.wait_for("pid", function() return (read(pidfile) or ""):match("%d+") end)
      child.wait_for("some entries", function()
        task.sleep(0.02)
        local ok, h = pcall(load, har)
        return ok and #h.log.entries >= 5
      end, 20)
      os.execute("kill -9 " .. pid)
      child.wait_for("the end", function() task.sleep(0.01); return child.gone(pid) end)
      local h = load(har)
      assert.is_true(#h.log.entries >= 5)
      os.remove(slow); os.remove(out); os.remove(pidfile)
    end)
  end)
  describe("scripts/monitor.lua replayed", function()
    local mock, file, har
    setup(function()
      mock = child.start_mock()
      file = tmp(("return { base_url = %q, targets = { %s } }"):format(mock.url, [[
        { name = "health", url = "/health", body_match = '"status":"ok"', max_latency = 2 },
        { name = "status", url = "/status/503", expect_status = 200 },
        { name = "latency", url = "/slow?delay=0.3", max_latency = 0.1 },
      ]]))
      har = tmp()
    end)
    teardown(function()
      if mock then child.stop_mock(mock) end
      os.remove(file)
      os.remove(har)
    end)

    -- luafetch run OPTIONS monitor.lua ARGS from the repository root: stdout, code, seconds
    local function monitor(opts, args)
      local t0 = task.now()
      local f = assert(io.popen(("cd %s && timeout 60 %s run %s scripts/monitor.lua %s 2>&1 </dev/null")
        :format(q(ROOT), q(BIN), opts, args)))
      local out = f:read("a")
      local _, _, code = f:close()
      child.assert_clean(out)
      return out, code, task.now() - t0
    end

    local function states(out)
      local list = {}
      for state, name in out:gmatch("\n(%u+)%s+(%S+)") do list[#list + 1] = state .. " " .. name end
      return table.concat(list, ",")
    end

    it("replays a recorded --once run with the mock stopped: the same states, alerts and exit status", function()
      local live, code = monitor("--record " .. q(har), q(file) .. " --once")
      assert.equal(1, code, live)
      child.stop_mock(mock)
      mock = nil
      local out, code2 = monitor("--replay " .. q(har), q(file) .. " --once")
      assert.equal(1, code2, out)
      assert.equal(states(live), states(out))
      assert.matches("DOWN  latency .-took %d+ ms, more than 100 ms", out)
      assert.matches("ALERT status is DOWN", out, 1, true)
      assert.matches("round 1: 1 up, 2 down", out, 1, true)
    end)

    it("runs 24 h of 30 s rounds on the virtual clock in under 2 s", function()
      local out, code, took = monitor("--replay " .. q(har) .. " --clock virtual",
        q(file) .. " --interval 30s --for 24h")
      assert.equal(0, code, out:sub(-2000))
      local rounds = 0
      for _ in out:gmatch("round %d+:") do rounds = rounds + 1 end
      assert.is_true(rounds >= 2880 and rounds <= 2881, "rounds: " .. rounds)
      local _, alerts = out:gsub("ALERT", "")
      assert.equal(2, alerts) -- the first round's DOWN targets, then no change all day
      assert.is_true(took < BUDGET, ("took %.2f s"):format(took))
    end)
  end)
end)
