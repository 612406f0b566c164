-- The scheduler's timers: a binary min-heap of timers { at =, seq =, fn =,
-- owner = }, ordered by `at` (monotonic seconds) and, for the same `at`,
-- by `seq` (the order they were armed in). `fn(now[, owner])` is called
-- when the timer is due; a timer whose `fn` is nil is cancelled, and one
-- whose owner (held weakly in `owner[1]`) was collected is gone: either
-- leaves the heap when it reaches the top.
--
-- The heap is shared state of the scheduler (sched.lua, "Finalizers",
-- rule 1): `push` and `pop_if` are each one block with no allocation and no
-- call, so the comparisons are written out, and a parent's index is
-- (i - i % 2) / 2 (a float on Lua 5.3+, which indexes a table as the
-- integer it equals). Under LuaJIT this file stays interpreted, as
-- sched.lua does (init.lua).
local M = {}

--- A new, empty heap: the timers in its array part, `n` of them, and the
--- last sequence number given.
function M.new()
  return { n = 0, seq = 0 }
end

--- Put timer `t`, made beforehand, in `heap`.
function M.push(heap, t)
  local at, seq = t.at, heap.seq + 1
  heap.seq, t.seq = seq, seq
  local i = heap.n + 1
  heap.n = i
  while i > 1 do
    local p = (i - i % 2) / 2
    local up = heap[p]
    if at < up.at or (at == up.at and seq < up.seq) then
      heap[i] = up
      i = p
    else
      break
    end
  end
  heap[i] = t
end

-- Pop the top timer if it is due at `t` (t == nil: if it is cancelled or
-- its owner was collected), and return it; nil otherwise. The look and the
-- pop are one block.
local function pop_if(heap, t)
  local n = heap.n
  if n == 0 then return nil end
  local top = heap[1]
  if t then
    if top.at > t then return nil end
  elseif top.fn ~= nil and (top.owner == nil or top.owner[1] ~= nil) then
    return nil -- (armed: not cancelled, its owner if any alive)
  end
  local last = heap[n]
  heap[n] = nil
  n = n - 1
  heap.n = n
  if n > 0 then
    local at, seq = last.at, last.seq
    local i = 1
    while true do
      local c = 2 * i
      if c > n then break end
      local cv = heap[c]
      if c < n then
        local rv = heap[c + 1]
        if rv.at < cv.at or (rv.at == cv.at and rv.seq < cv.seq) then c, cv = c + 1, rv end
      end
      if cv.at < at or (cv.at == at and cv.seq < seq) then
        heap[i] = cv
        i = c
      else
        break
      end
    end
    heap[i] = last
  end
  return top
end

--- Call every timer of `heap` that is due at time `t`, in order.
function M.fire_due(heap, t)
  while true do
    -- Pop, disarm, then call: an error inside fn (an interrupt) leaves the
    -- heap whole, and the timer is not called twice.
    local timer = pop_if(heap, t)
    if not timer then return end
    local fn, held = timer.fn, timer.owner
    local owner = held and held[1] -- (held strongly while it runs)
    timer.fn = nil
    if fn and (held == nil or owner ~= nil) then fn(t, owner) end
  end
end

--- The time of the next armed timer, or nil. Drops cancelled timers (and
--- those whose owner is gone) from the top first, so that they do not
--- shorten poll timeouts or hide a deadlock.
function M.next_deadline(heap)
  while pop_if(heap, nil) do end
  if heap.n > 0 then return heap[1].at end
  return nil
end

return M
