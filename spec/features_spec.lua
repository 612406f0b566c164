-- What users of Python's subprocess, vim.system and luv reach for: how a
-- process ended, reads with a deadline, lines with their newline, run with
-- check, task failures reported by wait_tasks, errors at the caller's line.
-- Cases that wait on children run in a fresh interpreter under a time
-- limit (H.script), so that a regression fails instead of hanging.
local H = require("spec.helper")

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

describe("stream:read(fmt, timeout)", function()
  it("returns nil, 'timeout' and keeps a partial line for the next read", function()
    passes([[
      local p = exec.get("process:native"):exec("printf abc; sleep 0.6; printf 'def\\nrest'")
      p:start()
      local s = p:stdout_stream()
      local t0 = time.now()
      local v, e = s:read("l", 0.2)
      assert(v == nil and e == "timeout", tostring(v) .. " " .. tostring(e))
      local waited = time.now() - t0
      assert(waited >= 0.15 and waited < 0.5, "waited " .. waited)
      assert(s:read("l") == "abcdef")
      assert(s:read("a") == "rest")
      assert(p:wait() == 0)
    ]])
  end)

  it("bounds chunk, whole and L reads, in a task as in the main chunk; durations as strings", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("printf one; sleep 0.5; printf 'two\\n'")
      p:start()
      local s = p:stdout_stream()
      local v, e = s:read("a", "100ms")
      assert(v == nil and e == "timeout", tostring(v))
      assert(s:read("L") == "onetwo\n")
      local got = {}
      coroutine.spawn(function()
        local q = ex:exec("sleep 0.4; echo late")
        q:start()
        local qs = q:stdout_stream()
        got[1], got[2] = qs:read(nil, 0.05)
        got[3] = qs:read()
        q:wait()
      end)
      assert(exec.wait_tasks())
      assert(got[1] == nil and got[2] == "timeout" and got[3] == "late\n", tostring(got[3]))
      assert(p:wait() == 0)
    ]])
  end)

  it("a bad timeout is an argument error", function()
    local p = H.native:exec("echo hi")
    p:start()
    local s = p:stdout_stream()
    local ok, err = pcall(s.read, s, "l", "soon")
    assert.is_false(ok)
    assert.matches("bad argument #2 %(timeout%) to 'stream:read': invalid duration 'soon'", err)
    assert.equals("hi", s:read("l"))
    p:wait()
  end)
end)

describe("stream:lines(fmt)", function()
  it("'L' keeps the newlines and a number gives chunks, as file:lines does", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("printf 'a\\nb\\nc'")
      p:start()
      local got = {}
      for l in p:stdout_stream():lines("L") do got[#got + 1] = l end
      assert(table.concat(got, "|") == "a\n|b\n|c", table.concat(got, "|"))
      p:wait()
      p = ex:exec("printf abcdefg")
      p:start()
      got = {}
      for c in p:stdout_stream():lines(3) do
        assert(#c <= 3, c)
        got[#got + 1] = c
      end
      assert(table.concat(got) == "abcdefg")
      p:wait()
    ]])
  end)

  it("refuses 'a' (it would never end) and nonsense", function()
    local p = H.native:exec("true")
    p:start()
    local s = p:stdout_stream()
    assert.has_error(function() s:lines("a") end,
      "bad argument #1 (fmt) to 'stream:lines': invalid format 'a' (use \"l\", \"L\" or a size)")
    assert.has_error(function() s:lines(0) end,
      "bad argument #1 (fmt) to 'stream:lines': must be a whole number >= 1 (got 0)")
    p:wait()
  end)
end)

describe("run with check = true", function()
  it("raises on a non-zero exit, quoting the last lines of stderr, with the result on the error", function()
    local ok, e = pcall(H.exec.run, "echo out; for i in 1 2 3 4 5 6 7; do echo e$i >&2; done; exit 3", { check = true })
    assert.is_false(ok)
    assert.equals("table", type(e))
    assert.equals("exec.run: 'echo out; for i in 1 2 3 4 5 6 7; do echo e$i >&2; done; exit 3' exited with 3: e3\ne4\ne5\ne6\ne7",
      tostring(e))
    assert.equals(3, e.code)
    assert.equals("out\n", e.stdout)
    assert.equals("e1\ne2\ne3\ne4\ne5\ne6\ne7\n", e.stderr)
    assert.is_false(e.timed_out)
    assert.equals("exec.run_error", getmetatable(e))
  end)

  it("names the command as the caller wrote it, for executor:run and argv", function()
    local ok, e = pcall(H.native.run, H.native, { "sh", "-c", "exit 2" }, { check = true })
    assert.is_false(ok)
    assert.equals("executor:run: 'sh -c exit 2' exited with 2", tostring(e))
  end)

  it("returns the result as usual when the command succeeds; says when it timed out", function()
    assert.equals("hi\n", H.exec.run("echo hi", { check = true }).stdout)
    local ok, e = pcall(H.exec.run, "sleep 5", { check = true, timeout = 0.2 })
    assert.is_false(ok)
    assert.matches("exited with 143 %(timed out%)$", tostring(e))
    assert.is_true(e.timed_out)
  end)

  it("check must be a boolean", function()
    assert.has_error(function() H.exec.run("true", { check = 1 }) end,
      "bad argument #2 (options) to 'exec.run': option check must be a boolean (got number)")
  end)
end)

describe("exec.wait_tasks()", function()
  it("returns nil and a message naming every task that failed since the last call", function()
    local out = passes([[
      coroutine.spawn(function() error("boom") end)
      coroutine.spawn(function() time.sleep(0.01) end)
      coroutine.spawn(function() time.sleep(0.02); error({}) end)
      local ok, msg = exec.wait_tasks()
      assert(ok == nil, "expected a failure")
      print("MSG=" .. msg)
      assert(exec.wait_tasks() == true, "reported once")
    ]])
    assert.matches("MSG=2 tasks failed: task defined at [^\n]-:4: [^\n]-:4: boom; task defined at [^\n]-:6: table: ", out)
  end)
end)

describe("argument errors point at the caller's line", function()
  it("for nested checks too, with one location prefix", function()
    local cases = {
      { function() H.exec.run("") end, "bad argument #1 (command) to 'exec.run': must not be empty" },
      { function() H.exec.run("true", { timeout = "abc" }) end,
        "bad argument #2 (options) to 'exec.run': option timeout: invalid duration 'abc'" },
      { function() H.native:exec("true", { stdout = "file" }) end,
        "bad argument #2 (options) to 'executor:exec': option stdout must be" },
      { function() H.exec.time.sleep("x") end, "time.sleep: invalid duration 'x'" },
      { function() H.exec.channel.new(-1) end, "channel.new: size must be a whole number >= 0 (got -1)" },
      { function() H.exec.run("true", 5) end, "bad argument #2 (options) to 'exec.run': table expected, got number" },
      { function() H.exec.run({ "no-such-program-here" }) end, "exec.run: program 'no-such-program-here' not found" },
    }
    for _, c in ipairs(cases) do
      local info = debug.getinfo(c[1], "S")
      local ok, err = pcall(c[1])
      assert.is_false(ok)
      -- The case's own line in this file, and nothing of the library's.
      local where = info.short_src .. ":" .. info.linedefined .. ": "
      assert.equals(where .. c[2], err:sub(1, #where + #c[2]))
      assert.is_nil(err:find("lua/exec/", 1, true), err)
    end
  end)

  it("messages show option values as the caller wrote them", function()
    local p = H.native:exec("true", { stdout = "null", stdin = "null" })
    p:start()
    assert.has_error(function() p:stdout_stream() end)
    local ok, err = pcall(p.stdout_stream, p)
    assert.is_false(ok)
    assert.matches('stdout is not a pipe %(it was set to "null"%)', err)
    local _, werr = p:write_stdin("x")
    assert.matches('stdin is not a pipe %(it was set to "null"%)', werr)
    p:wait()
  end)
end)
