-- lua-exec inside event loops Lua programs already run: luv, cqueues and
-- copas (the Debian packages), each driving exec.step() from exec.pollfd().
-- In each, a host activity keeps going at its own rate while lua-exec tasks
-- run 50 processes and stream their output, and no exec.step() call holds
-- the host loop for long. Each case runs in a fresh interpreter under a time
-- limit (H.script).
local H = require("spec.helper")

-- 5 tasks x 10 processes, each printing 3 lines over ~30 ms.
local WORKLOAD = [[
  local done, lines = 0, 0
  for w = 1, 5 do
    exec.spawn(function()
      for i = 1, 10 do
        local p = exec.get("process:native"):exec({ "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.01; done" })
        p:start()
        local s = p:stdout_stream()
        while s:read("l") do lines = lines + 1 end -- (not lines(): Lua 5.1 cannot yield from a for iterator)
        assert(p:wait() == 0)
        done = done + 1
      end
    end)
  end
  local function finished() return done == 50 end
]]

-- The longest exec.step() may hold a host loop here. Measured on the
-- development VM: 5-8 ms (a step that starts five processes); the bound
-- leaves room for a loaded CI machine.
local STEP_BOUND_MS = 60

local function has(module)
  local out = H.script("local ok = pcall(require, '" .. module .. "'); print(ok and 'HAVE' or 'MISSING')", 10)
  return out:find("HAVE") ~= nil
end

local function check(out, status)
  assert.equals(0, status, out)
  local lines, step = out:match("LINES=(%d+) MAXSTEP=([%d%.]+)")
  assert.is_truthy(lines, out)
  assert.equals("150", lines, out)
  assert.is_true(tonumber(step) < STEP_BOUND_MS, "an exec.step() took " .. step .. " ms: " .. out)
  return out
end

describe("exec.pollfd() and exec.step() in a host event loop", function()
  it("luv: a uv poll on pollfd and a uv timer; the host's 10 ms timer keeps ticking", function()
    if not has("luv") then return pending("lua-luv is not installed for " .. H.lua) end
    local out = check(H.script(WORKLOAD .. [[
      local uv = require("luv")
      local ticks, max_gap, last = 0, 0, uv.hrtime()
      local ticker = uv.new_timer()
      ticker:start(10, 10, function()
        local t = uv.hrtime()
        max_gap = math.max(max_gap, (t - last) / 1e6)
        last = t
        ticks = ticks + 1
      end)
      -- The adapter: step when the descriptor is readable or the step's timer is due.
      local poll, timer, max_step = uv.new_poll(exec.pollfd()), uv.new_timer(), 0
      local function drive()
        local t = uv.hrtime()
        local wait = exec.step()
        max_step = math.max(max_step, (uv.hrtime() - t) / 1e6)
        if finished() then
          poll:close(); timer:close(); ticker:close()
        elseif wait then
          timer:start(math.ceil(wait * 1000), 0, drive)
        else
          timer:stop()
        end
      end
      poll:start("r", drive)
      drive()
      local t0 = uv.hrtime()
      uv.run()
      local took = (uv.hrtime() - t0) / 1e9
      assert(ticks >= took / 0.010 * 0.5, "the host timer was starved: " .. ticks .. " ticks in " .. took .. " s")
      print(string.format("LINES=%d MAXSTEP=%.1f TICKS=%d MAXGAP=%.1f", lines, max_step, ticks, max_gap))
    ]], 60))
    assert.matches("TICKS=%d+", out)
  end)

  it("cqueues: a pollable object { pollfd, events } with the step's timeout; a cqueues sleeper keeps ticking", function()
    if not has("cqueues") then return pending("lua-cqueues is not installed for " .. H.lua) end
    check(H.script(WORKLOAD .. [[
      local cqueues = require("cqueues")
      local cq, mono = cqueues.new(), cqueues.monotime
      local ticks, max_step = 0, 0
      cq:wrap(function()
        while not finished() do cqueues.sleep(0.01); ticks = ticks + 1 end
      end)
      -- The adapter: a cqueues thread that steps lua-exec whenever its
      -- descriptor is readable or its next timer is due.
      local pollable = { pollfd = exec.pollfd(), events = "r" }
      cq:wrap(function()
        while not finished() do
          local t = mono()
          local wait = exec.step()
          max_step = math.max(max_step, (mono() - t) * 1000)
          if finished() then break end
          cqueues.poll(pollable, wait or 1)
        end
      end)
      local t0 = mono()
      assert(cq:loop())
      local took = mono() - t0
      assert(ticks >= took / 0.010 * 0.5, "the host sleeper was starved: " .. ticks .. " ticks in " .. took .. " s")
      print(string.format("LINES=%d MAXSTEP=%.1f TICKS=%d", lines, max_step, ticks))
    ]], 60))
  end)

  it("copas: the host loop calls exec.step() and copas.step(); a copas echo server and client keep talking", function()
    if not has("copas") then return pending("lua-copas is packaged for Lua 5.1 only (here: " .. H.lua .. ")") end
    check(H.script(WORKLOAD .. [[
      local copas, socket = require("copas"), require("socket")
      local echoed, max_step = 0, 0
      local server = assert(socket.bind("127.0.0.1", 0))
      local _, port = server:getsockname()
      copas.addserver(server, function(c)
        c = copas.wrap(c)
        while true do
          local l = c:receive("*l")
          if not l then break end
          c:send(l .. "\n")
        end
      end)
      copas.addthread(function()
        local raw = socket.tcp()
        assert(copas.connect(raw, "127.0.0.1", port))
        local c = copas.wrap(raw)
        for i = 1, 200 do
          c:send(i .. "\n")
          assert(c:receive("*l") == tostring(i))
          echoed = echoed + 1
        end
        raw:close()
      end)
      -- The adapter: copas (1.2 here) cannot wait on a raw descriptor, so
      -- the host loop steps lua-exec between copas steps of at most 5 ms.
      while not (finished() and echoed == 200) do
        local t = socket.gettime()
        local wait = exec.step()
        max_step = math.max(max_step, (socket.gettime() - t) * 1000)
        copas.step(math.min(wait or 0.005, 0.005))
      end
      print(string.format("LINES=%d MAXSTEP=%.1f ECHOED=%d", lines, max_step, echoed))
    ]], 60))
  end)

  it("a blocking call from a host callback runs lua-exec's loop in place: it returns, tasks go on, the host waits", function()
    if not has("luv") then return pending("lua-luv is not installed for " .. H.lua) end
    local out, status = H.script([[
      local uv = require("luv")
      local ticks = 0
      exec.spawn(function() for _ = 1, 5 do time.sleep(0.02); ticks = ticks + 1 end end)
      local got
      local t = uv.new_timer()
      t:start(1, 0, function()
        -- Outside any lua-exec task: blocks this callback (and so the luv
        -- loop) until the child is done, running lua-exec's tasks meanwhile.
        got = exec.run({ "sh", "-c", "sleep 0.2; echo done" }).stdout
        t:close()
      end)
      uv.run()
      print("GOT=" .. tostring(got) .. "TICKS=" .. ticks)
      local ok, err = pcall(function()
        local co = exec.spawn(function() exec.step() end)
        assert(exec.wait_tasks() == nil)
      end)
      print("INTASK=" .. tostring(ok))
    ]], 30)
    assert.equals(0, status, out)
    assert.matches("GOT=done\nTICKS=5", out)
    assert.matches("exec.step: cannot be called from inside a task", out)
  end)
end)

-- Work made outside exec.step(), by the host's own callbacks, once lua-exec
-- has nothing left to do (its last step returned nil: the host waits on the
-- descriptor alone): each must make the descriptor readable, and the next
-- step must run it. Each host callback records when it made the work, and
-- lua-exec's side when it happened; the delays are printed at the end.
local LATE_MS = 150 -- a delay that means "not woken" (the work takes ~0 ms)

-- The lua-exec side, shared by both hosts: a task that waits on `inbox`
-- from the first step on, and what the callbacks call (`make(n)`, n = 1..4):
-- a spawn, a send to the waiting task, a time.after (fired or not by the
-- next call), a blocking call whose loop leaves a sleeping task behind.
local MADE_OUTSIDE = [[
  local log, after = {}, nil
  local inbox = channel.new()
  exec.spawn(function() inbox:receive(); log.sent = now() end)
  local function make(n)
    if n == 1 then
      log.spawn_at = now(); exec.spawn(function() log.spawned = now() end)
    elseif n == 2 then
      log.send_at = now(); inbox:send("x") -- (the task waits: this hands over at once)
    elseif n == 3 then
      after = time.after(0.02) -- (its timer puts a value in it: no task involved)
    else
      -- (What happened so far is taken first: this call's own loop runs
      -- whatever was left.) The timer was due 80 ms ago.
      log.spawned_seen, log.sent_seen, log.fired = log.spawned, log.sent, after:len() == 1
      -- A blocking call in a callback runs the loop in place; a task it
      -- starts then sleeps past its end: the host must still wake it.
      log.sleep_at = now()
      exec.spawn(function() time.sleep(0.1); log.slept = now() end)
      exec.run({ "true" })
    end
  end
  local function report()
    local function delay(at, done, wait)
      return done and string.format("%.0f", done - at - (wait or 0)) or "never"
    end
    print("SPAWN=" .. delay(log.spawn_at, log.spawned_seen) .. " SEND=" .. delay(log.send_at, log.sent_seen) ..
      " AFTER=" .. (log.fired and "0" or "never") .. " SLEEP=" .. delay(log.sleep_at, log.slept, 100))
  end
]]

local function check_delays(out, status)
  assert.equals(0, status, out)
  local names = { "SPAWN", "SEND", "AFTER", "SLEEP" }
  for _, name in ipairs(names) do
    local d = out:match(name .. "=(%w+)")
    assert.is_truthy(d and d ~= "never", name .. " never happened: " .. out)
    assert.is_true(tonumber(d) < LATE_MS, name .. " came " .. d .. " ms late: " .. out)
  end
end

describe("work made outside exec.step() wakes the host loop", function()
  it("luv: a spawn, a send, a time.after and a blocking call from luv callbacks after lua-exec settled", function()
    if not has("luv") then return pending("lua-luv is not installed for " .. H.lua) end
    local out, status = H.script([[
      local uv = require("luv")
      local t0 = uv.hrtime()
      local function now() return (uv.hrtime() - t0) / 1e6 end
    ]] .. MADE_OUTSIDE .. [[
      -- The README's adapter.
      local poll, timer = uv.new_poll(exec.pollfd()), uv.new_timer()
      local function drive()
        local wait = exec.step()
        if wait then timer:start(math.ceil(wait * 1000), 0, drive) else timer:stop() end
      end
      poll:start("r", drive)
      drive()
      -- Host callbacks, 100 ms apart: lua-exec has settled before each.
      local n, cb = 0, uv.new_timer()
      cb:start(100, 100, function()
        n = n + 1
        if n <= 4 then return make(n) end
        if n == 7 then cb:close(); poll:close(); timer:close() end
      end)
      uv.run()
      report()
    ]], 30)
    check_delays(out, status)
  end)

  it("cqueues: a spawn, a send, a time.after and a blocking call from a cqueues thread after lua-exec settled", function()
    if not has("cqueues") then return pending("lua-cqueues is not installed for " .. H.lua) end
    local out, status = H.script([[
      local cqueues = require("cqueues")
      local cq, mono = cqueues.new(), cqueues.monotime
      local t0 = mono()
      local function now() return (mono() - t0) * 1000 end
    ]] .. MADE_OUTSIDE .. [[
      -- The README's adapter.
      local pollable = { pollfd = exec.pollfd(), events = "r" }
      cq:wrap(function()
        while true do cqueues.poll(pollable, exec.step() or 60) end
      end)
      -- The host's own thread, 100 ms between calls.
      cq:wrap(function()
        for n = 1, 4 do cqueues.sleep(0.1); make(n) end
        cqueues.sleep(0.3)
        report()
        os.exit(0) -- (the adapter's thread never ends)
      end)
      assert(cq:loop())
    ]], 30)
    check_delays(out, status)
  end)
end)
