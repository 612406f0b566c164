-- Executors and processes: exec, start, wait, signal, close, stdin, and
-- handing out streams. The raw layer never blocks and never raises for
-- operational errors; this file turns its results into the spec's
-- conventions (raise, or return nil + message) and does the waiting
-- through the scheduler.
local parts = ...
local core, sched, time, O, stream = parts.core, parts.sched, parts.time, parts.object, parts.stream
local slots = parts.slots
local arg_error, check_self, soft_self, new_object = O.arg_error, O.check_self, O.soft_self, O.new_object
local failed = O.failed
-- The names of the arguments a raw function may call bad (object.lua's failed).
local EXEC_ARGS, SIGNAL_ARGS, RESIZE_ARGS = { "command", "options" }, { "signal_number" }, { "rows", "cols" }
local CLOSE_ARGS = { "force_stop" }
local check_open, dgetmt, raise = O.check_open, O.dgetmt, O.raise
local Executor, Process, Stream = O.Executor, O.Process, O.Stream

local M = {}

----------------------------------------------------------------------------
-- Executor
----------------------------------------------------------------------------

-- What only the shim can take from the options: the timeout (durations are
-- the time module's) and the raw pipe of a stream handle given as stdin,
-- stdout or stderr (a pipeline). Every other check of the command and the
-- options is Rust's (src/binding/convert.rs), which gets them as given.
local function stream_raw(v, key, fname)
  local sst = O.state_of(v, Stream)
  if not sst then return nil end
  if not sst.raw then
    -- Taken before its process started: there is no pipe to hand over yet.
    -- (Only stdin and fds take a stream at all, as Rust says of started ones.)
    local why = (key == "stdin" or key:sub(1, 4) == "fds[") and "the stream cannot be handed over: its process is not started"
      or "only stdin can take another process's output stream"
    arg_error(fname, 2, "options", "option " .. key .. ": " .. why)
  end
  -- Lines already taken into Lua mean it was read from.
  if sst.qh <= sst.qn then
    arg_error(fname, 2, "options", "option " .. key .. ": the stream cannot be handed over: it was read from already")
  end
  return sst.raw
end

local function stream_option(opts, key, fname)
  return stream_raw(rawget(opts, key), key, fname)
end

-- The streams given in `fds` (a table of descriptor numbers), unwrapped:
-- number -> raw stream, or nil if there are none. Rust checks the rest.
local function fd_streams(opts, fname)
  local fds = rawget(opts, "fds")
  if type(fds) ~= "table" then return nil end
  local found
  for n, v in next, fds do
    local raw = stream_raw(v, "fds[" .. tostring(n) .. "]", fname)
    if raw then
      found = found or {}
      found[n] = raw
    end
  end
  return found
end

--- executor:exec(command, options): a new, unstarted process handle.
-- Its body, without the handle: the raw process and its state. `fname`
-- names the caller in errors; `for_run`: run's own options are allowed
-- (run uses the raw process and state directly), and the third result says
-- whether Rust started it already (see run.lua).
local function new_raw(self, command, options, fname, for_run)
  local raw = check_self(self, Executor, fname)
  local secs, s_in, s_out, s_err, s_fds
  if type(options) == "table" then
    local d = rawget(options, "timeout")
    if d ~= nil then
      local why
      secs, why = time._parse(d)
      if not secs then arg_error(fname, 2, "options", "option timeout: " .. why) end
    end
    s_in = stream_option(options, "stdin", fname)
    s_out = stream_option(options, "stdout", fname)
    s_err = stream_option(options, "stderr", fname)
    s_fds = fd_streams(options, fname)
  end
  local praw, err, code, n, started = raw:exec(command, options, for_run == true, secs, s_in, s_out, s_err, s_fds)
  if not praw then failed(fname, err, code, n, EXEC_ARGS, true) end
  return praw, { raw = praw, timeout = secs }, started
end
M.new_raw = new_raw

function Executor:exec(command, options)
  local _, st = new_raw(self, command, options, "executor:exec")
  st.streams = {}
  return new_object(Process, st)
end

--- executor:release(): always true; later exec calls raise.
function Executor:release()
  local raw = check_self(self, Executor, "executor:release")
  return raw:release()
end

function Executor:id()
  return check_self(self, Executor, "executor:id"):id()
end

-- (A <close> handler calls the method as it is: the methods raise nothing
-- of their own on a handle, so whatever they raise, Ctrl-C or a memory
-- error, goes on to the program. The same for Process and Stream.)
Executor.__close = function(self) Executor.release(self) end
Executor.__tostring = function(self)
  check_open()
  local raw = dgetmt(self).raw
  return string.format("exec.executor(%s%s)", raw:id(), raw:released() and ", released" or "")
end

----------------------------------------------------------------------------
-- Process
----------------------------------------------------------------------------

-- How often start() looks whether a remote connection is up.
local CONNECT_POLL = 0.005

-- A remote process first needs its host's shared connection (local ones
-- are always ready at once). Other tasks run meanwhile. nil or a message.
local function await_connection(raw)
  while true do
    local ready, cerr = raw:connect()
    if ready then return nil end
    if ready == nil then return cerr end
    sched.sleep(CONNECT_POLL)
  end
end

-- A container's engine may still fail after its client started (image
-- missing, daemon down): start() waits until the engine has started the
-- program, as it waits for a connection. nil, or the engine's message
-- (the process is closed then).
local function await_program(raw)
  while true do
    local started, err = raw:settle()
    if started then return nil end
    if started == nil then return err end
    sched.sleep(CONNECT_POLL)
  end
end

-- A started process's `timeout`, if it has one. Its deadline is noticed
-- by the event loop, i.e. while the program waits in a blocking call; then
-- Rust ends all that is left of the command as close() does (SIGTERM and
-- SIGCONT now, SIGKILL after the grace from the reaper thread: the one
-- home of that rule, children::abandon), and the handle stays open.
local function arm_timeout(st)
  if not st.timeout then return end
  -- The timer holds the handle's state weakly (sched.at's owner): a handle
  -- nobody holds is collected (and so closed: its child ended, its
  -- descriptors and its max_processes slot freed) whatever its timeout.
  st._timer = sched.at(sched.now() + st.timeout, function(_, s)
    s._timer = nil
    if s.raw:time_out() then s._timed_out = true end
  end, st)
end
M.arm_timeout = arm_timeout

-- The body of process:start, on the raw process and its state; `fname`
-- names the caller in errors. Raises if already started, closed, the
-- remote connection cannot be made, or the spawn fails.
local function start_raw(raw, st, fname)
  local cerr = await_connection(raw)
  if cerr then
    if st.streams then stream.started(st.streams, raw, cerr) end
    raise(fname .. ": " .. cerr)
  end
  local qid = raw:queue_id()
  if qid and raw:state() == "created" then
    slots.await(raw, qid, fname)
    st.queue_id = qid
  end
  local ok, err = raw:start()
  if ok then
    -- (Streams asked for meanwhile wait for the start, as before it.)
    st.settling = true
    local serr = await_program(raw)
    st.settling = nil
    if serr then ok, err = nil, serr end
  end
  -- Streams taken before the start get their pipes, or learn it failed.
  if st.streams then stream.started(st.streams, raw, err) end
  if qid then
    if ok then
      slots.hold(qid, st)
    end
    slots.kick(qid) -- (the next in line checks for room)
  end
  if not ok then raise(fname .. ": " .. err) end
  arm_timeout(st)
  return true
end
M.start_raw = start_raw

function Process:start()
  local raw, st = check_self(self, Process, "process:start")
  return start_raw(raw, st, "process:start")
end

--- True once the `timeout` option ended the child.
function Process:timed_out()
  local _, st = check_self(self, Process, "process:timed_out")
  return st._timed_out == true
end

function Process:pid()
  return check_self(self, Process, "process:pid"):pid()
end

local function stop_timer(st)
  if st._timer then
    sched.cancel_timer(st._timer)
    st._timer = nil
  end
end

-- A wait ended (with a code or an error), or the handle closed: other
-- coroutines may be waiting on the tokens that retired (w1, w2, either may
-- be nil); wake them, they find the same answer. (Without this a waiter
-- that registered after the token's last report would sleep forever.)
local function wake_others(w1, w2)
  if w1 then sched.fire(w1) end
  if w2 then sched.fire(w2) end
end
M.wake_others = wake_others

-- What a wait that found the exit code leaves to do (wait and run).
local function waited(raw, st, w1, w2)
  wake_others(w1, w2)
  slots.kick(st.queue_id)
  -- A group may outlive its leader: its timeout still ends it then.
  if st._timer and not raw:group_alive() then stop_timer(st) end
  -- An answer found without waiting still lets a reader that the last
  -- step woke finish, as an in-place wait does (sched.settle).
  sched.settle_if_not_task()
end
M.waited = waited

-- End the process (signal `sig`, a number or a name, then SIGKILL after
-- the grace); wake everything waiting on its tokens (they find it closed);
-- its slot goes to the next in its queue.
local function close_raw(raw, st, sig)
  local exit_token, stdin_token = raw:exit_token(), raw:stdin_token()
  local ok, err, code, n = raw:close(sig)
  if not ok then failed("process:close", err, code, n, CLOSE_ARGS, true) end
  if st.streams then stream.closed_unstarted(st.streams) end
  wake_others(exit_token, stdin_token)
  stop_timer(st)
  slots.kick(st.queue_id)
end
M.close_raw = close_raw

--- process:wait([d]): exit_code, nil; or nil, message. Never raises. With a
--- duration `d`, waits at most that long and returns nil, "timeout" if the
--- child is still running (it keeps running).
function Process:wait(d)
  local raw, st = soft_self(self, Process, "process:wait")
  if not raw then return nil, st end
  local deadline
  if d ~= nil then
    local secs, why = time._parse(d)
    if not secs then return nil, "process:wait: " .. why end
    deadline = sched.now() + secs
  end
  -- Tasks already scheduled (typically a reader spawned just before this
  -- call) get to run first, so that the streams they are about to take are
  -- not mistaken for output nobody wants. From then on output cannot hold
  -- the child up (see stream.rs): the first step begins the wait.
  sched.yield()
  local clock = sched.clock
  while true do
    -- The state machine is Rust's: one call per step.
    local seen = clock.n
    local code, a, b, c, d = raw:wait_step(deadline ~= nil)
    if code then
      waited(raw, st, a, b)
      return code, nil
    elseif code == false then
      if not sched.park_until("process:wait", a, deadline, seen) then return nil, "timeout", "timeout" end
    else
      wake_others(c, d)
      return nil, "process:wait: " .. a, b
    end
  end
end

--- process:status(): "created", "running", "exited", code, "signaled",
--- signo, "closed" (told to stop, not ended yet) or "unknown". See Rust's
--- Process::status.
function Process:status()
  local raw = check_self(self, Process, "process:status")
  return raw:status()
end

--- process:signal(n): true, nil; or nil, message, code. Signal names
--- ("TERM", "SIGTERM", "term") and numbers are resolved by Rust
--- (convert::signal).
function Process:signal(sig)
  local raw = check_self(self, Process, "process:signal")
  local ok, err, code, n = raw:signal(sig)
  if not ok then return failed("process:signal", err, code, n, SIGNAL_ARGS) end
  return true, nil
end

--- process:resize(rows, cols): true, nil; or nil, message, code. The
--- window size of the process's terminal (pty = true).
function Process:resize(rows, cols)
  local raw = check_self(self, Process, "process:resize")
  local ok, err, code, n = raw:resize(rows, cols)
  if not ok then return failed("process:resize", err, code, n, RESIZE_ARGS) end
  return true, nil
end

--- process:close([force | signal]): always true; idempotent. A running
--- child gets SIGTERM (SIGKILL with force = true, or the signal given by
--- number or name), then SIGKILL after the grace period.
function Process:close(force)
  local raw, st = check_self(self, Process, "process:close")
  local sig = 15
  if force == true then
    sig = 9
  elseif force ~= nil and force ~= false then
    if type(force) ~= "string" and type(force) ~= "number" then
      arg_error("process:close", 1, "force_stop", "boolean, signal number or signal name expected, got " .. type(force))
    end
    sig = force -- (a number or a name: Rust resolves it, see close_raw)
  end
  close_raw(raw, st, sig)
  return true
end

local function get_stream(self, which, fname)
  local raw, st = check_self(self, Process, fname)
  local state = raw:state()
  if state == "closed" then raise(fname .. ": process is closed") end
  local s = st.streams[which]
  if s then return s end
  local sraw, err
  if state == "created" or (st.settling and raw:settle() == false) then
    -- Taken before start, as code written for Wippy does: the same object
    -- gets its pipe at start (stream.started); reads wait for it.
    local _, why = raw:can_stream(which)
    err = why
  else
    sraw, err = raw:stream(which)
  end
  if err then raise(fname .. ": " .. err) end
  s = stream.new(sraw, self)
  st.streams[which] = s
  return s
end

function Process:stdout_stream()
  return get_stream(self, 1, "process:stdout_stream")
end

function Process:stderr_stream()
  return get_stream(self, 2, "process:stderr_stream")
end

-- Writes up to this size nearly always fit in the pipe: they skip the
-- look at whether the caller waits alone.
local ALONE_WRITE = 4096
-- Stdin queued at or beyond this makes the caller wait (Rust's constant).
local STDIN_HIGH_WATER = core.stdin_high_water

--- process:write_stdin(data): true, nil; or nil, message, code. Data beyond what
--- the pipe holds is queued and delivered in order by the event loop; the
--- caller waits only while more than 16 MiB is queued.
function Process:write_stdin(data)
  local raw = check_self(self, Process, "process:write_stdin")
  local t = type(data)
  if t == "number" then data = tostring(data) elseif t ~= "string" then
    arg_error("process:write_stdin", 1, "data", "string expected, got " .. t)
  end
  local clock = sched.clock
  local seen = clock.n
  local queued, err, code
  if #data > ALONE_WRITE then
    -- A caller that waits alone has its bytes written from the string
    -- itself, the event loop's turns taken in Rust (begin_alone: see
    -- sched.lua; Process::write_stdin_alone says what it may do).
    local alone, outer = sched.begin_alone(seen)
    queued, err, code = raw:write(data, alone)
    if alone then sched.end_alone(outer) end
  else
    queued, err, code = raw:write(data)
  end
  if not queued then return nil, "process:write_stdin: " .. err, code end
  while queued >= STDIN_HIGH_WATER do
    local token = raw:stdin_token()
    if not token then return nil, "process:write_stdin: process is closed", "closed" end
    sched.park("process:write_stdin", token, nil, seen)
    seen = clock.n
    queued, err, code = raw:stdin_queued()
    if not queued then return nil, "process:write_stdin: " .. err, code end
    if raw:state() ~= "running" then return nil, "process:write_stdin: process is closed", "closed" end
  end
  return true, nil
end

--- process:close_stdin(): end-of-file once written data is delivered.
function Process:close_stdin()
  local raw = check_self(self, Process, "process:close_stdin")
  local ok, err, code = raw:close_stdin()
  if not ok then return nil, "process:close_stdin: " .. err, code end
  return true, nil
end

Process.__close = function(self) Process.close(self) end
Process.__tostring = function(self)
  check_open()
  local raw = dgetmt(self).raw
  local pid = raw:pid()
  return string.format("exec.process(%s, %s%s)", raw:command(), raw:state(), pid and (", pid " .. pid) or "")
end

M.await_connection = await_connection
return M
