-- fetcher_sources.lua — where entries come from and what an entry is: the `each` source interface
-- (an iterator function, an object with :next(), or an array; once a source has returned nil it
-- is never called again) and the checks that turn a URL or request table into an entry.

local breaker = require "plugins.breaker"

local M = {}

--- A function returning the source's next item, or nil once the source is exhausted; after
--- the first nil the source itself is never called again (an `io.lines` iterator raises when it
--- is called after the end of its file, and so may any source that frees what it read from).
---   source: a function (an iterator such as `io.lines(path)`), an object with a `next` method
---   (`source:next()`, e.g. a queue or a Redis stream reader), or an array (walked in order).
---@param source function|table|userdata
---@return fun(): any
function M.reader(source)
  local read
  local kind = type(source)
  if kind == "function" then
    read = source
  elseif (kind == "table" or kind == "userdata") and type(source.next) == "function" then
    local next_of = source.next
    read = function() return next_of(source) end
  elseif kind == "table" then
    local i = 0
    return function()
      if i < 0 then return nil end
      i = i + 1
      local item = source[i]
      if item == nil then i = -1 end
      return item
    end
  else
    error("each expects an iterator function, an object with a next method, or an array, got "
      .. kind, 3)
  end
  local done = false
  return function()
    if done then return nil end
    local item = read()
    if item == nil then done = true end
    return item
  end
end

--- Check a URL string or request table. A URL string is its own entry (no table per URL); a
--- table is copied, with `method` upper-cased (default "GET") and `key` (default the URL).
---@param raw any
---@return string|table|nil entry
---@return string|nil err
function M.entry(raw)
  if type(raw) == "string" then return raw end
  if type(raw) ~= "table" or type(raw.url) ~= "string" then
    return nil, "an entry must be a URL string or a table with a url field, got "
      .. (type(raw) == "table" and "a table without url" or type(raw))
  end
  if raw.method ~= nil and type(raw.method) ~= "string" then
    return nil, "an entry's method must be a string, got " .. type(raw.method)
  end
  local entry = {}
  for k, v in pairs(raw) do entry[k] = v end
  entry.method = string.upper(entry.method or "GET")
  entry.key = entry.key or entry.url
  return entry
end

--- An entry standing for an item that is not one: fetching it gives a failed result of kind
--- "invalid" with `err` as its error.
---@param raw any
---@param err string
---@return table
function M.invalid(raw, err)
  local url = tostring(type(raw) == "table" and type(raw.url) == "string" and raw.url or raw)
  return { url = url, method = "GET", key = url, host = "", invalid = err }
end

--- The entry as a table (url, method, key, host), as `fetcher.entry_of` has always returned it.
---@param raw any
---@return table|nil entry
---@return string|nil err
function M.entry_table(raw)
  local entry, err = M.entry(raw)
  if not entry then return nil, err end
  if type(entry) == "string" then entry = { url = entry, method = "GET", key = entry } end
  entry.host = breaker.host_of(entry.url)
  return entry
end

return M
