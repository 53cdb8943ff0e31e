-- queue_ledger_spec.lua: the queue's ledger in C (core/lua/lua_redis_ledger.c), without a server:
-- entries held from read to settled, the fetcher's index → entry map (also when one fetch outlives
-- thousands of others), entries found by item when a wrapped source shifts the indexes, the settle
-- records the outbox builds (results, dead letters, parked entries), and the flush cycle.

local R = require "_redis"

local function result(status, fields)
  local r = { status_code = status, success = status ~= nil and status < 400, elapsed = 0.25, attempts = 1 }
  for k, v in pairs(fields or {}) do r[k] = v end
  return r
end

describe("queue ledger", function()
  it("holds entries from push to release, in order, and counts them", function()
    local l = R.ledger()
    assert.is_true(l:push("1-0", "http://a/1", "http://a/1", 1))
    assert.is_true(l:push("1-1", "http://a/2", "http://a/2", 1))
    assert.is_false(l:push("1-1", "http://a/2", "http://a/2", 1), "an entry held already")
    assert.same({ 2, 2, 0 }, { l:counts() })
    assert.same({ "http://a/1", 1 }, { l:next() })
    assert.same({ "http://a/2", 0 }, { l:next() })
    assert.same({ nil, 0 }, { l:next() })
    assert.equal("r", l:settle(2, "http://a/2", result(200), 5, false))
    assert.is_nil(l:settle(2, "http://a/2", result(200), 5, false), "settled twice")
    local args, records, results = l:take()
    assert.equal(1, records)
    assert.equal(1, results)
    assert.same({ "r", "1-1", "http://a/2", "200", "true", "0.250", "1", "" }, args:list())
    assert.same({ 0, 2, 2 }, { l:counts() }, "held until the flush is released")
    assert.equal(1, l:release())
    assert.same({ 0, 1, 2 }, { l:counts() })
    assert.same({ "1-0" }, l:ids())
    assert.equal(1, l:deliveries("1-0"))
    assert.is_nil(l:deliveries("1-1"))
    assert.is_nil(l:take(), "nothing to flush")
  end)

  it("settle records: a repeat delivery, dead letters, parked entries, kept bodies, elapsed to the ms", function()
    local l = R.ledger()
    for i, d in ipairs{ 2, 1, 3, 1, 1 } do l:push("5-" .. i, "http://h/" .. i, "http://h/" .. i, d) end
    for _ = 1, 5 do l:next() end
    assert.equal("R", l:settle(1, "http://h/1", result(404, { elapsed = 12.3456 }), 3, false))
    assert.equal("p", l:settle(2, "http://h/2", result(nil, { kind = "timeout", error = "timed out" }), 3, false))
    assert.equal("d", l:settle(3, "http://h/3", result(nil, { kind = "connect", error = "refused" }), 3, false))
    assert.equal("d", l:settle(4, "http://h/4", result(nil, { kind = "invalid", error = "bad url" }), 3, false))
    assert.equal("r", l:settle(5, "http://h/5", result(200, { body = "a\r\nb", elapsed = -0.5 }), 3, true))
    l:record("d", "9-9", "http://x", "cannot decode", "invalid", "1")
    local args, records, results = l:take()
    assert.equal(6, records)
    assert.equal(2, results)
    local list = args:list()
    -- records in the order they were settled, newest slot list aside: find each by its op and id
    local found = {}
    local i = 1
    local widths = { r = 8, R = 8, d = 6, p = 4 }
    while i <= #list do
      local op = list[i]
      found[list[i + 1]] = { table.unpack(list, i, i + widths[op] - 1) }
      i = i + widths[op]
    end
    assert.same({ "R", "5-1", "http://h/1", "404", "false", "12.346", "1", "" }, found["5-1"])
    assert.same({ "p", "5-2", "timeout", "timed out" }, found["5-2"])
    assert.same({ "d", "5-3", "http://h/3", "refused", "connect", "3" }, found["5-3"])
    assert.same({ "d", "5-4", "http://h/4", "bad url", "invalid", "1" }, found["5-4"])
    assert.same({ "r", "5-5", "http://h/5", "200", "true", "-0.500", "1", "=a\r\nb" }, found["5-5"])
    assert.same({ "d", "9-9", "http://x", "cannot decode", "invalid", "1" }, found["9-9"])
    assert.equal(5, l:release())
  end)

  it("finds an entry whose fetch outlived thousands of others, and one by item when indexes shift", function()
    local l = R.ledger()
    l:push("0-1", "http://slow/", "http://slow/", 1)
    assert.equal("http://slow/", (l:next()))
    for i = 1, 5000 do
      l:push("1-" .. i, "http://fast/" .. i, "http://fast/" .. i, 1)
      local item = l:next()
      assert.equal("r", l:settle(i + 1, item, result(200), 5, false))
      if i % 100 == 0 then
        l:take()
        l:release()
      end
    end
    assert.equal("r", l:settle(1, "http://slow/", result(200), 5, false))
    -- a wrapped source: the fetcher's index counts something else, the item still says which
    l:push("2-1", "http://w/1", "http://w/1", 1)
    l:push("2-2", "http://w/2", "http://w/2", 1)
    l:next()
    l:next()
    assert.equal("r", l:settle(1, "http://w/2", result(200), 5, false))
    assert.is_nil(l:settle(77, "http://nowhere/", result(200), 5, false))
    assert.equal("r", l:settle(77, "http://w/1", result(200), 5, false))
    local args = l:take()
    local list = args:list()
    assert.equal("2-2", list[#list - 14], "2-2's item, settled under index 1, found by item")
    assert.equal("2-1", list[#list - 6], "2-1's item, settled under index 77, found by item")
    l:release()
    assert.same({ 0, 0, 5003 }, { l:counts() })
  end)

  it("an entry out for longer than the map holds leaves the map and is still found by its item", function()
    local l = R.ledger()
    l:push("0-1", "http://stuck/", "http://stuck/", 1)
    l:next()
    for i = 1, 70000 do
      l:push("1-" .. i, "http://f/" .. i, "http://f/" .. i, 1)
      local item = l:next()
      assert(l:settle(i + 1, item, result(200), 5, false) == "r")
      if i % 500 == 0 then
        l:take()
        l:release()
      end
    end
    assert.is_nil(l:settle(1, nil, result(200), 5, false), "out of the map: the index alone no longer finds it")
    assert.equal("r", l:settle(1, "http://stuck/", result(200), 5, false))
  end)

  it("finds a request table's entry by its queue_id (a copy too), and reads a result through its metatable", function()
    local l = R.ledger()
    l:push("8-1", { url = "http://t/1" }, "http://t/1", 1)
    local item = l:next()
    local copy = { url = item.url, queue_id = item.queue_id }
    local proxy = setmetatable({}, { __index = result(204) })
    assert.equal("r", l:settle(99, copy, proxy, 5, false))
    assert.same({ "r", "8-1", "http://t/1", "204", "true", "0.250", "1", "" }, (l:take()):list())
  end)

  it("a request table gets queue_id and keeps its URL for the record", function()
    local l = R.ledger()
    local req = { url = "http://t/x", method = "POST" }
    l:push("7-1", req, "http://t/x", 2)
    local item = l:next()
    assert.equal(req, item)
    assert.equal("7-1", item.queue_id)
    assert.equal("R", l:settle(1, item, result(201), 5, false))
    assert.same({ "R", "7-1", "http://t/x", "201", "true", "0.250", "1", "" }, (l:take()):list())
  end)

  it("refuses a take while a flush is out, and bad arguments", function()
    local l = R.ledger()
    l:push("1-1", "http://a/", "http://a/", 1)
    l:next()
    l:settle(1, "http://a/", result(200), 5, false)
    assert.truthy(l:take())
    l:push("1-2", "http://b/", "http://b/", 1)
    l:next()
    l:settle(2, "http://b/", result(200), 5, false)
    assert.has_error(function() l:take() end, "take: the last flush was not released")
    l:release()
    assert.truthy(l:take())
    assert.has_error(function() l:push(("9"):rep(60), "http://a/", "http://a/", 1) end, "stream entry id too long")
    assert.has_error(function() l:settle(1, "x", "not a table", 5, false) end)
    assert.has_error(function() l:push("1-9", nil, "http://a/", 1) end)
    assert.has_error(function() l:push("1-9", false, "http://a/", 1) end)
    assert.has_error(function() l:record("r") end)
  end)
end)
