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
local core = ...

local co_create, co_resume, co_yield = coroutine.create, coroutine.resume, coroutine.yield
local co_running, co_status = coroutine.running, coroutine.status
local unpack = table.unpack or unpack
local floor, ceil, huge = math.floor, math.ceil, math.huge

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

-- Ready queue of tasks to resume.
local ready, ready_head, ready_tail = {}, 1, 0

local function push_ready(co)
  ready_tail = ready_tail + 1
  ready[ready_tail] = co
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

-- Waiters registered on tokens of the Rust loop: token -> { waiter, ... }
-- A key that is not a number is fired by Lua code alone (a process's
-- start, a queue's turn): its waiters are not counted, because no poll can
-- ever deliver it, so a caller that only such a key could wake is a
-- deadlock, not a reason to poll for ever.
local token_waiters = {}
local token_waiter_count = 0
local function polled_key(token) return type(token) == "number" end

-- Timers: a binary min-heap of { at, seq, fn } (fn(now) is called when due).
local heap, heap_n, timer_seq = {}, 0, 0

local function heap_less(a, b)
  return a.at < b.at or (a.at == b.at and a.seq < b.seq)
end

local function heap_push(t)
  heap_n = heap_n + 1
  local i = heap_n
  heap[i] = t
  while i > 1 do
    local p = floor(i / 2)
    if heap_less(heap[i], heap[p]) then
      heap[i], heap[p] = heap[p], heap[i]
      i = p
    else
      break
    end
  end
end

local function heap_pop()
  local top = heap[1]
  heap[1] = heap[heap_n]
  heap[heap_n] = nil
  heap_n = heap_n - 1
  local i = 1
  while true do
    local l, r, m = 2 * i, 2 * i + 1, i
    if l <= heap_n and heap_less(heap[l], heap[m]) then m = l end
    if r <= heap_n and heap_less(heap[r], heap[m]) then m = r end
    if m == i then break end
    heap[i], heap[m] = heap[m], heap[i]
    i = m
  end
  return top
end

-- The running task, or nil when the caller is not a spawned task.
local function current_task()
  local co = co_running()
  if co and tasks[co] then return co end
  return nil
end
M.current_task = current_task

--- A new waiter for the current caller.
function M.waiter()
  return { co = current_task(), done = false }
end

--- Wake `w` with results; later wakes of the same waiter are ignored.
function M.wake(w, ...)
  if w.done then return false end
  w.done = true
  w.results = { n = select("#", ...), ... }
  if w.cleanup then w.cleanup(w) end
  if w.co then push_ready(w.co) end
  return true
end
local wake = M.wake

local function remove_token_waiter(token, w)
  local list = token_waiters[token]
  if not list then return end
  for i = #list, 1, -1 do
    if list[i] == w then
      table.remove(list, i)
      if polled_key(token) then token_waiter_count = token_waiter_count - 1 end
    end
  end
  if #list == 0 then token_waiters[token] = nil end
end

--- Register `w` to be woken when `token` fires.
function M.on_token(w, token)
  local list = token_waiters[token]
  if not list then
    list = {}
    token_waiters[token] = list
  end
  list[#list + 1] = w
  if polled_key(token) then token_waiter_count = token_waiter_count + 1 end
  local prev = w.cleanup
  w.cleanup = function(self)
    remove_token_waiter(token, self)
    if prev then prev(self) end
  end
end

--- Wake every waiter of `token` (the Rust loop reported it, or the object
--- behind it was closed and its waiters must look again).
function M.fire(token)
  local list = token_waiters[token]
  if not list then return end
  token_waiters[token] = nil
  if polled_key(token) then token_waiter_count = token_waiter_count - #list end
  for i = 1, #list do
    local w = list[i]
    wake(w, w.tag or token) -- its cleanup finds the list already detached
  end
end
local fire = M.fire

local WEAK_VALUES = { __mode = "v" }

--- Call `fn(now)` at monotonic time `at` (seconds). Returns the timer, which
--- `cancel_timer` disarms. With `owner`, the timer holds it weakly and calls
--- `fn(now, owner)`: once the owner is collected the timer is gone (it
--- neither fires nor keeps the loop waiting for it).
function M.at(at, fn, owner)
  check_open()
  timer_seq = timer_seq + 1
  local t = { at = at, seq = timer_seq, fn = fn }
  if owner ~= nil then t.owner = setmetatable({ owner }, WEAK_VALUES) end
  heap_push(t)
  return t
end

-- Whether timer `t` can still fire: not cancelled, its owner (if any) alive.
local function armed(t)
  return t.fn ~= nil and (t.owner == nil or t.owner[1] ~= nil)
end

function M.cancel_timer(t)
  t.fn = nil
end

local function fire_timers()
  if heap_n == 0 then return end
  local t = now()
  while heap_n > 0 and heap[1].at <= t do
    -- Disarm, then call, then pop: an error inside fn (an interrupt) leaves
    -- the heap whole, and the timer is not called twice.
    local timer = heap[1]
    local fn = timer.fn
    local owner = timer.owner and timer.owner[1] -- (held while it runs)
    timer.fn = nil
    if heap[1] == timer then heap_pop() end
    if fn and (owner ~= nil or timer.owner == nil) then fn(t, owner) end
  end
end

-- Drop cancelled timers (and those whose owner is gone) from the top so
-- they do not shorten poll timeouts or hide a deadlock.
local function next_deadline()
  while heap_n > 0 and not armed(heap[1]) do heap_pop() end
  if heap_n > 0 then return heap[1].at end
  return nil
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

-- Tokens the Rust loop reported, consumed one at a time so that an error
-- half-way leaves the rest for the next turn.
local polled, polled_head, polled_n = {}, 1, 0

local function fire_polled()
  while polled_head <= polled_n do
    local token = polled[polled_head]
    polled[polled_head] = nil
    polled_head = polled_head + 1
    fire(token)
  end
end

local function poll_now(timeout)
  fire_polled()
  local n, err = poll(timeout, polled)
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
  if w then
    if w.done then return end
  elseif live_tasks == 0 then
    return
  end
  local timeout
  if not ready_empty() then
    timeout = 0
  else
    local at = next_deadline()
    if at then
      timeout = ceil((at - now()) * 1000)
      if timeout < 0 then timeout = 0 end
      if timeout > 3600000 then timeout = 3600000 end -- the loop simply turns again
    elseif token_waiter_count > 0 then
      timeout = -1
    else
      sweep_dead_tasks()
      if not w and live_tasks == 0 then return end
      error("deadlock: " .. (what or "waiting") ..
        " can never finish: every task is blocked and no timer, stream or child is pending", 0)
    end
  end
  poll_now(timeout)
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
      if token_waiter_count == 0 and heap_n == 0 then return end
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
    if w.cleanup then w.cleanup(w) end
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
  if not current_task() then settle() end
end

local isyieldable = coroutine.isyieldable

-- Whether the caller waits alone: it is not a task, and nothing else
-- could run or be woken while it waits (no ready task, no timer, no other
-- waiter on the event loop, no token reported and not yet delivered). Then
-- a turn of the loop can only concern the caller, and it waits inside the
-- Rust loop itself (poll_alone) instead of going round this one.
local function alone()
  return token_waiter_count == 0 and ready_empty() and polled_head > polled_n
    and next_deadline() == nil and not current_task()
end

M.alone = alone

-- What a turn reports while the caller waits alone: nobody else to wake.
local unheard = {}

-- One turn of the event loop, as long as it takes, for a caller that waits
-- alone. It returns at once on EINTR (Ctrl-C), so that the interpreter's
-- hook raises before the caller's next step.
local function poll_alone()
  local n, err = poll(-1, unheard)
  if not n then error("exec: " .. err, 0) end
end

--- Wait once for `a` (or `b`) to fire; the caller then looks again at
--- what it waits for, which may not have happened: waiting alone, this
--- returns after any turn of the loop. `what` names the operation for the
--- deadlock message.
function M.park(what, a, b)
  check_open()
  if alone() then return poll_alone() end
  local w = M.waiter()
  M.on_token(w, a)
  if b then M.on_token(w, b) end
  M.suspend(w, what)
end

--- `park` with a deadline (monotonic seconds; nil: none): false at once if
--- it has passed, else true after waiting at most until then.
function M.park_until(what, token, deadline)
  if not deadline then
    M.park(what, token)
    return true
  end
  local left = deadline - M.now()
  if left <= 0 then return false end
  M.wait_token_for(token, left, what)
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
      if not ok then
        cancel(w)
        error(err, 0)
      end
    end
  end
  local r = w.results
  return unpack(r, 1, r.n)
end

--- Block until `token` fires or `seconds` pass: returns true, or false on
--- timeout.
function M.wait_token_for(token, seconds, what)
  local w = M.waiter()
  M.on_token(w, token)
  local t = M.at(now() + seconds, function() wake(w, false) end)
  local prev = w.cleanup
  w.cleanup = function(self)
    M.cancel_timer(t)
    if prev then prev(self) end
  end
  local fired = M.suspend(w, what)
  return fired ~= false
end

--- Block for `seconds`.
function M.sleep(seconds)
  local w = M.waiter()
  local t = M.at(now() + seconds, function() wake(w) end)
  w.cleanup = function() M.cancel_timer(t) end
  return M.suspend(w, "time.sleep")
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
  tasks[co] = fn
  live_tasks = live_tasks + 1
  push_ready(co)
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
  if failures[1] == nil then return true end
  local list, more = failures, failures_more
  failures, failures_more = {}, 0
  local n = #list + more
  return nil, (n == 1 and "1 task" or (n .. " tasks")) .. " failed: " .. table.concat(list, "; ") ..
    (more > 0 and ("; and " .. more .. " more") or "")
end

--- For a host event loop (luv, cqueues, copas): run everything that is
--- ready now without blocking (tasks, I/O, children, timers) and return the
--- seconds until the loop must run again even if pollfd() stays quiet
--- (0: at once; nil: only when pollfd() becomes readable).
function M.step()
  check_open()
  if current_task() then raise("exec.step: cannot be called from inside a task (it runs them)") end
  run_ready()
  poll_now(0)
  fire_timers()
  run_ready()
  if not ready_empty() then return 0 end
  local due = core.poll_due_ms()
  local wait = due and due / 1000
  local at = next_deadline()
  if at then
    local left = at - now()
    if left < 0 then left = 0 end
    if not wait or left < wait then wait = left end
  end
  return wait
end

--- The descriptor a host loop watches for readability: then call step().
function M.pollfd()
  check_open()
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
  return { tasks = live_tasks, ready = ready_tail - ready_head + 1, io_waiters = token_waiter_count, timers = heap_n }
end

-- Lua 5.1 (not LuaJIT) cannot yield across pcall.
M.yield_across_pcall = not (_VERSION == "Lua 5.1" and rawget(_G, "jit") == nil)

function M.now()
  check_open()
  return now()
end
return M
