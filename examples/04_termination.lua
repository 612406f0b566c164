-- Spec example: Process Termination (unchanged, plus a print of the result).
local exec = require("exec")
local time = require("time")

-- Get executor factory
local executor = exec.get("process:native")

-- Start a long-running process
local proc = executor:exec("sleep 30")
proc:start()

-- Let it run for a moment
time.sleep("1s")

-- Terminate gracefully
proc:signal(15) -- SIGTERM

-- Or forcefully close
-- proc:close(true) -- Force stop

-- Wait for termination
local exit_code, err = proc:wait()
executor:release()

print("exit code:", exit_code, "(128 + SIGTERM)")
