-- What the remote benches (bench/ssh.lua, bench/container.lua) share: short
-- commands run one after another or by several tasks at once, timed over
-- REPEAT runs, printed as medians. Loaded with dofile from the top
-- directory, where `make bench-ssh` and `make bench-container` run.
local exec = require("exec")
local M = {}

local function median(xs)
  table.sort(xs)
  return xs[math.floor((#xs + 1) / 2)]
end

-- `n` echo commands, one after another, each checked.
function M.sequential(n)
  return function(ex)
    for i = 1, n do assert(ex:run({ "echo", tostring(i) }).stdout == i .. "\n") end
  end
end

-- `n` echo commands shared by `tasks` tasks (n a multiple of tasks).
function M.in_tasks(n, tasks)
  return function(ex)
    local done = exec.channel.new(tasks)
    for w = 1, tasks do
      exec.spawn(function()
        for i = 1, n / tasks do assert(ex:run({ "echo", tostring(w * 10 + i) }).code == 0) end
        done:send(true)
      end)
    end
    for _ = 1, tasks do done:receive() end
  end
end

-- Rows of { name, median seconds }: each measured `repeats` times, `make`
-- giving a fresh executor for each run (nil where `body` needs none).
function M.rows(repeats)
  local rows = {}
  function rows.measure(name, make, body)
    local xs = {}
    for _ = 1, repeats do
      local ex = make()
      local t0 = exec.time.now()
      body(ex)
      xs[#xs + 1] = exec.time.now() - t0
    end
    rows[#rows + 1] = { name, median(xs) }
  end
  return rows
end

return M
