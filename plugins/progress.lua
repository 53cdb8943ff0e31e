-- plugins/progress.lua: a one-line progress bar on stderr for long fetches: done/total, percent,
-- rate, ETA, failures; redrawn in place with "\r" at most `interval` apart. Shown only when stderr
-- is a terminal and the run is long (LUAFETCH_PROGRESS=always|never|auto overrides), so logs,
-- pipes and CI output stay clean. A fetcher plugin (on_start, on_request, on_result, on_finish).
-- Also the terminal manners shared by the command line and the logger: is_tty, colour_enabled
-- (a terminal, and NO_COLOR unset), and print_above, which writes a line above the bar being
-- shown (log lines, `luafetch get` lines) and redraws the bar below it.

local task = require "task"

local M = {}

M.DEFAULTS = { min_seconds = 2, min_total = 50, interval = 0.1, width = 20 }

local MODES = { auto = true, always = true, never = true }

local tty_cache = {}

--- True when file descriptor `fd` (1 stdout, 2 stderr) is a terminal. Asks the shell once per fd
--- (Lua has no isatty); the answer is kept.
---@param fd integer
---@return boolean
function M.is_tty(fd)
  if tty_cache[fd] == nil then
    local ok, how, code = os.execute("test -t " .. math.tointeger(fd))
    tty_cache[fd] = ok == true and how == "exit" and code == 0
  end
  return tty_cache[fd]
end

--- True when stderr is a terminal.
---@return boolean
function M.stderr_is_tty()
  return M.is_tty(2)
end

--- Colour on `fd`: only on a terminal, never when NO_COLOR is set (to anything but ""; see
--- no-color.org) or TERM is "dumb".
---@param fd integer
---@param getenv? fun(name: string): string|nil
---@return boolean
function M.colour_enabled(fd, getenv)
  getenv = getenv or os.getenv
  local no = getenv("NO_COLOR")
  if no ~= nil and no ~= "" then return false end
  if getenv("TERM") == "dumb" then return false end
  return M.is_tty(fd)
end

-- The bar on the terminal now (one at a time): { clear = fn, redraw = fn }, or nil.
local active = nil

--- Write `text` (whole lines) to `stream` above the bar being shown, if any: the bar's line is
--- cleared, the text written, and the bar drawn again below it. Without a bar it is a plain write.
---@param stream file*
---@param text string
function M.print_above(stream, text)
  local bar = active
  if bar then bar.clear() end
  stream:write(text)
  stream:flush()
  if bar then bar.redraw() end
end

--- True while a bar is drawn on the terminal.
---@return boolean
function M.showing()
  return active ~= nil
end

--- The mode from opts.mode, else LUAFETCH_PROGRESS, else "auto". A bad value raises.
---@param mode string|nil
---@param getenv? fun(name: string): string|nil
---@return "auto"|"always"|"never"
function M.mode_of(mode, getenv)
  local from = "mode"
  if mode == nil then
    local env = (getenv or os.getenv)("LUAFETCH_PROGRESS")
    if env ~= nil and env ~= "" then mode, from = env:lower(), "LUAFETCH_PROGRESS" end
  end
  mode = mode or "auto"
  if not MODES[mode] then
    error({ exit_code = 2, message = string.format(
      "%s must be always, never or auto, got '%s'", from, tostring(mode)) }, 0)
  end
  return mode
end

--- Seconds as m:ss or h:mm:ss.
---@param s number|nil
---@return string
function M.format_duration(s)
  if s == nil or s ~= s or s == math.huge or s < 0 then return "--:--" end
  s = math.floor(s + 0.5)
  local h, m, sec = s // 3600, s % 3600 // 60, s % 60
  if h > 0 then return string.format("%d:%02d:%02d", h, m, sec) end
  return string.format("%d:%02d", m, sec)
end

---@class ProgressState
---@field done integer
---@field failed integer
---@field total integer|nil
---@field elapsed number
---@field finished? boolean
---@field width? integer

--- The text of the bar (without "\r"). With a total:
--- `[##########..........] 500/1000  50.0%  81.2/s  ETA 0:06  3 failed`; without one:
--- `500 done  81.2/s  0:06 elapsed  3 failed`. Finished runs show `done in` instead of ETA.
---@param s ProgressState
---@return string
function M.format(s)
  local rate = s.elapsed > 0 and s.done / s.elapsed or 0
  local rate_text = string.format("%.1f/s", rate)
  local failed = string.format("%d failed", s.failed)
  if s.total and s.total > 0 then
    local frac = math.min(s.done / s.total, 1)
    local width = s.width or M.DEFAULTS.width
    local fill = math.floor(frac * width)
    local bar = "[" .. string.rep("#", fill) .. string.rep(".", width - fill) .. "]"
    local tail
    if s.finished then
      tail = "done in " .. M.format_duration(s.elapsed)
    else
      local left = math.max(s.total - s.done, 0)
      tail = "ETA " .. M.format_duration(rate > 0 and left / rate or nil)
    end
    return string.format("%s %d/%d %5.1f%%  %s  %s  %s", bar, s.done, s.total, frac * 100,
      rate_text, tail, failed)
  end
  local when = s.finished and ("done in " .. M.format_duration(s.elapsed))
    or (M.format_duration(s.elapsed) .. " elapsed")
  return string.format("%d done  %s  %s  %s", s.done, rate_text, when, failed)
end

---@class ProgressOptions
---@field total? integer        URLs expected (fetch_urls sets it through on_start when it can)
---@field mode? "auto"|"always"|"never"  default LUAFETCH_PROGRESS, else auto
---@field tty? boolean          what auto assumes about stderr (default: asked once, `test -t 2`)
---@field output? fun(text: string)  where the text goes (default io.stderr)
---@field min_seconds? number   auto: show once the run is this long (2)
---@field min_total? integer    auto: or once it has (or will have) this many URLs (50)
---@field interval? number      seconds between redraws at least (0.1)
---@field width? integer        bar width in characters (20)
---@field clock? fun(): number  seconds (default task.now)

--- A progress-bar plugin.
---@param opts? ProgressOptions
---@return table plugin
function M.new(opts)
  opts = opts or {}
  local mode = M.mode_of(opts.mode)
  local enabled = mode ~= "never"
  if enabled and mode == "auto" then
    local tty = opts.tty
    if tty == nil then tty = M.stderr_is_tty() end
    enabled = tty
  end
  local output = opts.output or function(text)
    io.stderr:write(text)
    io.stderr:flush()
  end
  local clock = opts.clock or task.now
  local min_seconds = opts.min_seconds or M.DEFAULTS.min_seconds
  local min_total = opts.min_total or M.DEFAULTS.min_total
  local interval = opts.interval or M.DEFAULTS.interval
  local width = opts.width or M.DEFAULTS.width

  local plugin = { name = "progress", enabled = enabled, mode = mode, draws = 0 }
  local st ---@type table

  local function reset()
    st = { started = nil, done = 0, failed = 0, total = opts.total, last_draw = nil,
           shown = false, last_len = 0 }
  end
  reset()

  local function start()
    if not st.started then st.started = clock() end
  end

  local function long_enough(now)
    if mode == "always" then return true end
    return now - st.started >= min_seconds or (st.total or 0) >= min_total
      or st.done >= min_total
  end

  local handle -- this bar in `active` while it is on the terminal

  local function draw(now, finished)
    local line = M.format{ done = st.done, failed = st.failed, total = st.total,
                           elapsed = now - st.started, finished = finished, width = width }
    local pad = st.last_len > #line and string.rep(" ", st.last_len - #line) or ""
    st.last_len = #line
    st.last_draw = now
    st.shown = true
    st.line = line
    plugin.draws = plugin.draws + 1
    output("\r" .. line .. pad .. (finished and "\n" or ""))
    if finished then
      if active == handle then active = nil end
      st.last_len = 0
    else
      active = handle
    end
  end

  handle = {
    clear = function()
      if st.last_len > 0 then output("\r" .. string.rep(" ", st.last_len) .. "\r") end
      st.last_len = 0
    end,
    redraw = function()
      if st.line then
        output("\r" .. st.line)
        st.last_len = #st.line
      end
    end,
  }

  --- Set the number of URLs expected in this run.
  ---@param n integer|nil
  function plugin.set_total(n) st.total = n end

  --- The fetcher's start of a run (when it reports one): `info.total` URLs, if known.
  function plugin.on_start(info)
    reset()
    if type(info) == "table" and info.total then st.total = info.total end
    start()
  end

  function plugin.on_request() start() end

  function plugin.on_result(_, result)
    if not enabled then return end
    start()
    st.done = st.done + 1
    if not (result and result.success) then st.failed = st.failed + 1 end
    local now = clock()
    if st.last_draw and now - st.last_draw < interval then return end
    if long_enough(now) then draw(now, false) end
  end

  function plugin.on_finish()
    if enabled and st.started and (st.shown or long_enough(clock())) then
      draw(clock(), true)
    end
    if active == handle then active = nil end
    reset()
  end

  return plugin
end

return M
