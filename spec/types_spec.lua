-- types/exec.lua (LuaLS annotations) covers every public function.
local H = require("spec.helper")
local exec = H.exec

local function annotated(text, owner, name)
  return text:find("function " .. owner .. "[.:]" .. name .. "%(") ~= nil
end

describe("types/exec.lua", function()
  local text = assert(H.read_file("types/exec.lua"), "types/exec.lua missing")

  it("annotates every function of the module and its sub-tables", function()
    local missing = {}
    local function scan(tbl, owner)
      for k, v in pairs(tbl) do
        if type(v) == "function" and not k:match("^_") and not annotated(text, owner, k) then
          missing[#missing + 1] = owner .. "." .. k
        end
      end
    end
    scan(exec, "exec")
    scan(exec.registry, "registry")
    scan(exec.channel, "channel")
    scan(exec.time, "timelib")
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("annotates every method of executors, processes, streams, scanners and channels", function()
    local missing = {}
    local classes = { Executor = exec._internal.Executor, Process = exec._internal.Process,
                      Stream = exec._internal.Stream, Scanner = exec._internal.Scanner,
                      Channel = exec._internal.Channel }
    for owner, class in pairs(classes) do
      for k, v in pairs(class) do
        if type(v) == "function" and not k:match("^_") and not annotated(text, owner, k) then
          missing[#missing + 1] = owner .. ":" .. k
        end
      end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)
end)
