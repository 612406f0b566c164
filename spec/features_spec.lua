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

describe("process:close(signal)", function()
  it("sends the signal given by name or number, then SIGKILL after the grace period", function()
    passes([[
      local ex = exec.get("process:native")
      local function ended(how)
        local p = ex:exec({ "sleep", "5" })
        p:start()
        p:close(how)
        local t0 = time.now()
        local s, n = p:status()
        while s == "closed" and time.now() - t0 < 5 do
          time.sleep(0.01)
          s, n = p:status()
        end
        return s .. " " .. tostring(n)
      end
      assert(ended("INT") == "signaled 2", ended("INT"))
      assert(ended("SIGHUP") == "signaled 1")
      assert(ended(10) == "signaled 10")
      assert(ended(true) == "signaled 9")
      assert(ended(false) == "signaled 15")
      assert(ended(nil) == "signaled 15")
      -- A child that ignores the signal still ends: SIGKILL after the grace.
      local p = ex:exec("trap '' INT; sleep 30")
      p:start()
      time.sleep(0.1)
      p:close("INT")
      local t0 = time.now()
      while p:status() == "closed" and time.now() - t0 < 5 do time.sleep(0.02) end
      local s, n = p:status()
      assert(s == "signaled" and n == 9, s .. " " .. tostring(n))
    ]])
  end)

  it("refuses unknown names and other types", function()
    local p = H.native:exec("true")
    assert.has_error(function() p:close("BOGUS") end,
      "bad argument #1 (force_stop) to 'process:close': unknown signal name 'BOGUS'")
    assert.has_error(function() p:close({}) end,
      "bad argument #1 (force_stop) to 'process:close': boolean, signal number or signal name expected, got table")
    assert.has_error(function() p:close(0) end,
      "bad argument #1 (force_stop) to 'process:close': invalid signal number 0")
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
    assert.has_error(function() s:lines(-1) end,
      "bad argument #1 (fmt) to 'stream:lines': must be a whole number >= 0 (got -1)")
    p:wait()
  end)
end)

describe("run's stdin", function()
  it("is /dev/null without input, a pipe with it, and what the caller sets otherwise", function()
    local probe = { "sh", "-c", "readlink /proc/self/fd/0; cat" }
    local r = H.exec.run(probe)
    assert.equals("/dev/null\n", r.stdout)
    r = H.exec.run(probe, { input = "in\n" })
    assert.matches("^pipe:%[%d+%]\nin\n$", r.stdout)
    r = H.exec.run(probe, { input = "" })
    assert.matches("^pipe:%[%d+%]\n$", r.stdout)
    local path = H.tmpname(".txt")
    H.write_file(path, "from file\n")
    r = H.exec.run(probe, { stdin = { path = path } })
    assert.equals(path .. "\nfrom file\n", r.stdout)
    os.remove(path)
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

describe("stream:case_read for channel.select", function()
  it("a log follower: lines as they come, a deadline, a stop channel", function()
    local out = passes([[
      local p = exec.get("process:native"):exec("for i in 1 2 3; do echo line$i; sleep 0.1; done; printf 'par'; sleep 0.2; echo tial; sleep 5")
      p:start()
      local s = p:stdout_stream()
      local stop = channel.new()
      local deadline = time.after("1.5s")
      local got = {}
      while true do
        local r = channel.select({ s:case_read("l"), deadline:case_receive(), stop:case_receive() })
        if r.channel == s then
          assert(r.ok, tostring(r.err))
          got[#got + 1] = r.value
        else
          assert(r.channel == deadline, "the deadline")
          break
        end
      end
      print("GOT=" .. table.concat(got, ","))
      p:close()
    ]])
    assert.matches("GOT=line1,line2,line3,partial\n", out)
  end)

  it("ok = false at the end; chunk and 'a' cases; a stop channel wins over a silent stream", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("printf abc")
      p:start()
      local s = p:stdout_stream()
      local r = channel.select({ s:case_read("a") })
      assert(r.channel == s and r.ok and r.value == "abc", tostring(r.value))
      r = channel.select({ s:case_read() })
      assert(r.channel == s and r.ok == false and r.value == nil)
      p:wait()
      local q = ex:exec({ "sleep", "5" })
      q:start()
      local stop = channel.new(1)
      coroutine.spawn(function() time.sleep(0.1); stop:send("stop") end)
      r = channel.select({ q:stdout_stream():case_read("l"), stop:case_receive() })
      assert(r.channel == stop and r.value == "stop")
      r = channel.select({ q:stdout_stream():case_read("l"), default = true })
      assert(r.default)
      q:close()
    ]])
  end)
end)

describe("resource option queue = true", function()
  -- The queue remembers which processes hold a slot, weakly. A collected
  -- handle's process is finalized one collection before the weak table
  -- forgets it: a queued start in between must not touch it.
  it("a queued start after a holder's handle was collected", function()
    passes([[
      exec.registry.define("jobs:gc", { kind = "exec.native", max_processes = 1, queue = true })
      local ex = exec.get("jobs:gc")
      local p = ex:exec({ "sh", "-c", "trap '' TERM; sleep 5" })
      p:start()
      p = nil
      collectgarbage() -- finalizes the handle: SIGTERM (ignored), SIGKILL after the grace
      local q = ex:exec({ "true" })
      q:start() -- waits for the slot while the first child is still there
      assert(q:wait() == 0)
    ]], 20)
  end)

  it("20 jobs with 4 at a time: start() waits for a slot, first come first served", function()
    local out = passes([[
      exec.registry.define("jobs:q", { kind = "exec.native", max_processes = 4, queue = true })
      local ex = exec.get("jobs:q")
      local core = exec._internal.core
      local order, peak, running = {}, 0, true
      coroutine.spawn(function()
        while running do
          local n = core.live_children()
          if n > peak then peak = n end
          time.sleep(0.005)
        end
      end)
      local t0 = time.now()
      local jobs = {}
      for i = 1, 20 do
        jobs[i] = coroutine.spawn(function()
          local p = ex:exec({ "sleep", "0.2" })
          p:start()
          order[#order + 1] = i
          assert(p:wait() == 0)
        end)
      end
      -- (the sampler is a task too: end it once the jobs are done)
      coroutine.spawn(function()
        while #order < 20 do time.sleep(0.01) end
        time.sleep(0.3)
        running = false
      end)
      assert(exec.wait_tasks())
      print(string.format("PEAK=%d ORDER=%s TOOK=%.1f", peak, table.concat(order, ","), time.now() - t0))
    ]], 30)
    assert.matches("PEAK=4 ORDER=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20 TOOK=1%.", out)
  end)

  it("in the main chunk too, freeing slots of children that exited unwaited; without queue start() raises", function()
    passes([[
      exec.registry.define("jobs:q", { kind = "exec.native", max_processes = 2, queue = true })
      local ex = exec.get("jobs:q")
      local ps = {}
      for i = 1, 6 do
        ps[i] = ex:exec({ "sleep", "0.1" })
        ps[i]:start()
      end
      for i = 1, 6 do assert(ps[i]:wait() == 0) end
      exec.registry.define("jobs:noq", { kind = "exec.native", max_processes = 1 })
      local ex2 = exec.get("jobs:noq")
      local a = ex2:exec({ "sleep", "0.2" })
      a:start()
      local ok, err = pcall(ex2:exec({ "true" }).start, ex2:exec({ "true" }))
      assert(not ok and err:find("max_processes limit", 1, true), tostring(err))
      a:wait()
    ]])
  end)

  it("an error (Ctrl-C) between two waits of a queued start gives up its turn", function()
    -- The error is raised from a hook when the queue looks for room the
    -- second time (right after the caller joined it, before any wait):
    -- outside any waiter, where nothing else could notice it.
    local out = passes([[
      exec.registry.define("jobs:q", { kind = "exec.native", max_processes = 1, queue = true })
      local ex = exec.get("jobs:q")
      local a = ex:exec({ "sleep", "0.3" })
      a:start()
      local looks = 0
      debug.sethook(function()
        local info = debug.getinfo(2, "nS")
        if info.name == "room" and info.source:find("lua/exec/slots", 1, true) then
          looks = looks + 1
          if looks == 2 then debug.sethook(); error("interrupted!") end
        end
      end, "c")
      local ok, err = pcall(function() ex:exec({ "true" }):start() end)
      debug.sethook()
      print("FIRST=" .. tostring(ok) .. " " .. tostring(err))
      local b, done = ex:exec({ "true" }), nil
      coroutine.spawn(function() b:start(); done = b:wait() end)
      assert(a:wait() == 0)
      assert(exec.wait_tasks())
      print("NEXT=" .. tostring(done))
    ]], 15)
    assert.matches("FIRST=false [^\n]*interrupted!", out)
    assert.matches("NEXT=0", out)
  end)

  it("a queued start leaves the queue when its task ends (closed, or an error)", function()
    passes([[
      exec.registry.define("jobs:q", { kind = "exec.native", max_processes = 1, queue = true })
      local ex = exec.get("jobs:q")
      local a = ex:exec({ "sleep", "0.3" })
      a:start()
      local waiting = coroutine.spawn(function() ex:exec({ "true" }):start() end)
      time.sleep(0.05)
      if coroutine.close then coroutine.close(waiting) end
      local b = ex:exec({ "true" })
      local done
      coroutine.spawn(function() b:start(); done = b:wait() end)
      a:wait()
      assert(exec.wait_tasks())
      assert(done == 0, tostring(done))
    ]])
  end)
end)

describe("stdin, stdout and stderr from files", function()
  it("a Lua file handle (flushed first) and { path =, append = }", function()
    local path = H.tmpname(".log")
    local f = assert(io.open(path, "w"))
    f:write("header\n")
    assert.equals(0, H.exec.run("echo child; echo err >&2", { stdout = f, stderr = "stdout" }).code)
    f:write("footer\n")
    f:close()
    assert.equals("header\nchild\nerr\nfooter\n", H.read_file(path))
    H.exec.run("echo more", { stdout = { path = path, append = true } })
    assert.equals("header\nchild\nerr\nfooter\nmore\n", H.read_file(path))
    assert.equals("header\nchild\nerr\nfooter\nmore\n", H.exec.run({ "cat" }, { stdin = { path = path } }).stdout)
    H.exec.run("echo new", { stdout = { path = path } })
    assert.equals("new\n", H.read_file(path))
    local r = assert(io.open(path))
    assert.equals("new\n", H.exec.run({ "cat" }, { stdin = r }).stdout)
    r:close()
    os.remove(path)
  end)

  it("errors name the path or say what is wrong with the value", function()
    local function err_of(opts)
      local ok, e = pcall(H.exec.run, "true", opts)
      assert.is_false(ok)
      return e
    end
    assert.matches("exec.run: stdout: cannot open '/no/such/dir/x.log': No such file or directory",
      err_of({ stdout = { path = "/no/such/dir/x.log" } }))
    assert.matches("exec.run: stdin: cannot open '/no/such/input': No such file or directory",
      err_of({ stdin = { path = "/no/such/input" } }))
    assert.matches("bad argument #2 %(options%) to 'exec.run': option stdin: append is for stdout and stderr",
      err_of({ stdin = { path = "/dev/null", append = true } }))
    assert.matches("option stdout: unknown field 'pth'", err_of({ stdout = { pth = "x" } }))
    assert.matches("option stdout: a table needs a path", err_of({ stdout = {} }))
    local f = io.open(H.tmpname(".x"), "w")
    f:close()
    assert.matches("option stdout: the file is closed", err_of({ stdout = f }))
    assert.matches("option stderr must be a string, a file or a table %(got boolean%)", err_of({ stderr = true }))
  end)
end)

describe("pipelines: stdin = another process's stdout stream", function()
  it("seq 1 1000000 | grep 7 | wc -l equals the shell's answer, with no copy through Lua", function()
    local ex = H.native
    local a = ex:exec({ "seq", "1", "1000000" })
    a:start()
    local b = ex:exec({ "grep", "7" }, { stdin = a:stdout_stream() })
    b:start()
    local c = ex:exec({ "wc", "-l" }, { stdin = b:stdout_stream() })
    c:start()
    local n = c:stdout_stream():read("a")
    assert.equals(0, a:wait())
    assert.equals(0, b:wait())
    assert.equals(0, c:wait())
    local p = io.popen("seq 1 1000000 | grep 7 | wc -l")
    local want = p:read("*a")
    p:close()
    assert.equals(want, n)
  end)

  it("the handed stream says so; a stream already read from cannot be handed over", function()
    local ex = H.native
    local a = ex:exec("echo one; echo two")
    a:start()
    local s = a:stdout_stream()
    local b = ex:exec({ "cat" }, { stdin = s })
    b:start()
    local v, err = s:read()
    assert.is_nil(v)
    assert.equals("stream:read: handed to another process", err)
    assert.equals("one\ntwo\n", b:stdout_stream():read("a"))
    a:wait()
    b:wait()
    local c = ex:exec("echo x; echo y")
    c:start()
    local cs = c:stdout_stream()
    assert.equals("x", cs:read("l"))
    local ok, e = pcall(ex.exec, ex, { "cat" }, { stdin = cs })
    assert.is_false(ok)
    assert.matches("option stdin: the stream cannot be handed over: it was read from already", e)
    assert.equals("y", cs:read("l"), "nothing was taken from it")
    c:wait()
    local ok2, e2 = pcall(ex.exec, ex, { "cat" }, { stdout = cs })
    assert.is_false(ok2)
    assert.matches("only stdin can take another process's output stream", e2)
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

describe("pty = true", function()
  -- Read the terminal until `pattern` shows up (or `secs` pass).
  local prelude = [[
    local function reader(s)
      local seen = ""
      return function(pattern, secs)
        local deadline = time.now() + (secs or 10)
        while not seen:find(pattern) do
          local left = deadline - time.now()
          if left <= 0 then error("no " .. pattern .. " in: " .. seen:gsub("\r", "\\r"), 2) end
          local chunk, err = s:read(nil, left)
          if chunk then seen = seen .. chunk
          elseif err ~= "timeout" then error("end before " .. pattern .. ": " .. seen:gsub("\r", "\\r"), 2) end
        end
        return seen
      end
    end
  ]]

  it("drives an interactive sh: a terminal of its own, typed input, resize", function()
    passes(prelude .. [[
      local p = exec.get("process:native"):exec({ "sh", "-i" }, { pty = { rows = 30, cols = 100 } })
      p:start()
      local expect = reader(p:stdout_stream())
      p:write_stdin("echo $((6*7))\n")
      expect("42\r\n")
      -- (the marker is computed: the terminal echoes the typed line too)
      p:write_stdin("tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo ALL-TTY-$((1+1))\n")
      local seen = expect("ALL%-TTY%-2\r\n")
      assert(seen:find("/dev/pts/%d+\r\n30 100\r\n"), seen)
      assert(p:resize(40, 120))
      p:write_stdin("stty size\n")
      expect("40 120\r\n")
      p:write_stdin("exit 3\n")
      assert(p:wait() == 3)
    ]], 30)
  end)

  it("drives python3 -i; the child leads its session, with the size asked for", function()
    passes(prelude .. [[
      local ex = exec.get("process:native")
      local q = ex:exec({ "python3", "-c",
        "import os; print(os.isatty(0), os.isatty(1), os.isatty(2), os.get_terminal_size(), os.getsid(0) == os.getpid())" },
        { pty = { rows = 30, cols = 100 } })
      q:start()
      local out = q:stdout_stream():read("a")
      assert(out == "True True True os.terminal_size(columns=100, lines=30) True\r\n", out)
      assert(q:wait() == 0)
      local p = ex:exec({ "python3", "-i", "-q" }, { pty = true })
      p:start()
      local expect = reader(p:stdout_stream())
      expect(">>> ")
      p:write_stdin("6 * 7\n")
      expect("\r\n42\r\n>>> ")
      p:write_stdin("import sys; sys.exit(5)\n")
      assert(p:wait() == 5)
    ]], 30)
  end)

  it("close_stdin types end-of-file; stderr is the terminal; conflicting options raise", function()
    local ex = H.native
    local c = ex:exec({ "cat" }, { pty = true })
    c:start()
    local s = c:stdout_stream()
    assert.has_error(function() c:stderr_stream() end,
      "process:stderr_stream: stderr goes to the terminal with pty: read it from stdout_stream()")
    c:write_stdin("hello\n")
    assert(c:close_stdin())
    assert.equals(0, c:wait())
    assert.equals("hello\r\nhello\r\n", s:read("a"))
    local ok, err = pcall(ex.exec, ex, "true", { pty = true, stdout = "null" })
    assert.is_false(ok)
    assert.matches("pty replaces stdin, stdout and stderr: leave those options unset", err)
    ok, err = pcall(ex.exec, ex, "true", { pty = { rows = 0 } })
    assert.is_false(ok)
    assert.matches("bad argument #2 %(options%) to 'executor:exec': option pty: rows must be a whole number from 1 to 65535 %(got 0%)", err)
    ok, err = pcall(ex.exec, ex, "true", { pty = "yes" })
    assert.is_false(ok)
    assert.matches("option pty must be true or { rows =, cols = } %(got string%)", err)
    local plain = ex:exec({ "sleep", "5" })
    plain:start()
    local r, rerr = plain:resize(10, 10)
    assert.is_nil(r)
    assert.equals("process:resize: the process has no terminal (start it with pty = true)", rerr)
    assert.has_error(function() plain:resize(0, 10) end,
      "bad argument #1 (rows) to 'process:resize': whole number from 1 to 65535 expected, got 0")
    plain:close()
  end)
end)
