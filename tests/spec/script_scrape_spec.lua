-- script_scrape_spec.lua: scripts/scrape.lua run as a child process against scripts/mock_services.lua
-- (its own process): every product extracted once, robots.txt obeyed (groups, longest match, * and $,
-- Crawl-delay), per-host concurrency, retries, max pages, resuming from the JSONL output, CSV; and
-- the robots.txt parser itself (the script loaded with "--as-module").

local cjson = require "cjson"
local http = require "http"
local task = require "task"

local child = require "tests.spec.support.child"
local q, read, start_mock, stop_mock = child.q, child.read, child.start_mock, child.stop_mock
local ROOT = child.ROOT
local SCRIPT = ROOT .. "/scripts/scrape.lua"

-- Runs scrape.lua with args from the repository root; returns stdout, stderr, exit code.
local function scrape(args)
  return child.run_script(SCRIPT, args, 60)
end

local function records(path)
  local out = {}
  for line in (read(path) or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
  return out
end

local function stats(mock)
  return assert(http.get(mock.url .. "/stats")):json()
end

local function path_of(url)
  return url:match("^https?://[^/]+(.*)$")
end

describe("scripts/scrape.lua", function()
  local mock, dir
  setup(function()
    mock = start_mock()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
  end)
  teardown(function()
    stop_mock(mock)
    os.execute("rm -rf " .. q(dir))
  end)
  before_each(function()
    assert(http.get(mock.url .. "/stats/reset"))
    os.execute("rm -f " .. q(dir) .. "/*")
  end)

  it("crawls the shop: each product once, with its fields, politely", function()
    local out_path = dir .. "/all.jsonl"
    local out, err, code = scrape{ "--out", out_path, "--delay", "0", "--max-pages", "100", mock.url .. "/shop/" }
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
  end)

  it("stops at --max-pages and resumes from its output without fetching a page twice", function()
    local out_path = dir .. "/resume.jsonl"
    local out, err, code = scrape{ "--out", out_path, "--delay", "0", "--max-pages", "5", mock.url .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.are.equal(5, #records(out_path))
    assert.truthy(out:find("5 pages fetched", 1, true), out)
    assert.truthy(out:find("left for the next run", 1, true), out)

    out, err, code = scrape{ "--out", out_path, "--delay", "0", "--max-pages", "100", mock.url .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("5 already in", 1, true), out)
    local seen, products = {}, 0
    for _, rec in ipairs(records(out_path)) do
      assert.is_nil(seen[rec.url], "recorded twice: " .. rec.url)
      seen[rec.url] = true
      if type(rec.data) == "table" then products = products + 1 end
    end
    assert.are.equal(24, products)
    for path, n in pairs(stats(mock).paths) do
      if path ~= "/robots.txt" and path ~= "/shop/product/13" then assert.are.equal(1, n, path) end
    end

    -- nothing left: a third run fetches nothing
    out, err, code = scrape{ "--out", out_path, "--delay", "0", mock.url .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("\n0 pages fetched", 1, true), out)

    -- --fresh starts over
    out, err, code = scrape{ "--out", out_path, "--delay", "0", "--fresh", "--max-pages", "2", mock.url .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.are.equal(2, #records(out_path))
  end)

  it("writes the extracted fields as CSV", function()
    local csv_path = dir .. "/products.csv"
    local out, err, code = scrape{ "--out", dir .. "/c.jsonl", "--csv", csv_path, "--delay", "0",
                                   "--max-pages", "100", mock.url .. "/shop/category/tools" }
    assert.are.equal(0, code, out .. err)
    local lines = {}
    for line in read(csv_path):gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.are.equal("url,name,price,sku,description", lines[1])
    assert.are.equal(25, #lines) -- the header and 24 products (the garden is linked from the nav)
    local found
    for _, line in ipairs(lines) do
      if line:find("/shop/product/2,", 1, true) then found = line end
    end
    assert.are.equal(mock.url .. "/shop/product/2,Blue Wrench,7,SKU-0002,Buy the Blue Wrench at the mock shop", found)
  end)

  it("obeys the group of its own user agent", function()
    local out, err, code = scrape{ "--out", dir .. "/bad.jsonl", "--user-agent", "BadBot/2.0", mock.url .. "/shop/" }
    assert.are.equal(0, code, out .. err)
    assert.truthy(out:find("0 pages fetched", 1, true), out)
    assert.are.same({ ["/robots.txt"] = 1 }, stats(mock).paths)
  end)

  it("--max-depth 0 fetches the start URLs only", function()
    local out, err, code = scrape{ "--out", dir .. "/d.jsonl", "--max-depth", "0", mock.url .. "/shop/product/1" }
    assert.are.equal(0, code, out .. err)
    assert.are.equal(1, #records(dir .. "/d.jsonl"))
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
