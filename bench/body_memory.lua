-- body_memory.lua — peak memory of a large body taken as a stream: `output` (to a file),
-- `stream` with a slow consumer (it sleeps 10 ms every 64 reads), or `upload` (PATH, an existing
-- file, PUT as `body = file`). Prints one `RESULT {json}` line with the bytes, seconds and the
-- peak RSS (VmHWM) of this process. With output, a PATH given is left for the caller to check;
-- without one the body goes to a temporary file, removed at the end.
--
-- usage: luafetch run bench/body_memory.lua URL output|stream|upload [PATH]
local http = require "http"
local task = require "task"

local url, mode, path = arg[1], arg[2], arg[3]
local keep = path ~= nil
path = path or os.tmpname()
if mode ~= "output" and mode ~= "stream" and mode ~= "upload" then
  io.stderr:write("usage: luafetch run body_memory.lua URL output|stream|upload [PATH]\n")
  return 2
end

local function status_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+)")
    if v then return tonumber(v) end
  end
  return 0
end

local t0 = task.now()
local size
if mode == "upload" then
  local f = assert(io.open(path, "rb"))
  size = f:seek("end")
  f:seek("set", 0)
  local res = assert(http.request{ url = url, method = "PUT", body = f, timeout = { read = 30 } })
  assert(res.status == 200, res.body)
  f:close()
elseif mode == "output" then
  local res = assert(http.download(url, path, { timeout = { read = 30 } }))
  size = res.size
  if not keep then os.remove(path) end
else
  local res = assert(http.request{ url = url, stream = true, timeout = { read = 30 } })
  local n, i = 0, 0
  while true do
    local chunk, err = res:read()
    if not chunk then assert(not err, err) break end
    n, i = n + #chunk, i + 1
    if i % 64 == 0 then task.sleep(0.01) end
  end
  size = n
end
local secs = task.now() - t0
print(("RESULT {\"mode\": \"%s\", \"bytes\": %d, \"seconds\": %.3f, \"mb_per_s\": %.1f, \"peak_rss_kb\": %d}")
  :format(mode, size, secs, size / secs / 1e6, status_kb("VmHWM")))
