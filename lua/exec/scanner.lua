-- stream:scanner(split): the tokens of a stream, one scan() at a time, as
-- Wippy's stream module gives them (modelled on Go's bufio.Scanner):
--
--   local sc = stream:scanner("lines")   -- or "words", "bytes", "runes"
--   while sc:scan() do print(sc:text()) end
--   if sc:err() then error(sc:err()) end
--
-- No buffer of its own: "lines" and "words" take lines from the stream's
-- line reader (on Lua 5.3/5.4 its C functions: a lines scanner's scan and
-- text are C closures over the stream's buffered lines, as the lines()
-- iterator is; on LuaJIT and 5.1 the stream's queue of lines), since a
-- newline ends every word; "bytes" and "runes" take chunks, as read()
-- returns them, and hand out pieces of the current one. What a scanner has taken (the rest of a line or a chunk) is its own:
-- a read of the stream in between sees what comes after.
local parts = ...
local core, sched, O, S = parts.core, parts.sched, parts.object, parts.stream
local arg_error, check_self, new_object = O.arg_error, O.check_self, O.new_object
local check_open = O.check_open
local Stream = O.Stream
local byte, sub, find = string.byte, string.sub, string.find
local life = sched.life
local LINE_READERS = core.line_readers
local CHUNK = core.max_chunk

local Scanner = { __name = "exec.scanner" }
Scanner.__index = Scanner

-- What an invalid UTF-8 byte scans as in "runes" mode: U+FFFD, one per
-- byte, as Go's bufio.ScanRunes (and a range loop over a string) gives it.
local REPLACEMENT = "\239\191\189"

----------------------------------------------------------------------------
-- Where tokens come from
----------------------------------------------------------------------------

-- The next line of stream state `st`, without its newline: line | nil
-- (end) | nil, message. The slow path of the sources below: it waits (for
-- output, or for the process to start).
local function read_line(st)
  check_open()
  return S.read_until(st.raw, st, "l")
end

-- A function returning the stream's next line (as read_line does), taking
-- a buffered one without entering Lua code or the kernel where it can.
local function line_source(st)
  if LINE_READERS then
    local it -- the C iterator of the started stream
    return function()
      if it then return it() end
      check_open()
      local raw, err = S.await_raw(st)
      if not raw then return nil, err end
      it = raw:line_reader(nil, function() return read_line(st) end, true)
      return it()
    end
  end
  local q = st.q
  return function()
    local h = st.qh
    if h <= st.qn and not life.closing then
      st.qh = h + 1
      return q[h]
    end
    return read_line(st)
  end
end

-- The next chunk of the stream: data | nil | nil, message.
local function chunk_source(st)
  return function()
    check_open()
    return S.read_until(st.raw, st, CHUNK)
  end
end

----------------------------------------------------------------------------
-- Words: split on white space as Go's bufio.ScanWords (its isSpace):
-- \t \n \v \f \r and space, U+0085, U+00A0, U+1680, U+2000-U+200A,
-- U+2028, U+2029, U+202F, U+205F, U+3000. Bytes that are not valid UTF-8
-- are word bytes. (A lead byte never occurs inside a valid character, so
-- looking for the spaces' encodings byte by byte finds what Go's decoding
-- finds.)
----------------------------------------------------------------------------

-- Length of the multi-byte space at s[i] (lead byte C2, E1, E2 or E3), or 0.
local function wide_space(s, i)
  local b, c1, c2 = byte(s, i, i + 2)
  if b == 194 then
    return (c1 == 133 or c1 == 160) and 2 or 0           -- U+0085, U+00A0
  elseif b == 225 then
    return (c1 == 154 and c2 == 128) and 3 or 0          -- U+1680
  elseif b == 226 then
    if c1 == 128 then                                     -- U+2000-U+200A, U+2028, U+2029, U+202F
      return c2 and ((c2 >= 128 and c2 <= 138) or c2 == 168 or c2 == 169 or c2 == 175) and 3 or 0
    end
    return (c1 == 129 and c2 == 159) and 3 or 0          -- U+205F
  elseif b == 227 then
    return (c1 == 128 and c2 == 128) and 3 or 0          -- U+3000
  end
  return 0
end

-- Where the first word at or after s[i] starts, or nil.
local function word_start(s, i)
  while true do
    i = find(s, "[^\t-\r ]", i)
    if not i then return nil end
    local n = wide_space(s, i)
    if n == 0 then return i end
    i = i + n
  end
end

-- Where the word that goes on at s[i] ends: the index of the space after
-- it, or #s + 1.
local function word_end(s, i)
  while true do
    local j = find(s, "[\t-\r \194\225-\227]", i)
    if not j then return #s + 1 end
    if byte(s, j) < 128 or wide_space(s, j) > 0 then return j end
    i = j + 1
  end
end

----------------------------------------------------------------------------
-- Runes: one UTF-8 character at a time, its bytes as they came; an
-- invalid byte is one REPLACEMENT (Go's utf8.DecodeRune and FullRune).
----------------------------------------------------------------------------

-- The width of the character that starts at s[i] (not ASCII): 2-4 if it
-- is valid, 0 if it is not, -1 if s ends before it does and the bytes so
-- far could still begin a valid one.
local function rune_width(s, i)
  local b = byte(s, i)
  local need, lo, hi
  if b < 194 then
    return 0 -- a continuation byte, or an overlong lead (C0, C1)
  elseif b < 224 then
    need, lo, hi = 2, 128, 191
  elseif b < 240 then
    -- E0: no overlong forms; ED: no surrogates.
    need, lo, hi = 3, b == 224 and 160 or 128, b == 237 and 159 or 191
  elseif b < 245 then
    -- F0: no overlong forms; F4: nothing above U+10FFFF.
    need, lo, hi = 4, b == 240 and 144 or 128, b == 244 and 143 or 191
  else
    return 0
  end
  local c = byte(s, i + 1)
  if not c then return -1 end
  if c < lo or c > hi then return 0 end
  for k = 2, need - 1 do
    c = byte(s, i + k)
    if not c then return -1 end
    if c < 128 or c > 191 then return 0 end
  end
  return need
end

----------------------------------------------------------------------------
-- The token functions of each split: token | nil (end) | nil, message.
----------------------------------------------------------------------------

local function words(st)
  local next_line = line_source(st)
  local line, pos = "", 1
  return function()
    while true do
      local i = word_start(line, pos)
      if i then
        pos = word_end(line, i + 1)
        return sub(line, i, pos - 1)
      end
      local err
      line, err = next_line()
      if not line then
        line = ""
        return nil, err
      end
      pos = 1
    end
  end
end

local function bytes(st)
  local next_chunk = chunk_source(st)
  local chunk, i, n = "", 1, 0
  return function()
    if i > n then
      local c, err = next_chunk()
      if not c then return nil, err end
      chunk, i, n = c, 1, #c
    end
    local b = sub(chunk, i, i)
    i = i + 1
    return b
  end
end

local function runes(st)
  local next_chunk = chunk_source(st)
  local chunk, i, n, at_end = "", 1, 0, false
  return function()
    while true do
      if i > n then
        if at_end then return nil end
        local c, err = next_chunk()
        if not c then return nil, err end
        chunk, i, n = c, 1, #c
      end
      local b = byte(chunk, i)
      if b < 128 then
        i = i + 1
        return sub(chunk, i - 1, i - 1)
      end
      local w = rune_width(chunk, i)
      if w > 0 then
        i = i + w
        return sub(chunk, i - w, i - 1)
      elseif w == 0 or at_end then
        i = i + 1
        return REPLACEMENT
      end
      -- A character cut at the end of the chunk: its bytes go in front of
      -- the next chunk. At the end of the stream they are invalid.
      local rest = sub(chunk, i)
      local c, err = next_chunk()
      if c then
        chunk = rest .. c
      elseif err then
        return nil, err
      else
        chunk, at_end = rest, true
      end
      i, n = 1, #chunk
    end
  end
end

local SPLITS = { words = words, bytes = bytes, runes = runes }

----------------------------------------------------------------------------
-- The scanner object
----------------------------------------------------------------------------

-- Each scanner has methods of its own (closures over its state, as a
-- stream has its own read): a scan costs one call and a check of `self`.
-- Called on another object, they go through the checked class methods.
function Scanner.scan(self)
  local _, st = check_self(self, Scanner, "scanner:scan")
  return st.own.scan(self)
end

function Scanner.text(self)
  local _, st = check_self(self, Scanner, "scanner:text")
  return st.own.text(self)
end

function Scanner.err(self)
  local _, st = check_self(self, Scanner, "scanner:err")
  return st.own.err(self)
end

Scanner.__tostring = function(self)
  return string.format("exec.scanner(%s)", O.dgetmt(self).split)
end

--- stream:scanner([split]): a scanner of the stream's "lines" (the
--- default; without their "\n" and a "\r" before it), "words" (split on
--- white space, none empty), "bytes" or "runes" (UTF-8 characters).
function Stream:scanner(split)
  local _, sst = check_self(self, Stream, "stream:scanner")
  if split == nil then split = "lines" end
  if split ~= "lines" and not SPLITS[split] then
    arg_error("stream:scanner", 1, "split", "must be \"lines\", \"words\", \"bytes\" or \"runes\" (got " ..
      (type(split) == "string" and ("'" .. split .. "'") or type(split)) .. ")")
  end
  -- raw: what it reads (the stream object, which keeps its process alive).
  local st = { raw = self, split = split }
  local own = setmetatable({}, { __index = Scanner })
  st.__index, st.own = own, own
  local me = new_object(Scanner, st)

  -- tok[1]: the current token; tok[2]: true once done (the end, or an
  -- error, for good). A table, because the C methods share it.
  local tok, err = { "" }, nil
  local function finish(e)
    tok[1], tok[2] = "", true
    if e then
      err = "scanner:scan: " .. e
      return false, err
    end
    return false
  end

  function own.text(s)
    if s ~= me then return Scanner.text(s) end
    return tok[1]
  end

  function own.err(s)
    if s ~= me then return Scanner.err(s) end
    return err
  end

  if split == "lines" and LINE_READERS then
    -- Lines of a started stream are served by C methods (scanner_methods,
    -- see line_reader.rs), a buffered line in one call, "\r" dropped; they
    -- call this for the rest: a line not buffered yet, the end, errors.
    local function slow_scan(s)
      if s ~= me then return Scanner.scan(s) end
      if tok[2] then return false, err end
      local line, e = read_line(sst)
      if not line then return finish(e) end
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      tok[1] = line
      return true
    end
    local function c_methods(raw)
      own.scan, own.text = raw:scanner_methods(me, slow_scan, Scanner.text, tok)
    end
    if sst.raw then
      c_methods(sst.raw)
    else
      -- Made before the start: the first scan waits for it.
      function own.scan(s)
        if s ~= me then return Scanner.scan(s) end
        if tok[2] then return false, err end
        check_open()
        local raw, e = S.await_raw(sst)
        if not raw then return finish(e) end
        c_methods(raw)
        return own.scan(s)
      end
    end
  elseif split == "lines" then
    -- The stream's queue of lines, as lines() takes it.
    local q = sst.q
    function own.scan(s)
      if s ~= me then return Scanner.scan(s) end
      if tok[2] then return false, err end
      local h, line = sst.qh, nil
      if h <= sst.qn and not life.closing then
        sst.qh = h + 1
        line = q[h]
      else
        local e
        line, e = read_line(sst)
        if not line then return finish(e) end
      end
      if byte(line, -1) == 13 then line = sub(line, 1, -2) end
      tok[1] = line
      return true
    end
  else
    local next_token = SPLITS[split](sst)
    function own.scan(s)
      if s ~= me then return Scanner.scan(s) end
      if tok[2] then return false, err end
      if life.closing then check_open() end
      local t, e = next_token()
      if not t then return finish(e) end
      tok[1] = t
      return true
    end
  end

  return me
end

return { Scanner = Scanner }
