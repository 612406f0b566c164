-- Spec example: Error Handling and Cleanup, corrected: pcall returns
-- (ok, value), so the spec's `local executor, err = pcall(...)` would call
-- methods on a boolean. Each pcall now keeps the status and the value apart.
local exec = require("exec")

-- Get executor factory
local ok, executor = pcall(function() return exec.get("process:native") end)
if not ok then
    error("Failed to get executor: " .. tostring(executor))
end

-- Create process with error handling
local ok, proc = pcall(function()
    return executor:exec("non_existent_command")
end)
if not ok then
    executor:release()
    error("Failed to create process: " .. tostring(proc))
end

-- Start with error handling
local success, err = pcall(function() proc:start() end)
if not success then
    proc:close()
    executor:release()
    error("Failed to start process: " .. tostring(err))
end

-- Always ensure cleanup
local function cleanup()
    pcall(function() proc:close() end)
    pcall(function() executor:release() end)
end

-- Wait will never fail, no need for pcall
local exit_code, err = proc:wait()
cleanup()

if err then
    -- Handle error if returned from wait
    error("Process wait error: " .. tostring(err))
end

-- A string command runs through /bin/sh, which reports an unknown command
-- as exit code 127.
return exit_code
