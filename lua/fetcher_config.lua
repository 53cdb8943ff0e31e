-- fetcher_config.lua — the fetcher's settings: defaults, the environment (MAX_CONCURRENT,
-- HTTP_TIMEOUT, MAX_RETRIES, BACKOFF_FACTOR, LOG_LEVEL), option checks and per-URL timeout rules.

local logger = require "plugins.logger"

local M = {}

M.DEFAULTS = {
  max_concurrent = 100,
  timeout = 30,
  max_retries = 3,
  backoff_factor = 1.5,
  max_backoff = 60,
  jitter = 0.1,
}

---@param text string
---@return number|nil
local function plain_number(text)
  local trimmed = text:match("^%s*(.-)%s*$")
  if not (trimmed:match("^%d+%.?%d*$") or trimmed:match("^%.%d+$")
          or trimmed:match("^%d+%.?%d*[eE][+-]?%d+$")) then
    return nil
  end
  return tonumber(trimmed)
end

local PARSERS = {
  positive_integer = function(text)
    local n = plain_number(text)
    if n and n >= 1 and n == math.floor(n) then return math.tointeger(n) end
  end,
  non_negative_integer = function(text)
    local n = plain_number(text)
    if n and n >= 0 and n == math.floor(n) then return math.tointeger(n) end
  end,
  positive_number = function(text)
    local n = plain_number(text)
    if n and n > 0 and n < math.huge then return n end
  end,
  non_negative_number = function(text)
    local n = plain_number(text)
    if n and n >= 0 and n < math.huge then return n end
  end,
}

--- How each kind of value is named in messages.
local KIND_TEXT = {
  positive_integer = "positive integer", non_negative_integer = "non-negative integer",
  positive_number = "positive number", non_negative_number = "non-negative number",
}

local ENV_VARS = {
  { var = "MAX_CONCURRENT", key = "max_concurrent", kind = "positive_integer" },
  { var = "HTTP_TIMEOUT", key = "timeout", kind = "positive_number" },
  { var = "MAX_RETRIES", key = "max_retries", kind = "non_negative_integer" },
  { var = "BACKOFF_FACTOR", key = "backoff_factor", kind = "non_negative_number" },
}

--- Defaults read from MAX_CONCURRENT, HTTP_TIMEOUT, MAX_RETRIES, BACKOFF_FACTOR
--- (LOG_LEVEL is checked too). Unset or empty variables are skipped; a bad value
--- raises `{exit_code = 2, message = ...}`, which the host turns into exit 2.
---@param getenv? fun(name: string): string|nil  default os.getenv
---@return table<string, number>
function M.env_defaults(getenv)
  getenv = getenv or os.getenv
  local out = {}
  for _, spec in ipairs(ENV_VARS) do
    local raw = getenv(spec.var)
    if raw ~= nil and raw ~= "" then
      local value = PARSERS[spec.kind](raw)
      if value == nil then
        error({ exit_code = 2, message = string.format("%s must be a %s, got '%s'",
          spec.var, KIND_TEXT[spec.kind], raw) }, 0)
      end
      out[spec.key] = value
    end
  end
  logger.env_level(getenv)
  return out
end

--- A numeric option, checked: nil stays nil; a bad value raises, blaming the caller of
--- `fetcher.new` (level 4: check_option ← M.new's helper ← fetcher.new ← the script).
---@param value any
---@param name string
---@param kind string  a PARSERS key
---@return number|nil
function M.check_option(value, name, kind)
  if value == nil then return nil end
  local ok = type(value) == "number" and PARSERS[kind](string.format("%.17g", value))
  if not ok then
    error(string.format("fetcher: %s must be a %s, got %s", name,
      KIND_TEXT[kind], tostring(value)), 4)
  end
  if kind:find("integer") then return math.tointeger(value) end
  return value
end

--- A timeout option: seconds, or a table of phases for http.request.
---@param value any
---@param name string
function M.check_timeout(value, name)
  if type(value) == "table" then return value end
  return M.check_option(value, name, "positive_number")
end

---@alias TimeoutRule { pattern: string, timeout: number|table }

--- Compile `timeouts` into an ordered list of rules. Array form
--- `{ {pattern, seconds}, ... }` keeps its order; map form
--- `{ [pattern] = seconds }` is ordered longest pattern first, then
--- alphabetically, so the most specific pattern wins deterministically.
---@param timeouts table|nil
---@return TimeoutRule[]
function M.compile_timeouts(timeouts)
  local rules = {}
  if timeouts == nil then return rules end
  assert(type(timeouts) == "table", "fetcher: timeouts must be a table")
  local array_form = #timeouts > 0
  if array_form then
    for i, rule in ipairs(timeouts) do
      local pattern = rule.pattern or rule[1]
      local seconds = rule.timeout or rule[2]
      if type(pattern) ~= "string" then
        error(string.format("fetcher: timeouts[%d] needs a pattern string", i), 3)
      end
      rules[#rules + 1] = { pattern = pattern, timeout = seconds }
    end
  else
    for pattern, seconds in pairs(timeouts) do
      if type(pattern) ~= "string" then
        error("fetcher: timeouts keys must be Lua pattern strings", 3)
      end
      rules[#rules + 1] = { pattern = pattern, timeout = seconds }
    end
    table.sort(rules, function(a, b)
      if #a.pattern ~= #b.pattern then return #a.pattern > #b.pattern end
      return a.pattern < b.pattern
    end)
  end
  for _, rule in ipairs(rules) do
    local ok, err = pcall(string.find, "", rule.pattern)
    if not ok then
      error(string.format("fetcher: bad timeout pattern '%s': %s", rule.pattern, err), 3)
    end
    M.check_timeout(rule.timeout, "timeout for '" .. rule.pattern .. "'")
  end
  return rules
end

--- The timeout of a URL: the first matching rule, else `default`.
---@param rules TimeoutRule[]
---@param url string
---@param default number|table
---@return number|table
function M.timeout_for(rules, url, default)
  for i = 1, #rules do
    local rule = rules[i]
    if url:find(rule.pattern) then return rule.timeout end
  end
  return default
end

--- Fields of an entry or of the fetcher's options that go on to `http.request` as they are.
M.HTTP_FIELDS = { "url", "method", "headers", "body", "json", "timeout",
                  "max_redirects", "max_body", "verify", "ca_file", "cert_file",
                  "key_file", "decompress", "proxy", "http2", "auth", "form", "multipart",
                  "output", "sink", "body_size" }

--- The fetcher-wide request options (`max_redirects` ... `proxy`) given in `opts`.
---@param opts table
---@return table
function M.request_defaults(opts)
  return {
    max_redirects = opts.max_redirects, max_body = opts.max_body,
    verify = opts.verify, ca_file = opts.ca_file, cert_file = opts.cert_file,
    key_file = opts.key_file, decompress = opts.decompress, proxy = opts.proxy,
    http2 = opts.http2, auth = opts.auth,
  }
end

--- Resolve the numeric settings of `opts`: explicit option, environment, default. Raises on a
--- bad value (the environment's as `{exit_code = 2}`).
---@param opts table
---@return table settings  max_concurrent, max_per_host, timeout, timeout_rules, deadline,
---                        chunk_size, max_retries, backoff_factor, max_backoff, jitter
function M.settings(opts)
  local env = M.env_defaults()
  local function pick(key) -- explicit option, environment, default
    if opts[key] ~= nil then return opts[key] end
    if env[key] ~= nil then return env[key] end
    return M.DEFAULTS[key]
  end
  local check = M.check_option
  return {
    max_concurrent = check(pick("max_concurrent"), "max_concurrent", "positive_integer"),
    max_per_host = check(opts.max_per_host, "max_per_host", "positive_integer"),
    timeout = M.check_timeout(pick("timeout"), "timeout"),
    timeout_rules = M.compile_timeouts(opts.timeouts),
    deadline = check(opts.deadline, "deadline", "positive_number"),
    chunk_size = check(opts.chunk_size, "chunk_size", "positive_integer"),
    max_retries = check(pick("max_retries"), "max_retries", "non_negative_integer"),
    backoff_factor = check(pick("backoff_factor"), "backoff_factor", "non_negative_number"),
    max_backoff = check(pick("max_backoff"), "max_backoff", "non_negative_number"),
    jitter = check(pick("jitter"), "jitter", "non_negative_number"),
  }
end

return M
