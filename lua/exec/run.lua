-- One-call capture (executor:run, exec.run) and shell quoting.
local parts = ...
local core, sched, O, process, registry = parts.core, parts.sched, parts.object, parts.process, parts.registry
local arg_error, check_self = O.arg_error, O.check_self
local check_open, raise = O.check_open, O.raise
local Executor = O.Executor
local KILL_GRACE = core.kill_grace

local M = {}

----------------------------------------------------------------------------
-- One-call capture and shell quoting
----------------------------------------------------------------------------

-- After a timed command's kill grace, how long `run` still waits for its
-- output to end before it stops reading: a process outside the command's
-- group (one that started its own session) may hold the pipes for ever.
local RUN_LINGER = 0.1

-- How many lines of stderr a `check` error quotes, and at most how many bytes.
local CHECK_LINES, CHECK_BYTES = 5, 2000

-- The error value `check = true` raises: the message, and the result's
-- fields (code, stdout, stderr, timed_out) plus `command`.
local CheckError = { __name = "exec.run_error", __metatable = "exec.run_error" }
CheckError.__tostring = function(e) return e.message end

-- `cut`: stderr had more than max_output, and its end (what the quote is
-- for) was thrown away: the message says so.
local function check_error(fname, described, result, cut)
  local tail = result.stderr:sub(-CHECK_BYTES):gsub("\n+$", "")
  local lines = {}
  for line in (tail .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local from = math.max(1, #lines - CHECK_LINES + 1)
  tail = table.concat(lines, "\n", from)
  local msg = fname .. ": '" .. described .. "' exited with " .. result.code ..
    (result.timed_out and " (timed out)" or "") .. (tail ~= "" and (": " .. tail) or "") ..
    (cut and (" [stderr cut at max_output = " .. cut .. " bytes: its end was dropped]") or "")
  local e = { message = msg, command = described }
  for k, v in pairs(result) do e[k] = v end
  return setmetatable(e, CheckError)
end

-- Rust reads both outputs to their end, then waits (Process::collect_step):
-- one call per wakeup, parking on the tokens it names in between. A caller
-- that waits alone lets Rust take the event loop's turns itself (one call
-- for the whole wait). `pst._stop`: the last timer of a timed run asks it
-- to stop reading; `pst._parked`: the token it waits on meanwhile.
local function collect(praw, pst, fname)
  local clock = sched.clock
  while true do
    local seen = clock.n
    local alone, outer = sched.begin_alone(seen)
    local code, a, b, c, d = praw:collect(pst._stop == true, alone)
    if alone then sched.end_alone(outer) end
    if code then
      process.waited(praw, pst, c, d)
      return code, a, b
    elseif code == nil then
      -- (b: the error's code; run raises the message)
      process.wake_others(c, d)
      return nil, a
    end
    pst._parked = a
    sched.park(fname, a, b, seen)
    pst._parked = nil
  end
end

-- The body of executor:run and exec.run; `fname` names the caller in errors.
local function run(self, fname, command, options)
  -- (input and check are checked with the other options, in Rust.)
  local praw, pst, started = process.new_raw(self, command, options, fname, true)
  local check = options ~= nil and rawget(options, "check")
  if started then
    -- Rust started it, queued the input and ended stdin in the same call
    -- (Process::begin_run): all a local, unqueued run needs.
    process.arm_timeout(pst)
  else
    -- A remote connection or a queue slot to wait for first.
    process.start_raw(praw, pst, fname)
    -- The input is queued whole (it is in memory already); the event loop
    -- writes it as the child reads, while the outputs are read below.
    local input = options ~= nil and rawget(options, "input")
    if input and input ~= "" then praw:write(input) end
    praw:close_stdin()
  end
  if pst.timeout then
    -- The whole call is bounded: output still open at the deadline means
    -- something of the command still runs; past the kill grace, what holds
    -- the pipes is not ours to wait for.
    local deadline = sched.now() + pst.timeout
    pst._run_timers = {
      sched.at(deadline, function()
        if praw:collect_open() then pst._timed_out = true end
      end),
      sched.at(deadline + KILL_GRACE + RUN_LINGER, function()
        pst._stop = true
        if pst._parked then sched.fire(pst._parked) end
      end),
    }
  end
  local fine, code, out, err
  if sched.yield_across_pcall or not sched.current_task() then
    fine, code, out, err = pcall(collect, praw, pst, fname)
  else
    fine, code, out, err = true, collect(praw, pst, fname) -- Lua 5.1 in a task: cannot pcall here
  end
  if pst._run_timers then
    for _, t in ipairs(pst._run_timers) do sched.cancel_timer(t) end
  end
  if not fine then
    -- Not ours (Ctrl-C, memory): end what the call started (its pipes
    -- with it), then let the error go on unchanged.
    process.close_raw(praw, pst, 9)
    error(code, 0)
  end
  if not code then raise(fname .. ": " .. tostring(out)) end
  local result = { code = code, stdout = out, stderr = err, timed_out = pst._timed_out == true }
  -- (With max_output: whether either output had more, thrown away.)
  local max_output = options ~= nil and rawget(options, "max_output")
  local err_cut
  if max_output then result.truncated, err_cut = praw:truncated() end
  if check and code ~= 0 then
    error(check_error(fname, praw:command(), result, err_cut and string.format("%d", max_output)), 0)
  end
  return result
end

--- executor:run(command, options): start, feed options.input, collect both
--- streams, wait. Returns { code =, stdout =, stderr =, timed_out = }.
function Executor:run(command, options)
  check_self(self, Executor, "executor:run")
  return run(self, "executor:run", command, options)
end

-- exec.run's executor: process:native, which can be neither redefined nor
-- undefined, so one handle serves every call (and is never released).
local native

--- exec.run(command, options): executor:run on process:native.
function M.run(command, options)
  check_open()
  native = native or registry.get("process:native")
  return run(native, "exec.run", command, options)
end

local WHICH_ARGS = { "name", "path" }

--- exec.which(name [, path]): the absolute path `name` runs as (the lookup
--- the library makes before a start), or nil, message, code.
function M.which(name, path)
  check_open()
  local found, err, code, n = core.which(name, path)
  if found then return found end
  return O.failed("exec.which", err, code, n, WHICH_ARGS)
end

--- exec.quote(s): s quoted for /bin/sh, safe for any bytes but NUL.
function M.quote(s)
  check_open()
  local t = type(s)
  if t == "number" then s = tostring(s) elseif t ~= "string" then
    arg_error("exec.quote", 1, "s", "string expected, got " .. t)
  end
  if s:find("\0", 1, true) then arg_error("exec.quote", 1, "s", "contains a NUL byte") end
  return core.quote(s)
end

return M
