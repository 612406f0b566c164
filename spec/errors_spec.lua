-- The error codes: every function that returns `nil, message` on an
-- operational failure returns the failure's code third (README, "Error
-- codes"), from one typed error of the core (src/core/error.rs). And
-- argument errors: raised at the caller's line, naming the argument.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

-- The third result of `fn(...)`, checking that the first is nil and the
-- second a message naming `fname`.
local function code_of(fname, fn, ...)
  local v, msg, code = fn(...)
  assert.is_nil(v, fname .. " did not fail")
  assert.is_string(msg)
  assert.is_truthy(msg:find(fname, 1, true), msg)
  return code
end

describe("error codes", function()
  it("say what a process's failures are", function()
    local p = ex:exec({ "sleep", "5" })
    assert.equals("not_started", code_of("process:wait", p.wait, p))
    assert.equals("not_started", code_of("process:signal", p.signal, p, "TERM"))
    assert.equals("not_started", code_of("process:close_stdin", p.close_stdin, p))
    assert.equals("not_started", code_of("process:write_stdin", p.write_stdin, p, "x"))
    p:start()
    assert.equals("invalid", code_of("process:signal", p.signal, p, 99))
    assert.equals("unsupported", code_of("process:resize", p.resize, p, 24, 80))
    assert.same({ nil, "timeout", "timeout" }, { p:wait("10ms") })
    assert(p:close_stdin())
    assert.equals("closed", code_of("process:write_stdin", p.write_stdin, p, "x"))
    p:close(true)
    assert.equals("closed", code_of("process:wait", p.wait, p))
    assert.equals("closed", code_of("process:signal", p.signal, p, "TERM"))

    local q = ex:exec({ "true" }, { stdin = "null" })
    q:start()
    assert.equals("unsupported", code_of("process:write_stdin", q.write_stdin, q, "x"))
    exec.time.sleep(0.2) -- (it has exited; not waited for)
    assert.equals("finished", code_of("process:signal", q.signal, q, "TERM"))
    assert.equals(0, q:wait())
  end)

  it("give the system's name for a system error: EPIPE for a child that closed its input", function()
    local p = ex:exec({ "sh", "-c", "exec 0<&-; sleep 5" })
    p:start()
    exec.time.sleep(0.2)
    local ok, msg, code = p:write_stdin(("x"):rep(1048576))
    for _ = 1, 50 do
      if not ok then break end
      ok, msg, code = p:write_stdin("more")
      exec.time.sleep(0.01)
    end
    assert.is_nil(ok)
    assert.matches("Broken pipe", msg)
    assert.equals("EPIPE", code)
    p:close(true)
  end)

  it("say what a stream's failures are", function()
    local p = ex:exec("sleep 0.3; echo late")
    p:start()
    local s = p:stdout_stream()
    assert.same({ nil, "timeout", "timeout" }, { s:read("l", "10ms") })
    s:close()
    assert.equals("closed", code_of("stream:read", s.read, s))

    local src = ex:exec({ "echo", "x" })
    src:start()
    local out = src:stdout_stream()
    local sink = ex:exec({ "cat" }, { stdin = out, stdout = "null" })
    sink:start()
    assert.equals("handed_over", code_of("stream:read", out.read, out))
    src:wait()
    sink:wait()

    -- More output than the buffer_limit while wait() runs: the notice.
    local big = ex:exec("head -c 300000 /dev/zero", { buffer_limit = 1000 })
    big:start()
    local b = big:stdout_stream()
    big:wait()
    assert.equals("dropped", code_of("stream:read", b.read, b))
    p:close(true)
  end)

  it("reach select through a stream's case_read", function()
    local p = ex:exec({ "echo", "x" })
    p:start()
    local s = p:stdout_stream()
    local src = ex:exec({ "cat" }, { stdin = s, stdout = "null" })
    src:start()
    local r = exec.channel.select({ s:case_read("l") })
    assert.is_false(r.ok)
    assert.equals("handed_over", r.code)
    p:wait()
    src:wait()
  end)

  it("are raised as bad arguments where the argument itself is wrong", function()
    local p = ex:exec({ "sleep", "5" })
    p:start()
    local ok, err = pcall(p.signal, p, "NOSUCH")
    assert.is_false(ok)
    assert.matches("bad argument #1 %(signal_number%) to 'process:signal': unknown signal name 'NOSUCH'", err)
    ok, err = pcall(p.resize, p, 24, 0)
    assert.is_false(ok)
    assert.matches("bad argument #2 %(cols%) to 'process:resize'", err)
    ok, err = pcall(p.close, p, 99)
    assert.is_false(ok)
    assert.matches("bad argument #1 %(force_stop%) to 'process:close': invalid signal number 99", err)
    p:close(true)
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
