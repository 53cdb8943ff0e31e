---@meta plugins.jsonl
-- LuaLS stubs for `require "plugins.jsonl"`: one JSON object per result.

---@class plugins.jsonl
---@field DEFAULT_FIELDS string[]
local jsonl = {}

---@class JsonlOptions
---@field path? string        ("-" or nil: stdout)
---@field file? file*
---@field append? boolean
---@field fields? string[]
---@field include_body? boolean
---@field include_headers? boolean

---@class JsonlSink: FetcherPlugin
---@field rows integer
---@field close fun()

---@param opts? JsonlOptions
---@return JsonlSink
function jsonl.new(opts) end

---JSON text of a value ("/" left unescaped).
---@param value any
---@return string
function jsonl.encode(value) end

---@param key string
---@param result FetchResult
---@param fields? string[]
---@return table
function jsonl.record(key, result, fields) end

return jsonl
