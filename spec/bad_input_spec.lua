-- Every public function and method, called with every kind of wrong value:
-- each call either works as documented or raises a plain-string error that
-- names the function; none crashes or hangs. Then a seeded random walk over
-- handles in every state, checking the invariants after each step.
local H = require("spec.helper")
local exec = H.exec
local ex = exec.get("process:native") -- this file's own: the release case must not touch others'

local BAD = {
  { "nil", nil }, { "true", true }, { "false", false }, { "NaN", 0 / 0 }, { "inf", math.huge },
  { "-inf", -math.huge }, { "huge", 2 ^ 63 }, { "negative", -1 }, { "zero", 0 }, { "fraction", 0.5 },
  { "empty string", "" }, { "NUL string", "a\0b" }, { "table", {} }, { "function", function() end },
  { "userdata", io.stdout }, { "coroutine", coroutine.create(function() end) },
  { "channel", exec.channel.new(1) }, { "executor", exec.get("process:native") },
}

-- Methods that must never raise, only return nil, message.
local NEVER_RAISES = { ["process:wait"] = true }

local function check_call(fname, fn, ...)
  local results = { pcall(fn, ...) }
  if results[1] then
    if NEVER_RAISES[fname] then
      -- fine: wait returns code or nil, message
      assert(results[2] ~= nil or type(results[3]) == "string", fname .. " returned nil without a message")
    end
    return true
  end
  local err = results[2]
  assert.equals("string", type(err), fname .. " raised a " .. type(err))
  assert.is_truthy(err:find(fname, 1, true), "error does not name " .. fname .. ": " .. err)
  assert.is_false(NEVER_RAISES[fname] or false, fname .. " raised: " .. err)
  return false
end

-- Fresh objects in interesting states, made per call so that one call's
-- effect does not leak into the next.
local function running()
  local p = ex:exec({ "sleep", "5" })
  p:start()
  return p
end
local function finished()
  local p = ex:exec({ "true" })
  p:start()
  p:wait()
  return p
end
local function stream()
  local p = ex:exec({ "echo", "x" })
  p:start()
  return p:stdout_stream(), p
end

describe("bad input", function()
  local cases = {
    { "exec.get", function(v) return exec.get(v) end },
    { "exec.registry.define", function(v) return exec.registry.define(v, { kind = "exec.native" }) end },
    { "exec.registry.define", function(v) return exec.registry.define("bad:input" .. tostring(math.random()), v) end },
    { "exec.registry.define", function(v)
        return exec.registry.define("bad:opt" .. tostring(math.random()), { kind = "exec.native", max_processes = v })
      end },
    { "exec.registry.define", function(v)
        return exec.registry.define("bad:env" .. tostring(math.random()), { kind = "exec.native", default_env = { A = v } })
      end },
    { "exec.registry.kind", function(v) return exec.registry.kind(v) end },
    { "executor:exec", function(v) return ex:exec(v) end },
    { "executor:exec", function(v) return ex:exec({ "echo", v }) end },
    { "executor:exec", function(v) return ex:exec("true", v) end },
    { "executor:exec", function(v) return ex:exec("true", { work_dir = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { env = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { env = { A = v } }) end },
    { "executor:exec", function(v) return ex:exec("true", { stdin = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { stderr = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { process_group = v }) end },
    { "executor:exec", function(v) return ex.exec(v, "true") end },
    { "executor:exec", function(v) return ex:exec("true", { rlimits = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { rlimits = { nofile = v } }) end },
    { "executor:exec", function(v) return ex:exec("true", { uid = v, gid = 0 }) end },
    { "executor:exec", function(v) return ex:exec("true", { groups = { v } }) end },
    { "executor:exec", function(v) return ex:exec("true", { umask = v, nice = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { kill_on_parent_death = v, argv0 = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { fds = v }) end },
    { "executor:exec", function(v) return ex:exec("true", { fds = { [3] = v } }) end },
    { "exec.run", function(v) return exec.run("true", { max_output = v }) end },
    { "exec.which", function(v) return exec.which(v) end },
    { "exec.which", function(v) return exec.which("sh", v) end },
    { "executor:release", function(v) return ex.release(v) end },
    { "process:start", function(v) return ex:exec("true").start(v) end },
    { "process:wait", function(v) return ex:exec("true").wait(v) end },
    { "process:signal", function(v) local p = running(); local r = { p:signal(v) }; p:close(true); return unpack(r) end },
    { "process:signal", function(v) return finished():signal(v) end },
    { "process:close", function(v) local p = running(); return p:close(v) end },
    { "process:close", function(v) return ex:exec("true").close(v) end },
    { "process:stdout_stream", function(v) return ex:exec("true").stdout_stream(v) end },
    { "process:stderr_stream", function(v) return finished().stderr_stream(v) end },
    { "process:write_stdin", function(v) local p = running(); local r = { p:write_stdin(v) }; p:close(true); return unpack(r) end },
    { "process:write_stdin", function(v) return finished():write_stdin(v) end },
    { "process:close_stdin", function(v) return finished().close_stdin(v) end },
    { "process:pid", function(v) return ex:exec("true").pid(v) end },
    { "stream:read", function(v) local s, p = stream(); local r = { s:read(v) }; p:wait(); return unpack(r) end },
    { "stream:read", function(v) local s, p = stream(); return s.read(v) end },
    { "stream:close", function(v) local s = stream(); return s.close(v) end },
    { "stream:lines", function(v) local s = stream(); return s.lines(v) end },
    { "coroutine.spawn", function(v) return exec.spawn(v) end },
    { "channel.new", function(v) return exec.channel.new(v) end },
    { "channel:send", function(v) local ch = exec.channel.new(1); return ch.send(v, 1) end },
    { "channel:receive", function(v) return exec.channel.new(1).receive(v) end },
    { "channel:close", function(v) return exec.channel.new(1).close(v) end },
    { "channel.select", function(v) return exec.channel.select(v) end },
    { "channel.select", function(v) return exec.channel.select({ v }) end },
    { "time.sleep", function(v)
        if type(v) == "number" and v > 0 and v == v then return end -- a real (long) sleep
        return exec.time.sleep(v)
      end },
    { "time.after", function(v) return exec.time.after(v) end },
    { "time.parse_duration", function(v) return exec.time.parse_duration(v) end },
  }
  unpack = unpack or table.unpack

  for _, case in ipairs(cases) do
    local fname, call = case[1], case[2]
    it(fname .. " never crashes or hangs on wrong values", function()
      for _, bad in ipairs(BAD) do
        local ok, err = pcall(check_call, fname, call, bad[2])
        if not ok then error(fname .. " with " .. bad[1] .. ": " .. tostring(err), 0) end
      end
    end)
  end

  it("raise plain strings, never userdata", function()
    local _, err = pcall(ex.exec, ex, {})
    assert.equals("string", type(err))
    _, err = pcall(exec.get, "no:such")
    assert.equals("string", type(err))
  end)
end)

describe("a seeded random walk over handles", function()
  local seed = tonumber(os.getenv("LUA_EXEC_SEED") or "") or 20261127
  local steps = H.stress and 20000 or 1500
  local commands = {
    { "echo", "hi" }, "printf abc >&2; exit 3", { "sleep", "0.05" }, { "head", "-c", "100000", "/dev/zero" },
    { "timeout", "0.5", "cat" }, "trap '' TERM; sleep 0.2",
  }
  -- Every command ends by itself, so that reads cannot rightly block
  -- forever; `timeout ... cat` runs as a process group, so that a signal to
  -- `timeout` also ends the `cat` that holds the pipes.
  local function options(cmd)
    if type(cmd) == "table" and cmd[1] == "timeout" then return { process_group = true } end
  end

  it("keeps every invariant (seed " .. seed .. ", " .. steps .. " steps)", function()
    math.randomseed(seed)
    local handles = {}
    local codes = {}
    local ops = {
      function()
        local cmd = commands[math.random(#commands)]
        handles[#handles + 1] = ex:exec(cmd, options(cmd))
      end,
      function(p) local ok, err = pcall(p.start, p); assert(ok or err:match("^.-process:start: ")) end,
      function(p)
        local code, err = p:wait()
        assert(code ~= nil or type(err) == "string")
        if code then
          if codes[p] then assert.equals(codes[p], code, "wait changed its answer") end
          codes[p] = code
        end
      end,
      function(p) assert.is_true(p:close(math.random() < 0.5)) end,
      function(p)
        -- Any number but the stop signals (19-22), which would leave a child
        -- stopped and a later read or wait rightly waiting forever.
        local sigs = { 0, 1, 2, 3, 9, 10, 12, 13, 14, 15, 18, 23, 28, 34, 64, 65, 70, -1 }
        local ok, err = p:signal(sigs[math.random(#sigs)])
        assert(ok == true or type(err) == "string")
      end,
      function(p)
        local ok, err = p:write_stdin(string.rep("z", math.random(0, 200000)))
        assert(ok == true or type(err) == "string")
      end,
      function(p)
        local ok, err = p:close_stdin()
        assert(ok == true or type(err) == "string")
      end,
      function(p)
        local ok, s = pcall(p.stdout_stream, p)
        if ok then
          local data, err = s:read(math.random(1, 70000))
          assert(data == nil or type(data) == "string")
          assert(err == nil or type(err) == "string")
        end
      end,
      function(p)
        local ok, s = pcall(p.stderr_stream, p)
        if ok then assert.same({ true, nil }, { s:close() }) end
      end,
      function(p) local pid = p:pid(); assert(pid == nil or pid > 0) end,
      function() collectgarbage("step") end,
    }
    for _ = 1, steps do
      if #handles == 0 or math.random() < 0.08 then
        ops[1]()
      else
        local i = math.random(#handles)
        ops[math.random(2, #ops)](handles[i])
        if #handles > 30 then
          local p = table.remove(handles, 1)
          p:close(true)
        end
      end
    end
    for _, p in ipairs(handles) do p:close(true) end
    handles, codes = nil, nil
    collectgarbage()
    collectgarbage()
    assert.equals(0, H.children_settle(10))
    assert.equals(0, H.zombies_of(H.own_pid()))
  end)
end)

describe("a huge offending value", function()
  it("is cut in the message: at most 200 bytes of it and its size", function()
    local big = ("A"):rep(1024 * 1024)
    local p = ex:exec({ "sleep", "5" })
    p:start()
    local s = p:stdout_stream()
    local calls = {
      { "signal name", function() return p:signal(big) end },
      { "close signal", function() return p:close(big) end },
      { "read format", function() return s:read(big) end },
      { "lines format", function() return s:lines(big) end },
      { "duration", function() return p:wait(big) end },
      { "resource id", function() return exec.get(big .. ":x") end },
      { "bad resource id", function() return exec.registry.define(big, { kind = "exec.native" }) end },
      { "option name", function() return ex:exec("true", { [big] = 1 }) end },
      { "stdio mode", function() return ex:exec("true", { stdout = big }) end },
      { "missing program", function() return ex:exec({ big }):start() end },
      { "work_dir", function() return ex:exec({ "true" }, { work_dir = "/" .. big }):start() end },
      { "whitelist", function()
          exec.registry.define("cut:wl", { kind = "exec.native", command_whitelist = { "true" } })
          return exec.get("cut:wl"):exec(big)
        end },
    }
    for _, c in ipairs(calls) do
      local ok, a, b = pcall(c[2])
      local msg = ok and b or a
      assert.is_string(msg, c[1])
      assert.is_true(#msg < 1000, c[1] .. ": a message of " .. #msg .. " bytes")
      assert.is_truthy(msg:find("(1048576 bytes)", 1, true) or msg:find("bytes)", 1, true), c[1] .. ": " .. msg)
    end
    p:close(true)
  end)
end)
