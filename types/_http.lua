---@meta
-- LuaLS stubs for the C module `_http` (core/lua/lua_http.c), which lua/http.lua wraps.

---@class _http
local _http = {}

---One HTTP exchange (no redirects). Yields the calling task.
---@param opts table url, method, headers, body, timeout_connect, timeout_tls, timeout_read, timeout_total, max_body, decompress, verify, ca_file, cert_file, key_file
---@return table|nil response status, reason, headers, body, reused, timings, tls
---@return string|nil message
---@return string|nil kind
function _http.request(opts) end

---@return table counters requests, connections_opened, connections_reused, dns_lookups, dns_hits, in_flight, idle_connections, connecting
function _http.stats() end

---@param opts table max_connecting, max_idle_per_host, idle_timeout, dns_ttl, max_header_bytes, max_header_count
function _http.configure(opts) end

---@param url string
---@return table|nil parts scheme, host, port, target
---@return string|nil err
function _http.parse_url(url) end

---@param base string absolute URL
---@param ref string reference (absolute, scheme-relative, path or relative)
---@return string|nil absolute
function _http.resolve_url(base, ref) end

return _http
