---@meta session
-- LuaLS stubs for http.session (lua/session.lua), its cookie jar (lua/cookies.lua), and the
-- request options and helpers they bring to `http` (docs/sessions.md). DESIGN.md "Sessions and
-- cookies" and "Bodies as streams".

---@class HttpMultipartPart
---@field name string
---@field value? string           the part's content (or give file)
---@field file? string            a path: the part's content is the file's
---@field filename? string        default: the file's base name (none for a value)
---@field content_type? string    default: from the extension, as curl -F guesses it

---@alias HttpAuth { [1]: string, [2]: string }|{ bearer: string }|false

---@class HttpRequestOptions
---@field form? table                    → application/x-www-form-urlencoded
---@field multipart? HttpMultipartPart[]  → multipart/form-data
---@field auth? HttpAuth                 Basic ({user, pass}) or Bearer ({bearer = token}); false: none

---@class Cookie
---@field name string
---@field value string
---@field domain string        lower case, no leading dot
---@field host_only boolean    sent to exactly `domain` only (no Domain attribute was given)
---@field path string
---@field secure boolean       sent over https only
---@field http_only boolean
---@field same_site "Strict"|"Lax"|"None"|nil
---@field expires number|nil   seconds since the epoch; nil for a session cookie

---@class Jar
local Jar = {}

---The Cookie header value a request for url would carry ("a=1; b=2"), or nil.
---@param url string
---@return string|nil
function Jar:get(url) end

---Stores Set-Cookie value(s) received for url; returns how many were accepted.
---@param url string
---@param set_cookie string|string[]
---@return integer
function Jar:store(url, set_cookie) end

---Copies of every live cookie, sorted by domain, path, name.
---@return Cookie[]
function Jar:list() end

---Removes every cookie, or those stored for one domain.
---@param domain? string
function Jar:clear(domain) end

---Writes a Netscape cookies.txt (curl -b reads it).
---@param path string
---@return boolean|nil ok
---@return string|nil err
function Jar:save(path) end

---Adds the cookies of a Netscape cookies.txt (curl -c writes it); returns how many.
---@param path string
---@return integer|nil loaded
---@return string|nil err
function Jar:load(path) end

---@class SessionOptions: HttpRequestOptions
---@field base_url? string          relative request URLs resolve against it
---@field headers? table<string, string>  merged under each request's (the request wins on a name)
---@field cookies? boolean|Jar      true (default): a new jar; false: none; or a jar to share

---@class Session
---@field base_url string|nil
---@field cookies Jar|nil
local Session = {}

---@param opts HttpRequestOptions url may be relative to base_url
---@return Response|nil res
---@return string|nil err
---@return HttpErrorKind|nil kind
function Session:request(opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:get(url, opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:head(url, opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:delete(url, opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:options(url, opts) end

---A string body is sent as is, a table as JSON; nil takes a form/multipart/body/json option.
---@param url string
---@param body? string|table
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:post(url, body, opts) end

---@param url string
---@param body? string|table
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:put(url, body, opts) end

---@param url string
---@param body? string|table
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function Session:patch(url, body, opts) end

---@class http
local http = {}

---A session: shared defaults and a cookie jar. Raises on an unknown option.
---@param opts? SessionOptions
---@return Session
function http.session(opts) end

---A string percent-encoded (a space is %20), or a table as a form "a=1&b=x+y".
---@param v string|table
---@return string
function http.urlencode(v) end

---Decodes %XX and "+" (a space).
---@param s string
---@return string
function http.urldecode(s) end

---@param s string
---@return string
function http.base64(s) end

---@param s string
---@return string|nil decoded
---@return string|nil err
function http.unbase64(s) end

local M = {}
---@return Session
function M.new(opts) end
return M
