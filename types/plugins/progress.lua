---@meta plugins.progress
-- LuaLS stubs for `require "plugins.progress"`: the progress bar (a fetcher plugin) and the
-- terminal manners shared with the logger and `luafetch get`.

---@class plugins.progress
---@field DEFAULTS { min_seconds: number, min_total: integer, interval: number, width: integer }
local progress = {}

---@class ProgressOptions
---@field total? integer
---@field mode? "auto"|"always"|"never"  default LUAFETCH_PROGRESS, else auto (a terminal and a long run)
---@field tty? boolean          what auto assumes about stderr (default: asked)
---@field output? fun(text: string)  default io.stderr
---@field min_seconds? number   auto: show once the run is this long (2)
---@field min_total? integer    auto: or has this many URLs (50)
---@field interval? number      seconds between redraws at least (0.1)
---@field width? integer        bar width (20)
---@field clock? fun(): number

---@class ProgressBar: FetcherPlugin
---@field enabled boolean
---@field mode string
---@field draws integer
---@field set_total fun(n: integer|nil)

---@param opts? ProgressOptions
---@return ProgressBar
function progress.new(opts) end

---Is file descriptor fd (1, 2) a terminal? Asked once per fd.
---@param fd integer
---@return boolean
function progress.is_tty(fd) end

---@return boolean
function progress.stderr_is_tty() end

---Colour on fd: a terminal, NO_COLOR unset, TERM not "dumb".
---@param fd integer
---@param getenv? fun(name: string): string|nil
---@return boolean
function progress.colour_enabled(fd, getenv) end

---Writes whole lines above the bar being shown (cleared, then drawn again below them).
---@param stream file*
---@param text string
function progress.print_above(stream, text) end

---@return boolean  a bar is on the terminal now
function progress.showing() end

---@param mode? string
---@param getenv? fun(name: string): string|nil
---@return "auto"|"always"|"never"
function progress.mode_of(mode, getenv) end

---@param s number|nil
---@return string  m:ss or h:mm:ss
function progress.format_duration(s) end

---@param s { done: integer, failed: integer, total: integer|nil, elapsed: number, finished?: boolean, width?: integer }
---@return string
function progress.format(s) end

return progress
