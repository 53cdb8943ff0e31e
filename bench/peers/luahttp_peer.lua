-- luahttp_peer.lua — the lua-http peer of the benchmark harness: Debian's lua-http 0.4 on cqueues, Lua 5.2.
--
-- usage: lua5.2 luahttp_peer.lua PREFIX N CONC REUSE CAFILE
-- Fetches PREFIX1 .. PREFIXN with CONC coroutines, keeps each URL's status and body in a table and
-- prints one `RESULT {json}` line. lua-http's http.request has no connection pool, so each coroutine
-- owns one HTTP/1.1 connection (http.client.connect) and sends its requests over it in turn
-- (REUSE 1), reconnecting when the server closes it; REUSE 0 connects anew for every request.
local cqueues = require "cqueues"
local http_client = require "http.client"
local http_headers = require "http.headers"
local http_tls = require "http.tls"

local prefix, n, conc, reuse, cafile = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4] == "1", arg[5]
if not cafile then
  io.stderr:write("usage: lua5.2 luahttp_peer.lua PREFIX N CONC REUSE CAFILE\n")
  os.exit(2)
end
conc = math.min(conc, n)

local scheme, host, port, path = prefix:match("^(https?)://([^:/]+):(%d+)(/.*)$")
assert(scheme, "PREFIX must be scheme://host:port/path")
local tls = scheme == "https"
local ctx
if tls then
  ctx = http_tls.new_client_context()
  if cafile ~= "-" then ctx:getStore():add(cafile) end
end
local authority = host .. ":" .. port
local TIMEOUT = 60

local results, errors = {}, {}
local next_i = 0

local function connect()
  return http_client.connect({ host = host, port = tonumber(port), tls = tls, ctx = ctx, version = 1.1 }, TIMEOUT)
end

-- One request on `conn`: status and body, or nil and an error.
local function exchange(conn, target)
  local stream = conn:new_stream()
  if not stream then return nil, "connection closed" end
  local h = http_headers.new()
  h:append(":method", "GET")
  h:append(":scheme", scheme)
  h:append(":authority", authority)
  h:append(":path", target)
  if not reuse then h:append("connection", "close") end
  local ok, err = stream:write_headers(h, true, TIMEOUT)
  if not ok then return nil, err end
  local rh, herr = stream:get_headers(TIMEOUT)
  if not rh then return nil, herr end
  local body, berr = stream:get_body_as_string(TIMEOUT)
  if not body then return nil, berr end
  stream:shutdown()
  return tonumber(rh:get(":status")), body, rh:get("connection")
end

local function worker()
  local conn
  while next_i < n do
    next_i = next_i + 1
    local target = path .. next_i
    local url = prefix .. next_i
    local status, body, connection
    for _ = 1, 2 do                    -- a kept-alive connection may have gone: retry once on a new one
      if not conn then
        local err
        conn, err = connect()
        if not conn then status, body = nil, err break end
      end
      status, body, connection = exchange(conn, target)
      if not reuse or not status or connection == "close" then
        conn:close()
        conn = nil
      end
      if status then break end
    end
    if status then
      results[url] = { status = status, body = body }
    else
      results[url] = { status = false }
      errors[#errors + 1] = url .. ": " .. tostring(body)
    end
  end
  if conn then conn:close() end
end

local cq = cqueues.new()
local t0 = cqueues.monotime()
for _ = 1, conc do cq:wrap(worker) end
local ok, err = cq:loop()
local elapsed = cqueues.monotime() - t0
if not ok then errors[#errors + 1] = "cqueues: " .. tostring(err) end

local good, bytes, first_bad = 0, 0, nil
for url, r in pairs(results) do
  if r.status == 200 then good = good + 1 elseif not first_bad then first_bad = url .. ": status " .. tostring(r.status) end
  if r.body then bytes = bytes + #r.body end
end
local first = (errors[1] or first_bad or ""):sub(1, 200):gsub('[%c"\\]', " ")
print(string.format('RESULT {"n":%d,"ok":%d,"fail":%d,"elapsed":%.6f,"bytes":%d,"first_error":"%s"}',
  n, good, n - good, elapsed, bytes, first))
os.exit(good == n and 0 or 1)
