-- script_scrape_spec.lua: scripts/scrape.lua run as a child process: every product extracted once,
-- robots.txt obeyed (groups, longest match, * and $, Crawl-delay), per-host concurrency, retries,
-- max pages, resuming from the JSONL output, CSV; and the robots.txt parser itself (the script
-- loaded with "--as-module"). Most runs are answered from tests/fixtures/har/scrape_shop.har
-- (`luafetch run --replay`, on the virtual clock: the Crawl-delay passes at once); the live cases
-- crawl scripts/mock_services.lua (its own process) over real sockets, check that the committed
-- HAR is still what the mock serves, that a replay sends it nothing, and an unreachable host.

local cjson = require "cjson"
local http = require "http"
local task = require "task"

local child = require "tests.spec.support.child"
local q, read, start_mock = child.q, child.read, child.start_mock
local ROOT = child.ROOT
local SCRIPT = ROOT .. "/scripts/scrape.lua"
local HAR = child.HAR_DIR .. "/scrape_shop.har"
local ORIGIN = child.HAR_ORIGIN -- the shop's origin in the HAR (a host that does not resolve)

-- Runs scrape.lua with args from the repository root; returns stdout, stderr, exit code.
local function scrape(args)
  return child.run_script(SCRIPT, args, 60)
end

-- Runs scrape.lua answered from the shop HAR on the virtual clock; returns stdout, stderr, exit
-- code and the exchanges it made (what the mock's /stats counts in a live run).
local function scrape_replay(args, har)
  return child.replay_script(SCRIPT, har or HAR, args, { timeout = 60 })
end

-- Requests per path and query, like the mock's /stats paths, from the exchanges of replayed runs.
local function paths_of(...)
  local paths = {}
  for _, entries in ipairs{ ... } do
    for _, e in ipairs(entries) do
      local p = child.path_of(e.request.url)
      paths[p] = (paths[p] or 0) + 1
    end
  end
  return paths
end

-- The seconds since 1970 of an ISO 8601 UTC time with milliseconds (a HAR's startedDateTime).
local function seconds_of(iso)
  local y, m, d, h, mi, s = iso:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  -- days from the civil date (H. Hinnant's algorithm)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

local function records(path)
  local out = {}
  for line in (read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
  return out
end

local function stats(mock)
  return assert(http.get(mock.url .. "/stats")):json()
end

local dir
setup(function()
  dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
end)
teardown(function() os.execute("rm -rf " .. q(dir)) end)
before_each(function() os.execute("rm -f " .. q(dir) .. "/*") end)

describe("scripts/scrape.lua live", function()
  local mock
  setup(function() mock = start_mock() end)
  teardown(function() child.end_mock(mock) end)
  before_each(function() assert(http.get(mock.url .. "/stats/reset")) end)

  it("crawls the shop: each product once, with its fields, politely; the committed HAR is this crawl", function()
    local out_path = dir .. "/all.jsonl"
    local out, err, code, recorded = child.record_script(SCRIPT,
      { "--out", out_path, "--delay", "0", "--max-pages", "100", mock.url .. "/shop/" }, 60)
    assert.are.equal(0, code, out .. err)
    local products, pages = {}, {}
    for _, rec in ipairs(records(out_path)) do
      assert.is_nil(pages[rec.url], "recorded twice: " .. rec.url)
      pages[rec.url] = rec
      if rec.data ~= cjson.null and rec.data ~= nil then products[#products + 1] = rec end
    end
    assert.are.equal(24, #products)
    local p3 = pages[mock.url .. "/shop/product/3"]
    assert.are.same({ name = "Green Saw", price = 8.25, sku = "SKU-0003",
                      description = "Buy the Green Saw at the mock shop" }, p3.data)
    assert.are.equal("Green Saw | Mock Shop", p3.title)
    assert.are.equal(200, p3.status_code)
    -- the product that fails once with 503 was retried
    assert.are.equal(2, pages[mock.url .. "/shop/product/13"].attempts)
    assert.are.equal("Red Hammer", pages[mock.url .. "/shop/product/13"].data.name)

    local s = stats(mock)
    assert.are.equal(1, s.paths["/robots.txt"])
    for path, n in pairs(s.paths) do
      -- robots.txt: Disallow /shop/private/ (but Allow the longer /shop/private/press-kit),
      -- /shop/cart, /*?sort= and /*.pdf$
      assert.is_nil(path:find("^/shop/private/admin"), path)
      assert.is_nil(path:find("^/shop/cart"), path)
      assert.is_nil(path:find("sort=", 1, true), path)
      assert.is_nil(path:find("%.pdf$"), path)
      if path ~= "/shop/product/13" then assert.are.equal(1, n, path) end
    end
    assert.are.equal(1, s.paths["/shop/private/press-kit"])
    -- per_host (2) bounds the requests in flight; Crawl-delay 0.05 s spaces their starts
    assert.is_true(s.max_inflight <= 2, "max in flight " .. s.max_inflight)
    local starts = {}
    for _, times in pairs(s.times) do
      for _, t in ipairs(times) do starts[#starts + 1] = t end
    end
    table.sort(starts)
    for i = 2, #starts do
      -- sent 0.05 s apart; arrival times at the mock jitter by a few ms (unspaced: about 0.001 s)
      assert.is_true(starts[i] - starts[i - 1] >= 0.035, ("requests %d and %d only %.3fs apart"):format(i - 1, i, starts[i] - starts[i - 1]))
    end
    assert.truthy(out:find("disallowed by robots.txt: " .. mock.url .. "/shop/cart\n", 1, true), out)
    assert.truthy(out:find("\n200 +[%d.]+ ms  " .. mock.url:gsub("%p", "%%%0") .. "/shop/product/3  Green Saw  8%.25\n"), out)
    assert.truthy(out:find("%d+ pages fetched %(24 with data%), 0 failed, 4 disallowed by robots.txt"), out)

    -- the replayed cases below stand on tests/fixtures/har/scrape_shop.har: it must hold the
    -- same exchanges, bodies included (else run tests/fixtures/har/regenerate.lua)
    assert.are.same(child.har_summary(recorded, true), child.har_summary(child.har_entries(HAR), true))
  end)

  it("a replay of the shop HAR aimed at the live mock sends it nothing", function()
    local har = child.har_at(HAR, mock.url)
    local out, err, code, asked = scrape_replay({ "--out", dir .. "/r.jsonl", "--delay", "0", "--max-pages", "100",
                                                  mock.url .. "/shop/" }, har)
    os.remove(har)
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("32 pages fetched (24 with data), 0 failed", 1, true), out)
    assert.are.equal(34, #asked) -- robots.txt, 32 pages, product 13 twice: all answered by the HAR
    local s = stats(mock)
    assert.are.equal(0, s.requests)
    assert.are.same({}, s.paths)
  end)

  it("records an unreachable host as a failure and exits 1", function()
    local out_path = dir .. "/down.jsonl"
    local out, err, code = scrape{ "--out", out_path, "--retries", "0", "http://127.0.0.1:1/shop/" }
    assert.are.equal(1, code, out .. err)
    local recs = records(out_path)
    assert.are.equal(1, #recs)
    assert.are.equal("robots", recs[1].kind)
    assert.truthy(recs[1].error:find("robots.txt unreachable", 1, true))
  end)
end)

describe("scripts/scrape.lua replayed from tests/fixtures/har/scrape_shop.har", function()
  it("crawls the shop: each product once, with its fields, politely", function()
    local out_path = dir .. "/all.jsonl"
    local out, err, code, asked = scrape_replay{ "--out", out_path, "--delay", "0", "--max-pages", "100", ORIGIN .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    local products, pages = {}, {}
    for _, rec in ipairs(records(out_path)) do
      assert.is_nil(pages[rec.url], "recorded twice: " .. rec.url)
      pages[rec.url] = rec
      if rec.data ~= cjson.null and rec.data ~= nil then products[#products + 1] = rec end
    end
    assert.are.equal(24, #products)
    local p3 = pages[ORIGIN .. "/shop/product/3"]
    assert.are.same({ name = "Green Saw", price = 8.25, sku = "SKU-0003",
                      description = "Buy the Green Saw at the mock shop" }, p3.data)
    assert.are.equal("Green Saw | Mock Shop", p3.title)
    assert.are.equal(200, p3.status_code)
    -- the product that failed once with 503 (so recorded) was retried
    assert.are.equal(2, pages[ORIGIN .. "/shop/product/13"].attempts)
    assert.are.equal("Red Hammer", pages[ORIGIN .. "/shop/product/13"].data.name)

    local paths = paths_of(asked)
    assert.are.equal(1, paths["/robots.txt"])
    for path, n in pairs(paths) do
      -- robots.txt: Disallow /shop/private/ (but Allow the longer /shop/private/press-kit),
      -- /shop/cart, /*?sort= and /*.pdf$
      assert.is_nil(path:find("^/shop/private/admin"), path)
      assert.is_nil(path:find("^/shop/cart"), path)
      assert.is_nil(path:find("sort=", 1, true), path)
      assert.is_nil(path:find("%.pdf$"), path)
      if path ~= "/shop/product/13" then assert.are.equal(1, n, path) end
    end
    assert.are.equal(1, paths["/shop/private/press-kit"])
    assert.are.equal(2, paths["/shop/product/13"])
    -- per_host (2) bounds the requests in flight; Crawl-delay 0.05 s spaces their starts. On the
    -- virtual clock each answer takes its recorded time, and the starts are exact: 50 ms apart,
    -- written to the millisecond.
    local spans = {}
    for _, e in ipairs(asked) do
      local t = seconds_of(e.startedDateTime)
      spans[#spans + 1] = { t, t + e.time / 1000 }
    end
    table.sort(spans, function(a, b) return a[1] < b[1] end)
    for i = 2, #spans do
      local gap = spans[i][1] - spans[i - 1][1]
      assert.is_true(gap >= 0.049, ("requests %d and %d only %.3fs apart"):format(i - 1, i, gap))
      local inflight = 1
      for j = 1, i - 1 do
        if spans[j][2] > spans[i][1] then inflight = inflight + 1 end
      end
      assert.is_true(inflight <= 2, "in flight at once: " .. inflight)
    end
    assert.truthy(out:find("disallowed by robots.txt: " .. ORIGIN .. "/shop/cart\n", 1, true), out)
    assert.truthy(out:find("\n200 +[%d.]+ ms  " .. ORIGIN:gsub("%p", "%%%0") .. "/shop/product/3  Green Saw  8%.25\n"), out)
    assert.truthy(out:find("%d+ pages fetched %(24 with data%), 0 failed, 4 disallowed by robots.txt"), out)
    -- the 34 starts 50 ms apart took 1.6 s on the virtual clock
    assert.is_true(tonumber(out:match("; ([%d.]+)s\n$")) >= 33 * 0.05 - 0.01, out)
  end)

  it("stops at --max-pages and resumes from its output without fetching a page twice", function()
    local out_path = dir .. "/resume.jsonl"
    local out, err, code, first = scrape_replay{ "--out", out_path, "--delay", "0", "--max-pages", "5", ORIGIN .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.are.equal(5, #records(out_path))
    assert.truthy(out:find("5 pages fetched", 1, true), out)
    assert.truthy(out:find("left for the next run", 1, true), out)

    local second
    out, err, code, second = scrape_replay{ "--out", out_path, "--delay", "0", "--max-pages", "100", ORIGIN .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("5 already in", 1, true), out)
    local seen, products = {}, 0
    for _, rec in ipairs(records(out_path)) do
      assert.is_nil(seen[rec.url], "recorded twice: " .. rec.url)
      seen[rec.url] = true
      if type(rec.data) == "table" then products = products + 1 end
    end
    assert.are.equal(24, products)
    -- both runs together asked for each page once (each run reads robots.txt; each replay of
    -- product 13 starts with its recorded 503)
    for path, n in pairs(paths_of(first, second)) do
      if path ~= "/robots.txt" and path ~= "/shop/product/13" then assert.are.equal(1, n, path) end
    end

    -- nothing left: a third run fetches nothing
    out, err, code = scrape_replay{ "--out", out_path, "--delay", "0", ORIGIN .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("\n0 pages fetched", 1, true), out)

    -- --fresh starts over
    out, err, code = scrape_replay{ "--out", out_path, "--delay", "0", "--fresh", "--max-pages", "2", ORIGIN .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.are.equal(2, #records(out_path))
  end)

  it("writes the extracted fields as CSV", function()
    local csv_path = dir .. "/products.csv"
    local out, err, code = scrape_replay{ "--out", dir .. "/c.jsonl", "--csv", csv_path, "--delay", "0",
                                          "--max-pages", "100", ORIGIN .. "/shop/category/tools" }
    assert.are.equal(0, code, out .. err)
    local lines = {}
    for line in read(csv_path):gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("url,name,price,sku,description", lines[1])
    assert.are.equal(25, #lines) -- the header and 24 products (the garden is linked from the nav)
    local found
    for _, line in ipairs(lines) do
      if line:find("/shop/product/2,", 1, true) then found = line end
    end
    assert.are.equal(ORIGIN .. "/shop/product/2,Blue Wrench,7,SKU-0002,Buy the Blue Wrench at the mock shop", found)
  end)

  it("obeys the group of its own user agent", function()
    local out, err, code, asked = scrape_replay{ "--out", dir .. "/bad.jsonl", "--user-agent", "BadBot/2.0", ORIGIN .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("0 pages fetched", 1, true), out)
    assert.are.same({ ["/robots.txt"] = 1 }, paths_of(asked))
  end)

  it("--max-depth 0 fetches the start URLs only", function()
    local out, err, code = scrape_replay{ "--out", dir .. "/d.jsonl", "--max-depth", "0", ORIGIN .. "/shop/product/1" }
    assert.are.equal(0, code, out .. err)
    assert.are.equal(1, #records(dir .. "/d.jsonl"))
  end)
end)

describe("scripts/scrape.lua command line", function()
  it("refuses bad usage with exit status 2", function()
    local _, err, code = scrape{ "--bogus" }
    assert.are.equal(2, code)
    assert.truthy(err:find("unknown option '--bogus'", 1, true), err)
    _, err, code = scrape{ "--per-host", "0", "http://x/" }
    assert.are.equal(2, code)
    assert.truthy(err:find("per_host must be a positive integer", 1, true), err)
    -- no start URL: it used to crawl 127.0.0.1:8080; now it says what to give
    _, err, code = scrape{}
    assert.are.equal(2, code)
    assert.truthy(err:find("no start URL", 1, true), err)
    assert.truthy(err:find("scrape.example.lua", 1, true), err)
  end)

  it("--help prints the options and exits 0", function()
    local out, err, code = scrape{ "--help" }
    assert.are.equal(0, code, err)
    assert.truthy(out:find("Usage: luafetch run scrape", 1, true), out)
    assert.truthy(out:find("--max-pages", 1, true), out)
  end)
end)

describe("scrape.lua robots.txt rules", function()
  local scrape_module = assert(loadfile(SCRIPT))("--as-module")

  local function allows(text, agent, target)
    return (scrape_module.robots_allows(scrape_module.parse_robots(text, agent), target))
  end

  it("uses the group naming the product token, else *", function()
    local text = "User-agent: *\nDisallow: /private\n\nUser-agent: luafetch-scrape\nDisallow: /only-us\n"
    assert.is_true(allows(text, "luafetch-scrape/0.1", "/private"))
    assert.is_false(allows(text, "luafetch-scrape/0.1", "/only-us"))
    assert.is_false(allows(text, "other/1.0", "/private"))
    assert.is_true(allows(text, "other/1.0", "/only-us"))
    -- case-insensitive names, several agents in one group, groups of the same agent merged
    text = "user-agent: A\nUSER-AGENT: LuaFetch-Scrape\ndisallow: /x\n\nUser-agent: luafetch-scrape\nDisallow: /y\n"
    assert.is_false(allows(text, "luafetch-scrape", "/x"))
    assert.is_false(allows(text, "luafetch-scrape", "/y"))
    assert.is_true(allows(text, "luafetch-scrape", "/z"))
  end)

  it("lets the longest match win, Allow on a tie", function()
    local text = "User-agent: *\nDisallow: /shop/\nAllow: /shop/public/\nDisallow: /shop/public/secret\n" ..
                 "Allow: /tie\nDisallow: /tie\n"
    assert.is_false(allows(text, "x", "/shop/a"))
    assert.is_true(allows(text, "x", "/shop/public/page"))
    assert.is_false(allows(text, "x", "/shop/public/secret-plans"))
    assert.is_true(allows(text, "x", "/tie"))
    assert.is_true(allows(text, "x", "/elsewhere"))
  end)

  it("supports * and $, treats other characters literally, ignores comments", function()
    local text = "User-agent: * # everyone\nDisallow: /*.pdf$\nDisallow: /*?sort=\nDisallow: /a.b(c)%\n"
    assert.is_false(allows(text, "x", "/files/report.pdf"))
    assert.is_true(allows(text, "x", "/files/report.pdf?download=1"))
    assert.is_false(allows(text, "x", "/list?sort=price"))
    assert.is_true(allows(text, "x", "/list?page=2"))
    assert.is_false(allows(text, "x", "/a.b(c)%/x"))
    assert.is_true(allows(text, "x", "/aXb(c)%"))
  end)

  it("an empty Disallow allows everything; robots.txt is always allowed; Crawl-delay is read", function()
    local r = scrape_module.parse_robots("User-agent: *\nDisallow:\nCrawl-delay: 2.5\n", "x")
    assert.is_true((scrape_module.robots_allows(r, "/anything")))
    assert.are.equal(2.5, r.delay)
    r = scrape_module.parse_robots("User-agent: *\nDisallow: /\n", "x")
    assert.is_false((scrape_module.robots_allows(r, "/page")))
    assert.is_true((scrape_module.robots_allows(r, "/robots.txt")))
    -- rules before any User-agent line belong to no group
    assert.is_true(allows("Disallow: /\n", "x", "/page"))
    -- CRLF line ends
    assert.is_false(allows("User-agent: *\r\nDisallow: /p\r\n", "x", "/p"))
  end)
end)
