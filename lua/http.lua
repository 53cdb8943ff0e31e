-- http.lua — the `http` module: requests with options, redirects, JSON, and the response object.
-- One exchange at a time goes to the C core (_http.request, which yields the calling task);
-- this file normalises options, follows redirects and decorates the response.
local C = require "_http"
local PROXY = require "proxy"
local CODEC = require "codec"

local M = {}

local DEFAULT_MAX_REDIRECTS = 5

---@class Response
---@field status integer
---@field reason string
---@field headers table<string, string> lower-case names; repeated headers joined with ", "
---@field body string
---@field url string final URL after redirects
---@field reused boolean served over a pooled connection
---@field timings table seconds: dns, connect, tls, ttfb, total
---@field tls table|nil version, cipher, verified, expires, resumed (https only)
---@field version string HTTP version of the response: "1.0", "1.1" (or "2")
---@field redirects integer hops followed
local Response = {}

-- Built on first read from the response's details block (most scripts never read them).
local LAZY = {
  headers = C.details_headers,
  timings = C.details_timings,
  tls = C.details_tls,
  version = C.details_version,
}

Response.__index = function(res, k)
  local method = Response[k]
  if method ~= nil then
    return method
  end
  local build = LAZY[k]
  if build then
    local details = rawget(res, "_details")
    if not details then
      return nil -- a response built in Lua (lua/cassette.lua's replay) sets its fields itself
    end
    local v = build(details)
    rawset(res, k, v)
    return v
  end
  if k == "redirects" then
    return 0
  end
end

---Decodes the body as JSON.
---@return any|nil value
---@return string|nil err
function Response:json()
  local cjson = require "cjson.safe"
  local v, err = cjson.decode(self.body)
  if v == nil and err then
    return nil, "invalid JSON: " .. err
  end
  return v
end

local read_body -- (below)

---The next chunk of a streamed body (stream = true), nil at its end, or nil, msg, kind. Yields
---while nothing has arrived. A response that is not streamed gives its whole body once.
---@return string|nil chunk
---@return string|nil err
---@return string|nil kind
function Response:read()
  return read_body(self, nil)
end

-- Response:read, or with a file: each chunk written to it by the core, its length returned
-- (false, message when the write failed), so an `output` download makes no Lua strings.
function read_body(self, file)
  local h = rawget(self, "_stream")
  if not h then
    local body = rawget(self, "body") or ""
    if rawget(self, "_taken") then
      rawset(self, "size", #body)
      return nil
    end
    rawset(self, "_taken", true)
    if body == "" then
      rawset(self, "size", 0)
      return nil
    end
    return body
  end
  local chunk, err, kind = C.stream_read(h, file)
  if chunk ~= nil then
    return chunk, err -- a string, a count written to file, or false and the write's error
  end
  local size, total = C.stream_size(h)
  rawset(self, "size", size or rawget(self, "size"))
  if total and rawget(self, "_details") then
    -- timings were taken with the head: the hop's total now runs to the body's end
    local timings = self.timings
    timings.total = timings.total + total - C.details_timings(rawget(self, "_details")).total
  end
  if not err then
    C.stream_close(h) -- the end: the request is freed now, not when collected
  end
  return nil, err, kind
end

---for chunk in res:chunks() do ... end (a failure raises, with the message and kind)
function Response:chunks()
  return function()
    local chunk, err, kind = self:read()
    if not chunk and err then
      error(err .. " (" .. tostring(kind) .. ")", 2)
    end
    return chunk
  end
end

---Ends a streamed body early: an unfinished exchange's connection is closed.
function Response:close()
  local h = rawget(self, "_stream")
  if h then
    rawset(self, "size", C.stream_size(h) or rawget(self, "size"))
    C.stream_close(h)
  end
end

-- HTTP_TIMEOUT is read once, when the module loads: a bad value stops the program at start.
local function read_env_timeout()
  local s = os.getenv("HTTP_TIMEOUT")
  if s == nil or s == "" then
    return 30
  end
  local n = tonumber(s)
  if not n or n <= 0 then
    error({ exit_code = 2, message = "HTTP_TIMEOUT must be a positive number of seconds, got '" .. s .. "'" })
  end
  return n
end

local DEFAULT_TIMEOUT = read_env_timeout()

local TIMEOUT_FIELDS = { connect = true, tls = true, read = true, total = true }

-- Fills the C option fields from `timeout` (number = total; table = per phase).
local function set_timeouts(req, timeout)
  if timeout == nil then
    timeout = DEFAULT_TIMEOUT
  end
  if type(timeout) == "number" then
    if not (timeout > 0) then -- also refuses NaN
      return nil, "timeout must be a positive number"
    end
    req.timeout_total = timeout
    return true
  end
  if type(timeout) ~= "table" then
    return nil, "timeout must be a number or a table {connect=, tls=, read=, total=}"
  end
  for k, v in pairs(timeout) do
    if not TIMEOUT_FIELDS[k] then
      return nil, "unknown timeout field '" .. tostring(k) .. "'"
    end
    if type(v) ~= "number" or not (v > 0) then
      return nil, "timeout." .. k .. " must be a positive number"
    end
    req["timeout_" .. k] = v
  end
  if not timeout.total and not timeout.read then
    req.timeout_total = DEFAULT_TIMEOUT
  end
  return true
end

-- max_redirects of opts (the default when absent), with max_body checked too; nil, message when
-- either is bad.
local function limits_of(opts)
  local max_body, max_redirects = opts.max_body, opts.max_redirects
  if max_body ~= nil and (type(max_body) ~= "number" or not (max_body >= 0)) then
    return nil, "max_body must be a non-negative number"
  end
  if max_redirects == nil then
    return DEFAULT_MAX_REDIRECTS
  end
  if math.type(max_redirects) ~= "integer" or max_redirects < 0 then
    return nil, "max_redirects must be a non-negative integer"
  end
  return max_redirects
end

-- Every option; "pass" ones go to the C core as they are, the others are handled here.
local OPTIONS = {
  url = true, method = true, headers = true, body = true, body_size = "pass", json = true, timeout = true,
  max_redirects = true, max_body = "pass", verify = "pass", ca_file = "pass", cert_file = "pass",
  key_file = "pass", decompress = "pass", proxy = true,
  http2 = "pass",
  form = true, multipart = true, auth = true,
  output = true, sink = true, stream = true,
}

-- output and sink of a request table (normalise), read by exchange after the last hop.
local DELIVER = setmetatable({}, { __mode = "k" })
-- A function body that can be made again (multipart with files): a 307/308 sends it anew.
local RESEND = setmetatable({}, { __mode = "k" })

-- JSON text with "/" left as is: lua-cjson writes it as "\/", which is valid but noisy. Every
-- backslash in cjson's output is part of an escape pair, so "\/" always stands for "/".
local function encode_json(value)
  local encoded, err = require("cjson.safe").encode(value)
  if not encoded then
    return nil, err
  end
  return (encoded:gsub("\\/", "/"))
end

-- headers with `name` set, unless the script set it (in any case): a copy, never the script's table.
local function with_default_header(headers, name, value)
  local lname, copy = name:lower(), {}
  for k, v in pairs(headers or {}) do
    if type(k) == "string" and k:lower() == lname then
      return headers
    end
    copy[k] = v
  end
  copy[name] = value
  return copy
end

-- The body and Content-Type of a `form` or `multipart` option (lua/codec.lua, lua/multipart.lua);
-- nil, message on a conflict or a bad table.
local function form_body(form, multipart, body, json)
  if body ~= nil or json ~= nil or (form ~= nil and multipart ~= nil) then
    return nil, "give only one of body, json, form and multipart"
  end
  if multipart ~= nil then
    return require("multipart").build(multipart)
  end
  if type(form) ~= "table" then
    return nil, "form must be a table"
  end
  local ok, encoded = pcall(CODEC.urlencode, form)
  if not ok then
    return nil, "form: " .. tostring(encoded)
  end
  return encoded, "application/x-www-form-urlencoded"
end

-- Builds the table the C core takes; nil, message on bad options. url, method, body and json,
-- when given (http.get, http.post ...), take the place of the fields of opts: opts is never copied
-- nor changed.
local function normalise(opts, url, method, body, json)
  url = url or opts.url
  if type(url) ~= "string" then
    return nil, "url must be a string"
  end
  local user, pass -- user:pass@ in the URL means Basic, as curl reads it; the core never sees it
  if url:find("@", 1, true) then
    url, user, pass = CODEC.split_userinfo(url)
  end
  method = method or opts.method
  if method ~= nil and type(method) ~= "string" then
    return nil, "method must be a string"
  end
  if body == nil and json == nil then
    body, json = opts.body, opts.json
  end
  -- Only the fields given: a constructor listing every option would size each request's table
  -- for all of them, and thousands of requests wait at once. One pass checks and copies.
  local req = { url = url, method = method and method:upper() or "GET", body = body }
  for k, v in pairs(opts) do
    local known = OPTIONS[k]
    if not known then
      return nil, "unknown option '" .. tostring(k) .. "'"
    elseif known == "pass" then
      req[k] = v
    end
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    return nil, "headers must be a table"
  end
  local headers = opts.headers -- read only here; copied before any change
  if json ~= nil then
    if body ~= nil then
      return nil, "give body or json, not both"
    end
    local encoded, err = encode_json(json)
    if not encoded then
      return nil, "cannot encode json: " .. tostring(err)
    end
    req.body = encoded
    local copy, has_type = {}, false
    for k, v in pairs(headers or {}) do
      copy[k] = v
      if type(k) == "string" and k:lower() == "content-type" then
        has_type = true
      end
    end
    if not has_type then
      copy["Content-Type"] = "application/json"
    end
    headers = copy
  end
  if opts.form ~= nil or opts.multipart ~= nil then
    local built, content_type, size, again = form_body(opts.form, opts.multipart, body, json)
    if not built then
      return nil, content_type
    end
    body, req.body = built, built
    if size then -- multipart with files: read as they are sent, and read again for a 307/308
      req.body_size, RESEND[req] = size, again
    end
    headers = with_default_header(headers, "Content-Type", content_type)
  end
  local auth = opts.auth -- false: none, not even the URL's
  if auth == nil and user then
    auth = { user, pass }
  end
  if auth then
    local value, err = CODEC.authorization(auth)
    if not value then
      return nil, err
    end
    headers = with_default_header(headers, "Authorization", value)
  end
  req.headers = headers
  local output, sink = opts.output, opts.sink
  if output ~= nil and type(output) ~= "string" then
    return nil, "output must be a path"
  elseif sink ~= nil and type(sink) ~= "function" then
    return nil, "sink must be a function"
  elseif output and sink then
    return nil, "give output or sink, not both"
  end
  if output or sink or opts.stream then
    req.stream, req.max_body = true, nil -- max_body bounds res.body only
    if output or sink then
      DELIVER[req] = { output = output, sink = sink }
    end
  end
  if body ~= nil and type(body) ~= "string" and type(body) ~= "function" and io.type(body) ~= "file" then
    return nil, "body must be a string, an open file or a function"
  end
  local max_redirects, why = limits_of(opts)
  if not max_redirects then
    return nil, why
  end
  local ok, err = set_timeouts(req, opts.timeout)
  if not ok then
    return nil, err
  end
  local proxy = opts.proxy
  if proxy ~= nil and proxy ~= false and type(proxy) ~= "string" then
    return nil, "proxy must be a URL string or false"
  end
  return req, max_redirects, proxy
end

-- The proxy for one hop (nil, message for a bad proxy URL); false when the hop goes direct.
local function choose_proxy(url, option)
  if option == false then
    return false
  end
  local u = C.parse_url(url)
  if not u then
    return false -- the core reports the bad URL itself
  end
  return PROXY.choose(u.scheme, u.host, option)
end

local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

local function origin(u)
  return u.scheme .. "://" .. u.host .. ":" .. u.port
end

-- Credentials (and a Host) a script set for one origin must not travel to another.
local SENSITIVE = { authorization = true, cookie = true, ["proxy-authorization"] = true, host = true }

-- Prepares req for the next hop to `location`; nil, message when the target is refused.
local function follow(req, res, location)
  if (res.status == 307 or res.status == 308) and type(req.body) == "function" then
    if not RESEND[req] then
      return nil, ("cannot follow the %d redirect to %s: the request body came from a function and "
        .. "cannot be sent again"):format(res.status, location)
    end
    req.body = RESEND[req]()
  end
  local target = C.resolve_url(req.url, location)
  if not target then
    return nil, "bad redirect target '" .. location .. "'"
  end
  local scheme = target:match("^(%a[%w+.-]*):")
  scheme = scheme and scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "refusing redirect to a non-http(s) URL: " .. target
  end
  local user, pass
  if target:find("@", 1, true) then
    target, user, pass = CODEC.split_userinfo(target)
  end
  local from, to = C.parse_url(req.url), C.parse_url(target)
  if not to then
    return nil, "bad redirect target '" .. target .. "'"
  end
  local headers = {}
  for k, v in pairs(req.headers or {}) do
    if origin(from) == origin(to) or not SENSITIVE[k:lower()] then
      headers[k] = v
    end
  end
  if user then -- credentials in the Location itself: Basic for the new URL
    headers = with_default_header(headers, "Authorization", CODEC.authorization{ user, pass })
  end
  req.headers = headers
  local status = res.status
  if (status == 301 or status == 302 or status == 303) and req.method ~= "HEAD" then
    if status == 303 or req.method == "POST" then
      req.method = "GET"
      req.body, req.body_size, RESEND[req] = nil, nil, nil
      for k in pairs(req.headers) do
        if k:lower() == "content-type" then
          req.headers[k] = nil
        end
      end
    end
  end
  req.url = target
  return true
end

-- One hop on the wire: the core's request, or the tap lua/cassette.lua sets (record, replay).
local send = C.request
local tapped = false

-- The body of a streamed response into PATH.part, renamed to PATH once complete (a device or a
-- FIFO is written in place, as lua/cli_get.lua does); any failure, or the task being cancelled,
-- removes the partial file.
local function to_output(res, path)
  local in_place = C.path_kind(path) == "other"
  local target = in_place and path or path .. ".part"
  local f, err = io.open(target, "wb")
  if not f then
    res:close()
    return nil, "cannot write " .. path .. ": " .. tostring(err), "invalid"
  end
  local done = false
  local _ <close> = setmetatable({}, { __close = function()
    if not done then
      res:close()
      f:close()
      if not in_place then os.remove(target) end
    end
  end })
  -- the core writes each chunk to f (no Lua string per chunk), unless something wraps res:read
  -- (lua/cassette.lua records the chunks it sees)
  local direct = rawget(res, "read") == nil and f or nil
  while true do
    local chunk, why, kind
    if direct then chunk, why, kind = read_body(res, direct) else chunk, why, kind = res:read() end
    if chunk == false then
      return nil, "cannot write " .. path .. ": " .. tostring(why), "invalid"
    end
    if not chunk then
      if why then return nil, why, kind end
      break
    end
    if type(chunk) == "string" then
      local ok, werr = f:write(chunk)
      if not ok then
        return nil, "cannot write " .. path .. ": " .. tostring(werr), "invalid"
      end
    end
  end
  local ok, cerr = f:close()
  done = true
  if ok and not in_place then
    ok, cerr = os.rename(target, path)
  end
  if not ok then
    if not in_place then os.remove(target) end
    return nil, "cannot write " .. path .. ": " .. tostring(cerr), "invalid"
  end
  rawset(res, "body", nil) -- a response built in Lua (replay) carries one
  return res
end

-- The body of a streamed response to sink(chunk), which may yield.
local function to_sink(res, sink)
  local _ <close> = setmetatable({}, { __close = function() res:close() end })
  while true do
    local chunk, why, kind = res:read()
    if not chunk then
      if why then return nil, why, kind end
      rawset(res, "body", nil) -- a response built in Lua (replay) carries one
      return res
    end
    sink(chunk)
  end
end

-- Runs the exchange hop by hop; each hop's own timings add up to the elapsed time,
-- which bounds the hops that follow by the total timeout. `hop` (sessions, lua/session.lua) is
-- called as hop(req) before each hop goes out and hop(req, res) when its answer is in.
-- `res`, when given, is the first hop's answer already in (see direct).
local function exchange(req, max_redirects, proxy_option, hop, res)
  local total = req.timeout_total
  local elapsed, hops = 0, 0
  -- Without a proxy option or variable (the common case) no hop looks at proxies at all.
  local routed = proxy_option ~= nil or PROXY.env_active
  while true do
    if not res then
      if routed then
        -- per hop: a redirect may leave (or enter) no_proxy's scope
        local p, why = choose_proxy(req.url, proxy_option)
        if p == nil then
          return nil, why, "invalid"
        end
        req.proxy = p or nil
      end
      if hop then
        hop(req)
      end
      local err, kind
      res, err, kind = send(req)
      if not res then
        return nil, err, kind
      end
      res.url = req.url
      if hop then
        hop(req, res)
      end
    end
    if not REDIRECT[res.status] or max_redirects == 0 or not res.headers.location then
      if hops > 0 then
        res.redirects = hops
        res.timings.total = elapsed + res.timings.total -- the whole exchange, all hops
      end
      local d = DELIVER[req]
      if d then
        if d.output then return to_output(res, d.output) end
        return to_sink(res, d.sink)
      end
      return res
    end
    res:close() -- a streamed redirect's body is not wanted
    elapsed = elapsed + res.timings.total
    if hops >= max_redirects then
      return nil, "too many redirects (more than " .. max_redirects .. ")", "redirect"
    end
    local ok, why = follow(req, res, res.headers.location)
    if not ok then
      return nil, why, "redirect"
    end
    hops = hops + 1
    if total then
      if elapsed >= total then
        return nil, "timed out after " .. total .. "s (total timeout)", "timeout"
      end
      req.timeout_total = total - elapsed
    end
    res = nil
  end
end

---Sends a request; follows redirects.
---@param opts table url, method, headers, body, json, timeout, max_redirects, max_body, verify, ca_file, cert_file, key_file, decompress
---@return Response|nil res
---@return string|nil err
---@return string|nil kind dns, connect, tls, timeout, closed, protocol, limit, redirect, canceled, invalid
function M.request(opts)
  if type(opts) ~= "table" then
    return nil, "http.request expects a table of options", "invalid"
  end
  local req, max_redirects, proxy = normalise(opts)
  if not req then
    return nil, max_redirects, "invalid"
  end
  return exchange(req, max_redirects, proxy)
end

---http.request{ url = url, output = path, ... }: the body to a file (see the output option).
function M.download(url, path, opts)
  local o = { url = url, output = path }
  for k, v in pairs(opts or {}) do
    if k ~= "url" and k ~= "output" then o[k] = v end
  end
  return M.request(o)
end

-- Options that only set fields of the core's request (a timeout, headers, TLS trust, limits).
local QUICK = {
  timeout = true, headers = true, max_redirects = true, max_body = "pass", verify = "pass",
  ca_file = "pass", cert_file = "pass", key_file = "pass", decompress = "pass", http2 = "pass",
}

-- The request table for options that are all QUICK ones, in one pass; nil when normalise has to
-- look (any other option, or a bad value: normalise says what is wrong). About 2,000 instructions
-- fewer per request than normalise (callgrind, http.get(url, {timeout = 60})).
local function quick_request(opts, url, method)
  local req = { url = url, method = method }
  for k, v in pairs(opts) do
    local known = QUICK[k]
    if not known then return nil end
    if known == "pass" then req[k] = v end
  end
  local headers = opts.headers
  if headers ~= nil and type(headers) ~= "table" then return nil end
  local max_redirects = limits_of(opts)
  if not max_redirects then return nil end
  req.headers = headers
  if not set_timeouts(req, opts.timeout) then return nil end
  return req, max_redirects
end

-- A request whose options the core takes as they are (nil, or QUICK ones with a number timeout):
-- its first hop goes out with the caller's own table, so no request table exists while it waits
-- (10,000 waiting requests: about 240 bytes each); one is made only if a redirect is followed.
-- With a proxy variable set or a tap (record, replay) the usual way is taken.
local function direct(url, method, timeout, opts, max_redirects)
  if tapped or PROXY.env_active then
    local req = opts and quick_request(opts, url, method) or { url = url, method = method, timeout_total = timeout }
    return exchange(req, max_redirects)
  end
  local res, err, kind = C.request(url, method, timeout, opts)
  if not res then
    return nil, err, kind
  end
  res.url = url
  if not REDIRECT[res.status] or max_redirects == 0 or not res.headers.location then
    return res
  end
  -- opts is read again for the next hops; should another task have changed it meanwhile, the
  -- full way takes what it holds now rather than dropping it
  local req, proxy = { url = url, method = method, timeout_total = timeout }, nil
  if opts then
    req = quick_request(opts, url, method)
    if not req then
      req, err, proxy = normalise(opts, url, method)
      if not req then
        res:close()
        return nil, err, "invalid"
      end
    end
  end
  return exchange(req, max_redirects, proxy, nil, res)
end

-- GET with every option at its default.
local function get_simple(url)
  if type(url) ~= "string" then
    return nil, "url must be a string", "invalid"
  end
  if url:find("@", 1, true) then -- perhaps credentials: the full path takes them out
    local req, max_redirects, proxy = normalise({}, url, "GET")
    if not req then
      return nil, max_redirects, "invalid"
    end
    return exchange(req, max_redirects, proxy)
  end
  return direct(url, "GET", DEFAULT_TIMEOUT, nil, DEFAULT_MAX_REDIRECTS)
end

-- Whether opts holds only QUICK options with a number (or no) timeout: max_redirects and the total
-- timeout then, else nil (quick_request or normalise look further).
local function quick_check(opts)
  -- the C side reads opts with lua_next: a table with a metatable (__pairs, __index) goes the full way
  if getmetatable(opts) ~= nil then return nil end
  for k in next, opts do
    if not QUICK[k] then return nil end
  end
  local headers, timeout = opts.headers, opts.timeout
  if headers ~= nil and type(headers) ~= "table" then return nil end
  if timeout == nil then
    timeout = DEFAULT_TIMEOUT
  elseif type(timeout) ~= "number" or not (timeout > 0) then
    return nil
  end
  local max_redirects = limits_of(opts)
  if not max_redirects then return nil end
  return max_redirects, timeout
end

local function with_method(method, url, opts)
  if opts == nil and method == "GET" then
    -- the common case: no options to check
    return get_simple(url)
  end
  if type(url) ~= "string" then
    return nil, "url must be a string", "invalid"
  end
  if type(opts) == "table" and not url:find("@", 1, true) then
    local max_redirects, timeout = quick_check(opts)
    if max_redirects then return direct(url, method, timeout, opts, max_redirects) end
    local req
    req, max_redirects = quick_request(opts, url, method)
    if req then return exchange(req, max_redirects) end
  end
  local req, max_redirects, proxy = normalise(opts or {}, url, method)
  if not req then
    return nil, max_redirects, "invalid"
  end
  return exchange(req, max_redirects, proxy)
end

---@return Response|nil, string|nil, string|nil
function M.get(url, opts) return with_method("GET", url, opts) end
function M.head(url, opts) return with_method("HEAD", url, opts) end
function M.delete(url, opts) return with_method("DELETE", url, opts) end
function M.options(url, opts) return with_method("OPTIONS", url, opts) end

local function with_body(method, url, body, opts)
  if type(url) ~= "string" then
    return nil, "url must be a string", "invalid"
  end
  local req, max_redirects, proxy
  if type(body) == "table" then
    req, max_redirects, proxy = normalise(opts or {}, url, method, nil, body)
  elseif body == nil and opts and (opts.form ~= nil or opts.multipart ~= nil) then
    req, max_redirects, proxy = normalise(opts, url, method)
  else
    req, max_redirects, proxy = normalise(opts or {}, url, method, body or "", nil)
  end
  if not req then
    return nil, max_redirects, "invalid"
  end
  return exchange(req, max_redirects, proxy)
end

---A string body is sent as is; a table body is sent as JSON.
function M.post(url, body, opts) return with_body("POST", url, body, opts) end
function M.put(url, body, opts) return with_body("PUT", url, body, opts) end
function M.patch(url, body, opts) return with_body("PATCH", url, body, opts) end

---Counters since start: requests, connections_opened, connections_reused, dns_lookups, dns_hits, in_flight.
M.stats = C.stats

---Pool and limit settings: max_connecting, max_idle_per_host, idle_timeout, dns_ttl,
---max_header_bytes, max_header_count.
M.configure = C.configure

C.set_response_class(Response)

M.parse_url = C.parse_url
M.resolve_url = C.resolve_url

---A session: shared defaults and a cookie jar (docs/sessions.md).
function M.session(opts) return require("session").new(opts) end

M.urlencode = CODEC.urlencode
M.urldecode = CODEC.urldecode
M.base64 = CODEC.base64
M.unbase64 = CODEC.unbase64

-- For lua/session.lua: http.request with a per-hop callback, and the option names it may default.
function M._send(opts, hop)
  local req, max_redirects, proxy = normalise(opts)
  if not req then
    return nil, max_redirects, "invalid"
  end
  return exchange(req, max_redirects, proxy, hop)
end
function M._is_option(name) return OPTIONS[name] ~= nil end

-- For lua/cassette.lua: every hop goes through tap(req, raw) (nil restores the core's request);
-- a response a tap builds itself takes the Response class from M._response.
function M._set_tap(tap)
  send = tap and function(req) return tap(req, C.request) end or C.request
  tapped = tap ~= nil
end
function M._response(t) return setmetatable(t, Response) end

---Starts the embedded HTTP server (docs/server.md): http.serve{host=, port=, handler=, ...}
M.serve = require("server").serve

return M
