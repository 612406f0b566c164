-- How a child ends however its handle ends (the interpreter's end, a
-- collected handle, close, <close>), that no zombie is left, what a child
-- inherits, and detach = true, which the library never ends. Cases that
-- end an interpreter run in a fresh interpreter (H.run_script, H.script)
-- and check the child's /proc entry from outside afterwards.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

-- A script that starts a child which ignores SIGTERM, prints its pid and
-- then ends in the way `ending` says.
local function script(ending)
  return [[
    local exec = require("exec")
    local ex = exec.get("process:native")
    local p = ex:exec("trap '' TERM; echo ready; exec sleep 60")
    p:start()
    assert(p:stdout_stream():read() == "ready\n")
    print("PID=" .. p:pid())
    io.stdout:flush()
  ]] .. ending
end

local function child_pid(out)
  return tonumber(out:match("PID=(%d+)"))
end

describe("when the interpreter ends", function()
  local endings = {
    ["normally"] = "",
    ["with error()"] = "error('script failed')",
    ["with os.exit(3, true)"] = "os.exit(3, true)",
    ["with os.exit(3) (state not closed)"] = "os.exit(3)",
    ["with the handle dropped and collected first"] = "p = nil; collectgarbage(); collectgarbage()",
    ["with the executor released"] = "ex:release()",
  }
  for name, ending in pairs(endings) do
    it(name .. ", its children are killed and reaped", function()
      local out = H.run_script(script(ending))
      local pid = child_pid(out)
      assert.is_number(pid, out)
      assert.is_true(H.gone(pid, 5), "child " .. tostring(pid) .. " survived: " .. out)
    end)
  end

  it("with a channel deadlock error, the child is still ended", function()
    local out = H.run_script(script("channel.new():receive()"))
    assert.matches("deadlock", out)
    assert.is_true(H.gone(child_pid(out), 5))
  end)
end)

describe("while the interpreter runs", function()
  it("a collected handle's child is ended and reaped without any further call", function()
    local p = ex:exec({ "sleep", "60" })
    p:start()
    local pid = p:pid()
    p = nil
    collectgarbage()
    collectgarbage()
    -- No exec call from here on: the reaper thread does it alone.
    local deadline = os.time() + 10
    while H.proc_state(pid) ~= nil and os.time() <= deadline do
      local t = os.clock() + 0.01
      while os.clock() < t do end
    end
    assert.is_nil(H.proc_state(pid))
  end)

  it("close() leaves no zombie", function()
    for _ = 1, 20 do
      local p = ex:exec("exit 0")
      p:start()
      p:close()
    end
    local q = ex:exec({ "sleep", "60" })
    q:start()
    q:close()
    exec.time.sleep(0.3)
    assert.equals(0, H.zombies_of(H.own_pid()))
  end)

  it("<close> on Lua 5.4 ends the child at the end of the block", function()
    if not H.has_close then
      pending(H.lua .. " has no <close> variables (Lua 5.4 syntax)")
      return
    end
    local pid = assert(load([[
      local ex = ...
      local p <close> = ex:exec({ "sleep", "60" })
      p:start()
      return p:pid()
    ]]))(ex)
    assert.is_true(H.gone(pid, 5))
    local rel = assert(load([[
      local exec = ...
      local e <close> = exec.get("process:native")
      return e
    ]]))(exec)
    assert.has_error(function() rel:exec("true") end)
  end)

  it("<close> passes on an error that is not the library's, raised while it closes (Ctrl-C)", function()
    if not H.has_close then
      pending(H.lua .. " has no <close> variables (Lua 5.4 syntax)")
      return
    end
    -- lua.c's Ctrl-C is an error raised by a hook in whatever Lua function
    -- runs: here, in the handle's own close (and the stream's, and the
    -- executor's release), called by the <close> at the block's end.
    for _, case in ipairs({ "process", "stream", "executor" }) do
      local out = {}
      local ok, err = pcall(assert(load([[
        local exec, ex, case, out = ...
        local p = ex:exec({ "sleep", "60" })
        out.p = p
        local target = p
        if case == "stream" then target = p:stdout_stream() end
        if case == "executor" then target = exec.get("process:native") end
        local method = case == "executor" and target.release or target.close
        p:start()
        do
          local h <close> = target
          debug.sethook(function()
            if debug.getinfo(2, "f").func == method then
              debug.sethook()
              error("interrupted!", 0)
            end
          end, "c")
        end
        debug.sethook()
        p:close()
      ]])), exec, ex, case, out)
      debug.sethook()
      out.p:close()
      assert.is_false(ok, case)
      assert.equals("interrupted!", err)
    end
  end)
end)

describe("a child", function()
  local function status_field(text, name)
    return text:match(name .. ":%s*(%x+)")
  end

  it("starts with posix_spawn, or with fork + exec where LUA_EXEC_FORK_SPAWN forces the fallback", function()
    local want = os.getenv("LUA_EXEC_FORK_SPAWN") and "fork" or "posix_spawn"
    assert.equals(want, H.exec._internal.core.spawn_method)
  end)

  it("gets default signal dispositions and an empty mask, even if the parent ignores SIGPIPE", function()
    -- The interpreter is started with SIGPIPE and SIGINT ignored.
    local out, status = H.run_script([[
      local exec = require("exec")
      local ex = exec.get("process:native")
      local p = ex:exec({ "cat", "/proc/self/status" })
      p:start()
      local s = p:stdout_stream()
      local t = {}
      while true do local c = s:read() if not c then break end t[#t + 1] = c end
      p:wait()
      io.write(table.concat(t))
    ]], "trap '' PIPE INT; ")
    assert.equals(0, status, out)
    assert.equals("0000000000000000", status_field(out, "SigIgn"))
    assert.equals("0000000000000000", status_field(out, "SigBlk"))
  end)

  it("sees only fds 0, 1 and 2 while twenty other children hold open pipes", function()
    local others = {}
    for i = 1, 20 do
      others[i] = ex:exec("cat")
      others[i]:start()
    end
    -- A file the script opened itself (Lua's io.open does not set CLOEXEC).
    local f = assert(io.open("/proc/self/stat"))
    local out = H.run({ "sh", "-c", "ls /proc/$$/fd" })
    f:close()
    assert.equals("0\n1\n2\n", out)
    for i = 1, 20 do others[i]:close(true) end
  end)

  it("with a closed early stdout (head -c 1) does not break the reader or the writer", function()
    local p = ex:exec({ "head", "-c", "1" })
    p:start()
    -- head may exit while the megabyte is still being written: then the
    -- write reports the broken pipe instead of succeeding. Either way the
    -- interpreter lives and the reader gets head's output.
    local ok, werr = p:write_stdin(string.rep("x", 1000000))
    assert.is_true(ok == true or (ok == nil and werr:match("stdin") ~= nil))
    assert.equals("x", H.read_all(p:stdout_stream()))
    assert.equals(0, p:wait())
    local ok2, err = p:write_stdin("more")
    assert.is_nil(ok2)
    assert.is_string(err)
  end)
end)

describe("a child that exits", function()
  it("is reaped when the loop sees its exit, also detached and never waited for", function()
    local d = ex:exec({ "true" }, { detach = true, stdin = "null", stdout = "null", stderr = "null" })
    d:start()
    local p = ex:exec({ "true" })
    p:start()
    exec.time.sleep(0.3) -- (the loop turns while this sleeps)
    assert.is_nil(H.proc_state(d:pid()), "the detached child is left a zombie")
    assert.is_nil(H.proc_state(p:pid()), "the child is left a zombie")
    -- Its status is kept for wait() and status().
    assert.same({ "exited", 0 }, { d:status() })
    assert.equals(0, p:wait())
    assert.equals(0, d:wait())
  end)
end)

describe("detach = true", function()
  it("a new session that close(), collection, state end and os.exit never end; wait() works; no zombie", function()
    local out, status = H.script([[
      local ex = exec.get("process:native")
      local quiet = { detach = true, stdin = "null", stdout = "null", stderr = "null" }
      local function stat(pid)
        local f = io.open("/proc/" .. pid .. "/stat")
        if not f then return nil end
        local s = f:read("*a")
        f:close()
        local state, pgrp, sid = s:match("^%d+ %b() (%a) %d+ (%d+) (%d+)")
        return state, tonumber(pgrp), tonumber(sid)
      end
      local a = ex:exec({ "sleep", "30" }, quiet)
      a:start()
      local apid = a:pid()
      local st, pgrp, sid = stat(apid)
      assert(sid == apid and pgrp == apid, "a session of its own")
      a:close(true)
      local b = ex:exec({ "sleep", "30" }, quiet)
      b:start()
      local bpid = b:pid()
      b = nil
      collectgarbage(); collectgarbage()
      local c = ex:exec({ "sleep", "0.2" }, quiet)
      c:start()
      assert(c:wait() == 0, "wait() still works")
      local d = ex:exec({ "sleep", "0.1" }, quiet)
      d:start()
      local dpid = d:pid()
      d:close()
      time.sleep(0.4)
      assert(stat(dpid) == nil, "an exited detached child is reaped, not left a zombie")
      assert(stat(apid) == "S" and stat(bpid) == "S", "close and collection left them running")
      print("PIDS=" .. apid .. " " .. bpid)
      io.stdout:flush()
      os.exit(0)
    ]])
    assert.equals(0, status, out)
    local apid, bpid = out:match("PIDS=(%d+) (%d+)")
    assert.is_truthy(apid, out)
    assert.equals("S", H.proc_state(tonumber(apid)), "os.exit and state end left it running")
    assert.equals("S", H.proc_state(tonumber(bpid)))
    os.execute("kill " .. apid .. " " .. bpid)
  end)

  it("is refused for remote resources", function()
    H.exec.registry.define("detach:remote", { kind = "exec.ssh", host = "127.0.0.1", multiplex = false })
    local ex = H.exec.get("detach:remote")
    local ok, err = pcall(ex.exec, ex, "true", { detach = true })
    assert.is_false(ok)
    assert.matches("detach is not available for remote resource 'detach:remote'", err)
  end)
end)
