-- json.lua — the `json` module for scripts: lua-cjson behind a small documented surface.
-- encode(value) → text, or nil, message; decode(text) → value, or nil, message; json.null.
-- Errors are returned, never raised, so a bad document from a server cannot stop a task.
local cjson = require "cjson.safe"

local M = {}

---The value JSON `null` decodes to, and that encodes as `null` (lua-cjson's lightuserdata).
M.null = cjson.null

---Encodes a Lua value as JSON text. "/" is written as is (lua-cjson alone writes "\/", valid but
---noisy: every backslash in its output starts an escape pair, so "\/" always stands for "/").
---Empty tables encode as `{}`; arrays are tables with keys 1..n; NaN and infinities are refused.
---@param value any
---@return string|nil text
---@return string|nil err
function M.encode(value)
  local text, err = cjson.encode(value)
  if not text then
    return nil, "cannot encode JSON: " .. tostring(err)
  end
  if text:find("\\/", 1, true) then
    text = text:gsub("\\/", "/")
  end
  return text
end

---Decodes JSON text. `null` becomes json.null (not nil, so arrays keep their length).
---@param text string
---@return any|nil value
---@return string|nil err
function M.decode(text)
  if type(text) ~= "string" then
    return nil, "cannot decode JSON: expected a string, got " .. type(text)
  end
  local value, err = cjson.decode(text)
  if value == nil and err then
    return nil, "invalid JSON: " .. tostring(err)
  end
  return value
end

return M
