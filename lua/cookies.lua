-- cookies.lua — a cookie jar after RFC 6265: Set-Cookie parsing (cookie dates, Max-Age, Domain,
-- Path, Secure, HttpOnly, SameSite), storage (host-only and domain cookies, no cookie for a public
-- suffix per Debian's publicsuffix list, replacement and deletion), the Cookie header for a URL,
-- and Netscape cookies.txt files as curl -b/-c read and write them.
local C = require "_http"

local M = {}

M.PUBLIC_SUFFIX_FILE = "/usr/share/publicsuffix/public_suffix_list.dat"

-- Bounds, so a server cannot grow the jar without limit (RFC 6265 §6.1 asks for at least 4096
-- bytes a cookie, 50 a domain and 3000 in all).
local MAX_COOKIE_BYTES = 4096
local MAX_PER_DOMAIN = 180
local MAX_TOTAL = 3000
local MAX_AGE = 1 << 40 -- seconds (35,000 years)

---------------------------------------------------------------------------------------------------
-- Public suffixes

-- RFC 3492 Punycode of one label (the list is written in Unicode, URL hosts in ASCII).
local function punycode(label)
  local cps = {}
  for _, c in utf8.codes(label) do
    cps[#cps + 1] = c
  end
  local out = {}
  for _, c in ipairs(cps) do
    if c < 128 then
      out[#out + 1] = string.char(c)
    end
  end
  local b = #out
  local h = b
  if b > 0 then
    out[#out + 1] = "-"
  end
  local BASE, TMIN, TMAX, SKEW, DAMP = 36, 1, 26, 38, 700
  local function adapt(delta, numpoints, first)
    delta = first and delta // DAMP or delta // 2
    delta = delta + delta // numpoints
    local k = 0
    while delta > ((BASE - TMIN) * TMAX) // 2 do
      delta = delta // (BASE - TMIN)
      k = k + BASE
    end
    return k + ((BASE - TMIN + 1) * delta) // (delta + SKEW)
  end
  local function digit(d)
    return string.char(d < 26 and 97 + d or 22 + d) -- a..z, then 0..9
  end
  local n, delta, bias = 128, 0, 72
  while h < #cps do
    local m = math.huge
    for _, c in ipairs(cps) do
      if c >= n and c < m then
        m = c
      end
    end
    delta = delta + (m - n) * (h + 1)
    n = m
    for _, c in ipairs(cps) do
      if c < n then
        delta = delta + 1
      elseif c == n then
        local q, k = delta, BASE
        while true do
          local t = k <= bias and TMIN or (k >= bias + TMAX and TMAX or k - bias)
          if q < t then
            break
          end
          out[#out + 1] = digit(t + (q - t) % (BASE - t))
          q = (q - t) // (BASE - t)
          k = k + BASE
        end
        out[#out + 1] = digit(q)
        bias = adapt(delta, h + 1, h == b)
        delta = 0
        h = h + 1
      end
    end
    delta = delta + 1
    n = n + 1
  end
  return "xn--" .. table.concat(out)
end

---A domain name with its non-ASCII labels in Punycode ("公司.cn" → "xn--55qx5d.cn"); nil when
---it is not valid UTF-8.
---@param name string
---@return string|nil
function M.to_ascii(name)
  if not name:find("[\128-\255]") then
    return name
  end
  if not utf8.len(name) then
    return nil
  end
  return (name:gsub("[^.]+", function(label)
    if label:find("[\128-\255]") then
      return punycode(label)
    end
  end))
end

local psl -- { rules = set, wild = set of X for "*.X", except = set of X for "!X" }, loaded once

local function load_psl(path)
  local list = { rules = {}, wild = {}, except = {} }
  local f = io.open(path)
  if not f then
    return list -- without a list only single labels ("com", "localhost") count as suffixes
  end
  for line in f:lines() do
    local rule = line:match("^%s*([^%s/][^%s]*)") -- "//" starts a comment
    if rule then
      rule = M.to_ascii(rule:lower())
      if rule then
        local first = rule:sub(1, 1)
        if first == "!" then
          list.except[rule:sub(2)] = true
        elseif rule:sub(1, 2) == "*." then
          list.wild[rule:sub(3)] = true
        else
          list.rules[rule] = true
        end
      end
    end
  end
  f:close()
  return list
end

---Whether a (lower-case, ASCII) domain is a public suffix: a name under which anyone may
---register, such as "com", "co.uk" or "github.io" (the whole list, ICANN and private sections).
---A single label not on the list counts too (the list's implicit "*" rule).
---@param domain string
---@return boolean
function M.is_public_suffix(domain)
  psl = psl or load_psl(M.PUBLIC_SUFFIX_FILE)
  if psl.except[domain] then
    return false
  end
  if psl.rules[domain] then
    return true
  end
  local parent = domain:match("^[^.]+%.(.+)$")
  if not parent then
    return true
  end
  return psl.wild[parent] == true
end

---------------------------------------------------------------------------------------------------
-- Dates (RFC 6265 §5.1.1)

local MONTHS = { jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
                 jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12 }
local MONTH_DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function leap(y)
  return y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)
end

---Parses a cookie date ("Wed, 21 Oct 2015 07:28:00 GMT" and the many forms servers send) into
---seconds since the epoch (UTC); nil when it is not one.
---@param s string
---@return integer|nil
function M.parse_date(s)
  local hour, minute, second, day, month, year
  -- delimiters: %x09 / %x20-2F / %x3B-40 / %x5B-60 / %x7B-7E
  for token in s:gmatch("[^\t -/;-@[-`{-~]+") do
    local h, mi, se, rest = token:match("^(%d%d?):(%d%d?):(%d%d?)(.*)$")
    if not hour and h and not rest:match("^%d") then
      hour, minute, second = tonumber(h), tonumber(mi), tonumber(se)
    else
      local dd, drest = token:match("^(%d%d?)(.*)$")
      if not day and dd and not drest:match("^%d") then
        day = tonumber(dd)
      elseif not month and MONTHS[token:sub(1, 3):lower()] then
        month = MONTHS[token:sub(1, 3):lower()]
      else
        local yy, yrest = token:match("^(%d%d%d?%d?)(.*)$")
        if not year and yy and not yrest:match("^%d") then
          year = tonumber(yy)
        end
      end
    end
  end
  if not (hour and day and month and year) then
    return nil
  end
  if year >= 70 and year <= 99 then
    year = year + 1900
  elseif year >= 0 and year <= 69 then
    year = year + 2000
  end
  if day < 1 or year < 1601 or hour > 23 or minute > 59 or second > 59 then
    return nil
  end
  if day > MONTH_DAYS[month] or (month == 2 and day == 29 and not leap(year)) then
    return nil
  end
  return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
end

---------------------------------------------------------------------------------------------------
-- Parsing Set-Cookie (RFC 6265 §5.2)

local function trim(s)
  return s:match("^[ \t]*(.-)[ \t]*$")
end

local SAMESITE = { strict = "Strict", lax = "Lax", none = "None" }

---Parses one Set-Cookie value into its name, value and attributes (unprocessed: the jar applies
---them against the request's URL). nil when the cookie must be ignored.
---@param s string
---@return table|nil
function M.parse(s)
  local pair, attrs = s:match("^([^;]*)(.*)$")
  local name, value = pair:match("^([^=]*)=(.*)$")
  if not name then
    return nil -- no "=": ignored (RFC 6265 §5.2 step 2)
  end
  name, value = trim(name), trim(value)
  if name == "" or #name + #value > MAX_COOKIE_BYTES then
    return nil
  end
  -- control characters (RFC 6265bis): they could never go back in a Cookie header
  if (name .. value):find("[%z\1-\8\10-\31\127]") then
    return nil
  end
  local c = { name = name, value = value }
  for av in attrs:gmatch(";([^;]*)") do
    local k, v = av:match("^([^=]*)=?(.*)$")
    k, v = trim(k):lower(), trim(v)
    if k == "expires" then
      c.expires = M.parse_date(v) or c.expires
    elseif k == "max-age" then
      if v:match("^%-?%d+$") then
        -- clamped far beyond any real use, so that now + max_age cannot overflow
        local n = math.tointeger(tonumber(v)) or (v:sub(1, 1) == "-" and -1 or MAX_AGE)
        c.max_age = math.max(-1, math.min(n, MAX_AGE))
      end
    elseif k == "domain" then
      if v ~= "" then
        c.domain = v:gsub("^%.", ""):lower()
      end
    elseif k == "path" then
      c.path = v:sub(1, 1) == "/" and v or false -- false: the default path
    elseif k == "secure" then
      c.secure = true
    elseif k == "httponly" then
      c.http_only = true
    elseif k == "samesite" then
      c.same_site = SAMESITE[v:lower()]
    end
  end
  return c
end

-- Splits a Set-Cookie header whose repeats were joined with ", " (res.headers does that) back
-- into cookies: a split falls at each ", " followed by "name=", which a date ("Wed, 21 Oct ...")
-- never is. A value that itself holds ", x=" would be split wrongly; servers do not send that.
---@param joined string
---@return string[]
function M.split_set_cookie(joined)
  if not joined:find(", ", 1, true) then
    return { joined }
  end
  local out, start, pos = {}, 1, 1
  while true do
    local at = joined:find(", ", pos, true)
    if not at then
      break
    end
    if joined:find("^[!#$%%&'*+%-.^_`|~%w]+=", at + 2) then
      out[#out + 1] = joined:sub(start, at - 1)
      start = at + 2
    end
    pos = at + 2
  end
  out[#out + 1] = joined:sub(start)
  return out
end

---------------------------------------------------------------------------------------------------
-- The jar

local function is_ip(host)
  return host:find(":", 1, true) ~= nil or host:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- §5.1.3: host equals domain, or ends with "." .. domain and is a name, not an address.
local function domain_match(host, domain)
  if host == domain then
    return true
  end
  return #host > #domain and host:sub(-#domain - 1) == "." .. domain and not is_ip(host)
end

-- §5.1.4
local function default_path(path)
  if path:sub(1, 1) ~= "/" then
    return "/"
  end
  local last = path:match("^(.*)/")
  if last == "" then
    return "/"
  end
  return last
end

local function path_match(request_path, cookie_path)
  if request_path == cookie_path then
    return true
  end
  if request_path:sub(1, #cookie_path) ~= cookie_path then
    return false
  end
  return cookie_path:sub(-1) == "/" or request_path:sub(#cookie_path + 1, #cookie_path + 1) == "/"
end

-- scheme, host and path of a URL; nil, message when it is not an http(s) URL.
local function url_parts(url)
  local u, err = C.parse_url(url)
  if not u then
    return nil, err
  end
  local path = u.target:match("^[^?]*")
  return u.scheme == "https", u.host, path ~= "" and path or "/"
end

---@class Cookie
---@field name string
---@field value string
---@field domain string       lower case, no leading dot
---@field host_only boolean   true: only for exactly `domain` (no Domain attribute was given)
---@field path string
---@field secure boolean      sent over https only
---@field http_only boolean
---@field same_site string|nil "Strict", "Lax" or "None"
---@field expires number|nil  seconds since the epoch; nil for a session cookie
---@field creation integer    order of creation (ties in the Cookie header go to the older)

---@class Jar
---@field now fun(): number
local Jar = {}
Jar.__index = Jar

---A new, empty jar.
---@param opts table|nil { now = function returning seconds since the epoch (default os.time) }
---@return Jar
function M.new(opts)
  opts = opts or {}
  return setmetatable({
    domains = {},  -- domain → { [path .. "\0" .. name] = Cookie }
    counts = {},   -- domain → number of cookies
    total = 0,
    seq = 0,       -- creation order
    now = opts.now or os.time,
  }, Jar)
end

local function key_of(c)
  return c.path .. "\0" .. c.name
end

function Jar:_remove(domain, key)
  local bucket = self.domains[domain]
  if bucket and bucket[key] then
    bucket[key] = nil
    self.total = self.total - 1
    local n = self.counts[domain] - 1
    if n == 0 then
      self.domains[domain], self.counts[domain] = nil, nil
    else
      self.counts[domain] = n
    end
  end
end

-- Evicts from `domain` (or, with nil, from the whole jar) the expired cookies, or if none the
-- least recently used one.
function Jar:_evict(domain)
  local now = self.now()
  local victim_d, victim_k, oldest
  for d, bucket in pairs(self.domains) do
    if domain == nil or d == domain then
      for k, c in pairs(bucket) do
        if c.expires and c.expires <= now then
          self:_remove(d, k)
          return
        end
        if not oldest or c.last_access < oldest then
          victim_d, victim_k, oldest = d, k, c.last_access
        end
      end
    end
  end
  if victim_d then
    self:_remove(victim_d, victim_k)
  end
end

function Jar:_insert(c)
  local key = key_of(c)
  local bucket = self.domains[c.domain]
  local old = bucket and bucket[key]
  if old then
    c.creation = old.creation -- §5.3 step 11: a replacement keeps its creation time
    self:_remove(c.domain, key)
  end
  if c.expires and c.expires <= self.now() then
    return false -- already expired: the old one (if any) is deleted, nothing stored
  end
  if not c.creation then
    self.seq = self.seq + 1
    c.creation = self.seq
  end
  c.last_access = c.last_access or self.now()
  if (self.counts[c.domain] or 0) >= MAX_PER_DOMAIN then
    self:_evict(c.domain)
  end
  if self.total >= MAX_TOTAL then
    self:_evict(nil)
  end
  bucket = self.domains[c.domain]
  if not bucket then
    bucket = {}
    self.domains[c.domain] = bucket
  end
  bucket[key] = c
  self.counts[c.domain] = (self.counts[c.domain] or 0) + 1
  self.total = self.total + 1
  return true
end

-- RFC 6265bis "leave secure cookies alone": an insecure origin may not shadow a Secure cookie of
-- the same name whose domain and path overlap the new one's.
function Jar:_shadows_secure(c)
  for d, bucket in pairs(self.domains) do
    if domain_match(d, c.domain) or domain_match(c.domain, d) then
      for _, old in pairs(bucket) do
        if old.secure and old.name == c.name and path_match(c.path, old.path) then
          return true
        end
      end
    end
  end
  return false
end

-- Stores one Set-Cookie value received from (https, host, path); true when stored or deleted.
function Jar:_store_one(https, host, path, s)
  local p = M.parse(s)
  if not p then
    return false
  end
  local now = self.now()
  local expires
  if p.max_age then
    expires = p.max_age <= 0 and -math.huge or now + p.max_age
  else
    expires = p.expires
  end
  local domain, host_only = host, true
  if p.domain then
    local d = M.to_ascii(p.domain)
    if not d then
      return false
    end
    if not is_ip(d) and M.is_public_suffix(d) then
      if d ~= host then
        return false -- a cookie for every site under a public suffix
      end
      -- a public suffix that is the host itself: a host-only cookie (§5.3 step 5)
    elseif domain_match(host, d) then
      domain, host_only = d, false
    else
      return false
    end
  end
  local secure = p.secure == true
  if secure and not https then
    return false -- only a secure origin may set a Secure cookie (RFC 6265bis, as curl does)
  end
  local name = p.name
  local lname = name:sub(1, 9):lower()
  if lname == "__secure-" and not secure then
    return false
  end
  if name:sub(1, 7):lower() == "__host-" and not (secure and host_only and p.path == "/") then
    return false
  end
  local c = {
    name = name, value = p.value, domain = domain, host_only = host_only,
    path = p.path or default_path(path), secure = secure, http_only = p.http_only == true,
    same_site = p.same_site, expires = expires,
  }
  if not https and self:_shadows_secure(c) then
    return false
  end
  self:_insert(c)
  return true
end

---Stores the cookies of Set-Cookie values received in answer to a request for url.
---@param url string
---@param set_cookie string|string[] one Set-Cookie value, or several
---@return integer stored how many were stored (or deleted an older one); the others were refused
function Jar:store(url, set_cookie)
  local https, host, path = url_parts(url)
  if https == nil then
    return 0
  end
  if type(set_cookie) == "string" then
    set_cookie = { set_cookie }
  end
  local n = 0
  for i = 1, #set_cookie do
    if self:_store_one(https, host, path, set_cookie[i]) then
      n = n + 1
    end
  end
  return n
end

-- The cookies to send to url, in Cookie header order (longer paths first, then older first).
function Jar:_matching(url)
  local https, host, path = url_parts(url)
  if https == nil then
    return {}
  end
  local now = self.now()
  local found = {}
  local d = host
  while d do
    local bucket = self.domains[d]
    if bucket then
      for k, c in pairs(bucket) do
        if c.expires and c.expires <= now then
          self:_remove(d, k)
        elseif (d == host or not c.host_only) and (https or not c.secure) and path_match(path, c.path) then
          found[#found + 1] = c
        end
      end
    end
    d = not is_ip(host) and d:match("^[^.]+%.(.+)$") or nil
  end
  table.sort(found, function(a, b)
    if #a.path ~= #b.path then
      return #a.path > #b.path
    end
    return a.creation < b.creation
  end)
  for i = 1, #found do
    found[i].last_access = now
  end
  return found
end

---The Cookie header value the jar would send with a request for url ("a=1; b=2"), or nil when
---no cookie applies.
---@param url string
---@return string|nil
function Jar:get(url)
  local found = self:_matching(url)
  if #found == 0 then
    return nil
  end
  local parts = {}
  for i = 1, #found do
    parts[i] = found[i].name .. "=" .. found[i].value
  end
  return table.concat(parts, "; ")
end

---Every cookie in the jar (copies; expired ones left out), sorted by domain, path, name.
---@return Cookie[]
function Jar:list()
  local now, out = self.now(), {}
  for _, bucket in pairs(self.domains) do
    for _, c in pairs(bucket) do
      if not (c.expires and c.expires <= now) then
        local copy = {}
        for k, v in pairs(c) do
          copy[k] = v
        end
        copy.last_access = nil
        out[#out + 1] = copy
      end
    end
  end
  table.sort(out, function(a, b)
    if a.domain ~= b.domain then return a.domain < b.domain end
    if a.path ~= b.path then return a.path < b.path end
    return a.name < b.name
  end)
  return out
end

---Removes every cookie, or those of one domain (exactly that domain, as stored).
---@param domain string|nil
function Jar:clear(domain)
  if domain then
    local bucket = self.domains[domain:lower()]
    if bucket then
      self.total = self.total - self.counts[domain:lower()]
      self.domains[domain:lower()], self.counts[domain:lower()] = nil, nil
    end
  else
    self.domains, self.counts, self.total = {}, {}, 0
  end
end

---------------------------------------------------------------------------------------------------
-- Netscape cookies.txt (curl -b FILE / -c FILE)

---Writes the jar to path in the Netscape format curl reads with -b and writes with -c: one line a
---cookie, tab-separated (domain, subdomains TRUE/FALSE, path, secure TRUE/FALSE, expiry in epoch
---seconds with 0 for a session cookie, name, value); HttpOnly cookies start "#HttpOnly_".
---SameSite has no column and is not kept. The file is replaced whole (written beside, renamed).
---@param path string
---@return boolean|nil ok
---@return string|nil err
function Jar:save(path)
  local lines = {
    "# Netscape HTTP Cookie File",
    "# https://curl.se/docs/http-cookies.html",
    "# This file was generated by luafetch. Edit at your own risk.",
    "",
  }
  for _, c in ipairs(self:list()) do
    lines[#lines + 1] = table.concat({
      (c.http_only and "#HttpOnly_" or "") .. (c.host_only and "" or ".") .. c.domain,
      c.host_only and "FALSE" or "TRUE",
      c.path,
      c.secure and "TRUE" or "FALSE",
      ("%d"):format(c.expires and math.floor(c.expires) or 0),
      c.name,
      c.value,
    }, "\t")
  end
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "w")
  if not f then
    return nil, "cannot write cookies: " .. tostring(err)
  end
  local ok, werr = f:write(table.concat(lines, "\n"), "\n")
  local closed, cerr = f:close()
  if not ok or not closed then
    os.remove(tmp)
    return nil, "cannot write cookies to " .. tmp .. ": " .. tostring(werr or cerr)
  end
  local renamed, rerr = os.rename(tmp, path)
  if not renamed then
    os.remove(tmp)
    return nil, "cannot write cookies: " .. tostring(rerr)
  end
  return true
end

---Adds the cookies of a Netscape cookies.txt file (as curl -c writes it) to the jar; a cookie
---already in the jar with the same name, domain and path is replaced. Expired lines are skipped;
---an expiry of 0 is a session cookie.
---@param path string
---@return integer|nil loaded how many cookies were added
---@return string|nil err
function Jar:load(path)
  local f, err = io.open(path)
  if not f then
    return nil, "cannot read cookies: " .. tostring(err)
  end
  local n, now = 0, self.now()
  for line in f:lines() do
    line = line:gsub("\r$", "")
    local http_only = false
    if line:sub(1, 10) == "#HttpOnly_" then
      http_only = true
      line = line:sub(11)
    end
    if line:sub(1, 1) ~= "#" and line:find("\t", 1, true) then
      local fields = {}
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do
        fields[#fields + 1] = field
      end
      local domain, sub, cpath, secure, expires, name, value = table.unpack(fields, 1, 7)
      expires = tonumber(expires)
      if name and name ~= "" and expires and domain ~= "" then
        local dot = domain:sub(1, 1) == "."
        local c = {
          name = name, value = value or "", domain = (dot and domain:sub(2) or domain):lower(),
          host_only = not (dot or sub == "TRUE"),
          path = cpath ~= "" and cpath or "/", secure = secure == "TRUE",
          http_only = http_only, expires = expires ~= 0 and expires or nil,
        }
        if not (c.expires and c.expires <= now) and self:_insert(c) then
          n = n + 1
        end
      end
    end
  end
  f:close()
  return n
end

return M
