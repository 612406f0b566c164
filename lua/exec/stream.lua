-- Output streams: chunk, line and whole reads, lines(), close. Bytes are
-- handled in Rust; this file parks the caller while a read would block.
local parts = ...
local core, sched, O, time = parts.core, parts.sched, parts.object, parts.time
local arg_error, check_self, new_object = O.arg_error, O.check_self, O.new_object
local check_open, dgetmt, raise = O.check_open, O.dgetmt, O.raise
local Stream = O.Stream

----------------------------------------------------------------------------
-- Stream
----------------------------------------------------------------------------

-- The largest chunk one read returns: Rust's constant.
local CHUNK = core.max_chunk

local life = sched.life
-- The scheduler's clock, read before each look at a stream: a wait begins
-- only if nothing changed since (sched.lua, rule 2).
local clock = sched.clock

local FORMATS = { l = "l", L = "L", a = "a", ["*l"] = "l", ["*L"] = "L", ["*a"] = "a" }

-- Returned by a read whose deadline passed (nothing is lost: what arrived
-- of a line stays in Rust's buffer for the next read).
local TIMEOUT = {}

-- Call raw[method](raw, arg) until it has an answer, parking the caller on
-- the stream's token while it would block: one call into Rust per attempt.
local function await(raw, st, method, arg, deadline)
  while true do
    local seen = clock.n
    local data, err, code = raw[method](raw, arg)
    if data ~= false then return data, err, code end
    if not sched.park_until("stream:read", st.token, deadline, seen) then return nil, TIMEOUT end
  end
end

-- Line reads. On Lua 5.3 and 5.4 a line already buffered is taken by a C
-- function (own.read and the lines() iterator, see M.new and
-- src/binding/line_reader.rs) and everything else reads one line in Rust.
-- LuaJIT and 5.1, whose C functions cannot yield, get a queue instead:
-- Rust puts every whole line available into a Lua table, st.q[st.qh ..
-- st.qn], at once, so a line read from the queue costs no call at all. Any
-- other read first gives the queued lines back to the stream, so reads of
-- every kind can be mixed. (Not a fifo.lua queue: a read takes its line
-- with no call at all and leaves it in place, since the next batch
-- overwrites the queue.)
local LINE_READERS = core.line_readers

-- Forget the queued lines (give_back hands them over first; close drops them).
local function drop_queue(st)
  local q = st.q
  for i = st.qh, st.qn do q[i] = nil end
  st.qh, st.qn = 1, 0
end

local function give_back(raw, st)
  local q, h, n = st.q, st.qh, st.qn
  local parts = {}
  for i = h, n do parts[#parts + 1] = q[i] end
  drop_queue(st)
  if h <= n then
    parts[#parts + 1] = ""
    raw:unread(table.concat(parts, "\n"))
  end
end

-- The next line (with its newline when keep): line | nil (end) | nil, err,
-- code | nil, TIMEOUT.
local function next_line(raw, st, keep, deadline)
  if LINE_READERS then return await(raw, st, "read_line", keep, deadline) end
  local q, h = st.q, st.qh
  if h <= st.qn then
    local line = q[h]
    q[h] = nil
    st.qh = h + 1
    if keep then return line .. "\n" end
    return line
  end
  while true do
    local seen = clock.n
    local n, last, code = raw:read_lines(q)
    if n == false then
      if not sched.park_until("stream:read", st.token, deadline, seen) then return nil, TIMEOUT end
    elseif type(n) == "number" then
      local line = q[1]
      q[1] = nil
      st.qh, st.qn = 2, n
      if keep then return line .. "\n" end
      return line
    elseif n then
      return n -- the last line, which has no newline
    else
      return nil, last, code
    end
  end
end

-- What read and case_read take, and what lines takes ("a" would never end).
local READ_FORMATS = 'a size, "l", "L" or "a"'
local LINES_FORMATS = '"l", "L" or a size'

-- A read format checked once: "l", "L", "a", or a chunk size (nil: 64 KiB).
-- `argname` and `usage` word the argument error of function `fname`.
local function check_format(n, fname, argname, usage)
  if n == nil then return CHUNK end
  if type(n) == "string" then
    local fmt = FORMATS[n]
    if not fmt then arg_error(fname, 1, argname, "invalid format '" .. sched.shown(n) .. "' (use " .. usage .. ")") end
    return fmt
  end
  if type(n) ~= "number" then
    arg_error(fname, 1, argname, "number or format expected, got " .. type(n))
  end
  if n ~= n or n < 0 or n % 1 ~= 0 then
    arg_error(fname, 1, argname, "must be a whole number >= 0 (got " .. tostring(n) .. ")")
  end
  -- 0 is "whatever is available", as in Wippy's stream module (its default
  -- size): the next chunk, like no size at all.
  if n == 0 then return CHUNK end
  return n > CHUNK and CHUNK or n
end

-- Streams taken before their process started (st.raw is false until
-- then: see M.new and M.started). A read waits for the start as it waits for data;
-- st.why_not says why it never will (the process was closed first, its
-- start failed, the stream was closed).
local WAITING = "stream:read (waiting for its process to start)"

-- The raw stream once the process has started: raw | nil, message | nil,
-- TIMEOUT. Only Lua code starts a process: a caller that is not a task,
-- with no task alive that could start it meanwhile, is told so instead of
-- waiting. (A task waits: the host's loop may run it, and a task that
-- nothing will ever wake is a deadlock, which the loop reports.)
local function await_raw(st, deadline)
  while true do
    local raw = st.raw
    if raw then return raw end
    if st.why_not then return nil, st.why_not, st.why_code end
    if not sched.current_task() and not sched.has_tasks() then
      return nil, "process not started (and nothing else is running that could start it)", "not_started"
    end
    if not sched.park_until(WAITING, st.start_key, deadline) then return nil, TIMEOUT end
  end
end

-- Read `fmt` (from check_format) until `deadline` (nil: none): data | nil
-- (end) | nil, message, code | nil, TIMEOUT.
local function read_until(raw, st, fmt, deadline)
  if not raw then
    local err, code
    raw, err, code = await_raw(st, deadline)
    if not raw then return nil, err, code end
  end
  if fmt == "l" or fmt == "L" then
    return next_line(raw, st, fmt == "L", deadline)
  end
  if st.qh <= st.qn then give_back(raw, st) end
  if fmt == "a" then return await(raw, st, "read_all", nil, deadline) end
  return await(raw, st, "read", fmt, deadline)
end

--- stream:read([n | "l" | "L" | "a"] [, timeout]): the next chunk (at
--- most n bytes, 64 KiB by default) as soon as any is available; nil, nil
--- at the end; nil, message, code on error. "l"/"L" read a line without/with its
--- newline, "a" everything up to the end ("" if nothing is left). With a
--- timeout (seconds or a duration string), nil, "timeout", "timeout" when
--- nothing complete arrived in time.
function Stream:read(n, timeout)
  local raw, st = check_self(self, Stream, "stream:read")
  if n == nil and timeout == nil and raw and st.qh > st.qn then
    -- The commonest chunk read, the next chunk with no deadline: what
    -- read_until and await do for it, written out (a bulk reader makes
    -- one such call per 64 KiB).
    while true do
      local seen = clock.n
      local data, err, code = raw:read(CHUNK)
      if data then return data, nil end
      if data == nil then
        if err then return nil, "stream:read: " .. err, code end
        return nil, nil
      end
      sched.park("stream:read", st.token, nil, seen)
    end
  end
  local fmt = check_format(n, "stream:read", "n", READ_FORMATS)
  local deadline
  if timeout ~= nil then
    local secs, why = time._parse(timeout)
    if not secs then arg_error("stream:read", 2, "timeout", why) end
    deadline = sched.now() + secs
  end
  local data, err, code = read_until(raw, st, fmt, deadline)
  if data then return data, nil end
  if err == TIMEOUT then return nil, "timeout", "timeout" end
  if err then return nil, "stream:read: " .. err, code end
  return nil, nil
end

--- stream:case_read([fmt]): a case for channel.select. When chosen, the
--- result has channel = the stream, value = what read(fmt) returned, ok =
--- false at the end (and on an error, whose message is in `err` and its
--- code in `code`).
function Stream:case_read(n)
  local _, st = check_self(self, Stream, "stream:case_read")
  local fmt = check_format(n, "stream:case_read", "n", READ_FORMATS)
  local case = {
    kind = "poll", channel = self,
    -- done, value, ok, err, code: an attempt that never waits (its
    -- deadline has passed before it starts).
    try = function()
      check_open()
      local data, err, code = read_until(st.raw, st, fmt, 0)
      if err == TIMEOUT then return false end
      if data then return true, data, true end
      return true, nil, false, err and ("stream:read: " .. err), code
    end,
  }
  if st.raw then
    case.token = st.token
    return case
  end
  -- Made before the start: select waits on the start first, then on the
  -- stream's own token (looked up each time it waits).
  return setmetatable(case, { __index = function(_, k)
    if k == "token" then return st.token or st.start_key end
  end })
end

--- for line in stream:lines([fmt]) do ... end: lines without their newline,
--- or with it (fmt "L"), or chunks of at most n bytes (fmt a number), as
--- file:lines does. Raises on a read error (a for loop has no place for a
--- message).
function Stream:lines(fmt_arg)
  local raw, st = check_self(self, Stream, "stream:lines")
  local fmt = fmt_arg == nil and "l" or check_format(fmt_arg, "stream:lines", "fmt", LINES_FORMATS)
  if fmt == "a" then
    arg_error("stream:lines", 1, "fmt", "invalid format '" .. sched.shown(fmt_arg) .. "' (use " .. LINES_FORMATS .. ")")
  end
  if not raw then
    -- Made before the start: the first call waits for it, then the
    -- iterator of the started stream takes over.
    local it
    return function()
      if not it then
        check_open()
        local _, err = await_raw(st)
        if err then raise("stream:read: " .. err) end
        it = Stream.lines(self, fmt_arg)
      end
      return it()
    end
  end
  if fmt ~= "l" then
    return function()
      check_open()
      local data, err = read_until(raw, st, fmt)
      if err then raise("stream:read: " .. err) end
      return data
    end
  end
  -- Lines without their newline, the common case: a buffered line from
  -- the C iterator, or from the queue directly.
  local function next_or_raise()
    check_open()
    local line, err = next_line(raw, st, false)
    if err then raise("stream:read: " .. err) end
    return line
  end
  if LINE_READERS then return raw:line_reader(nil, next_or_raise, true) end
  local q = st.q
  return function()
    local h = st.qh
    if h <= st.qn and not life.closing then
      st.qh = h + 1
      return q[h] -- (the next batch overwrites the queue: no need to clear)
    end
    return next_or_raise()
  end
end

--- stream:close(): true, nil; idempotent.
function Stream:close()
  local raw, st = check_self(self, Stream, "stream:close")
  -- Queued lines (LuaJIT, 5.1) go with the rest of what was read ahead.
  drop_queue(st)
  if not raw then
    -- Not started yet: closed as soon as it starts (see M.started).
    if not st.closed_early then
      st.closed_early, st.why_not, st.why_code = true, "stream is closed", "closed"
      sched.fire(st.start_key)
    end
  elseif not raw:closed() then
    local t = raw:token()
    raw:close()
    sched.fire(t)
  end
  return true, nil
end

Stream.__close = function(self) Stream.close(self) end
Stream.__tostring = function(self)
  check_open()
  local st = dgetmt(self)
  local state = st.raw and (st.raw:closed() and "closed" or "open") or (st.closed_early and "closed" or "not started")
  return string.format("exec.stream(%s)", state)
end

local M = {}

-- For the scanner (scanner.lua), which reads through the same functions.
M.read_until, M.await_raw = read_until, await_raw

-- Give stream object `me` (state `st`) its raw stream `sraw`.
local function attach(me, st, sraw)
  st.raw, st.token = sraw, sraw:token()
  -- The C line reader is made for the raw stream (see M.new).
  if LINE_READERS then st.own.read = sraw:line_reader(me, Stream.read, false) end
end

--- A stream object: over raw stream `sraw`, or (sraw nil) one taken
--- before its process started, which M.started gives its raw stream.
--- `owner` (its process) is kept alive by it, so that a stream (and a
--- lines() iterator) can be read to the end.
function M.new(sraw, owner)
  local st = { raw = false, owner = owner, q = {}, qh = 1, qn = 0 }
  local q, me = st.q, nil
  -- Each stream has a read of its own: a buffered line, the commonest
  -- read, then needs no check at all (the method knows its object) and
  -- costs one call, like a file's read: of the C reader, or of a Lua
  -- function that takes it from the queue.
  local own = setmetatable({}, { __index = Stream })
  st.__index, st.own = own, own
  me = new_object(Stream, st)
  if not sraw then
    -- Fired when the process starts, or when it never will.
    st.start_key = {}
  else
    attach(me, st, sraw)
  end
  if LINE_READERS then return me end
  function own.read(self, n, timeout)
    if self == me and n == "l" and not life.closing then
      local h = st.qh
      if h <= st.qn then
        st.qh = h + 1
        return q[h]
      end
    end
    return Stream.read(self, n, timeout)
  end
  return me
end

--- The process of the streams taken before its start (`streams`: which ->
--- stream object) started (`praw`, its raw process) or failed to (`err`).
--- Each gets its raw stream (closed at once if it was closed meanwhile),
--- or learns why it has none; readers waiting for the start wake up.
function M.started(streams, praw, err)
  for which = 1, 2 do
    local s = streams[which]
    local st = s and dgetmt(s)
    if st and st.raw == false then
      if err then
        if not st.closed_early then st.why_not, st.why_code = "process did not start: " .. err, "not_started" end
      else
        local sraw, serr, scode = praw:stream(which)
        if sraw then
          attach(s, st, sraw)
          if st.closed_early then sraw:close() else st.why_not = nil end
        elseif not st.closed_early then
          st.why_not, st.why_code = serr, scode
        end
      end
      sched.fire(st.start_key)
    end
  end
end

--- The process of these streams was closed before it started: they will
--- never have output (as if closed; a later start() of a closed process
--- raises anyway).
function M.closed_unstarted(streams)
  for which = 1, 2 do
    local s = streams[which]
    local st = s and dgetmt(s)
    if st and st.raw == false and not st.closed_early then
      st.closed_early, st.why_not, st.why_code = true, "process was closed before it started", "closed"
      sched.fire(st.start_key)
    end
  end
end

return M
