-- lua/cli_get.lua: `luafetch get`, a small curl (DESIGN.md "command line: get"). One URL: the body
-- goes to stdout (or -o FILE), with curl's -i, -v, -w and -f. Several URLs (or @FILE, or - for
-- stdin): one line per URL in the order given, `STATUS SIZE SECONDS URL` or
-- `ERR KIND MESSAGE URL` (or --json-lines), a progress bar on a terminal, a summary line and
-- the --threshold checks on stderr. Options are parsed with lua-argparse. Returns the exit status:
-- 0 every URL succeeded, 1 any failed (or a threshold did), 2 bad usage.

local argparse = require "argparse"
local http = require "http"
local task = require "task"
local retry = require "plugins.retry"
local progress = require "plugins.progress"
local logger = require "plugins.logger"
local thresholds = require "thresholds"

local M = {}

M.DEFAULT_CONCURRENCY = 100
M.DEFAULT_BACKOFF = 1.5

---------------------------------------------------------------------------
-- Options
---------------------------------------------------------------------------

---A converter for option `name`: a number `ok` accepts, or an error naming the option.
---@param what string
---@param ok fun(n: number): boolean
---@param integer boolean
local function number_of(what, ok, integer)
  return function(name)
    return function(text)
      local n = text:match("^%d*%.?%d+$") and tonumber(text)
      if n and integer then n = math.tointeger(n) end
      if not n or not ok(n) then
        return nil, string.format("%s must be %s, got '%s'", name, what, text)
      end
      return n
    end
  end
end

local positive_integer = number_of("a positive integer", function(n) return n >= 1 end, true)
local non_negative_integer = number_of("a non-negative integer", function(n) return n >= 0 end, true)
local positive_number = number_of("a positive number", function(n) return n > 0 and n < math.huge end, false)
local non_negative_number = number_of("a non-negative number", function(n) return n >= 0 and n < math.huge end, false)

M.EPILOG = [[
One URL: the body goes to stdout (or -o FILE), and any response exits 0 unless -f.
Several URLs, @FILE or -: one line per URL, in the order given,
  STATUS SIZE SECONDS URL    or    ERR KIND MESSAGE URL
(or the -w format, or --json-lines), a progress bar on a terminal, and a summary
line on stderr; a status of 400 or more fails a URL (--no-fail: it does not).

Defaults from the environment: MAX_CONCURRENT (-c), HTTP_TIMEOUT (--timeout),
MAX_RETRIES (--retries, else 0), BACKOFF_FACTOR (--backoff).
NO_COLOR set: no colour even on a terminal.

-w variables (curl's): %{http_code} %{response_code} %{time_namelookup}
  %{time_connect} %{time_appconnect} %{time_starttransfer} %{time_total}
  %{size_download} %{num_redirects} %{url_effective} %{http_version}
  %{content_type} %{method} %{errormsg} %{exitcode} %header{NAME}; \n \t \r

Thresholds: METRIC OP NUMBER with OP < <= > >= == != and METRIC p50 p90 p95 p99
(any pN), min max avg med (seconds; 250ms works too), success_rate,
failure_rate, count, failed, succeeded, reuse_rate, rps.

Exit status: 0 every URL succeeded and every threshold passed, 1 otherwise,
2 bad usage.

Examples:
  luafetch get https://example.org/
  luafetch get -i -H 'Accept: application/json' https://api.example.org/items
  luafetch get --json '{"name":"x"}' https://api.example.org/items
  luafetch get -F name=report -F file=@report.pdf https://example.org/upload
  luafetch get -o page.html -w '%{http_code} %{time_total}\n' https://example.org/
  luafetch get -c 20 --threshold 'p95<0.5' --threshold 'success_rate>0.99' @urls.txt]]

--- The argument parser of `luafetch get`.
---@return table parser (lua-argparse)
function M.parser()
  local p = argparse("luafetch get", "Fetch URLs: a small curl for workflows.", M.EPILOG)
  p:add_help(false)
  p:help_max_width(80)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("url", "A URL, @FILE (one URL a line, # comments) or - (URLs on stdin)."):args("*")
  p:group("Request",
    p:option("-X --request", "HTTP method (default GET; POST with a body)."):argname("<method>"),
    p:option("-H --header", "A request header (repeatable)."):argname("<header>"):count("*"),
    p:option("-d --data", "Request body, or @FILE (CR and LF dropped), form content type."):count("*"),
    p:option("--data-binary", "Request body, or @FILE, sent as it is."):argname("<data>"):count("*"),
    p:option("--json", "JSON request body, or @FILE; sets Content-Type and Accept."):count("*"),
    p:option("-F --form", "Multipart field: name=value, name=@FILE[;type=T][;filename=N], name=<FILE.")
      :argname("<name=value>"):count("*"),
    p:option("-A --user-agent", "User-Agent header."):argname("<agent>"),
    p:flag("-I --head", "Send HEAD and show the response head."),
    p:flag("-k --insecure", "Do not verify the server certificate."),
    p:option("--cacert", "PEM bundle of CAs to trust instead of the system's."):argname("<file>"),
    p:option("-x --proxy", "Proxy URL: http://, socks5:// or socks5h://."):argname("<url>"),
    p:option("--timeout -m --max-time", "Seconds per attempt (HTTP_TIMEOUT, 30).")
      :argname("<seconds>"):convert(positive_number("--timeout")),
    p:option("--max-redirs", "Redirects to follow (default 5; 0: none)."):argname("<n>")
      :convert(non_negative_integer("--max-redirs")),
    p:flag("-L --location", "Accepted for curl's sake: redirects are always followed.")
  )
  p:group("Output",
    p:option("-o --output", "Write the body to FILE as it arrives (one URL)."):argname("<file>"),
    p:flag("-i --include", "Print the response head before the body (one URL)."),
    p:option("-w --write-out", "Print FORMAT after the transfer (curl's variables), or @FILE; with several URLs it replaces the line.")
      :argname("<format>"),
    p:flag("--json-lines", "One JSON object per URL: url, status, size, timings, attempts, or error and kind."),
    p:flag("-s --silent", "No progress bar, summary or error messages (failed thresholds still print)."),
    p:flag("-v --verbose", "Show the request and response heads and timings on stderr.")
  )
  p:group("Many URLs",
    p:option("-c --concurrency", "Requests in flight at most (MAX_CONCURRENT, 100)."):argname("<n>")
      :convert(positive_integer("-c")),
    p:option("--retries", "Retries after a timeout, connection failure, 429 or 5xx (MAX_RETRIES, else 0).")
      :argname("<n>"):convert(non_negative_integer("--retries")),
    p:option("--backoff", "Backoff factor: pauses of F*2^(n-1) s (BACKOFF_FACTOR, 1.5)."):argname("<f>")
      :convert(non_negative_number("--backoff")),
    p:flag("-f --fail", "A status of 400 or more fails the URL (default with several URLs)."),
    p:flag("--no-fail", "A status of 400 or more is a response like any other."),
    p:option("--threshold", "Pass/fail criterion such as p95<0.5 or success_rate>0.99 (repeatable).")
      :argname("<expr>"):count("*")
  )
  return p
end

M.USAGE = M.parser():get_help() .. "\n"

---@class GetOptions
---@field url string[]
---@field help boolean
---@field request string|nil
---@field header string[]
---@field data string[]
---@field data_binary string[]
---@field json string[]
---@field form string[]
---@field output string|nil
---@field include boolean
---@field write_out string|nil
---@field json_lines boolean
---@field silent boolean
---@field verbose boolean
---@field concurrency integer|nil
---@field timeout number|nil
---@field retries integer|nil
---@field backoff number|nil
---@field max_redirs integer|nil
---@field fail boolean
---@field no_fail boolean
---@field threshold string[]
---@field thresholds Threshold[]

--- Parse the arguments after `get`.
---@param args string[]
---@return GetOptions|nil opts
---@return string|nil err  a usage error
function M.parse_args(args)
  local ok, opts = M.parser():pparse(args)
  if not ok then return nil, opts end
  if opts.help then return opts end
  if #opts.url == 0 then return nil, "no URL given" end
  local list, err = thresholds.parse(opts.threshold)
  if not list then return nil, err end
  opts.thresholds = list
  local bodies = (#opts.data + #opts.data_binary > 0 and 1 or 0) + (#opts.json > 0 and 1 or 0)
    + (#opts.form > 0 and 1 or 0)
  if bodies > 1 then return nil, "give one of -d/--data-binary, --json or -F, not several" end
  if opts.head and bodies > 0 then return nil, "-I sends no body: drop -d, --json or -F" end
  if opts.fail and opts.no_fail then return nil, "give -f or --no-fail, not both" end
  return opts
end

---------------------------------------------------------------------------
-- Reading files and URLs
---------------------------------------------------------------------------

---@param path string  a path, or "-" for stdin
---@return string|nil text
---@return string|nil err
-- Writes head, then body (a string, or a function giving chunks: nil at the end, or nil and
-- the reason) to f: true, or nil and the reason.
local function write_all(f, head, body)
  local ok, err = f:write(head)
  if not ok then return nil, err end
  if type(body) == "string" then return f:write(body) end
  while true do
    local chunk, why = body()
    if not chunk then
      if why then return nil, why end
      return true
    end
    ok, err = f:write(chunk)
    if not ok then return nil, err end
  end
end

-- Writes a whole file and checks every step: true, or nil and the reason.
local function write_file(path, head, body)
  local f, err = io.open(path, "wb")
  if not f then return nil, err end
  local ok, werr = write_all(f, head, body)
  local closed, cerr = f:close()
  if not ok then return nil, werr end
  if not closed then return nil, cerr end
  return true
end

---Writes head and body (a string, or a function giving its chunks as they arrive) to path:
---through PATH.part renamed into place, so nothing half-written is ever left under PATH, except
---for a device or FIFO (/dev/null, /dev/stdout), which is written in place: renaming over it
---would replace it with a regular file.
function M.write_output(path, head, body)
  if require("_http").path_kind(path) == "other" then
    return write_file(path, head, body)
  end
  local part = path .. ".part"
  local ok, err = write_file(part, head, body)
  if ok then
    ok, err = os.rename(part, path)
  end
  if not ok then
    os.remove(part)
    return nil, err
  end
  return true
end

local function read_all(path)
  if path == "-" then return io.stdin:read("a") or "" end
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local text = f:read("a")
  f:close()
  return text
end

--- The URLs of the arguments: `@FILE` and `-` give one URL a line (blank lines and lines
--- starting with # are skipped). `from_list` is true when any came from a file or stdin.
---@param args string[]
---@return string[]|nil urls
---@return string|boolean err_or_from_list
function M.expand_urls(args)
  local urls, from_list = {}, false
  for _, a in ipairs(args) do
    local path = a == "-" and "-" or a:match("^@(.+)$")
    if path then
      from_list = true
      local text, err = read_all(path)
      if not text then return nil, "cannot read URLs from " .. path .. ": " .. tostring(err) end
      for line in text:gmatch("[^\r\n]+") do
        local url = line:match("^%s*(.-)%s*$")
        if url ~= "" and url:sub(1, 1) ~= "#" then urls[#urls + 1] = url end
      end
    else
      urls[#urls + 1] = a
    end
  end
  return urls, from_list
end

--- A -d/--data-binary/--json value: the text, or the contents of @FILE (@- is stdin).
---@param value string
---@param strip_newlines boolean  -d @FILE drops CR and LF, as curl does
---@return string|nil
---@return string|nil err
local function data_value(value, strip_newlines)
  local path = value:match("^@(.+)$")
  if not path then return value end
  local text, err = read_all(path)
  if not text then return nil, "cannot read " .. path .. ": " .. tostring(err) end
  if strip_newlines then text = text:gsub("[\r\n]", "") end
  return text
end

---------------------------------------------------------------------------
-- Multipart bodies (-F)
---------------------------------------------------------------------------

local CONTENT_TYPES = {
  txt = "text/plain", html = "text/html", htm = "text/html", css = "text/css", csv = "text/csv",
  json = "application/json", xml = "application/xml", js = "application/javascript",
  pdf = "application/pdf", png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg",
  gif = "image/gif", svg = "image/svg+xml", zip = "application/zip", gz = "application/gzip",
}

--- One -F value as a field: { name=, value= } or { name=, file=, filename=, content_type= }.
---@param spec string
---@return table|nil field
---@return string|nil err
function M.form_field(spec)
  local name, rest = spec:match("^([^=]+)=(.*)$")
  if not name then return nil, "-F wants name=value, name=@FILE or name=<FILE, got '" .. spec .. "'" end
  local first = rest:sub(1, 1)
  if first ~= "@" and first ~= "<" then return { name = name, value = rest } end
  local path, params = rest:sub(2):match("^([^;]*)(.*)$")
  local field = { name = name }
  for key, value in params:gmatch(";%s*(%a+)=([^;]*)") do
    if key == "type" then field.content_type = value
    elseif key == "filename" then field.filename = value
    else return nil, "-F: unknown parameter '" .. key .. "' (type, filename)" end
  end
  if first == "<" then -- the file's contents as a plain value
    local text, err = read_all(path)
    if not text then return nil, "-F: cannot read " .. path .. ": " .. tostring(err) end
    field.value, field.filename = text, nil
    return field
  end
  local f = path ~= "-" and io.open(path, "rb")
  if not f then return nil, "-F: cannot read " .. path end
  f:close()
  field.file = path
  field.filename = field.filename or path:match("([^/]*)$")
  field.content_type = field.content_type -- guessed from the name sent, as curl does
    or CONTENT_TYPES[(field.filename:match("%.(%w+)$") or ""):lower()] or "application/octet-stream"
  return field
end

-- RFC 7578 4.2: quotes and line breaks in a disposition parameter are percent-encoded.
local function disposition_quote(s)
  return (s:gsub('[\r\n"]', function(c) return string.format("%%%02X", c:byte()) end))
end

--- A multipart/form-data body built in memory from fields (for an http module without the
--- `multipart` option). Returns the body and the Content-Type header value.
---@param fields table[]
---@param boundary? string
---@return string|nil body
---@return string content_type_or_err
function M.multipart_body(fields, boundary)
  boundary = boundary or string.format("------------------------luafetch%08x%08x",
    math.random(0, 0x7fffffff), math.random(0, 0x7fffffff))
  local parts = {}
  for _, field in ipairs(fields) do
    local value, head = field.value, 'Content-Disposition: form-data; name="'
      .. disposition_quote(field.name) .. '"'
    if field.file then
      local text, err = read_all(field.file)
      if not text then return nil, "-F: cannot read " .. field.file .. ": " .. tostring(err) end
      value = text
      head = head .. '; filename="' .. disposition_quote(field.filename or "") .. '"\r\nContent-Type: '
        .. (field.content_type or "application/octet-stream")
    elseif field.content_type then
      head = head .. "\r\nContent-Type: " .. field.content_type
    end
    parts[#parts + 1] = "--" .. boundary .. "\r\n" .. head .. "\r\n\r\n" .. value .. "\r\n"
  end
  parts[#parts + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(parts), "multipart/form-data; boundary=" .. boundary
end

---------------------------------------------------------------------------
-- The request
---------------------------------------------------------------------------

local supported = {}

--- Does this build's http module take option `name`? Asked once with an empty URL, which every
--- build refuses before any I/O: "unknown option" means no.
---@param name string
---@return boolean
function M.http_supports(name)
  if supported[name] == nil then
    local _, err = http.request{ url = "", [name] = false }
    supported[name] = not tostring(err):find("unknown option '" .. name .. "'", 1, true)
  end
  return supported[name]
end

--- The request options shared by every URL, from the command line.
---@param o GetOptions
---@return table|nil base  method, headers, body, multipart, timeout, verify, ca_file, max_redirects, proxy
---@return string|nil err  a usage error
function M.request_options(o)
  local headers, lower = {}, {}
  for _, h in ipairs(o.header) do
    local name, value = h:match("^%s*([^:%s]+)%s*:%s*(.-)%s*$")
    if not name then return nil, "-H wants 'Name: value', got '" .. h .. "'" end
    local key = lower[name:lower()]
    if key then
      headers[key] = headers[key] .. ", " .. value -- a repeated header: one line, values joined
    else
      lower[name:lower()] = name
      headers[name] = value
    end
  end
  local function set_default(name, value)
    if not lower[name:lower()] then
      lower[name:lower()] = name
      headers[name] = value
    end
  end
  if o.user_agent then
    local key = lower["user-agent"] or "User-Agent"
    lower["user-agent"] = key
    headers[key] = o.user_agent
  end
  local base = { method = o.request and o.request:upper() or nil, timeout = o.timeout,
                 verify = not o.insecure, ca_file = o.cacert, max_redirects = o.max_redirs }
  local body_method
  if #o.data + #o.data_binary > 0 then
    local parts = {}
    for _, d in ipairs(o.data) do
      local v, err = data_value(d, true)
      if not v then return nil, err end
      parts[#parts + 1] = v
    end
    for _, d in ipairs(o.data_binary) do
      local v, err = data_value(d, false)
      if not v then return nil, err end
      parts[#parts + 1] = v
    end
    base.body = table.concat(parts, "&")
    set_default("Content-Type", "application/x-www-form-urlencoded")
    body_method = "POST"
  elseif #o.json > 0 then
    local parts = {}
    for _, d in ipairs(o.json) do
      local v, err = data_value(d, false)
      if not v then return nil, err end
      parts[#parts + 1] = v
    end
    base.body = table.concat(parts) -- curl concatenates repeated --json
    set_default("Content-Type", "application/json")
    set_default("Accept", "application/json")
    body_method = "POST"
  elseif #o.form > 0 then
    local fields = {}
    for _, spec in ipairs(o.form) do
      local field, err = M.form_field(spec)
      if not field then return nil, err end
      fields[#fields + 1] = field
    end
    if M.http_supports("multipart") then
      base.multipart = fields
    else
      -- this http module has no `multipart` option yet: the body is built here, in memory
      local body, ctype = M.multipart_body(fields)
      if not body then return nil, ctype end
      base.body = body
      headers[lower["content-type"] or "Content-Type"] = ctype
    end
    body_method = "POST"
  end
  if o.head then base.method = base.method or "HEAD" end
  base.method = base.method or body_method or "GET"
  if o.proxy then
    if not M.http_supports("proxy") then
      return nil, "--proxy needs the http module's proxy option, which this build does not have"
    end
    base.proxy = o.proxy
  end
  if next(headers) then base.headers = headers end
  return base
end

---@class Outcome
---@field url string
---@field res Response|nil
---@field err string|nil
---@field kind string|nil
---@field attempts integer
---@field elapsed number
---@field success boolean
---@field reused boolean

--- Fetch one URL under the retry policy; `on_retry(attempt, wait, res, err, kind)` is told of
--- each retry.
---@param url string
---@param base table
---@param policy RetryPolicy
---@param fail boolean  a status >= 400 fails the URL
---@param on_retry? fun(attempt: integer, wait: number, res: any, err: any, kind: string|nil)
---@return Outcome
function M.fetch(url, base, policy, fail, on_retry)
  local req = { url = url }
  for k, v in pairs(base) do req[k] = v end
  local started = task.now()
  local res, err, kind, attempts = policy:run(function() return http.request(req) end,
    { method = req.method, on_retry = on_retry })
  local outcome = { url = url, res = res, err = err, kind = kind, attempts = attempts,
                    elapsed = task.now() - started, reused = res and res.reused or false }
  outcome.success = res ~= nil and not (fail and res.status >= 400)
  if res and not outcome.success then
    outcome.kind = "status"
    outcome.err = ("HTTP %d %s"):format(res.status, res.reason or ""):gsub("%s+$", "")
  end
  return outcome
end

---------------------------------------------------------------------------
-- Output formats
---------------------------------------------------------------------------

---@param res Response|nil
---@return integer
local function size_of(res)
  if not res then return 0 end
  return res.size or (res.body and #res.body) or 0
end

--- The line of one URL: `STATUS SIZE SECONDS URL` or `ERR KIND MESSAGE URL`.
---@param o Outcome
---@return string
function M.text_line(o)
  if o.res then
    return string.format("%d %d %.3f %s", o.res.status, size_of(o.res), o.elapsed, o.url)
  end
  local message = tostring(o.err or ""):gsub("[\r\n]+", " ")
  return string.format("ERR %s %s %s", o.kind or "error", message, o.url)
end

local JSON_KEYS = { "url", "status", "size", "timings", "attempts", "elapsed", "final_url", "error", "kind" }
local TIMING_KEYS = { "dns", "connect", "tls", "ttfb", "total" }

--- A JSON object with its keys in the order given (lines that diff and read well).
---@param record table
---@param keys string[]
---@return string
local function ordered_json(record, keys)
  local encode = require("plugins.jsonl").encode
  local parts = {}
  for _, k in ipairs(keys) do
    local v = record[k]
    if v ~= nil then
      if k == "timings" then v = ordered_json(v, TIMING_KEYS) else v = encode(v) end
      parts[#parts + 1] = encode(k) .. ":" .. v
    end
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- The JSON line of one URL: url, status, size, timings (the names of res.timings), attempts,
--- elapsed, final_url; error and kind when it failed.
---@param o Outcome
---@return string
function M.json_line(o)
  local record = { url = o.url, attempts = o.attempts,
                   elapsed = math.floor(o.elapsed * 1e6 + 0.5) / 1e6 }
  if o.res then
    record.status = o.res.status
    record.size = size_of(o.res)
    record.timings = o.res.timings
    record.final_url = o.res.url
  end
  if not o.success then
    record.error = o.err
    record.kind = o.kind
  end
  return ordered_json(record, JSON_KEYS)
end

--- The response head as curl -i prints it.
---@param res Response
---@return string
function M.head_text(res)
  local lines = { string.format("HTTP/%s %d %s", res.version or "1.1", res.status, res.reason or "") }
  local names = {}
  for name in pairs(res.headers) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do lines[#lines + 1] = name .. ": " .. res.headers[name] end
  return table.concat(lines, "\r\n") .. "\r\n\r\n"
end

--- curl's timing points (seconds from the start) from res.timings' phase durations.
---@param t table
---@return table
local function curl_times(t)
  local dns, connect, tls = t.dns or 0, t.connect or 0, t.tls or 0
  return {
    time_namelookup = dns,
    time_connect = dns + connect,
    time_appconnect = tls > 0 and dns + connect + tls or 0,
    time_pretransfer = dns + connect + tls,
    time_starttransfer = t.ttfb or 0,
    time_total = t.total or 0,
  }
end

local ESCAPES = { n = "\n", t = "\t", r = "\r", ["\\"] = "\\" }

--- Expand a -w format for one outcome, as curl does. Unknown variables are reported once
--- through `warn` and expand to nothing.
---@param format string
---@param o Outcome
---@param exitcode integer
---@param warn? fun(msg: string)
---@return string
function M.write_out(format, o, exitcode, warn)
  local res = o.res
  local vars = {
    http_code = res and string.format("%03d", res.status) or "000",
    size_download = tostring(size_of(res)),
    num_redirects = tostring(res and res.redirects or 0),
    url_effective = res and res.url or o.url,
    http_version = res and (res.version or "1.1") or "0",
    content_type = res and res.headers["content-type"] or "",
    method = o.method or "GET",
    errormsg = (not o.success and o.err) or "",
    exitcode = tostring(exitcode),
    num_retries = tostring(math.max(0, (o.attempts or 1) - 1)),
  }
  vars.response_code = vars.http_code
  local times = curl_times(res and res.timings or {})
  if not res then times.time_total = o.elapsed end
  for k, v in pairs(times) do vars[k] = string.format("%.6f", v) end
  local out = format:gsub("\\(.)", function(c) return ESCAPES[c] or ("\\" .. c) end)
  out = out:gsub("%%(%b{})", function(braced)
    local name = braced:sub(2, -2)
    local v = vars[name]
    if v == nil and warn then warn("unknown --write-out variable: '" .. name .. "'") end
    return v or ""
  end)
  out = out:gsub("%%header(%b{})", function(braced)
    return res and res.headers[braced:sub(2, -2):lower()] or ""
  end)
  return (out:gsub("%%%%", "%%"))
end

---------------------------------------------------------------------------
-- Colour
---------------------------------------------------------------------------

local COLOURS = { ok = "32", redirect = "36", client = "33", bad = "31" }

--- The line with its first word coloured by outcome (only when `colour`).
---@param line string
---@param o Outcome
---@param colour boolean
---@return string
local function paint(line, o, colour)
  if not colour then return line end
  local status = o.res and o.res.status
  local c = not o.success and COLOURS.bad or status and status >= 400 and COLOURS.client
    or status and status >= 300 and COLOURS.redirect or COLOURS.ok
  local first, rest = line:match("^(%S+)(.*)$")
  if not first then return line end
  return "\27[" .. c .. "m" .. first .. "\27[0m" .. rest
end

---------------------------------------------------------------------------
-- Running
---------------------------------------------------------------------------

--- Defaults from the environment (a bad value raises {exit_code = 2}).
---@return table
local function env_defaults()
  return require("fetcher").env_defaults()
end

---@param o GetOptions
---@param env table
---@return RetryPolicy
local function policy_of(o, env)
  return retry.new{
    max_retries = o.retries or env.max_retries or 0,
    backoff_factor = o.backoff or env.backoff_factor or M.DEFAULT_BACKOFF,
  }
end

---@param o GetOptions
---@param stderr file*
---@return fun(msg: string)
local function error_writer(o, stderr)
  return function(msg)
    if not o.silent then stderr:write("luafetch get: ", msg, "\n") end
  end
end

--- Print failed thresholds (always, even with -s: they are why the run failed); true when all
--- passed.
---@param o GetOptions
---@param rec Recorder
---@param stderr file*
---@return boolean
local function check_thresholds(o, rec, stderr)
  if #o.thresholds == 0 then return true end
  local checks, ok = thresholds.evaluate(o.thresholds, rec:metrics())
  for _, line in ipairs(thresholds.report_lines(checks, o.silent)) do
    stderr:write(line, "\n")
  end
  return ok
end

--- One URL, curl's way: the body to stdout or -o, -i, -v, -w.
---@param url string
---@param o GetOptions
---@param base table
---@param policy RetryPolicy
---@param io_ table { stdout, stderr }
---@return integer status
local function run_one(url, o, base, policy, io_)
  local stdout, stderr = io_.stdout, io_.stderr
  local say = error_writer(o, stderr)
  local verbose = o.verbose and not o.silent
  if verbose then
    stderr:write("* ", base.method, " ", url, "\n")
    local names = {}
    for name in pairs(base.headers or {}) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do stderr:write("> ", name, ": ", base.headers[name], "\n") end
    if base.body then stderr:write("> (body: ", #base.body, " bytes)\n") end
  end
  local rec = thresholds.recorder()
  -- the body is taken as it arrives (to -o or stdout), never held whole in memory
  local streamed = not o.json_lines and not o.head
  if streamed then
    local copy = { stream = true }
    for k, v in pairs(base) do copy[k] = v end
    base = copy
  end
  local outcome = M.fetch(url, base, policy, o.fail, function(attempt, wait, res, err, kind)
    if res then res:close() end -- a streamed answer that is retried is not read
    if not o.silent then
      stderr:write(string.format("* retry %d/%d in %.2fs after %s\n", attempt, policy.max_retries,
        wait, res and ("HTTP " .. res.status) or (tostring(kind) .. ": " .. tostring(err))))
    end
  end)
  outcome.method = base.method
  rec:add(outcome)
  local res = outcome.res
  local status = outcome.success and 0 or 1
  if res and verbose then
    stderr:write("< ", (M.head_text(res):gsub("\r\n(.)", "\n< %1"):gsub("\r\n", "\n")))
    local t = res.timings
    stderr:write(string.format("* dns %s, connect %s, tls %s, first byte %s, total %s; %s; %d attempt(s)\n",
      thresholds.format_seconds(t.dns), thresholds.format_seconds(t.connect),
      thresholds.format_seconds(t.tls), thresholds.format_seconds(t.ttfb),
      thresholds.format_seconds(t.total), res.reused and "connection reused" or "new connection",
      outcome.attempts))
  end
  if o.json_lines then
    stdout:write(M.json_line(outcome), "\n")
  elseif res and outcome.success then
    local head = (o.include or o.head) and M.head_text(res) or ""
    local body = streamed and function() return res:read() end or res.body or ""
    if o.output and o.output ~= "-" then
      local ok, why = M.write_output(o.output, head, body)
      if not ok then
        res:close()
        say("cannot write " .. o.output .. ": " .. tostring(why))
        return 1
      end
    else
      local ok, why = write_all(stdout, head, body)
      if not ok then
        res:close()
        say(tostring(why) .. " (" .. url .. ")")
        return 1
      end
    end
  elseif res then
    res:close()
    say(string.format("%s: %s", outcome.err, url)) -- -f: no body, as curl
  else
    say(string.format("%s: %s (%s)", outcome.kind or "error", outcome.err or "failed", url))
  end
  if o.write_out then
    stdout:write(M.write_out(o.write_out, outcome, status, say))
  end
  if not check_thresholds(o, rec, stderr) then status = 1 end
  stdout:flush()
  return status
end

--- Several URLs: a line each, in order, as they finish (those after a slow one wait for it).
---@param urls string[]
---@param o GetOptions
---@param base table
---@param policy RetryPolicy
---@param concurrency integer
---@param io_ table { stdout, stderr, stdout_tty }
---@return integer status
local function run_many(urls, o, base, policy, concurrency, io_)
  local stdout, stderr = io_.stdout, io_.stderr
  local colour = io_.stdout_tty and progress.colour_enabled(1)
  local bar = progress.new{ total = #urls, mode = o.silent and "never" or nil, tty = io_.stderr_tty }
  local log = logger.get()
  local rec = thresholds.recorder()
  local fail = not o.no_fail
  local pending, next_to_print, failed = {}, 1, 0
  local function emit(line)
    if io_.stdout_tty then progress.print_above(stdout, line .. "\n")
    else stdout:write(line, "\n") end
  end
  local next_index = 0
  local function work()
    while next_index < #urls do
      next_index = next_index + 1
      local i, url = next_index, urls[next_index]
      local outcome = M.fetch(url, base, policy, fail, function(attempt, wait, res, err, kind)
        if not o.silent then
          log:info("retry %d/%d of %s in %.2fs after %s", attempt, policy.max_retries, url, wait,
            res and ("HTTP " .. res.status) or (tostring(kind) .. ": " .. tostring(err)))
        end
      end)
      outcome.method = base.method
      rec:add(outcome)
      if not outcome.success then failed = failed + 1 end
      bar.on_result(url, outcome)
      local line
      if o.json_lines then line = M.json_line(outcome)
      elseif o.write_out then
        line = M.write_out(o.write_out, outcome, outcome.success and 0 or 1):gsub("\n$", "")
      else line = paint(M.text_line(outcome), outcome, colour) end
      pending[i] = line
      while pending[next_to_print] do
        emit(pending[next_to_print])
        pending[next_to_print] = nil
        next_to_print = next_to_print + 1
      end
    end
  end
  bar.on_start{ total = #urls }
  local workers = {}
  for w = 1, math.min(concurrency, #urls) do workers[w] = task.spawn(work) end
  for _, t in ipairs(workers) do
    local ok, err = t:join()
    if not ok then error(err, 0) end
  end
  stdout:flush()
  bar.on_finish()
  if not o.silent then stderr:write(thresholds.summary_line(rec:metrics()), "\n") end
  local ok = check_thresholds(o, rec, stderr)
  return (failed == 0 and ok) and 0 or 1
end

--- Run `luafetch get`; the streams can be replaced for tests.
---@param args string[]
---@param streams? { stdout?: file*, stderr?: file*, stdout_tty?: boolean, stderr_tty?: boolean }
---@return integer status
function M.main(args, streams)
  local stdout = streams and streams.stdout or io.stdout
  local stderr = streams and streams.stderr or io.stderr
  local o, err = M.parse_args(args or {})
  if not o then
    stderr:write("luafetch get: ", err, "\n", "try 'luafetch get --help'\n")
    return 2
  end
  if o.help then
    stdout:write(M.USAGE)
    return 0
  end
  local env = env_defaults()
  local urls, from_list = M.expand_urls(o.url)
  if not urls then
    stderr:write("luafetch get: ", from_list, "\n")
    return 2
  end
  local base, why = M.request_options(o)
  if not base then
    stderr:write("luafetch get: ", why, "\n", "try 'luafetch get --help'\n")
    return 2
  end
  if o.write_out then
    local path = o.write_out:match("^@(.+)$")
    if path then
      local text, e = read_all(path)
      if not text then
        stderr:write("luafetch get: cannot read -w ", path, ": ", tostring(e), "\n")
        return 2
      end
      o.write_out = text
    end
  end
  local many = #urls ~= 1 or from_list
  if many and (o.output or o.include or o.head) then
    stderr:write("luafetch get: -o, -i and -I work with one URL; use --json-lines or -w for many\n")
    return 2
  end
  if #urls == 0 then
    if not o.silent then stderr:write("luafetch get: no URL in the list\n") end
    return 0
  end
  local policy = policy_of(o, env)
  local io_ = { stdout = stdout, stderr = stderr }
  if not many then
    o.fail = o.fail and not o.no_fail
    return run_one(urls[1], o, base, policy, io_)
  end
  if streams then
    io_.stdout_tty, io_.stderr_tty = streams.stdout_tty or false, streams.stderr_tty or false
  else
    io_.stdout_tty, io_.stderr_tty = progress.is_tty(1), progress.is_tty(2)
  end
  local concurrency = o.concurrency or env.max_concurrent or M.DEFAULT_CONCURRENCY
  return run_many(urls, o, base, policy, concurrency, io_)
end

return M
