-- plugins_timer_spec.lua: plugins/timer.lua with a fake clock and a captured logger.

local timer = require "plugins.timer"
local logger = require "plugins.logger"

describe("plugins.timer", function()
  local clock, lines

  before_each(function()
    local log
    log, lines = logger.capture{ format = "{level} {message}" }
    clock = 0
    timer.configure{ logger = log, clock = function() return clock end }
  end)

  after_each(function()
    local ok, task = pcall(require, "task")
    timer.configure{ logger = nil, clock = ok and task.now or os.clock }
  end)

  it("wrap keeps the arguments and every result, nils included", function()
    local f = timer.wrap(function(a, b, c)
      clock = clock + 0.25
      return c, nil, a + b, nil
    end, "adder")
    local r = table.pack(f(1, 2, "x"))
    assert.are.equal(4, r.n)
    assert.are.same({ "x", nil, 3, nil, n = 4 }, r)
    assert.are.same({ "INFO adder: 250.00ms" }, lines)
  end)

  it("wrap names an anonymous function by its place", function()
    local f = timer.wrap(function() end)
    f()
    assert.matches("^INFO function <.+:%d+>: ", lines[1])
  end)

  it("wrap passes errors through and still logs", function()
    local f = timer.wrap(function() clock = clock + 1; error("bad thing", 0) end, "failing")
    local ok, err = pcall(f)
    assert.is_false(ok)
    assert.are.equal("bad thing", err)
    assert.matches("^INFO failing: 1%.000s %(failed: bad thing%)$", lines[1])
  end)

  it("scope logs when it goes out of scope", function()
    do
      local t <close> = timer.scope("block")
      clock = clock + 2.5
      assert.are.equal(2.5, t:elapsed())
    end
    assert.are.same({ "INFO block: 2.500s" }, lines)
  end)

  it("nested scopes are indented", function()
    do
      local _ <close> = timer.scope("Total workflow")
      do
        local _ <close> = timer.scope("Setup")
        clock = clock + 0.125
      end
      do
        local _ <close> = timer.scope("Fetching")
        do
          local _ <close> = timer.scope("Parsing")
          clock = clock + 0.5
        end
        clock = clock + 0.5
      end
    end
    assert.are.same({
      "INFO   Setup: 125.00ms",
      "INFO     Parsing: 500.00ms",
      "INFO   Fetching: 1.000s",
      "INFO Total workflow: 1.125s",
    }, lines)
  end)

  it("a wrapped function inside a scope is nested", function()
    local inner = timer.wrap(function() clock = clock + 0.002 end, "inner")
    do
      local _ <close> = timer.scope("outer")
      inner()
    end
    assert.are.same({ "INFO   inner: 2.00ms", "INFO outer: 2.00ms" }, lines)
  end)

  it("stop logs once and returns the elapsed time", function()
    local t = timer.scope("manual")
    clock = clock + 3
    assert.are.equal(3, t:stop())
    assert.are.equal(3, t:stop())
    assert.are.equal(1, #lines)
  end)

  it("logs at INFO: hidden when the logger's level is WARNING", function()
    local quiet, quiet_lines = logger.capture{ level = "WARNING" }
    timer.configure{ logger = quiet }
    timer.wrap(function() end, "hidden")()
    assert.are.equal(0, #quiet_lines)
  end)
end)
