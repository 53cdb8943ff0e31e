-- proxy.lua — which proxy a request goes through: the `proxy` option, or the environment as curl
-- reads it (plus HTTP_PROXY unless REQUEST_METHOD is set, the httpoxy guard), with no_proxy.
-- Returns what the C core takes: { kind = "http"|"socks5"|"socks5h", host=, port=, user=, pass= }.
local M = {}

local DEFAULT_PORT = 1080 -- curl's default for a proxy URL without a port

local function percent_decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local SCHEMES = { http = "http", socks5 = "socks5", socks5h = "socks5h" }

---Parses a proxy URL: "[scheme://][user[:pass]@]host[:port][/]".
---@return table|nil proxy, string|nil err
function M.parse(url)
  if type(url) ~= "string" or url == "" then
    return nil, "proxy must be a URL string or false"
  end
  if url:find("[%z\r\n\t ]") then
    return nil, "proxy URL contains a control character or space"
  end
  local scheme, rest = url:match("^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower() or "http"
  rest = rest or url
  local kind = SCHEMES[scheme]
  if not kind then
    return nil, ("proxy scheme '%s' is not supported (http, socks5, socks5h)"):format(scheme)
  end
  rest = rest:gsub("/$", "")
  if rest:find("[/?#]") then
    return nil, "proxy URL must not have a path: " .. url
  end
  local userinfo, hostport = rest:match("^(.*)@([^@]*)$")
  hostport = hostport or rest
  local user, pass
  if userinfo then
    user, pass = userinfo:match("^([^:]*):(.*)$")
    user = percent_decode(user or userinfo)
    pass = pass and percent_decode(pass)
  end
  local host, port = hostport:match("^%[([%x:.]+)%]:?(%d*)$")
  if not host then
    host, port = hostport:match("^([^:]+):?(%d*)$")
  end
  if not host or host == "" then
    return nil, "proxy URL has no host: " .. url
  end
  port = port ~= "" and tonumber(port) or DEFAULT_PORT
  if port < 1 or port > 65535 then
    return nil, "proxy port out of range: " .. url
  end
  return { kind = kind, host = host:lower(), port = port, user = user, pass = pass }
end

-- IPv4 text → 32-bit integer, or nil.
local function ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- IPv6 text → array of 8 16-bit groups, or nil.
local function ipv6(s)
  if not s:find(":", 1, true) then return nil end
  local head, tail = s:match("^(.-)::(.*)$")
  local function groups(part)
    local t = {}
    if part == "" then return t end
    for g in (part .. ":"):gmatch("([^:]*):") do
      local v4 = ipv4(g)
      if v4 then
        t[#t + 1] = v4 // 65536
        t[#t + 1] = v4 % 65536
      elseif g:match("^%x%x?%x?%x?$") then
        t[#t + 1] = tonumber(g, 16)
      else
        return nil
      end
    end
    return t
  end
  local h, t
  if head then
    h, t = groups(head), groups(tail)
    if not h or not t or #h + #t > 7 then return nil end
    for _ = 1, 8 - #h - #t do h[#h + 1] = 0 end
    for _, v in ipairs(t) do h[#h + 1] = v end
  else
    h = groups(s)
    if not h or #h ~= 8 then return nil end
  end
  return h
end

-- Does address text `ip` fall in "net/bits"?
local function in_cidr(ip, net, bits)
  local a4, n4 = ipv4(ip), ipv4(net)
  if a4 and n4 then
    if bits > 32 then return false end
    local span = 2 ^ (32 - bits)
    return a4 // span == n4 // span
  end
  local a6, n6 = ipv6(ip), ipv6(net)
  if not a6 or not n6 or bits > 128 then return false end
  for i = 1, 8 do
    local take = math.min(math.max(bits - (i - 1) * 16, 0), 16)
    if take == 0 then return true end
    local span = 2 ^ (16 - take)
    if a6[i] // span ~= n6[i] // span then return false end
  end
  return true
end

---Parses a no_proxy value into a list of rules.
function M.parse_no_proxy(value)
  local rules = {}
  for item in (value or ""):gmatch("[^,%s]+") do
    item = item:lower()
    if item == "*" then
      rules.all = true
    else
      local net, bits = item:match("^%[?([%x:.]+)%]?/(%d+)$")
      if net then
        rules[#rules + 1] = { cidr = net, bits = tonumber(bits) }
      else
        item = item:gsub("^%[(.*)%]$", "%1"):gsub("^%.", ""):gsub("%.$", "")
        rules[#rules + 1] = { name = item }
      end
    end
  end
  return rules
end

---True when host (a name or an address, without brackets) is excluded by the rules: an equal
---name or address, a domain suffix at a label boundary, an address inside a CIDR range, or "*".
function M.bypass(host, rules)
  if rules.all then return true end
  host = host:lower():gsub("%.$", "")
  local is_ip = ipv4(host) or ipv6(host)
  for _, r in ipairs(rules) do
    if r.cidr then
      if is_ip and in_cidr(host, r.cidr, r.bits) then return true end
    elseif host == r.name then
      return true
    elseif not is_ip and #host > #r.name and host:sub(-#r.name - 1) == "." .. r.name then
      return true
    end
  end
  return false
end

-- The environment, read once: variables do not change under a running script.
local function env(...)
  for i = 1, select("#", ...) do
    local name = select(i, ...)
    local v = os.getenv(name)
    if v and v ~= "" then return v, name end
  end
end

local function from_env()
  local cgi = os.getenv("REQUEST_METHOD") ~= nil
  local http_v, http_n
  if cgi then
    http_v, http_n = env("http_proxy")
  else
    http_v, http_n = env("http_proxy", "HTTP_PROXY")
  end
  local all_v, all_n = env("all_proxy", "ALL_PROXY")
  local https_v, https_n = env("https_proxy", "HTTPS_PROXY")
  local function load(v, n)
    if not v then return nil end
    local p, err = M.parse(v)
    return p or { error = n .. ": " .. err }
  end
  return {
    http = load(http_v, http_n) or load(all_v, all_n),
    https = load(https_v, https_n) or load(all_v, all_n),
    no_proxy = M.parse_no_proxy(env("no_proxy", "NO_PROXY")),
  }
end

M.env = from_env()
---True when the environment names any proxy: otherwise requests without a `proxy` option skip
---this module entirely.
M.env_active = M.env.http ~= nil or M.env.https ~= nil

---The proxy for a request to `scheme://host`, given the `proxy` option (nil: the environment).
---@return table|false proxy (false: direct), or nil, err on a bad option or variable
function M.choose(scheme, host, option)
  if option == false then
    return false
  end
  if option ~= nil then
    return M.parse(option) -- an explicit proxy is used as given (no_proxy is for the environment)
  end
  local p = M.env[scheme]
  if not p then
    return false
  end
  if p.error then
    return nil, p.error
  end
  if M.bypass(host, M.env.no_proxy) then
    return false
  end
  return p
end

return M
