local H = require("spec.helper")
local exec = H.exec
local ex = H.native

describe("commands", function()
  it("runs a string command through /bin/sh -c, exactly as typed", function()
    local out, _, code = H.run("X=4; echo $((X + 1)) && echo second")
    assert.equals("5\nsecond\n", out)
    assert.equals(0, code)
  end)

  it("starts an unknown command through the shell and wait() returns 127", function()
    local p = ex:exec("non_existent_command_xyz")
    p:start()
    assert.equals(127, p:wait())
  end)

  it("runs a table command directly, with no shell and no quoting", function()
    local out = H.run({ "printf", "[%s]", "a b", "$HOME", "'q'", "*" })
    assert.equals("[a b][$HOME]['q'][*]", out)
  end)

  it("looks a bare program up in the PATH the child will see", function()
    local out = H.run({ "echo", "found" }, { env = { PATH = "/nonexistent:/bin:/usr/bin" } })
    assert.equals("found\n", out)
    local p = ex:exec({ "echo", "x" }, { env = { PATH = "/nonexistent" } })
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("'echo' not found", err)
  end)

  it("raises at start when the program cannot be found or run, naming it", function()
    local p = ex:exec({ "no-such-program-xyz", "arg" })
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("no%-such%-program%-xyz", err)
    assert.matches("No such file or directory", err)
    local path = H.tmpname(".txt") -- created without any execute bit
    H.write_file(path, "not a program\n")
    p = ex:exec({ path })
    ok, err = pcall(p.start, p)
    os.remove(path)
    assert.is_false(ok)
    assert.matches(path, err, 1, true)
    assert.matches("Permission denied", err)
  end)

  it("raises at exec for empty, NUL-holding or mistyped commands", function()
    local cases = { "", {}, "echo a\0b", { "echo", "a\0" }, 42, true, { "echo", true }, { "", "x" },
                    { [1] = "echo", [3] = "x" }, { "echo", x = 1 } }
    for i, cmd in ipairs(cases) do
      local ok, err = pcall(ex.exec, ex, cmd)
      assert.is_false(ok, "case " .. i)
      assert.matches("command", err)
      assert.matches("executor:exec", err)
    end
    local ok, err = pcall(ex.exec, ex)
    assert.is_false(ok)
    assert.matches("command", err)
  end)
end)

describe("options", function()
  it("raises for unknown option names, naming them", function()
    local ok, err = pcall(ex.exec, ex, "true", { workdir = "/tmp" })
    assert.is_false(ok)
    assert.matches("unknown option 'workdir'", err)
    assert.matches("work_dir", err)
  end)

  it("raises for options of the wrong type", function()
    for _, opts in ipairs({ { work_dir = 1 }, { env = "A=1" }, { process_group = "yes" }, "x" }) do
      local ok, err = pcall(ex.exec, ex, "true", opts)
      assert.is_false(ok)
      assert.matches("options", err)
    end
  end)

  it("checks env keys and values", function()
    for _, env in ipairs({ { [""] = "x" }, { ["A=B"] = "x" }, { A = {} }, { A = true }, { ["A\0"] = "x" }, { A = "x\0" } }) do
      local ok, err = pcall(ex.exec, ex, "true", { env = env })
      assert.is_false(ok)
      assert.matches("env", err)
    end
  end)

  -- The command and option checks live in Rust (src/binding/convert.rs);
  -- these pin their messages and the argument each is about.
  it("names what is wrong in the command or an option, as the bad argument", function()
    local cmd = "bad argument #1 (command) to 'executor:exec': "
    local opt = "bad argument #2 (options) to 'executor:exec': "
    local cases = {
      { "", nil, cmd .. "must not be empty" },
      { "a\0b", nil, cmd .. "contains a NUL byte" },
      { {}, nil, cmd .. "must not be an empty table" },
      { { "" }, nil, cmd .. "command[1] (the program) must not be empty" },
      { { "ls", true }, nil, cmd .. "command[2] must be a string or a number (got boolean)" },
      { { "ls", "a\0" }, nil, cmd .. "command[2] contains a NUL byte" },
      { { "ls", n = 1 }, nil, cmd .. "must be a list of strings (found key n)" },
      { true, nil, cmd .. "string or table of strings expected, got boolean" },
      { "true", 5, opt .. "table expected, got number" },
      { "true", { cwd = "/" }, opt .. "unknown option 'cwd' (did you mean 'work_dir'?)" },
      { "true", { [1] = "x" }, opt .. "unknown option '1'" },
      { "true", { input = "x" }, opt .. "unknown option 'input'" }, -- run's, not exec's
      { "true", { detach = 1 }, opt .. "option detach must be a boolean (got number)" },
      { "true", { env = { [""] = "x" } }, opt .. "env has an empty variable name" },
      { "true", { env = { ["A=B"] = "x" } }, opt .. "env variable name 'A=B' contains '='" },
      { "true", { env = { ["A\0"] = "x" } }, opt .. "env variable name contains a NUL byte" },
      { "true", { env = { A = "x\0" } }, opt .. "env value of 'A' contains a NUL byte" },
      { "true", { env = { A = true } }, opt .. "env value of 'A' must be a string or a number (got boolean)" },
      { "true", { env = { [true] = "x" } }, opt .. "env variable names must be strings (got boolean)" },
      { "true", { timeout = "soon" }, opt .. "option timeout: invalid duration 'soon'" },
      -- numbers are shown as tostring shows them
      { "true", { buffer_limit = 1e300 }, opt .. "option buffer_limit must be a whole number of bytes >= 1 (got " .. tostring(1e300) .. ")" },
      { { "ls", [2.5] = "x" }, nil, cmd .. "must be a list of strings (found key " .. tostring(2.5) .. ")" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(ex.exec, ex, c[1], c[2])
      assert.is_false(ok)
      assert.is_truthy(err:find(c[3], 1, true), err)
      assert.is_truthy(err:find("^spec/process_spec.lua:%d+: "), err) -- at the caller's line
    end
  end)

  it("checks run's own options with the others, and leaves the caller's table as it was", function()
    local run = "bad argument #2 (options) to 'exec.run': "
    for _, c in ipairs({
      { { input = 5 }, "option input must be a string (got number)" },
      { { check = "yes" }, "option check must be a boolean (got string)" },
      { { workdir = "/" }, "unknown option 'workdir' (did you mean 'work_dir'?)" },
    }) do
      local ok, err = pcall(exec.run, "true", c[1])
      assert.is_false(ok)
      assert.is_truthy(err:find(run .. c[2], 1, true), err)
    end
    local opts = { input = "a\n", check = true, timeout = "5s", env = { X = 1 } }
    local r = exec.run({ "sh", "-c", "cat; echo $X" }, opts)
    assert.equals("a\n1\n", r.stdout)
    assert.same({ input = "a\n", check = true, timeout = "5s", env = { X = 1 } }, opts)
  end)

  it("converts numbers in env to strings as tostring does", function()
    local r = exec.run({ "/usr/bin/env" }, { env = { F = 2.0, E = 1e300 } })
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "E=" .. tostring(1e300), "F=" .. tostring(2.0) }, lines)
  end)

  it("converts numbers in argument lists and command_whitelist entries as tostring does", function()
    local r = exec.run({ "echo", 1, 2.5, -3, 2.0 })
    assert.equals(table.concat({ "1", "2.5", "-3", tostring(2.0) }, " ") .. "\n", r.stdout)
    exec.registry.define("numbers:wl", { kind = "exec.native", command_whitelist = { "sleep 0", 7 } })
    local p = exec.get("numbers:wl"):exec({ "sleep", 0 })
    p:start()
    assert.equals(0, p:wait())
  end)

  it("converts numbers in env to strings and does not inherit the parent's env", function()
    local out = H.run({ "/usr/bin/env" }, { env = { N = 42, F = 1.5 } })
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "F=1.5", "N=42" }, lines)
  end)

  it("runs in work_dir, and raises at start naming a work_dir that does not exist", function()
    assert.equals("/tmp\n", (H.run("pwd", { work_dir = "/tmp" })))
    local p = ex:exec("pwd", { work_dir = "/no/such/dir" })
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("/no/such/dir", err)
    assert.matches("No such file or directory", err)
  end)
end)

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

describe("process:signal", function()
  it("returns nil and a message before start, after the end, and for invalid numbers", function()
    local p = ex:exec("sleep 5")
    local ok, err = p:signal(15)
    assert.is_nil(ok)
    assert.matches("not started", err)
    p:start()
    for _, n in ipairs({ 0, -1, 65, 1.5, 1e300, 0 / 0 }) do
      ok, err = p:signal(n)
      assert.is_nil(ok)
      assert.matches("invalid signal number", err)
    end
    assert.is_true((p:signal(9)))
    p:wait()
    ok, err = p:signal(9)
    assert.is_nil(ok)
    assert.is_string(err)
  end)

  it("reports a child that exited but was not yet waited for as finished", function()
    local p = ex:exec("true")
    p:start()
    exec.time.sleep(0.2)
    -- The child is a zombie until wait(): kill() would accept it, but the
    -- process has finished, and wait() still gets its code.
    local ok, err = p:signal(15)
    assert.is_nil(ok)
    assert.matches("already finished", err)
    assert.equals(0, p:wait())
  end)

  it("raises for a signal that is neither a number nor a known name, naming it", function()
    local p = ex:exec("true")
    p:start()
    local ok, err = pcall(p.signal, p, {})
    assert.is_false(ok)
    assert.matches("signal_number", err)
    ok, err = pcall(p.signal, p, "NOPE")
    assert.is_false(ok)
    assert.is_truthy(err:find("unknown signal name 'NOPE'", 1, true), err)
    p:wait()
  end)

  it("accepts signal names (TERM, SIGTERM, term); exec.signals maps names to numbers", function()
    assert.equals(15, exec.signals.TERM)
    assert.equals(9, exec.signals.KILL)
    for _, name in ipairs({ "TERM", "SIGTERM", "term" }) do
      local p = ex:exec({ "sleep", "30" })
      p:start()
      assert.is_true(p:signal(name))
      assert.equals(143, p:wait())
    end
    exec.signals.TERM = 9 -- a copy: the library does not read it
    local p = ex:exec({ "sleep", "30" })
    p:start()
    p:signal("TERM")
    assert.equals(143, p:wait())
    exec.signals.TERM = 15
  end)
end)

describe("process:close", function()
  it("returns true, is idempotent, and ends a running child", function()
    local p = ex:exec({ "sleep", "30" })
    p:start()
    local pid = p:pid()
    assert.is_true(p:close())
    assert.is_true(p:close())
    assert.is_true(p:close(true))
    assert.is_true(H.gone(pid))
  end)

  it("works on a process never started and after wait", function()
    assert.is_true(ex:exec("true"):close())
    local p = ex:exec("true")
    p:start()
    p:wait()
    assert.is_true(p:close())
  end)

  it("kills a child that ignores SIGTERM after a grace period", function()
    local p = ex:exec("trap '' TERM; echo ready; while :; do sleep 0.05; done")
    p:start()
    assert.equals("ready\n", p:stdout_stream():read())
    local pid = p:pid()
    p:close()
    assert.is_true(H.gone(pid, 10))
  end)

  it("with force sends SIGKILL at once", function()
    local p = ex:exec("trap '' TERM; echo ready; while :; do sleep 0.05; done")
    p:start()
    assert.equals("ready\n", p:stdout_stream():read())
    local pid = p:pid()
    p:close(true)
    assert.is_true(H.gone(pid, 0.5))
  end)

  it("raises for a force_stop that is not a boolean", function()
    local p = ex:exec("true")
    local ok, err = pcall(p.close, p, "yes")
    assert.is_false(ok)
    assert.matches("force_stop", err)
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
