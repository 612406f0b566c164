-- A finalizer that calls the library while the Lua state closes, placed
-- as `lua spec/state_end.lua CASE` says (spec/state_end_spec.lua and
-- scripts/valgrind.sh run it). It prints one line per call of its:
-- "CALL <what> OK" or "CALL <what> ERR <message>". LUA_CPATH finds exec.so.
local case = arg[1]

-- A finalizer is a table's __gc where there is one, else a newproxy's.
local mk = newproxy and function(f) local u = newproxy(true); getmetatable(u).__gc = f; return u end
  or function(f) return setmetatable({}, { __gc = f }) end
-- Strings that reuse freed blocks, so that a read of freed memory shows.
local function junk()
  local t = {}
  for i = 1, 5000 do t[i] = ("A"):rep(19) .. ("%04d"):format(i) end
  return t
end

local exec, P, S, IT, Q

local function report(what, ok, err)
  print("CALL " .. what .. " " .. (ok and "OK" or ("ERR " .. tostring(err))))
end

-- Every entry point, on handles made before (P, S, IT) and after (Q).
local function late()
  local j = junk()
  for _, c in ipairs({
    { "run", function() return exec.run({ "echo", "bye" }).stdout end },
    { "get", function() return exec.get("process:native"):id() end },
    { "define", function() return exec.registry.define("late:x", { kind = "exec.native" }) end },
    { "exec", function()
        local p = exec.get("process:native"):exec({ "printf", "a\nb\n" }); p:start()
        local s = p:stdout_stream(); local l = s:read("l"); for x in s:lines() do l = l .. x end
        return l .. p:wait() end },
    { "spawn", function()
        local r; exec.spawn(function() r = exec.run({ "echo", "t" }).stdout end); exec.wait_tasks(); return r end },
    { "sleep", function() exec.time.sleep(0.001); return true end },
    { "environ", function() return exec.environ().PATH ~= nil end },
    { "quote", function() return exec.quote("a b") end },
    { "step", function() return exec.step() end },
    { "pollfd", function() return exec.pollfd() end },
    { "P:wait", function() return P:wait() end },
    { "S:read", function() return S:read("l") end },
    { "IT", function() return IT() end },
    { "tostring(P)", function() return tostring(P) end },
    { "Q:stdout", function() return Q:stdout_stream():read("a") end },
    { "Q:wait", function() return Q:wait() end },
    { "tostring(Q)", function() return tostring(Q) end },
  }) do
    report(c[1], pcall(c[2]))
  end
  j = nil
end

local function module() exec = require("exec") end
local function handles()
  P = exec.get("process:native"):exec({ "printf", "a\nb\nc\nd\n" }); P:start()
  S = P:stdout_stream()
  assert(S:read("l", 5) == "a")
  IT = S:lines()
  assert(S:read("l") == "b")
end
local function q() Q = exec.get("process:native"):exec({ "echo", "q" }); Q:start() end
local function finalizer() KEEP = mk(late) end

if case == "issue" then
  -- A finalizer made after require("exec") and before the first handle:
  -- the functions it calls must not depend on anything made after it
  -- (every Rust function of the library is made when the library loads).
  module()
  local cleanup = mk(function()
    local j = junk()
    report("run", pcall(exec.run, { "echo", "bye" }))
    j = nil
  end)
  exec.get("process:native"):exec({ "true" })
  _G.keep = cleanup
elseif case == "before-module" then
  finalizer(); module(); handles(); q()
elseif case == "before-handles" then
  module(); finalizer(); handles(); q()
elseif case == "between-handles" then
  module(); handles(); finalizer(); q()
elseif case == "after-all" then
  module(); handles(); q(); finalizer()
elseif case == "before-a-later-user" then
  -- A later finalizer's handle, made while the state closes, takes the
  -- place of the latest sentinel, which Lua 5.1-5.4 never finalize: the
  -- handles made after the first finalizer are then gone before it runs
  -- (their calls say "userdata has been destructed"), but every function
  -- of the library is still there (src/binding/state_end.rs).
  module(); finalizer(); handles(); q()
  KEEP2 = mk(function() exec.run({ "true" }) end)
else
  error("unknown case " .. tostring(case))
end
