-- sources.example.lua — settings for scripts/aggregate.lua: three APIs of the mock shop merged
-- into one view of customers, plus an optional slow source that may fail without failing the run.
--
-- run: luafetch run aggregate --config sources.example.lua --base http://127.0.0.1:8080
-- (a relative --config name is looked up beside aggregate.lua when it is not in the current folder)
return {
  sources = {
    { name = "users", url = "/api/users" },
    { name = "orders", url = "/api/orders", pick = function(data) return data.orders end },
    { name = "inventory", url = "/api/inventory", pick = function(data) return data.items end },
    { name = "forecast", url = "/api/slow", optional = true, timeout = 0.5 },
  },

  -- data holds one entry per source (nil when it failed); the result becomes the document's data
  merge = function(data)
    local customers = {}
    for _, user in ipairs(data.users or {}) do
      local c = { id = user.id, name = user.name, orders = 0, spent = 0 }
      for _, order in ipairs(data.orders or {}) do
        if order.user_id == user.id then
          c.orders, c.spent = c.orders + 1, c.spent + order.total
        end
      end
      customers[#customers + 1] = c
    end
    local sold_out = {}
    for _, item in ipairs(data.inventory or {}) do
      if not item.in_stock then sold_out[#sold_out + 1] = item.name end
    end
    return { customers = customers, sold_out = sold_out, forecast = data.forecast }
  end,

  -- like k6 checks: each failing check makes the exit status 1
  checks = {
    { name = "every customer has an order", expr = function(doc)
        for _, c in ipairs(doc.data.customers) do
          if c.orders == 0 then return false, c.name .. " has none" end
        end
        return true
      end },
    { name = "less than 3 products sold out", expr = function(doc) return #doc.data.sold_out < 3 end },
    { name = "required sources answered", expr = function(doc)
        for _, name in ipairs(doc.failed) do
          if not doc.sources[name].optional then return false, name end
        end
        return true
      end },
  },
  retries = 0,
}
