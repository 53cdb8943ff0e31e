-- script.lua — the allocation-failure torture's workload: a task, a semaphore, a plain GET with a
-- gzip body, an HTTPS GET on a fresh handshake, and output. Any failure must end as a Lua error
-- (exit status 1), never a crash or a hang. Usage: luafetch run script.lua BASE_URL TLS_URL CA_FILE
-- [plain]; "plain" stops before the HTTPS request (the runner sizes its dense range with it).
local http = require "http"
local task = require "task"

local base, tls_base, ca = arg[1], arg[2], arg[3]
local sem = task.semaphore(1)

local worker = task.spawn(function()
  sem:acquire()
  local r = assert(http.get(base .. "/gzip/300"))
  sem:release()
  return r.status, #r.body
end)
sem:acquire()
task.sleep(0)
sem:release()
local ok, status, len = worker:join()
assert(ok, status)
if arg[4] == "plain" then return end

local r = assert(http.get(tls_base .. "/json", { ca_file = ca }))
local doc = assert(r:json())
print(status, len, r.status, doc.n, sem:available())
