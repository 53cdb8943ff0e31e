---@meta _stats
-- LuaLS stubs for `require "_stats"` (core/lua/lua_stats.c): durations kept in C memory for a run's
-- percentiles (lua/thresholds.lua). Internal: scripts use `thresholds` and the fetcher's stats.

---@class _stats
local _stats = {}

---@class Samples
local Samples = {}

---Adds one number.
---@param x number
function Samples:add(x) end

---A new array of the numbers in ascending order.
---@return number[]
function Samples:sorted() end

---An empty samples object (`#samples` is its count).
---@return Samples
function _stats.samples() end

return _stats
