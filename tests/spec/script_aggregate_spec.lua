-- script_aggregate_spec.lua: scripts/aggregate.lua run as a child process against
-- scripts/mock_services.lua (its own process): the merged document, partial failures and their
-- reasons, optional sources, checks and the exit status, concurrency, output options, bad usage;
-- and its JSON writer (the script loaded with "--as-module").

local cjson = require "cjson"
local task = require "task"

local child = require "tests.spec.support.child"
local q, read, write, start_mock, stop_mock = child.q, child.read, child.write, child.start_mock, child.stop_mock
local ROOT = child.ROOT
local SCRIPT = ROOT .. "/scripts/aggregate.lua"

-- Runs aggregate.lua with args from the repository root; returns stdout, stderr, exit code.
local function aggregate(args)
  return child.run_script(SCRIPT, args, 30)
end

describe("scripts/aggregate.lua", function()
  local mock
  local files = {}
  local function config(text)
    local base = os.tmpname() -- created empty: removed at the end too
    local path = base .. ".lua"
    write(path, text)
    files[#files + 1] = base
    files[#files + 1] = path
    return path
  end
  setup(function() mock = start_mock() end)
  teardown(function()
    stop_mock(mock)
    for _, p in ipairs(files) do os.remove(p) end
  end)

  it("merges the default sources into one document and exits 0", function()
    local out, err, code = aggregate{ "--base", mock.url }
    assert.are.equal(0, code, err)
    local doc = cjson.decode(out)
    assert.is_true(doc.ok)
    assert.are.same({}, doc.failed)
    assert.are.equal(3, #doc.data.users)
    assert.are.equal("Ada", doc.data.users[1].name)
    assert.are.equal(4, #doc.data.orders) -- `pick` kept the list only
    assert.are.equal("mock-1", doc.data.inventory.warehouse)
    assert.are.same({ "inventory", "orders", "users" }, (function()
      local names = {}
      for name in pairs(doc.sources) do names[#names + 1] = name end
      table.sort(names)
      return names
    end)())
    local users = doc.sources.users
    assert.are.equal(mock.url .. "/api/users", users.url)
    assert.are.equal(200, users.status)
    assert.is_true(users.ok)
    assert.are.equal(1, users.attempts)
    assert.is_true(doc.generated_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$") ~= nil)
    for _, c in ipairs(doc.checks) do assert.is_true(c.ok, c.name) end
    assert.truthy(err:find("PASS  required sources answered", 1, true), err)
    -- indented, keys sorted
    assert.truthy(out:find('^{\n  "checks": %['), out)
  end)

  it("marks partial failures with their reasons and exits 1", function()
    local out, err, code = aggregate{ "--timeout", "0.3", "--retries", "0",
      "users=" .. mock.url .. "/api/users", "broken=" .. mock.url .. "/api/broken",
      "error=" .. mock.url .. "/api/error", "slow=" .. mock.url .. "/api/slow",
      "down=http://127.0.0.1:1/", "missing=" .. mock.url .. "/api/nothing" }
    assert.are.equal(1, code, err)
    local doc = cjson.decode(out)
    assert.is_false(doc.ok)
    assert.are.same({ "broken", "error", "slow", "down", "missing" }, doc.failed)
    assert.are.equal(3, #doc.data.users)
    assert.are.equal(cjson.null, doc.data.broken)
    local s = doc.sources
    assert.are.equal("json", s.broken.kind)
    assert.truthy(s.broken.error:find("^not JSON"))
    assert.are.equal("status", s.error.kind)
    assert.are.equal(500, s.error.status)
    assert.are.equal("timeout", s.slow.kind)
    assert.are.equal("connect", s.down.kind)
    assert.are.equal(404, s.missing.status)
    assert.is_nil(s.users.error)
    assert.truthy(err:find("FAILED   down: connect:", 1, true), err)
    assert.truthy(err:find("FAIL  required sources answered", 1, true), err)
  end)

  it("retries a source that answers 5xx (the fetcher's policy)", function()
    local out, err, code = aggregate{ "--retries", "2", "error=" .. mock.url .. "/api/error" }
    assert.are.equal(1, code, err)
    assert.are.equal(3, cjson.decode(out).sources.error.attempts)
  end)

  it("fetches the sources concurrently", function()
    local args = {}
    for i = 1, 4 do args[i] = ("s%d=%s/slow?delay=0.6&n=%d"):format(i, mock.url, i) end
    local started = task.now()
    local out, err, code = aggregate(args)
    local took = task.now() - started
    -- /slow is not JSON: every source fails, but all four waited at once
    assert.are.equal(1, code, err)
    assert.are.equal(4, #cjson.decode(out).failed)
    assert.is_true(took < 2.0, ("took %.2fs"):format(took))
  end)

  it("runs merge and checks from a config file; an optional source may fail", function()
    local path = config([[
      return {
        sources = {
          { name = "users", url = "/api/users" },
          { name = "orders", url = "/api/orders", pick = function(d) return d.orders end },
          { name = "extra", url = "/api/error", optional = true },
        },
        merge = function(data)
          assert(data.extra == nil, "a failed source is nil in merge")
          local total = 0
          for _, o in ipairs(data.orders) do total = total + o.total end
          return { users = #data.users, revenue = total }
        end,
        checks = {
          { name = "revenue above 100", expr = function(doc) return doc.data.revenue > 100 end },
          { name = "more than 5 users", expr = function(doc) return doc.data.users > 5, "only " .. doc.data.users end },
          { name = "raises", expr = function(doc) error("boom") end },
        },
        retries = 0,
      }]])
    local out, err, code = aggregate{ "--config", path, "--base", mock.url }
    assert.are.equal(1, code, err)
    local doc = cjson.decode(out)
    assert.are.same({ users = 3, revenue = 144.65 }, doc.data)
    assert.are.same({ "extra" }, doc.failed)
    assert.is_true(doc.sources.extra.optional)
    assert.are.same({ name = "revenue above 100", ok = true }, doc.checks[1])
    assert.are.same({ name = "more than 5 users", ok = false, message = "only 3" }, doc.checks[2])
    assert.is_false(doc.checks[3].ok)
    assert.truthy(doc.checks[3].message:find("boom", 1, true))
    assert.truthy(err:find("optional extra: status: HTTP 500", 1, true), err)
    assert.truthy(err:find("FAIL  more than 5 users (only 3)", 1, true), err)
    assert.is_false(doc.ok)
  end)

  it("exits 0 when only an optional source failed and the checks pass", function()
    local path = config([[
      return { sources = { { name = "users", url = "/api/users" },
                           { name = "flaky", url = "/api/broken", optional = true } },
               checks = {} }]])
    local out, err, code = aggregate{ "--config", path, "--base", mock.url }
    assert.are.equal(0, code, err)
    local doc = cjson.decode(out)
    assert.is_true(doc.ok)
    assert.are.same({ "flaky" }, doc.failed)
  end)

  it("--out writes the document to a file; --compact writes one line", function()
    local path = os.tmpname()
    files[#files + 1] = path
    local out, err, code = aggregate{ "--out", path, "--compact", "u=" .. mock.url .. "/api/users" }
    assert.are.equal(0, code, err)
    assert.are.equal("", out)
    local text = read(path)
    assert.are.equal(1, select(2, text:gsub("\n", "")))
    assert.are.equal(3, #cjson.decode(text).data.u)
    assert.truthy(err:find("written to " .. path, 1, true), err)
  end)

  it("refuses bad usage with exit status 2", function()
    local _, err, code = aggregate{ "not-a-source" }
    assert.are.equal(2, code)
    assert.truthy(err:find("expected NAME=URL", 1, true), err)
    _, err, code = aggregate{ "a=http://x/", "a=http://y/" }
    assert.are.equal(2, code)
    assert.truthy(err:find("two sources are named 'a'", 1, true), err)
    _, err, code = aggregate{ "--config", "/nonexistent.lua" }
    assert.are.equal(2, code)
    _, err, code = aggregate{ "--timeout", "soon" }
    assert.are.equal(2, code)
    assert.truthy(err:find("--timeout needs a non-negative number, got 'soon'", 1, true), err)
  end)

  it("--help prints the options and exits 0", function()
    local out, err, code = aggregate{ "--help" }
    assert.are.equal(0, code, err)
    assert.truthy(out:find("Usage: luafetch run aggregate", 1, true), out)
    assert.truthy(out:find("--config", 1, true), out)
  end)
end)

describe("aggregate.lua JSON writer", function()
  local agg = assert(loadfile(SCRIPT))("--as-module")

  it("sorts keys, indents, and round-trips", function()
    local value = { b = { 1, 2, { c = "x/y" } }, a = cjson.null, d = {}, e = true, f = 1.5, g = "q\"" }
    assert.are.equal('{"a":null,"b":[1,2,{"c":"x/y"}],"d":{},"e":true,"f":1.5,"g":"q\\""}', agg.encode(value, false))
    local pretty = agg.encode(value, true)
    local head = '{\n  "a": null,\n  "b": [\n    1,\n    2,\n    {\n      "c": "x/y"\n    }\n  ],'
    assert.are.equal(head, pretty:sub(1, #head))
    assert.are.same(cjson.decode(agg.encode(value, false)), cjson.decode(pretty))
  end)
end)
