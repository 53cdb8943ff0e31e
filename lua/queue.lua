-- queue.lua — the shared URL frontier on Redis Streams: any number of luafetch processes on any
-- number of hosts read one stream through one consumer group and write one result stream.
--
--   q:push(entry [, {dedupe=true}])   XADD (dedupe: a fingerprint set, atomically, in a script)
--   q:source()                        for f:each: own pending first (XREADGROUP … 0), stale entries of
--                                     dead consumers (XAUTOCLAIM after `lease`), then new ones
--                                     (XREADGROUP … COUNT batch BLOCK); a lease keeper extends
--                                     what this process holds (XCLAIM … JUSTID)
--   q:sink()                          settles each result in one server-side script: the result is
--                                     written to <stream>:results only if XACK removed the entry
--                                     (so a repeat writes nothing), a final failure goes to
--                                     <stream>:dead; results are grouped into one call per flush
--   q:politeness{limit=, rate=}       a fetcher plugin: per-host slots and request rate shared by
--                                     every worker (an atomic script on the server)
--
-- At least once: an entry is acknowledged only in the same step that records its outcome; a
-- worker that dies leaves its entries pending, and they are reclaimed after `lease` seconds.
-- Failures return nil, message, kind ("redis" or "invalid"). docs/scale-out.md has the model.
local R = require "_redis"
local task = require "task"
local cjson = require "cjson.safe"

local M = {}

local RETRY_CONSUMER = "luafetch:retry" -- failed entries wait here (not owned by a live worker)
local REQUEST_FIELDS = { method = "string", headers = "table", body = "string", json = "table",
                         timeout = "number", max_redirects = "number", verify = "boolean",
                         decompress = "boolean" }

---------------------------------------------------------------------------
-- Server-side scripts (EVALSHA, loaded again after NOSCRIPT: a restarted server forgets them)
---------------------------------------------------------------------------

local function script(src) return { src = src } end

-- KEYS: stream, seen. ARGV: fingerprint, then the entry's field/value pairs.
local PUSH_DEDUPE = script [[
if redis.call('SADD', KEYS[2], redis.sha1hex(ARGV[1])) == 0 then return false end
local args = { 'XADD', KEYS[1], '*' }
for i = 2, #ARGV do args[#args + 1] = ARGV[i] end
return redis.call(unpack(args))
]]

-- Settles a batch: writes nothing before every key has been checked (a script is not rolled back).
-- KEYS: stream, results, dead, errors. ARGV: group, consumer, retry consumer, then records:
--   r id url status success elapsed attempts body|"="..body   (a result; R: the same, and the
--                                                           entry's last error is forgotten)
--   d id url error kind deliveries                          (dead-letter)
--   p id kind error                                         (park for a later delivery)
-- Then trims what every group has settled (below its oldest pending entry and its first
-- undelivered one): whole nodes, so entries are not deleted one by one.
-- Returns { results written, dead written, parked }.
local SETTLE = script [[
local stream, results, dead, errors = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
for i = 1, 3 do
  local t = redis.call('TYPE', KEYS[i]).ok
  if t ~= 'stream' and t ~= 'none' then
    return redis.error_reply('WRONGTYPE key ' .. KEYS[i] .. ' holds a ' .. t .. ', not a stream')
  end
end
local t = redis.call('TYPE', errors).ok
if t ~= 'hash' and t ~= 'none' then
  return redis.error_reply('WRONGTYPE key ' .. errors .. ' holds a ' .. t .. ', not a hash')
end
local group, me, retry = ARGV[1], ARGV[2], ARGV[3]
local i, n, wrote, dl, parked = 4, #ARGV, 0, 0, 0
-- The plain results ('r') are acknowledged with one XACK and all written: when it acknowledges
-- them all (an entry is acknowledged elsewhere only after its lease ran out: rarely), exactly as
-- one XACK each would decide; else the ones acknowledged before get a repeat, which readers drop
-- by id (at least once). Counted as written: those this XACK acknowledged.
local plain, j = {}, 4
while j <= n do
  local op = ARGV[j]
  if op == 'r' then plain[#plain + 1] = ARGV[j + 1] end
  j = j + ((op == 'r' or op == 'R') and 8 or op == 'd' and 6 or 4)
end
for k = 1, #plain, 1000 do -- (unpack takes a few thousand values at most)
  wrote = wrote + redis.call('XACK', stream, group, unpack(plain, k, math.min(k + 999, #plain)))
end
while i <= n do
  local op, id = ARGV[i], ARGV[i + 1]
  if op == 'r' or op == 'R' then
    if op == 'r' or redis.call('XACK', stream, group, id) == 1 then
      local body = ARGV[i + 7]
      if body == '' then
        redis.call('XADD', results, '*', 'id', id, 'url', ARGV[i + 2], 'status', ARGV[i + 3],
                   'success', ARGV[i + 4], 'elapsed', ARGV[i + 5], 'attempts', ARGV[i + 6])
      else
        redis.call('XADD', results, '*', 'id', id, 'url', ARGV[i + 2], 'status', ARGV[i + 3],
                   'success', ARGV[i + 4], 'elapsed', ARGV[i + 5], 'attempts', ARGV[i + 6],
                   'body', string.sub(body, 2))
      end
      if op == 'R' then
        redis.call('HDEL', errors, id)
        wrote = wrote + 1
      end
    end
    i = i + 8
  elseif op == 'd' then
    if redis.call('XACK', stream, group, id) == 1 then
      redis.call('XADD', dead, '*', 'id', id, 'url', ARGV[i + 2], 'error', ARGV[i + 3],
                 'kind', ARGV[i + 4], 'deliveries', ARGV[i + 5])
      redis.call('HDEL', errors, id)
      dl = dl + 1
    end
    i = i + 6
  else -- 'p': only if it is still ours (a worker that claimed it meanwhile keeps it)
    local p = redis.call('XPENDING', stream, group, id, id, 1)
    if p[1] and p[1][2] == me then
      redis.call('HSET', errors, id, ARGV[i + 2] .. '\t' .. ARGV[i + 3])
      redis.call('XCLAIM', stream, group, retry, 0, id, 'JUSTID')
      parked = parked + 1
    end
    i = i + 4
  end
end
local minid
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, last
  for j = 1, #g, 2 do
    if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then last = g[j + 1] end
  end
  local ms, seq = string.match(last, '^(%d+)-(%d+)$')
  local low = ms .. '-' .. string.format('%d', tonumber(seq) + 1)
  local p = redis.call('XPENDING', stream, name)
  if p[2] then low = p[2] end
  if not minid then minid = low else
    local a1, a2 = string.match(minid, '^(%d+)-(%d+)$')
    local b1, b2 = string.match(low, '^(%d+)-(%d+)$')
    if tonumber(b1) < tonumber(a1) or (b1 == a1 and tonumber(b2) < tonumber(a2)) then minid = low end
  end
end
if minid then redis.call('XTRIM', stream, 'MINID', '~', minid) end
return { wrote, dl, parked }
]]

-- Claims entries idle for `lease` (a dead worker's, or parked ones) and returns them with their
-- delivery counts; one delivered more than max times without an outcome is dead-lettered.
-- KEYS: stream, dead, errors. ARGV: group, consumer, min idle ms, start, count, max deliveries.
-- Returns { next start, { {id, fields, deliveries}, ... }, dead-lettered }.
local RECLAIM = script [[
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local max, out, dead = tonumber(ARGV[6]), {}, 0
for _, e in ipairs(r[2]) do
  local id, fields = e[1], e[2]
  if fields then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local n = p[1] and p[1][4] or 1
    if n > max then
      local last = redis.call('HGET', KEYS[3], id)
      local kind, err = 'lease', 'no outcome after ' .. (n - 1) .. ' deliveries: the workers holding it stopped'
      if last then kind, err = string.match(last, '^([^\t]*)\t(.*)$') end
      local url = ''
      for j = 1, #fields, 2 do if fields[j] == 'url' then url = fields[j + 1] end end
      redis.call('XADD', KEYS[2], '*', 'id', id, 'url', url, 'error', err, 'kind', kind,
                 'deliveries', n - 1)
      redis.call('XACK', KEYS[1], ARGV[1], id)
      redis.call('HDEL', KEYS[3], id)
      dead = dead + 1
    else
      out[#out + 1] = { id, fields, n }
    end
  else
    redis.call('XACK', KEYS[1], ARGV[1], id) -- deleted from the stream (Redis 6.2 shows it as nil)
  end
end
return { r[1], out, dead }
]]

-- Extends the lease of the ids this consumer still owns. KEYS: stream. ARGV: group, consumer, ids.
local EXTEND = script [[
local ids = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then ids[#ids + 1] = ARGV[i] end
end
local n = #ids
if n == 0 then return 0 end
ids[n + 1] = 'JUSTID'
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(ids))
return n
]]

-- A host slot (limit) and the shared request rate (GCRA, one request per 1/rate s): 0 when taken,
-- else the ms to wait. KEYS: slots zset, rate key. ARGV: limit, rate, slot ttl ms, token.
local HOST_ACQUIRE = script [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, rate, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  if redis.call('ZCARD', KEYS[1]) >= limit then return 10 end
end
if rate > 0 then
  local interval = 1000 / rate
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  if tat > now then return math.max(1, math.ceil(tat - now)) end
  redis.call('SET', KEYS[2], tostring(now + interval), 'PX', math.ceil(interval) + 1000)
end
if limit > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 0
]]

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local function fail(msg, kind) return nil, msg, kind end

-- "redis" for every failure that comes from Redis or the connection to it
local function rfail(err) return nil, "redis: " .. tostring(err), "redis" end

local function hostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l")
  if f then f:close() end
  return name or os.getenv("HOSTNAME") or "localhost"
end

local function pid()
  local f = io.open("/proc/self/stat")
  local line = f and f:read("l")
  if f then f:close() end
  return line and line:match("^(%d+)") or tostring(math.random(1, 1e9))
end

-- field list {k1, v1, k2, v2, ...} → map
local function fields_map(list)
  local m = {}
  if type(list) ~= "table" then return m end
  for i = 1, #list - 1, 2 do m[list[i]] = list[i + 1] end
  return m
end

--- Runs a script by its SHA, loading it first (and again after NOSCRIPT). tail: more arguments
--- as an _redis.args() list.
local function eval(client, s, keys, args, timeout, tail)
  for _ = 1, 2 do
    if not s.sha then
      local sha, err, kind = client:call{ "SCRIPT", "LOAD", s.src }
      if not sha then return nil, err, kind end
      s.sha = sha
    end
    local cmd = { "EVALSHA", s.sha, #keys }
    for i = 1, #keys do cmd[#cmd + 1] = keys[i] end
    for i = 1, #args do cmd[#cmd + 1] = args[i] end
    local r, err, kind = client:call(cmd, timeout, tail)
    if r ~= nil or kind ~= "server" or not err:find("^NOSCRIPT") then return r, err, kind end
    s.sha = nil
  end
  return nil, "NOSCRIPT after loading the script", "server"
end

--- The entry as stream fields: url [, req = JSON of the request's other fields]. nil, err if bad.
local function encode_entry(entry)
  if type(entry) == "string" then
    if entry == "" then return nil, "an empty URL" end
    return { "url", entry }, entry
  end
  if type(entry) ~= "table" then
    return nil, "an entry is a URL or a request table, got " .. type(entry)
  end
  if type(entry.url) ~= "string" or entry.url == "" then return nil, "a request table needs a url" end
  local req, any = {}, false
  for k, v in pairs(entry) do
    if k ~= "url" then
      local want = REQUEST_FIELDS[k]
      if not want then return nil, "unknown request field '" .. tostring(k) .. "'" end
      if type(v) ~= want then return nil, ("request field %s must be a %s"):format(k, want) end
      req[k] = v
      any = true
    end
  end
  if not any then return { "url", entry.url }, entry.url end
  local json, err = cjson.encode(req)
  if not json then return nil, "cannot encode the request: " .. tostring(err) end
  local fp = (entry.method or "GET"):upper() .. " " .. entry.url .. " " .. (entry.body or
    (entry.json and cjson.encode(entry.json)) or "")
  return { "url", entry.url, "req", json }, fp
end

--- The item for the fetcher from stream fields: the URL string, or a request table. nil, err if
--- the entry is malformed.
local function decode_entry(fields)
  local url = fields.url
  if type(url) ~= "string" or url == "" then return nil, "malformed entry: no url field" end
  if not fields.req then return url end
  local req, err = cjson.decode(fields.req)
  if type(req) ~= "table" then return nil, "malformed entry: req is not JSON: " .. tostring(err) end
  req.url = url
  return req
end

---------------------------------------------------------------------------
-- The queue
---------------------------------------------------------------------------

---@class Queue
local Q = {}
Q.__index = Q
Q.__close = function(q) q:close() end

local function positive(v, name, dflt, integer)
  if v == nil then return dflt end
  if type(v) ~= "number" or v <= 0 or (integer and math.type(v) ~= "integer" and v % 1 ~= 0) then
    return nil, name .. " must be a positive " .. (integer and "integer" or "number")
  end
  return integer and math.tointeger(v) or v
end

--- A queue on the Redis at `url`. Nothing is sent yet.
---@param opts table  url, stream, group, consumer, lease, max_deliveries, batch, block, timeout, on_error
---@return Queue|nil, string|nil, string|nil
function M.redis(opts)
  if type(opts) ~= "table" then return fail("queue.redis expects a table of options", "invalid") end
  local known = { url = 1, stream = 1, group = 1, consumer = 1, lease = 1, max_deliveries = 1,
                  batch = 1, block = 1, timeout = 1, on_error = 1 }
  for k in pairs(opts) do
    if not known[k] then return fail("queue.redis: unknown option '" .. tostring(k) .. "'", "invalid") end
  end
  local url = opts.url or os.getenv("REDIS_URL") or "redis://127.0.0.1:6379"
  if type(opts.stream) ~= "string" or opts.stream == "" then
    return fail("queue.redis: stream (a key name) is required", "invalid")
  end
  local q = setmetatable({
    url = url, stream = opts.stream, group = opts.group or "fetchers",
    consumer = opts.consumer or (hostname() .. ":" .. pid()),
    on_error = opts.on_error,
    -- every entry read and not yet settled (ready, handed out, settling), and the outbox of
    -- settle records for the next flush: in C (core/lua/lua_redis_ledger.c)
    ledger = R.ledger(), flushing = false,
    tally = { read = 0, reclaimed = 0, results = 0, dead = 0, parked = 0, extended = 0,
                 repeats = 0, flushes = 0, lost_leases = 0 },
    keys = {},
  }, Q)
  local err
  for _, o in ipairs{ { "lease", 60 }, { "block", 1 }, { "timeout", 10 } } do
    q[o[1]], err = positive(opts[o[1]], o[1], o[2])
    if err then return fail("queue.redis: " .. err, "invalid") end
  end
  for _, o in ipairs{ { "max_deliveries", 5 }, { "batch", 64 } } do
    q[o[1]], err = positive(opts[o[1]], o[1], o[2], true)
    if err then return fail("queue.redis: " .. err, "invalid") end
  end
  if type(q.group) ~= "string" or q.group == "" or type(q.consumer) ~= "string" or q.consumer == "" then
    return fail("queue.redis: group and consumer must be non-empty strings", "invalid")
  end
  local s = q.stream
  q.keys = { results = s .. ":results", dead = s .. ":dead", seen = s .. ":seen", errors = s .. ":errors" }
  local kind
  q.cmd, err, kind = R.connect(url, { timeout = q.timeout })
  if not q.cmd then return fail("queue.redis: " .. err, kind) end
  -- blocking reads on a connection of their own: nothing else waits behind them
  q.reader = assert(R.connect(url, { timeout = q.timeout }))
  return q
end

--- Reports a Redis failure the worker goes on after (throttled: one line per message and 5 s).
function Q:warn(msg)
  if self.on_error then return self.on_error(msg) end
  local now = task.now()
  self.warned = self.warned or {}
  if (self.warned[msg] or -1e9) + 5 > now then return end
  self.warned[msg] = now
  io.stderr:write("queue: ", msg, "\n")
end

--- Checks the connection and the keys' types: true, or nil, msg, kind.
function Q:check()
  local r, err = self.cmd:pipeline{ { "PING" }, { "TYPE", self.stream }, { "TYPE", self.keys.results },
                                     { "TYPE", self.keys.dead } }
  if not r then return rfail(err) end
  if type(r[1]) == "table" then return rfail(r[1].err) end
  local names = { self.stream, self.keys.results, self.keys.dead }
  for i = 2, 4 do
    local t = type(r[i]) == "table" and r[i].err or r[i]
    if t ~= "stream" and t ~= "none" then
      return rfail(("key %s holds a %s, not a stream"):format(names[i - 1], t))
    end
  end
  return true
end

--- Adds an entry (a URL or a request table). Returns its id; with dedupe, false, "duplicate"
--- for a URL already pushed with dedupe.
---@return string|false|nil id
---@return string|nil err
---@return string|nil kind
function Q:push(entry, opts)
  local fields, fp = encode_entry(entry)
  if not fields then return fail("queue push: " .. fp, "invalid") end
  local r, err
  if opts and opts.dedupe then
    local args = { fp }
    for i = 1, #fields do args[#args + 1] = fields[i] end
    r, err = eval(self.cmd, PUSH_DEDUPE, { self.stream, self.keys.seen }, args)
    if r == false then return false, "duplicate" end
  else
    local cmd = { "XADD", self.stream, "*" }
    for i = 1, #fields do cmd[#cmd + 1] = fields[i] end
    r, err = self.cmd:call(cmd)
  end
  if not r then return rfail(err) end
  return r
end

--- Pushes many entries, `per_call` of them per round trip. Returns the number added and the
--- number of duplicates skipped, or nil, msg, kind (entries of earlier round trips are in).
function Q:push_many(entries, opts, per_call)
  per_call = per_call or 500
  local dedupe = opts and opts.dedupe
  local added, dups = 0, 0
  local i = 1
  while i <= #entries do
    local cmds = {}
    for j = i, math.min(#entries, i + per_call - 1) do
      local fields, fp = encode_entry(entries[j])
      if not fields then return fail(("queue push: entry %d: %s"):format(j, fp), "invalid") end
      local cmd
      if dedupe then
        if not PUSH_DEDUPE.sha then
          local sha, err = self.cmd:call{ "SCRIPT", "LOAD", PUSH_DEDUPE.src }
          if not sha then return rfail(err) end
          PUSH_DEDUPE.sha = sha
        end
        cmd = { "EVALSHA", PUSH_DEDUPE.sha, 2, self.stream, self.keys.seen, fp }
      else
        cmd = { "XADD", self.stream, "*" }
      end
      for k = 1, #fields do cmd[#cmd + 1] = fields[k] end
      cmds[#cmds + 1] = cmd
    end
    local r, err = self.cmd:pipeline(cmds)
    if not r then return rfail(err) end
    if dedupe and type(r[1]) == "table" and tostring(r[1].err):find("^NOSCRIPT") then
      PUSH_DEDUPE.sha = nil -- a restarted server: load it again and send this batch again
    else
      for _, v in ipairs(r) do
        if type(v) == "table" then return rfail(v.err) end
        if v == false then dups = dups + 1 else added = added + 1 end
      end
      i = i + #cmds
    end
  end
  return added, dups
end

--- { length=, pending=, dead=, results= }: entries not yet settled (not yet delivered, or
--- delivered and pending), delivered and pending (all consumers), dead letters, results.
--- nil, msg, kind on failure.
function Q:stats()
  local r, err = self.cmd:pipeline{ { "XLEN", self.stream }, { "XPENDING", self.stream, self.group },
                                     { "XLEN", self.keys.dead }, { "XLEN", self.keys.results },
                                     { "XINFO", "GROUPS", self.stream } }
  if not r then return rfail(err) end
  for i, v in ipairs(r) do
    if type(v) == "table" and v.err and not ((i == 2 or i == 5) and v.err:find("^NOGROUP") or
        (i == 5 and v.err:find("^ERR no such key"))) then
      return rfail(v.err)
    end
  end
  local pending = type(r[2]) == "table" and math.tointeger(r[2][1]) or 0
  -- settled entries are trimmed a node at a time: the group's lag (never delivered) plus what is
  -- pending is what is left; without a group yet (or a lag: Redis 6.2), the stream's length
  local length = r[1]
  local found = false
  for _, g in ipairs(type(r[5]) == "table" and not r[5].err and r[5] or {}) do
    local m = fields_map(g)
    if m.name == self.group then
      found = true
      if math.type(m.lag) == "integer" then length = m.lag + pending end
    end
  end
  if not found and length == 0 then pending = 0 end
  return { length = length, pending = pending, dead = r[3], results = r[4] }
end

--- Local counters: entries read, reclaimed, results written, dead-lettered, parked for a retry,
--- leases extended, and the Redis round trips of both connections.
function Q:counters()
  local c = {}
  for k, v in pairs(self.tally) do c[k] = v end
  local a, b = self.cmd:stats(), self.reader:stats()
  c.round_trips = (a.calls or 0) + (b.calls or 0)
  c.commands = (a.commands or 0) + (b.commands or 0)
  c.connects = (a.connects or 0) + (b.connects or 0)
  local _, held = self.ledger:counts()
  c.held = held
  return c
end

function Q:close()
  if self.closed then return end
  self.closed = true
  if self.keeper and self.keeper:status() ~= "done" and self.keeper ~= task.current() then
    self.keeper:cancel()
  end
  self.cmd:close()
  self.reader:close()
  if self.flushed then self:wake_flush_waiters() end
end

---------------------------------------------------------------------------
-- Holding entries, leases
---------------------------------------------------------------------------

--- Entries held: read and not yet settled.
function Q:held()
  local _, held = self.ledger:counts()
  return held
end

--- Starts the lease keeper unless it runs (after entries were read).
function Q:keep()
  if self.keeping or self:held() == 0 then return end
  self.keeping = true
  self.keeper = task.spawn(function()
    self:keep_leases()
    self.keeping = false
  end)
end

--- Extends the leases of held entries every lease/3 s; ends when nothing is held.
function Q:keep_leases()
  local every = math.max(0.05, self.lease / 3)
  local last = task.now()
  while not self.closed and self:held() > 0 do
    task.sleep(math.min(0.1, every))
    if not self.closed and self:held() > 0 and task.now() - last >= every then
      last = task.now()
      -- 500 ids per call: a script unpacks at most a few thousand values
      local ids = self.ledger:ids()
      for first = 1, #ids, 500 do
        local args = { self.group, self.consumer }
        for i = first, math.min(#ids, first + 499) do args[#args + 1] = ids[i] end
        local n, err = eval(self.cmd, EXTEND, { self.stream }, args)
        if n then
          self.tally.extended = self.tally.extended + n
          local lost = #args - 2 - n
          if lost > 0 then self.tally.lost_leases = self.tally.lost_leases + lost end
        elseif not self.closed then
          self:warn("redis: cannot extend leases: " .. tostring(err))
          break
        end
      end
    end
  end
end

---------------------------------------------------------------------------
-- Reading
---------------------------------------------------------------------------

local Source = {}
Source.__index = Source

-- Read-ahead, in units of `prefetch` (the fetcher's concurrency): a read starts below LOW entries
-- ready and tops them up to HIGH (Source:fill says why so many).
local READ_LOW, READ_HIGH = 6, 10

--- Creates the group if needed (reading from the stream's start, so entries pushed before any
--- worker are read). true, or nil, err.
function Q:ensure_group()
  if self.group_ready then return true end
  local r, err, kind = self.cmd:call{ "XGROUP", "CREATE", self.stream, self.group, "0", "MKSTREAM" }
  if not r and not (kind == "server" and err:find("^BUSYGROUP")) then return nil, err end
  self.group_ready = true
  return true
end

--- The source for f:each: an iterator function (every fetcher version takes one) giving URLs
--- and request tables. opts.drain: end once nothing is new or pending; else run until q:stop().
--- opts.prefetch: the fetcher's concurrency (default 2 × batch): a read starts
--- once fewer than 6 × prefetch entries are ready and tops them up to 10 × prefetch, so no fetcher
--- slot waits for a read.
---@param opts? { drain: boolean, prefetch: integer }
---@return fun(): string|table|nil
function Q:source(opts)
  local src = setmetatable({
    q = self, drain = opts and opts.drain,
    prefetch = math.max(1, math.floor(opts and tonumber(opts.prefetch) or 2 * self.batch)),
    own_pending = "0", reclaim_start = "0-0", next_reclaim = 0, backoff = 0,
    connects = nil, stopping = self.stopping or false, finished = false, ended = false,
    reading = false, ready = task.semaphore(0),
  }, Source)
  -- the fetcher counts the items of this source from 1: the ledger's count goes on across sources
  self.ledger:begin_source()
  self.current_source = src
  -- the usual case inline: an entry is ready and the read-ahead needs nothing
  local ledger, low = self.ledger, READ_LOW * src.prefetch
  return function()
    local item, ready = ledger:next()
    if item ~= nil and (ready >= low or src.reading) then return item end
    return src:next(item, ready)
  end
end

--- Stop reading (SIGTERM): what was read already is still handed out, then the source ends.
function Q:stop()
  self.stopping = true
  if self.current_source then self.current_source.stopping = true end
end

--- Takes one entry that did not go straight into the ledger (own pending, reclaimed, or more than
--- a url field): url when it is a url field alone, else its field list.
function Source:push(id, url, fields, deliveries)
  local q = self.q
  if q.ledger:deliveries(id) then return end -- in flight here already (own pending after a reconnect)
  local item, err
  if url and url ~= "" then
    item = url -- the usual entry: a URL alone
  else
    local map = fields_map(fields)
    item, err = decode_entry(map)
    url = map.url or ""
  end
  q.tally.read = q.tally.read + 1
  if not item then
    q.ledger:record("d", id, url, err, "invalid", tostring(deliveries))
    q:flush()
    return
  end
  q.ledger:push(id, item, url, deliveries)
  q:keep()
end

--- A stream read through read_entries: ids, urls (false: see fields), fields; nil, err, kind.
local function read_entries(client, cmd, timeout)
  local ids, urls, fields = client:read_entries(cmd, timeout)
  if ids == nil then return nil, urls, fields end
  if ids == false then return {}, {}, {} end -- BLOCK ran out
  return ids, urls, fields
end

--- One read: own pending (after start or a reconnect), reclaims now and then, else new entries.
--- Returns true when something was read, false when nothing is there, nil, err on failure.
function Source:fill()
  local q = self.q
  if self.stopping then return false end
  local ok, err = q:ensure_group()
  if not ok then return nil, err end
  -- a new connection after the first one: read this consumer's own pending entries again
  local connects = q.reader:stats().connects
  if self.connects and self.connects > 0 and connects > self.connects then self.own_pending = "0" end
  self.connects = connects
  if self.own_pending then
    local ids, urls, fields = read_entries(q.reader, { "XREADGROUP", "GROUP", q.group, q.consumer,
                                                        "COUNT", q.batch, "STREAMS", q.stream, self.own_pending })
    if ids == nil then
      if fields == "server" and urls:find("^NOGROUP") then q.group_ready = false end
      return nil, urls
    end
    if #ids == 0 then
      self.own_pending = nil
    else
      self.own_pending = ids[#ids]
      -- delivery counts (the history read counted as one)
      local p = q.cmd:call{ "XPENDING", q.stream, q.group, ids[1], ids[#ids], #ids, q.consumer }
      local counts, restore = {}, {}
      for _, row in ipairs(type(p) == "table" and p or {}) do counts[row[1]] = row[4] end
      for i, id in ipairs(ids) do
        local held = q.ledger:deliveries(id)
        if held then
          -- still in flight here: that read was no delivery, put its count back
          restore[#restore + 1] = { "XCLAIM", q.stream, q.group, q.consumer, 0, id,
                                    "RETRYCOUNT", held, "JUSTID" }
        elseif urls[i] or fields[i] then -- (a deleted entry has neither)
          self:push(id, urls[i], fields[i], counts[id] or 1)
        end
      end
      if #restore > 0 then q.cmd:pipeline(restore) end
      return true
    end
  end
  local now = task.now()
  if now >= self.next_reclaim then
    local r, e = eval(q.cmd, RECLAIM, { q.stream, q.keys.dead, q.keys.errors },
      { q.group, q.consumer, math.floor(q.lease * 1000), self.reclaim_start, q.batch, q.max_deliveries })
    if not r then return nil, e end
    self.reclaim_start = r[1]
    q.tally.dead = q.tally.dead + (r[3] or 0)
    for _, e2 in ipairs(r[2]) do
      q.tally.reclaimed = q.tally.reclaimed + 1
      self:push(e2[1], nil, e2[2], e2[3])
    end
    if self.reclaim_start == "0-0" then
      self.next_reclaim = now + math.min(5, math.max(0.1, q.lease / 2))
    end
    if #r[2] > 0 then return true end
  end
  if self.stopping then return false end
  -- draining: no blocking read, so the end is seen at once (next() waits between checks)
  -- top the ready entries up to READ_HIGH × prefetch: a read starts below READ_LOW × prefetch and
  -- its reply is taken in four loop turns or so later (the reader task starts, the command is
  -- written, the reply read, the task resumed), in each of which every fetcher slot may take an
  -- entry; with less (it was 2 × prefetch + batch) the ready entries ran out at every read, and
  -- every slot then queued for the source and was woken one by one
  local ready = q.ledger:counts()
  local want = math.max(1, READ_HIGH * self.prefetch - ready)
  local cmd = { "XREADGROUP", "GROUP", q.group, q.consumer, "COUNT", want }
  if not self.drain then
    cmd[#cmd + 1] = "BLOCK"
    cmd[#cmd + 1] = math.floor(q.block * 1000)
  end
  cmd[#cmd + 1] = "STREAMS"
  cmd[#cmd + 1] = q.stream
  cmd[#cmd + 1] = ">"
  -- entries that are a url alone go straight into the ledger; the others come back to decode
  local n, ids, fields = q.reader:read_entries(cmd, q.block + q.timeout, q.ledger)
  if n == nil then
    if fields == "server" and ids:find("^NOGROUP") then q.group_ready = false end
    return nil, ids
  end
  q.tally.read = q.tally.read + n
  if n > 0 then q:keep() end
  for i = 1, #ids do self:push(ids[i], nil, fields[i], 1) end
  return n + #ids > 0
end

--- Whether nothing is pending (called after a read of new entries found none). Not while this
--- process holds entries: one that fails is left pending for another delivery.
function Source:drained()
  local q = self.q
  if q:held() > 0 then return false end
  local r, e = q.cmd:call{ "XPENDING", q.stream, q.group }
  if not r then return nil, e end
  return (type(r) == "table" and math.tointeger(r[1]) or 0) == 0
end

--- One round of reading (in the reader task): true when entries came, false when the source has
--- ended (stopped, drained, closed), nil to try again.
function Source:read_round()
  local q = self.q
  local got, err = self:fill()
  if q.closed then return false end
  if got == nil then
    q:warn("redis: " .. tostring(err))
    self.backoff = math.min(2, self.backoff > 0 and self.backoff * 2 or 0.05)
    task.sleep(self.backoff)
    return nil
  end
  self.backoff = 0
  if got then
    self.idle = nil
    return true
  end
  if self.stopping then return false end
  if self.drain then
    if q:held() > 0 then
      -- what this process holds is settled by its own flushes: wait for the next one, not a timer
      -- (a poll's sleep would be added to the end of every drained run)
      q:wait_flush()
      return nil
    end
    if self:drained() then return false end
    -- others still hold entries (a dead worker's come back after its lease): look again soon
    self.idle = math.min(q.block, 0.25, (self.idle or 0.005) * 2)
    task.sleep(self.idle)
  end
  return nil
end

--- Reads in a task of its own, so the next batch is on its way while the fetcher works through
--- this one. Rounds follow each other while fewer than 6 × prefetch entries are ready (a new
--- task per read would add a loop turn to every read's way), or while nothing came and nothing
--- is ready; each round that brought entries (or ended the source) wakes a waiting next().
function Source:start_reading()
  local q = self.q
  self.reading = true
  task.spawn(function()
    local low = READ_LOW * self.prefetch
    while true do
      local ok, r = pcall(self.read_round, self)
      if not ok then -- (out of memory taking a read in, say): warn and try again, as after a failed read
        q:warn("queue reader: " .. tostring(r))
        task.sleep(0.5)
        r = nil
      end
      if r == false then self.ended = true end
      if r ~= nil then self.ready:release() end
      if r == false or q.closed then break end
      local ready = q.ledger:counts()
      if (r == true and ready >= low) or (r == nil and ready > 0) then break end
    end
    self.reading = false
    self.ready:release()
  end)
end

--- The next item for the fetcher (a URL or a request table), or nil at the end. item, ready: what
--- a call of ledger:next() just gave, if any.
function Source:next(item, ready)
  local q = self.q
  local ledger = q.ledger
  while true do
    if item == nil then item, ready = ledger:next() end
    if item ~= nil then
      -- read ahead (see fill)
      if ready < READ_LOW * self.prefetch and not self.reading and not self.ended and not q.closed then
        self:start_reading()
      end
      return item
    end
    if self.ended or q.closed then break end
    while self.ready:try_acquire() do end -- wake-ups of rounds nobody waited for
    if not self.reading then self:start_reading() end
    self.ready:acquire()
    item = nil
  end
  self.finished = true
  return nil
end

---------------------------------------------------------------------------
-- Settling results
---------------------------------------------------------------------------

--- Waits until the next flush is done (or the queue closes).
function Q:wait_flush()
  if self.closed then return end
  self.flushed = self.flushed or task.semaphore(0)
  self.flush_waiters = (self.flush_waiters or 0) + 1
  self.flushed:acquire()
end

function Q:wake_flush_waiters()
  local n = self.flush_waiters or 0
  self.flush_waiters = 0
  for _ = 1, n do self.flushed:release() end
end

--- Sends what the ledger's outbox holds, unless a flush is running, and again until it is
--- empty (group commit: what finishes while one flush is on the wire goes in the next).
local FlushGuard = { __close = function(g)
  -- also when the flushing task is canceled between take and release: the slots are freed
  -- unacknowledged (their entries come back after the lease), the next settle flushes again, and
  -- nobody waits for a flush that will not come
  local q = g.q
  if q.ledger_taken then
    q.ledger_taken = false
    q.ledger:release()
  end
  q.flushing = false
  q:wake_flush_waiters()
end }

function Q:flush()
  if self.flushing then return end
  self.flushing = true
  local _ <close> = setmetatable({ q = self }, FlushGuard)
  local backoff = 0
  local keys = { self.stream, self.keys.results, self.keys.dead, self.keys.errors }
  local head = { self.group, self.consumer, RETRY_CONSUMER }
  local ledger = self.ledger
  while not self.closed do
    local args, _, results = ledger:take()
    if not args then break end
    self.ledger_taken = true
    while true do
      local r, err = eval(self.cmd, SETTLE, keys, head, nil, args)
      if r then
        local t = self.tally
        t.flushes = t.flushes + 1
        t.results = t.results + r[1]
        t.dead = t.dead + r[2]
        t.parked = t.parked + r[3]
        t.repeats = t.repeats + (results - r[1])
        break
      end
      if self.closed then break end
      self:warn("redis: cannot record results: " .. tostring(err))
      backoff = math.min(2, backoff > 0 and backoff * 2 or 0.05)
      task.sleep(backoff)
    end
    self.ledger_taken = false
    ledger:release()
    self:wake_flush_waiters()
  end
end

--- on_result for f:each: a response (any status) becomes a result; a failure without one is
--- parked for another delivery, or dead-lettered after max_deliveries (kind invalid: at once).
--- The entry is found by the fetcher's index (or, for a source wrapped by the caller, by item).
---@param opts? { keep_body: boolean }
function Q:sink(opts)
  local keep_body = opts and opts.keep_body or false
  local ledger, max_deliveries = self.ledger, self.max_deliveries
  local settle = ledger.settle
  return function(_, result, index, item)
    if settle(ledger, index, item, result, max_deliveries, keep_body) and not self.flushing then
      self:flush()
    end
  end
end

---------------------------------------------------------------------------
-- Politeness shared through Redis
---------------------------------------------------------------------------

--- A fetcher plugin: at most `limit` requests in flight per host and at most `rate` requests per
--- second per host, across every worker on this queue (keys <stream>:host:<host>,
--- <stream>:rate:<host>). A slot is held at most `ttl` seconds (a dead worker's slots expire).
---@param opts { limit: integer|nil, rate: number|nil, ttl: number|nil }
function Q:politeness(opts)
  local limit, rate = opts.limit or 0, opts.rate or 0
  local ttl = math.floor((opts.ttl or math.max(self.lease, 60)) * 1000)
  local q, n = self, 0
  local plugin = { name = "queue.politeness" }
  function plugin.on_request(req)
    if limit <= 0 and rate <= 0 then return end
    local host = req.host or ""
    n = n + 1
    local token = q.consumer .. ":" .. n
    local keys = { q.stream .. ":host:" .. host, q.stream .. ":rate:" .. host }
    local backoff = 0
    while not q.closed do
      local wait, err = eval(q.cmd, HOST_ACQUIRE, keys, { limit, rate, ttl, token })
      if wait == 0 then
        if limit > 0 then req._queue_slot = { keys[1], token } end
        return
      end
      if not wait then
        q:warn("redis: cannot take a host slot: " .. tostring(err))
        backoff = math.min(1, backoff > 0 and backoff * 2 or 0.05)
        task.sleep(backoff)
      else
        task.sleep(math.min(wait, 200) / 1000)
      end
    end
  end
  local function release(req)
    local slot = req and req._queue_slot
    if not slot then return end
    req._queue_slot = nil
    q.cmd:call{ "ZREM", slot[1], slot[2] }
  end
  plugin.on_response = release
  plugin.on_error = release
  return plugin
end

M.RETRY_CONSUMER = RETRY_CONSUMER
return M
