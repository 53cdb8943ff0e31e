---@meta plugins.csv
-- LuaLS stubs for `require "plugins.csv"`: results as CSV rows (RFC 4180 quoting).

---@class plugins.csv
---@field DEFAULT_COLUMNS string[]
local csv = {}

---@class CsvOptions
---@field path? string        file to write ("-" or nil: stdout)
---@field file? file*
---@field append? boolean     (no header when appending)
---@field columns? string[]
---@field header? boolean     default true
---@field separator? string   default ","
---@field eol? string         default "\n"

---@class CsvSink: FetcherPlugin
---@field rows integer
---@field close fun()

---@param opts? CsvOptions
---@return CsvSink
function csv.new(opts) end

---@param value any
---@param separator? string
---@return string
function csv.quote(value, separator) end

---@param values any[]
---@param n? integer
---@param separator? string
---@return string
function csv.row(values, n, separator) end

return csv
