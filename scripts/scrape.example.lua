-- scrape.example.lua — settings for scripts/scrape.lua, to copy and edit:
--   luafetch run scrape --config scrape.example.lua   (found beside scrape.lua from anywhere)
-- Any setting of CONFIG at the top of scrape.lua can be given here; command-line options win.
return {
  start_urls = { "http://127.0.0.1:8080/shop/" },
  skip = { "/shop/cart", "%?sort=" },   -- Lua patterns of links never to follow
  max_pages = 100,
  per_host = 2,
  delay = 0.5,
  output = "shop.jsonl",
  csv = "shop.csv",
  csv_columns = { "url", "name", "price", "sku", "in_stock" },

  -- the fields of a product page; nil for other pages
  extract = function(doc)
    local name = doc:select_one("[itemprop=name]")
    local price = doc:select_one("[itemprop=price]")
    if not (name and price) then return nil end
    local stock = doc:select_one(".stock")
    return {
      name = name:text(),
      price = tonumber(price:attr("content")),
      sku = (doc:select_one("[itemprop=sku]") or name):text(),
      in_stock = stock ~= nil and stock:text():lower():find("in stock", 1, true) ~= nil,
    }
  end,
}
