-- 50 short remote commands (echo) through one exec.ssh resource, with and
-- without connection multiplexing, against the throwaway sshd that
-- scripts/sshd.sh starts (`make bench-ssh`). Prints medians of REPEAT runs.
-- Also: the same 50 run by 10 tasks at once, and a plain `ssh` loop from
-- the shell for reference.
local exec = require("exec")
local dir, repeats = arg[1], tonumber(arg[2] or "3")
local function read(name)
  local f = assert(io.open(dir .. "/" .. name))
  local t = f:read("*a"):gsub("%s+$", "")
  f:close()
  return t
end
local port, user = tonumber(read("port")), read("user")
local n_ids = 0
local function executor(multiplex)
  n_ids = n_ids + 1
  local id = "bench:ssh" .. n_ids
  exec.registry.define(id, {
    kind = "exec.ssh", host = "127.0.0.1", port = port, user = user, multiplex = multiplex,
    identity_file = dir .. "/user_key", known_hosts_file = dir .. "/known_hosts", ssh_config_file = "/dev/null",
  })
  return exec.get(id)
end

local T = dofile("bench/remote_timing.lua")
local sequential, parallel = T.sequential(50), T.in_tasks(50, 10)
local rows = T.rows(repeats)
local measure = rows.measure

-- The multiplexed case includes making the connection (a fresh resource
-- each run), as a program that runs 50 commands would.
measure("50 sequential, multiplexed", function() return executor(true) end, sequential)
measure("50 sequential, one connection each", function() return executor(false) end, sequential)
measure("50 by 10 tasks, multiplexed", function() return executor(true) end, parallel)
measure("50 by 10 tasks, one connection each", function() return executor(false) end, parallel)
measure("plain ssh loop in sh, one connection each", function() return nil end, function()
  local cmd = string.format("for i in $(seq 50); do ssh -F /dev/null -o BatchMode=yes -o LogLevel=ERROR " ..
    "-o UserKnownHostsFile=%s -i %s -p %d -l %s 127.0.0.1 echo $i >/dev/null || exit 1; done",
    dir .. "/known_hosts", dir .. "/user_key", port, user)
  local r = os.execute(cmd)
  assert(r == true or r == 0)
end)

local r0 = io.popen("ssh -V 2>&1"):read("*l")
print(string.format("remote commands over ssh to 127.0.0.1 (%s), median of %d", r0, repeats))
for _, r in ipairs(rows) do
  print(string.format("  %-44s %7.2f s  (%5.1f ms per command)", r[1], r[2], r[2] * 1000 / 50))
end
