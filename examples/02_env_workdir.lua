-- Spec example: Process with Custom Environment and Working Directory (unchanged).
local exec = require("exec")

-- Get executor factory
local executor = exec.get("process:native")

-- Create process with custom env and working directory
local proc = executor:exec("pwd && echo $CUSTOM_VAR", {
    work_dir = "/tmp",
    env = {
        PATH = "/usr/bin:/bin",
        CUSTOM_VAR = "Hello from env"
    }
})
proc:start()

-- Capture output with channel for synchronization
local done = channel.new()
coroutine.spawn(function()
    local stream = proc:stdout_stream()
    local output = ""
    while true do
        local chunk = stream:read()
        if not chunk then break end
        output = output .. chunk
    end
    stream:close()
    done:send(output)
end)

-- Receive output and wait for completion
local output = done:receive()
done:close()

local exit_code = proc:wait()
proc:close() -- Optional after wait()
executor:release()

return output
