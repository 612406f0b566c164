-- The timeout option (SIGTERM, SIGKILL after the grace period, the whole
-- command bounded whatever it started) and waits with a deadline. Cases
-- that could hang run in a fresh interpreter under a time limit (H.script).
local H = require("spec.helper")
local exec = H.exec
local ex = H.native
local script = H.script

-- Number of processes whose command line holds `marker` (the first
-- letter in brackets, so that the shell running pgrep does not match).
local function running(marker)
  local pattern = "[" .. marker:sub(1, 1) .. "]" .. marker:sub(2)
  local p = io.popen("pgrep -f -- " .. H.exec.quote(pattern) .. " | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

-- True once no process holds `marker`, waiting up to `secs` for them to go.
local function settle_gone(marker, secs)
  local deadline = H.exec.time.now() + (secs or 5)
  while running(marker) > 0 and H.exec.time.now() < deadline do H.exec.time.sleep(0.05) end
  return running(marker) == 0
end

describe("timeouts", function()
  it("option timeout ends the child with SIGTERM and run reports timed_out", function()
    local r = exec.run({ "sleep", "30" }, { timeout = "200ms" })
    assert.is_true(r.timed_out)
    assert.equals(143, r.code)
    local p = ex:exec({ "sleep", "30" }, { timeout = 0.1 })
    p:start()
    assert.equals(143, p:wait())
    assert.is_true(p:timed_out())
  end)

  it("sends SIGKILL after the grace period to a child that ignores SIGTERM", function()
    local r = exec.run("trap '' TERM; sleep 30", { timeout = "100ms" })
    assert.is_true(r.timed_out)
    assert.equals(137, r.code)
  end)

  it("reaches the whole group with process_group", function()
    local r = exec.run("sleep 30 & echo $!; wait", { timeout = "200ms", process_group = true })
    assert.is_true(r.timed_out)
    local grandchild = tonumber(r.stdout:match("%d+"))
    assert.is_true(H.gone(grandchild, 5))
  end)

  it("does not fire for a child that finishes in time", function()
    local r = exec.run({ "echo", "quick" }, { timeout = "5s" })
    assert.is_false(r.timed_out)
    assert.equals(0, r.code)
  end)

  it("rejects a bad timeout, naming it", function()
    local ok, err = pcall(ex.exec, ex, "true", { timeout = "soon" })
    assert.is_false(ok)
    assert.matches("timeout", err)
  end)

  it("wait(d) returns nil, 'timeout' and leaves the child running", function()
    local p = ex:exec({ "sleep", "0.5" })
    p:start()
    local code, err = p:wait("50ms")
    assert.is_nil(code)
    assert.equals("timeout", err)
    assert.is_not_nil(H.proc_state(p:pid()))
    assert.equals(0, p:wait("5s"))
    code, err = ex:exec("true"):wait("x")
    assert.is_nil(code)
    assert.is_string(err)
  end)
end)

describe("a timeout bounds the whole call", function()
  it("a shell command's children are ended too", function()
    local out, status = script([[
      local t0 = time.now()
      local r = exec.run("sleep 30.4711", { timeout = "300ms" })
      print(string.format("ELAPSED=%.2f TIMED_OUT=%s CODE=%s", time.now() - t0, tostring(r.timed_out), tostring(r.code)))
    ]])
    assert.equals(0, status, out)
    local elapsed = tonumber(out:match("ELAPSED=([%d.]+)"))
    assert.is_truthy(elapsed and elapsed < 1.3 + 0.7, out)
    assert.matches("TIMED_OUT=true", out)
    assert.is_true(settle_gone("sleep 30.4711", 2))
  end)

  it("a background job holding the output is ended and reported as timed out", function()
    local out, status = script([[
      local t0 = time.now()
      local r = exec.run("sleep 3.4712 & echo hi", { timeout = "300ms" })
      print(string.format("ELAPSED=%.2f TIMED_OUT=%s OUT=%s", time.now() - t0, tostring(r.timed_out), r.stdout))
    ]])
    assert.equals(0, status, out)
    local elapsed = tonumber(out:match("ELAPSED=([%d.]+)"))
    assert.is_truthy(elapsed and elapsed < 2, out)
    assert.matches("TIMED_OUT=true", out)
    assert.matches("OUT=hi", out)
    assert.is_true(settle_gone("sleep 3.4712", 2))
  end)

  it("a child that ignores SIGTERM and a detached holder of the pipe still end the call in time", function()
    local out, status = script([[
      local t0 = time.now()
      local r = exec.run("trap '' TERM; setsid sleep 6.4713 & sleep 6.4714", { timeout = "300ms" })
      print(string.format("ELAPSED=%.2f TIMED_OUT=%s", time.now() - t0, tostring(r.timed_out)))
    ]])
    assert.equals(0, status, out)
    local elapsed = tonumber(out:match("ELAPSED=([%d.]+)"))
    assert.is_truthy(elapsed and elapsed < 2, out)
    assert.matches("TIMED_OUT=true", out)
    assert.is_true(settle_gone("sleep 6.4714", 2))
    os.execute("pkill -f 'sleep 6.4713'")
  end)

  it("a command that ends in time is not timed out", function()
    local r = H.exec.run("echo quick", { timeout = "5s" })
    assert.is_false(r.timed_out)
    assert.equals("quick\n", r.stdout)
  end)
end)

describe("a wait with a deadline", function()
  it("changes nothing: output that comes after it is there for a stream taken later", function()
    local p = ex:exec("sleep 0.3; echo hi; echo err >&2")
    p:start()
    assert.same({ nil, "timeout", "timeout" }, { p:wait("50ms") })
    assert.equals("hi\n", p:stdout_stream():read("a"))
    assert.equals("err\n", p:stderr_stream():read("a"))
    assert.equals(0, p:wait())
  end)
end)

describe("a handle with a timeout", function()
  it("is not kept alive by its timer: collected, its child ends at once and nothing waits for the timer", function()
    local out, status = H.script([[
      local p = exec.get("process:native"):exec({ "sleep", "300" }, { timeout = "1h" })
      p:start()
      local pid = p:pid()
      p = nil
      collectgarbage()
      collectgarbage()
      print("GONE=" .. tostring(H.gone(pid, 3)))
      -- The timer is gone with its handle: a wait that nothing can end is
      -- a deadlock now, not an hour's sleep.
      local ch = channel.new()
      print("RECEIVE=" .. tostring(select(2, pcall(ch.receive, ch))))
    ]], 15)
    assert.equals(0, status, out)
    assert.matches("GONE=true\n", out)
    assert.matches("RECEIVE=deadlock", out)
  end)
end)
