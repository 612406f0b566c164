-- stdout_stream() and stderr_stream() before start(), as code written for
-- Wippy takes them: the same objects afterwards, reads that wait for the
-- start (or say at once that nothing can start it), a start that fails or
-- a close first. Every case that waits runs in a fresh interpreter under a
-- time limit (H.script).
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

local passes = H.passes

describe("streams taken before start()", function()
  it("are the same objects after start() as before", function()
    local p = ex:exec("echo hi; echo err >&2")
    local out, err = p:stdout_stream(), p:stderr_stream()
    assert.equals("exec.stream(not started)", tostring(out))
    p:start()
    assert.equals(out, p:stdout_stream())
    assert.equals(err, p:stderr_stream())
    assert.equals("exec.stream(open)", tostring(out))
    assert.equals("hi\n", out:read("a"))
    assert.equals("err\n", err:read("a"))
    assert.equals(0, p:wait())
  end)

  it("read with nothing else running that could start the process: says so at once", function()
    local out = passes([=[
      local p = exec.get("process:native"):exec("echo hi")
      local s = p:stdout_stream()
      local t0 = time.now()
      print(s:read())
      print(s:read("l"))
      print(s:case_read() ~= nil)
      local ok, e = pcall(function() for l in s:lines() do end end)
      print(ok, (e:gsub("^[^:]*:%d+: ", ""))) -- (raised at the caller's line)
      print(s:scanner():scan())
      assert(time.now() - t0 < 1)
      p:start()
      print((s:read("a")))
      p:wait()
    ]=], 10)
    local why = "process not started (and nothing else is running that could start it)"
    local want = "nil\tstream:read: " .. why .. "\tnot_started\n"
    assert.equals(want .. want .. "true\n" ..
      "false\tstream:read: " .. why .. "\n" ..
      "false\tscanner:scan: " .. why .. "\n" ..
      "hi\n\nOK\n", out)
  end)

  it("a read waits for the start: in a task, and in the main chunk while a task will start it", function()
    passes([=[
      local p = exec.get("process:native"):exec("echo one; echo two")
      local s = p:stdout_stream()
      local got = channel.new(1)
      coroutine.spawn(function() got:send({ s:read("l") }) end)
      time.sleep(0.1)
      assert(got:len() == 0, "the task waits for the start")
      p:start()
      assert(got:receive()[1] == "one")
      assert(p:wait() == 0)

      local q = exec.get("process:native"):exec("echo late")
      local qs = q:stdout_stream()
      coroutine.spawn(function() time.sleep(0.1); q:start() end)
      local t0 = time.now()
      assert(qs:read() == "late\n")
      assert(time.now() - t0 >= 0.09)
      assert(q:wait() == 0)
    ]=])
  end)

  it("a task waiting for a start that nothing will make is a deadlock, not a hang", function()
    for _, wait in ipairs({ "s:read()", "channel.select({ s:case_read('l') })", "s:scanner('runes'):scan()" }) do
      local out = passes([=[
        local p = exec.get("process:native"):exec("echo never")
        local s = p:stdout_stream()
        coroutine.spawn(function() ]=] .. wait .. [=[ end)
        coroutine.spawn(function() channel.new():receive() end)
        local ok, err = pcall(exec.wait_tasks)
        print(ok, err)
      ]=], 10)
      assert.matches("^false\tdeadlock: [^\n]* can never finish", out)
    end
  end)

  it("outside a task, a read waits for a start only while a task is alive, whatever else is pending", function()
    local out = passes([=[
      local never = time.after("1h") -- a timer cannot start a process
      local p = exec.get("process:native"):exec("echo hi")
      local s = p:stdout_stream()
      local t0 = time.now()
      print(s:read())
      assert(time.now() - t0 < 1)
    ]=], 10)
    assert.equals("nil\tstream:read: process not started (and nothing else is running that could start it)\tnot_started\nOK\n", out)
  end)

  it("lines(), case_read() and a scanner made before start() follow it", function()
    passes([=[
      local ex = exec.get("process:native")
      local p = ex:exec("echo a; echo b")
      local it = p:stdout_stream():lines()
      local q = ex:exec("printf 'x y'")
      local scanner = q:stdout_stream():scanner("words")
      local r = ex:exec("sleep 0.2; echo r")
      local case = r:stdout_stream():case_read("l")
      local l = ex:exec("printf 'l1\\r\\nl2\\r\\nl3'")
      local lines = l:stdout_stream():scanner()
      coroutine.spawn(function()
        time.sleep(0.05); p:start(); q:start(); r:start(); l:start()
      end)
      assert(it() == "a" and it() == "b" and it() == nil)
      local got = {}
      while lines:scan() do got[#got + 1] = lines:text() end
      assert(table.concat(got, ",") == "l1,l2,l3", table.concat(got, ","))
      assert(scanner:scan() and scanner:text() == "x")
      assert(scanner:scan() and scanner:text() == "y")
      assert(scanner:scan() == false and scanner:err() == nil)
      local got = channel.select({ case, time.after("5s"):case_receive() })
      assert(got.channel == r:stdout_stream() and got.value == "r", tostring(got.value))
      assert(p:wait() == 0 and q:wait() == 0 and r:wait() == 0 and l:wait() == 0)
    ]=])
  end)

  it("wait() reads ahead what they hold, so a chatty child cannot block it", function()
    passes([=[
      local p = exec.get("process:native"):exec("head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2; echo end")
      local out, err = p:stdout_stream(), p:stderr_stream()
      p:start()
      assert(p:wait() == 0)
      assert(#H.read_all(out) == 300004)
      assert(#H.read_all(err) == 200000)
    ]=])
  end)

  it("close() before start: the reader waiting for the start is told, and so is every later read", function()
    passes([=[
      local p = exec.get("process:native"):exec("echo never")
      local s = p:stdout_stream()
      local got = channel.new(1)
      coroutine.spawn(function() got:send({ s:read() }) end)
      time.sleep(0.05)
      assert(p:close() == true)
      local r = got:receive()
      assert(r[1] == nil and r[2] == "stream:read: process was closed before it started", tostring(r[2]))
      local v, e = s:read("l")
      assert(v == nil and e == "stream:read: process was closed before it started", tostring(e))
      assert(not pcall(p.stdout_stream, p), "the handle is closed")
      assert(p:pid() == nil)
    ]=])
  end)

  it("a failed start: the waiting reader learns why", function()
    passes([=[
      local p = exec.get("process:native"):exec({ "/nonexistent/program" })
      local s = p:stdout_stream()
      local got = channel.new(1)
      coroutine.spawn(function() got:send({ s:read() }) end)
      time.sleep(0.05)
      local ok, err = pcall(p.start, p)
      assert(not ok)
      local r = got:receive()
      assert(r[1] == nil and r[2]:find("^stream:read: process did not start: .*/nonexistent/program"), tostring(r[2]))
      assert(select(2, s:read()) == r[2])
    ]=])
  end)

  it("closed before start(): closed once it starts, as after it (the writer gets SIGPIPE)", function()
    passes([=[
      local p = exec.get("process:native"):exec({ "yes" })
      local s = p:stdout_stream()
      assert(select("#", s:close()) == 2)
      assert(tostring(s) == "exec.stream(closed)")
      local v, e = s:read()
      assert(v == nil and e == "stream:read: stream is closed", tostring(e))
      p:start()
      assert(p:wait() == 128 + 13)
      v, e = s:read()
      assert(v == nil and e == "stream:read: stream is closed", tostring(e))
    ]=])
  end)

  it("are refused at once when they can never exist: stdout = \"null\", stderr with pty", function()
    local p = ex:exec("true", { stdout = "null" })
    local ok, err = pcall(p.stdout_stream, p)
    assert.is_false(ok)
    assert.matches('process:stdout_stream: stdout is not a pipe %(it was set to "null"%)', err)
    local t = ex:exec("printf hi", { pty = true })
    ok, err = pcall(t.stderr_stream, t)
    assert.is_false(ok)
    assert.matches("stderr goes to the terminal with pty", err)
    local term = t:stdout_stream()
    t:start()
    assert.equals("hi", term:read("a"))
    assert.equals(0, t:wait())
    p:close()
  end)

  it("cannot be handed to another process before their own started", function()
    local a = ex:exec("echo x")
    local s = a:stdout_stream()
    local ok, err = pcall(ex.exec, ex, { "cat" }, { stdin = s })
    assert.is_false(ok)
    assert.matches("bad argument #2 %(options%) to 'executor:exec': option stdin: the stream cannot be handed over: its process is not started", err)
    ok, err = pcall(ex.exec, ex, { "cat" }, { stdout = s })
    assert.is_false(ok)
    assert.matches("option stdout: only stdin can take another process's output stream", err)
    a:start()
    local b = ex:exec({ "cat" }, { stdin = s })
    b:start()
    assert.equals("x\n", b:stdout_stream():read("a"))
    assert.equals(0, a:wait())
    assert.equals(0, b:wait())
  end)

  it("keep their process alive: the handle may go once started", function()
    local function started_stream()
      local p = ex:exec("sleep 0.2; echo late")
      local s = p:stdout_stream()
      p:start()
      return s
    end
    local s = started_stream()
    collectgarbage()
    collectgarbage()
    assert.equals("late\n", H.read_all(s))
    -- Neither started nor kept: nothing to end, nothing left behind.
    -- (Children of earlier cases still being reaped would change the
    -- count meanwhile: let that finish first.)
    H.children_settle()
    local before = exec._internal.core.live_children()
    do
      local p = ex:exec("echo never")
      p:stdout_stream()
    end
    collectgarbage()
    collectgarbage()
    assert.equals(before, exec._internal.core.live_children())
  end)
end)
