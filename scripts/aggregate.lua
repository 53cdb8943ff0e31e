-- aggregate.lua — fetch several JSON APIs at once, merge them into one JSON document, say which
-- sources failed and why, and run checks that decide the exit status (like k6 checks).
--
-- usage: luafetch run aggregate [options] [NAME=URL ...]      (--help lists the options)
--
--   --config FILE    a Lua file returning settings that replace those of CONFIG below
--                    (see sources.example.lua beside this script; a relative name not found in
--                    the current folder is looked up beside this script)
--   --base URL       prefix for source URLs that start with "/" (e.g. http://127.0.0.1:8080)
--   --out FILE       write the document there (default "-": stdout)
--   --compact        one line of JSON instead of indented JSON
--   --timeout S  --retries N  --max-concurrent N
--   NAME=URL         a source (given sources replace CONFIG.sources)
--
-- The document:
--   { generated_at, ok, elapsed,
--     sources = { NAME = { url, ok, status, elapsed, attempts, error, kind, optional } },
--     failed  = [ NAME ... ],                     -- sources that failed, with the reason above
--     data    = { NAME = decoded JSON or null },  -- or what CONFIG.merge made of it
--     checks  = [ { name, ok, message } ] }
-- A source fails on a transport error, a non-2xx status (after retries), a body that is not
-- JSON, or an error in its `pick` function.
--
-- Exit status: 0 when every required source answered and every check passed; 1 otherwise;
-- 2 on bad usage.
local fetcher = require "fetcher"
local task = require "task"
local cjson = require "cjson.safe"
local argparse = require "argparse"

-- the folder of this script: example files are looked up beside it
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."

local CONFIG = {
  base_url = "http://127.0.0.1:8080",
  sources = {
    -- name: key in the document; url: absolute, or "/path" under base_url; optional: its failure
    -- does not fail the run; pick(data): keep part of the answer; also method, headers, body,
    -- json, timeout as for http.request
    { name = "users", url = "/api/users" },
    { name = "orders", url = "/api/orders", pick = function(data) return data.orders end },
    { name = "inventory", url = "/api/inventory", optional = true },
  },
  -- merge(data, doc) -> the document's `data` (data: name -> value, nil for a failed source);
  -- nil keeps one entry per source
  merge = nil,
  -- each check: name, and expr(doc) returning true, or false / nil [, message]; an error fails it
  checks = {
    { name = "required sources answered", expr = function(doc)
        for _, name in ipairs(doc.failed) do
          if not doc.sources[name].optional then return false, name .. ": " .. doc.sources[name].error end
        end
        return true
      end },
    { name = "every source answered within 1 s", expr = function(doc)
        for name, s in pairs(doc.sources) do
          if s.elapsed > 1 then return false, ("%s took %.2fs"):format(name, s.elapsed) end
        end
        return true
      end },
  },
  output = "-",
  pretty = true,
  timeout = 5,           -- seconds per attempt
  retries = 1,           -- after timeouts, connection failures, 429 and 5xx (GET only)
  max_concurrent = 10,
  headers = nil,         -- sent with every request, e.g. { Authorization = "Bearer ..." }
}

local M = {} -- the functions below, returned to specs that load this file with "--as-module"

local function usage_error(message)
  error({ exit_code = 2, message = "aggregate.lua: " .. message }, 0)
end

---------------------------------------------------------------------------
-- JSON output (keys sorted, so documents diff well)
---------------------------------------------------------------------------

--- Marks a table that is written as a JSON array even when empty.
local ARRAY = {}

local function is_array(t)
  if getmetatable(t) == ARRAY then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function encode_scalar(v)
  local s, err = cjson.encode(v)
  if not s then error("cannot write JSON: " .. tostring(err), 0) end
  return (s:gsub("\\/", "/"))
end

---JSON text of a Lua value: indented by two spaces when pretty, object keys sorted.
---@param value any
---@param pretty boolean
---@return string
function M.encode(value, pretty, indent)
  indent = indent or ""
  if type(value) ~= "table" then return encode_scalar(value) end
  local inner = indent .. "  "
  local nl, sep = pretty and "\n" or "", pretty and ": " or ":"
  local parts = {}
  if is_array(value) then
    if #value == 0 then return "[]" end
    for i = 1, #value do parts[i] = (pretty and inner or "") .. M.encode(value[i], pretty, inner) end
    return "[" .. nl .. table.concat(parts, "," .. nl) .. nl .. (pretty and indent or "") .. "]"
  end
  local keys = {}
  for k in pairs(value) do keys[#keys + 1] = tostring(k) end
  if #keys == 0 then return "{}" end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local v = value[k]
    if v == nil then v = value[tonumber(k)] end
    parts[i] = (pretty and inner or "") .. encode_scalar(k) .. sep .. M.encode(v, pretty, inner)
  end
  return "{" .. nl .. table.concat(parts, "," .. nl) .. nl .. (pretty and indent or "") .. "}"
end

---------------------------------------------------------------------------
-- Fetch, merge, check
---------------------------------------------------------------------------

local function round(seconds)
  return math.floor(seconds * 1e6 + 0.5) / 1e6
end

local REQUEST_FIELDS = { "method", "headers", "body", "json", "timeout" }

---Fetches every source and builds the document (checks not yet run).
---@param cfg table settings as CONFIG
---@return table doc
function M.collect(cfg)
  local started = task.now()
  -- its own report says how the sources went: no fetcher summary line above it
  local f = fetcher.new{ max_concurrent = cfg.max_concurrent, timeout = cfg.timeout,
                         max_retries = cfg.retries, backoff_factor = 0.2, headers = cfg.headers,
                         summary = false }
  local entries = {}
  for i, src in ipairs(cfg.sources) do
    local url = src.url
    if type(url) == "string" and url:sub(1, 1) == "/" then url = cfg.base_url:gsub("/+$", "") .. url end
    local entry = { url = url, key = src.name }
    for _, k in ipairs(REQUEST_FIELDS) do entry[k] = src[k] end
    entries[i] = entry
  end
  local results = f:fetch_urls(entries)

  local doc = {
    generated_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
    sources = {}, data = {}, failed = setmetatable({}, ARRAY),
  }
  local values = {} -- name -> decoded value, nil when the source failed (what merge gets)
  for i, src in ipairs(cfg.sources) do
    local r = results[src.name]
    local info = { url = entries[i].url, status = r.status_code, elapsed = round(r.elapsed),
                   attempts = r.attempts, optional = src.optional or false }
    local value, err, kind
    if not r.success or (r.status_code and r.status_code >= 300) then
      err, kind = r.error or ("HTTP " .. tostring(r.status_code)), r.kind or "status"
    else
      value, err = cjson.decode(r.body or "")
      if value == nil then
        err, kind = "not JSON: " .. tostring(err), "json"
      elseif src.pick then
        local ok, picked = pcall(src.pick, value)
        if ok then value = picked else value, err, kind = nil, "pick failed: " .. tostring(picked), "pick" end
      end
    end
    info.ok = err == nil
    info.error, info.kind = err, kind
    doc.sources[src.name] = info
    values[src.name] = value
    doc.data[src.name] = value == nil and cjson.null or value -- failed: null in the JSON
    if err then doc.failed[#doc.failed + 1] = src.name end
  end
  if cfg.merge then
    local ok, merged = pcall(cfg.merge, values, doc)
    if not ok then error("merge failed: " .. tostring(merged), 0) end
    doc.data = merged
  end
  doc.elapsed = round(task.now() - started)
  return doc
end

---Runs the checks on doc; sets doc.checks and doc.ok. Returns the number of failed checks.
---@param doc table
---@param checks table[] { name=, expr=function(doc) }
---@return integer failed
function M.run_checks(doc, checks)
  doc.checks = setmetatable({}, ARRAY)
  local failed = 0
  for i, check in ipairs(checks or {}) do
    local ok, passed, message = pcall(check.expr, doc)
    if not ok then
      passed, message = false, "error: " .. tostring(passed)
    end
    passed = passed and true or false
    if not passed then failed = failed + 1 end
    doc.checks[i] = { name = check.name or ("check " .. i), ok = passed,
                      message = (not passed and message ~= nil and message ~= "") and tostring(message) or nil }
  end
  local required_failed = false
  for _, name in ipairs(doc.failed) do
    if not doc.sources[name].optional then required_failed = true end
  end
  doc.ok = failed == 0 and not required_failed
  return failed
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
  local p = argparse("luafetch run aggregate",
    "Fetch several JSON APIs at once, merge them into one JSON document, say which sources "
    .. "failed and why, and run checks that decide the exit status.",
    "Settings to copy and edit: " .. HERE .. "/sources.example.lua (luafetch run aggregate "
    .. "--config sources.example.lua --base http://127.0.0.1:8080).\n"
    .. "Exit status: 0 every required source answered and every check passed, 1 otherwise, "
    .. "2 bad usage.")
  p:add_help(false)
  p:help_max_width(80)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("sources", "NAME=URL: a source (given sources replace the config's)."):args("*")
  p:option("--config", "Lua file returning settings (a relative name is also looked up beside this script).")
    :argname("<file>")
  p:option("--base", "Prefix for source URLs that start with /."):argname("<url>"):target("base_url")
  p:option("--out", "Write the document there (default -: stdout)."):argname("<file>"):target("output")
  p:flag("--compact", "One line of JSON instead of indented JSON.")
  p:option("--timeout", "Seconds per attempt (5)."):argname("<s>"):convert(non_negative("--timeout"))
  p:option("--retries", "Retries after timeouts, connection failures, 429 and 5xx (1)."):argname("<n>")
    :convert(non_negative("--retries"))
  p:option("--max-concurrent", "Sources fetched at once (10)."):argname("<n>"):convert(non_negative("--max-concurrent"))
  return p
end

---Settings from CONFIG, a --config file and the arguments; nil when --help was asked for (and
---printed).
---@param args string[]
---@return table|nil
function M.settings(args)
  local p = M.parser()
  local ok, opts = p:pparse(args)
  if not ok then usage_error(opts .. " (try --help)") end
  if opts.help then
    io.stdout:write(p:get_help(), "\n")
    return nil
  end
  local cfg = {}
  for k, v in pairs(CONFIG) do cfg[k] = v end
  if opts.config then
    local path = M.find_file(opts.config)
    local chunk, err = loadfile(path)
    if not chunk then usage_error(err) end
    local t = chunk()
    if type(t) ~= "table" then usage_error(path .. " must return a table of settings") end
    for k, v in pairs(t) do cfg[k] = v end
  end
  for _, k in ipairs{ "base_url", "output", "timeout" } do
    if opts[k] ~= nil then cfg[k] = opts[k] end
  end
  if opts.retries then cfg.retries = math.tointeger(opts.retries) or opts.retries end
  if opts.max_concurrent then cfg.max_concurrent = math.tointeger(opts.max_concurrent) or opts.max_concurrent end
  if opts.compact then cfg.pretty = false end
  local given = {}
  for _, a in ipairs(opts.sources) do
    local name, url = a:match("^([%w_%-%.]+)=(.+)$")
    if not name then usage_error("expected NAME=URL, got '" .. a .. "'") end
    given[#given + 1] = { name = name, url = url }
  end
  if #given > 0 then cfg.sources = given end
  if type(cfg.sources) ~= "table" or #cfg.sources == 0 then usage_error("no sources") end
  local names = {}
  for n, src in ipairs(cfg.sources) do
    if type(src.name) ~= "string" or type(src.url) ~= "string" then
      usage_error("source " .. n .. " needs a name and a url")
    end
    if names[src.name] then usage_error("two sources are named '" .. src.name .. "'") end
    names[src.name] = true
  end
  if not cfg.max_concurrent or cfg.max_concurrent < 1 then usage_error("max_concurrent must be at least 1") end
  return cfg
end

local function main(args)
  local cfg = M.settings(args)
  if not cfg then return 0 end
  local doc = M.collect(cfg)
  M.run_checks(doc, cfg.checks)

  local text = M.encode(doc, cfg.pretty) .. "\n"
  if cfg.output == "-" then
    io.stdout:write(text)
    io.stdout:flush()
  else
    local f, err = io.open(cfg.output, "w")
    if not f then usage_error("cannot write " .. cfg.output .. ": " .. tostring(err)) end
    f:write(text)
    f:close()
  end

  local log = io.stderr
  log:write(("aggregate: %d sources in %.3fs, %d failed\n"):format(#cfg.sources, doc.elapsed, #doc.failed))
  for _, name in ipairs(doc.failed) do
    local s = doc.sources[name]
    log:write(("  %-8s %s: %s: %s\n"):format(s.optional and "optional" or "FAILED", name, s.kind, s.error))
  end
  for _, c in ipairs(doc.checks) do
    log:write(("  %s  %s%s\n"):format(c.ok and "PASS" or "FAIL", c.name, c.message and (" (" .. c.message .. ")") or ""))
  end
  if cfg.output ~= "-" then log:write("  written to ", cfg.output, "\n") end
  return doc.ok and 0 or 1
end

if ... == "--as-module" then return M end
return main(arg)
