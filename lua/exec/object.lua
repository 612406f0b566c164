-- The public objects' shared machinery: the three classes, and how an
-- object is made and checked.
--
-- Each object is an empty table with a metatable of its own, locked
-- (`__metatable`), that holds its state: the raw Rust userdata and the
-- object's fields. So nothing internal is reachable from a handle: `pairs`
-- shows nothing, `getmetatable` returns the class name, and the shared
-- class tables cannot be patched by code that holds a handle.
local sched = (...).sched

local O = {}

-- Taken when the module loads, before a host may sandbox `debug` away.
local dgetmt = debug.getmetatable
O.dgetmt = dgetmt
O.check_open = sched.check_open
O.shown = sched.shown
O.fatal = sched.fatal
local raise = sched.raise
O.raise = raise
local check_open = sched.check_open

local Executor, Process, Stream = {}, {}, {}
Executor.__index, Process.__index, Stream.__index = Executor, Process, Stream
Executor.__name, Process.__name, Stream.__name = "exec.executor", "exec.process", "exec.stream"
O.Executor, O.Process, O.Stream = Executor, Process, Stream
-- The state of `v` if it is an object of `class` (nil otherwise).
function O.state_of(v, class)
  if type(v) ~= "table" then return nil end
  local st = dgetmt(v)
  if type(st) == "table" and st.class == class and st.raw ~= nil then return st end
  return nil
end

function O.describe(v)
  local t = type(v)
  if t == "table" then
    local st = dgetmt(v)
    local class = type(st) == "table" and st.class
    if class == Executor or class == Process or class == Stream then
      return class.__name
    end
  end
  return t
end

-- A new object of `class` whose state is `st`. `st.__index` may already
-- hold a table of the object's own (bound methods) that falls back to the class.
function O.new_object(class, st)
  st.class = class
  st.__index = st.__index or class
  st.__metatable = class.__name
  st.__name = class.__name
  st.__tostring = class.__tostring
  st.__close = class.__close
  return setmetatable({}, st)
end

-- Raise unless `self` is an object of class `mt` (a method called with `.`
-- instead of `:`, or on the wrong object).
function O.check_self(self, mt, name)
  check_open()
  local st = O.state_of(self, mt)
  if not st then
    raise(name .. ": self must be an " .. mt.__name .. " (got " .. O.describe(self) .. "); call it with ':'")
  end
  return st.raw, st
end

-- Same check for functions that must never raise (wait): returns nil, message.
function O.soft_self(self, mt, name)
  check_open()
  local st = O.state_of(self, mt)
  if not st then
    return nil, name .. ": self must be an " .. mt.__name .. " (got " .. O.describe(self) .. ")"
  end
  return st.raw, st
end

function O.arg_error(fname, n, argname, msg)
  raise(string.format("bad argument #%d (%s) to '%s': %s", n, argname, fname, msg))
end

-- A raw function's failure (`nil, message, code[, n]`, see
-- src/binding/handles/mod.rs) for public function `fname`: a bad argument
-- is raised (`names[n]` names it); anything else is raised too when
-- `raises`, else returned as `nil, "fname: message", code`.
function O.failed(fname, msg, code, n, names, raises)
  if code == "bad_argument" and n then O.arg_error(fname, n, names[n], msg) end
  if raises or code == "bad_argument" then raise(fname .. ": " .. msg) end
  return nil, fname .. ": " .. msg, code
end

return O
