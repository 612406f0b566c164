-- A log follower: print lines as they come, until a deadline passes or a
-- stop channel is told to stop, whichever comes first.
local exec = require("exec")
local time = require("time")

local p = exec.get("process:native"):exec(
  "for i in 1 2 3; do echo \"event $i\"; sleep 0.1; done; sleep 10; echo never")
p:start()
local log = p:stdout_stream()

local stop = channel.new()
local deadline = time.after("1s")
local seen = 0
while true do
  local r = channel.select({ log:case_read("l"), deadline:case_receive(), stop:case_receive() })
  if r.channel == log then
    if not r.ok then break end -- the end (r.err says why, if it was an error)
    seen = seen + 1
    print("log: " .. r.value)
  else
    print(r.channel == deadline and "deadline passed" or "stopped")
    break
  end
end
p:close()
print("lines seen: " .. seen)
