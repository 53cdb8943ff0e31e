-- enqueue.lua — put URLs on a shared frontier (a Redis stream) for scripts/worker.lua to fetch.
--
-- usage: luafetch run enqueue --redis URL --stream S [--dedupe] FILE|-      (--help lists the options)
--
--   FILE or -       one URL per line (blank lines and lines starting with # are skipped); a line
--                   that is a JSON object is a request table: {"url": ..., "method": ..., "headers": ...}
--   --redis URL     redis://[[user]:password@]host[:port][/db] (default: REDIS_URL, else 127.0.0.1:6379)
--   --stream S      the stream's key (for Redis Cluster give it a hash tag: "{crawl}")
--   --dedupe        skip URLs already pushed with --dedupe (their fingerprints live in S:seen)
--
-- Prints how many entries went in and how many were duplicates. Exit status: 0, 1 (Redis failed
-- or an input line is not a valid entry: the lines before it are in), 2 bad usage.
local queue = require "queue"
local argparse = require "argparse"
local cjson = require "cjson.safe"

local M = {}

local function usage_error(message)
  error({ exit_code = 2, message = "enqueue.lua: " .. message }, 0)
end

local function failure(message)
  error({ exit_code = 1, message = "enqueue.lua: " .. message }, 0)
end

function M.parser()
  local p = argparse("luafetch run enqueue",
    "Put URLs on a shared frontier (a Redis stream) for scripts/worker.lua to fetch.",
    "One URL per line; blank lines and # comments are skipped; a JSON object is a request table.\n"
    .. "Example: luafetch run enqueue --redis redis://127.0.0.1:6379 --stream crawl --dedupe urls.txt\n"
    .. "Exit status: 0, 1 (Redis failed or a bad line: the lines before it are in), 2 bad usage.")
  p:add_help(false)
  p:help_max_width(80)
  p:flag("-h --help", "Show this help and exit.")
  p:argument("input", "File of URLs, or - for standard input."):args("?")
  p:option("--redis", "redis://[[user]:password@]host[:port][/db] (default: REDIS_URL, else redis://127.0.0.1:6379)."):argname("<url>")
  p:option("--stream", "The stream's key, e.g. crawl (Redis Cluster: {crawl})."):argname("<key>")
  p:flag("--dedupe", "Skip URLs already pushed with --dedupe (fingerprints in <stream>:seen).")
  p:option("--batch", "Entries per round trip (default 500)."):argname("<n>")
  return p
end

--- The entry of one input line: nil for a blank or comment line; error for a bad JSON line.
function M.entry_of(line, n)
  line = line:gsub("^%s+", ""):gsub("%s+$", "")
  if line == "" or line:sub(1, 1) == "#" then return nil end
  if line:sub(1, 1) == "{" then
    local t, err = cjson.decode(line)
    if type(t) ~= "table" then failure(("line %d: not a JSON object: %s"):format(n, tostring(err))) end
    return t
  end
  return line
end

local function main(args)
  local p = M.parser()
  local ok, given = p:pparse(args)
  if not ok then usage_error(given .. " (try --help)") end
  if given.help then
    io.stdout:write(p:get_help(), "\n")
    return 0
  end
  if not given.stream then usage_error("--stream is required (try --help)") end
  if not given.input then usage_error("give a file of URLs, or - for standard input (try --help)") end
  local batch = 500
  if given.batch then
    batch = math.tointeger(tonumber(given.batch))
    if not batch or batch < 1 then usage_error("--batch needs a positive integer") end
  end
  local input, err
  if given.input == "-" then
    input = io.stdin
  else
    input, err = io.open(given.input)
    if not input then usage_error("cannot open " .. tostring(err)) end
  end
  local q, qerr = queue.redis{ url = given.redis, stream = given.stream }
  if not q then usage_error(qerr) end
  local added, dups, n = 0, 0, 0
  local pending = {}
  local function flush()
    if #pending == 0 then return end
    local a, d, kind = q:push_many(pending, { dedupe = given.dedupe }, batch)
    if not a then failure(d .. (kind == "invalid" and "" or ("; " .. added .. " entries were pushed before"))) end
    added, dups = added + a, dups + d
    pending = {}
  end
  for line in input:lines() do
    n = n + 1
    local entry = M.entry_of(line, n)
    if entry then
      pending[#pending + 1] = entry
      if #pending >= batch * 4 then flush() end
    end
  end
  flush()
  if input ~= io.stdin then input:close() end
  q:close()
  print(("enqueued %d entries to %s%s"):format(added, given.stream,
    given.dedupe and (" (%d duplicates skipped)"):format(dups) or ""))
  return 0
end

if ... == "--as-module" then return M end
return main(arg)
