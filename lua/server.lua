-- server.lua — http.serve: an embedded HTTP/1.1 server for loopback and internal use (mock APIs,
-- /metrics, webhooks). The network side is C (core/http/server.c through _server); this file checks
-- options and runs each request's handler as a new task, then hands its answer back to C.
local C = require "_server"

local M = {}

---@class ServerRequest
---@field method string
---@field path string request path without the query (raw, not percent-decoded)
---@field query string raw query after "?" ("" when none)
---@field target string the request-target as sent
---@field args table<string, string> query parsed: name → value (decoded; the last one wins)
---@field headers table<string, string> lower-case names; repeated headers joined with ", "
---@field body string
---@field version string "1.1" or "1.0"
---@field remote_addr string
---@field remote_port integer

---@class Server
---@field host string
---@field port integer the bound port
---@field url string base URL, e.g. "http://127.0.0.1:8080"
local Server = {}
Server.__index = Server

---Stops listening and closes idle connections; handlers still running finish, their connections
---close after the response. Idempotent.
function Server:close()
  C.close(self._handle)
end

Server.__close = Server.close

---Counters: connections (accepted), requests (given to the handler), rejected (answered by the
---server itself: 400, 408, 413, 417, 431), open (connections open now).
---@return table
function Server:stats()
  return C.stats(self._handle)
end

function Server:__tostring()
  return "server (" .. self.url .. ")"
end

local function unescape(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

---Parses a query string "a=1&b=x%20y" into { a = "1", b = "x y" } (the last value of a name wins).
---@param query string
---@return table<string, string>
function M.parse_query(query)
  local args = {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if k then
      args[unescape(k)] = unescape(v)
    else
      args[unescape(pair)] = ""
    end
  end
  return args
end

-- req.args is built on first read.
local Request = {
  __index = function(req, k)
    if k == "args" then
      local args = M.parse_query(rawget(req, "query") or "")
      rawset(req, "args", args)
      return args
    end
  end,
}

local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }
local JSON = { ["Content-Type"] = "application/json" }

-- A request that was not answered (the task was cancelled, or something raised on the way to
-- the answer) still gets its connection answered: the C side knows whether it is pending.
local Guard = {
  __close = function(g)
    if C.pending(g.conn) then
      C.respond(g.conn, 500, TEXT, "handler canceled\n")
    end
  end,
}

local function default_report(err)
  io.stderr:write("luafetch: http.serve handler: ", err, "\n")
end

local function traceback(e)
  return debug.traceback(tostring(e), 2)
end

-- Turns what the handler returned into status, headers, body; nil, message when it is unusable.
local function normalise(res)
  local kind = type(res)
  if kind == "string" then
    return 200, nil, res
  end
  if kind ~= "table" then
    return nil, "handler returned " .. kind .. " (expected {status=, headers=, body=} or a string)"
  end
  local status, headers, body = res.status or 200, res.headers, res.body
  if res.json ~= nil then
    if body ~= nil then
      return nil, "handler returned both body and json"
    end
    local encoded, err = require("cjson.safe").encode(res.json)
    if not encoded then
      return nil, "cannot encode json: " .. tostring(err)
    end
    body = encoded
    local has_type = false
    for k in pairs(headers or {}) do
      if type(k) == "string" and k:lower() == "content-type" then
        has_type = true
      end
    end
    if not has_type then
      local copy = { ["Content-Type"] = JSON["Content-Type"] }
      for k, v in pairs(headers or {}) do copy[k] = v end
      headers = copy
    end
  end
  if body == nil then
    body = ""
  elseif type(body) == "number" then
    body = tostring(body)
  elseif type(body) ~= "string" then
    return nil, "handler returned a body of type " .. type(body) .. " (expected a string)"
  end
  if headers ~= nil and type(headers) ~= "table" then
    return nil, "handler returned headers of type " .. type(headers) .. " (expected a table)"
  end
  return status, headers, body
end

-- The function each request's task runs: the user's handler, protected, then the answer.
local function make_dispatch(handler, report)
  local function fail(conn, req, msg)
    local ok, err = pcall(report, msg, req)
    if not ok then
      default_report("on_error failed: " .. tostring(err) .. "\n" .. msg)
    end
    C.respond(conn, 500, TEXT, "internal server error\n")
  end
  return function(conn, req)
    setmetatable(req, Request)
    local guard <close> = setmetatable({ conn = conn }, Guard)
    local label = tostring(req.method) .. " " .. tostring(req.target) -- before the handler may change req
    local ok, res = xpcall(handler, traceback, req)
    if not ok then
      return fail(conn, req, label .. ": " .. tostring(res))
    end
    -- What the handler returned is user data too: metamethods in it may raise.
    local done, status, headers, body = pcall(normalise, res)
    if not done then
      return fail(conn, req, label .. ": bad response: " .. tostring(status))
    end
    if not status then
      return fail(conn, req, label .. ": " .. headers)
    end
    local called, sent, err = pcall(C.respond, conn, status, headers, body)
    if not called then
      return fail(conn, req, label .. ": bad response: " .. tostring(sent))
    end
    if sent == nil then
      return fail(conn, req, label .. ": " .. err)
    end
  end
end

local OPTIONS = {
  host = "string", port = "number", handler = "function", on_error = "function",
  backlog = "number", max_body = "number", max_header_bytes = "number", max_header_count = "number",
  header_timeout = "number", body_timeout = "number", idle_timeout = "number",
}

local function callable(v)
  if type(v) == "function" then return true end
  local mt = getmetatable(v)
  return type(mt) == "table" and mt.__call ~= nil
end

---Starts an HTTP/1.1 server; each request runs handler(req) as a new task, whose return value
---({status=, headers=, body=} or {status=, json=} or a string) is the response.
---Bad options raise an error; a failure to listen returns nil, message.
---@param opts table host ("127.0.0.1"), port (0: any free port), handler, on_error(err, req),
---  max_body (8 MiB), max_header_bytes (16 KiB), max_header_count (100), header_timeout (10 s),
---  body_timeout (30 s), idle_timeout (60 s), backlog (511)
---@return Server|nil server
---@return string|nil err
function M.serve(opts)
  if type(opts) ~= "table" then
    error("http.serve expects a table of options", 2)
  end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if not want then
      error("http.serve: unknown option '" .. tostring(k) .. "'", 2)
    end
    if want == "function" then
      if not callable(v) then
        error("http.serve: " .. k .. " must be a function", 2)
      end
    elseif type(v) ~= want then
      error("http.serve: " .. k .. " must be a " .. want, 2)
    elseif want == "number" and not (v >= 0) then
      error("http.serve: " .. k .. " must be a non-negative number", 2)
    end
  end
  if opts.handler == nil then
    error("http.serve: handler is required", 2)
  end
  local port = opts.port or 0
  if math.type(port) ~= "integer" and port ~= math.floor(port) or port > 65535 then
    error("http.serve: port must be an integer 0..65535", 2)
  end
  local host = opts.host or "127.0.0.1"
  local handle, bound = C.listen(opts, make_dispatch(opts.handler, opts.on_error or default_report))
  if not handle then
    return nil, bound
  end
  local shown = host:gsub("^%[(.*)%]$", "%1")
  if shown == "0.0.0.0" or shown == "localhost" then
    shown = "127.0.0.1"
  elseif shown == "::" then
    shown = "::1"
  end
  if shown:find(":", 1, true) then
    shown = "[" .. shown .. "]"
  end
  return setmetatable({
    host = host,
    port = bound,
    url = "http://" .. shown .. ":" .. bound,
    _handle = handle,
  }, Server)
end

return M
