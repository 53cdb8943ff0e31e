---@meta plugins.logger
-- LuaLS stubs for `require "plugins.logger"`: levelled log lines, text or JSON. On a terminal the
-- level is coloured (never with NO_COLOR) and lines go above the progress bar.

---@class plugins.logger
---@field levels table<string, integer>  DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50
---@field DEFAULT_FORMAT string           "{time} - {name} - {level} - {message}"
---@field DEFAULT_NAME string
---@field LEVEL_COLOURS table<string, string>  ANSI colour of each level name on a terminal
local logger = {}

---@alias LogLevel "DEBUG"|"INFO"|"WARNING"|"WARN"|"ERROR"|"CRITICAL"|integer

---@class LoggerOptions
---@field name? string
---@field level? LogLevel         default: LOG_LEVEL, else INFO
---@field format? string          "{time} {name} {level} {message}" template (Python's %(name)s too), or "json"
---@field time_format? string     os.date format (default "%Y-%m-%d %H:%M:%S")
---@field output? fun(line: string)|file*  default io.stderr
---@field colour? boolean         colour the level name (default: on a terminal, unless NO_COLOR)

---@class Logger
---@field name string
---@field level integer
---@field format string
local Logger = {}
---@param level LogLevel
---@param message any   a string.format format when more arguments follow
function Logger:log(level, message, ...) end
---A message with extra fields (keys of the JSON line).
---@param level LogLevel
---@param message string
---@param fields table<string, any>
function Logger:event(level, message, fields) end
---@param level LogLevel
---@return boolean
function Logger:enabled(level) end
function Logger:debug(message, ...) end
function Logger:info(message, ...) end
function Logger:warning(message, ...) end
function Logger:warn(message, ...) end
function Logger:error(message, ...) end
function Logger:critical(message, ...) end

---@param opts? LoggerOptions
---@return Logger
function logger.new(opts) end

---The shared logger of the fetcher and the plugins.
---@return Logger
function logger.get() end

---Configures the shared logger and returns it.
---@param opts? LoggerOptions
---@return Logger
function logger.setup(opts) end

---A logger keeping its lines (for tests).
---@param opts? LoggerOptions
---@return Logger logger
---@return string[] lines
function logger.capture(opts) end

---@param level string|integer
---@return integer|nil, string|nil
function logger.parse_level(level) end

---LOG_LEVEL's level, or nil; a bad value raises { exit_code = 2 }.
---@param getenv? fun(name: string): string|nil
---@return integer|nil
function logger.env_level(getenv) end

return logger
