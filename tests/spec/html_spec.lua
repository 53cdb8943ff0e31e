-- html_spec.lua: the `html` helper: parsing (HTML5 error recovery, entities), title, meta, links
-- (resolution, <base>, filtering, dedupe), the selector subset and its errors, text extraction,
-- element identity, and lifetimes (elements keep their document alive; close() and GC free it).

local html = require "html"

local PAGE = [[<!doctype html>
<html lang="en"><head>
  <title>  Blue   Widget &amp; Co </title>
  <meta name="Description" content="A blue widget.">
  <meta property="og:title" content="Blue Widget (OG)">
  <meta charset="utf-8">
</head><body>
<nav><a href="/">Home</a> <a href="catalog?page=2">Next</a></nav>
<div id="main" class="product featured">
  <h1 class="name">Blue <em>Widget</em></h1>
  <p class="price" data-currency="EUR">12.50</p>
  <p class="desc">Strong,<br>light and
     <b>blue</b>.</p>
  <script>var tracking = "not text";</script>
  <style>.x { color: red }</style>
  <ul class="tags"><li>tools</li><li class="tag hot">sale</li></ul>
  <a href="/p/2#reviews">Related</a>
  <a href="mailto:shop@example.com">Mail</a><a href="javascript:void(0)">JS</a><a href="#top">Top</a>
  <a href=" /p/2 ">Related again</a><a href="https://other.example/x?y=1">Elsewhere</a>
  <a href="ftp://files.example/f">FTP</a><map><area href="/area-link"></map>
</div>
<product-card sku="B-7">custom element</product-card>
</body></html>]]

local function tags(list)
  local out = {}
  for i, el in ipairs(list) do out[i] = el.tag end
  return out
end

local function texts(list)
  local out = {}
  for i, el in ipairs(list) do out[i] = el:text() end
  return out
end

describe("html.parse", function()
  it("returns a document for any string and refuses other types", function()
    assert.are.equal("userdata", type(html.parse("")))
    assert.has_error(function() html.parse(nil) end, "html.parse expects a string, got nil")
    assert.has_error(function() html.parse({}) end, "html.parse expects a string, got table")
  end)

  it("recovers from broken markup as a browser does", function()
    local doc = html.parse("<!doctype html><p>one<p>two<table><tr><td>cell</table><div><span>open")
    assert.are.same({ "one", "two" }, texts(doc:select("p")))
    assert.are.equal("cell", doc:select_one("td"):text())
    assert.are.equal("open", doc:select_one("div span"):text())
    -- implied elements exist even when not written
    assert.are.same({ "html", "head", "body" }, { doc:root().tag, doc:root():children()[1].tag, doc:root():children()[2].tag })
  end)

  it("decodes entities in text and attributes", function()
    local doc = html.parse('<a href="/s?a=1&amp;b=2" title="&quot;x&quot;">caf&eacute; &lt;3&gt; &#x263A;</a>')
    local a = doc:select_one("a")
    assert.are.equal("/s?a=1&b=2", a:attr("href"))
    assert.are.equal('"x"', a:attr("title"))
    assert.are.equal("café <3> ☺", a:text())
  end)

  it("survives deep nesting and binary garbage", function()
    local doc = html.parse(string.rep("<div>", 3000) .. "deep" .. string.rep("</div>", 3000))
    assert.are.equal(3000, #doc:descendants("div"))
    assert.are.equal("deep", doc:root():text())
    local junk = {}
    for i = 1, 4096 do junk[i] = string.char((i * 7919) % 256) end
    assert.are.equal("userdata", type(html.parse(table.concat(junk))))
  end)
end)

describe("document helpers", function()
  local doc
  before_each(function() doc = html.parse(PAGE) end)

  it("title() collapses white space; nil without a <title>", function()
    assert.are.equal("Blue Widget & Co", doc:title())
    assert.is_nil(html.parse("<p>no title</p>"):title())
  end)

  it("meta() matches name= or property=, case-insensitively", function()
    assert.are.equal("A blue widget.", doc:meta("description"))
    assert.are.equal("A blue widget.", doc:meta("DESCRIPTION"))
    assert.are.equal("Blue Widget (OG)", doc:meta("og:title"))
    assert.is_nil(doc:meta("keywords"))
  end)

  it("links(base) gives absolute http(s) URLs, once each, without fragments", function()
    assert.are.same({
      "http://shop.test/",
      "http://shop.test/cat/catalog?page=2",
      "http://shop.test/p/2",
      "https://other.example/x?y=1",
      "http://shop.test/area-link",
    }, doc:links("http://shop.test/cat/item"))
  end)

  it("links() without a base gives the hrefs as written, minus non-page links", function()
    assert.are.same({ "/", "catalog?page=2", "/p/2#reviews", "/p/2", "https://other.example/x?y=1",
      "ftp://files.example/f", "/area-link" }, doc:links())
  end)

  it("links(base) honours <base href>", function()
    local d = html.parse('<head><base href="/shop/v2/"></head><a href="item?id=1">x</a><a href="/abs">y</a>')
    assert.are.same({ "http://h.test/shop/v2/item?id=1", "http://h.test/abs" }, d:links("http://h.test/ignored/page"))
  end)
end)

describe("select", function()
  local doc
  before_each(function() doc = html.parse(PAGE) end)

  it("finds by tag, class, id, tag.class and several classes", function()
    assert.are.same({ "12.50", "Strong, light and blue." }, texts(doc:select("p")))
    assert.are.same({ "12.50" }, texts(doc:select(".price")))
    assert.are.same({ "div" }, tags(doc:select("#main")))
    assert.are.same({ "12.50" }, texts(doc:select("p.price")))
    assert.are.same({ "div" }, tags(doc:select(".product.featured")))
    assert.are.same({}, doc:select(".product.missing"))
    assert.are.same({ "sale" }, texts(doc:select("li.hot")))
  end)

  it("supports the descendant and child combinators", function()
    assert.are.same({ "tools", "sale" }, texts(doc:select("#main ul li")))
    assert.are.same({ "tools", "sale" }, texts(doc:select("div.product li")))
    assert.are.equal(2, #doc:select("nav > a"))
    assert.are.equal(0, #doc:select("body > a"))
    assert.are.equal(9, #doc:select("body a"))
    assert.are.same({ "Widget" }, texts(doc:select("h1 > em")))
  end)

  it("supports *, [attr], [attr=value] and comma lists in document order", function()
    assert.are.same({ "12.50" }, texts(doc:select("[data-currency=EUR]")))
    assert.are.same({ "12.50" }, texts(doc:select('p[data-currency="EUR"]')))
    assert.are.same({}, doc:select("[data-currency=USD]"))
    assert.are.equal(1, #doc:select("meta[charset]"))
    assert.are.same({ "h1", "p", "p" }, tags(doc:select("p, h1")))
    assert.are.same({ "h1", "em" }, tags(doc:select("h1, h1 *")))
  end)

  it("matches tag names case-insensitively and knows custom elements", function()
    assert.are.same({ "custom element" }, texts(doc:select("PRODUCT-CARD")))
    local card = doc:select_one("product-card")
    assert.are.equal("product-card", card.tag)
    assert.are.equal("B-7", card:attr("SKU"))
  end)

  it("element:select searches below the element; select_one gives the first or nil", function()
    local main = doc:select_one("#main")
    assert.are.same({ "tools", "sale" }, texts(main:select("li")))
    assert.are.equal(0, #main:select("nav a"))
    assert.are.equal("Blue Widget", main:select_one("h1"):text())
    assert.is_nil(main:select_one("table"))
    -- as with querySelectorAll, the left part may match above the scope
    assert.are.equal(2, #doc:select_one("ul"):select("div li"))
  end)

  it("raises a clear error for syntax outside the subset, at the caller", function()
    for _, sel in ipairs{ "a:hover", "a + b", "a ~ b", "p::first", "[href^=x]", "", ".", "#", "a," } do
      local ok, err = pcall(doc.select, doc, sel)
      assert.is_false(ok, sel)
      assert.truthy(err:find("bad selector", 1, true), err)
      assert.truthy(err:find("html_spec.lua", 1, true), err)
    end
  end)
end)

describe("elements", function()
  it("text() is readable; text(true) is every text node as written", function()
    local doc = html.parse(PAGE)
    local desc = doc:select_one(".desc")
    assert.are.equal("Strong, light and blue.", desc:text())
    assert.are.equal("Strong,light and\n     blue.", desc:text(true))
    local main = doc:select_one("#main")
    assert.is_nil(main:text():find("tracking", 1, true)) -- scripts and styles are not text
    assert.is_nil(main:text():find("color", 1, true))
    assert.truthy(main:text(true):find("tracking", 1, true))
    assert.are.equal('var tracking = "not text";', doc:select_one("script"):text())
  end)

  it("attr, attrs, tag, children, parent", function()
    local doc = html.parse(PAGE)
    local p = doc:select_one("p.price")
    assert.are.equal("p", p.tag)
    assert.are.same({ class = "price", ["data-currency"] = "EUR" }, p:attrs())
    assert.is_nil(p:attr("id"))
    assert.are.equal("div", p:parent().tag)
    assert.are.same({ "li", "li" }, tags(doc:select_one("ul"):children()))
    assert.is_nil(doc:root():parent())
    assert.are.equal("html.Element<div#main.product featured>", tostring(doc:select_one("#main")))
  end)

  it("the same node is the same Lua value", function()
    local doc = html.parse(PAGE)
    assert.are.equal(doc:select_one("#main"), doc:select_one(".product"))
    assert.are.equal(doc:select_one("p"):parent(), doc:select_one("div"))
  end)
end)

describe("lifetimes", function()
  it("an element keeps its document alive after the document is dropped", function()
    local el
    do
      el = html.parse(PAGE):select_one("li.hot")
    end
    for _ = 1, 3 do collectgarbage("collect") end
    assert.are.equal("sale", el:text())
    assert.are.equal("ul", el:parent().tag)
  end)

  it("close() frees the tree now; the elements then raise", function()
    local doc = html.parse(PAGE)
    local el = doc:select_one("h1")
    assert.is_false(doc:closed())
    doc:close()
    assert.is_true(doc:closed())
    doc:close() -- twice is harmless
    assert.has_error(function() el:text() end, "html document is closed")
    assert.has_error(function() return el.tag end, "html document is closed")
    assert.has_error(function() doc:select("p") end, "html document is closed")
    assert.are.equal("html.Element<closed>", tostring(el))
  end)

  it("a to-be-closed document is freed at the end of its scope", function()
    local el
    do
      local doc <close> = html.parse(PAGE)
      el = doc:select_one("h1")
      assert.are.equal("Blue Widget", el:text())
    end
    assert.has_error(function() el:attrs() end, "html document is closed")
  end)

  it("documents parsed and dropped are collected (their trees freed by __gc)", function()
    local alive = setmetatable({}, { __mode = "k" })
    for _ = 1, 200 do
      local doc = html.parse(PAGE .. string.rep("<p>filler</p>", 200))
      alive[doc] = true
      assert.are.equal("Blue Widget & Co", doc:title())
    end
    collectgarbage("collect")
    collectgarbage("collect")
    assert.is_nil(next(alive))
  end)
end)
