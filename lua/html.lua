-- html.lua — the `html` module: parse HTML5 (gumbo, in core/lua/lua_html.c) and extract what scrapers
-- need: title, meta tags, links, and elements found by a small CSS selector subset.
-- The C side owns the tree and its lifetime; this file adds the selector engine and the helpers.
local C = require "_html"

local M = {}

---@class HtmlDocument
---@field root fun(self: HtmlDocument): HtmlElement          the <html> element
---@field close fun(self: HtmlDocument)                       frees the tree now (also `<close>` and GC)
---@field closed fun(self: HtmlDocument): boolean
---@field children fun(self: HtmlDocument): HtmlElement[]
---@field descendants fun(self: HtmlDocument, tag?: string): HtmlElement[]
local Document = C.document_methods

---@class HtmlElement
---@field tag string                                           lower-case tag name
---@field attr fun(self: HtmlElement, name: string): string|nil
---@field attrs fun(self: HtmlElement): table<string, string>
---@field text fun(self: HtmlElement, raw?: boolean): string
---@field children fun(self: HtmlElement): HtmlElement[]
---@field parent fun(self: HtmlElement): HtmlElement|nil
---@field descendants fun(self: HtmlElement, tag?: string): HtmlElement[]
local Element = C.element_methods

---Parses an HTML document (any bytes; HTML5 error recovery as browsers do).
---@param source string
---@return HtmlDocument
function M.parse(source)
  if type(source) ~= "string" then
    error("html.parse expects a string, got " .. type(source), 2)
  end
  return C.parse(source)
end

-- Selectors ------------------------------------------------------------------------------------
--
-- A selector is a comma-separated list of complex selectors; a complex selector is compounds
-- joined by " " (descendant) or ">" (child); a compound is an optional tag name or "*" followed
-- by any of #id, .class, [attr], [attr=value]. Parsed once, then cached.

local NAME = "^[%w_%-\128-\255]+"

local function parse_error(selector, pos, why)
  error(("bad selector '%s' at %d: %s (supported: tag, *, #id, .class, [attr], [attr=value], " ..
    "'a b', 'a > b', 'a, b')"):format(selector, pos, why), 0)
end

-- Returns the compound at pos and the position after it.
local function parse_compound(selector, pos)
  local c = { classes = {}, attrs = {} }
  local start = pos
  local tag = selector:match(NAME, pos)
  if tag then
    c.tag = tag:lower()
    pos = pos + #tag
  elseif selector:sub(pos, pos) == "*" then
    pos = pos + 1
  end
  while true do
    local ch = selector:sub(pos, pos)
    if ch == "#" or ch == "." then
      local name = selector:match(NAME, pos + 1)
      if not name then parse_error(selector, pos + 1, "a name must follow '" .. ch .. "'") end
      if ch == "#" then c.id = name else c.classes[#c.classes + 1] = name end
      pos = pos + 1 + #name
    elseif ch == "[" then
      -- the closing ']' comes after a quoted value, which may itself contain ']'
      local quote_at, quote = selector:match("^[^%]]-=%s*()([\"'])", pos)
      local close
      if quote_at then
        local quote_end = selector:find(quote, quote_at + 1, true)
        close = quote_end and selector:find("]", quote_end + 1, true)
      else
        close = selector:find("]", pos, true)
      end
      if not close then parse_error(selector, pos, "unclosed '['") end
      local name, rest = selector:sub(pos + 1, close - 1):match("^%s*([%w_%-:]+)%s*(.-)%s*$")
      if not name then parse_error(selector, pos + 1, "an attribute name must follow '['") end
      local value
      if rest ~= "" then
        local v = rest:match("^=%s*(.*)$")
        if not v then parse_error(selector, pos, "only [attr] and [attr=value] are supported") end
        value = v:match('^"(.*)"$') or v:match("^'(.*)'$") or v:match("^[%w_%-]+$")
        if not value then parse_error(selector, pos, "quote a value that is not a plain name") end
      end
      c.attrs[#c.attrs + 1] = { name = name:lower(), value = value }
      pos = close + 1
    else
      break
    end
  end
  if pos == start then
    parse_error(selector, pos, "expected a tag, '*', '#', '.' or '['")
  end
  return c, pos
end

local function parse_selector(selector)
  local groups = {}
  local pos = select(2, selector:find("^%s*")) + 1
  while true do
    local parts, comb = {}, nil
    while true do
      local c
      c, pos = parse_compound(selector, pos)
      c.comb = comb
      parts[#parts + 1] = c
      local spaced = selector:find("^%s", pos) ~= nil
      pos = select(2, selector:find("^%s*", pos)) + 1
      local ch = selector:sub(pos, pos)
      if ch == ">" then
        comb = ">"
        pos = select(2, selector:find("^%s*", pos + 1)) + 1
      elseif ch == "," or ch == "" then
        break
      elseif ch == "+" or ch == "~" then
        parse_error(selector, pos, "unsupported combinator '" .. ch .. "'")
      elseif spaced then
        comb = " "
      else
        parse_error(selector, pos, "unsupported '" .. ch .. "'")
      end
    end
    groups[#groups + 1] = parts
    if selector:sub(pos, pos) == "" then break end
    pos = select(2, selector:find("^%s*", pos + 1)) + 1 -- after ","
  end
  return groups
end

local cache, cached = {}, 0

local function compile(selector)
  local groups = cache[selector]
  if not groups then
    if type(selector) ~= "string" then error("a selector must be a string", 4) end
    local ok, parsed = pcall(parse_selector, selector)
    if not ok then error(parsed, 4) end -- reported at the caller of select()
    groups = parsed
    if cached >= 256 then cache, cached = {}, 0 end
    cache[selector], cached = groups, cached + 1
  end
  return groups
end

local function has_class(el, wanted)
  local classes = el:attr("class")
  if not classes then return false end
  for name in classes:gmatch("%S+") do
    if name == wanted then return true end
  end
  return false
end

local function matches_compound(el, c)
  if c.tag and el.tag ~= c.tag then return false end
  if c.id and el:attr("id") ~= c.id then return false end
  for i = 1, #c.classes do
    if not has_class(el, c.classes[i]) then return false end
  end
  for i = 1, #c.attrs do
    local a = c.attrs[i]
    local v = el:attr(a.name)
    if v == nil or (a.value ~= nil and v ~= a.value) then return false end
  end
  return true
end

-- Does el match parts[1..i], parts[i] being matched by el itself? (right to left, as browsers do)
local function matches_at(el, parts, i)
  local c = parts[i]
  if not matches_compound(el, c) then return false end
  if i == 1 then return true end
  local p = el:parent()
  if c.comb == ">" then
    return p ~= nil and matches_at(p, parts, i - 1)
  end
  while p do
    if matches_at(p, parts, i - 1) then return true end
    p = p:parent()
  end
  return false
end

-- The elements below scope matching the selector, in document order, each once. As with the DOM's
-- querySelectorAll, ancestors above the scope may satisfy the left-hand parts.
local function select_all(scope, selector, first_only)
  local groups = compile(selector)
  local tag = #groups == 1 and groups[1][#groups[1]].tag or nil
  local out = {}
  for _, el in ipairs(scope:descendants(tag)) do
    for g = 1, #groups do
      local parts = groups[g]
      if matches_at(el, parts, #parts) then
        out[#out + 1] = el
        if first_only then return out end
        break
      end
    end
  end
  return out
end

---Elements below this one that match a CSS selector (subset: see docs/html.md), in document order.
---@param selector string
---@return HtmlElement[]
function Element:select(selector)
  return select_all(self, selector)
end

---The first element below this one that matches, or nil.
---@param selector string
---@return HtmlElement|nil
function Element:select_one(selector)
  return select_all(self, selector, true)[1]
end

---Elements of the document that match a CSS selector (subset: see docs/html.md), in document order.
---@param selector string
---@return HtmlElement[]
function Document:select(selector)
  return select_all(self, selector)
end

---The first element of the document that matches, or nil.
---@param selector string
---@return HtmlElement|nil
function Document:select_one(selector)
  return select_all(self, selector, true)[1]
end

---The text of the whole document (see Element:text).
---@param raw? boolean
---@return string
function Document:text(raw)
  return self:root():text(raw)
end

---The text of the first <title>, white space collapsed; nil when there is none.
---@return string|nil
function Document:title()
  local t = self:descendants("title")[1]
  return t and t:text() or nil
end

---The content of the first <meta> whose name= or property= is `name` (case-insensitive), e.g.
---"description", "og:title"; nil when absent.
---@param name string
---@return string|nil
function Document:meta(name)
  local wanted = name:lower()
  for _, m in ipairs(self:descendants("meta")) do
    -- a tag may carry both (name="x" property="og:title"): either one may be the one asked for
    local n, p = m:attr("name"), m:attr("property")
    if (n and n:lower() == wanted) or (p and p:lower() == wanted) then
      return m:attr("content")
    end
  end
  return nil
end

local NOT_A_PAGE = { javascript = true, mailto = true, tel = true, data = true }

---The link targets of <a href> and <area href>, in document order, each once. With base_url:
---absolute http(s) URLs without the #fragment (resolved with http.resolve_url against the
---document's <base href>, itself resolved against base_url). Without: the href values as written.
---Same-page (#...), javascript:, mailto:, tel: and data: links are left out.
---@param base_url? string
---@return string[]
function Document:links(base_url)
  local resolve = base_url and require("http").resolve_url
  local base = base_url
  if base_url then
    local b = self:descendants("base")[1]
    local href = b and b:attr("href")
    if href and href:match("%S") then
      base = resolve(base_url, href:match("^%s*(.-)%s*$")) or base_url
    end
  end
  local out, seen = {}, {}
  for _, a in ipairs(self:select("a[href], area[href]")) do
    local href = a:attr("href"):match("^%s*(.-)%s*$")
    local scheme = href:match("^(%a[%w+.-]*):")
    if href ~= "" and not href:find("^#") and not (scheme and NOT_A_PAGE[scheme:lower()]) then
      local url = href
      if base then
        url = resolve(base, href)
        url = url and url:gsub("#.*$", "")
        local s = url and url:match("^(%a[%w+.-]*):")
        if s and s:lower() ~= "http" and s:lower() ~= "https" then url = nil end
      end
      if url and not seen[url] then
        seen[url] = true
        out[#out + 1] = url
      end
    end
  end
  return out
end

return M
