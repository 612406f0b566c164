-- The process handle: start, pid, wait (its codes, several waiters, a
-- handle closed meanwhile), status, and methods called on the wrong object.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

describe("process:start", function()
  it("raises when already started or closed", function()
    local p = ex:exec("true")
    p:start()
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("already started", err)
    p:wait()
    ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("closed", err)
    local q = ex:exec("true")
    q:close()
    ok, err = pcall(q.start, q)
    assert.is_false(ok)
    assert.matches("closed", err)
  end)

  it("leaks no descriptor and no child when it fails", function()
    -- Children of earlier specs still being reaped hold pidfds that the
    -- reaper closes by itself: let that finish first.
    H.children_settle()
    local before = H.fd_count()
    for _ = 1, 20 do
      local p = ex:exec({ "no-such-program-xyz" })
      assert.is_false(pcall(p.start, p))
      p = ex:exec("true", { work_dir = "/no/such" })
      assert.is_false(pcall(p.start, p))
    end
    assert.equals(before, H.fd_count())
    assert.equals(0, H.zombies_of(H.own_pid()))
  end)

  it("gives the pid", function()
    local p = ex:exec("sleep 5")
    assert.is_nil(p:pid())
    p:start()
    local pid = p:pid()
    assert.is_number(pid)
    assert.is_not_nil(H.proc_state(pid))
    p:close(true)
    assert.is_true(H.gone(pid))
  end)
end)

describe("process:wait", function()
  it("returns the exit code and nil", function()
    local p = ex:exec("exit 3")
    p:start()
    local code, err = p:wait()
    assert.equals(3, code)
    assert.is_nil(err)
  end)

  it("returns 128 + N for a child killed by signal N", function()
    local p = ex:exec({ "sleep", "30" })
    p:start()
    assert.same({ true, nil }, { p:signal(15) })
    assert.equals(143, p:wait())
    p = ex:exec({ "sleep", "30" })
    p:start()
    p:signal(9)
    assert.equals(137, p:wait())
  end)

  it("returns nil and a message when not started, and never raises", function()
    local p = ex:exec("true")
    local code, err = p:wait()
    assert.is_nil(code)
    assert.matches("not started", err)
    code, err = p.wait("not a process")
    assert.is_nil(code)
    assert.matches("process", err)
    code, err = p.wait()
    assert.is_nil(code)
    assert.is_string(err)
  end)

  it("returns the same code when called again", function()
    local p = ex:exec("exit 7")
    p:start()
    assert.equals(7, p:wait())
    assert.equals(7, p:wait())
  end)

  it("returns the same code to several coroutines waiting at once", function()
    local p = ex:exec("sleep 0.2; exit 5")
    p:start()
    local results = exec.channel.new(3)
    for _ = 1, 3 do
      exec.spawn(function() results:send(p:wait()) end)
    end
    assert.equals(5, p:wait())
    for _ = 1, 3 do assert.equals(5, (results:receive())) end
  end)

  it("wakes other waiters when one of them reaps the child (no lost wake-up)", function()
    -- The task waits on the exit; the child then exits while no loop runs,
    -- and the main chunk reaps it. The task must still be woken. Run in a
    -- separate interpreter under `timeout`: the failure mode is a hang.
    local script = [[
      local exec = require("exec")
      local p = exec.get("process:native"):exec("sleep 0.1; exit 4")
      p:start()
      local got
      exec.spawn(function() got = p:wait() end)
      exec.time.sleep(0.02)
      os.execute("sleep 0.3")
      local main = p:wait()
      exec.wait_tasks()
      print("main=" .. tostring(main) .. " task=" .. tostring(got))
    ]]
    for _, prefix in ipairs({ "timeout 10 ", "LUA_EXEC_NO_PIDFD=1 timeout 10 " }) do
      local out, status = H.run_script(script, prefix)
      assert.equals(0, status, prefix .. out)
      assert.matches("main=4 task=4", out)
    end
  end)

  it("returns nil and a message after close()", function()
    local p = ex:exec("sleep 5")
    p:start()
    p:close()
    local code, err = p:wait()
    assert.is_nil(code)
    assert.matches("closed", err)
  end)

  it("wakes a waiter when another coroutine closes the handle", function()
    local p = ex:exec("sleep 30")
    p:start()
    local got = exec.channel.new(1)
    exec.spawn(function() got:send({ p:wait() }) end)
    exec.spawn(function() exec.time.sleep(0.05); p:close(true) end)
    local r = got:receive()
    assert.is_nil(r[1])
    assert.matches("closed", r[2])
  end)

  it("closes the handle: streams, stdin, signal and start refuse afterwards", function()
    local p = ex:exec("true")
    p:start()
    p:wait()
    assert.has_error(function() p:stdout_stream() end)
    assert.has_error(function() p:stderr_stream() end)
    local ok, err = p:write_stdin("x")
    assert.is_nil(ok)
    assert.matches("closed", err)
    ok, err = p:signal(15)
    assert.is_nil(ok)
    assert.is_string(err)
    assert.has_error(function() p:start() end)
  end)
end)

describe("methods called on the wrong object", function()
  it("raise, naming self", function()
    local p = ex:exec("true")
    for _, name in ipairs({ "start", "signal", "close", "stdout_stream", "stderr_stream", "write_stdin", "close_stdin", "pid" }) do
      local ok, err = pcall(p[name], ex)
      assert.is_false(ok, name)
      assert.matches("self", err)
      ok, err = pcall(p[name])
      assert.is_false(ok, name)
      assert.matches("self", err)
    end
    local ok, err = pcall(ex.exec, p, "true")
    assert.is_false(ok)
    assert.matches("self", err)
  end)
end)

-- Run `body` under a time limit; it must print OK at its end.
local function passes(body, limit)
  local out, status = H.script(body .. "\nprint('OK')\n", limit or 20)
  assert.equals(0, status, out)
  assert.matches("OK\n$", out)
  return out
end

describe("process:status()", function()
  it("tells created, running, an exit and a signal apart (exit 143 is not SIGTERM)", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("sleep 0.3; exit 143")
      local s, n = p:status()
      assert(s == "created" and n == nil, tostring(s))
      p:start()
      s, n = p:status()
      assert(s == "running" and n == nil, tostring(s))
      assert(p:wait() == 143)
      s, n = p:status()
      assert(s == "exited" and n == 143, tostring(s) .. " " .. tostring(n))
      local q = ex:exec({ "sleep", "5" })
      q:start()
      assert(q:signal("TERM"))
      assert(q:wait() == 143, "wait() keeps the shell's 128 + N")
      s, n = q:status()
      assert(s == "signaled" and n == 15, tostring(s) .. " " .. tostring(n))
    ]])
  end)

  it("sees an exit without wait() (as Python's poll() does), and wait() still answers", function()
    passes([[
      local p = exec.get("process:native"):exec("exit 4")
      p:start()
      local t0 = time.now()
      while p:status() == "running" and time.now() - t0 < 5 do time.sleep(0.01) end
      local s, n = p:status()
      assert(s == "exited" and n == 4, tostring(s) .. " " .. tostring(n))
      assert(p:wait() == 4)
    ]])
  end)

  it("after close(): how the child that was told to stop ended", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec({ "sleep", "5" })
      p:start()
      p:close()
      local t0 = time.now()
      local s, n = p:status()
      while s == "closed" and time.now() - t0 < 5 do
        time.sleep(0.01)
        s, n = p:status()
      end
      assert(s == "signaled" and n == 15, tostring(s) .. " " .. tostring(n))
      -- A child that had exited before close(), never asked about.
      local q = ex:exec("exit 6")
      q:start()
      time.sleep(0.3)
      q:close()
      s, n = q:status()
      assert(s == "exited" and n == 6, tostring(s) .. " " .. tostring(n))
      -- Closed before it was started.
      local r = ex:exec("true")
      r:close()
      assert(r:status() == "closed")
    ]])
  end)
end)
