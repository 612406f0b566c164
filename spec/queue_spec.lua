-- The resource option queue = true: start() beyond max_processes waits for
-- a slot, first come first served, in tasks and in the main chunk; a
-- queued caller that an error or its task's end takes away gives up its
-- turn. Each case runs in a fresh interpreter under a time limit.
local H = require("spec.helper")

local passes = H.passes

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
