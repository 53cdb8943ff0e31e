-- cassette_browser_spec.lua: a HAR written by a real browser's developer tools replays through
-- lua/cassette.lua (DESIGN.md "Record, replay and virtual time — contract"). The fixture
-- tests/fixtures/firefox_saved.har was exported by Firefox ESR's own network-monitor HAR exporter
-- (tests/fixtures/make_browser_har.py; tests/fixtures/README.md says when and how) from a page
-- on a local server whose bodies are fixed, so they are compared here byte for byte: a 302 page
-- navigation, UTF-8 HTML with two Set-Cookie headers, gzip CSS (stored decoded), a binary PNG
-- (base64), JSON with a query string, a POST matched on its body, a 301 fetch, a 404; a request
-- the browser never made fails with kind "replay"; no socket is opened; and `luafetch run
-- --replay` does the same from the command line. The browser is not needed to run this.

local cjson = require "cjson"
local http = require "http"
local task = require "task"
local cassette = require "cassette"

local child = require "tests.spec.support.child"
local q, read, write = child.q, child.read, child.write
local BIN, ROOT = child.BIN, child.ROOT

local HAR = ROOT .. "/tests/fixtures/firefox_saved.har"

-- What tests/fixtures/make_browser_har.py serves (the same on every run).
local PNG_SIZE = 268
local PNG_HEAD = "\137PNG\r\n\26\n\0\0\0\13IHDR\0\0\0\8\0\0\0\8\8\2" -- signature, IHDR 8x8 RGB
local PNG_TAIL = "\0\0\0\0IEND\174B`\130"
local CSS_SIZE = 1683 -- decoded; it went over the wire gzip-encoded (369 bytes)
local INDEX_SIZE = 846

local har = cjson.decode((assert(read(HAR))))
-- the server's port is whatever the OS gave it on the day: take the origin from the file
local BASE = assert(har.log.entries[1].request.url:match("^(http://127%.0%.0%.1:%d+)/start$"))

describe("a HAR saved by Firefox's developer tools", function()
  it("is the browser's own export (not written by luafetch)", function()
    assert.equal("Firefox", har.log.creator.name)
    assert.equal("Firefox", har.log.browser.name)
    assert.equal(9, #har.log.entries)
  end)

  it("replays the page: the 302 navigation, the UTF-8 HTML, its headers", function()
    local before = http.stats().connections_opened
    cassette.use(HAR, function()
      local r = assert(http.get(BASE .. "/start"))
      assert.equal(200, r.status)
      assert.equal("OK", r.reason)
      assert.equal("1.1", r.version)
      assert.equal(1, r.redirects)
      assert.equal(BASE .. "/index.html", r.url)
      assert.equal(INDEX_SIZE, #r.body)
      assert.matches("<h1>Café status</h1>", r.body, 1, true)
      assert.equal("text/html; charset=utf-8", r.headers["content-type"])
      assert.equal("no-store", r.headers["cache-control"])
      -- the 302 alone, without following it
      local hop = assert(http.get(BASE .. "/start", { max_redirects = 0 }))
      assert.equal(302, hop.status)
      assert.equal("/index.html", hop.headers.location)
      assert.equal("", hop.body)
    end)
    assert.equal(before, http.stats().connections_opened)
  end)

  it("replays the gzip CSS as the browser stored it (decoded), and the binary PNG byte for byte", function()
    cassette.use(HAR, function()
      local css = assert(http.get(BASE .. "/style.css"))
      assert.equal(200, css.status)
      assert.equal("gzip", css.headers["content-encoding"])
      assert.equal(CSS_SIZE, #css.body)
      local first, last = "/* luafetch fixture */\n.row-0 { color: #000000; margin: 0px; }\n",
        ".row-39 { color: #272727; margin: 39px; }\n"
      assert.equal(first, css.body:sub(1, #first))
      assert.equal(last, css.body:sub(-#last))

      local png = assert(http.get(BASE .. "/logo.png"))
      assert.equal(200, png.status)
      assert.equal("image/png", png.headers["content-type"])
      assert.equal(PNG_SIZE, #png.body)
      assert.equal(PNG_HEAD, png.body:sub(1, #PNG_HEAD))
      assert.equal(PNG_TAIL, png.body:sub(-#PNG_TAIL))
    end)
  end)

  it("replays fetch()es: JSON with a query string (in any order), a POST on its body, a 301 hop, a 404", function()
    cassette.use(HAR, function()
      local j = assert(http.get(BASE .. "/api/items?sort=price&page=2")):json()
      assert.equal(2, j.page)
      assert.equal(7, j.items[1].id)
      assert.equal("Crème brûlée", j.items[2].name)
      assert.equal(4.25, j.items[2].price)
      assert.equal(7, assert(http.get(BASE .. "/api/items?page=2&sort=price")):json().items[1].id)

      local p = assert(http.post(BASE .. "/api/echo", '{"user":"ops","pin":1234}',
        { headers = { ["Content-Type"] = "application/json" } }))
      assert.equal(201, p.status)
      assert.equal("Created", p.reason)
      assert.same({ got = { user = "ops", pin = 1234 } }, p:json())

      local rep = assert(http.get(BASE .. "/old-report"))
      assert.equal(200, rep.status)
      assert.equal(1, rep.redirects)
      assert.equal(BASE .. "/report.txt", rep.url)
      assert.equal("report: 12 of 12 up\n", rep.body)

      local ico = assert(http.get(BASE .. "/favicon.ico"))
      assert.equal(404, ico.status)
      assert.equal("not found", ico.body)
    end)
  end)

  it("fails a request the browser never made with kind 'replay', naming the closest entry", function()
    local before = http.stats().connections_opened
    cassette.use(HAR, function()
      local r, err, kind = http.get(BASE .. "/api/items?sort=name&page=2")
      assert.is_nil(r)
      assert.equal("replay", kind)
      assert.matches("closest recorded: GET " .. BASE .. "/api/items?sort=price&page=2", err, 1, true)
      local _, err2, kind2 = http.post(BASE .. "/api/echo", '{"user":"ops","pin":0}')
      assert.equal("replay", kind2)
      assert.matches("closest recorded: POST " .. BASE .. "/api/echo", err2, 1, true)
      local _, _, kind3 = http.get("http://127.0.0.1:1/start") -- another origin
      assert.equal("replay", kind3)
    end)
    assert.equal(before, http.stats().connections_opened)
  end)

  it("keeps both of the page's Set-Cookie headers in a session's cookie jar", function()
    cassette.use(HAR, function()
      local sess = http.session()
      assert.equal(200, assert(sess:get(BASE .. "/start")).status)
      local jar = sess.cookies:get(BASE .. "/")
      assert.matches("sid=abc123", jar, 1, true)
      assert.matches("theme=dark", jar, 1, true)
    end)
  end)

  it("replays from the command line: luafetch run --replay FILE script.lua", function()
    local script, out = os.tmpname(), os.tmpname()
    write(script, ([[
      local http = require "http"
      local base = %q
      local r = assert(http.get(base .. "/start"))
      print(r.status, r.redirects, #r.body, r.body:match("<h1>(.-)</h1>"))
      local png = assert(http.get(base .. "/logo.png"))
      print(#png.body, png.body:sub(2, 4))
      print(assert(http.get(base .. "/api/items?page=2&sort=price")):json().items[2].name)
      print(assert(http.get(base .. "/old-report")).body)
      local _, err, kind = http.get(base .. "/missing")
      print(kind)
      os.exit(7)
    ]]):format(BASE))
    local started = task.now()
    local f = assert(io.popen(("timeout 30 %s run --replay %s %s 2>%s </dev/null"):format(q(BIN), q(HAR), q(script), q(out))))
    local text = f:read("a")
    local _, _, code = f:close()
    local err = read(out)
    os.remove(script)
    os.remove(out)
    child.assert_clean(err)
    assert.equal(7, code, err)
    assert.equal(table.concat({
      "200\t1\t846\tCafé status",
      "268\tPNG",
      "Crème brûlée",
      "report: 12 of 12 up\n",
      "replay",
    }, "\n") .. "\n", text)
    assert.is_true(task.now() - started < 20)
  end)
end)
