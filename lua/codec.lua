-- codec.lua — text encodings requests need: URL percent-encoding (components and form bodies),
-- base64, credentials in URLs (user:pass@) and the Authorization value of an `auth` option.
-- Pure functions on strings; exported to scripts as http.urlencode, urldecode, base64, unbase64.
local M = {}

local function hex_byte(c)
  return ("%%%02X"):format(c:byte())
end

-- RFC 3986 unreserved characters stay; everything else is %XX (a space too: "%20" is right in a
-- path, a query and a form alike).
local function encode_component(s)
  return (s:gsub("[^%w%-._~]", hex_byte))
end

-- application/x-www-form-urlencoded as curl --data-urlencode and browsers send it: a space is "+".
local function encode_form_value(s)
  return (s:gsub("[^%w%-._~ ]", hex_byte):gsub(" ", "+"))
end

local function scalar(v, what)
  local t = type(v)
  if t == "string" then
    return v
  elseif t == "number" or t == "boolean" then
    return tostring(v)
  end
  error(what .. " must be a string, number or boolean, got " .. t, 0)
end

-- Pairs of a form table in a stable order: the array part first ({ {"a", "1"}, ... } keeps its
-- order and repeats), then the named keys sorted; a named key whose value is an array repeats.
local function form_pairs(t)
  local out = {}
  local n = #t
  for i = 1, n do
    local pair = t[i]
    if type(pair) ~= "table" or pair[1] == nil then
      error("form entry " .. i .. " must be a pair { name, value }", 0)
    end
    out[#out + 1] = { scalar(pair[1], "form name"), scalar(pair[2] == nil and "" or pair[2], "form value") }
  end
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      if type(k) ~= "string" then
        error("form names must be strings, got " .. type(k), 0)
      end
      keys[#keys + 1] = k
    end
  end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = t[k]
    if type(v) == "table" then
      for i = 1, #v do
        out[#out + 1] = { k, scalar(v[i], "form value") }
      end
    else
      out[#out + 1] = { k, scalar(v, "form value") }
    end
  end
  return out
end

---Percent-encodes a string (unreserved characters stay, a space is %20), or turns a table into a
---form/query string "a=1&b=x+y" (application/x-www-form-urlencoded: a space is "+"). A table is
---{ name = value } (names sorted; an array value repeats the name) and/or { {name, value}, ... }
---(kept in order). Raises on values that are not strings, numbers or booleans.
---@param v string|table
---@return string
function M.urlencode(v)
  if type(v) == "string" then
    return encode_component(v)
  elseif type(v) == "number" then
    return encode_component(tostring(v))
  elseif type(v) ~= "table" then
    error("urlencode expects a string or a table, got " .. type(v), 2)
  end
  local ok, list = pcall(form_pairs, v)
  if not ok then
    error(list, 2)
  end
  local parts = {}
  for i, p in ipairs(list) do
    parts[i] = encode_form_value(p[1]) .. "=" .. encode_form_value(p[2])
  end
  return table.concat(parts, "&")
end

---Decodes %XX escapes and "+" (a space, as in forms and query strings).
---@param s string
---@return string
function M.urldecode(s)
  if type(s) ~= "string" then
    error("urldecode expects a string, got " .. type(s), 2)
  end
  return (s:gsub("%+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- Percent-decoding without "+" (userinfo, where "+" is itself).
local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local ENC, DEC = {}, {}
for i = 1, 64 do
  ENC[i - 1] = B64:sub(i, i)
  DEC[B64:byte(i)] = i - 1
end
-- The URL-safe alphabet decodes too.
DEC[("-"):byte()] = 62
DEC[("_"):byte()] = 63

---Base64 (RFC 4648, standard alphabet, padded).
---@param s string
---@return string
function M.base64(s)
  if type(s) ~= "string" then
    error("base64 expects a string, got " .. type(s), 2)
  end
  local out, n = {}, #s
  for i = 1, n - 2, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a << 16 | b << 8 | c
    out[#out + 1] = ENC[v >> 18] .. ENC[v >> 12 & 63] .. ENC[v >> 6 & 63] .. ENC[v & 63]
  end
  local rest = n % 3
  if rest == 1 then
    local v = s:byte(n) << 16
    out[#out + 1] = ENC[v >> 18] .. ENC[v >> 12 & 63] .. "=="
  elseif rest == 2 then
    local a, b = s:byte(n - 1, n)
    local v = a << 16 | b << 8
    out[#out + 1] = ENC[v >> 18] .. ENC[v >> 12 & 63] .. ENC[v >> 6 & 63] .. "="
  end
  return table.concat(out)
end

---Decodes base64 (standard or URL-safe alphabet; padding optional; white space ignored).
---@param s string
---@return string|nil decoded
---@return string|nil err on a character outside the alphabet or a length that cannot be
function M.unbase64(s)
  if type(s) ~= "string" then
    error("unbase64 expects a string, got " .. type(s), 2)
  end
  s = s:gsub("%s", ""):gsub("=+$", "")
  local n = #s
  if n % 4 == 1 then
    return nil, "invalid base64: bad length"
  end
  local out = {}
  for i = 1, n, 4 do
    local v, k = 0, 0
    for j = i, math.min(i + 3, n) do
      local d = DEC[s:byte(j)]
      if not d then
        return nil, "invalid base64: character " .. ("%q"):format(s:sub(j, j)) .. " at " .. j
      end
      v = v << 6 | d
      k = k + 1
    end
    if k == 4 then
      out[#out + 1] = string.char(v >> 16, v >> 8 & 255, v & 255)
    elseif k == 3 then
      out[#out + 1] = string.char(v >> 10, v >> 2 & 255)
    else
      out[#out + 1] = string.char(v >> 4)
    end
  end
  return table.concat(out)
end

---Splits credentials off a URL as curl reads them: "http://us%40er:p%3Ass@host/" →
---"http://host/", "us@er", "p:ss" (percent-decoded; the last "@" of the authority ends them; no
---":" means an empty password). A URL without credentials comes back as it is, alone.
---@param url string
---@return string url
---@return string|nil user
---@return string|nil pass
function M.split_userinfo(url)
  local start = url:find("://", 1, true)
  if not start then
    return url
  end
  start = start + 3
  local stop = (url:find("[/?#]", start) or #url + 1) - 1
  local authority = url:sub(start, stop)
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  if not userinfo then
    return url
  end
  local user, pass = userinfo:match("^([^:]*):(.*)$")
  if not user then
    user, pass = userinfo, ""
  end
  return url:sub(1, start - 1) .. hostport .. url:sub(stop + 1), percent_decode(user), percent_decode(pass)
end

---The Authorization value of an `auth` option: { "user", "pass" } → Basic, { bearer = token } →
---Bearer; nil, message for anything else.
---@param auth table
---@return string|nil value
---@return string|nil err
function M.authorization(auth)
  if type(auth) ~= "table" then
    return nil, "auth must be a table { user, pass } or { bearer = token }"
  end
  if auth.bearer ~= nil then
    if type(auth.bearer) ~= "string" or auth.bearer == "" then
      return nil, "auth.bearer must be a non-empty string"
    end
    return "Bearer " .. auth.bearer
  end
  local user, pass = auth[1], auth[2]
  if type(user) ~= "string" or (pass ~= nil and type(pass) ~= "string") then
    return nil, "auth must be a table { user, pass } or { bearer = token }"
  end
  return "Basic " .. M.base64(user .. ":" .. (pass or ""))
end

return M
