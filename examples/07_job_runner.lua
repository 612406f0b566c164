-- A job runner: 12 jobs, at most 3 at a time (queue = true makes start()
-- wait for a free slot instead of raising), failures collected.
local exec = require("exec")

exec.registry.define("jobs:pool", { kind = "exec.native", max_processes = 3, queue = true })
local pool = exec.get("jobs:pool")

local results = {}
for i = 1, 12 do
  coroutine.spawn(function()
    local r = pool:run({ "sh", "-c", "sleep 0.2; echo job $0; exit $(( $0 % 5 == 0 ))", tostring(i) })
    results[i] = r.code
  end)
end
assert(exec.wait_tasks())

local failed = {}
for i = 1, 12 do
  if results[i] ~= 0 then failed[#failed + 1] = i end
end
print("jobs run: " .. #results .. ", failed: " .. table.concat(failed, " "))
pool:release()
