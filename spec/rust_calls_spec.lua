-- How many calls from Lua into the library's C (Rust) functions one
-- operation makes: the state machines and byte handling live in Rust, so
-- each common operation is at most 3 calls. Counted with a debug hook: a C
-- function that is not one of Lua's own is one of ours.
local H = require("spec.helper")
local exec = H.exec

-- Every C function of the standard library, reachable from the real
-- globals (busted runs a spec in an environment of its own).
local G = debug.getregistry()[2] -- Lua 5.2+: the globals' slot
if type(G) ~= "table" or type(G.string) ~= "table" then G = getfenv and getfenv(0) or _G end
local function lua_functions()
  local known, seen = {}, {}
  local function walk(t)
    if seen[t] then return end
    seen[t] = true
    for _, v in pairs(t) do
      if type(v) == "function" then known[v] = true
      elseif type(v) == "table" then walk(v) end
    end
  end
  for _, name in ipairs({ "string", "table", "math", "coroutine", "debug", "io", "os", "package", "utf8", "bit", "jit" }) do
    if type(G[name]) == "table" then walk(G[name]) end
  end
  for _, v in pairs(G) do
    if type(v) == "function" then known[v] = true end
  end
  return known
end

-- Calls into the library's C functions made by `fn()`: C functions that
-- are not Lua's own, called from the library's Lua code.
-- Also returns how many of them were each name (`poll`, `collect`...).
local function calls(fn)
  local known = lua_functions()
  local n, by_name = 0, {}
  local getinfo = debug.getinfo
  debug.sethook(function()
    local info = getinfo(2, "Sfn")
    if info and info.what == "C" and not known[info.func] then
      local caller = getinfo(3, "S")
      if caller and caller.short_src:find("lua/exec/", 1, true) then
        n = n + 1
        local name = tostring(info.name)
        by_name[name] = (by_name[name] or 0) + 1
      end
    end
  end, "c")
  fn()
  debug.sethook()
  return n, by_name
end

-- How many times `fn()` made the scheduler park a caller: calls of its
-- `suspend` (also as a tail call, which has no name to go by).
local function parks(fn)
  local n = 0
  local getinfo, suspend = debug.getinfo, exec._internal.sched.suspend
  debug.sethook(function()
    local info = getinfo(2, "f")
    if info and info.func == suspend then n = n + 1 end
  end, "c")
  fn()
  debug.sethook()
  return n
end

describe("calls into Rust per operation", function()
  if H.is_luajit then
    -- LuaJIT reports calls of compiled code to hooks only partly; the
    -- counts are taken on the PUC interpreters.
    it("are counted on the PUC interpreters", function() pending("hooks miss calls in LuaJIT's compiled code") end)
    return
  end

  it("a wait on an exited child: 3 or fewer", function()
    local p = H.native:exec({ "true" })
    p:start()
    exec.time.sleep(0.1)
    local code
    local n = calls(function() code = p:wait() end)
    assert.equals(0, code)
    assert.is_true(n <= 3, n .. " calls")
  end)

  it("a chunk read of buffered data: 3 or fewer", function()
    local p = H.native:exec("echo hello; sleep 0.1")
    p:start()
    local s = p:stdout_stream()
    exec.time.sleep(0.05)
    local got
    local n = calls(function() got = s:read() end)
    assert.equals("hello\n", got)
    assert.is_true(n <= 3, n .. " calls")
    p:wait()
  end)

  -- A local run is started, fed and has its stdin ended in the call that
  -- makes it (Process::begin_run); with nothing else waiting, one collect
  -- takes every turn of the event loop (Process::collect_alone).
  it("exec.run with nothing else waiting: 2, whatever the wakeups", function()
    H.exec.run("echo warm")
    local r
    local n, by = calls(function() r = H.exec.run("echo hi; sleep 0.05; echo there >&2; sleep 0.05") end)
    assert.same({ "hi\n", "there\n" }, { r.stdout, r.stderr })
    assert.equals(2, n)
    assert.same({ exec = 1, collect = 1 }, by)
    n, by = calls(function() r = H.exec.run({ "cat" }, { input = "fed" }) end)
    assert.equals("fed", r.stdout)
    assert.equals(2, n)
  end)

  it("exec.run in a task: one call to set up and start, then one collect per wakeup", function()
    local r, n, by
    exec.spawn(function()
      n, by = calls(function() r = H.exec.run("echo hi; sleep 0.05; echo there") end)
    end)
    exec.wait_tasks()
    assert.equals("hi\nthere\n", r.stdout)
    assert.equals(1, by.exec)
    assert.is_true((by.collect or 0) >= 2, tostring(by.collect))
    assert.equals(n, by.exec + by.collect)
  end)

  -- With nothing else in the program waiting (no task, timer or other
  -- waiter), a blocking call waits in the event loop's poll itself instead
  -- of parking in the scheduler and going round it on every wakeup.
  it("exec.run with nothing else waiting never parks in the scheduler", function()
    H.exec.run("echo warm")
    local r
    local n = parks(function() r = H.exec.run("echo hi; sleep 0.05; echo there") end)
    assert.equals("hi\nthere\n", r.stdout)
    assert.equals(0, n)
  end)

  it("process:wait with nothing else waiting never parks in the scheduler", function()
    local p = H.native:exec("sleep 0.05")
    p:start()
    local code
    local n = parks(function() code = p:wait() end)
    assert.equals(0, code)
    assert.equals(0, n)
  end)

  it("a stream read with nothing else waiting never parks in the scheduler", function()
    local p = H.native:exec("sleep 0.05; echo late")
    p:start()
    local s = p:stdout_stream()
    local got
    local n = parks(function() got = s:read("l") end)
    assert.equals("late", got)
    assert.equals(0, n)
    p:wait()
  end)

  it("but both park while a task has a timer pending", function()
    local task_done = false
    exec.spawn(function() exec.time.sleep(0.01); task_done = true end)
    local n = parks(function() H.exec.run("sleep 0.05") end)
    assert.is_true(n >= 1, n .. " parks")
    assert.is_true(task_done)
    exec.spawn(function() exec.time.sleep(0.01) end)
    local p = H.native:exec("sleep 0.05")
    p:start()
    n = parks(function() p:wait() end)
    assert.is_true(n >= 1, n .. " parks")
  end)

  it("a line read: 3 or fewer, and none for lines already taken in", function()
    local p = H.native:exec("printf 'a\\nb\\nc\\n'; sleep 0.1")
    p:start()
    local s = p:stdout_stream()
    exec.time.sleep(0.05)
    local got
    local n = calls(function() got = s:read("l") end)
    assert.equals("a", got)
    assert.is_true(n <= 3, n .. " calls")
    n = calls(function() got = s:read("l") end)
    assert.equals("b", got)
    assert.equals(0, n)
    p:wait()
  end)

  it("a buffered line (Lua 5.3/5.4): one C function, no Lua code of the library", function()
    if not exec._internal.core.line_readers then return pending("the C readers exist on Lua 5.3 and 5.4") end
    local p = H.native:exec({ "printf", "a\\nb\\nc\\n" })
    p:start()
    local s = p:stdout_stream()
    assert.equals("a", s:read("l", 5))
    local it = s:lines()
    assert.equals("C", debug.getinfo(s.read, "S").what)
    assert.equals("C", debug.getinfo(it, "S").what)
    local lua_calls = 0
    local getinfo, got = debug.getinfo, {}
    debug.sethook(function()
      local info = getinfo(2, "S")
      if info.short_src:find("lua/exec/", 1, true) then lua_calls = lua_calls + 1 end
    end, "c")
    got[1] = s:read("l")
    got[2] = it()
    debug.sethook()
    assert.same({ "b", "c" }, got)
    assert.equals(0, lua_calls)
    p:wait()
  end)
end)
