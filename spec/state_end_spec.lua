-- The Lua state's end and a fork of the host: a finalizer that calls the
-- library while the state closes finds it working or gets the plain error
-- "exec: the Lua state is closing", never freed memory (spec/state_end.lua
-- places such finalizers); a forked copy of the host never touches the
-- parent's children. Every case runs in a fresh interpreter.
local H = require("spec.helper")
local script = H.script

describe("state end and fork are safe", function()
  it("a finalizer that runs after the module's teardown gets a plain error", function()
    local mk = [[ local mk = newproxy and function(f) local u = newproxy(true); getmetatable(u).__gc = f; return u end
        or function(f) return setmetatable({}, { __gc = f }) end ]]
    local out, status = H.run_script(mk .. [[
      local exec
      KEEP = mk(function()
        for _, call in ipairs({
          function() return exec.run("true") end,
          function() return exec.get("process:native") end,
          function() return exec.registry.define("a:b", { kind = "x" }) end,
          -- lines already buffered are no exception
          function() return S:read("l") end,
          function() return IT() end,
        }) do
          local ok, err = pcall(call)
          print("LATE=" .. tostring(ok) .. " " .. tostring(err))
        end
      end)
      exec = require("exec")
      exec.run("true")
      P = exec.get("process:native"):exec({ "printf", "a\\nb\\nc\\nd\\n" }); P:start()
      S = P:stdout_stream()
      assert(S:read("l", 5) == "a")
      IT = S:lines()
      assert(S:read("l") == "b")
    ]], "timeout -s KILL 20 ")
    assert.equals(0, status, out)
    local _, n = out:gsub("LATE=false exec: the Lua state is closing", "")
    assert.equals(5, n, out)
  end)

  -- spec/state_end.lua CASE: a finalizer, placed as CASE says, that calls
  -- the library while the state closes. Each call works or raises the
  -- plain error, and the interpreter ends cleanly.
  local function state_end(case)
    local p = io.popen("timeout -s KILL 30 " .. H.lua .. " spec/state_end.lua " .. case .. " 2>&1; echo \"EXIT=$?\"")
    local out = p:read("*a")
    p:close()
    assert.equals("0", out:match("EXIT=(%d+)%s*$"), out)
    assert.is_nil(out:find("Segmentation fault", 1, true), out)
    assert.is_nil(out:find("memory allocation", 1, true), out)
    local calls, ok = {}, 0
    for line in out:gmatch("CALL [^\n]*") do
      calls[#calls + 1] = line
      if line:find(" OK$") then ok = ok + 1 end
    end
    return calls, ok, out
  end
  local function works_or_closing(line)
    return line:find(" OK$") or line:find(" ERR exec: the Lua state is closing$")
  end

  it("a finalizer made after require('exec') finds the library working or closed, never freed", function()
    local calls, _, out = state_end("issue")
    assert.equals(1, #calls, out)
    assert.is_truthy(works_or_closing(calls[1]), out)
  end)

  for case, where in pairs({
    ["before-module"] = "before the module",
    ["before-handles"] = "between the module and the handles",
    ["between-handles"] = "between the handles",
    ["after-all"] = "after everything",
  }) do
    it("every call from a finalizer made " .. where .. " works or raises the plain error", function()
      local calls, ok, out = state_end(case)
      assert.equals(17, #calls, out)
      for _, line in ipairs(calls) do assert.is_truthy(works_or_closing(line), out) end
      -- After everything, nothing of the library has gone when it runs
      -- (but Lua 5.1 runs pending finalizers inside a big allocation).
      if case == "after-all" and H.lua ~= "lua5.1" then assert.equals(17, ok, out) end
    end)
  end

  it("before another finalizer that uses the library, the library's functions are all still there", function()
    local calls, _, out = state_end("before-a-later-user")
    assert.equals(17, #calls, out)
    for _, line in ipairs(calls) do
      assert.is_truthy(works_or_closing(line) or
        (line:find("^CALL [PSIQt]") and line:find(" ERR userdata has been destructed$")), out)
    end
  end)

  it("a forked copy of the host never signals the parent's children (LuaJIT ffi)", function()
    if not H.is_luajit then return pending("fork needs LuaJIT's ffi; the core's cargo test covers it") end
    local out, status = script([[
      local ffi = require("ffi")
      ffi.cdef("int fork(void); void _exit(int); int waitpid(int, int*, int);")
      local p = exec.get("process:native"):exec({ "sleep", "30" }); p:start()
      local pid = p:pid()
      local child = ffi.C.fork()
      if child == 0 then
        p:close(); p = nil; collectgarbage(); collectgarbage()
        os.exit(0, true)
      end
      ffi.C.waitpid(child, nil, 0)
      time.sleep(0.2)
      print("ALIVE=" .. tostring(H.proc_state(pid) ~= nil and H.proc_state(pid) ~= "Z"))
      p:close()
    ]])
    assert.equals(0, status, out)
    assert.matches("ALIVE=true", out)
  end)
end)
