-- What the library guarantees under real use (README, "What the library
-- guarantees"). Every case runs in a fresh interpreter under `timeout -s
-- KILL`, so that a regression fails with a message instead of hanging the
-- suite, and so that Ctrl-C, state end and fork can be tried for real.
local H = require("spec.helper")

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

local function settle_gone(marker, secs)
  local deadline = H.exec.time.now() + (secs or 5)
  while running(marker) > 0 and H.exec.time.now() < deadline do H.exec.time.sleep(0.05) end
  return running(marker) == 0
end

describe("output is never lost because a handle was collected", function()
  it("a lines() iterator keeps its process alive", function()
    local out, status = script([[
      local function lines_of(cmd)
        local p = exec.get("process:native"):exec(cmd); p:start(); return p:stdout_stream():lines()
      end
      local n = 0
      for _ in lines_of("for i in $(seq 1 50); do echo $i; sleep 0.01; done") do
        n = n + 1
        if n == 10 then collectgarbage(); collectgarbage() end
      end
      print("LINES=" .. n)
    ]])
    assert.equals(0, status, out)
    assert.matches("LINES=50", out)
  end)

  it("a stream keeps its process alive, and the child is still reaped once both are gone", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("sleep 0.3; echo late")
      p:start()
      local pid = p:pid()
      local s = p:stdout_stream()
      p = nil
      collectgarbage(); collectgarbage()
      print("READ=" .. tostring(s:read("l")))
      s = nil
      collectgarbage(); collectgarbage()
      print("GONE=" .. tostring(H.gone(pid, 5)))
    ]])
    assert.equals(0, status, out)
    assert.matches("READ=late", out)
    assert.matches("GONE=true", out)
  end)
end)

describe("run captures everything, whatever the read-ahead limit", function()
  -- run reads both outputs to their end itself (Process::collect_step):
  -- neither is ever read ahead into the limited buffer, so a buffer_limit
  -- far below the output drops nothing, on either stream.
  it("both streams whole with buffer_limit = 1, from the main chunk and from tasks", function()
    local out, status = script([[
      local cmd = "head -c 3000000 /dev/zero | tr '\\0' o; head -c 2000000 /dev/zero | tr '\\0' e >&2; " ..
                  "head -c 1000000 /dev/zero | tr '\\0' o"
      local r = exec.run(cmd, { buffer_limit = 1 })
      print("MAIN=" .. #r.stdout .. "," .. #r.stderr .. "," .. r.code .. "," .. tostring(not r.stdout:find("[^o]")))
      local sizes = {}
      for i = 1, 3 do
        coroutine.spawn(function()
          local t = exec.run(cmd, { buffer_limit = 1 })
          sizes[i] = #t.stdout .. "," .. #t.stderr
        end)
      end
      exec.wait_tasks()
      print("TASKS=" .. table.concat(sizes, ";"))
    ]], 60)
    assert.equals(0, status, out)
    assert.matches("MAIN=4000000,2000000,0,true", out, 1, true)
    assert.matches("TASKS=4000000,2000000;4000000,2000000;4000000,2000000", out, 1, true)
  end)
end)

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

describe("no deadlock on the stream nobody reads, and bounded memory", function()
  it("reading stdout alone does not hang on a full stderr", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 1000000 /dev/zero >&2; echo done"); p:start()
      print("OUT=" .. p:stdout_stream():read("a"))
      print("CODE=" .. p:wait())
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("OUT=done", out)
    assert.matches("CODE=0", out)
  end)

  it("stderr taken in while stdout was read is still there to read afterwards", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 1000000 /dev/zero | tr '\\0' e >&2; echo done"); p:start()
      local o = p:stdout_stream():read("a")
      local e = p:stderr_stream():read("a")
      print("OUT=" .. o .. "ERRLEN=" .. #e .. " ALLE=" .. tostring(not e:find("[^e]")))
      print("CODE=" .. p:wait())
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("OUT=done\nERRLEN=1000000 ALLE=true", out)
  end)

  it("an endless writer nobody reads does not grow memory without bound while wait() runs", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec({ "yes" }); p:start()
      local s = p:stdout_stream()
      local before = H.rss_kib()
      print("WAIT=" .. tostring(select(2, p:wait("3s"))))
      local grown = H.rss_kib() - before
      print("GROWN_MIB=" .. math.floor(grown / 1024))
      p:close()
      local chunk, err = s:read()
      print("FIRST=" .. tostring(chunk and #chunk) .. " " .. tostring(err))
    ]], 20)
    assert.equals(0, status, out)
    assert.matches("WAIT=timeout", out)
    local grown = tonumber(out:match("GROWN_MIB=(%-?%d+)"))
    assert.is_truthy(grown and grown < 40, out)
    assert.matches("FIRST=nil [^\n]*dropped", out)
  end)

  it("buffer_limit sets the limit per process", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 300000 /dev/zero >&2; echo done", { buffer_limit = 100000 })
      p:start()
      print("OUT=" .. p:stdout_stream():read("a"))
      local s = p:stderr_stream()
      local chunk, err = s:read()
      print("FIRST=" .. tostring(chunk) .. " " .. tostring(err))
      local rest = s:read("a")
      print("REST=" .. #rest)
      print("CODE=" .. p:wait())
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("OUT=done", out)
    assert.matches("FIRST=nil [^\n]*200000 bytes[^\n]*dropped", out)
    assert.matches("REST=100000", out)
  end)

  it("under a memory limit, waiting on an endless writer neither aborts nor grows", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 800000000 /dev/zero"); p:start()
      local s = p:stdout_stream()
      print("CODE=" .. tostring(p:wait()))
      local chunk, err = s:read()
      print("FIRST=" .. tostring(chunk) .. " " .. tostring(err))
    ]], 30, { shell = "ulimit -v 400000; " })
    assert.equals(0, status, out)
    assert.matches("CODE=0", out)
    assert.matches("FIRST=nil [^\n]*dropped", out)
  end)

  it("running out of memory fails the read instead of aborting", function()
    -- read("a") gathers the output in Rust: past the memory limit it
    -- returns nil, message (or Lua raises its own memory error).
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 800000000 /dev/zero"); p:start()
      local ok, data, err = pcall(function() return p:stdout_stream():read("a") end)
      print("OK=" .. tostring(ok) .. " DATA=" .. tostring(ok and data and #data or nil) .. " ERR=" .. tostring(err or (not ok and data)))
      p:close()
    ]], 30, { shell = "ulimit -v 400000; " })
    assert.equals(0, status, out)
    assert.matches("DATA=nil ERR=[^\n]*memory", out)
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

describe("state end and fork are safe", function()
  it("a finalizer that runs after the module's teardown gets a plain error", function()
    local mk = [[ local mk = newproxy and function(f) local u = newproxy(true); getmetatable(u).__gc = f; return u end
        or function(f) return setmetatable({}, { __gc = f }) end ]]
    local out, status = H.run_script(mk .. [[
      local exec
      KEEP = mk(function()
        for _, call in ipairs({
          function() return exec.run("true") end,
          function() return exec.get("process:native") end,
          function() return exec.registry.define("a:b", { kind = "x" }) end,
          -- lines already buffered are no exception
          function() return S:read("l") end,
          function() return IT() end,
        }) do
          local ok, err = pcall(call)
          print("LATE=" .. tostring(ok) .. " " .. tostring(err))
        end
      end)
      exec = require("exec")
      exec.run("true")
      P = exec.get("process:native"):exec({ "printf", "a\\nb\\nc\\nd\\n" }); P:start()
      S = P:stdout_stream()
      assert(S:read("l", 5) == "a")
      IT = S:lines()
      assert(S:read("l") == "b")
    ]], "timeout -s KILL 20 ")
    assert.equals(0, status, out)
    local _, n = out:gsub("LATE=false exec: the Lua state is closing", "")
    assert.equals(5, n, out)
  end)

  -- spec/state_end.lua CASE: a finalizer, placed as CASE says, that calls
  -- the library while the state closes. Each call works or raises the
  -- plain error, and the interpreter ends cleanly.
  local function state_end(case)
    local p = io.popen("timeout -s KILL 30 " .. H.lua .. " spec/state_end.lua " .. case .. " 2>&1; echo \"EXIT=$?\"")
    local out = p:read("*a")
    p:close()
    assert.equals("0", out:match("EXIT=(%d+)%s*$"), out)
    assert.is_nil(out:find("Segmentation fault", 1, true), out)
    assert.is_nil(out:find("memory allocation", 1, true), out)
    local calls, ok = {}, 0
    for line in out:gmatch("CALL [^\n]*") do
      calls[#calls + 1] = line
      if line:find(" OK$") then ok = ok + 1 end
    end
    return calls, ok, out
  end
  local function works_or_closing(line)
    return line:find(" OK$") or line:find(" ERR exec: the Lua state is closing$")
  end

  it("a finalizer made after require('exec') finds the library working or closed, never freed", function()
    local calls, _, out = state_end("issue")
    assert.equals(1, #calls, out)
    assert.is_truthy(works_or_closing(calls[1]), out)
  end)

  for case, where in pairs({
    ["before-module"] = "before the module",
    ["before-handles"] = "between the module and the handles",
    ["between-handles"] = "between the handles",
    ["after-all"] = "after everything",
  }) do
    it("every call from a finalizer made " .. where .. " works or raises the plain error", function()
      local calls, ok, out = state_end(case)
      assert.equals(17, #calls, out)
      for _, line in ipairs(calls) do assert.is_truthy(works_or_closing(line), out) end
      -- After everything, nothing of the library has gone when it runs
      -- (but Lua 5.1 runs pending finalizers inside a big allocation).
      if case == "after-all" and H.lua ~= "lua5.1" then assert.equals(17, ok, out) end
    end)
  end

  it("before another finalizer that uses the library, the library's functions are all still there", function()
    local calls, _, out = state_end("before-a-later-user")
    assert.equals(17, #calls, out)
    for _, line in ipairs(calls) do
      assert.is_truthy(works_or_closing(line) or
        (line:find("^CALL [PSIQt]") and line:find(" ERR userdata has been destructed$")), out)
    end
  end)

  it("a forked copy of the host never signals the parent's children (LuaJIT ffi)", function()
    if not H.is_luajit then return pending("fork needs LuaJIT's ffi; the core's cargo test covers it") end
    local out, status = script([[
      local ffi = require("ffi")
      ffi.cdef("int fork(void); void _exit(int); int waitpid(int, int*, int);")
      local p = exec.get("process:native"):exec({ "sleep", "30" }); p:start()
      local pid = p:pid()
      local child = ffi.C.fork()
      if child == 0 then
        p:close(); p = nil; collectgarbage(); collectgarbage()
        os.exit(0, true)
      end
      ffi.C.waitpid(child, nil, 0)
      time.sleep(0.2)
      print("ALIVE=" .. tostring(H.proc_state(pid) ~= nil and H.proc_state(pid) ~= "Z"))
      p:close()
    ]])
    assert.equals(0, status, out)
    assert.matches("ALIVE=true", out)
  end)
end)
