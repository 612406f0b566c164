-- Assembles the public `exec` module from the raw core and the shim parts,
-- and provides coroutine.spawn, channel and require("time") for scripts
-- that use them without loading anything else (as the spec's examples do).
local core, modules = ...

local cache_key = "lua-exec.module"
local reg = debug.getregistry()

local exec = reg[cache_key]
if not exec then
  -- LuaJIT never runs a finalizer on a trace, but every trace exit (any
  -- guard of compiled code that fails) takes a GC step while the collector
  -- is in its atomic or finalize phase (lj_trace_exit), and that step runs
  -- finalizers; interpreted, the collector runs only where code allocates.
  -- The scheduler's and the channels' code stays interpreted, so that a
  -- finalizer that calls into the library cannot come between a look at
  -- their state and the change that depends on it (sched.lua,
  -- "Finalizers"): every file that holds such blocks, fifo.lua and
  -- timers.lua included (called only from interpreted code, a function of
  -- theirs could still grow hot and be compiled as a trace of its own).
  -- jit.off(chunk, true) marks the chunk and every function written in it,
  -- before the chunk runs. Marking only the functions that hold such
  -- blocks gains nothing: a trace that reaches a call to one of them is
  -- aborted, and every hot path of the scheduler reaches one.
  local jit = rawget(_G, "jit") or package.loaded.jit
  if type(jit) == "table" and jit.off then
    for _, name in ipairs({ "fifo", "timers", "sched", "channel" }) do
      jit.off(modules[name], true)
    end
  end
  -- Each part gets the parts it uses by name from `parts`, which raises
  -- for a name it does not hold (yet): a slip in the wiring is an error
  -- when the module loads, not a nil found later.
  local parts = setmetatable({ core = core }, {
    __index = function(_, name) error("exec: no shim part named '" .. tostring(name) .. "' (yet)", 2) end,
  })
  local function load(name)
    local part = modules[name](parts)
    rawset(parts, name, part)
    return part
  end
  load("fifo")
  load("timers")
  local sched = load("sched")
  local channel = load("channel")
  local time = load("time")
  local object = load("object")
  local registry = load("registry")
  local stream = load("stream")
  local scanner = load("scanner")
  load("slots")
  local process = load("process")
  local run = load("run")

  exec = {
    get = registry.get,
    run = run.run,
    quote = run.quote,
    which = run.which,
    -- A copy: changing it changes nothing in the library.
    signals = (function()
      local t = {}
      for name, n in pairs(core.signals) do t[name] = n end
      return t
    end)(),
    environ = function()
      sched.check_open()
      return core.environ()
    end,
    registry = registry.registry,
    spawn = sched.spawn,
    channel = { new = channel.new, select = channel.select },
    time = time,
    wait_tasks = sched.run_all,
    step = sched.step,
    pollfd = sched.pollfd,
    version = core.version,
    _VERSION = "lua-exec " .. core.version,
    -- Introspection for tests and tools.
    _internal = { core = core, sched = sched, Process = object.Process, Stream = object.Stream,
                  Executor = object.Executor, Channel = channel.Channel, Scanner = scanner.Scanner },
  }
  reg[cache_key] = exec

  -- Finalized when the state closes, before the library's own finalizers
  -- (finalizers run in the reverse order of creation): from then on every
  -- entry point raises "exec: the Lua state is closing" instead of calling
  -- into code that is being torn down (a finalizer of the host's that was
  -- created before require("exec") runs after ours). Each new handle makes
  -- a later sentinel that does the same (src/binding/state_end.rs); this
  -- first one is the last resort.
  reg["lua-exec.on_close"] = sched.set_closing
  local sentinel
  if newproxy then
    sentinel = newproxy(true)
    getmetatable(sentinel).__gc = function() sched.set_closing() end
  else
    sentinel = setmetatable({}, { __gc = function() sched.set_closing() end })
  end
  reg["lua-exec.sentinel"] = sentinel
end

-- Install the globals the spec's examples rely on, never replacing what a
-- script or another library already put there. Done on every load: a test
-- runner may restore globals between files.
if coroutine.spawn == nil then coroutine.spawn = exec.spawn end
if rawget(_G, "channel") == nil then rawset(_G, "channel", exec.channel) end
if package.loaded.time == nil and package.preload.time == nil then
  local elsewhere = package.searchpath and
    (package.searchpath("time", package.path) or package.searchpath("time", package.cpath))
  if not elsewhere then
    package.preload.time = function() return exec.time end
  end
end

return exec
