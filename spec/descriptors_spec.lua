-- Who owns each descriptor, and when it closes: the parent's copy of what a
-- child was given closes as soon as the child has it, a stream at its end
-- and a waited process hold none, and no open can block the interpreter.
-- Every case that could hang runs in a fresh interpreter under a time limit.
local H = require("spec.helper")

describe("a descriptor handed to a child", function()
  it("closes in the parent once the child has it: yes | head -n1 ends yes with SIGPIPE", function()
    local out, status = H.script([[
      local ex = exec.get("process:native")
      local yes = ex:exec({ "yes" }); yes:start()
      local head = ex:exec({ "head", "-n1" }, { stdin = yes:stdout_stream() }); head:start()
      print("HEAD=" .. head:stdout_stream():read("a"):gsub("\n", ""))
      print("HEAD_CODE=" .. tostring(head:wait()))
      print("YES=" .. tostring(yes:wait("3s")))
      local st, n = yes:status()
      print("STATUS=" .. st .. " " .. tostring(n))
    ]], 15)
    assert.equals(0, status, out)
    assert.matches("HEAD=y\n", out)
    assert.matches("HEAD_CODE=0\n", out)
    assert.matches("YES=141\n", out)
    assert.matches("STATUS=signaled 13\n", out)
  end)

  it("a Lua file given as stdout keeps no pipe open: io.popen's close returns", function()
    local out, status = H.script([[
      local f = io.popen("cat >/dev/null", "w")
      local p = exec.get("process:native"):exec({ "echo", "hi" }, { stdout = f })
      p:start()
      print("ECHO=" .. tostring(p:wait()))
      -- The handle stays referenced: its copy of the file must be gone anyway.
      print("CLOSE=" .. tostring(f:close()))
      print("KEEP=" .. tostring(p))
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("ECHO=0\nCLOSE=true\n", out)
  end)

  it("a process closed before it started keeps no file either", function()
    local out, status = H.script([[
      local f = io.popen("cat >/dev/null", "w")
      local p = exec.get("process:native"):exec({ "echo", "hi" }, { stdout = f })
      p:close()
      print("CLOSE=" .. tostring(f:close()))
      print("KEEP=" .. tostring(p))
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("CLOSE=true\n", out)
  end)
end)

describe("streams at their end and waited processes", function()
  it("hold no descriptor, although their handles are kept (30 rounds under ulimit -n 48)", function()
    local out, status = H.script([[
      local ex = exec.get("process:native")
      local kept = {}
      for round = 1, 30 do
        local p = ex:exec({ "sh", "-c", "echo out; echo err >&2" })
        p:start()
        local o, e = p:stdout_stream(), p:stderr_stream()
        assert(o:read("a") == "out\n" and e:read("a") == "err\n")
        assert(p:wait() == 0)
        -- Still usable: the end is the end.
        assert(o:read() == nil and o:read("l") == nil and e:read("a") == "")
        kept[round] = { p, o, e }
      end
      print("ROUNDS=" .. #kept)
    ]], 20, { shell = "ulimit -n 48; " })
    assert.equals(0, status, out)
    assert.matches("ROUNDS=30\n", out)
  end)
end)

describe("a FIFO as a path redirection", function()
  local dir
  before_each(function()
    dir = H.tmpname("-fifo")
    assert(os.execute("mkdir -p " .. dir .. " && mkfifo " .. dir .. "/f"))
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  it("with no writer, opens at once and reads as end of file", function()
    local out, status = H.script(([[
      local p = exec.get("process:native"):exec({ "cat" }, { stdin = { path = %q } })
      p:start()
      print("OUT=[" .. p:stdout_stream():read("a") .. "] CODE=" .. tostring(p:wait()))
    ]]):format(dir .. "/f"), 10)
    assert.equals(0, status, out)
    assert.matches("OUT=%[%] CODE=0\n", out)
  end)

  it("with no reader, fails the start with a clear error instead of blocking", function()
    local out, status = H.script(([[
      local p = exec.get("process:native"):exec({ "echo", "x" }, { stdout = { path = %q } })
      print("START=" .. tostring(select(2, pcall(p.start, p))))
    ]]):format(dir .. "/f"), 10)
    assert.equals(0, status, out)
    assert.matches("stdout: cannot open '.-/f': No such device or address %(a FIFO that nobody reads%)", out)
  end)

  it("with a reader, is written as a file", function()
    local out, status = H.script(([[
      local ex = exec.get("process:native")
      local reader = ex:exec({ "cat", %q }); reader:start()
      local p
      repeat -- (until cat has the FIFO open for reading)
        time.sleep(0.02)
        p = ex:exec({ "echo", "through" }, { stdout = { path = %q } })
      until pcall(p.start, p)
      p:wait()
      print("READ=" .. reader:stdout_stream():read("a"))
    ]]):format(dir .. "/f", dir .. "/f"), 10)
    assert.equals(0, status, out)
    assert.matches("READ=through\n", out)
  end)
end)

describe("a terminal's stream", function()
  it("cannot be handed to another process, and write_stdin never blocks the program", function()
    local out, status = H.script([[
      local ex = exec.get("process:native")
      local p = ex:exec({ "sh", "-c", "sleep 30" }, { pty = true }); p:start()
      local ok, err = pcall(ex.exec, ex, { "cat" }, { stdin = p:stdout_stream() })
      print("HANDED=" .. tostring(ok) .. " " .. tostring(err))
      -- Nobody reads the terminal and sleep reads nothing: a write that
      -- cannot go through is queued, never a blocking write.
      for _ = 1, 64 do assert(p:write_stdin(("x"):rep(4096))) end
      print("WROTE")
      p:close(true)
    ]], 15)
    assert.equals(0, status, out)
    assert.matches("HANDED=false .-it reads a terminal %(pty = true%), which cannot be handed over", out)
    assert.matches("WROTE\n", out)
  end)
end)

describe("a host that closed its stdout", function()
  -- (Whatever the process opens first takes fd 1 then, so the child's
  -- stderr may go there; what must hold is that nothing breaks.)
  it("can still start children with stderr = \"stdout\" and stdout inherited", function()
    local out, status = H.script([[
      local ex = exec.get("process:native")
      local ok, err = pcall(exec.run, { "echo", "x" }, { stdout = "inherit", stderr = "stdout" })
      io.stderr:write("RUN=", tostring(ok), " ", tostring(err), "\n")
      io.stderr:write("AFTER=", exec.run({ "echo", "fine" }).stdout)
    ]], 10, { wrap = [[sh -c 'exec "$@" 1>&-' sh ]] })
    assert.equals(0, status, out)
    assert.matches("RUN=[^\n]*\nAFTER=fine", out)
  end)
end)
