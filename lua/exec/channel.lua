-- Channels between tasks, after Go's: unbuffered by default, optionally
-- buffered, closable, with select over several operations.
--
-- A channel's buffer and queues are shared state of the scheduler: they are
-- looked at and changed in blocks without calls, every change moves the
-- scheduler's clock, and a waiter is queued only if the clock has not moved
-- since its caller looked (sched.lua, "Finalizers": a finalizer may run
-- any channel operation in the middle of another).
local parts = ...
local sched, fifo = parts.sched, parts.fifo

local wake, waiter, suspend, raise = sched.wake, sched.waiter, sched.suspend, sched.raise
local enlist, changed, clock = sched.enlist, sched.changed, sched.clock

local Channel = {}
Channel.__index = Channel
Channel.__name = "exec.channel"

local M = {}

local function is_channel(v)
  return getmetatable(v) == Channel
end
M.is_channel = is_channel

local function check(self, method)
  if not is_channel(self) then
    raise("channel:" .. method .. ": self must be a channel (got " .. type(self) .. "); use ch:" .. method .. "(...)")
  end
end

--- channel.new(size): size 0 (default) is unbuffered.
function M.new(size)
  if size == nil then size = 0 end
  if type(size) ~= "number" or size ~= size or size < 0 or size % 1 ~= 0 or size == math.huge then
    raise("channel.new: size must be a whole number >= 0 (got " .. tostring(size) .. ")")
  end
  -- `buf`: the buffered values, a fifo (changed with fifo.lua's steps
  -- written out, below). `recvq`, `sendq`: the waiting receivers' and
  -- senders' spots, in the order they came; not fifos, since a waiter that
  -- another case of its select woke, or that an error took away, leaves
  -- them from anywhere (sched.lua's drop_spot), and the dead ones left
  -- before a live one go together (pop_live).
  return setmetatable({ cap = size, buf = fifo.new(), closed = false, recvq = {}, sendq = {} }, Channel)
end

local buffered = fifo.count

-- Take the first queued spot whose waiter still waits off queue `q` (and
-- the dead ones before it): the spot, or nil. (No calls.)
local function pop_live(q)
  local n = #q
  local k = 1
  while k <= n and q[k].w.done do k = k + 1 end
  local e = q[k]
  if k > n then k = n end -- (none alive: all go)
  for i = 1, k do q[i].linked = false end
  for i = 1, n - k do q[i] = q[i + k] end
  for i = n - k + 1, n do q[i] = nil end
  return e
end

-- Nonblocking attempts; return true plus results when they happened.

-- A value for a receiver: the oldest buffered one (a blocked sender's value
-- takes its place), else a blocked sender's; at the end, nil, false.
local function try_receive(ch)
  local s = pop_live(ch.sendq)
  -- From here to the change, no calls (rule 1): fifo.pop and fifo.push
  -- on the buffer are written out, as one step.
  local buf = ch.buf
  local head, tail = buf.head, buf.tail
  local v
  if head <= tail then
    v = buf[head]
    buf[head] = nil
    if s then
      tail = tail + 1
      buf[tail] = s.value
    end
    head = head + 1
    if head > tail then head, tail = 1, 0 end
    buf.head, buf.tail = head, tail
  elseif s then
    v = s.value
  elseif ch.closed then
    return true, nil, false
  else
    return false
  end
  clock.n = clock.n + 1
  if s then wake(s.w, s.case, true) end
  return true, v, true
end

-- Hand `v` to a waiting receiver, else buffer it if there is room: true;
-- false if it must wait; "closed".
local function try_send(ch, v)
  local r = pop_live(ch.recvq)
  -- From here to the change, no calls (rule 1).
  if ch.closed then return "closed" end -- (a closed channel has no receivers queued)
  if r then
    clock.n = clock.n + 1
    wake(r.w, r.case, v, true)
    return true
  end
  local buf = ch.buf
  local tail = buf.tail
  if tail - buf.head + 1 < ch.cap then
    tail = tail + 1 -- (fifo.push, written out)
    buf[tail] = v
    buf.tail = tail
    changed()
    return true
  end
  return false
end

-- Queue the caller on `q` (with the value it sends) if nothing changed
-- since it looked, when the clock read `seen`. Returns the waiter (`w`, one
-- a previous call made, or a new one) and whether it is queued; if not,
-- the caller looks again.
local function queue(w, q, seen, value)
  if not w then
    w = waiter()
    w[1] = { w = w, q = q, value = value }
  end
  if enlist(w, seen) then return w, true end
  return w, false
end

--- ch:send(v): true; blocks while the channel is full; raises if closed.
function Channel:send(v)
  check(self, "send")
  local w, queued
  repeat
    local seen = clock.n
    local r = try_send(self, v)
    if r == "closed" then raise("channel:send: send on a closed channel") end
    if r then return true end
    w, queued = queue(w, self.sendq, seen, v)
  until queued
  local _, ok = suspend(w, "channel:send")
  if not ok then raise("channel:send: send on a closed channel") end
  return true
end

--- ch:receive(): v, true; or nil, false once closed and drained.
function Channel:receive()
  check(self, "receive")
  local w, queued
  repeat
    local seen = clock.n
    local done, v, ok = try_receive(self)
    if done then return v, ok end
    w, queued = queue(w, self.recvq, seen)
  until queued
  local _, rv, rok = suspend(w, "channel:receive")
  return rv, rok
end

--- ch:close(): wakes every receiver (nil, false) and every blocked sender
--- (which raises). Closing twice is harmless.
function Channel:close()
  check(self, "close")
  if self.closed then return true end
  self.closed = true
  changed()
  local e = pop_live(self.recvq)
  while e do
    wake(e.w, e.case, nil, false)
    e = pop_live(self.recvq)
  end
  e = pop_live(self.sendq)
  while e do
    wake(e.w, e.case, false)
    e = pop_live(self.sendq)
  end
  return true
end

function Channel:is_closed()
  check(self, "is_closed")
  return self.closed
end

--- Number of buffered values.
function Channel:len()
  check(self, "len")
  return buffered(self.buf)
end

function Channel:case_receive()
  check(self, "case_receive")
  return { channel = self, kind = "receive" }
end

function Channel:case_send(v)
  check(self, "case_send")
  return { channel = self, kind = "send", value = v }
end

Channel.__tostring = function(self)
  return string.format("exec.channel(%d/%d%s)", buffered(self.buf), self.cap, self.closed and ", closed" or "")
end

-- A case is a channel's (kind "receive" or "send") or one that polls
-- something of the event loop (kind "poll", e.g. stream:case_read()): its
-- `try()` answers done, value, ok[, err, code] without waiting, and its `token`
-- says when to try again.
local function check_case(c, i)
  local ok = type(c) == "table" and (
    (is_channel(c.channel) and (c.kind == "receive" or c.kind == "send")) or
    (c.kind == "poll" and type(c.try) == "function" and c.token ~= nil))
  if not ok then
    raise("channel.select: case " .. i .. " is not a case (use ch:case_receive(), ch:case_send(v) or stream:case_read())")
  end
end

-- What woke a select through a polled case's token: try them all again.
local POLLED = setmetatable({}, { __tostring = function() return "exec.polled" end })

-- A waiter for select with a spot per case: a token spot for a polled
-- case, a queue spot (knowing its case) for a channel's.
local function select_waiter(cases, n)
  local w = waiter()
  w.tag = POLLED
  for i = 1, n do
    local c = cases[i]
    if c.kind == "poll" then
      w[i] = { w = w, token = c.token, polled = type(c.token) == "number" }
    else
      local q = c.kind == "receive" and c.channel.recvq or c.channel.sendq
      w[i] = { w = w, q = q, case = i, value = c.value }
    end
  end
  return w
end

--- channel.select{ case, ..., default = true? }: the first ready case in
--- table order as { channel =, value =, ok = }, or { default = true }.
function M.select(cases)
  if type(cases) ~= "table" then
    raise("channel.select: argument must be a table of cases (got " .. type(cases) .. ")")
  end
  local n = #cases
  for i = 1, n do check_case(cases[i], i) end
  if n == 0 and not cases.default then raise("channel.select: no cases and no default") end
  local w
  while true do
    local seen = clock.n
    for i = 1, n do
      local c = cases[i]
      if c.kind == "receive" then
        local done, v, ok = try_receive(c.channel)
        if done then return { channel = c.channel, value = v, ok = ok } end
      elseif c.kind == "send" then
        local r = try_send(c.channel, c.value)
        if r == "closed" then raise("channel.select: send on a closed channel (case " .. i .. ")") end
        if r then return { channel = c.channel, value = c.value, ok = true } end
      else
        local done, v, ok, err, code = c.try()
        if done then return { channel = c.channel, value = v, ok = ok, err = err, code = code } end
      end
    end
    -- (With a default, the first pass through the cases ends here.)
    if cases.default then return { default = true } end

    -- Waits only if no case changed since the look; else looks again.
    w = w or select_waiter(cases, n)
    if enlist(w, seen) then
      local i, a, b = suspend(w, "channel.select")
      if i ~= POLLED then
        local c = cases[i]
        if c.kind == "receive" then
          return { channel = c.channel, value = a, ok = b }
        end
        if not a then raise("channel.select: send on a closed channel (case " .. i .. ")") end
        return { channel = c.channel, value = c.value, ok = true }
      end
      -- A polled case's token fired: every case is tried again, in order.
      w = nil
    end
  end
end

M.Channel = Channel
return M
