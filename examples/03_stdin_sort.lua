-- Spec example: Process with Stdin Input, with close_stdin() added:
-- sort prints nothing until its input ends.
local exec = require("exec")

-- Get executor factory
local executor = exec.get("process:native")

-- Create a process that processes stdin
local proc = executor:exec("sort")
proc:start()

-- Send data to stdin, then end it
proc:write_stdin("banana\napple\ncherry\n")
proc:close_stdin()

-- Capture sorted output
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

-- Get results
local sorted_output = done:receive()
done:close()

proc:wait()
executor:release()

return sorted_output
