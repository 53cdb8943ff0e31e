---@meta
-- LuaLS stubs for the C module `_html` (core/lua/lua_html.c, libgumbo), which lua/html.lua wraps.

---@class HtmlElement
---@field tag string lower-case tag name
local HtmlElement = {}
---@param name string
---@return string|nil
function HtmlElement:attr(name) end
---@return table<string, string>
function HtmlElement:attrs() end
---Text content; raw = true keeps whitespace as in the source.
---@param raw? boolean
---@return string
function HtmlElement:text(raw) end
---@return HtmlElement[]
function HtmlElement:children() end
---@return HtmlElement|nil
function HtmlElement:parent() end
---@return HtmlElement[] every element below, in document order
function HtmlElement:descendants() end

---@class HtmlDocument
local HtmlDocument = {}
---@return HtmlElement the <html> element
function HtmlDocument:root() end
---Frees the parse tree now (also done by __gc and <close>); elements then raise if used.
function HtmlDocument:close() end
---@return boolean
function HtmlDocument:closed() end
---@return HtmlElement[]
function HtmlDocument:descendants() end
---@return HtmlElement[]
function HtmlDocument:children() end

---@class _html
local _html = {}
---@param source string
---@return HtmlDocument
function _html.parse(source) end

return _html
