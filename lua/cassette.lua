-- cassette.lua — record every HTTP exchange (one per redirect hop) as HAR 1.2, and replay a HAR
-- in place of the network, at the hop seam of lua/http.lua (so sessions, redirects, retries and
-- plugins run as live); the virtual clock (_task.clock) for a replay that runs a schedule.
-- DESIGN.md "Record, replay and virtual time — contract"; docs/record-replay.md.
local cjson = require "cjson"
local http = require "http"
local T = require "_task"
local CODEC = require "codec"

local M = {}

M.DEFAULT_BODY_MAX = 1024 * 1024
local REDACTED = "[redacted]"
local SECRET = { authorization = true, ["proxy-authorization"] = true, cookie = true, ["set-cookie"] = true }

local recorder, replayer -- the active ones (nil when off)

-- This lua-cjson (2.1.0) has no array marker: empty lists are this string until encoded.
local EMPTY = "\1har-empty-array\1"
local function list(t) return #t > 0 and t or EMPTY end
local function encode(v)
  return (cjson.encode(v):gsub('"\\u0001har%-empty%-array\\u0001"', "[]"))
end

---------------------------------------------------------------------------------------------------
-- Time: the wall clock as the (possibly virtual) monotonic clock moves, for startedDateTime and
-- for os.time/os.date under the virtual clock.
local real_time, real_date = os.time, os.date
local wall0, mono0 = T.wall(), T.now()

local function wall_now()
  return wall0 + (T.now() - mono0)
end

local function iso8601(t)
  local s = math.floor(t)
  return real_date("!%Y-%m-%dT%H:%M:%S", s) .. string.format(".%03dZ", math.floor((t - s) * 1000))
end

-- Turns the virtual clock on (true) or off; os.time()/os.date() follow it while it is on.
local function set_virtual(on)
  if on then
    wall0, mono0 = T.wall(), T.now()
    T.clock("virtual")
    os.time = function(t)
      if t ~= nil then return real_time(t) end
      return math.floor(wall_now())
    end
    os.date = function(fmt, t)
      return real_date(fmt, t or math.floor(wall_now()))
    end
  else
    T.clock("real")
    os.time, os.date = real_time, real_date
    wall0, mono0 = T.wall(), T.now()
  end
end
M._set_virtual = set_virtual

---------------------------------------------------------------------------------------------------
-- URLs: the query split into pairs, and a key with the pairs sorted (parameters in any order).
local function split_query(url)
  local base, query = url:match("^([^?#]*)%??([^#]*)")
  local pairs_ = {}
  if query and query ~= "" then
    for part in query:gmatch("[^&]+") do
      local k, v = part:match("^([^=]*)=?(.*)$")
      pairs_[#pairs_ + 1] = { name = CODEC.urldecode(k), value = CODEC.urldecode(v) }
    end
  end
  return base or url, pairs_
end

local function url_key(url)
  local base, q = split_query(url)
  -- default ports and case of scheme/host do not tell requests apart
  local u = http.parse_url(base)
  if u then
    local default = (u.scheme == "http" and u.port == 80) or (u.scheme == "https" and u.port == 443)
    base = u.scheme:lower() .. "://" .. u.host:lower() .. (default and "" or ":" .. u.port)
      .. (base:match("^%a[%w+.-]*://[^/]*(/.*)$") or "/")
  end
  local items = {}
  for i, p in ipairs(q) do items[i] = p.name .. "=" .. p.value end
  table.sort(items)
  return base .. "?" .. table.concat(items, "&")
end

---------------------------------------------------------------------------------------------------
-- Recording

local function header_list(headers, redact)
  local list = {}
  for name, value in pairs(headers or {}) do
    local values = type(value) == "table" and value or { value }
    for _, v in ipairs(values) do
      v = tostring(v)
      if redact and SECRET[name:lower()] then v = REDACTED end
      list[#list + 1] = { name = name, value = v }
    end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

local function request_cookies(headers, redact)
  local out = {}
  for name, value in pairs(headers or {}) do
    if name:lower() == "cookie" then
      for pair in tostring(value):gmatch("[^;]+") do
        local k, v = pair:match("^%s*([^=]+)=?(.*)$")
        if k then out[#out + 1] = { name = k, value = redact and REDACTED or v } end
      end
    end
  end
  return out
end

-- The Set-Cookie values as received (the core keeps them apart), else the joined header.
local function set_cookie_values(res)
  local details = rawget(res, "_details")
  if details then
    return require("_http").details_values(details, "set-cookie")
  end
  local v = res.headers["set-cookie"]
  return v and { v } or {}
end

local function is_utf8(s)
  return utf8.len(s) ~= nil
end

local function content_of(body, mime, max)
  local c = { size = #body, mimeType = mime or "" }
  if #body > max then
    body = body:sub(1, max)
    c._truncated = true
  end
  if is_utf8(body) then
    c.text = body
  else
    c.text, c.encoding = CODEC.base64(body), "base64"
  end
  return c
end

local function ms(x) return x and math.floor(x * 1000 * 1000 + 0.5) / 1000 or -1 end

local function har_timings(t)
  local dns, connect, tls = t.dns or 0, t.connect or 0, t.tls or 0
  local ttfb, total = t.ttfb or 0, t.total or 0
  return {
    blocked = -1, dns = ms(dns), connect = ms(connect + tls), ssl = ms(tls), send = 0,
    wait = ms(math.max(ttfb - dns - connect - tls, 0)), receive = ms(math.max(total - ttfb, 0)),
  }
end

local function entry_of(req, res, started, opts)
  local redact = not opts.secrets
  local body = req.body
  local _, query = split_query(req.url)
  local request = {
    method = req.method or "GET", url = req.url, httpVersion = "HTTP/1.1",
    headers = list(header_list(req.headers, redact)), queryString = list(query),
    cookies = list(request_cookies(req.headers, redact)), headersSize = -1,
    bodySize = type(body) == "string" and #body or 0,
  }
  if type(body) == "string" then
    local mime = ""
    for k, v in pairs(req.headers or {}) do
      if k:lower() == "content-type" then mime = tostring(v) end
    end
    request.postData = content_of(body, mime, opts.body_max)
    request.postData.size = nil
  end
  local headers = {}
  for name, value in pairs(res.headers) do
    if name ~= "set-cookie" then
      headers[#headers + 1] = { name = name, value = value }
    end
  end
  local cookies = {}
  for _, v in ipairs(set_cookie_values(res)) do
    headers[#headers + 1] = { name = "set-cookie", value = redact and REDACTED or v }
    local k, val = v:match("^%s*([^=;]+)=?([^;]*)")
    if k then cookies[#cookies + 1] = { name = k, value = redact and REDACTED or val } end
  end
  table.sort(headers, function(a, b) return a.name < b.name end)
  local t = res.timings
  return {
    startedDateTime = iso8601(started), time = ms(t.total),
    request = request,
    response = {
      status = res.status, statusText = res.reason or "", httpVersion = "HTTP/" .. (res.version or "1.1"),
      headers = list(headers), cookies = list(cookies),
      content = content_of(res.body or "", res.headers["content-type"], opts.body_max),
      redirectURL = res.headers.location or "", headersSize = -1, bodySize = #(res.body or ""),
    },
    cache = {}, timings = har_timings(t),
  }
end

local Recorder = {}
Recorder.__index = Recorder

local TRAILER = "\n]}}\n"

-- The file is valid JSON after every entry: each one is written over the closing brackets,
-- which follow it again in the same write (a script that dies or is killed leaves a whole HAR).
local function open_recorder(path, opts)
  local f, err = io.open(path, "w")
  if not f then return nil, "cannot record to " .. path .. ": " .. err end
  local head = cjson.encode({ version = "1.2", creator = { name = "luafetch", version = "1" } })
  f:write('{"log":', head:sub(1, -2), ',"entries":[', TRAILER)
  f:flush()
  local r = setmetatable({ f = f, path = path, n = 0, opts = {
    secrets = opts and opts.secrets or false,
    body_max = opts and opts.body_max or M.DEFAULT_BODY_MAX,
  } }, Recorder)
  r.pos = f:seek("cur") - #TRAILER
  return r
end

function Recorder:add(entry)
  if not self.f then return end
  local text = (self.n > 0 and ",\n" or "\n") .. encode(entry)
  self.f:seek("set", self.pos)
  self.f:write(text, TRAILER)
  self.f:flush()
  self.pos = self.pos + #text
  self.n = self.n + 1
end

function Recorder:close()
  -- streamed bodies still open: their entries now, with what arrived so far
  for finish in pairs(self.open or {}) do finish("not read to its end before the recording ended") end
  if self.f then
    self.f:close()
    self.f = nil
  end
end

---------------------------------------------------------------------------------------------------
-- Replay

-- A body from a file or a function (not recorded) matches on the method and URL alone.
local function body_key(method, body)
  if type(body) ~= "string" then return "" end
  return body
end

local function decode_text(content)
  if not content or content.text == nil then return "" end
  if content.encoding == "base64" then
    return CODEC.unbase64(content.text) or ""
  end
  return content.text
end

-- Chromium writes "http/2.0" and "h3", Firefox "HTTP/2" and "HTTP/3"
local VERSION = { ["http/2.0"] = "2", ["http/2"] = "2", ["h2"] = "2", ["h3"] = "3", ["http/3"] = "3" }

local function response_of(e)
  local r = e.response
  local headers = {}
  for _, h in ipairs(r.headers or {}) do
    local name = h.name:lower()
    if name:sub(1, 1) ~= ":" then -- HTTP/2 pseudo-headers in browsers' HARs
      headers[name] = headers[name] and headers[name] .. ", " .. h.value or h.value
    end
  end
  local v = tostring(r.httpVersion or "HTTP/1.1"):lower()
  local t = e.timings or {}
  local function s(x) return (type(x) == "number" and x > 0) and x / 1000 or 0 end
  local dns, ssl = s(t.dns), s(t.ssl)
  local connect = math.max(s(t.connect) - ssl, 0)
  local total = type(e.time) == "number" and e.time / 1000 or 0
  return http._response({
    status = math.floor(r.status), reason = r.statusText or "", headers = headers,
    body = decode_text(r.content),
    version = VERSION[v] or VERSION["http/" .. (v:match("^http/(%d)$") or "")] or v:match("^http/(%d%.%d)$") or "1.1",
    timings = { dns = dns, connect = connect, tls = ssl, ttfb = dns + connect + ssl + s(t.send) + s(t.wait), total = total },
    reused = false,
  })
end

local function fail_start(msg)
  error({ exit_code = 2, message = msg }, 0)
end

-- Loads and indexes a HAR; raises {exit_code = 2} naming what is wrong.
local function load_har(path)
  local f, err = io.open(path, "rb")
  if not f then fail_start("replay: cannot open " .. tostring(err)) end
  local text = f:read("a")
  f:close()
  local ok, har = pcall(require("cjson.safe").decode, text)
  if not ok or type(har) ~= "table" then
    fail_start("replay: " .. path .. " is not valid JSON (truncated?): " .. tostring(har or "empty"))
  end
  local entries = type(har.log) == "table" and har.log.entries
  if type(entries) ~= "table" then
    fail_start("replay: " .. path .. " is not a HAR file (no log.entries)")
  end
  local index, list = {}, {}
  for i, e in ipairs(entries) do
    local req, res = type(e) == "table" and e.request, type(e) == "table" and e.response
    if type(req) ~= "table" or type(req.url) ~= "string" or type(res) ~= "table" then
      fail_start(("replay: %s: entry %d has no request URL or response"):format(path, i))
    end
    -- a browser lists requests it never completed (blocked, canceled) with status 0: skip them
    if tonumber(res.status) and res.status > 0 then
      local method = (req.method or "GET"):upper()
      local body = req.postData and decode_text(req.postData) or ""
      local key = method .. " " .. url_key(req.url) .. " " .. body_key(method, body)
      local rec = { entry = e, method = method, url = req.url, key = key }
      list[#list + 1] = rec
      index[key] = index[key] or { next = 1 }
      table.insert(index[key], rec)
    end
  end
  return { path = path, index = index, list = list }
end

local function common_prefix(a, b)
  local n = 0
  for i = 1, math.min(#a, #b) do
    if a:byte(i) ~= b:byte(i) then break end
    n = i
  end
  return n
end

local function closest(rp, method, url)
  local best, score = nil, -1
  for _, rec in ipairs(rp.list) do
    local s = common_prefix(rec.url, url) + (rec.method == method and 1000 or 0)
    if s > score then best, score = rec, s end
  end
  return best
end

local function answer(rp, req)
  local method = (req.method or "GET"):upper()
  local body = type(req.body) == "string" and req.body or ""
  local key = method .. " " .. url_key(req.url) .. " " .. body_key(method, body)
  local slot = rp.index[key]
  if not slot then
    local near = closest(rp, method, req.url)
    local msg = ("no recorded response in %s for %s %s%s"):format(rp.path, method, req.url,
      body ~= "" and (" (body of %d bytes)"):format(#body) or "")
    msg = msg .. (near and ("; closest recorded: %s %s"):format(near.method, near.url) or "; the HAR has no entries")
    return nil, msg
  end
  local rec = slot[slot.next]
  if slot.next < #slot then slot.next = slot.next + 1 end
  local res = response_of(rec.entry)
  if T.clock() == "virtual" and res.timings.total > 0 then
    T.sleep(res.timings.total) -- the recorded time passes on the virtual clock
  end
  return res
end

---------------------------------------------------------------------------------------------------
-- A streamed body (output, sink, stream = true) arrives after the hop returns: its entry is
-- written when the body ends, fails or is closed, with the bytes seen (the first body_max kept)
-- and their count as content.size.

local function record_streamed(rec, req, res, started)
  local max, kept, size, parts, done = rec.opts.body_max, 0, 0, {}, false
  local read, close = res.read, res.close
  local function finish(why)
    if done then return end
    done = true
    rec.open[finish] = nil
    local body = table.concat(parts)
    rawset(res, "body", body)
    local entry = entry_of(req, res, started, rec.opts)
    rawset(res, "body", nil)
    entry.response.content.size, entry.response.bodySize = size, size
    if size > kept then entry.response.content._truncated = true end
    if why then entry.response._error = why end -- the body failed after `size` bytes
    rec:add(entry)
  end
  rec.open = rec.open or {}
  rec.open[finish] = true
  -- instance fields shadow the class's methods; res:chunks() goes through res:read()
  rawset(res, "read", function(self, ...)
    local chunk, why, kind = read(self, ...)
    if chunk then
      size = size + #chunk
      if kept < max then
        local piece = #chunk <= max - kept and chunk or chunk:sub(1, max - kept)
        parts[#parts + 1], kept = piece, kept + #piece
      end
    else
      finish(why)
    end
    return chunk, why, kind
  end)
  rawset(res, "close", function(self, ...)
    close(self, ...)
    -- a redirect's body is closed unread by lua/http.lua: nothing failed there
    local redirect = res.status >= 300 and res.status < 400 and res.headers.location
    finish(not redirect and ("closed by the script after " .. size .. " bytes") or nil)
  end)
end

---------------------------------------------------------------------------------------------------
-- The tap on lua/http.lua's hops

local function tap(req, raw)
  if replayer then
    local res, msg = answer(replayer, req)
    if res then
      if recorder then recorder:add(entry_of(req, res, wall_now() - res.timings.total, recorder.opts)) end
      return res
    end
    if replayer.miss ~= "network" then
      return nil, msg, "replay"
    end
  end
  local started = wall_now()
  local res, err, kind = raw(req)
  if res and recorder then
    if rawget(res, "_stream") then
      record_streamed(recorder, req, res, started)
    else
      recorder:add(entry_of(req, res, started, recorder.opts))
    end
  end
  return res, err, kind
end

local function update_tap()
  http._set_tap((recorder or replayer) and tap or nil)
end

---------------------------------------------------------------------------------------------------
-- Public API

---Runs fn() with every exchange recorded to `path` (HAR 1.2). opts: secrets (keep credentials),
---body_max (bytes of each body kept; default 1 MiB). Returns fn's results; an error in fn is
---raised again after the file is closed (it is valid either way).
function M.record(path, fn, opts)
  local r = assert(open_recorder(path, opts))
  local saved = recorder
  recorder = r
  update_tap()
  local res = table.pack(pcall(fn))
  r:close()
  recorder = saved
  update_tap()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

---Runs fn() answering every request from the HAR at `path`, on the virtual clock unless
---opts.clock == "real". opts.miss = "network" sends requests with no entry to the network.
function M.use(path, fn, opts)
  opts = opts or {}
  local rp = load_har(path)
  rp.miss = opts.miss or "error"
  local saved, was_virtual = replayer, T.clock() == "virtual"
  replayer = rp
  update_tap()
  local virtual = opts.clock ~= "real"
  if virtual and not was_virtual then set_virtual(true) end
  local res = table.pack(pcall(fn))
  if virtual and not was_virtual then set_virtual(false) end
  replayer = saved
  update_tap()
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The command line (core/host/main.c): { record = path, record_secrets = bool, record_body_max
-- = n, replay = path, replay_miss = "error"|"network", clock = "virtual"|"real" }. Raises
-- {exit_code = 2} on a bad HAR or option.
function M._cli(o)
  if o.replay_miss and o.replay_miss ~= "error" and o.replay_miss ~= "network" then
    fail_start("--replay-miss must be 'error' or 'network', got '" .. o.replay_miss .. "'")
  end
  if o.clock and o.clock ~= "virtual" and o.clock ~= "real" then
    fail_start("--clock must be 'virtual' or 'real', got '" .. o.clock .. "'")
  end
  local body_max = M.DEFAULT_BODY_MAX
  if o.record_body_max then
    body_max = math.tointeger(tonumber(o.record_body_max))
    if not body_max or body_max < 0 then
      fail_start("--record-body-max must be a number of bytes, got '" .. o.record_body_max .. "'")
    end
  end
  if o.replay then
    replayer = load_har(o.replay)
    replayer.miss = o.replay_miss or "error"
  end
  if o.record then
    local r, err = open_recorder(o.record, { secrets = o.record_secrets, body_max = body_max })
    if not r then fail_start(err) end
    recorder = r
  end
  update_tap()
  if o.clock == "virtual" then set_virtual(true) end
end

-- At exit: closes the recording (already valid on disk).
function M._finish()
  if recorder then recorder:close() end
end

return M
