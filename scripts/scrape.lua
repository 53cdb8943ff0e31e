-- scrape.lua — crawl product-style pages politely; write one JSON line per page (and, if asked,
-- a CSV of the extracted fields).
--
-- usage: luafetch run scrape [options] START_URL...      (--help lists the options)
--        luafetch run scrape --config FILE [options] [START_URL...]
--
--   --config FILE      a Lua file returning settings that replace those of CONFIG below
--                      (see scrape.example.lua beside this script; a relative name not found in
--                      the current folder is looked up beside this script)
--   --out FILE         JSON lines output (default products.jsonl; "-" for stdout)
--   --csv FILE         also write the extracted fields as CSV (columns: CONFIG.csv_columns)
--   --fresh            start over: overwrite the output instead of resuming from it
--   --max-pages N  --max-depth N  --concurrency N  --per-host N  --delay SECONDS
--   --retries N  --timeout SECONDS  --user-agent UA  --ignore-robots
--
-- Politeness: robots.txt is read once per host and obeyed (the group of our user agent, else
-- "*"; Allow/Disallow with * and $, the longest match wins; Crawl-delay); at most `per_host`
-- requests in flight per host, started at least `delay` seconds apart; 429/5xx and timeouts are
-- retried with backoff, honouring Retry-After.
--
-- Resuming: when the output file exists, the pages it holds are not fetched again (those that
-- failed are), and the links recorded with them are crawled. Run again after an interruption,
-- or with a larger --max-pages, and the crawl goes on where it stopped.
--
-- Exit status: 0 when no page failed, 1 when some did (after retries), 2 on bad usage.
local http = require "http"
local task = require "task"
local html = require "html"
local retry = require "plugins.retry"
local jsonl = require "plugins.jsonl"
local csv = require "plugins.csv"
local cjson = require "cjson.safe"
local argparse = require "argparse"

-- the folder of this script: example files are looked up beside it
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local CONFIG = {
  start_urls = nil,      -- required: START_URL arguments or the --config file's start_urls
  follow = nil,          -- Lua patterns; a link is followed when it matches one (nil: same hosts as start_urls)
  skip = {},             -- Lua patterns; matching links are never followed
  max_pages = 50,        -- pages fetched in this run (robots.txt not counted)
  max_depth = 5,         -- link hops from a start URL
  concurrency = 8,       -- pages in flight in all
  per_host = 2,          -- pages in flight per host
  delay = 0.2,           -- seconds between request starts on one host (a longer Crawl-delay wins)
  retries = 2,           -- retries of one page after a timeout, connection failure, 429 or 5xx
  timeout = 10,          -- seconds per attempt
  max_body = 4 * 1024 * 1024, -- bigger pages are skipped (kind "limit")
  user_agent = "luafetch-scrape/0.1",
  robots = true,         -- obey robots.txt
  output = "products.jsonl",
  csv = nil,             -- path of a CSV of the extracted fields, or nil
  csv_columns = { "url", "name", "price", "sku", "description" },
  fresh = false,         -- true: overwrite the output instead of resuming

  -- What to keep from a page: a table of fields, or nil when the page is not a product page
  -- (its links are still followed). `doc` is an html document (docs/html.md).
  extract = function(doc, url, res)
    local price = doc:select_one("[itemprop=price], .price")
    if not price then return nil end
    local name = doc:select_one("[itemprop=name], h1")
    local sku = doc:select_one("[itemprop=sku], .sku")
    return {
      name = name and name:text(),
      price = tonumber(price:attr("content") or price:text():match("%d+%.?%d*")),
      sku = sku and sku:text(),
      description = doc:meta("description"),
    }
  end,
}

local M = {} -- the functions below, returned to specs that load this file with "--as-module"

local function usage_error(message)
  error({ exit_code = 2, message = "scrape.lua: " .. message }, 0)
end

---------------------------------------------------------------------------
-- robots.txt (RFC 9309)
---------------------------------------------------------------------------

-- A robots path pattern as an anchored Lua pattern: `*` is any run of characters, a final `$`
-- anchors the end, everything else is literal.
local function robots_pattern(path)
  local anchored = path:sub(-1) == "$"
  if anchored then path = path:sub(1, -2) end
  local lua = path:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*")
  return "^" .. lua .. (anchored and "$" or "")
end

---Parses robots.txt for the user agent `agent`: the rules of the groups naming its product token
---(case-insensitive), else those of the "*" groups.
---@param text string
---@param agent string user agent, e.g. "luafetch-scrape/0.1"
---@return { rules: table[], delay: number|nil }
function M.parse_robots(text, agent)
  local token = (agent:match("^[^/%s]+") or agent):lower()
  local groups, group, in_rules = {}, nil, false
  for line in (text .. "\n"):gmatch("([^\r\n]*)\r?\n") do
    local key, value = line:gsub("#.*", ""):match("^%s*([%a%-]+)%s*:%s*(.-)%s*$")
    key = key and key:lower()
    if key == "user-agent" then
      if not group or in_rules then
        group = { agents = {}, rules = {} }
        groups[#groups + 1] = group
        in_rules = false
      end
      group.agents[value:lower()] = true
    elseif group and (key == "allow" or key == "disallow") then
      in_rules = true
      if value ~= "" then -- an empty Disallow allows everything: no rule
        group.rules[#group.rules + 1] = { allow = key == "allow", path = value, pattern = robots_pattern(value) }
      end
    elseif group and key == "crawl-delay" then
      in_rules = true
      group.delay = tonumber(value)
    end
  end
  local function merge(name)
    local out, found = { rules = {} }, false
    for _, g in ipairs(groups) do
      if g.agents[name] then
        found = true
        for _, r in ipairs(g.rules) do out.rules[#out.rules + 1] = r end
        out.delay = out.delay or g.delay
      end
    end
    return found and out
  end
  return merge(token) or merge("*") or { rules = {} }
end

---Is `target` (path and query) allowed? The longest matching rule wins; Allow wins a tie.
---@param robots { rules: table[] }
---@param target string
---@return boolean allowed
---@return table|nil rule the deciding rule
function M.robots_allows(robots, target)
  if target == "/robots.txt" then return true end
  local best
  for _, r in ipairs(robots.rules) do
    if target:find(r.pattern) then
      if not best or #r.path > #best.path or (#r.path == #best.path and r.allow and not best.allow) then
        best = r
      end
    end
  end
  return best == nil or best.allow, best
end

---------------------------------------------------------------------------
-- The crawl
---------------------------------------------------------------------------

-- A value for people: numbers without trailing zeros (7.0 -> 7, 5.75 -> 5.75).
local function show(v)
  return math.type(v) == "float" and ("%.14g"):format(v) or tostring(v)
end

local function matches_any(url, patterns)
  for _, p in ipairs(patterns or {}) do
    if url:find(p) then return true end
  end
  return false
end

local function origin_of(url)
  local u = http.parse_url(url)
  return u and (u.scheme .. "://" .. u.host .. ":" .. u.port), u
end

-- Pages already in the output: done (skipped) unless they failed; their links are crawled.
local function read_previous(path)
  local done, previous = {}, {}
  local f = io.open(path)
  if not f then return done, previous end
  for line in f:lines() do
    local rec = cjson.decode(line) -- a line cut short by an interruption is just skipped
    if type(rec) == "table" and type(rec.url) == "string" then
      local failed = rec.error ~= nil and rec.error ~= cjson.null
      if not failed then
        done[rec.url] = true
        previous[#previous + 1] = rec
      end
    end
  end
  f:close()
  return done, previous
end

---Crawls from the start URLs; returns the run's counts.
---@param cfg table settings as CONFIG
---@param say fun(line: string) progress lines
---@return table stats fetched, failed, blocked, resumed, with_data, skipped_limit, elapsed
function M.crawl(cfg, say)
  local started = task.now()
  local policy = retry.new{ max_retries = cfg.retries, backoff_factor = 0.5, max_backoff = 30 }
  local stats = { fetched = 0, failed = 0, blocked = 0, resumed = 0, with_data = 0, skipped_limit = 0 }

  -- scope: the start URLs' hosts unless `follow` says otherwise
  local follow = cfg.follow
  if not follow then
    follow = {}
    for _, u in ipairs(cfg.start_urls) do
      local origin = origin_of(u)
      if not origin then usage_error("bad start URL '" .. tostring(u) .. "'") end
      follow[#follow + 1] = "^" .. u:match("^(%a[%w+.-]*://[^/?#]*)"):gsub("%p", "%%%0") .. "/"
    end
  end
  local function in_scope(url)
    return matches_any(url, follow) and not matches_any(url, cfg.skip)
  end

  -- outputs
  local done, previous = {}, {}
  local to_stdout = cfg.output == "-"
  if not to_stdout and not cfg.fresh then
    done, previous = read_previous(cfg.output)
    stats.resumed = #previous
  end
  local sink = jsonl.new{ path = cfg.output, append = not cfg.fresh and not to_stdout,
    fields = { "url", "status_code", "title", "data", "links", "depth", "elapsed", "attempts",
               "error", "kind", "fetched_at" } }
  local table_sink
  if cfg.csv then
    local existing = io.open(cfg.csv)
    local append = existing ~= nil and existing:seek("end") > 0 and not cfg.fresh
    if existing then existing:close() end
    table_sink = csv.new{ path = cfg.csv, columns = cfg.csv_columns, append = append }
  end

  -- the queue: a FIFO of { url, depth }; `work` counts its entries so idle workers can wait
  local queue, head, tail, seen = {}, 1, 0, {}
  local work = task.semaphore(0)
  local function enqueue(url, depth)
    if seen[url] or done[url] or depth > cfg.max_depth then return end
    seen[url] = true
    tail = tail + 1
    queue[tail] = { url = url, depth = depth }
    work:release()
  end

  -- per host: a slot semaphore, the last request start, the delay, robots rules (read once)
  local hosts = {}
  local function host_for(origin)
    local h = hosts[origin]
    if not h then
      h = { slots = task.semaphore(cfg.per_host), last_start = -math.huge, delay = cfg.delay, lock = task.semaphore(1) }
      hosts[origin] = h
    end
    return h
  end
  local function wait_turn(h)
    local now = task.now()
    local at = math.max(now, h.last_start + h.delay)
    h.last_start = at -- taken now, so the next caller waits behind this one
    if at > now then task.sleep(at - now) end
  end
  -- GET with retries, every attempt waiting for its turn on the host; also returns the attempts
  -- and the seconds from the first attempt's start
  local function get(h, url)
    h.slots:acquire()
    local first
    local res, err, kind, attempts = policy:run(function()
      wait_turn(h)
      first = first or task.now()
      return http.get(url, { timeout = cfg.timeout, max_body = cfg.max_body,
                             headers = { ["User-Agent"] = cfg.user_agent } })
    end)
    h.slots:release()
    return res, err, kind, attempts, task.now() - first
  end
  local function robots_for(h, origin)
    h.lock:acquire()
    if not h.robots then
      if not cfg.robots then
        h.robots = { rules = {} }
      else
        local res, err = get(h, origin .. "/robots.txt")
        if res and res.status >= 200 and res.status < 300 then
          h.robots = M.parse_robots(res.body, cfg.user_agent)
        elseif res and res.status >= 400 and res.status < 500 then
          h.robots = { rules = {} } -- no robots.txt: everything is allowed
        else -- unreachable: RFC 9309 says assume everything is disallowed
          local why = err or ("status " .. res.status)
          h.robots = { rules = {}, unreachable = "robots.txt unreachable: " .. why }
          say(("    %s/robots.txt unreachable (%s): not crawling this host"):format(origin, why))
        end
        if h.robots.delay and h.robots.delay > h.delay then h.delay = h.robots.delay end
      end
    end
    h.lock:release()
    return h.robots
  end

  local function visit(item)
    local url = item.url
    local origin, parts = origin_of(url)
    if not origin then return end
    local h = host_for(origin)
    local robots = robots_for(h, origin)
    if robots.unreachable then -- a failure: the page is tried again when the crawl resumes
      stats.failed = stats.failed + 1
      sink.on_result(url, { url = url, depth = item.depth, error = robots.unreachable, kind = "robots",
                            fetched_at = os.date("!%Y-%m-%dT%H:%M:%SZ") })
      return
    end
    if not M.robots_allows(robots, parts.target) then
      stats.blocked = stats.blocked + 1
      say("    disallowed by robots.txt: " .. url)
      return
    end
    if stats.fetched >= cfg.max_pages then
      stats.skipped_limit = stats.skipped_limit + 1
      return
    end
    stats.fetched = stats.fetched + 1
    local res, err, kind, attempts, elapsed = get(h, url)
    local rec = { url = url, depth = item.depth, attempts = attempts, elapsed = elapsed,
                  fetched_at = os.date("!%Y-%m-%dT%H:%M:%SZ") }
    if not res then
      rec.error, rec.kind = err, kind
    else
      rec.status_code = res.status
      seen[res.url] = true -- after redirects
      if res.status >= 500 or res.status == 429 then
        rec.error, rec.kind = "HTTP " .. res.status, "status"
      end
      local ctype = res.headers["content-type"] or ""
      if res.status >= 200 and res.status < 300 and ctype:find("html", 1, true) then
        local doc <close> = html.parse(res.body)
        rec.title = doc:title()
        local ok, data = pcall(cfg.extract, doc, url, res)
        if not ok then
          say("    extract failed on " .. url .. ": " .. tostring(data))
        elseif data ~= nil then
          rec.data = data
        end
        local links = {}
        for _, link in ipairs(doc:links(res.url)) do
          if in_scope(link) then
            links[#links + 1] = link
            enqueue(link, item.depth + 1)
          end
        end
        rec.links = links
      end
    end
    if rec.error then
      stats.failed = stats.failed + 1
      say(("ERR %s: %s (%d attempts)"):format(url, rec.error, attempts or 0))
    else
      local summary = ""
      if rec.data then
        stats.with_data = stats.with_data + 1
        local d = rec.data
        summary = "  " .. show(d.name or rec.title or "") .. (d.price and ("  " .. show(d.price)) or "")
      end
      say(("%d %7.1f ms  %s%s%s"):format(rec.status_code, rec.elapsed * 1000, url,
        attempts > 1 and (" (" .. attempts .. " attempts)") or "", summary))
    end
    sink.on_result(url, rec)
    if table_sink and rec.data then
      local row = { url = url }
      for k, v in pairs(rec.data) do row[k] = math.type(v) == "float" and show(v) or v end
      table_sink.on_result(url, row)
    end
  end

  for _, u in ipairs(cfg.start_urls) do enqueue(u, 0) end
  for _, rec in ipairs(previous) do
    for _, link in ipairs(type(rec.links) == "table" and rec.links or {}) do
      if in_scope(link) then enqueue(link, (tonumber(rec.depth) or 0) + 1) end
    end
  end

  -- workers: take the next URL; the last one to go idle with nothing queued ends the crawl
  local busy, finished = 0, tail == 0
  local workers = {}
  for i = 1, cfg.concurrency do
    workers[i] = task.spawn(function()
      while true do
        if finished then return end
        work:acquire()
        if finished then return end
        local item = queue[head]
        queue[head] = nil
        head = head + 1
        busy = busy + 1
        local ok, err = xpcall(visit, debug.traceback, item)
        busy = busy - 1
        if not ok then
          stats.failed = stats.failed + 1
          say("ERR " .. item.url .. ": " .. tostring(err))
        end
        if busy == 0 and head > tail then
          finished = true
          for _ = 1, cfg.concurrency do work:release() end
        end
      end
    end)
  end
  for _, w in ipairs(workers) do w:join() end

  sink.close()
  if table_sink then table_sink.close() end
  stats.elapsed = task.now() - started
  return stats
end

---------------------------------------------------------------------------
-- Command line
---------------------------------------------------------------------------

local function is_file(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

---A relative path not found from the current folder is looked up beside this script.
---@param path string
---@return string
function M.find_file(path)
  if is_file(path) or path:sub(1, 1) == "/" then return path end
  local beside = HERE .. "/" .. path
  return is_file(beside) and beside or path
end

---A converter for option `name`: a non-negative number, or an error naming the option.
local function non_negative(name)
  return function(text)
    local n = tonumber(text)
    if not n or n < 0 then return nil, name .. " needs a non-negative number, got '" .. text .. "'" end
    return n
  end
end

---The argument parser (lua-argparse).
function M.parser()
  local p = argparse("luafetch run scrape",
    "Crawl pages politely (robots.txt, per-host limits, retries); write one JSON line per page "
    .. "and, if asked, a CSV of the extracted fields. Resumes from its output file.",
    "Settings to copy and edit: " .. HERE .. "/scrape.example.lua (luafetch run scrape "
    .. "--config scrape.example.lua).\n"
    .. "Exit status: 0 no page failed, 1 some did (after retries), 2 bad usage.")
  p:add_help(false)
  p:help_max_width(80)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("start_urls", "Where the crawl starts (replace the config's start_urls)."):args("*")
  p:option("--config", "Lua file returning settings (a relative name is also looked up beside this script).")
    :argname("<file>")
  p:option("--out", "JSON lines output (default products.jsonl; - for stdout)."):argname("<file>")
    :target("output")
  p:option("--csv", "Also write the extracted fields as CSV."):argname("<file>")
  p:flag("--fresh", "Start over: overwrite the output instead of resuming from it.")
  p:option("--max-pages", "Pages fetched in this run (50)."):argname("<n>"):convert(non_negative("--max-pages"))
  p:option("--max-depth", "Link hops from a start URL (5)."):argname("<n>"):convert(non_negative("--max-depth"))
  p:option("--concurrency", "Pages in flight in all (8)."):argname("<n>"):convert(non_negative("--concurrency"))
  p:option("--per-host", "Pages in flight per host (2)."):argname("<n>"):convert(non_negative("--per-host"))
  p:option("--delay", "Seconds between request starts on one host (0.2)."):argname("<s>"):convert(non_negative("--delay"))
  p:option("--retries", "Retries of one page (2)."):argname("<n>"):convert(non_negative("--retries"))
  p:option("--timeout", "Seconds per attempt (10)."):argname("<s>"):convert(non_negative("--timeout"))
  p:option("--user-agent", "User agent (luafetch-scrape/0.1)."):argname("<ua>")
  p:flag("--ignore-robots", "Do not read or obey robots.txt.")
  return p
end

---Settings from CONFIG, a --config file and the arguments; nil when --help was asked for (and
---printed).
---@param args string[]
---@return table|nil
function M.settings(args)
  local p = M.parser()
  local ok, given = p:pparse(args)
  if not ok then usage_error(given .. " (try --help)") end
  if given.help then
    io.stdout:write(p:get_help(), "\n")
    return nil
  end
  local cfg = {}
  for k, v in pairs(CONFIG) do cfg[k] = v end
  if given.config then
    local path = M.find_file(given.config)
    local chunk, err = loadfile(path)
    if not chunk then usage_error(err) end
    local t = chunk()
    if type(t) ~= "table" then usage_error(path .. " must return a table of settings") end
    for k, v in pairs(t) do cfg[k] = v end
  end
  for _, k in ipairs{ "output", "csv", "fresh", "max_pages", "max_depth", "concurrency", "per_host",
                      "delay", "retries", "timeout", "user_agent" } do
    if given[k] ~= nil and given[k] ~= false then cfg[k] = given[k] end
  end
  if given.ignore_robots then cfg.robots = false end
  if #given.start_urls > 0 then cfg.start_urls = given.start_urls end
  for _, k in ipairs{ "concurrency", "per_host" } do
    local n = type(cfg[k]) == "number" and math.tointeger(cfg[k])
    if not n or n < 1 then usage_error(k .. " must be a positive integer") end
    cfg[k] = n
  end
  if type(cfg.start_urls) ~= "table" or #cfg.start_urls == 0 then
    usage_error("no start URL: give START_URL... or --config FILE (an example: " .. HERE
      .. "/scrape.example.lua; see --help)")
  end
  if type(cfg.extract) ~= "function" then usage_error("extract must be a function") end
  return cfg
end

local function main(args)
  local cfg = M.settings(args)
  if not cfg then return 0 end
  local out = cfg.output == "-" and io.stderr or io.stdout
  local function say(line)
    out:write(line, "\n")
    out:flush()
  end
  local s = M.crawl(cfg, say)
  say(("\n%d pages fetched (%d with data), %d failed, %d disallowed by robots.txt, %d already in %s, %d left for the next run; %.2fs")
    :format(s.fetched, s.with_data, s.failed, s.blocked, s.resumed, cfg.output, s.skipped_limit, s.elapsed))
  return s.failed == 0 and 0 or 1
end

if ... == "--as-module" then return M end
return main(arg)
