-- mock_services.lua — a pretend set of web services on one local port, for `make demo`, the
-- script specs, and for trying the example scripts without touching a real site.
--
-- usage: luafetch run mock_services [PORT]      (PORT 0 or none: the OS picks one; --help)
--
-- Prints `PORT <n>` on stdout (one line, flushed: read it, don't guess), then serves on
-- 127.0.0.1 until SIGINT or SIGTERM. Nothing here is meant for the internet.
--
--   /health, /service/NAME      healthy ("ok"); POST /admin/down/NAME and /admin/up/NAME
--                               switch a /service/NAME to 503 and back (to watch alerts)
--   /flaky                      every 3rd request answers 503
--   /slow?delay=S               answers after S seconds (default 0.8)
--   /status/CODE                that status
--   /api/users, /api/orders, /api/inventory   JSON APIs; /api/slow (1.5 s), /api/broken
--                               (invalid JSON), /api/error (500)
--   /robots.txt, /shop/...      a small shop: categories with pages, 24 product pages, a private
--                               area robots.txt forbids; /shop/product/13 fails once with 503
--   POST /hooks, GET /hooks     a webhook receiver and what it received
--   /stats, /stats/reset        requests per path, the most in flight at once, and when each
--                               path was requested (for the politeness checks of the specs)
local http = require "http"
local task = require "task"
local cjson = require "cjson"

local argparse = require "argparse"

local parser = argparse("luafetch run mock_services",
  "Pretend web services on one local port (127.0.0.1), for the demo, the specs and trying the "
  .. "example scripts. Prints PORT <n> on stdout, then serves until SIGINT or SIGTERM.")
parser:add_help(false)
parser:flag("-h --help", "Show this help and exit.")
parser:argument("port", "Port to listen on (0 or none: the OS picks one)."):args("?")
  :convert(function(text)
    local n = math.tointeger(tonumber(text))
    if not n or n < 0 or n > 65535 then return nil, "PORT must be 0-65535, got '" .. text .. "'" end
    return n
  end)
local ok, opts = parser:pparse(arg or {})
if not ok then error({ exit_code = 2, message = "mock_services.lua: " .. opts .. " (try --help)" }, 0) end
if opts.help then
  io.stdout:write(parser:get_help(), "\n")
  return 0
end
local port = opts.port or 0

local started = task.now()
local stats = { requests = 0, inflight = 0, max_inflight = 0, paths = {}, times = {} }
local down = {}          -- service name -> true while switched off
local hooks = {}         -- bodies received on POST /hooks
local flaky_count = 0
local failed_once = {}   -- path -> true once it has failed

local ROBOTS = [[
# robots.txt of the luafetch mock shop
User-agent: *
Disallow: /shop/private/
Allow: /shop/private/press-kit
Disallow: /shop/cart
Disallow: /*?sort=
Disallow: /*.pdf$
Crawl-delay: 0.05

User-agent: BadBot
Disallow: /
]]

local CATEGORIES = { tools = { 1, 12 }, garden = { 13, 24 } }
local COLORS = { "Red", "Blue", "Green", "Yellow", "Black", "White" }
local THINGS = { "Hammer", "Wrench", "Saw", "Drill", "Pliers", "Level",
                 "Rake", "Hose", "Shovel", "Pot", "Shears", "Trowel" }
local PER_PAGE = 4

local function product(id)
  local name = COLORS[(id - 1) % #COLORS + 1] .. " " .. THINGS[(id - 1) % #THINGS + 1]
  return { id = id, name = name, sku = ("SKU-%04d"):format(id), price = ("%.2f"):format(4.5 + id * 1.25),
           in_stock = id % 5 ~= 0, category = id <= 12 and "tools" or "garden" }
end

local function page(title, body, description)
  return { status = 200, headers = { ["Content-Type"] = "text/html; charset=utf-8" },
    body = ([[<!doctype html>
<html><head><title>%s</title>%s</head>
<body><nav><a href="/shop/">Shop</a> <a href="/shop/category/tools">Tools</a>
<a href="/shop/category/garden">Garden</a> <a href="/shop/cart">Cart</a></nav>
%s
<footer><a href="/shop/private/admin">Staff</a> <a href="/shop/private/press-kit">Press</a>
<a href="mailto:shop@example.invalid">Mail us</a></footer></body></html>
]]):format(title, description and ('<meta name="description" content="' .. description .. '">') or "", body) }
end

local function shop(path, args)
  if path == "/shop/" or path == "/shop" then
    return page("Mock Shop", [[<h1>Mock Shop</h1>
<ul><li><a href="/shop/category/tools">Tools</a></li><li><a href="/shop/category/garden">Garden</a></li>
<li><a href="/shop/category/tools?sort=price">Tools by price</a></li>
<li><a href="/shop/catalog.pdf">Catalogue (PDF)</a></li></ul>]], "The mock shop of luafetch")
  end
  local cat = path:match("^/shop/category/(%a+)$")
  if cat and CATEGORIES[cat] then
    local first, last = CATEGORIES[cat][1], CATEGORIES[cat][2]
    local n = tonumber(args.page) or 1
    local items = {}
    for id = first + (n - 1) * PER_PAGE, math.min(last, first + n * PER_PAGE - 1) do
      items[#items + 1] = ('<li><a href="../product/%d">%s</a></li>'):format(id, product(id).name)
    end
    if #items == 0 then return { status = 404, body = "no such page\n" } end
    local next_link = first + n * PER_PAGE <= last
      and ('<a rel="next" href="?page=%d">Next page</a>'):format(n + 1) or ""
    return page(("%s, page %d"):format(cat, n), ("<h1>%s</h1><ul>%s</ul>%s"):format(cat, table.concat(items), next_link))
  end
  local id = tonumber(path:match("^/shop/product/(%d+)$"))
  if id and id >= 1 and id <= 24 then
    if id == 13 and not failed_once[path] then
      failed_once[path] = true
      return { status = 503, headers = { ["Retry-After"] = "0" }, body = "busy, try again\n" }
    end
    local p = product(id)
    local related = p.id % 24 + 1
    return page(p.name .. " | Mock Shop", ([[
<div class="product" itemscope itemtype="https://schema.org/Product">
  <h1 itemprop="name">%s</h1>
  <span class="sku" itemprop="sku">%s</span>
  <span class="price" itemprop="price" content="%s">EUR %s</span>
  <p class="stock">%s</p>
  <p class="description">A very fine %s.</p>
  <a href="/shop/product/%d#reviews">Related: %s</a>
</div>]]):format(p.name, p.sku, p.price, p.price, p.in_stock and "In stock" or "Sold out",
      p.name:lower(), related, product(related).name), "Buy the " .. p.name .. " at the mock shop")
  end
  if path:match("^/shop/private/") then
    return page("Private", "<h1>Staff only</h1>")
  end
  if path == "/shop/catalog.pdf" then
    return { status = 200, headers = { ["Content-Type"] = "application/pdf" }, body = "%PDF-1.4 not really\n" }
  end
  return { status = 404, body = "not found\n" }
end

local USERS = {
  { id = 1, name = "Ada", email = "ada@example.invalid" },
  { id = 2, name = "Grace", email = "grace@example.invalid" },
  { id = 3, name = "Linus", email = "linus@example.invalid" },
}
local ORDERS = {
  { id = 101, user_id = 1, total = 25.5 }, { id = 102, user_id = 2, total = 12 },
  { id = 103, user_id = 1, total = 7.25 }, { id = 104, user_id = 3, total = 99.9 },
}

local function api(path)
  if path == "/api/users" then return { json = USERS } end
  if path == "/api/orders" then return { json = { orders = ORDERS, count = #ORDERS } } end
  if path == "/api/inventory" then
    local items = {}
    for id = 1, 6 do
      local p = product(id)
      items[#items + 1] = { sku = p.sku, name = p.name, in_stock = p.in_stock }
    end
    return { json = { items = items, warehouse = "mock-1" } }
  end
  if path == "/api/slow" then
    task.sleep(1.5)
    return { json = { slow = true } }
  end
  if path == "/api/broken" then
    return { status = 200, headers = { ["Content-Type"] = "application/json" }, body = '{"users": [1, 2' }
  end
  if path == "/api/error" then
    return { status = 500, json = { error = "internal error" } }
  end
  return { status = 404, json = { error = "no such API" } }
end

local function route(req)
  local path, args = req.path, req.args
  if path == "/" then
    return "luafetch mock services: /health /flaky /slow /service/NAME /api/... /shop/ /robots.txt /hooks /stats\n"
  elseif path == "/health" then
    return { json = { status = "ok", uptime = task.now() - started } }
  elseif path == "/flaky" then
    flaky_count = flaky_count + 1
    if flaky_count % 3 == 0 then return { status = 503, body = "flaky: failing this time\n" } end
    return "flaky: ok this time\n"
  elseif path == "/slow" then
    local delay = tonumber(args.delay) or 0.8
    task.sleep(delay)
    return ("slow: answered after %gs\n"):format(delay)
  elseif path:match("^/status/%d+$") then
    return { status = tonumber(path:match("%d+")), body = "status " .. path:match("%d+") .. "\n" }
  elseif path:match("^/service/[%w_-]+$") then
    local name = path:match("[^/]+$")
    if down[name] then return { status = 503, body = name .. " is down\n" } end
    return name .. " ok\n"
  elseif req.method == "POST" and path:match("^/admin/") then
    local what, name = path:match("^/admin/(%a+)/([%w_-]+)$")
    if what == "down" then down[name] = true elseif what == "up" then down[name] = nil
    else return { status = 404, body = "use /admin/down/NAME or /admin/up/NAME\n" } end
    return name .. " is now " .. what .. "\n"
  elseif path == "/hooks" then
    if req.method == "POST" then
      hooks[#hooks + 1] = req.body
      return { status = 204 }
    end
    -- "[]" by hand: cjson writes an empty table as {}
    return { headers = { ["Content-Type"] = "application/json" }, body = #hooks > 0 and cjson.encode(hooks) or "[]" }
  elseif path == "/robots.txt" then
    return { headers = { ["Content-Type"] = "text/plain" }, body = ROBOTS }
  elseif path:match("^/shop") then
    return shop(path, args)
  elseif path:match("^/api/") then
    return api(path)
  end
  return { status = 404, body = "not found\n" }
end

local function handler(req)
  if req.path == "/stats" then
    return { json = stats }
  elseif req.path == "/stats/reset" then
    stats = { requests = 0, inflight = stats.inflight, max_inflight = stats.inflight, paths = {}, times = {} }
    flaky_count, failed_once, hooks = 0, {}, {}
    return "reset\n"
  end
  local key = req.path .. (req.query ~= "" and "?" .. req.query or "")
  stats.requests = stats.requests + 1
  stats.paths[key] = (stats.paths[key] or 0) + 1
  stats.times[key] = stats.times[key] or {}
  table.insert(stats.times[key], task.now() - started)
  stats.inflight = stats.inflight + 1
  stats.max_inflight = math.max(stats.max_inflight, stats.inflight)
  local ok, res = pcall(route, req)
  stats.inflight = stats.inflight - 1
  if not ok then error(res, 0) end
  return res
end

local server = assert(http.serve{ host = "127.0.0.1", port = port, handler = handler })
io.stdout:write("PORT ", server.port, "\n")
io.stdout:flush()
io.stderr:write("mock services on ", server.url, " (SIGINT or SIGTERM stops them)\n")

task.on_signal(function()
  server:close()
end)
