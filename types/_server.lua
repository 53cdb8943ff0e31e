---@meta
-- LuaLS stubs for the C module `_server` (core/lua/lua_server.c), which lua/server.lua wraps.

---@class _server
local _server = {}

---Starts listening; dispatch(req) runs as a task for each request.
---@param opts table host, port, max_body, header_timeout, body_timeout, idle_timeout
---@param dispatch function
---@return userdata|nil handle
---@return integer|string port_or_err
function _server.listen(opts, dispatch) end

---Stops listening and closes idle connections; in-flight handlers finish.
---@param h userdata
function _server.close(h) end

---@param h userdata
---@return table counters
function _server.stats(h) end

---Writes the response for req: true, false (connection gone) or nil, err (bad response).
---@param req userdata
---@param status integer
---@param headers table|nil
---@param body string|nil
---@return boolean|nil
---@return string|nil err
function _server.respond(req, status, headers, body) end

---@param req userdata
---@return boolean still waiting for a response
function _server.pending(req) end

return _server
