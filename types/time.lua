---@meta time
-- LuaLS annotations for require("time"), which require("exec") provides
-- (the same table as exec.time) unless a module of that name exists.

---@type timelib
local time = {}

return time
