-- Errors that are not the library's (Ctrl-C, a memory error, an error of
-- the caller's code) pass through every blocking call at once, the library
-- stays usable, and what an interrupted call started does not outlive it.
-- Every case runs in a fresh interpreter under `timeout -s KILL` and gets a
-- real SIGINT.
local H = require("spec.helper")
local script = H.script

local running, settle_gone = H.running, H.settle_gone

describe("errors that are not the library's pass through blocking calls", function()
  -- Each script gets one SIGINT (the interpreter's handler turns the next
  -- one into a plain kill), 300 ms after `interrupt()` is called.
  local prelude = [[
    local ex = exec.get("process:native")
    local keep = {}
    local function interrupt()
      local k = ex:exec({ "sh", "-c", "sleep 0.3; kill -INT $PPID" }, { stdin = "null", stdout = "null", stderr = "null" })
      k:start()
      keep[#keep + 1] = k -- a collected handle's child is ended
      return k
    end
    local t0 = time.now()
    local function report(ok, err)
      print("OK=" .. tostring(ok))
      print("ERR=" .. tostring(err))
      print(string.format("ELAPSED=%.2f", time.now() - t0))
      -- The library is still usable afterwards.
      print("AFTER=" .. exec.run({ "echo", "again" }).stdout)
    end
  ]]
  local cases = {
    wait = [[ local p = ex:exec({ "sleep", "5" }); p:start(); interrupt()
              report(pcall(function() return p:wait() end)); p:close() ]],
    ["wait(d)"] = [[ local p = ex:exec({ "sleep", "5" }); p:start(); interrupt()
              report(pcall(function() return p:wait("4s") end)); p:close() ]],
    read = [[ local p = ex:exec({ "sleep", "5" }); p:start(); interrupt()
              report(pcall(function() return p:stdout_stream():read() end)); p:close() ]],
    ["read('l')"] = [[ local p = ex:exec({ "sleep", "5" }); p:start(); interrupt()
              report(pcall(function() return p:stdout_stream():read("l") end)); p:close() ]],
    lines = [[ local p = ex:exec({ "sleep", "5" }); p:start(); interrupt()
              report(pcall(function() for _ in p:stdout_stream():lines() do end end)); p:close() ]],
    write_stdin = [[ local p = ex:exec({ "sleep", "5" }); p:start(); interrupt()
              report(pcall(function() return p:write_stdin(string.rep("x", 20 * 1024 * 1024)) end)); p:close() ]],
    -- A child that keeps reading, slowly: the write waits in Rust
    -- (Process::write_stdin_alone), where every turn brings room.
    ["write_stdin (a reading child)"] = [[
              local p = ex:exec("while head -c 65536 > /dev/null; do sleep 0.02; done"); p:start(); interrupt()
              report(pcall(function() return p:write_stdin(string.rep("x", 48 * 1024 * 1024)) end)); p:close() ]],
    receive = [[ local ch = channel.new(); local k = interrupt()
              coroutine.spawn(function() time.sleep(5); ch:send(1) end)
              report(pcall(function() return ch:receive() end)) ]],
    send = [[ local ch = channel.new(); interrupt()
              coroutine.spawn(function() time.sleep(5); ch:receive() end)
              report(pcall(function() return ch:send(1) end)) ]],
    select = [[ local ch = channel.new(); interrupt()
              report(pcall(function() return channel.select({ ch:case_receive(), time.after("5s"):case_receive() }) end)) ]],
    ["time.sleep"] = [[ interrupt(); report(pcall(time.sleep, "5s")) ]],
    wait_tasks = [[ interrupt(); coroutine.spawn(function() time.sleep(5) end)
              report(pcall(exec.wait_tasks)) ]],
    run = [[ interrupt(); report(pcall(exec.run, { "sleep", "4.8101" })) ]],
  }
  for name, body in pairs(cases) do
    it(name .. " is interrupted by Ctrl-C at once, and the loop stays usable", function()
      local out = script(prelude .. body, 15)
      assert.matches("OK=false", out, nil, true)
      assert.matches("ERR=[^\n]*interrupted!", out)
      local elapsed = tonumber(out:match("ELAPSED=([%d.]+)"))
      assert.is_truthy(elapsed and elapsed < 2, out)
      assert.matches("AFTER=again", out, nil, true)
    end)
  end

  -- The library keeps no pointer to a thread it does not keep alive: the
  -- coroutine that loaded it is long gone (and its memory reused) when run
  -- looks at the main thread's hook (src/binding/host_hook.rs).
  it("run works, and Ctrl-C interrupts it, when the module was loaded inside a coroutine that is gone", function()
    local out, status = H.run_script([[
      local exec
      coroutine.wrap(function() exec = require("exec") end)()
      collectgarbage(); collectgarbage()
      local keep = {}; for i = 1, 100000 do keep[i] = "s" .. i end
      print("RUN=" .. exec.run({ "echo", "hi" }).stdout)
      -- Once more from a coroutine, with the main thread not seen before.
      local from_co
      coroutine.wrap(function() from_co = exec.run({ "echo", "co" }).stdout end)()
      print("CO=" .. from_co)
      local k = exec.get("process:native"):exec({ "sh", "-c", "sleep 0.3; kill -INT $PPID" },
        { stdin = "null", stdout = "null", stderr = "null" })
      k:start()
      local t0 = exec.time.now()
      local ok, err = pcall(exec.run, { "sleep", "4.8105" })
      print("OK=" .. tostring(ok))
      print("ERR=" .. tostring(err))
      print(string.format("ELAPSED=%.2f", exec.time.now() - t0))
    ]], "timeout -s KILL 20 ")
    assert.equals(0, status, out)
    assert.matches("RUN=hi", out)
    assert.matches("CO=co", out)
    assert.matches("OK=false", out)
    assert.matches("ERR=[^\n]*interrupted!", out)
    assert.is_truthy(tonumber(out:match("ELAPSED=([%d.]+)")) < 2, out)
    assert.is_true(settle_gone("sleep 4.8105", 3), out)
  end)

  it("the child of an interrupted run does not outlive it", function()
    local out = script(prelude .. [[ interrupt(); report(pcall(exec.run, { "sleep", "4.8102" })) ]], 15)
    assert.matches("ERR=[^\n]*interrupted!", out)
    assert.is_truthy(tonumber(out:match("ELAPSED=([%d.]+)")) < 2, out)
    assert.is_true(settle_gone("sleep 4.8102", 3), out)
  end)

  -- A run that waits alone takes the event loop's turns in Rust: a Ctrl-C
  -- that comes while output keeps arriving (every wait finds events ready,
  -- none is interrupted) must still end it at once.
  it("run is interrupted by Ctrl-C while output keeps coming", function()
    local writer = H.lua .. " -e 'local s = (\"x\"):rep(100) while true do io.write(s) io.flush() end'"
    local out = script(prelude .. ([[
      local r
      interrupt()
      report(pcall(function() r = exec.run(%q .. " ; : 4.8104") end))
    ]]):format(writer), 15)
    assert.matches("OK=false", out, nil, true)
    assert.matches("ERR=[^\n]*interrupted!", out)
    assert.is_truthy(tonumber(out:match("ELAPSED=([%d.]+)")) < 2, out)
    assert.matches("AFTER=again", out, nil, true)
    assert.is_true(settle_gone("4.8104", 3), out)
  end)

  it("nor does anything a timed shell command started", function()
    local out = script(prelude .. [[ interrupt(); report(pcall(exec.run, "sleep 4.8103; echo done", { timeout = "30s" })) ]], 15)
    assert.matches("ERR=[^\n]*interrupted!", out)
    assert.is_truthy(tonumber(out:match("ELAPSED=([%d.]+)")) < 2, out)
    assert.is_true(settle_gone("sleep 4.8103", 3), out)
  end)

  it("an error of a task's own does not reach wait()", function()
    local out, status = script([[
      coroutine.spawn(function() error(setmetatable({}, { __tostring = function() error("bad tostring") end })) end)
      coroutine.spawn(function() error("plain task error") end)
      local p = exec.get("process:native"):exec({ "sleep", "0.2" }); p:start()
      print("CODE=" .. tostring(p:wait()))
      exec.wait_tasks()
      print("RUN=" .. exec.run({ "echo", "still" }).stdout)
    ]])
    assert.equals(0, status, out)
    assert.matches("CODE=0", out)
    assert.matches("RUN=still", out)
    assert.matches("plain task error", out)
  end)
end)
