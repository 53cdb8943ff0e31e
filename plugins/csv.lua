-- plugins/csv.lua: a result sink writing one CSV row per result (RFC 4180
-- quoting) to a file or stdout, with a header row. Rows are written as results
-- arrive and flushed at on_finish; the file is the sink's until `sink:close()`.

local jsonl = require "plugins.jsonl"

local M = {}

M.DEFAULT_COLUMNS = { "url", "method", "success", "status_code", "elapsed",
                      "attempts", "bytes", "kind", "error" }

local find, byte, format, mtype = string.find, string.byte, string.format, math.type

-- White space as %s has it (space, \t \n \v \f \r).
local function is_space(b)
  return b == 32 or (b >= 9 and b <= 13)
end

--- One CSV field: quoted when it holds the separator, a quote, CR or LF, or
--- leading/trailing spaces; quotes inside are doubled.
---@param value any
---@param separator? string  default ","
---@return string
function M.quote(value, separator)
  separator = separator or ","
  if value == nil then return "" end
  local text
  if mtype(value) == "float" then
    text = format("%.6f", value)
  else
    text = tostring(value)
  end
  -- plain finds (memchr) and two bytes: a pattern scan per field was most of a row's cost
  local first = byte(text, 1)
  if first and (find(text, '"', 1, true) or find(text, "\n", 1, true) or find(text, "\r", 1, true)
      or find(text, separator, 1, true) or is_space(first) or is_space(byte(text, -1))) then
    return '"' .. text:gsub('"', '""') .. '"'
  end
  return text
end

--- One CSV line (without the line ending).
---@param values any[]  may contain nils; `n` fields are written
---@param n integer
---@param separator? string
---@return string
function M.row(values, n, separator)
  local fields = {}
  for i = 1, n do fields[i] = M.quote(values[i], separator) end
  return table.concat(fields, separator or ",")
end

---@class CsvOptions
---@field path? string        file to write ("-" or nil: stdout)
---@field file? file*         an open file instead of a path
---@field append? boolean     append (no header is written when appending)
---@field columns? string[]   result fields (default M.DEFAULT_COLUMNS)
---@field header? boolean     write the header row (default true)
---@field separator? string   default ","
---@field eol? string         line ending (default "\n"; "\r\n" for strict RFC 4180)

--- A CSV sink plugin.
---@param opts? CsvOptions
---@return table plugin
function M.new(opts)
  opts = opts or {}
  local out, owned = jsonl.open_output(opts)
  local columns = opts.columns or M.DEFAULT_COLUMNS
  local separator = opts.separator or ","
  local eol = opts.eol or "\n"
  local need_header = opts.header ~= false and not opts.append
  local plugin = { name = "csv", rows = 0 }

  local function write_header()
    if need_header then
      need_header = false
      out:write(M.row(columns, #columns, separator), eol)
    end
  end

  local quote, concat = M.quote, table.concat
  local fields = {} -- one row's text, reused: nothing in on_result yields, so rows never interleave
  function plugin.on_result(key, result)
    write_header()
    local n = #columns
    for i = 1, n do
      local column = columns[i]
      local value = result[column]
      if column == "url" then value = value or key end
      fields[i] = quote(value, separator)
    end
    out:write(concat(fields, separator, 1, n), eol)
    plugin.rows = plugin.rows + 1
  end

  function plugin.on_finish()
    write_header()
    out:flush()
  end

  --- Flush, and close the file if the sink opened it.
  function plugin.close()
    if owned and io.type(out) == "file" then out:close() else out:flush() end
  end

  return plugin
end

return M
