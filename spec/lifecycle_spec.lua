-- How a child ends however its handle ends, and what a child inherits.
-- Cases that end an interpreter run in a fresh interpreter (H.run_script)
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

-- Whether a `sleep <mark>` is still there, waiting up to `secs` for it to
-- go. (The pattern's brackets keep the shell that runs pgrep, whose
-- command line holds the pattern, from matching it.)
local function left(mark, secs)
  local deadline = exec.time.now() + (secs or 3)
  repeat
    local p = io.popen("pgrep -f 'sleep [" .. mark:sub(1, 1) .. "]" .. mark:sub(2) .. "' 2>/dev/null")
    local found = p:read("*a")
    p:close()
    if found == "" then return false end
    exec.time.sleep(0.05)
  until exec.time.now() > deadline
  return true
end

describe("a string command is ended whole", function()
  -- dash forks for every simple command but the last: the sleep below is
  -- a child of the shell, not the shell itself.
  local endings = {
    ["close()"] = "p:close()",
    ["close(true)"] = "p:close(true)",
    ["signal('TERM') then wait()"] = "assert(p:signal('TERM')); print('CODE=' .. tostring(p:wait()))",
    ["a collected handle"] = "p = nil; collectgarbage(); collectgarbage(); time.sleep(0.1)",
    ["the end of the script"] = "",
    ["os.exit(0)"] = "os.exit(0)",
  }
  for name, ending in pairs(endings) do
    it("by " .. name, function()
      local mark = string.format("7.%04d", math.random(1000, 9999))
      local out, status = H.script(([[
        local p = exec.get("process:native"):exec("sleep %s; echo never")
        p:start()
        time.sleep(0.2) -- (the shell has started its sleep)
      ]]):format(mark) .. ending, 15)
      assert.equals(0, status, out)
      assert.is_false(left(mark), "sleep " .. mark .. " was left running: " .. out)
    end)
  end

  it("by Ctrl-C during exec.run", function()
    local mark = string.format("7.%04d", math.random(1000, 9999))
    local out = H.script(([[
      local k = exec.get("process:native"):exec({ "sh", "-c", "sleep 0.3; kill -INT $PPID" }, { stdin = "null" })
      k:start()
      print("RUN=" .. tostring(pcall(exec.run, "sleep %s; echo never")))
    ]]):format(mark), 15)
    assert.matches("RUN=false", out)
    assert.is_false(left(mark), "sleep " .. mark .. " was left running: " .. out)
  end)

  it("a list command is not a shell: it gets a group only when asked (or timed)", function()
    local p = ex:exec({ "sleep", "5" })
    p:start()
    local q = ex:exec("sleep 5")
    q:start()
    local function pgid(pid)
      local f = assert(io.open("/proc/" .. pid .. "/stat"))
      local line = f:read("*l")
      f:close()
      return tonumber(line:match("^%d+ %b() %a %d+ (%d+)"))
    end
    assert.are_not.equal(p:pid(), pgid(p:pid()))
    assert.equals(q:pid(), pgid(q:pid()))
    p:close(true)
    q:close(true)
  end)
end)

describe("signal() on a process group whose leader exited", function()
  it("reaches the members still running", function()
    local mark = string.format("8.%04d", math.random(1000, 9999))
    local p = ex:exec(("sleep %s & exit 0"):format(mark), { process_group = true })
    p:start()
    exec.time.sleep(0.3) -- (the leader has exited; not waited for)
    assert.same({ true, nil }, { p:signal("TERM") })
    assert.is_false(left(mark))
    assert.equals(0, p:wait())
    -- Nothing is left: now it is finished.
    local ok, err = p:signal("TERM")
    assert.is_nil(ok)
    assert.matches("closed", err)
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

describe("a wait with a deadline", function()
  it("changes nothing: output that comes after it is there for a stream taken later", function()
    local p = ex:exec("sleep 0.3; echo hi; echo err >&2")
    p:start()
    assert.same({ nil, "timeout", "timeout" }, { p:wait("50ms") })
    assert.equals("hi\n", p:stdout_stream():read("a"))
    assert.equals("err\n", p:stderr_stream():read("a"))
    assert.equals(0, p:wait())
  end)
end)

describe("write_stdin of more than the queue holds", function()
  it("completes while nobody reads the child's output (20 MiB through cat)", function()
    local out, status = H.script([[
      local p = exec.get("process:native"):exec({ "cat" })
      p:start()
      print("WRITE=" .. tostring(p:write_stdin(("x"):rep(20 * 1024 * 1024))))
      p:close_stdin()
      local s, n = p:stdout_stream(), 0
      while true do
        local chunk, err = s:read()
        if chunk then n = n + #chunk elseif err then print("NOTICE=" .. err) else break end
      end
      print("READ=" .. n .. " CODE=" .. tostring(p:wait()))
    ]], 30)
    assert.equals(0, status, out)
    assert.matches("WRITE=true\n", out)
    -- Up to the buffer_limit is kept; past it the documented notice comes.
    local n = tonumber(out:match("READ=(%d+)"))
    assert.is_true(n == 20 * 1024 * 1024 or out:match("NOTICE=[^\n]*were dropped") ~= nil, out)
    assert.matches("CODE=0", out)
  end)
end)

describe("a handle with a timeout", function()
  it("is not kept alive by its timer: collected, its child ends at once and nothing waits for the timer", function()
    local out, status = H.script([[
      local p = exec.get("process:native"):exec({ "sleep", "300" }, { timeout = "1h" })
      p:start()
      local pid = p:pid()
      p = nil
      collectgarbage()
      collectgarbage()
      print("GONE=" .. tostring(H.gone(pid, 3)))
      -- The timer is gone with its handle: a wait that nothing can end is
      -- a deadlock now, not an hour's sleep.
      local ch = channel.new()
      print("RECEIVE=" .. tostring(select(2, pcall(ch.receive, ch))))
    ]], 15)
    assert.equals(0, status, out)
    assert.matches("GONE=true\n", out)
    assert.matches("RECEIVE=deadlock", out)
  end)
end)

describe("combinations that cannot keep their promise", function()
  it("detach with pty is refused", function()
    local ok, err = pcall(ex.exec, ex, { "true" }, { detach = true, pty = true })
    assert.is_false(ok)
    assert.matches("detach and pty cannot be combined", err)
  end)

  it("run's input with stdin elsewhere is refused, naming both", function()
    for _, stdin in ipairs({ "null", "inherit", { path = "/dev/null" } }) do
      local ok, err = pcall(exec.run, { "cat" }, { stdin = stdin, input = "x" })
      assert.is_false(ok)
      assert.matches("option input cannot be used with option stdin", err)
    end
    local src = ex:exec({ "echo", "x" })
    src:start()
    local ok, err = pcall(exec.run, { "cat" }, { stdin = src:stdout_stream(), input = "x" })
    assert.is_false(ok)
    assert.matches("option input cannot be used with option stdin = another process's stream", err)
    src:close()
    assert.equals("x", exec.run({ "cat" }, { stdin = "pipe", input = "x" }).stdout)
  end)
end)
