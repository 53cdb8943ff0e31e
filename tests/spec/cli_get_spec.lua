-- cli_get_spec.lua: `luafetch get` (lua/cli_get.lua), in process and as a program.

local cli = require "cli_get"
local cjson = require "cjson"

local BASE = assert(os.getenv("FIXTURE_URL"), "FIXTURE_URL is not set (run tests/run_specs.sh)")
-- the program under test (run_specs.sh exports it)
local BIN = os.getenv("LUAFETCH_BIN") or "build/luafetch"

--- Run the program: its stdout, stderr and exit code.
local function run(args, env)
  local err_path = os.tmpname()
  local p = io.popen(string.format("%s %s get %s 2>%s", env or "", BIN, args, err_path))
  local out = p:read("a")
  local _, how, code = p:close()
  local fh = io.open(err_path)
  local err = fh:read("a")
  fh:close()
  os.remove(err_path)
  assert.are.equal("exit", how)
  return out, err, code
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

describe("luafetch get arguments", function()
  it("parses every option", function()
    local opts = assert(cli.parse_args{ "-c", "5", "--timeout", "2.5", "--retries=2",
                                        "--backoff", "0.1", "--json", "http://a/", "--", "-weird" })
    assert.are.equal(5, opts.max_concurrent)
    assert.are.equal(2.5, opts.timeout)
    assert.are.equal(2, opts.max_retries)
    assert.are.equal(0.1, opts.backoff_factor)
    assert.is_true(opts.json)
    assert.are.same({ "http://a/", "-weird" }, opts.urls)
    assert.are.equal(8, assert(cli.parse_args{ "-c8", "u" }).max_concurrent)
  end)

  it("rejects bad usage with a message", function()
    local cases = {
      { {}, "no URL given" },
      { { "--bogus", "u" }, "unknown option %-%-bogus" },
      { { "-c", "0", "u" }, "%-c must be a positive integer, got '0'" },
      { { "-c", "many", "u" }, "got 'many'" },
      { { "--timeout", "-1", "u" }, "%-%-timeout must be a positive number" },
      { { "--retries", "1.5", "u" }, "%-%-retries must be a non%-negative integer" },
      { { "--backoff" }, "%-%-backoff needs a value" },
    }
    for _, case in ipairs(cases) do
      local opts, err = cli.parse_args(case[1])
      assert.is_nil(opts)
      assert.matches(case[2], err)
    end
  end)

  it("formats text lines", function()
    assert.are.equal("200 0.012s 34B http://a/",
      cli.text_line("http://a/", { status_code = 200, elapsed = 0.0123, bytes = 34, attempts = 1 }))
    assert.are.equal("ERR timeout 1.000s http://a/: timed out (4 attempts)",
      cli.text_line("http://a/", { kind = "timeout", error = "timed out", elapsed = 1, attempts = 4 }))
  end)
end)

describe("luafetch get", function()
  it("exits 0 when every URL succeeds, one line per URL in order", function()
    local out, err, code = run(string.format("-c 2 %s/json %s/bytes/10 %s/bytes/20", BASE, BASE, BASE))
    assert.are.equal(0, code)
    local lines = lines_of(out)
    assert.are.equal(3, #lines)
    assert.matches("^200 %d+%.%d+s %d+B " .. BASE:gsub("%p", "%%%0") .. "/json$", lines[1])
    assert.matches("^200 .* 10B .*/bytes/10$", lines[2])
    assert.matches("^200 .* 20B .*/bytes/20$", lines[3])
    assert.matches("3 URL%(s%): 3 ok, 0 failed", err)
  end)

  it("exits 1 when a URL fails and prints the error and kind", function()
    local out, _, code = run(string.format("--retries 0 --timeout 0.3 %s/json %s/status/500 %s/silence",
      BASE, BASE, BASE))
    assert.are.equal(1, code)
    local lines = lines_of(out)
    assert.matches("^200 ", lines[1])
    assert.matches("^500 ", lines[2])
    assert.matches("^ERR timeout .*/silence: ", lines[3])
  end)

  it("retries with --retries and --backoff", function()
    local key = string.format("cli-%d-%d", os.time(), math.random(1e9))
    local out, _, code = run(string.format("--json --retries 2 --backoff 0.01 '%s/flaky/%s?fail=2'", BASE, key))
    assert.are.equal(0, code)
    local record = cjson.decode(lines_of(out)[1])
    assert.are.equal(3, record.attempts)
    assert.is_true(record.success)
  end)

  it("prints JSON lines with --json", function()
    local out, _, code = run(string.format("--json --retries 0 %s/json %s/status/404", BASE, BASE))
    assert.are.equal(1, code)
    local lines = lines_of(out)
    assert.are.equal(2, #lines)
    local ok, missing = cjson.decode(lines[1]), cjson.decode(lines[2])
    assert.are.equal(BASE .. "/json", ok.url)
    assert.is_true(ok.success)
    assert.are.equal(200, ok.status_code)
    assert.are.equal(cjson.null, ok.error)
    assert.is_number(ok.elapsed)
    assert.is_number(ok.bytes)
    assert.is_false(missing.success)
    assert.are.equal(404, missing.status_code)
    assert.are.equal("status", missing.kind)
  end)

  it("exits 2 on bad usage with a message on stderr", function()
    local out, err, code = run("--bogus " .. BASE .. "/json")
    assert.are.equal(2, code)
    assert.are.equal("", out)
    assert.matches("unknown option %-%-bogus", err)
    local _, err2, code2 = run("")
    assert.are.equal(2, code2)
    assert.matches("no URL given", err2)
  end)

  it("exits 2 on a bad environment value", function()
    local _, err, code = run(BASE .. "/json", "MAX_RETRIES=lots")
    assert.are.equal(2, code)
    assert.matches("MAX_RETRIES must be a non%-negative integer, got 'lots'", err)
  end)

  it("prints help and exits 0", function()
    local out, _, code = run("--help")
    assert.are.equal(0, code)
    assert.matches("usage: luafetch get", out)
  end)
end)
