-- Spec example: Basic Process Execution (unchanged).
local exec = require("exec")

-- Get executor factory from resource registry
local executor = exec.get("process:native")

-- Create and start a simple process
local proc = executor:exec("echo 'Hello World'")
proc:start()

-- Capture output using a coroutine
coroutine.spawn(function()
    local stream = proc:stdout_stream()
    local output = ""
    while true do
        local chunk = stream:read()
        if not chunk then break end
        output = output .. chunk
    end
    print("Output:", output)
    stream:close()
end)

-- Wait for completion
local exit_code, err = proc:wait()
assert(exit_code == 0, "Process failed with: " .. tostring(err))

-- Release resources
executor:release()
