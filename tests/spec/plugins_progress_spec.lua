-- plugins_progress_spec.lua: the progress bar: its line format, durations, the mode
-- (LUAFETCH_PROGRESS=always|never|auto, bad values), silence when stderr is not a terminal (also in
-- a child process whose stderr is a file), the "long run" thresholds, redraw throttling with "\r",
-- the final line, and the plugin in a real fetch.

local progress = require "plugins.progress"
local fetcher = require "fetcher"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")

local function shell_quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A plugin whose output is kept, on a clock the test moves.
local function captured(opts)
  local out = {}
  local now = 0
  opts = opts or {}
  opts.output = function(text) out[#out + 1] = text end
  opts.clock = function() return now end
  local p = progress.new(opts)
  return p, out, function(t) now = t end
end

local OK = { success = true }
local FAIL = { success = false }

describe("plugins.progress format", function()
  it("formats durations", function()
    assert.are.equal("0:00", progress.format_duration(0))
    assert.are.equal("0:06", progress.format_duration(5.6))
    assert.are.equal("1:05", progress.format_duration(65))
    assert.are.equal("1:00:01", progress.format_duration(3601))
    assert.are.equal("--:--", progress.format_duration(nil))
    assert.are.equal("--:--", progress.format_duration(math.huge))
  end)

  it("with a total: bar, done/total, percent, rate, ETA, failures", function()
    assert.are.equal("[##########..........] 500/1000  50.0%  50.0/s  ETA 0:10  3 failed",
      progress.format{ done = 500, total = 1000, failed = 3, elapsed = 10 })
    assert.are.equal("[....................] 0/60   0.0%  0.0/s  ETA --:--  0 failed",
      progress.format{ done = 0, total = 60, failed = 0, elapsed = 0 })
    assert.are.equal("[####################] 60/60 100.0%  12.0/s  done in 0:05  1 failed",
      progress.format{ done = 60, total = 60, failed = 1, elapsed = 5, finished = true })
    assert.are.equal("[#####.....] 1/2  50.0%  0.5/s  ETA 0:02  0 failed",
      progress.format{ done = 1, total = 2, failed = 0, elapsed = 2, width = 10 })
  end)

  it("without a total: done, rate, elapsed, failures", function()
    assert.are.equal("120 done  40.0/s  0:03 elapsed  2 failed",
      progress.format{ done = 120, failed = 2, elapsed = 3 })
    assert.are.equal("120 done  40.0/s  done in 0:03  2 failed",
      progress.format{ done = 120, failed = 2, elapsed = 3, finished = true })
  end)
end)

describe("plugins.progress mode", function()
  it("reads LUAFETCH_PROGRESS; the option wins; a bad value is a usage error", function()
    local env = function(v) return function(name)
      assert.are.equal("LUAFETCH_PROGRESS", name)
      return v
    end end
    assert.are.equal("auto", progress.mode_of(nil, env(nil)))
    assert.are.equal("auto", progress.mode_of(nil, env("")))
    assert.are.equal("always", progress.mode_of(nil, env("ALWAYS")))
    assert.are.equal("never", progress.mode_of(nil, env("never")))
    assert.are.equal("never", progress.mode_of("never", env("always")))
    local ok, err = pcall(progress.mode_of, nil, env("sometimes"))
    assert.is_false(ok)
    assert.are.same({ exit_code = 2,
      message = "LUAFETCH_PROGRESS must be always, never or auto, got 'sometimes'" }, err)
    ok, err = pcall(progress.new, { mode = "loud" })
    assert.is_false(ok)
    assert.are.equal(2, err.exit_code)
  end)

  it("auto is off when stderr is not a terminal", function()
    -- the real detection (`test -t 2`) runs in a child process below, whose stderr is a file
    local p, out = captured{ mode = "auto", tty = false, min_seconds = 0, min_total = 0 }
    assert.is_false(p.enabled)
    for i = 1, 100 do p.on_result("u" .. i, OK) end
    p.on_finish(nil, {})
    assert.are.same({}, out)
  end)

  it("never is silent even on a terminal", function()
    local p, out = captured{ mode = "never", tty = true, min_seconds = 0 }
    for i = 1, 100 do p.on_result("u" .. i, OK) end
    p.on_finish(nil, {})
    assert.are.same({}, out)
  end)
end)

describe("plugins.progress drawing", function()
  it("auto on a terminal stays silent for a short, small run", function()
    local p, out, clock = captured{ tty = true, mode = "auto" }
    assert.is_true(p.enabled)
    p.on_request({})
    for i = 1, 10 do
      clock(i * 0.1)
      p.on_result("u" .. i, OK)
    end
    p.on_finish(nil, {})
    assert.are.same({}, out)
  end)

  it("auto on a terminal appears once the run passes min_seconds", function()
    local p, out, clock = captured{ tty = true, mode = "auto" }
    p.on_request({})
    clock(1.5)
    p.on_result("a", OK)
    assert.are.same({}, out)
    clock(2.5)
    p.on_result("b", FAIL)
    assert.are.same({ "\r2 done  0.8/s  0:03 elapsed  1 failed" }, out)
    clock(3)
    p.on_finish(nil, {})
    assert.are.equal("\r2 done  0.7/s  done in 0:03  1 failed\n", out[2])
  end)

  it("auto on a terminal appears at once when the total is large", function()
    local p, out, clock = captured{ tty = true, mode = "auto", total = 60 }
    p.on_request({})
    clock(0.2)
    p.on_result("a", OK)
    assert.are.same({ "\r[....................] 1/60   1.7%  5.0/s  ETA 0:12  0 failed" }, out)
  end)

  it("redraws at most every `interval` seconds, in place, and pads a shorter line", function()
    local p, out, clock = captured{ mode = "always", total = 1000 }
    p.on_request({})
    for i = 1, 1000 do
      clock(i * 0.001) -- a result every millisecond, one second in all
      p.on_result("u" .. i, i % 100 == 0 and FAIL or OK)
    end
    assert.is_true(#out >= 9 and #out <= 11, "draws: " .. #out)
    for _, text in ipairs(out) do
      assert.are.equal("\r", text:sub(1, 1))
      assert.is_nil(text:find("\n", 1, true))
    end
    p.on_finish(nil, {})
    local last = out[#out]
    assert.are.equal("\r[####################] 1000/1000 100.0%  1000.0/s  done in 0:01  10 failed\n", last)
    -- a line shorter than the one before is padded with spaces to wipe it
    local q, qout, qclock = captured{ mode = "always", total = 1000 }
    q.on_request({})
    qclock(360)
    for i = 1, 998 do q.on_result(i, OK) end -- drawn once (ETA 99:54:00), then throttled
    qclock(361)
    q.on_result(999, OK)                       -- ETA 0:00: a shorter line
    assert.are.equal(2, #qout)
    assert.truthy(qout[1]:find("ETA 99:54:00", 1, true), qout[1])
    assert.are.equal(#qout[1], #qout[2])
    assert.truthy(qout[2]:find("ETA 0:00  0 failed  $"), qout[2])
  end)

  it("set_total and on_start give the total; a finished run resets for the next", function()
    local p, out, clock = captured{ mode = "always" }
    p.set_total(4)
    p.on_request({})
    clock(1)
    p.on_result("a", OK)
    assert.truthy(out[1]:find("1/4", 1, true), out[1])
    p.on_finish(nil, {})
    p.on_start{ total = 2 }
    clock(2)
    p.on_result("b", OK)
    assert.truthy(out[3]:find("] 1/2 ", 1, true), out[3])
    assert.truthy(out[3]:find("1.0/s", 1, true), out[3]) -- timed from on_start
    p.on_finish(nil, {})
    clock(3)
    p.on_result("c", OK) -- no total any more
    assert.truthy(out[5]:find("^\r1 done"), out[5])
  end)
end)

describe("plugins.progress in a fetch", function()
  it("draws to the given output during fetch_urls and ends the line", function()
    local out = {}
    local p = progress.new{ mode = "always", total = 20, interval = 0,
                            output = function(t) out[#out + 1] = t end }
    local urls = {}
    for i = 1, 20 do urls[i] = BASE .. "/json?i=" .. i end
    urls[20] = BASE .. "/status/404"
    fetcher.new{ plugins = { p }, max_concurrent = 4 }:fetch_urls(urls)
    assert.are.equal(21, #out)
    assert.truthy(out[1]:find("^\r%[#%.+%] 1/20 "), out[1])
    assert.truthy(out[21]:find("^\r%[#+%] 20/20 100%.0%%.*done in.*1 failed\n$"), out[21])
  end)

  local function child(env)
    local script = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write(string.format([[
local fetcher = require "fetcher"
local urls = {}
for i = 1, 60 do urls[i] = %q .. "/json?i=" .. i end
fetcher.new{ plugins = { require("plugins.progress").new{ total = #urls, min_seconds = 0 } } }:fetch_urls(urls)
print("done")
]], BASE))
    f:close()
    local errfile = os.tmpname()
    local p = assert(io.popen(env .. " timeout 20 " .. shell_quote(BIN) .. " run " .. script
      .. " 2>" .. errfile))
    local out = p:read("a")
    p:close()
    local ef = assert(io.open(errfile))
    local err = ef:read("a")
    ef:close()
    os.remove(script)
    os.remove(errfile)
    return out, err
  end

  it("is absent when stderr is a file (auto)", function()
    local out, err = child("LUAFETCH_PROGRESS=")
    assert.are.equal("done\n", out)
    assert.is_nil(err:find("\r", 1, true), err)
    assert.is_nil(err:find("60/60", 1, true), err)
  end)

  it("LUAFETCH_PROGRESS=always forces it onto stderr", function()
    local out, err = child("LUAFETCH_PROGRESS=always")
    assert.are.equal("done\n", out)
    assert.truthy(err:find("\r[####################] 60/60 100.0%", 1, true), err)
    assert.are.equal("\n", err:sub(-1))
  end)
end)

describe("plugins.progress terminal manners", function()
  it("colour only on a terminal, never with NO_COLOR or TERM=dumb", function()
    local function env(t) return function(name) return t[name] end end
    -- the specs' stdout and stderr are files, not terminals
    assert.is_false(progress.is_tty(1))
    assert.is_false(progress.is_tty(2))
    assert.is_false(progress.colour_enabled(2, env{}))
    assert.is_false(progress.colour_enabled(2, env{ NO_COLOR = "1" }))
    assert.is_false(progress.colour_enabled(2, env{ TERM = "dumb" }))
    -- on a terminal (a child under `script`): yes, unless NO_COLOR (set, not empty) or TERM=dumb
    local function on_tty(prefix)
      local log = os.tmpname()
      local code = "io.stdout:write(tostring(require('plugins.progress').colour_enabled(1)))"
      os.execute(("script -qec %s %s >/dev/null 2>&1"):format(
        shell_quote(prefix .. " " .. shell_quote(BIN) .. " -e " .. shell_quote(code)), shell_quote(log)))
      local f = assert(io.open(log))
      local text = f:read("a")
      f:close()
      os.remove(log)
      return text:match("\n(%a+)") or text:match("^(%a+)")
    end
    assert.are.equal("true", on_tty("NO_COLOR= TERM=xterm"))
    assert.are.equal("false", on_tty("NO_COLOR=1 TERM=xterm"))
    assert.are.equal("false", on_tty("TERM=dumb"))
  end)

  it("print_above clears the bar, writes the lines, and draws the bar again below", function()
    local p, out = captured{ mode = "always", total = 4, interval = 0, tty = true }
    assert.is_false(progress.showing())
    p.on_start{ total = 4 }
    p.on_result("a", OK)
    assert.is_true(progress.showing())
    local bar = out[#out]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    progress.print_above(f, "a line\n")
    f:close()
    local g = assert(io.open(path))
    assert.are.equal("a line\n", g:read("a"))
    g:close()
    os.remove(path)
    -- cleared with spaces as wide as the bar, then the same bar again
    assert.are.equal("\r" .. string.rep(" ", #bar - 1) .. "\r", out[#out - 1])
    assert.are.equal(bar, out[#out])
    p.on_finish()
    assert.is_false(progress.showing())
    -- no bar: a plain write, nothing drawn
    local before = #out
    local h = assert(io.open(os.tmpname(), "w"))
    progress.print_above(h, "x\n")
    h:close()
    assert.are.equal(before, #out)
  end)
end)
