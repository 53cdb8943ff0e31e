-- plugins/jsonl.lua: a result sink writing one JSON object per result (JSON
-- lines) to a file or stdout. Rows are written as results arrive and flushed
-- at on_finish; the file is the sink's until `sink:close()`.

local cjson = require "cjson"

local M = {}

--- Fields written by default, in this order of importance.
M.DEFAULT_FIELDS = { "url", "method", "success", "status_code", "error", "kind",
                     "elapsed", "attempts", "bytes" }

--- Always-present fields are written as JSON null when absent.
local NULLABLE = { status_code = true, error = true, kind = true }

---@param value number
---@return number
local function round_micro(value)
  return math.floor(value * 1e6 + 0.5) / 1e6
end

--- cjson.encode without the escaped forward slashes ("\/") lua-cjson 2.1
--- writes: every "/" it emits is escaped, so undoing the escape is exact.
---@param value any
---@return string
function M.encode(value)
  return (cjson.encode(value):gsub("\\/", "/"))
end

--- The JSON-ready record of one result.
---@param key string
---@param result FetchResult
---@param fields string[]
---@return table
---@param into? table  a table to fill instead of a new one (its fields are all overwritten)
function M.record(key, result, fields, into)
  local record = into or {}
  for _, field in ipairs(fields) do
    local value = result[field]
    if field == "url" then value = value or key end
    if field == "elapsed" and type(value) == "number" then value = round_micro(value) end
    if value == nil and NULLABLE[field] then value = cjson.null end
    record[field] = value
  end
  return record
end

--- Open the destination: a path ("-" or nil for stdout) or an open file.
---@param opts table
---@return file* out
---@return boolean owned  true when the sink opened it (and closes it)
function M.open_output(opts)
  if opts.file then return opts.file, false end
  if opts.path == nil or opts.path == "-" then return io.stdout, false end
  local out, err = io.open(opts.path, opts.append and "a" or "w")
  if not out then error("cannot open sink file: " .. tostring(err), 3) end
  return out, true
end

---@class JsonlOptions
---@field path? string        file to write ("-" or nil: stdout)
---@field file? file*         an open file instead of a path
---@field append? boolean     append to the file instead of truncating it
---@field fields? string[]    result fields to write (default M.DEFAULT_FIELDS)
---@field include_body? boolean  add the body (text bodies only: JSON has no bytes)
---@field include_headers? boolean

--- A JSON-lines sink plugin.
---@param opts? JsonlOptions
---@return table plugin
function M.new(opts)
  opts = opts or {}
  local out, owned = M.open_output(opts)
  local fields = {}
  for i, f in ipairs(opts.fields or M.DEFAULT_FIELDS) do fields[i] = f end
  if opts.include_body then fields[#fields + 1] = "body" end
  if opts.include_headers then fields[#fields + 1] = "headers" end
  local plugin = { name = "jsonl", rows = 0 }

  local record = {} -- reused: nothing in on_result yields, so records never interleave
  function plugin.on_result(key, result)
    out:write(M.encode(M.record(key, result, fields, record)), "\n")
    plugin.rows = plugin.rows + 1
  end

  function plugin.on_finish()
    out:flush()
  end

  --- Flush, and close the file if the sink opened it.
  function plugin.close()
    if owned and io.type(out) == "file" then out:close() else out:flush() end
  end

  return plugin
end

return M
