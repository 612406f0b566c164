-- Process groups: process_group = true, and a string command's group, reach
-- every process of the group until it is empty (signal, close, timeout,
-- a collected handle, the state's end, os.exit, Ctrl-C), also after the
-- leader exited. Cases that could hang run in a fresh interpreter under a
-- time limit (H.script).
local H = require("spec.helper")
local exec = H.exec
local ex = H.native
local script = H.script

local running, settle_gone = H.running, H.settle_gone

-- Whether a `sleep <mark>` is still there, waiting up to `secs` for it to
-- go. (The pattern's brackets keep the shell that runs pgrep, whose
-- command line holds the pattern, from matching it.)
local function left(mark, secs)
  local deadline = exec.time.now() + (secs or 3)
  repeat
    local p = io.popen("pgrep -f 'sleep [" .. mark:sub(1, 1) .. "]" .. mark:sub(2) .. "' 2>/dev/null")
    local found = p:read("*a")
    p:close()
    if found == "" then return false end
    exec.time.sleep(0.05)
  until exec.time.now() > deadline
  return true
end

describe("process groups", function()
  it("close ends every process of the group", function()
    local p = ex:exec("sleep 100 & echo $!; sleep 100", { process_group = true })
    p:start()
    local grandchild = tonumber(p:stdout_stream():read("l"))
    p:close()
    assert.is_true(H.gone(grandchild, 5))
    assert.is_true(H.gone(p:pid(), 5))
  end)
end)

describe("process_group = true reaches the whole group until it is empty", function()
  it("close() kills a member that ignores SIGTERM after the leader was reaped", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("(trap '' TERM; sleep 4331) & wait", { process_group = true })
      p:start(); time.sleep("200ms"); p:close(); time.sleep("1.5s")
      print("DONE")
    ]])
    assert.equals(0, status, out)
    assert.is_true(settle_gone("sleep 4331", 1), "sleep 4331 survived close()")
  end)

  it("signal() and timeout reach members after the leader exited", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("sleep 4332 & exit 0", { process_group = true, timeout = "500ms" })
      p:start()
      time.sleep("200ms")
      print("CODE=" .. tostring(p:wait()))
      time.sleep("1s")
      print("TIMED_OUT=" .. tostring(p:timed_out()))
    ]])
    assert.equals(0, status, out)
    assert.matches("CODE=0", out)
    assert.matches("TIMED_OUT=true", out)
    assert.is_true(settle_gone("sleep 4332", 1), "sleep 4332 survived the timeout")
  end)

  it("the state's end kills members whose leader was reaped", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("sleep 4333 & exit 0", { process_group = true })
      p:start(); print("CODE=" .. tostring(p:wait()))
    ]])
    assert.equals(0, status, out)
    assert.is_true(settle_gone("sleep 4333", 2), "sleep 4333 survived the state's end")
  end)

  it("os.exit without closing the state kills them too", function()
    local out = script([[
      local p = exec.get("process:native"):exec("sleep 4334 & exit 0", { process_group = true })
      p:start(); p:wait(); os.exit(0)
    ]])
    assert.is_true(settle_gone("sleep 4334", 2), "sleep 4334 survived os.exit: " .. out)
  end)

  it("starts reliably when the host ignores SIGCHLD", function()
    -- SIG_IGN survives exec: perl sets it, then becomes the interpreter.
    local out, status = script([[
      local fails, ok = 0, 0
      for _ = 1, 300 do
        local p = exec.get("process:native"):exec({ "true" })
        local s, err = pcall(p.start, p)
        if not s then fails = fails + 1; print(err) end
        if p:wait() then ok = ok + 1 end
      end
      print("FAILS=" .. fails)
    ]], 60, { wrap = "perl -e '$SIG{CHLD} = q(IGNORE); exec @ARGV' -- " })
    assert.equals(0, status, out)
    assert.matches("FAILS=0", out)
  end)
end)

describe("a string command is ended whole", function()
  -- dash forks for every simple command but the last: the sleep below is
  -- a child of the shell, not the shell itself.
  local endings = {
    ["close()"] = "p:close()",
    ["close(true)"] = "p:close(true)",
    ["signal('TERM') then wait()"] = "assert(p:signal('TERM')); print('CODE=' .. tostring(p:wait()))",
    ["a collected handle"] = "p = nil; collectgarbage(); collectgarbage(); time.sleep(0.1)",
    ["the end of the script"] = "",
    ["os.exit(0)"] = "os.exit(0)",
  }
  for name, ending in pairs(endings) do
    it("by " .. name, function()
      local mark = string.format("7.%04d", math.random(1000, 9999))
      local out, status = H.script(([[
        local p = exec.get("process:native"):exec("sleep %s; echo never")
        p:start()
        time.sleep(0.2) -- (the shell has started its sleep)
      ]]):format(mark) .. ending, 15)
      assert.equals(0, status, out)
      assert.is_false(left(mark), "sleep " .. mark .. " was left running: " .. out)
    end)
  end

  it("by Ctrl-C during exec.run", function()
    local mark = string.format("7.%04d", math.random(1000, 9999))
    local out = H.script(([[
      local k = exec.get("process:native"):exec({ "sh", "-c", "sleep 0.3; kill -INT $PPID" }, { stdin = "null" })
      k:start()
      print("RUN=" .. tostring(pcall(exec.run, "sleep %s; echo never")))
    ]]):format(mark), 15)
    assert.matches("RUN=false", out)
    assert.is_false(left(mark), "sleep " .. mark .. " was left running: " .. out)
  end)

  it("a list command is not a shell: it gets a group only when asked (or timed)", function()
    local p = ex:exec({ "sleep", "5" })
    p:start()
    local q = ex:exec("sleep 5")
    q:start()
    local function pgid(pid)
      local f = assert(io.open("/proc/" .. pid .. "/stat"))
      local line = f:read("*l")
      f:close()
      return tonumber(line:match("^%d+ %b() %a %d+ (%d+)"))
    end
    assert.are_not.equal(p:pid(), pgid(p:pid()))
    assert.equals(q:pid(), pgid(q:pid()))
    p:close(true)
    q:close(true)
  end)
end)

describe("signal() on a process group whose leader exited", function()
  it("reaches the members still running", function()
    local mark = string.format("8.%04d", math.random(1000, 9999))
    local p = ex:exec(("sleep %s & exit 0"):format(mark), { process_group = true })
    p:start()
    exec.time.sleep(0.3) -- (the leader has exited; not waited for)
    assert.same({ true, nil }, { p:signal("TERM") })
    assert.is_false(left(mark))
    assert.equals(0, p:wait())
    -- Nothing is left: now it is finished.
    local ok, err = p:signal("TERM")
    assert.is_nil(ok)
    assert.matches("closed", err)
  end)
end)
