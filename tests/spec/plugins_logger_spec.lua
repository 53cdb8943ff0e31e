-- plugins_logger_spec.lua: plugins/logger.lua (pure: no server needed).

local logger = require "plugins.logger"
local cjson = require "cjson"

describe("plugins.logger", function()
  it("formats the {time} {name} {level} {message} tokens", function()
    local log, lines = logger.capture{ name = "app", format = "[{level}] {name}: {message} @{time}" }
    log:info("hello %s %d", "world", 3)
    assert.are.equal(1, #lines)
    assert.matches("^%[INFO%] app: hello world 3 @%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d$", lines[1])
  end)

  it("accepts the seed's Python format tokens", function()
    local log, lines = logger.capture{
      name = "seed", format = "%(asctime)s - %(name)s - %(levelname)s - %(message)s" }
    log:warning("careful")
    assert.matches("^%d.+ %- seed %- WARNING %- careful$", lines[1])
  end)

  it("does not run string.format without arguments", function()
    local log, lines = logger.capture{ format = "{message}" }
    log:info("100% sure")
    assert.are.equal("100% sure", lines[1])
  end)

  it("filters by level", function()
    local log, lines = logger.capture{ level = "WARNING", format = "{level} {message}" }
    log:debug("d")
    log:info("i")
    log:warning("w")
    log:warn("w2")
    log:error("e")
    assert.are.same({ "WARNING w", "WARNING w2", "ERROR e" }, lines)
    assert.is_false(log:enabled("INFO"))
    assert.is_true(log:enabled("error"))
  end)

  it("writes JSON lines with extra fields", function()
    local log, lines = logger.capture{ name = "j", format = "json", level = "DEBUG" }
    log:debug('quote " and \\ and\nnewline')
    log:event("INFO", "summary", { count = 3, rate = 0.5, ok = true })
    local first = cjson.decode(lines[1])
    assert.are.equal("DEBUG", first.level)
    assert.are.equal("j", first.name)
    assert.are.equal('quote " and \\ and\nnewline', first.message)
    assert.is_string(first.time)
    local second = cjson.decode(lines[2])
    assert.are.equal(3, second.count)
    assert.are.equal(0.5, second.rate)
    assert.is_true(second.ok)
    assert.are.equal("summary", second.message)
  end)

  it("writes to a file handle", function()
    local path = os.tmpname()
    local file = assert(io.open(path, "w"))
    local log = logger.new{ output = file, format = "{message}" }
    log:error("to the file")
    file:close()
    local fh = assert(io.open(path))
    local text = fh:read("a")
    fh:close()
    os.remove(path)
    assert.are.equal("to the file\n", text)
  end)

  it("parses level names and rejects unknown ones", function()
    assert.are.equal(10, logger.parse_level("debug"))
    assert.are.equal(30, logger.parse_level("WARN"))
    assert.are.equal(40, logger.parse_level("ERROR"))
    local value, err = logger.parse_level("LOUD")
    assert.is_nil(value)
    assert.matches("LOG_LEVEL must be one of", err)
  end)

  it("reads LOG_LEVEL and raises exit code 2 for a bad one", function()
    assert.are.equal(10, logger.env_level(function() return "DEBUG" end))
    assert.is_nil(logger.env_level(function() return nil end))
    local ok, err = pcall(logger.env_level, function() return "chatty" end)
    assert.is_false(ok)
    assert.are.equal(2, err.exit_code)
    assert.matches("'chatty'", err.message, 1, true)
  end)

  it("setup configures the shared logger", function()
    local lines = {}
    local log = logger.setup{ name = "shared", format = "{name}|{message}",
                              output = function(line) lines[#lines + 1] = line end }
    assert.are.equal(log, logger.get())
    logger.get():info("via get")
    logger.setup{ level = "ERROR" } -- back to quiet stderr for the other specs
    assert.are.same({ "shared|via get" }, lines)
  end)
end)

describe("plugins.logger on a terminal", function()
  local BIN = assert(os.getenv("LUAFETCH_BIN"), "LUAFETCH_BIN is not set (run tests/run_specs.sh)")
  local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

  it("colours the level only when asked or on a terminal, never in JSON", function()
    local log, lines = logger.capture{ format = "{level} {message}", colour = true }
    log:warning("careful")
    assert.are.equal("\27[33mWARNING\27[0m careful", lines[1])
    log, lines = logger.capture{ format = "{level} {message}" } -- a function output: no terminal
    log:warning("careful")
    assert.are.equal("WARNING careful", lines[1])
    log, lines = logger.capture{ format = "json", colour = true }
    log:error("x")
    assert.is_nil(lines[1]:find("\27", 1, true))
    -- stderr is a file here: the default is no colour, decided at the first line rendered
    local l = logger.new{ output = io.stderr, format = "{level} {message}" }
    assert.is_nil(l.colour)
    assert.are.equal("ERROR x", l:render("ERROR", "x"))
    assert.is_false(l.colour)
  end)

  it("writes a line above the progress bar, which is drawn again below it", function()
    local code = [[
      local progress = require "plugins.progress"
      local logger = require "plugins.logger"
      local bar = progress.new{ mode = "always", total = 2, interval = 0 }
      bar.on_start{ total = 2 }
      bar.on_result("a", { success = true })
      logger.new{ format = "{level} {message}" }:info("hello")
      bar.on_result("b", { success = true })
      bar.on_finish()
    ]]
    local errfile = os.tmpname()
    assert(os.execute(("%s -e %s 2>%s"):format(q(BIN), q(code), q(errfile))))
    local f = assert(io.open(errfile))
    local err = f:read("a")
    f:close()
    os.remove(errfile)
    local bar = "[##########..........] 1/2  50.0%"
    local at = assert(err:find(bar, 1, true), err)
    -- the bar, then its line cleared, the log line at the start of the line, the bar again
    local rest = err:sub(at)
    assert.matches("^%[#+%.+%] 1/2 [^\r\n]*\r +\rINFO hello\n\r%[#+%.+%] 1/2 ", rest)
    assert.is_nil(err:find("\27", 1, true)) -- a file: no colour
  end)
end)
