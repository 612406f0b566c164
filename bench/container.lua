-- What a container process costs against a native one (`make
-- bench-container`): short commands (echo) through an exec.docker resource
-- on the private podman that scripts/podman.sh sets up, a fresh container
-- each, and with `exec` in one running container; the same run natively,
-- and a plain `podman run` loop from the shell for the engine's own cost.
-- Prints medians of REPEAT runs.
local exec = require("exec")
local dir, repeats = arg[1], tonumber(arg[2] or "3")
local N = 20
local args = {}
for line in io.lines(dir .. "/args") do args[#args + 1] = line end
local image = io.open(dir .. "/image"):read("*l")
local conf = dir .. "/containers.conf"

local n_ids = 0
local function executor(over)
  n_ids = n_ids + 1
  local id = "bench:container" .. n_ids
  local c = { kind = "exec.docker", image = image, engine = "podman", engine_args = args,
              engine_env = { CONTAINERS_CONF = conf } }
  for k, v in pairs(over or {}) do c[k] = v end
  if c.container then c.image = nil end
  exec.registry.define(id, c)
  return exec.get(id)
end

local T = dofile("bench/remote_timing.lua")
local sequential, parallel = T.sequential(N), T.in_tasks(N, 4)
local rows = T.rows(repeats)
local measure = rows.measure

local function sh(cmd)
  local r = os.execute(cmd)
  assert(r == true or r == 0, cmd)
end

local long = "lua-exec-bench-long"
local podman = "sh scripts/podman.sh podman " .. dir .. " "
sh(podman .. "run -d --init --name " .. long .. " " .. image .. " sleep 100000 >/dev/null")

measure("native (process:native)", function() return exec.get("process:native") end, sequential)
-- A fresh resource each run: the first start also resolves the engine.
measure("fresh container each (image =)", function() return executor() end, sequential)
measure("fresh container each, 4 tasks at once", function() return executor() end, parallel)
measure("exec in a running container (container =)", function() return executor({ container = long }) end, sequential)
local direct = { "CONTAINERS_CONF=" .. exec.quote(conf), "podman" }
for _, a in ipairs(args) do direct[#direct + 1] = exec.quote(a) end
direct = table.concat(direct, " ")
measure("plain podman run loop in sh", function() return nil end, function()
  sh("for i in $(seq " .. N .. "); do " .. direct .. " run --rm -i --init " .. image .. " echo $i </dev/null >/dev/null || exit 1; done")
end)
sh(podman .. "rm -f -t 0 " .. long .. " >/dev/null")

local v = io.popen("podman --version"):read("*l")
print(string.format("%d short commands (echo), %s with runc, vfs storage; median of %d", N, v, repeats))
local native = rows[1][2]
for _, r in ipairs(rows) do
  print(string.format("  %-44s %7.2f s  (%6.1f ms per command, %5.0fx native)", r[1], r[2], r[2] * 1000 / N, r[2] / native))
end
