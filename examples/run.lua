-- Runs one example and prints what it returned, so that the examples can
-- keep the spec's `return value` endings.
local path = assert(arg[1], "usage: run.lua EXAMPLE.lua")
local results = { n = 0 }
local function collect(...) results = { n = select("#", ...), ... } end
collect(dofile(path))
for i = 1, results.n do
  local v = results[i]
  print(string.format("returned[%d]: %s", i, type(v) == "string" and string.format("%q", v) or tostring(v)))
end
