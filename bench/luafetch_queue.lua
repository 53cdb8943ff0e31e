-- luafetch_queue.lua — P7: the same N URLs through the fetcher from a local list, or through a Redis
-- stream (lua/queue.lua) by one worker, with the same fetcher settings; also fills the stream.
-- Prints one `RESULT {json}` line; `elapsed` covers the fetch phase only (the stream is filled
-- before, by the enqueue mode), `cpu` the process's CPU seconds in it.
--
-- usage: luafetch run bench/luafetch_queue.lua local PREFIX N CONC
--        luafetch run bench/luafetch_queue.lua enqueue REDIS_URL STREAM PREFIX N
--        luafetch run bench/luafetch_queue.lua redis REDIS_URL STREAM N CONC
local fetcher = require "fetcher"
local queue = require "queue"
local task = require "task"

local mode = arg[1]

local function result(fields)
  local parts = {}
  for k, v in pairs(fields) do
    parts[#parts + 1] = ('"%s":%s'):format(k, type(v) == "string" and ('"' .. v:gsub('[%c"\\]', " ") .. '"')
      or (math.type(v) == "float" and ("%.6f"):format(v) or tostring(v)))
  end
  print("RESULT {" .. table.concat(parts, ",") .. "}")
end

local function counter()
  local c = { ok = 0, fail = 0 }
  function c.count(url, r)
    if r.success and r.status_code == 200 then c.ok = c.ok + 1
    else
      c.fail = c.fail + 1
      c.first = c.first or (url .. ": " .. tostring(r.status_code) .. " " .. tostring(r.error))
    end
  end
  return c
end

if mode == "local" then
  local prefix, n, conc = arg[2], tonumber(arg[3]), tonumber(arg[4])
  local i = 0
  local c = counter()
  local f = fetcher.new{ max_concurrent = conc, timeout = 60, max_retries = 0 }
  local t0, c0 = task.now(), os.clock()
  f:each(function()
    if i >= n then return nil end
    i = i + 1
    return prefix .. i
  end, c.count)
  result{ n = n, ok = c.ok, fail = c.fail, elapsed = task.now() - t0, cpu = os.clock() - c0,
          first_error = c.first or "" }
  return c.ok == n and 0 or 1
elseif mode == "enqueue" then
  local url, stream, prefix, n = arg[2], arg[3], arg[4], tonumber(arg[5])
  local q = assert(queue.redis{ url = url, stream = stream })
  local urls = {}
  for i = 1, n do urls[i] = prefix .. i end
  local t0 = task.now()
  local added = assert(q:push_many(urls))
  result{ n = added, elapsed = task.now() - t0, round_trips = q:counters().round_trips }
  q:close()
  return added == n and 0 or 1
elseif mode == "redis" then
  local url, stream, n, conc = arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
  local q = assert(queue.redis{ url = url, stream = stream })
  local c = counter()
  local f = fetcher.new{ max_concurrent = conc, timeout = 60, max_retries = 0 }
  local t0, c0 = task.now(), os.clock()
  local source = q:source{ drain = true, prefetch = conc }
  local sink = q:sink()
  f:each(source, function(key, r, index, item)
    c.count(key, r)
    sink(key, r, index, item)
  end)
  local elapsed, cpu = task.now() - t0, os.clock() - c0
  local k = q:counters()
  q:close()
  result{ n = c.ok + c.fail, ok = c.ok, fail = c.fail, elapsed = elapsed, cpu = cpu, round_trips = k.round_trips,
          commands = k.commands, results = k.results, flushes = k.flushes, first_error = c.first or "" }
  return c.fail == 0 and 0 or 1
else
  io.stderr:write("usage: luafetch run luafetch_queue.lua local PREFIX N CONC | enqueue REDIS STREAM PREFIX N"
    .. " | redis REDIS STREAM N CONC\n")
  return 2
end
