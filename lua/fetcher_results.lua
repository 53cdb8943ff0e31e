-- fetcher_results.lua — the shape of a fetch result: one table constructor per outcome (a response,
-- a failure, an entry refused before any attempt), headers built only when read, result:json().

local C = require "_http"

local M = {}

-- result → the response's header block (a userdata of the C core), until `headers` is read.
-- Weak keys: a result that is dropped takes its block with it.
local DETAILS = setmetatable({}, { __mode = "k" })
M.DETAILS = DETAILS -- for fetcher_runner's short way, which builds successes itself

---@class FetchResult
---@field url string
---@field method string
---@field success boolean          2xx/3xx response (after retries)
---@field status_code integer|nil
---@field error string|nil         transport error, or "HTTP 404 Not Found"
---@field kind string|nil          http kind, "circuit_open", "invalid", or "status" for a non-2xx/3xx response
---@field elapsed number           seconds, retries and pauses included
---@field attempts integer
---@field body string|nil          nil when keep_body is false
---@field headers table|nil        built from the response when first read
---@field bytes integer            body size
---@field reused boolean|nil       last response came over a pooled connection
---@field final_url string|nil     URL after redirects
local Result = {}

---Decodes the body as JSON.
---@return any|nil value
---@return string|nil err
function Result:json()
  if type(self.body) ~= "string" then return nil, "no body (keep_body = false, or no response)" end
  local v, err = require("cjson.safe").decode(self.body)
  if v == nil and err then return nil, "invalid JSON: " .. err end
  return v
end

-- Most results are never asked for their headers: turning the response's header block into a
-- table costs about a quarter of a keep-alive request, so it happens on the first read.
local META = {
  __index = function(result, k)
    local method = Result[k]
    if method ~= nil then return method end
    if k == "headers" then
      local details = DETAILS[result]
      if details == nil then return nil end
      local headers = C.details_headers(details)
      rawset(result, "headers", headers)
      DETAILS[result] = nil
      return headers
    end
  end,
}

M.META = META

--- The result of an entry whose last attempt got a response (fetcher_runner.run_list builds the
--- common success itself: a change of shape here goes there too).
---@param url string
---@param method string
---@param res Response
---@param attempts integer
---@param elapsed number
---@param keep_body boolean
---@param seen boolean  hooks saw the response (and may have built its headers table)
---@return FetchResult
function M.of_response(url, method, res, attempts, elapsed, keep_body, seen)
  local status, body = res.status, res.body
  local result
  if status >= 200 and status < 400 then
    result = setmetatable({ url = url, method = method, success = true, status_code = status,
      attempts = attempts, elapsed = elapsed, bytes = body and #body or res.size or 0,
      body = keep_body and body or nil, reused = res.reused, final_url = res.url }, META)
  else
    local text = ("HTTP " .. status .. " " .. (res.reason or "")):gsub("%s+$", "")
    result = setmetatable({ url = url, method = method, success = false, status_code = status,
      error = text, kind = "status", attempts = attempts, elapsed = elapsed, bytes = body and #body or res.size or 0,
      body = keep_body and body or nil, reused = res.reused, final_url = res.url }, META)
  end
  local headers = seen and rawget(res, "headers") -- built already (a hook read them): shared
  if headers then
    rawset(result, "headers", headers)
  else
    DETAILS[result] = res._details
  end
  return result
end

--- The result of an entry whose last attempt failed without a response (or was refused).
---@param url string
---@param method string
---@param err any
---@param kind string|nil
---@param attempts integer
---@param elapsed number
---@return FetchResult
function M.of_failure(url, method, err, kind, attempts, elapsed)
  return setmetatable({ url = url, method = method, success = false, error = tostring(err),
    kind = kind or "error", attempts = attempts, elapsed = elapsed, bytes = 0 }, META)
end

--- A short reason for a log line: "HTTP 503" or "timeout: timed out after 5s".
---@param res table|nil
---@param err any
---@param kind string|nil
---@return string
function M.reason(res, err, kind)
  if res then return "HTTP " .. tostring(res.status) end
  return tostring(kind) .. ": " .. tostring(err)
end

return M
