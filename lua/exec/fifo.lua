-- A first-in, first-out queue: its entries in its array part, from `head`
-- to `tail` (empty when head > tail). A queue that empties starts again at
-- index 1, so that the indices stay small. Used for a buffered channel's
-- values (channel.lua) and the starts that wait for a max_processes slot
-- (slots.lua). The scheduler's ready tasks and polled tokens have the same
-- layout, written out in sched.lua for speed (see `ready` there).
--
-- Each function is one block with no allocation and no call (sched.lua,
-- "Finalizers", rule 1). Where a queue is changed inside a bigger block of
-- that rule (a channel's receive that takes a value and moves a blocked
-- sender's in, a send that checks for room and buffers), the steps are
-- written out there instead, on this same layout: a call could let a
-- finalizer run in the middle of the block. Under LuaJIT this
-- file stays interpreted, as sched.lua does (init.lua).
local M = {}

--- A new, empty queue.
function M.new()
  return { head = 1, tail = 0 }
end

--- Add `v` (not nil) at the end of `q`.
function M.push(q, v)
  local tail = q.tail + 1
  q.tail = tail
  q[tail] = v
end

--- Take the first entry of `q` out: the entry, or nil when `q` is empty.
function M.pop(q)
  local head, tail = q.head, q.tail
  if head > tail then return nil end
  local v = q[head]
  q[head] = nil
  head = head + 1
  if head > tail then head, tail = 1, 0 end
  q.head, q.tail = head, tail
  return v
end

--- The first entry of `q`, left in it (nil when `q` is empty).
function M.peek(q)
  if q.head > q.tail then return nil end
  return q[q.head]
end

--- How many entries `q` holds.
function M.count(q)
  return q.tail - q.head + 1
end

return M
