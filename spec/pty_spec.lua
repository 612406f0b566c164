-- pty = true: the child on a pseudo-terminal of its own (typed input, the
-- window size, end-of-file typed by close_stdin), and what cannot go with it.
-- Interactive cases run in a fresh interpreter under a time limit (H.script).
local H = require("spec.helper")

local passes = H.passes

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
