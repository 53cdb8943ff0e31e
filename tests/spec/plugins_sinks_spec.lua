-- plugins_sinks_spec.lua: the jsonl and csv result sinks.

local csv = require "plugins.csv"
local jsonl = require "plugins.jsonl"
local cjson = require "cjson"

local function read_file(path)
  local fh = assert(io.open(path))
  local text = fh:read("a")
  fh:close()
  return text
end

local function lines_of(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = line end
  return out
end

describe("plugins.csv", function()
  it("quotes fields as RFC 4180 says", function()
    assert.are.equal("plain", csv.quote("plain"))
    assert.are.equal('"a,b"', csv.quote("a,b"))
    assert.are.equal('"say ""hi"""', csv.quote('say "hi"'))
    assert.are.equal('"two\nlines"', csv.quote("two\nlines"))
    assert.are.equal('"cr\rhere"', csv.quote("cr\rhere"))
    assert.are.equal('" padded "', csv.quote(" padded "))
    assert.are.equal("", csv.quote(nil))
    assert.are.equal("true", csv.quote(true))
    assert.are.equal("0.250000", csv.quote(0.25))
    assert.are.equal("404", csv.quote(404))
    assert.are.equal('"a;b"', csv.quote("a;b", ";"))
  end)

  it("writes a header and one row per result, flushed at on_finish", function()
    local path = os.tmpname()
    local sink = csv.new{ path = path }
    sink.on_result("http://x/a", { url = "http://x/a", method = "GET", success = true,
      status_code = 200, elapsed = 0.5, attempts = 1, bytes = 3 })
    sink.on_result("http://x/b?q=1,2", { url = "http://x/b?q=1,2", method = "GET", success = false,
      elapsed = 1.25, attempts = 4, bytes = 0, kind = "timeout", error = 'read "timed" out' })
    sink.on_finish(nil, {})
    assert.are.same({
      "url,method,success,status_code,elapsed,attempts,bytes,kind,error",
      "http://x/a,GET,true,200,0.500000,1,3,,",
      '"http://x/b?q=1,2",GET,false,,1.250000,4,0,timeout,"read ""timed"" out"',
    }, lines_of(read_file(path)))
    sink.close()
    os.remove(path)
  end)

  it("writes only the header for an empty run", function()
    local path = os.tmpname()
    local sink = csv.new{ path = path, columns = { "url", "success" } }
    sink.on_finish({}, {})
    assert.are.equal("url,success\n", read_file(path))
    sink.close()
    os.remove(path)
  end)
end)

describe("plugins.jsonl", function()
  it("writes one JSON object per result", function()
    local path = os.tmpname()
    local sink = jsonl.new{ path = path }
    sink.on_result("http://x/a", { url = "http://x/a", method = "GET", success = true,
      status_code = 200, elapsed = 0.1234567, attempts = 1, bytes = 3, body = "abc" })
    sink.on_result("http://x/b", { url = "http://x/b", method = "GET", success = false,
      elapsed = 2, attempts = 2, bytes = 0, kind = "dns", error = "no such host" })
    sink.on_finish(nil, {})
    local lines = lines_of(read_file(path))
    assert.are.equal(2, #lines)
    assert.is_nil(lines[1]:find("\\/", 1, true)) -- slashes are not escaped
    local a, b = cjson.decode(lines[1]), cjson.decode(lines[2])
    assert.are.equal("http://x/a", a.url)
    assert.are.equal(200, a.status_code)
    assert.are.equal(0.123457, a.elapsed)
    assert.are.equal(cjson.null, a.error)
    assert.is_nil(a.body) -- bodies only with include_body
    assert.are.equal("dns", b.kind)
    assert.are.equal(cjson.null, b.status_code)
    sink.close()
    os.remove(path)
  end)

  it("collects a real fetch through the fetcher", function()
    local base = os.getenv("FIXTURE_URL")
    assert(base, "FIXTURE_URL is not set (run tests/run_specs.sh)")
    local fetcher = require "fetcher"
    local jpath, cpath = os.tmpname(), os.tmpname()
    local j, c = jsonl.new{ path = jpath, include_body = true }, csv.new{ path = cpath }
    local f = fetcher.new{ plugins = { j, c }, max_retries = 0 }
    f:fetch_urls{ base .. "/json", base .. "/status/404" }
    local records = {}
    for _, line in ipairs(lines_of(read_file(jpath))) do
      local r = cjson.decode(line)
      records[r.url] = r
    end
    assert.is_true(records[base .. "/json"].success)
    assert.matches('"ok"', records[base .. "/json"].body)
    assert.are.equal(404, records[base .. "/status/404"].status_code)
    local rows = lines_of(read_file(cpath))
    assert.are.equal(3, #rows)
    j.close(); c.close()
    os.remove(jpath); os.remove(cpath)
  end)
end)
