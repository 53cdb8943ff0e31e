-- plugins/logger.lua: levelled log lines, as text or JSON, for the fetcher and
-- its plugins. One default logger (configured by `logger.setup`) is shared by
-- everything that has not been handed a logger of its own. On a terminal the
-- level name is coloured (never with NO_COLOR, never in a file or pipe), and a
-- line goes above the progress bar being shown instead of through it.

local M = {}

---@alias LogLevelName "DEBUG"|"INFO"|"WARNING"|"ERROR"|"CRITICAL"

--- Numeric value of each level name; a message is written when its level is at
--- least the logger's level.
M.levels = { DEBUG = 10, INFO = 20, WARNING = 30, ERROR = 40, CRITICAL = 50 }

local LEVEL_ALIASES = { WARN = "WARNING", FATAL = "CRITICAL" }

local LEVEL_NAMES = {}
for name, value in pairs(M.levels) do LEVEL_NAMES[value] = name end

M.DEFAULT_FORMAT = "{time} - {name} - {level} - {message}"
M.DEFAULT_NAME = "luafetch"

local cjson_ok, cjson = pcall(require, "cjson")

---@class Logger
---@field name string          shown by the {name} token
---@field level integer         numeric threshold (see `logger.levels`)
---@field format string         a template with {time} {name} {level} {message}, or "json"
---@field time_format string    os.date format of {time}
---@field output fun(line: string)|file*  where lines go (default io.stderr)
---@field colour boolean|nil   colour the level name; nil: decided at the first line (terminal, no NO_COLOR)
local Logger = {}
Logger.__index = Logger

--- Turn a level name (any case, WARN accepted) or number into its number.
---@param level string|integer
---@return integer|nil value
---@return string|nil err
function M.parse_level(level)
  if math.type(level) == "integer" then return level end
  if type(level) ~= "string" then
    return nil, "log level must be a string, got " .. type(level)
  end
  local upper = level:upper()
  upper = LEVEL_ALIASES[upper] or upper
  local value = M.levels[upper]
  if not value then
    return nil, string.format(
      "LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, got '%s'", level)
  end
  return value
end

--- The level from the LOG_LEVEL environment variable, or nil when unset or
--- empty. A bad value raises `{exit_code = 2, message = ...}`.
---@param getenv? fun(name: string): string|nil
---@return integer|nil
function M.env_level(getenv)
  local raw = (getenv or os.getenv)("LOG_LEVEL")
  if raw == nil or raw == "" then return nil end
  local value, err = M.parse_level(raw)
  if not value then error({ exit_code = 2, message = err }, 0) end
  return value
end

---@param message string
---@return string
local function json_string(message)
  if cjson_ok then return cjson.encode(message) end
  local escaped = message:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n",
                    ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. escaped .. '"'
end

--- Encode a flat record as one JSON object; keys in a stable order.
---@param record table<string, any>
---@return string
local function json_line(record)
  local keys = {}
  for key in pairs(record) do keys[#keys + 1] = key end
  table.sort(keys, function(a, b)
    local order = { time = 1, level = 2, name = 3, message = 4 }
    local oa, ob = order[a] or 99, order[b] or 99
    if oa ~= ob then return oa < ob end
    return a < b
  end)
  local parts = {}
  for _, key in ipairs(keys) do
    local value = record[key]
    local encoded
    if type(value) == "number" then
      if value ~= value or value == math.huge or value == -math.huge then
        encoded = "null"
      elseif math.type(value) == "integer" then
        encoded = tostring(value)
      else
        encoded = string.format("%.6g", value)
      end
    elseif type(value) == "boolean" then
      encoded = tostring(value)
    else
      encoded = json_string(tostring(value))
    end
    parts[#parts + 1] = json_string(key) .. ":" .. encoded
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Python logging spellings, kept so the seed's format strings work unchanged.
local PY_TOKENS = {
  ["%(asctime)s"] = "{time}", ["%(name)s"] = "{name}",
  ["%(levelname)s"] = "{level}", ["%(message)s"] = "{message}",
}

---@param format string
---@return string
local function normalise_format(format)
  return (format:gsub("%%%(%a+%)s", function(token) return PY_TOKENS[token] end))
end

---@param self Logger
---@param line string
local function emit(self, line)
  local out = self.output
  if type(out) == "function" then
    out(line)
    return
  end
  -- a bar on the terminal: the line goes above it, and the bar is drawn again below
  local progress = package.loaded["plugins.progress"]
  if progress and (out == io.stderr or out == io.stdout) and progress.showing() then
    progress.print_above(out, line .. "\n")
    return
  end
  out:write(line, "\n")
  if out.flush then out:flush() end
end

-- ANSI colours of the level names on a terminal.
M.LEVEL_COLOURS = { DEBUG = "2", INFO = "36", WARNING = "33", ERROR = "31", CRITICAL = "1;31" }

--- Should this logger colour its level names? Only when it writes to the terminal's stdout or
--- stderr and NO_COLOR is not set (plugins.progress.colour_enabled).
---@param self Logger
---@return boolean
local function wants_colour(self)
  if self.colour == nil then
    local fd = self.output == io.stderr and 2 or self.output == io.stdout and 1 or nil
    self.colour = fd ~= nil and require("plugins.progress").colour_enabled(fd)
  end
  return self.colour
end

--- Build the line for one message.
---@param level_name string
---@param message string
---@param fields table|nil
---@return string
function Logger:render(level_name, message, fields)
  local time = os.date(self.time_format)
  if self.format == "json" then
    local record = { time = time, level = level_name, name = self.name,
                     message = message }
    for key, value in pairs(fields or {}) do
      if record[key] == nil then record[key] = value end
    end
    return json_line(record)
  end
  local shown_level = level_name
  if wants_colour(self) and M.LEVEL_COLOURS[level_name] then
    shown_level = "\27[" .. M.LEVEL_COLOURS[level_name] .. "m" .. level_name .. "\27[0m"
  end
  local values = { time = time, name = self.name, level = shown_level,
                   message = message }
  return (self.format:gsub("{(%a+)}", function(token)
    local value = values[token]
    if value == nil then return nil end
    return tostring(value)
  end))
end

--- True when a message at `level` would be written.
---@param level string|integer
---@return boolean
function Logger:enabled(level)
  local value = assert(M.parse_level(level))
  return value >= self.level
end

--- Write a message at `level`; extra arguments go through string.format.
---@param level string|integer
---@param message any
---@param ... any
function Logger:log(level, message, ...)
  local value = assert(M.parse_level(level))
  if value < self.level then return end
  message = tostring(message)
  if select("#", ...) > 0 then message = string.format(message, ...) end
  emit(self, self:render(LEVEL_NAMES[value] or tostring(value), message))
end

--- Write a message with structured fields: extra keys of the JSON line (the
--- text format shows the message only, so put what matters in it).
---@param level string|integer
---@param message string
---@param fields table<string, any>
function Logger:event(level, message, fields)
  local value = assert(M.parse_level(level))
  if value < self.level then return end
  emit(self, self:render(LEVEL_NAMES[value] or tostring(value), message, fields))
end

function Logger:debug(message, ...) self:log(10, message, ...) end
function Logger:info(message, ...) self:log(20, message, ...) end
function Logger:warning(message, ...) self:log(30, message, ...) end
function Logger:error(message, ...) self:log(40, message, ...) end
function Logger:critical(message, ...) self:log(50, message, ...) end
Logger.warn = Logger.warning

---@class LoggerOptions
---@field name? string
---@field level? string|integer   default: LOG_LEVEL, else INFO
---@field format? string          template or "json"
---@field time_format? string     os.date format (default "%Y-%m-%d %H:%M:%S")
---@field output? fun(line: string)|file*  default io.stderr
---@field colour? boolean         colour the level name (default: on a terminal unless NO_COLOR)

--- A new, independent logger.
---@param opts? LoggerOptions
---@return Logger
function M.new(opts)
  opts = opts or {}
  local level
  if opts.level ~= nil then
    level = assert(M.parse_level(opts.level))
  else
    level = M.env_level() or M.levels.INFO
  end
  local format = opts.format or M.DEFAULT_FORMAT
  if format ~= "json" then format = normalise_format(format) end
  local output = opts.output or io.stderr
  if type(output) ~= "function" and not (type(output) == "userdata"
      or type(output) == "table") then
    error("logger output must be a function or a file", 2)
  end
  return setmetatable({
    name = opts.name or M.DEFAULT_NAME,
    level = level,
    format = format,
    time_format = opts.time_format or "%Y-%m-%d %H:%M:%S",
    output = output,
    colour = opts.colour,
  }, Logger)
end

local default_logger ---@type Logger|nil

--- The shared logger used by the fetcher and the plugins.
---@return Logger
function M.get()
  if not default_logger then default_logger = M.new() end
  return default_logger
end

--- Configure the shared logger (the one the fetcher and plugins write to) and
--- return it. Options not given take their defaults again.
---@param opts? LoggerOptions
---@return Logger
function M.setup(opts)
  default_logger = M.new(opts)
  return default_logger
end

--- A logger that keeps its lines in `captured.lines` (for tests).
---@param opts? LoggerOptions
---@return Logger logger
---@return string[] lines
function M.capture(opts)
  local lines = {}
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.output = function(line) lines[#lines + 1] = line end
  return M.new(o), lines
end

return M
