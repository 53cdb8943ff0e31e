-- session.lua — http.session: request defaults shared by a series of requests (base_url, headers,
-- auth, timeout, any other request option) and a cookie jar applied on every hop, redirects
-- included. A session holds no connection of its own: the pool is shared by every request.
local http = require "http"
local C = require "_http"
local cookies = require "cookies"

local M = {}

---@class Session
---@field base_url string|nil
---@field cookies Jar|nil the jar (nil when the session was made with cookies = false)
local Session = {}
Session.__index = Session

-- Options that make no sense as defaults for every request of a session.
local PER_REQUEST = { url = true, method = true, body = true, json = true, form = true, multipart = true }

local function check_headers(h, what)
  if h == nil then
    return
  end
  if type(h) ~= "table" then
    error(what .. " must be a table", 3)
  end
end

---A new session.
---@param opts table|nil base_url, headers, cookies (true: a new jar, the default; false: none; or a
---  jar from require("cookies").new() to share), auth, timeout, and any other http.request option
---  as a default for every request
---@return Session
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("http.session expects a table of options", 2)
  end
  local s = setmetatable({ defaults = {}, headers = {} }, Session)
  for k, v in pairs(opts) do
    if k == "base_url" then
      if type(v) ~= "string" or not http.parse_url((v:gsub("//[^/?#]*@", "//"))) then
        error("base_url must be an absolute http(s) URL", 2)
      end
      s.base_url = v
    elseif k == "cookies" then
      if v ~= true and v ~= false and (type(v) ~= "table" or getmetatable(v) == nil or not v.get) then
        error("cookies must be true, false or a jar (require('cookies').new())", 2)
      end
    elseif k == "headers" then
      check_headers(v, "headers")
    elseif type(k) ~= "string" or PER_REQUEST[k] or not http._is_option(k) then
      error("unknown session option '" .. tostring(k) .. "'", 2)
    else
      s.defaults[k] = v
    end
  end
  -- lower-case name → { name as written, value }
  for name, value in pairs(opts.headers or {}) do
    if type(name) ~= "string" then
      error("header names must be strings", 2)
    end
    if value ~= false then
      s.headers[name:lower()] = { name, value }
    end
  end
  local jar = opts.cookies
  if jar == nil or jar == true then
    s.cookies = cookies.new()
  elseif jar then
    s.cookies = jar
  end
  return s
end

-- Session headers under the request's (a request's name wins whatever its case; a value of false
-- removes a session header). Always a new table: the cookie hop writes into it.
local function merge_headers(base, extra)
  local out, seen = {}, {}
  if extra ~= nil then
    if type(extra) ~= "table" then
      return nil, "headers must be a table"
    end
    for name, value in pairs(extra) do
      if type(name) ~= "string" then
        return nil, "header names must be strings"
      end
      seen[name:lower()] = true
      if value ~= false then
        out[name] = value
      end
    end
  end
  for lname, nv in pairs(base) do
    if not seen[lname] then
      out[nv[1]] = nv[2]
    end
  end
  return out
end

-- A hop callback for one exchange (http.lua calls hop(req) before each hop is sent and
-- hop(req, res) when its answer is in): the jar's Cookie on the way out, Set-Cookie on the way
-- in. A Cookie header the script set itself is kept in front of the jar's, until a redirect
-- leaves its origin (http.lua drops it then).
local function cookie_hop(jar)
  local key, own
  local first = true
  return function(req, res)
    if res then
      -- each Set-Cookie as received (a value may hold ", x=": joined headers cannot be split back
      -- with certainty); a response without the core's details (built in Lua) is split instead
      local details = rawget(res, "_details")
      if details then
        local values = C.details_values(details, "set-cookie")
        if values[1] then
          jar:store(req.url, values)
        end
      else
        local set = res.headers["set-cookie"]
        if set then
          jar:store(req.url, cookies.split_set_cookie(set))
        end
      end
      return
    end
    local headers = req.headers
    if first then
      first = false
      for name, value in pairs(headers) do
        if type(name) == "string" and name:lower() == "cookie" and type(value) == "string" then
          key, own = name, value
        end
      end
    elseif key and headers[key] == nil then
      own = nil -- a cross-origin hop dropped it
    end
    key = key or "Cookie"
    local value = jar:get(req.url)
    if own then
      value = value and own .. "; " .. value or own
    end
    headers[key] = value
  end
end

-- The absolute URL of url against the session's base_url.
local function absolute(s, url)
  if type(url) ~= "string" then
    return nil, "url must be a string"
  end
  if url:match("^%a[%w+.-]*:") then
    return url
  end
  if not s.base_url then
    return nil, "relative URL '" .. url .. "' in a session without base_url"
  end
  local abs = http.resolve_url(s.base_url, url)
  if not abs then
    return nil, "cannot resolve '" .. url .. "' against " .. s.base_url
  end
  return abs
end

---Sends a request with the session's defaults and cookies (options as http.request's; url may be
---relative to base_url).
---@param opts table
---@return Response|nil res
---@return string|nil err
---@return string|nil kind
function Session:request(opts)
  if type(opts) ~= "table" then
    return nil, "request expects a table of options", "invalid"
  end
  local merged = {}
  for k, v in pairs(self.defaults) do
    merged[k] = v
  end
  for k, v in pairs(opts) do
    merged[k] = v
  end
  local url, err = absolute(self, opts.url)
  if not url then
    return nil, err, "invalid"
  end
  merged.url = url
  local headers
  headers, err = merge_headers(self.headers, opts.headers)
  if not headers then
    return nil, err, "invalid"
  end
  merged.headers = headers
  return http._send(merged, self.cookies and cookie_hop(self.cookies))
end

local function without_body(method)
  return function(self, url, opts)
    local o = {}
    for k, v in pairs(opts or {}) do
      o[k] = v
    end
    o.url, o.method = url, method
    return self:request(o)
  end
end

-- As http.post: a table body is JSON, a string is sent as is, none is an empty body unless the
-- options give body, json, form or multipart.
local function with_body(method)
  return function(self, url, body, opts)
    local o = {}
    for k, v in pairs(opts or {}) do
      o[k] = v
    end
    o.url, o.method = url, method
    if type(body) == "table" then
      o.json = body
    elseif body ~= nil then
      o.body = body
    elseif o.body == nil and o.json == nil and o.form == nil and o.multipart == nil then
      o.body = ""
    end
    return self:request(o)
  end
end

Session.get = without_body("GET")
Session.head = without_body("HEAD")
Session.delete = without_body("DELETE")
Session.options = without_body("OPTIONS")
Session.post = with_body("POST")
Session.put = with_body("PUT")
Session.patch = with_body("PATCH")

return M
