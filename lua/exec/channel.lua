-- Channels between tasks, after Go's: unbuffered by default, optionally
-- buffered, closable, with select over several operations.
local sched = ...

local wake, waiter, suspend, raise = sched.wake, sched.waiter, sched.suspend, sched.raise

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
  return setmetatable({ cap = size, buf = {}, head = 1, tail = 0, closed = false, recvq = {}, sendq = {} }, Channel)
end

local function buffered(ch)
  return ch.tail - ch.head + 1
end

local function buf_push(ch, v)
  ch.tail = ch.tail + 1
  ch.buf[ch.tail] = v
end

local function buf_pop(ch)
  local v = ch.buf[ch.head]
  ch.buf[ch.head] = nil
  ch.head = ch.head + 1
  if ch.head > ch.tail then ch.head, ch.tail = 1, 0 end
  return v
end

-- First queued operation whose waiter is still waiting.
local function pop_live(q)
  while #q > 0 do
    local e = table.remove(q, 1)
    if not e.w.done then return e end
  end
  return nil
end


-- Nonblocking attempts; return true plus results when they happened.
local function try_receive(ch)
  if buffered(ch) > 0 then
    local v = buf_pop(ch)
    local s = pop_live(ch.sendq)
    if s then
      buf_push(ch, s.value)
      wake(s.w, s.case, true)
    end
    return true, v, true
  end
  local s = pop_live(ch.sendq)
  if s then
    wake(s.w, s.case, true)
    return true, s.value, true
  end
  if ch.closed then return true, nil, false end
  return false
end

local function try_send(ch, v)
  if ch.closed then return "closed" end
  local r = pop_live(ch.recvq)
  if r then
    wake(r.w, r.case, v, true)
    return true
  end
  if buffered(ch) < ch.cap then
    buf_push(ch, v)
    return true
  end
  return false
end

local function remove_waiter(q, w)
  for i = #q, 1, -1 do
    if q[i].w == w then table.remove(q, i) end
  end
end

--- ch:send(v): true; blocks while the channel is full; raises if closed.
function Channel:send(v)
  check(self, "send")
  local r = try_send(self, v)
  if r == "closed" then raise("channel:send: send on a closed channel") end
  if r then return true end
  local w = waiter()
  self.sendq[#self.sendq + 1] = { w = w, value = v }
  local _, ok = suspend(w, "channel:send")
  if not ok then raise("channel:send: send on a closed channel") end
  return true
end

--- ch:receive(): v, true; or nil, false once closed and drained.
function Channel:receive()
  check(self, "receive")
  local done, v, ok = try_receive(self)
  if done then return v, ok end
  local w = waiter()
  self.recvq[#self.recvq + 1] = { w = w }
  local _, rv, rok = suspend(w, "channel:receive")
  return rv, rok
end

--- ch:close(): wakes every receiver (nil, false) and every blocked sender
--- (which raises). Closing twice is harmless.
function Channel:close()
  check(self, "close")
  if self.closed then return true end
  self.closed = true
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
  return buffered(self)
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
  return string.format("exec.channel(%d/%d%s)", buffered(self), self.cap, self.closed and ", closed" or "")
end

-- A case is a channel's (kind "receive" or "send") or one that polls
-- something of the event loop (kind "poll", e.g. stream:case_read()): its
-- `try()` answers done, value, ok[, err] without waiting, and its `token`
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

--- channel.select{ case, ..., default = true? }: the first ready case in
--- table order as { channel =, value =, ok = }, or { default = true }.
function M.select(cases)
  if type(cases) ~= "table" then
    raise("channel.select: argument must be a table of cases (got " .. type(cases) .. ")")
  end
  local n = #cases
  for i = 1, n do check_case(cases[i], i) end
  if n == 0 and not cases.default then raise("channel.select: no cases and no default") end
  while true do
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
        local done, v, ok, err = c.try()
        if done then return { channel = c.channel, value = v, ok = ok, err = err } end
      end
    end
    -- (With a default, the first pass through the cases ends here.)
    if cases.default then return { default = true } end

    local w = waiter()
    w.tag = POLLED
    w.cleanup = function()
      for i = 1, n do
        local c = cases[i]
        if c.kind ~= "poll" then
          remove_waiter(c.channel.recvq, w)
          remove_waiter(c.channel.sendq, w)
        end
      end
    end
    for i = 1, n do
      local c = cases[i]
      if c.kind == "poll" then
        sched.on_token(w, c.token) -- (chains the cleanup above)
      else
        local q = c.kind == "receive" and c.channel.recvq or c.channel.sendq
        q[#q + 1] = { w = w, case = i, value = c.value }
      end
    end
    local r = { suspend(w, "channel.select") }
    local i = r[1]
    if i ~= POLLED then
      local c = cases[i]
      if c.kind == "receive" then
        return { channel = c.channel, value = r[2], ok = r[3] }
      end
      if not r[2] then raise("channel.select: send on a closed channel (case " .. i .. ")") end
      return { channel = c.channel, value = c.value, ok = true }
    end
    -- A polled case's token fired: every case is tried again, in order.
  end
end

M.Channel = Channel
return M
