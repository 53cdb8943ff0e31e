---@meta html
-- LuaLS stubs for `require "html"` (lua/html.lua over core/lua/lua_html.c, libgumbo). docs/html.md.

---@class html
local html = {}

---@class HtmlElement
---@field tag string   lower-case tag name
local HtmlElement = {}
---@param name string
---@return string|nil
function HtmlElement:attr(name) end
---@return table<string, string>
function HtmlElement:attrs() end
---The text inside, whitespace collapsed (raw: as it is).
---@param raw? boolean
---@return string
function HtmlElement:text(raw) end
---@return HtmlElement[]
function HtmlElement:children() end
---@return HtmlElement|nil
function HtmlElement:parent() end
---@param tag? string
---@return HtmlElement[]
function HtmlElement:descendants(tag) end
---CSS selector: tag, *, #id, .class, [attr], [attr=value], descendant (a b) and child (a > b)
---combinators, comma lists (a, b).
---@param selector string
---@return HtmlElement[]
function HtmlElement:select(selector) end
---@param selector string
---@return HtmlElement|nil
function HtmlElement:select_one(selector) end

---@class HtmlDocument
local HtmlDocument = {}
---@return HtmlElement
function HtmlDocument:root() end
---Frees the tree now (also done by `<close>` and the GC).
function HtmlDocument:close() end
---@return boolean
function HtmlDocument:closed() end
---@return HtmlElement[]
function HtmlDocument:children() end
---@param tag? string
---@return HtmlElement[]
function HtmlDocument:descendants(tag) end
---@param selector string
---@return HtmlElement[]
function HtmlDocument:select(selector) end
---@param selector string
---@return HtmlElement|nil
function HtmlDocument:select_one(selector) end
---@param raw? boolean
---@return string
function HtmlDocument:text(raw) end
---@return string|nil
function HtmlDocument:title() end
---The content of <meta name=NAME> or <meta property=NAME>.
---@param name string
---@return string|nil
function HtmlDocument:meta(name) end
---Every <a href>, resolved against base_url when given.
---@param base_url? string
---@return string[]
function HtmlDocument:links(base_url) end

---Parses an HTML document (never fails on bad HTML: browsers' rules).
---@param source string
---@return HtmlDocument
function html.parse(source) end

return html
