-- The scheduler: tasks (coroutine.spawn), waiters, timers, and the loop that
-- drives them over the Rust event loop (core.poll).
--
-- A blocking call builds a waiter, registers it where the wake-up will come
-- from (a token of the Rust loop, a timer, a channel queue) and suspends:
--   * inside a spawned task it yields, and only that task waits;
--   * anywhere else (the main chunk, a busted test, a user's own coroutine)
--     it runs the loop in place until the waiter is done, so that every task
--     keeps running meanwhile.
-- If nothing could ever wake the caller, the call raises "deadlock: ...".
--
-- Errors that are not the library's own (Ctrl-C's "interrupted!", which the
-- interpreter raises from a hook wherever Lua code runs, a memory error)
-- leave a blocking call as they are, at once. So every step here keeps the
-- loop consistent at every instruction: queues are consumed one entry at a
-- time, and a waiter that an error takes away is cancelled on the way out.
--
-- Finalizers. The collector runs a finalizer (`__gc`) at an allocation, and
-- on Lua 5.3/5.4 also at a call that grows the stack (LuaJIT's compiled code
-- may run one at any trace exit: init.lua keeps this file and channel.lua
-- interpreted, where it collects only at allocations), so a finalizer's call
-- into the library (a send, a spawn, or a blocking call that runs the loop
-- in place) may come in the middle of one of the library's own operations,
-- in this coroutine or in one that the loop resumed. Three rules keep the
-- loop consistent whatever such a call does:
--   1. Shared state (the ready queue, the timer heap, the token chains, a
--      channel's buffer and queues) is looked at and changed in blocks with
--      no allocation and no call, so that nothing runs between a look and
--      the change that depends on it. What a block needs is made before it.
--   2. Every change moves `clock.n`. A caller that looked at something (a
--      channel, a stream, a child), found that it must wait, and made its
--      waiter, registers it only if the clock has not moved since it looked
--      (`enlist`); otherwise it looks again.
--   3. From the moment a turn decides how long to wait until its poll
--      returns, `polling` is set: a change made meanwhile signals the event
--      loop's notice (an eventfd in its epoll set), so that the poll returns
--      at once instead of sleeping past it. A loop that a finalizer runs in
--      that window takes the notice with its own polls: it puts `polling`
--      back as it found it after each, and signals again when it returns.
--      A deadlock is raised only if the clock did not move while it was
--      decided.
-- The notice also wakes a host loop that watches exec.pollfd() for work
-- made outside exec.step() (see `announce`).
--
-- The timer heap is timers.lua's; what stays here is what the loop does
-- with it. The loop's own two queues (ready tasks, polled tokens) stay
-- written out here rather than on fifo.lua: see `ready`.
local parts = ...
local core, timers = parts.core, parts.timers

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_status = coroutine.running, coroutine.status
local unpack = table.unpack or unpack
local ceil = math.ceil
local notify = core.notify

local M = {}

-- Errors about how the library was called belong to the caller's line, not
-- to the library's own frames: raise(msg) points at the nearest Lua
-- function outside the library (C functions such as pcall are skipped, and
-- so is Lua 5.1's "(tail call)" marker, which has no line).
-- Taken when the module loads, before a host may sandbox `debug` away.
local getinfo = debug.getinfo
local ssub = string.sub -- (string methods may be hidden: registry.load)
local OURS = "@lua/exec/"
local function raise(msg)
  local level = 2 -- getinfo's count: 1 is raise itself
  while true do
    local info = getinfo(level, "S")
    if not info then error(msg, 0) end -- no caller of ours (a task's bottom)
    if info.what ~= "C" and info.what ~= "tail" and ssub(info.source, 1, #OURS) ~= OURS then
      error(msg, level) -- error's count from here is the same: 1 is raise
    end
    level = level + 1
  end
end
M.raise = raise

-- At most this many bytes of a caller's value are shown in a message (the
-- core's SHOWN_MAX): a 1 MiB argument must not make a 1 MiB error.
local SHOWN_MAX = core.shown_max
function M.shown(s)
  s = tostring(s)
  if #s <= SHOWN_MAX then return s end
  return ssub(s, 1, SHOWN_MAX) .. "... (" .. #s .. " bytes)"
end

-- life.closing is set when the Lua state closes (see init.lua): from then
-- on, every entry point raises instead of calling into a library that is
-- being torn down. A table, so that hot paths elsewhere read the flag as a
-- field rather than through a call.
local life = { closing = false }
M.life = life
local CLOSING = "exec: the Lua state is closing"

-- Called by the sentinels (init.lua, src/binding/state_end.rs); only the
-- first call does anything.
function M.set_closing()
  if life.closing then return end
  life.closing = true
  core.set_closing() -- the same flag for the C line readers
end
local function check_open()
  if life.closing then error(CLOSING, 0) end
end
M.check_open = check_open
-- The scheduler's two ways into Rust check first, whatever the path.
local core_now, core_poll = core.now, core.poll
local function now()
  check_open()
  return core_now()
end
local function poll(timeout, out)
  check_open()
  return core_poll(timeout, out)
end

-- Yielded by a task that suspends on a waiter; any other yield of a task is
-- a cooperative "let others run" and the task is simply queued again.
local SUSPEND = setmetatable({}, { __tostring = function() return "exec.suspend" end })

local tasks = setmetatable({}, { __mode = "k" })   -- coroutine -> its function
-- Errors that ended tasks since wait_tasks last returned them (the first
-- MAX_FAILURES; past that only counted, so a program that never asks
-- does not grow).
local failures, failures_more = {}, 0
local MAX_FAILURES = 100
local live_tasks = 0

-- Rule 2's clock: a table, so that the other parts of the shim read it as
-- a field (no call).
local clock = { n = 0 }
M.clock = clock

-- Rule 3: a poll decided how long to wait and has not returned yet.
local polling = false
-- A host loop watches the descriptor (exec.pollfd() was called); whether
-- exec.step() is running. The host steps when the descriptor is readable or
-- at the time the last step named, so work made between two steps (by a
-- host's callback, or by a blocking call's loop in one) must make the
-- descriptor readable.
local hosted, stepping = false, false

-- Signal the notice if someone must hear of a change: a poll that decided
-- its timeout before it (rule 3), or a host loop between two steps. The
-- notice is written once until a poll takes it (src/core/io/driver.rs), so
-- a burst of work costs one write. Also called when a loop run in place
-- returns: its polls took the notice, and it may leave work (a task it
-- started that sleeps on) that the poll or the host decided without.
local function announce()
  if polling or (hosted and not stepping) then notify() end
end

-- After a change (never inside a block of rule 1).
local function changed()
  clock.n = clock.n + 1
  announce()
end
M.changed = changed

-- Ready queue of tasks to resume. Laid out as fifo.lua's queues are, but
-- with its indices in locals of this file, and its steps written out: the
-- loop looks at it and at `polled` on every turn, and under LuaJIT (where
-- this file runs interpreted) an upvalue is read faster than a table's
-- field: with both on fifo.lua, LuaJIT's channel ping-pong
-- (bench/cases.lua exec_channel) ran at 0.95x. Besides, `wake`
-- and `spawn` queue a task inside a block of rule 1, where no call to
-- fifo.push could go.
local ready, ready_head, ready_tail = {}, 1, 0

local function push_ready(co)
  ready_tail = ready_tail + 1
  ready[ready_tail] = co
  changed()
end

local function ready_empty()
  return ready_head > ready_tail
end

-- Take the next ready task (nil when none). Safe against nested loops (a
-- blocking call in a user's coroutine inside a task runs the loop in place).
local function pop_ready()
  if ready_head > ready_tail then return nil end
  local co = ready[ready_head]
  ready[ready_head] = nil
  ready_head = ready_head + 1
  if ready_head > ready_tail then ready_head, ready_tail = 1, 0 end
  return co
end

-- Waiters on tokens of the Rust loop, by their spots: per token a chain
-- (spot.next), in the order they came. A spot { w = waiter, token = t,
-- polled = ... } is made before it is linked (rule 1), and is `linked`
-- while in its chain. `token_waiter_count` counts the spots that a poll can
-- wake: a key that is not a number is fired by Lua code alone (a process's
-- start, a queue's turn), so a caller that only such a key could wake is a
-- deadlock, not a reason to poll for ever (`polled` is false for it).
local token_waiters = {}
local token_waiter_count = 0

-- Timers: a binary min-heap of { at, seq, fn } (timers.lua; fn(now) is
-- called when due). next_deadline(heap): the next armed timer's time, or
-- nil (cancelled ones leave the heap).
local heap = timers.new()
local heap_push, next_deadline = timers.push, timers.next_deadline

-- The running task, or nil when the caller is not a spawned task.
local function current_task()
  local co = co_running()
  if co and tasks[co] then return co end
  return nil
end
M.current_task = current_task

--- A new waiter for the current caller. Its array part holds its spots,
--- the places it is to be registered at (token spots here, queue spots of
--- channels: { w =, q = queue, ... }), all linked at once by `enlist`; it
--- may have a `timer` too. Woken (or cancelled), it leaves them all.
function M.waiter()
  return { co = current_task(), done = false }
end

-- Take spot `s` out of its chain or queue, if it is in one. (No calls.)
local function drop_spot(s)
  if not s.linked then return end
  s.linked = false
  local token = s.token
  if token ~= nil then
    local prev, cur = nil, token_waiters[token]
    while cur ~= nil and cur ~= s do prev, cur = cur, cur.next end
    if cur ~= nil then
      if prev then prev.next = s.next else token_waiters[token] = s.next end
      if s.polled then token_waiter_count = token_waiter_count - 1 end
    end
    s.next = nil
  else
    local q = s.q
    local n = #q
    for i = 1, n do
      if q[i] == s then
        for j = i, n - 1 do q[j] = q[j + 1] end
        q[n] = nil
        break
      end
    end
  end
end

-- A waiter that is done leaves its timer and every place it was registered.
local function unlink(w)
  local t = w.timer
  if t then t.fn = nil end
  for i = 1, #w do drop_spot(w[i]) end
end

--- Wake `w` with up to three results (what `suspend` returns); later wakes
--- of the same waiter are ignored. Marking it done and queueing its task
--- are one block (rule 1).
function M.wake(w, a, b, c)
  if w.done then return false end
  w.done, w.a, w.b, w.c = true, a, b, c
  local co = w.co
  if co then
    ready_tail = ready_tail + 1
    ready[ready_tail] = co
  end
  changed()
  unlink(w)
  return true
end
local wake = M.wake

--- Register `w` at all of its spots at once if the clock still reads `seen`
--- (rule 2), the time its caller looked at what it waits for: true. False
--- if anything changed since, and the caller must look again. (No calls.)
function M.enlist(w, seen)
  if clock.n ~= seen or w.done then return false end
  for i = 1, #w do
    local s = w[i]
    local token = s.token
    if token ~= nil then
      local cur = token_waiters[token]
      if cur == nil then
        token_waiters[token] = s
      else
        while cur.next ~= nil do cur = cur.next end
        cur.next = s
      end
      if s.polled then token_waiter_count = token_waiter_count + 1 end
    else
      local q = s.q
      q[#q + 1] = s
    end
    s.linked = true
  end
  clock.n = seen + 1
  return true
end
local enlist = M.enlist

--- Wake every waiter of `token` (the Rust loop reported it, or the object
--- behind it was closed and its waiters must look again).
function M.fire(token)
  local s = token_waiters[token]
  token_waiters[token] = nil
  local first = s
  while s ~= nil do -- the whole chain leaves at once
    s.linked = false
    if s.polled then token_waiter_count = token_waiter_count - 1 end
    s = s.next
  end
  changed() -- (also when nobody waits: whoever looked before must look again)
  s = first
  while s ~= nil do
    local w, after = s.w, s.next
    s.next = nil
    wake(w, w.tag or token)
    s = after
  end
end
local fire = M.fire

-- Put timer `t`, made beforehand, in the heap.
local function arm(t)
  heap_push(heap, t)
  changed()
end

local WEAK_VALUES = { __mode = "v" }

--- Call `fn(now)` at monotonic time `at` (seconds). Returns the timer, which
--- `cancel_timer` disarms. With `owner`, the timer holds it weakly and calls
--- `fn(now, owner)`: once the owner is collected the timer is gone (it
--- neither fires nor keeps the loop waiting for it).
function M.at(at, fn, owner)
  check_open()
  local t = { at = at, seq = 0, fn = fn }
  if owner ~= nil then t.owner = setmetatable({ owner }, WEAK_VALUES) end
  arm(t)
  return t
end

function M.cancel_timer(t)
  t.fn = nil
end

local fire_due = timers.fire_due
local function fire_timers()
  if heap.n == 0 then return end -- (no clock read when there is no timer)
  fire_due(heap, now())
end

-- An error object as text, even if its __tostring fails.
local function describe_error(err)
  local ok, text = pcall(tostring, err)
  if ok and type(text) == "string" then return text end
  return "(error object is a " .. type(err) .. " value whose __tostring failed: " .. tostring(text) .. ")"
end

local function report(co, err)
  local out = io.stderr
  out:write("exec: error in task: ", debug.traceback(co, describe_error(err)), "\n")
  out:flush()
end

-- Errors that end the program, not a task: an interrupt (LuaJIT runs the
-- interpreter's Ctrl-C hook in whatever coroutine is running) or memory.
local function fatal(err)
  return type(err) == "string" and (err:find("interrupted!$") or err == "not enough memory")
end
M.fatal = fatal

local function retire(co)
  if tasks[co] then
    tasks[co] = nil
    live_tasks = live_tasks - 1
  end
end

-- Where a task's function was written, to name the task in wait_tasks' answer.
local function task_name(fn)
  local info = type(fn) == "function" and getinfo(fn, "S")
  if info then return "task defined at " .. info.short_src .. ":" .. info.linedefined end
  return "task (a callable " .. type(fn) .. ")"
end

local function resume_task(co)
  local fn = tasks[co]
  local ok, res = co_resume(co)
  if co_status(co) == "dead" then retire(co) end
  if not ok then
    -- An error ended the task: report it with the task's own traceback.
    -- (Caught here rather than by xpcall inside the task, because Lua 5.1
    -- cannot yield across xpcall.) Interrupts go on to the program.
    if fatal(res) then error(res, 0) end
    report(co, res)
    if #failures < MAX_FAILURES then
      failures[#failures + 1] = task_name(fn) .. ": " .. describe_error(res)
    else
      failures_more = failures_more + 1
    end
  elseif res ~= SUSPEND and co_status(co) == "suspended" then
    push_ready(co) -- a plain coroutine.yield() inside a task: run it again later
  end
end

local function run_ready()
  -- Only the tasks ready now: those they wake run at the next turn.
  for _ = 1, ready_tail - ready_head + 1 do
    local co = pop_ready()
    if co == nil then break end
    local st = co_status(co)
    if st == "suspended" then
      resume_task(co)
    elseif st == "dead" then
      retire(co) -- closed with coroutine.close while it waited
    end
  end
end

-- Tasks that died without the loop noticing (coroutine.close, or closed
-- by a host) no longer count.
local function sweep_dead_tasks()
  for co in pairs(tasks) do
    if co_status(co) == "dead" then retire(co) end
  end
end

-- Tokens the Rust loop reported (core.poll fills `polled` from index 1),
-- consumed one at a time so that an error half-way leaves the rest for the
-- next turn. Written out, as `ready` is (see there).
local polled, polled_head, polled_n = {}, 1, 0
-- Set while Rust fills `polled`: a finalizer that runs meanwhile and polls
-- (a blocking call's loop) gets a table of its own (rule 1). (An error out
-- of that fill leaves it set: later polls then each use a table of their
-- own, which costs an allocation and nothing else.)
local filling = false

local function fire_polled()
  while polled_head <= polled_n do
    local token = polled[polled_head]
    polled[polled_head] = nil
    polled_head = polled_head + 1
    fire(token)
  end
end

-- One poll of the Rust loop, whose reported tokens then fire. A turn that
-- set `polling` for it (rule 3) passes the value to put back once the
-- wait is over (`outer`: false, or true in a loop that a finalizer runs
-- while an outer one decides); nil leaves `polling` alone.
local function poll_now(timeout, outer)
  fire_polled()
  if filling then
    local own = {}
    local n, err = poll(timeout, own)
    if outer ~= nil then polling = outer end
    if not n then error("exec: " .. err, 0) end
    for i = 1, n do fire(own[i]) end
    return
  end
  filling = true
  local n, err = poll(timeout, polled)
  filling = false
  if outer ~= nil then polling = outer end
  if not n then error("exec: " .. err, 0) end
  polled_head, polled_n = 1, n
  fire_polled()
end

-- One turn of the loop: run ready tasks, then wait for I/O or a timer.
-- Waits for waiter `w`, or (without one) for every task to finish. Raises
-- "deadlock: ..." naming `what` if nothing at all could make progress.
local function turn(w, what)
  check_open()
  run_ready()
  fire_polled() -- (tokens an error left unfired may wake the caller)
  if w then
    if w.done then return end
  elseif live_tasks == 0 then
    return
  end
  local seen = clock.n
  local outer = polling
  polling = true -- rule 3: from here, a change ends the wait at once
  local timeout
  if not ready_empty() then
    timeout = 0
  else
    local at = next_deadline(heap)
    if at then
      timeout = ceil((at - now()) * 1000)
      if timeout < 0 then timeout = 0 end
      if timeout > 3600000 then timeout = 3600000 end -- the loop simply turns again
    elseif token_waiter_count > 0 then
      timeout = -1
    else
      polling = outer
      sweep_dead_tasks()
      if not w and live_tasks == 0 then return end
      local msg = "deadlock: " .. (what or "waiting") ..
        " can never finish: every task is blocked and no timer, stream or child is pending"
      -- A finalizer that ran since the look may have made work: look again.
      if clock.n ~= seen then return end
      error(msg, 0)
    end
  end
  poll_now(timeout, outer)
  fire_timers()
end

-- After an in-place wait returns, let tasks that are ready at this very
-- moment (typically a reader that is about to see end-of-file of a child
-- that just exited) run to their next real wait, so that the main chunk
-- does not end with their work half done.
local function settle()
  if life.closing then return end
  for _ = 1, 1000 do
    if ready_empty() then
      -- Nothing waits on I/O: no system call needed to know nothing is ready.
      if token_waiter_count == 0 and heap.n == 0 then return end
      poll_now(0)
      fire_timers()
      if ready_empty() then return end
    end
    run_ready()
  end
end

-- A waiter that an error took away: nothing may wake it, deliver to it or
-- count it any more.
local function cancel(w)
  if not w.done then
    w.done = true
    w.cancelled = true
    unlink(w)
  end
end

local function loop_until(w, what)
  while not w.done do turn(w, what) end
  settle()
end

--- The same for a blocking call that found its answer without waiting (a
--- wait() on a child that exited while the tasks ahead of it ran): called
--- outside a task only, where no other turn of the loop may ever come.
function M.settle_if_not_task()
  if not current_task() then
    settle()
    announce()
  end
end

local isyieldable = coroutine.isyieldable

-- Whether the caller waits alone: it is not a task, and nothing else
-- could run or be woken while it waits (no ready task, no timer, no other
-- waiter on the event loop, no token reported and not yet delivered). Then
-- a turn of the loop can only concern the caller, and it waits inside the
-- Rust loop itself (poll_alone) instead of going round this one. Never
-- under a host loop: only this loop's own turns tell the host of the work
-- they leave (announce).
local function alone()
  -- (The cheap looks first, written out: a big write_stdin asks on every call.)
  return not hosted and token_waiter_count == 0 and ready_head > ready_tail and polled_head > polled_n
    and (heap.n == 0 or next_deadline(heap) == nil) and not current_task()
end

--- Whether a caller that looked at what it waits for when the clock read
--- `seen` waits alone, and may wait in the Rust loop. If so, `polling` is
--- set until its wait is over, and the second result is the value that
--- end_alone puts back then: a change that a finalizer makes before the
--- wait begins ends it at once (rule 3).
function M.begin_alone(seen)
  local outer = polling
  polling = true
  if clock.n == seen and alone() then return true, outer end
  polling = outer
  return false
end

function M.end_alone(outer)
  polling = outer
end

-- What a turn reports while the caller waits alone: nobody else to wake.
local unheard = {}

-- One turn of the event loop, as long as it takes, for a caller that waits
-- alone. It returns at once on EINTR (Ctrl-C), so that the interpreter's
-- hook raises before the caller's next step.
local function poll_alone(outer)
  local n, err = poll(-1, unheard)
  polling = outer
  if not n then error("exec: " .. err, 0) end
end

-- A waiter for the caller with a spot on `token` (and one on `b`).
local function token_waiter(a, b)
  local w = M.waiter()
  w[1] = { w = w, token = a, polled = type(a) == "number" }
  if b then w[2] = { w = w, token = b, polled = type(b) == "number" } end
  return w
end

--- Wait once for `a` (or `b`) to fire; the caller then looks again at
--- what it waits for, which may not have happened: waiting alone, this
--- returns after any turn of the loop, and at once if anything changed
--- since the caller looked, when the clock read `seen` (rule 2; nil: now).
--- `what` names the operation for the deadlock message.
function M.park(what, a, b, seen)
  check_open()
  seen = seen or clock.n
  if clock.n ~= seen then return end
  local lone, outer = M.begin_alone(seen)
  if lone then return poll_alone(outer) end
  local w = token_waiter(a, b)
  if enlist(w, seen) then M.suspend(w, what) end
end

--- `park` with a deadline (monotonic seconds; nil: none): false at once if
--- it has passed, else true after waiting at most until then.
function M.park_until(what, token, deadline, seen)
  if not deadline then
    M.park(what, token, nil, seen)
    return true
  end
  local left = deadline - M.now()
  if left <= 0 then return false end
  M.wait_token_for(token, left, what, seen)
  return true
end

--- Suspend the caller until `w` is woken; returns the values it was woken with.
--- `what` names the operation for the deadlock message.
function M.suspend(w, what)
  if not w.done then
    if w.co and (not isyieldable or isyieldable()) then
      -- Only wake() resumes a task suspended here. A stale waiter of the
      -- same task (left by a yield that failed, on Lua 5.1 where a finalizer
      -- cannot be told from a task) may wake it early: it waits on.
      repeat co_yield(SUSPEND) until w.done
    else
      -- Not a task, or a task that cannot yield here (a finalizer, a C
      -- call): run the loop in place. This pcall does not swallow
      -- anything: it cancels the waiter and rethrows the same error.
      w.co = nil
      local ok, err = pcall(loop_until, w, what)
      if not ok then cancel(w) end
      announce() -- (its polls took the notice)
      if not ok then error(err, 0) end
    end
  end
  return w.a, w.b, w.c
end

--- Block until `token` fires or `seconds` pass: returns true, or false on
--- timeout. `seen`: as for park (also true at once if it no longer holds).
function M.wait_token_for(token, seconds, what, seen)
  seen = seen or clock.n
  local w = token_waiter(token)
  local t = { at = now() + seconds, seq = 0, fn = function() wake(w, false) end }
  if not enlist(w, seen) then return true end
  w.timer = t
  arm(t)
  return M.suspend(w, what) ~= false
end

--- Block for `seconds`.
function M.sleep(seconds)
  local w = M.waiter()
  local t = { at = now() + seconds, seq = 0, fn = function() wake(w) end }
  w.timer = t
  arm(t)
  M.suspend(w, "time.sleep")
end

--- Schedule `fn(...)` as a task. It starts at the next turn of the loop,
--- i.e. as soon as the caller blocks (or yields, inside a task).
function M.spawn(fn, ...)
  local t = type(fn)
  if t ~= "function" then
    local mt = t == "table" and getmetatable(fn)
    if not (mt and mt.__call) then
      raise("bad argument #1 (fn) to 'coroutine.spawn': function expected, got " .. t)
    end
  end
  local args = { n = select("#", ...), ... }
  local co = co_create(function() fn(unpack(args, 1, args.n)) end)
  -- Counted and queued in one block (rule 1).
  tasks[co] = fn
  live_tasks = live_tasks + 1
  ready_tail = ready_tail + 1
  ready[ready_tail] = co
  changed()
  return co
end

--- Whether any task is alive: outside a task, only one could still do
--- what only Lua code does (start a process whose stream the caller reads).
function M.has_tasks()
  sweep_dead_tasks()
  return live_tasks > 0
end

--- Run the loop until every task has finished (raises on deadlock).
--- Returns true, or nil and a message naming every task that ended with an
--- error since the last call (each was also reported on stderr as it
--- happened).
function M.run_all()
  if current_task() then
    raise("exec.wait_tasks: cannot be called from inside a task")
  end
  sweep_dead_tasks()
  while live_tasks > 0 do
    turn(nil, "exec.wait_tasks")
  end
  announce()
  if failures[1] == nil then return true end
  local list, more = failures, failures_more
  failures, failures_more = {}, 0
  local n = #list + more
  return nil, (n == 1 and "1 task" or (n .. " tasks")) .. " failed: " .. table.concat(list, "; ") ..
    (more > 0 and ("; and " .. more .. " more") or "")
end

-- The body of step: everything that is ready now, then the time to the
-- next thing that no descriptor will announce.
local function step_once()
  run_ready()
  poll_now(0)
  fire_timers()
  run_ready()
  if not ready_empty() then return 0 end
  local due = core.poll_due_ms()
  local wait = due and due / 1000
  local at = next_deadline(heap)
  if at then
    local left = at - now()
    if left < 0 then left = 0 end
    if not wait or left < wait then wait = left end
  end
  return wait
end

--- For a host event loop (luv, cqueues, copas): run everything that is
--- ready now without blocking (tasks, I/O, children, timers) and return the
--- seconds until the loop must run again even if pollfd() stays quiet
--- (0: at once; nil: only when pollfd() becomes readable). Work made
--- while it runs needs no notice: its answer counts it. (The pcall lets no
--- error go: it puts `stepping` back and rethrows the same value.)
function M.step()
  check_open()
  if current_task() then raise("exec.step: cannot be called from inside a task (it runs them)") end
  local outer = stepping
  stepping = true
  local ok, wait = pcall(step_once)
  stepping = outer
  if not ok then
    announce() -- (work it left: the host steps again if it goes on)
    error(wait, 0)
  end
  return wait
end

--- The descriptor a host loop watches for readability: then call step().
--- From now on, work made outside step() makes it readable (announce).
function M.pollfd()
  check_open()
  hosted = true
  return core.pollfd()
end

--- Let other tasks run once (inside a task), or run one turn of the loop.
function M.yield()
  if current_task() then
    co_yield()
  else
    run_ready()
  end
end

function M.stats()
  return { tasks = live_tasks, ready = ready_tail - ready_head + 1, io_waiters = token_waiter_count, timers = heap.n }
end

-- Lua 5.1 (not LuaJIT) cannot yield across pcall.
M.yield_across_pcall = not (_VERSION == "Lua 5.1" and rawget(_G, "jit") == nil)

function M.now()
  check_open()
  return now()
end
return M
