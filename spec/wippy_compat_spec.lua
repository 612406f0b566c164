-- Code written for Wippy's exec and stream modules runs unchanged: streams
-- taken before start(), stream:read(0), and stream:scanner(split).
--
-- Every case that waits (for a start, for output in pieces) runs in a fresh
-- interpreter under a time limit (H.script), so that a regression fails
-- instead of hanging the suite. Byte escapes are decimal: Lua 5.1 has no \x.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

-- Run `body` in a fresh interpreter (killed after `limit` s); it must end
-- with status 0 and print OK last. Its output.
local function passes(body, limit)
  local out, status = H.script(body .. "\nprint('OK')\n", limit or 20)
  assert.equals(0, status, out)
  assert.matches("OK\n$", out)
  return out
end

describe("Wippy's examples, as written for Wippy", function()
  it("a stream taken before start(), read after it, with `if err then error(err) end` checks", function()
    passes([=[
      local executor, err = exec.get("process:native")
      if err then error(err) end
      local proc, err = executor:exec("echo 'Hello World'")
      if err then error(err) end

      local stdout = proc:stdout_stream()
      local ok, err = proc:start()
      if err then error(err) end

      local output = ""
      while true do
        local data, err = stdout:read()
        if err then error(err) end
        if not data then break end
        output = output .. data
      end
      stdout:close()

      local exit_code, err = proc:wait()
      if err then error(err) end
      executor:release()
      assert(ok == true, tostring(ok))
      assert(output == "Hello World\n", output)
      assert(exit_code == 0, exit_code)
    ]=])
  end)

  it("stdout and stderr taken before start(), read by coroutines, with env and work_dir", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc, err = executor:exec("pwd && echo $CUSTOM_VAR && echo oops >&2", {
        work_dir = "/tmp",
        env = { PATH = "/usr/bin:/bin", CUSTOM_VAR = "Hello from env" },
      })
      if err then error(err) end
      local stdout, stderr = proc:stdout_stream(), proc:stderr_stream()
      proc:start()

      local done = channel.new(2)
      local function collect(name, stream)
        coroutine.spawn(function()
          local output = ""
          while true do
            local chunk, err = stream:read()
            if err then error(err) end
            if not chunk then break end
            output = output .. chunk
          end
          stream:close()
          done:send({ name, output })
        end)
      end
      collect("stdout", stdout)
      collect("stderr", stderr)
      local got = {}
      for _ = 1, 2 do
        local r = done:receive()
        got[r[1]] = r[2]
      end
      local exit_code, err = proc:wait()
      if err then error(err) end
      assert(got.stdout == "/tmp\nHello from env\n", got.stdout)
      assert(got.stderr == "oops\n", got.stderr)
      assert(exit_code == 0)
    ]=])
  end)

  it("stdin: sort, with its stdout taken before start()", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc = executor:exec("sort")
      local stdout = proc:stdout_stream()
      proc:start()
      local ok, err = proc:write_stdin("banana\napple\ncherry\n")
      if err then error(err) end
      proc:close_stdin()
      local data, err = stdout:read("a")
      if err then error(err) end
      assert(data == "apple\nbanana\ncherry\n", data)
      assert(proc:wait() == 0)
    ]=])
  end)

  it("a reader spawned before start() waits for it; the scanner and read(0) on streams taken before start()", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc = executor:exec("printf 'one\\r\\ntwo\\n'; printf 'err' >&2")
      local stdout = proc:stdout_stream()
      local stderr = proc:stderr_stream()
      local lines = {}
      local done = channel.new(1)
      coroutine.spawn(function()
        local scanner = stdout:scanner("lines")
        while scanner:scan() do lines[#lines + 1] = scanner:text() end
        if scanner:err() then error(scanner:err()) end
        done:send(true)
      end)
      local ok, err = proc:start()
      if err then error(err) end
      local data, err = stderr:read(0)
      if err then error(err) end
      assert(data == "err", data)
      done:receive()
      assert(#lines == 2 and lines[1] == "one" and lines[2] == "two", table.concat(lines, "|"))
      local code, err = proc:wait()
      if err then error(err) end
      assert(code == 0)
    ]=])
  end)

  it("a command that does not exist: its stderr, taken before start(), says so", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc = executor:exec("non_existent_command")
      local stderr = proc:stderr_stream()
      proc:start()
      local msg = stderr:read("a")
      local code, err = proc:wait()
      if err then error(err) end
      assert(code == 127, code)
      assert(msg:find("not found"), msg)
    ]=])
  end)
end)

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

describe("stream:read(0)", function()
  it("returns whatever is available, as read() does", function()
    local p = ex:exec("printf a; sleep 0.3; printf b")
    p:start()
    local s = p:stdout_stream()
    local t0 = exec.time.now()
    assert.equals("a", s:read(0))
    assert.is_true(exec.time.now() - t0 < 0.25, "it did not wait for more")
    assert.equals("b", s:read(0))
    assert.same({ nil, nil }, { s:read(0) })
    assert.equals(0, p:wait())
  end)

  it("is a chunk for case_read and lines too; below 0 still raises", function()
    local p = ex:exec("printf abc")
    p:start()
    local s = p:stdout_stream()
    local r = exec.channel.select({ s:case_read(0) })
    assert.equals("abc", r.value)
    assert.is_nil(s:lines(0)())
    for _, n in ipairs({ -1, 0.5 }) do
      local ok, err = pcall(s.read, s, n)
      assert.is_false(ok)
      assert.matches("bad argument #1 %(n%) to 'stream:read': must be a whole number >= 0", err)
    end
    assert.equals(0, p:wait())
  end)
end)

-- The tokens of `split` when `pieces` come out of `cat` one by one, 50 ms
-- apart (so that each arrives in a read of its own), as a Lua expression.
local function scan_pieces(split, pieces)
  local list = {}
  for i, piece in ipairs(pieces) do list[i] = string.format("%q", piece) end
  local out = passes([=[
    local p = exec.get("process:native"):exec({ "cat" })
    local sc = p:stdout_stream():scanner("]=] .. split .. [=[")
    p:start()
    coroutine.spawn(function()
      for _, piece in ipairs({ ]=] .. table.concat(list, ", ") .. [=[ }) do
        assert(p:write_stdin(piece))
        time.sleep(0.05)
      end
      p:close_stdin()
    end)
    local toks = {}
    while sc:scan() do toks[#toks + 1] = string.format("%q", sc:text()) end
    assert(sc:err() == nil, sc:err())
    assert(sc:text() == "")
    assert(p:wait() == 0)
    print("{" .. table.concat(toks, ", ") .. "}")
  ]=])
  return assert((loadstring or load)("return " .. out:gsub("OK\n$", "")))()
end

-- U+FFFD: what an invalid byte scans as in "runes" mode.
local R = "\239\191\189"

describe("stream:scanner(split) on output that arrives in pieces", function()
  it("lines: without \\n and a \\r before it; a line cut across reads; the last without newline", function()
    assert.same({ "one", "two", "", "x\ry", "three" },
      scan_pieces("lines", { "one\r\ntw", "o\n\n", "x\ry\r", "\nthr", "ee\r" }))
  end)

  it("words: split on ASCII and Unicode white space, none empty, a space cut across reads", function()
    -- U+00A0 (194 160), U+2009 (226 128 137, cut after 2 bytes), U+3000
    -- (227 128 128), U+0085 (194 133), U+1680 (225 154 128), U+205F
    -- (226 129 159); not spaces: U+200B (226 128 139), invalid bytes, é.
    assert.same({ "alpha", "beta", "gamma", "delta", "eps", "\255z", "a\226\128\139b", "caf\195\169",
                  "n", "o", "p" },
      scan_pieces("words", { "  alpha\tbe", "ta\n\n gamma\194\160delta\226\128", "\137eps\227\128\128 \255z\r\n",
                             "\v\fa\226\128\139b caf\195\169", "\194\133n\225\154\128o\226\129\159p", "  " }))
  end)

  it("bytes: one at a time, any byte", function()
    assert.same({ "a", "b", "c", "\0", "\255" }, scan_pieces("bytes", { "ab", "c", "\0\255" }))
  end)

  it("runes: UTF-8 characters cut across reads; each invalid byte is U+FFFD, as in Go", function()
    assert.same({ "h", "\195\169", "l", "l", "o", " ", "\226\130\172", "!", R, "\240\159\152\128",
                  R, R, R, R, R, "x", "\240\159\152\128", R, R },
      scan_pieces("runes", { "h\195", "\169llo \226\130", "\172!", "\255\240\159\152", "\128\192\175\237\160\128x\240",
                             "\159", "\152", "\128\226\130" }))
  end)
end)

describe("stream:scanner", function()
  it("defaults to lines, which share the stream's reader with read('l')", function()
    local p = ex:exec("printf 'a\\nb\\nc\\nd'")
    p:start()
    local s = p:stdout_stream()
    local sc = s:scanner()
    assert.equals("", sc:text())
    assert.is_true(sc:scan())
    assert.equals("a", sc:text())
    assert.equals("b", s:read("l"))
    assert.is_true(sc:scan())
    assert.equals("c", sc:text())
    assert.is_true(sc:scan())
    assert.equals("d", sc:text())
    assert.same({ false }, { sc:scan() })
    assert.equals("", sc:text())
    assert.is_nil(sc:err())
    assert.same({ false }, { sc:scan() })
    assert.equals(0, p:wait())
  end)

  it("lines: a \\r before the newline goes from lines served from the buffer too", function()
    local p = ex:exec("printf 'a\\r\\nb\\r\\n\\r\\nc\\rd\\r\\n\\r'")
    p:start()
    local sc = p:stdout_stream():scanner("lines")
    local got = {}
    while sc:scan() do got[#got + 1] = sc:text() end
    assert.same({ "a", "b", "", "c\rd", "" }, got)
    assert.equals(0, p:wait())
  end)

  it("counts every line and word of a long output", function()
    local p = ex:exec({ "seq", "1", "100000" })
    p:start()
    local sc = p:stdout_stream():scanner("lines")
    local n, last = 0, nil
    while sc:scan() do
      n = n + 1
      last = sc:text()
    end
    assert.equals(100000, n)
    assert.equals("100000", last)
    p:wait()
    local q = ex:exec("seq 1 50000 | paste -d ' ' - -")
    q:start()
    sc = q:stdout_stream():scanner("words")
    n = 0
    while sc:scan() do
      n = n + 1
      last = sc:text()
    end
    assert.equals(50000, n)
    assert.equals("50000", last)
    q:wait()
  end)

  it("returns false and the error, for good, when the stream fails (here: closed)", function()
    local p = ex:exec("echo a; echo b")
    p:start()
    local s = p:stdout_stream()
    for _, split in ipairs({ "lines", "words", "bytes", "runes" }) do
      local sc = s:scanner(split)
      s:close()
      local ok, err = sc:scan()
      assert.is_false(ok)
      assert.equals("scanner:scan: stream is closed", err)
      assert.equals(err, sc:err())
      assert.same({ false, err }, { sc:scan() })
      assert.equals("", sc:text())
    end
    p:wait()
  end)

  it("waits in a task without holding up the others", function()
    passes([=[
      local ex = exec.get("process:native")
      local done = channel.new(2)
      local t0 = time.now()
      for _ = 1, 2 do
        coroutine.spawn(function()
          local p = ex:exec("for i in 1 2 3; do echo $i; sleep 0.2; done")
          p:start()
          local sc = p:stdout_stream():scanner()
          local got = {}
          while sc:scan() do got[#got + 1] = sc:text() end
          done:send(table.concat(got, ","))
          p:wait()
        end)
      end
      assert(done:receive() == "1,2,3" and done:receive() == "1,2,3")
      assert(time.now() - t0 < 1.0, "the two ran at once")
    ]=])
  end)

  it("raises for a split it does not know, and for methods called on the wrong object", function()
    local p = ex:exec("true")
    p:start()
    local s = p:stdout_stream()
    assert.has_error(function() s:scanner("chars") end,
      "bad argument #1 (split) to 'stream:scanner': must be \"lines\", \"words\", \"bytes\" or \"runes\" (got 'chars')")
    local ok, err = pcall(s.scanner, s, 1)
    assert.is_false(ok)
    assert.matches("%(got number%)", err)
    local sc = s:scanner("bytes")
    assert.equals("exec.scanner", getmetatable(sc))
    assert.equals("exec.scanner(bytes)", tostring(sc))
    for _, name in ipairs({ "scan", "text", "err" }) do
      ok, err = pcall(sc[name], s)
      assert.is_false(ok)
      assert.matches("scanner:" .. name .. ": self must be an exec.scanner", err)
    end
    local other = s:scanner("lines")
    assert.is_false(sc.scan(other))
    p:wait()
  end)
end)
