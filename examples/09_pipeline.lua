-- A three-stage pipeline, `seq 1 1000000 | grep 7 | wc -l`, without the
-- data passing through Lua: each stage's stdin is the previous stdout.
local exec = require("exec")
local ex = exec.get("process:native")

local seq = ex:exec({ "seq", "1", "1000000" })
seq:start()
local grep = ex:exec({ "grep", "7" }, { stdin = seq:stdout_stream() })
grep:start()
local wc = ex:exec({ "wc", "-l" }, { stdin = grep:stdout_stream() })
wc:start()

local count = wc:stdout_stream():read("a")
assert(seq:wait() == 0 and grep:wait() == 0 and wc:wait() == 0)

local shell = io.popen("seq 1 1000000 | grep 7 | wc -l")
local expected = shell:read("*a")
shell:close()
print("lines with a 7: " .. count:gsub("%s", "") .. (count == expected and " (as the shell says)" or " (the shell says " .. expected .. ")"))
