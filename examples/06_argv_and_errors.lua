-- Beyond the spec's examples: an argv command (no shell, no quoting), and
-- what a start failure looks like.
local exec = require("exec")
local executor = exec.get("process:native")

local proc = executor:exec({ "printf", "%s|", "two words", "$HOME" })
proc:start()
local out = proc:stdout_stream()
local text = ""
for chunk in function() return out:read() end do text = text .. chunk end
print("argv output:", text, "exit:", proc:wait())

local missing = executor:exec({ "no-such-program-xyz" })
local ok, err = pcall(missing.start, missing)
print("start failed:", ok == false, err:match("no%-such%-program%-xyz") ~= nil)
executor:release()
