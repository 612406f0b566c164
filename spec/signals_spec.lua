-- process:signal and process:close: signal numbers and names, a child that
-- has finished, SIGKILL after the grace period, close(signal).
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

local passes = H.passes

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
