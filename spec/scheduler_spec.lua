-- The scheduler: the globals exec provides, tasks (coroutine.spawn,
-- exec.wait_tasks), channels and select, time, deadlocks, what still runs
-- during a blocking call that waits alone, and a scheduler that stays
-- consistent whatever the caller's coroutines and finalizers do. Cases
-- that could hang run in a fresh interpreter under a time limit.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native
local time = exec.time
local script = H.script

local passes = H.passes

describe("globals", function()
  it("coroutine.spawn, channel and require('time') are provided by loading exec", function()
    assert.equals(exec.spawn, coroutine.spawn)
    assert.equals(exec.channel.new, channel.new)
    assert.equals(exec.time, require("time"))
  end)

  it("never replace a coroutine.spawn, channel or time that already exists", function()
    local out, status = H.run_script([[
      local mine = function() return "mine" end
      coroutine.spawn = mine
      channel = "my channel"
      package.preload.time = function() return { mine = true } end
      local exec = require("exec")
      assert(coroutine.spawn == mine, "coroutine.spawn replaced")
      assert(channel == "my channel", "channel replaced")
      assert(require("time").mine, "time replaced")
      assert(exec.spawn and exec.channel.new and exec.time.sleep)
      print("kept")
    ]])
    assert.equals(0, status, out)
    assert.matches("kept", out)
  end)
end)

describe("coroutine.spawn", function()
  it("returns at once and runs the task when the caller blocks", function()
    local log = {}
    exec.spawn(function() log[#log + 1] = "task" end)
    log[#log + 1] = "after spawn"
    time.sleep(0)
    assert.same({ "after spawn", "task" }, log)
  end)

  it("passes arguments", function()
    local ch = exec.channel.new(1)
    exec.spawn(function(a, b, c) ch:send(a + b + (c or 0)) end, 1, 2, nil)
    assert.equals(3, ch:receive())
  end)

  it("suspends only the blocked task", function()
    local log = {}
    local done = exec.channel.new(2)
    exec.spawn(function()
      time.sleep(0.1)
      log[#log + 1] = "slow"
      done:send(true)
    end)
    exec.spawn(function()
      log[#log + 1] = "fast"
      done:send(true)
    end)
    done:receive()
    done:receive()
    assert.same({ "fast", "slow" }, log)
  end)

  it("lets many processes run at once", function()
    local t0 = time.now()
    local done = exec.channel.new(20)
    for i = 1, 20 do
      exec.spawn(function()
        local p = ex:exec({ "sleep", "0.5" })
        p:start()
        done:send(p:wait())
      end)
    end
    for _ = 1, 20 do assert.equals(0, done:receive()) end
    assert.is_true(time.now() - t0 < 5, "20 x sleep 0.5 ran one after another")
  end)

  it("blocking calls work from a coroutine that is not a task", function()
    local co = coroutine.wrap(function()
      local p = ex:exec("echo inside")
      p:start()
      local s = p:stdout_stream()
      local out = H.read_all(s)
      time.sleep(0.01)
      return out, p:wait()
    end)
    local out, code = co()
    assert.equals("inside\n", out)
    assert.equals(0, code)
  end)

  it("a plain coroutine.yield() inside a task lets others run and continues", function()
    local log = {}
    local done = exec.channel.new(2)
    exec.spawn(function()
      log[#log + 1] = "a1"
      coroutine.yield()
      log[#log + 1] = "a2"
      done:send(true)
    end)
    exec.spawn(function()
      log[#log + 1] = "b1"
      done:send(true)
    end)
    done:receive()
    done:receive()
    assert.same({ "a1", "b1", "a2" }, log)
  end)

  it("prints an error inside a task with its traceback, and the program continues", function()
    local out, status = H.run_script([[
      require("exec")
      local ch = channel.new(1)
      coroutine.spawn(function() error("boom in task") end)
      coroutine.spawn(function() ch:send("survived") end)
      print(ch:receive())
    ]])
    assert.equals(0, status, out)
    assert.matches("boom in task", out)
    assert.matches("stack traceback", out)
    assert.matches("survived", out)
  end)

  it("raises deadlock instead of hanging when nothing can wake the caller", function()
    local ch = exec.channel.new()
    local ok, err = pcall(ch.receive, ch)
    assert.is_false(ok)
    assert.matches("deadlock", err)
    exec.spawn(function() ch:receive() end)
    ok, err = pcall(ch.receive, ch)
    assert.is_false(ok)
    assert.matches("deadlock", err)
    -- The channel still works afterwards: the cancelled receivers (ours) are
    -- skipped, the task that is still waiting gets the first value.
    exec.spawn(function() ch:send("one"); ch:send("late") end)
    assert.equals("late", ch:receive())
  end)

  it("wait_tasks runs every task to its end, and raises if one never can", function()
    local out, status = H.run_script([[
      local exec = require("exec")
      local n = 0
      for _ = 1, 5 do exec.spawn(function() exec.time.sleep(0.01); n = n + 1 end) end
      exec.wait_tasks()
      print("ran " .. n)
      local ch = exec.channel.new()
      exec.spawn(function() ch:receive() end)
      print(pcall(exec.wait_tasks))
    ]])
    assert.equals(0, status, out)
    assert.matches("ran 5", out)
    assert.matches("false\t.*deadlock", out)
  end)
end)

describe("channel", function()
  it("unbuffered: send blocks until received", function()
    local ch = exec.channel.new()
    local log = {}
    exec.spawn(function()
      ch:send(1)
      log[#log + 1] = "sent"
    end)
    time.sleep(0.01)
    assert.same({}, log)
    local v, ok = ch:receive()
    assert.equals(1, v)
    assert.is_true(ok)
    time.sleep(0)
    assert.same({ "sent" }, log)
  end)

  it("buffered: send returns true until full", function()
    local ch = exec.channel.new(2)
    assert.is_true(ch:send("a"))
    assert.is_true(ch:send("b"))
    exec.spawn(function() ch:send("c") end)
    assert.equals("a", ch:receive())
    assert.equals("b", ch:receive())
    assert.equals("c", ch:receive())
  end)

  it("carries nil and false values", function()
    local ch = exec.channel.new(2)
    ch:send(nil)
    ch:send(false)
    local v, ok = ch:receive()
    assert.is_nil(v)
    assert.is_true(ok)
    v, ok = ch:receive()
    assert.is_false(v)
    assert.is_true(ok)
  end)

  it("close: receivers drain the buffer, then get nil, false; send raises; closing twice is harmless", function()
    local ch = exec.channel.new(2)
    ch:send(1)
    ch:close()
    ch:close()
    assert.same({ 1, true }, { ch:receive() })
    assert.same({ nil, false }, { ch:receive() })
    local ok, err = pcall(ch.send, ch, 2)
    assert.is_false(ok)
    assert.matches("closed", err)
  end)

  it("close wakes all blocked receivers", function()
    local ch = exec.channel.new()
    local results = exec.channel.new(3)
    for _ = 1, 3 do exec.spawn(function() results:send({ ch:receive() }) end) end
    time.sleep(0)
    ch:close()
    for _ = 1, 3 do assert.same({ nil, false }, results:receive()) end
  end)

  it("a blocked sender raises when the channel is closed", function()
    if not exec._internal.sched.yield_across_pcall then
      pending("Lua 5.1 cannot yield across pcall, so a task cannot catch this error")
      return
    end
    local ch = exec.channel.new()
    local result = exec.channel.new(1)
    exec.spawn(function() result:send({ pcall(ch.send, ch, "x") }) end)
    time.sleep(0)
    ch:close()
    local r = result:receive()
    assert.is_false(r[1])
    assert.matches("closed", r[2])
  end)

  it("new raises for a bad size", function()
    for _, bad in ipairs({ -1, 1.5, "x", 0 / 0 }) do
      local ok, err = pcall(exec.channel.new, bad)
      assert.is_false(ok)
      assert.matches("size", err)
    end
  end)

  it("select returns the first ready case in table order", function()
    local a, b = exec.channel.new(1), exec.channel.new(1)
    a:send("from a")
    b:send("from b")
    local r = exec.channel.select({ b:case_receive(), a:case_receive() })
    assert.equals(b, r.channel)
    assert.equals("from b", r.value)
    assert.is_true(r.ok)
  end)

  it("select with default does not block", function()
    local a = exec.channel.new()
    local r = exec.channel.select({ a:case_receive(), default = true })
    assert.same({ default = true }, r)
  end)

  it("select blocks until a case is ready, including sends", function()
    local a, b = exec.channel.new(), exec.channel.new()
    exec.spawn(function() time.sleep(0.02); a:send("late") end)
    local r = exec.channel.select({ a:case_receive(), b:case_receive() })
    assert.equals(a, r.channel)
    assert.equals("late", r.value)
    local got = exec.channel.new(1)
    exec.spawn(function() got:send(b:receive()) end)
    r = exec.channel.select({ b:case_send("pushed") })
    assert.equals(b, r.channel)
    assert.is_true(r.ok)
    assert.equals("pushed", got:receive())
  end)

  it("select reports a closed channel with ok = false", function()
    local a = exec.channel.new()
    a:close()
    local r = exec.channel.select({ a:case_receive() })
    assert.equals(a, r.channel)
    assert.is_false(r.ok)
  end)

  it("select with time.after gives a timeout", function()
    local never = exec.channel.new()
    local t0 = time.now()
    local timeout = time.after("50ms")
    local r = exec.channel.select({ never:case_receive(), timeout:case_receive() })
    assert.equals(timeout, r.channel)
    assert.is_true(time.now() - t0 >= 0.045)
  end)

  it("methods raise when called on something else", function()
    local ch = exec.channel.new()
    local ok, err = pcall(ch.send, "x", 1)
    assert.is_false(ok)
    assert.matches("self", err)
    ok, err = pcall(exec.channel.select, { "x" })
    assert.is_false(ok)
    assert.matches("case 1", err)
  end)
end)

describe("time", function()
  it("parses Go durations and numbers of seconds", function()
    local s = time.parse_duration
    assert.equals(1, s("1s"))
    assert.equals(0.25, s("250ms"))
    assert.equals(90, s("1m30s"))
    assert.equals(5400, s("1.5h"))
    assert.near(1e-6, s("1us"), 1e-12)
    assert.near(1.5e-9, s("1.5ns"), 1e-15)
    assert.equals(0, s("0"))
    assert.equals(2.5, s(2.5))
  end)

  it("raises for a bad duration, naming it", function()
    for _, bad in ipairs({ "", "1", "1x", "s", "-1s", "1s2", -1, 0 / 0, math.huge, 2 ^ 63, "300y", "3000000h", {}, true }) do
      local ok, err = pcall(time.sleep, bad)
      assert.is_false(ok, tostring(bad))
      assert.matches("time.sleep", err)
      assert.matches("duration", err)
    end
  end)

  it("sleep waits at least the duration", function()
    local t0 = time.now()
    time.sleep("30ms")
    assert.is_true(time.now() - t0 >= 0.029)
  end)

  it("sleeping tasks do not hold each other up", function()
    local t0 = time.now()
    local done = exec.channel.new(10)
    for _ = 1, 10 do exec.spawn(function() time.sleep(0.2); done:send(true) end) end
    for _ = 1, 10 do done:receive() end
    assert.is_true(time.now() - t0 < 1.5)
  end)
end)

-- A blocking call waits in the event loop's poll itself when nothing else in
-- the program waits (sched.park); anything that could be woken meanwhile
-- sends it round the scheduler.
describe("a blocking call with nothing else waiting", function()
  it("still lets a timer fire and a task run during it", function()
    local out = H.script([[
      local t0 = time.now()
      local fired
      exec.spawn(function() time.sleep(0.05); fired = time.now() - t0 end)
      exec.run("sleep 0.4")
      print("RUN " .. string.format("%.2f", fired or -1))
      fired = nil
      exec.spawn(function() time.sleep(0.05); fired = time.now() - t0 end)
      t0 = time.now()
      local p = exec.get("process:native"):exec("sleep 0.4"); p:start(); p:wait()
      print("WAIT " .. string.format("%.2f", fired or -1))
    ]], 15)
    local run, wait = tonumber(out:match("RUN ([%d.-]+)")), tonumber(out:match("WAIT ([%d.-]+)"))
    assert.is_truthy(run and run >= 0 and run < 0.3, out)
    assert.is_truthy(wait and wait >= 0 and wait < 0.3, out)
  end)

  it("leaves other processes' output, input and exit for their own calls", function()
    local out = H.script([[
      local ex = exec.get("process:native")
      -- More output than a pipe holds, produced while the run below waits.
      local a = ex:exec("seq 1 200000"); a:start()
      local sa = a:stdout_stream()
      -- Input queued before the run, written by the loop while it waits.
      local b = ex:exec("wc -c"); b:start()
      b:write_stdin(string.rep("x", 3000000)); b:close_stdin()
      local sb = b:stdout_stream()
      -- A child that exits while the run waits.
      local c = ex:exec("exit 7"); c:start()
      print("RUN " .. exec.run("sleep 0.3; echo ran").stdout)
      local all = sa:read("a")
      print("A " .. #all .. " " .. select(2, all:gsub("\n", "")))
      print("B " .. sb:read("a"))
      print("C " .. tostring(c:wait()))
      print("CODES " .. tostring(a:wait()) .. " " .. tostring(b:wait()))
    ]], 15)
    assert.matches("RUN ran", out, nil, true)
    assert.matches("A 1288895 200000", out, nil, true)
    assert.matches("B 3000000", out, nil, true)
    assert.matches("C 7", out, nil, true)
    assert.matches("CODES 0 0", out, nil, true)
  end)
end)

describe("exec.wait_tasks()", function()
  it("returns nil and a message naming every task that failed since the last call", function()
    local out = passes([[
      coroutine.spawn(function() error("boom") end)
      coroutine.spawn(function() time.sleep(0.01) end)
      coroutine.spawn(function() time.sleep(0.02); error({}) end)
      local ok, msg = exec.wait_tasks()
      assert(ok == nil, "expected a failure")
      print("MSG=" .. msg)
      assert(exec.wait_tasks() == true, "reported once")
    ]])
    assert.matches("MSG=2 tasks failed: task defined at [^\n]-:4: [^\n]-:4: boom; task defined at [^\n]-:6: table: ", out)
  end)
end)

describe("the scheduler survives what users' code does", function()
  -- The spec's first example: a reader spawned before wait(). Here the
  -- child writes and exits while a task ahead blocks the whole process,
  -- so wait() finds the exit at its first step; the reader, woken by
  -- that step's read-ahead, must still run before the script ends.
  it("a reader spawned before wait() finishes even when wait() needs no waiting", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("echo hello")
      p:start()
      local got
      coroutine.spawn(function() got = p:stdout_stream():read() end)
      coroutine.spawn(function() os.execute("sleep 0.3") end)
      print("CODE=" .. tostring(p:wait()))
      print("GOT=" .. tostring(got))
    ]])
    assert.equals(0, status, out)
    assert.matches("CODE=0", out)
    assert.matches("GOT=hello\n", out)
  end)

  it("a coroutine.wrap generator that blocks inside a task", function()
    local out, status = script([[
      local gen = coroutine.wrap(function()
        for i = 1, 3 do time.sleep(0.01); coroutine.yield(i) end
      end)
      local got = {}
      coroutine.spawn(function() for _ = 1, 3 do got[#got + 1] = gen() end end)
      coroutine.spawn(function() time.sleep(0.02) end)
      exec.wait_tasks()
      print("GOT=" .. table.concat(got, ","))
      print("RUN=" .. exec.run({ "echo", "ok" }).stdout)
    ]])
    assert.equals(0, status, out)
    assert.matches("GOT=1,2,3", out)
    assert.matches("RUN=ok", out)
  end)

  it("a blocking call inside a __gc finalizer does not break later calls", function()
    local out, status = script([[
      local mk = newproxy and function(f) local u = newproxy(true); getmetatable(u).__gc = f; return u end
        or function(f) return setmetatable({}, { __gc = f }) end
      local results = {}
      for i = 1, 5 do
        coroutine.spawn(function() time.sleep(0.01 * i); results[#results + 1] = i end)
      end
      local u = mk(function() results.gc = pcall(time.sleep, 0.001) end)
      u = nil
      coroutine.spawn(function()
        collectgarbage(); collectgarbage()
        local t = time.now()
        time.sleep(0.3)
        results.slept = time.now() - t
      end)
      exec.wait_tasks()
      print("N=" .. #results)
      print("GC=" .. tostring(results.gc))
      print("SLEPT=" .. tostring(results.slept and results.slept >= 0.29))
      print("RUN=" .. exec.run({ "echo", "ok" }).stdout)
    ]])
    assert.equals(0, status, out)
    assert.matches("N=5", out)
    -- Lua 5.1 cannot tell a finalizer from a task: there the call raises.
    assert.matches(H.lua == "lua5.1" and "GC=false" or "GC=true", out)
    assert.matches("SLEPT=true", out)
    assert.matches("RUN=ok", out)
  end)

  -- The collector runs finalizers wherever it allocates, so a finalizer's
  -- blocking call may run the loop in the middle of one of the library's
  -- own operations (a channel's look and its queueing, a timer's insertion).
  -- Many rounds of tasks, channels and timers, with garbage whose
  -- finalizers sleep or send and receive: every receive of the main chunk
  -- gets its value (no false deadlock), and no finalizer's call fails where
  -- it can run the loop.
  it("blocking calls in finalizers that the loop runs, round after round, never break a later call", function()
    local out, status = script([[
      local mk = newproxy and function(f) local u = newproxy(true); getmetatable(u).__gc = f; return u end
        or function(f) return setmetatable({}, { __gc = f }) end
      local feed = channel.new(64)
      local finalized, failed = 0, 0
      local function garbage(n)
        for i = 1, n do
          local kind = i % 3
          mk(function()
            finalized = finalized + 1
            local ok
            if kind == 0 then ok = pcall(time.sleep, 0)
            elseif kind == 1 then feed:send(i); ok = pcall(feed.receive, feed)
            else local after = time.after(0); ok = pcall(after.receive, after) end
            if not ok then failed = failed + 1 end
          end)
          local _ = { string.rep("x", 10 * i) }
        end
      end
      for round = 1, 1000 do
        local ch = channel.new()
        local n = round % 4 + 1
        for i = 1, n do
          coroutine.spawn(function()
            garbage(12)
            if i % 2 == 0 then time.sleep(0) else coroutine.yield() end
            garbage(12)
            time.after(0):receive()
            ch:send(i)
          end)
        end
        for _ = 1, n do
          garbage(4)
          local ok, err = pcall(ch.receive, ch)
          if not ok then print("ROUND " .. round .. ": " .. tostring(err)); os.exit(1) end
        end
      end
      print("FINALIZED=" .. finalized .. " FAILED=" .. failed)
      print("RUN=" .. exec.run({ "echo", "ok" }).stdout)
    ]], 60)
    assert.equals(0, status, out)
    assert.matches("RUN=ok", out)
    local finalized, failed = out:match("FINALIZED=(%d+) FAILED=(%d+)")
    assert.is_truthy(tonumber(finalized) > 1000, out)
    -- Lua 5.1 cannot tell a finalizer from a task: a finalizer's blocking
    -- call inside a task raises there ("attempt to yield across ...").
    if H.lua ~= "lua5.1" then assert.equals("0", failed, out) end
  end)

  it("a task closed with coroutine.close does not break wait() or wait_tasks()", function()
    if not coroutine.close then return pending("coroutine.close is Lua 5.4") end
    local out, status = script([[
      local co = coroutine.spawn(function() time.sleep(5) end)
      coroutine.spawn(function() time.sleep(0.01) end)
      time.sleep(0.05)
      coroutine.close(co)
      local p = exec.get("process:native"):exec({ "true" }); p:start()
      print("CODE=" .. tostring(p:wait()))
      print("TASKS=" .. tostring(pcall(exec.wait_tasks)))
      print("TASKS2=" .. tostring(pcall(exec.wait_tasks)))
    ]])
    assert.equals(0, status, out)
    assert.matches("CODE=0", out)
    assert.matches("TASKS=true", out)
    assert.matches("TASKS2=true", out)
  end)
end)
