-- lua/cli_get.lua: `luafetch get`, the seed's main.py. Fetches the URLs given on
-- the command line with the fetcher and prints one line per URL, in the order
-- given, as results come in (text, or JSON lines with --json). Returns the
-- exit status: 0 all succeeded, 1 any failed, 2 bad usage.

local fetcher = require "fetcher"

local M = {}

M.USAGE = [[
usage: luafetch get [options] URL...

Fetch every URL concurrently (with retries) and print one line per URL.

options:
  -c, --concurrency N   requests in flight at most (MAX_CONCURRENT, 100)
  --timeout S           seconds per attempt (HTTP_TIMEOUT, 30)
  --retries N           retries after the first attempt (MAX_RETRIES, 3)
  --backoff F           backoff factor: pauses of F*2^(n-1)s (BACKOFF_FACTOR, 1.5)
  --json                print JSON lines instead of text
  -h, --help            show this help

exit status: 0 every URL succeeded (2xx/3xx), 1 any failed, 2 bad usage
]]

---@class GetOptions
---@field urls string[]
---@field json boolean
---@field help boolean
---@field max_concurrent integer|nil
---@field timeout number|nil
---@field max_retries integer|nil
---@field backoff_factor number|nil

-- option name → { field, parser description, parse function }
local VALUE_OPTIONS = {
  ["-c"] = "max_concurrent", ["--concurrency"] = "max_concurrent",
  ["--timeout"] = "timeout", ["--retries"] = "max_retries",
  ["--backoff"] = "backoff_factor",
}

local PARSE = {
  max_concurrent = { "a positive integer", function(n) return n >= 1 and n == math.floor(n) end },
  timeout = { "a positive number", function(n) return n > 0 and n < math.huge end },
  max_retries = { "a non-negative integer", function(n) return n >= 0 and n == math.floor(n) end },
  backoff_factor = { "a non-negative number", function(n) return n >= 0 and n < math.huge end },
}

---@param name string   the option as typed
---@param field string
---@param text string|nil
---@return number|nil value
---@return string|nil err
local function parse_value(name, field, text)
  if text == nil then return nil, name .. " needs a value" end
  local what, ok = PARSE[field][1], PARSE[field][2]
  local n = text:match("^%d*%.?%d+$") and tonumber(text) or text:match("^%d+%.$") and tonumber(text)
  if not n or not ok(n) then
    return nil, string.format("%s must be %s, got '%s'", name, what, text)
  end
  return math.tointeger(n) or n
end

--- Parse the arguments after `get`.
---@param args string[]
---@return GetOptions|nil opts
---@return string|nil err  a usage error
function M.parse_args(args)
  local opts = { urls = {}, json = false, help = false }
  local i = 1
  local only_urls = false
  while i <= #args do
    local arg = args[i]
    if only_urls or arg:sub(1, 1) ~= "-" or arg == "-" then
      opts.urls[#opts.urls + 1] = arg
    elseif arg == "--" then
      only_urls = true
    elseif arg == "-h" or arg == "--help" then
      opts.help = true
    elseif arg == "--json" then
      opts.json = true
    else
      local name, inline = arg:match("^(%-%-[%w-]+)=(.*)$")
      if not name then
        name, inline = arg:match("^(%-c)(%d.*)$") -- -c10
      end
      name = name or arg
      local field = VALUE_OPTIONS[name]
      if not field then return nil, "unknown option " .. arg end
      local text = inline
      if text == nil then
        i = i + 1
        text = args[i]
      end
      local value, err = parse_value(name, field, text)
      if not value then return nil, err end
      opts[field] = value
    end
    i = i + 1
  end
  if not opts.help and #opts.urls == 0 then return nil, "no URL given" end
  return opts
end

---@param value number|nil
---@return string
local function seconds(value)
  return string.format("%.3fs", value or 0)
end

--- The text line of a result: "200 0.012s 1234B URL" or "ERR kind 0.5s URL: message".
---@param url string
---@param result FetchResult
---@return string
function M.text_line(url, result)
  local retries = result.attempts and result.attempts > 1
    and string.format(" (%d attempts)", result.attempts) or ""
  if result.status_code then
    return string.format("%d %s %dB %s%s", result.status_code,
      seconds(result.elapsed), result.bytes or 0, url, retries)
  end
  return string.format("ERR %s %s %s: %s%s", result.kind or "error",
    seconds(result.elapsed), url, result.error or "", retries)
end

--- The JSON line of a result (keys always present; null when absent).
---@param url string
---@param result FetchResult
---@return string
function M.json_line(url, result)
  local cjson = require "cjson"
  local function orNull(v) if v == nil then return cjson.null end return v end
  return require("plugins.jsonl").encode({
    url = url, success = result.success, status_code = orNull(result.status_code),
    elapsed = math.floor((result.elapsed or 0) * 1e6 + 0.5) / 1e6,
    bytes = result.bytes or 0, attempts = result.attempts or 0,
    error = orNull(result.error), kind = orNull(result.kind),
  })
end

--- Run `luafetch get`; `io` streams can be replaced for tests.
---@param args string[]
---@param streams? { stdout?: file*, stderr?: file* }
---@return integer status
function M.main(args, streams)
  local stdout = streams and streams.stdout or io.stdout
  local stderr = streams and streams.stderr or io.stderr
  local opts, err = M.parse_args(args or {})
  if not opts then
    stderr:write("luafetch get: ", err, "\n", "try 'luafetch get --help'\n")
    return 2
  end
  if opts.help then
    stdout:write(M.USAGE)
    return 0
  end
  local f = fetcher.new{
    max_concurrent = opts.max_concurrent, timeout = opts.timeout,
    max_retries = opts.max_retries, backoff_factor = opts.backoff_factor,
    keep_body = false,
  }
  local format = opts.json and M.json_line or M.text_line
  local pending, next_to_print, failed = {}, 1, 0
  local stats = f:each(opts.urls, function(url, result, index)
    if not result.success then failed = failed + 1 end
    pending[index] = format(url, result)
    while pending[next_to_print] do
      stdout:write(pending[next_to_print], "\n")
      pending[next_to_print] = nil
      next_to_print = next_to_print + 1
    end
  end)
  stdout:flush()
  if not opts.json then
    stderr:write(string.format("%d URL(s): %d ok, %d failed in %.3fs\n",
      stats.count, stats.count - failed, failed, stats.elapsed))
  end
  return failed == 0 and 0 or 1
end

return M
