---@meta http
-- LuaLS stubs for `require "http"` (lua/http.lua over core/lua/lua_http.c). DESIGN.md "http".

---@class http
local http = {}

---@alias HttpErrorKind "dns"|"connect"|"tls"|"timeout"|"closed"|"protocol"|"limit"|"redirect"|"canceled"|"invalid"|"replay"|"proxy"

---@class HttpTimeouts
---@field connect? number  seconds for TCP connect (every address, Happy Eyeballs)
---@field tls? number      seconds for the TLS handshake
---@field read? number     seconds of silence from the server
---@field total? number    seconds for the whole exchange, redirects included

---@class HttpRequestOptions
---@field url string
---@field method? string              default "GET"
---@field headers? table<string, string>
---@field body? string
---@field json? any                   encoded as the JSON body; sets Content-Type
---@field timeout? number|HttpTimeouts  default HTTP_TIMEOUT or 30 (total)
---@field max_redirects? integer      default 5; 0 returns the 3xx itself
---@field max_body? integer           cap on the decoded body (default 64 MiB) → kind "limit"
---@field verify? boolean             verify certificate and host name (default true)
---@field ca_file? string             PEM bundle to trust instead of the system's
---@field cert_file? string           client certificate (PEM)
---@field key_file? string            its key (PEM)
---@field decompress? boolean         gzip/deflate (default true)
---@field proxy? string|false         "http://[user:pass@]host:port", "socks5://…", "socks5h://…"; false: never (default: from the environment)

---@class HttpTimings
---@field dns number      seconds looking up the name (0 when cached or an IP)
---@field connect number  seconds connecting (a proxy tunnel included)
---@field tls number      seconds of the TLS handshake (0 for http)
---@field ttfb number     seconds from the start to the first response byte
---@field total number    seconds for the whole exchange (every redirect hop)

---@class HttpTlsInfo
---@field version string
---@field cipher string
---@field verified boolean
---@field verify_cached boolean  the chain was verified before for this host against the same CA bundle
---@field expires integer   the certificate's notAfter, seconds since the epoch
---@field resumed boolean

---@class Response
---@field status integer
---@field reason string
---@field headers table<string, string>  lower-case names; repeated headers joined with ", "
---@field body string
---@field url string          final URL after redirects
---@field reused boolean      served over a pooled connection
---@field timings HttpTimings
---@field tls HttpTlsInfo|nil https only
---@field redirects integer   hops followed
---@field version string|nil  "1.0", "1.1" or "2" (when the build reports it)
local Response = {}

---Decodes the body as JSON.
---@return any|nil value
---@return string|nil err
function Response:json() end

---Sends a request and follows redirects. Yields the calling task.
---@param opts HttpRequestOptions
---@return Response|nil res
---@return string|nil err
---@return HttpErrorKind|nil kind
function http.request(opts) end

---@param url string
---@param opts? HttpRequestOptions without url
---@return Response|nil res
---@return string|nil err
---@return HttpErrorKind|nil kind
function http.get(url, opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function http.head(url, opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function http.delete(url, opts) end

---@param url string
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function http.options(url, opts) end

---A string body is sent as is; a table is sent as JSON.
---@param url string
---@param body string|table
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function http.post(url, body, opts) end

---@param url string
---@param body string|table
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function http.put(url, body, opts) end

---@param url string
---@param body string|table
---@param opts? table
---@return Response|nil, string|nil, HttpErrorKind|nil
function http.patch(url, body, opts) end

---Counters since start.
---@return { requests: integer, connections_opened: integer, connections_reused: integer, dns_lookups: integer, dns_hits: integer, in_flight: integer }
function http.stats() end

---Pool and limit settings.
---@param opts { max_connecting?: integer, max_idle_per_host?: integer, max_idle_total?: integer, idle_timeout?: number, dns_ttl?: number, dns_cache_size?: integer, max_header_bytes?: integer, max_header_count?: integer, hosts?: table<string, string[]> }
function http.configure(opts) end

---@param url string
---@return { scheme: string, host: string, port: integer, target: string }|nil parts
---@return string|nil err
function http.parse_url(url) end

---@param base string absolute URL
---@param ref string
---@return string|nil absolute
function http.resolve_url(base, ref) end

---@class ServerRequest
---@field method string
---@field path string     without the query, not percent-decoded
---@field query string    raw query ("" when none)
---@field target string
---@field args table<string, string>  the query, decoded
---@field headers table<string, string>  lower-case names
---@field body string
---@field version string  "1.1" or "1.0"
---@field remote_addr string
---@field remote_port integer

---@class ServerResponse
---@field status? integer   default 200
---@field headers? table<string, string>
---@field body? string
---@field json? any

---@class Server
---@field host string
---@field port integer  the bound port
---@field url string    e.g. "http://127.0.0.1:8080"
local Server = {}
---Stops listening; connections finish their request.
function Server:close() end
---@return table
function Server:stats() end

---@class ServeOptions
---@field host? string   default "127.0.0.1"
---@field port? integer  0: the OS picks one
---@field handler fun(req: ServerRequest): ServerResponse|string|nil  runs as a task
---@field max_body? integer
---@field max_header_bytes? integer
---@field header_timeout? number   seconds for the request head (10)
---@field body_timeout? number     seconds for the body (30)
---@field idle_timeout? number     keep-alive idle seconds (60)
---@field max_header_count? integer
---@field backlog? integer

---Starts the embedded HTTP/1.1 server (docs/server.md).
---@param opts ServeOptions
---@return Server|nil server
---@return string|nil err
function http.serve(opts) end

return http
