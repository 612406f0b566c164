-- The kinds of read on an output stream: lines ("l", "L"), whole ("a"),
-- chunks, read(0), lines(fmt), reads with a deadline, case_read for
-- channel.select, and the C line readers of Lua 5.3/5.4. Cases that wait
-- on children run in a fresh interpreter under a time limit (H.script).
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

local passes = H.passes

describe("line and whole reads", function()
  it("read('l') and read('L') return lines, the last one without a newline too, CRLF as is", function()
    local p = ex:exec("printf 'one\\ntwo\\r\\n\\nlast'")
    p:start()
    local s = p:stdout_stream()
    assert.equals("one", s:read("l"))
    assert.equals("two\r\n", s:read("L"))
    assert.equals("", s:read("l"))
    assert.equals("last", s:read("l"))
    assert.same({ nil, nil }, { s:read("l") })
    p:wait()
  end)

  it("read('a') returns everything to the end, '' once nothing is left", function()
    local p = ex:exec("printf 'head\\nbody'; head -c 100000 /dev/zero")
    p:start()
    local s = p:stdout_stream()
    assert.equals("head", s:read("l"))
    local rest = s:read("a")
    assert.equals(4 + 100000, #rest)
    assert.equals("body", rest:sub(1, 4))
    assert.equals("", s:read("a"))
    p:wait()
  end)

  it("lines() iterates lines, and chunk reads see what a line read left over", function()
    local p = ex:exec("printf 'a\\nb\\nc\\n'")
    p:start()
    local s = p:stdout_stream()
    assert.equals("a", s:read("l"))
    assert.equals("b\nc\n", s:read("a"))
    p:wait()
    p = ex:exec("seq 1 1000")
    p:start()
    local n, last = 0, nil
    for line in p:stdout_stream():lines() do
      n = n + 1
      last = line
    end
    assert.equals(1000, n)
    assert.equals("1000", last)
    p:wait()
  end)

  it("rejects unknown formats, naming the argument", function()
    local p = ex:exec("true")
    p:start()
    local s = p:stdout_stream()
    local ok, err = pcall(s.read, s, "x")
    assert.is_false(ok)
    assert.matches("invalid format", err)
    p:wait()
  end)
end)

-- On Lua 5.3 and 5.4 a buffered line is read by a C function of the
-- stream's own (src/binding/line_reader.rs) that hands every other case to
-- the Lua code; these pin what it must keep doing.
describe("line reads of buffered lines", function()
  local C_READERS = exec._internal.core.line_readers

  -- A started `printf` of `text`, and its stdout once `first` was read
  -- from it (the rest of its lines are then buffered).
  local function buffered(text, first)
    local p = ex:exec({ "printf", text })
    p:start()
    local s = p:stdout_stream()
    assert.equals(first, s:read("l", 5))
    return p, s
  end

  it("read the stream the method is called on, not the one it was taken from", function()
    local pa, a = buffered("a1\\na2\\n", "a1")
    local pb, b = buffered("b1\\nb2\\n", "b1")
    assert.equals("b2", a.read(b, "l"))
    assert.equals("a2", b.read(a, "l"))
    assert.is_nil(a:read("l"))
    assert.is_nil(b:read("l"))
    local ok, err = pcall(a.read, {}, "l")
    assert.is_false(ok)
    assert.matches("stream:read: self must be an exec.stream %(got table%)", err)
    pa:wait()
    pb:wait()
  end)

  it("take buffered lines in order whatever the format or timeout", function()
    local p, s = buffered("1\\n2\\n3\\n4\\n5\\n6\\n7", "1")
    assert.equals("2", s:read("l", 1))
    assert.equals("3", s:read("*l"))
    assert.equals("4\n", s:read("L"))
    assert.equals("5", s:read("l", nil))
    assert.equals("6\n7", s:read("a"))
    assert.is_nil(s:read("l"))
    local ok, err = pcall(s.read, s, "x")
    assert.is_false(ok)
    assert.matches("invalid format 'x'", err)
    p:wait()
  end)

  -- Run `read(send)` in a task while another task ticks 5 times, 20 ms
  -- apart: the `n` values it sent, once the ticker has finished too.
  local function beside_a_ticker(n, read)
    local ch = exec.channel.new(n)
    local ticks = 0
    exec.spawn(function() read(function(v) ch:send(v) end) end)
    exec.spawn(function()
      for _ = 1, 5 do ticks = ticks + 1; exec.time.sleep(0.02) end
    end)
    local got = {}
    for i = 1, n do got[i] = ch:receive() end
    assert.equals(5, ticks)
    return got
  end

  it("park a task until a line comes, while other tasks run", function()
    local p = ex:exec("sleep 0.3; printf 'late\\nlater\\n'")
    p:start()
    local s = p:stdout_stream()
    assert.same({ "late", "later" }, beside_a_ticker(2, function(send)
      send(s:read("l"))
      for line in s:lines() do send(line) end
    end))
    assert.equals(0, p:wait())
  end)

  it("let a lines() loop in a task wait for each line (not on Lua 5.1, see the README)", function()
    if _VERSION == "Lua 5.1" and not H.is_luajit then
      return pending("Lua 5.1's generic for cannot yield")
    end
    local p = ex:exec("for i in 1 2 3; do echo $i; sleep 0.1; done")
    p:start()
    local s = p:stdout_stream()
    assert.same({ "1", "2", "3" }, beside_a_ticker(3, function(send)
      for line in s:lines() do send(line) end
    end))
    assert.equals(0, p:wait())
  end)

  it("are gone once the stream is closed, for every kind of line read", function()
    local p, s = buffered("1\n2\n3\n4\n", "1")
    local it = s:lines()
    assert.equals("2", it())
    s:close()
    local line, err = s:read("l")
    assert.is_nil(line)
    assert.matches("stream:read: .*closed", err)
    local ok, msg = pcall(it)
    assert.is_false(ok)
    assert.matches("stream:read: .*closed", msg)
    p:wait()
  end)

  it("keep reading after a reader was finalized and brought back", function()
    if not C_READERS then return pending("the C readers exist on Lua 5.3 and 5.4") end
    local p, s = buffered("x\\ny\\nz\\nw\\n", "x")
    local back_it, back_read
    -- The readers become garbage in the same cycle as the table whose
    -- finalizer brings them back: their own finalizers have run by then.
    setmetatable({ it = s:lines(), read = s.read }, {
      __gc = function(o) back_it, back_read = o.it, o.read end,
    })
    collectgarbage()
    collectgarbage()
    assert.is_function(back_it)
    assert.equals("y", back_it())
    assert.equals("z", back_read(s, "l"))
    assert.equals("w", back_it())
    assert.is_nil(back_it())
    p:wait()
  end)
end)

describe("stream:read(fmt, timeout)", function()
  it("returns nil, 'timeout' and keeps a partial line for the next read", function()
    passes([[
      local p = exec.get("process:native"):exec("printf abc; sleep 0.6; printf 'def\\nrest'")
      p:start()
      local s = p:stdout_stream()
      local t0 = time.now()
      local v, e = s:read("l", 0.2)
      assert(v == nil and e == "timeout", tostring(v) .. " " .. tostring(e))
      local waited = time.now() - t0
      assert(waited >= 0.15 and waited < 0.5, "waited " .. waited)
      assert(s:read("l") == "abcdef")
      assert(s:read("a") == "rest")
      assert(p:wait() == 0)
    ]])
  end)

  it("bounds chunk, whole and L reads, in a task as in the main chunk; durations as strings", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("printf one; sleep 0.5; printf 'two\\n'")
      p:start()
      local s = p:stdout_stream()
      local v, e = s:read("a", "100ms")
      assert(v == nil and e == "timeout", tostring(v))
      assert(s:read("L") == "onetwo\n")
      local got = {}
      coroutine.spawn(function()
        local q = ex:exec("sleep 0.4; echo late")
        q:start()
        local qs = q:stdout_stream()
        got[1], got[2] = qs:read(nil, 0.05)
        got[3] = qs:read()
        q:wait()
      end)
      assert(exec.wait_tasks())
      assert(got[1] == nil and got[2] == "timeout" and got[3] == "late\n", tostring(got[3]))
      assert(p:wait() == 0)
    ]])
  end)

  it("a bad timeout is an argument error", function()
    local p = H.native:exec("echo hi")
    p:start()
    local s = p:stdout_stream()
    local ok, err = pcall(s.read, s, "l", "soon")
    assert.is_false(ok)
    assert.matches("bad argument #2 %(timeout%) to 'stream:read': invalid duration 'soon'", err)
    assert.equals("hi", s:read("l"))
    p:wait()
  end)
end)

describe("stream:lines(fmt)", function()
  it("'L' keeps the newlines and a number gives chunks, as file:lines does", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("printf 'a\\nb\\nc'")
      p:start()
      local got = {}
      for l in p:stdout_stream():lines("L") do got[#got + 1] = l end
      assert(table.concat(got, "|") == "a\n|b\n|c", table.concat(got, "|"))
      p:wait()
      p = ex:exec("printf abcdefg")
      p:start()
      got = {}
      for c in p:stdout_stream():lines(3) do
        assert(#c <= 3, c)
        got[#got + 1] = c
      end
      assert(table.concat(got) == "abcdefg")
      p:wait()
    ]])
  end)

  it("refuses 'a' (it would never end) and nonsense", function()
    local p = H.native:exec("true")
    p:start()
    local s = p:stdout_stream()
    assert.has_error(function() s:lines("a") end,
      "bad argument #1 (fmt) to 'stream:lines': invalid format 'a' (use \"l\", \"L\" or a size)")
    assert.has_error(function() s:lines(-1) end,
      "bad argument #1 (fmt) to 'stream:lines': must be a whole number >= 0 (got -1)")
    p:wait()
  end)
end)

describe("stream:read(0)", function()
  it("returns whatever is available, as read() does", function()
    local p = ex:exec("printf a; sleep 0.3; printf b")
    p:start()
    local s = p:stdout_stream()
    local t0 = exec.time.now()
    assert.equals("a", s:read(0))
    assert.is_true(exec.time.now() - t0 < 0.25, "it did not wait for more")
    assert.equals("b", s:read(0))
    assert.same({ nil, nil }, { s:read(0) })
    assert.equals(0, p:wait())
  end)

  it("is a chunk for case_read and lines too; below 0 still raises", function()
    local p = ex:exec("printf abc")
    p:start()
    local s = p:stdout_stream()
    local r = exec.channel.select({ s:case_read(0) })
    assert.equals("abc", r.value)
    assert.is_nil(s:lines(0)())
    for _, n in ipairs({ -1, 0.5 }) do
      local ok, err = pcall(s.read, s, n)
      assert.is_false(ok)
      assert.matches("bad argument #1 %(n%) to 'stream:read': must be a whole number >= 0", err)
    end
    assert.equals(0, p:wait())
  end)
end)

describe("stream:case_read for channel.select", function()
  it("a log follower: lines as they come, a deadline, a stop channel", function()
    local out = passes([[
      local p = exec.get("process:native"):exec("for i in 1 2 3; do echo line$i; sleep 0.1; done; printf 'par'; sleep 0.2; echo tial; sleep 5")
      p:start()
      local s = p:stdout_stream()
      local stop = channel.new()
      local deadline = time.after("1.5s")
      local got = {}
      while true do
        local r = channel.select({ s:case_read("l"), deadline:case_receive(), stop:case_receive() })
        if r.channel == s then
          assert(r.ok, tostring(r.err))
          got[#got + 1] = r.value
        else
          assert(r.channel == deadline, "the deadline")
          break
        end
      end
      print("GOT=" .. table.concat(got, ","))
      p:close()
    ]])
    assert.matches("GOT=line1,line2,line3,partial\n", out)
  end)

  it("ok = false at the end; chunk and 'a' cases; a stop channel wins over a silent stream", function()
    passes([[
      local ex = exec.get("process:native")
      local p = ex:exec("printf abc")
      p:start()
      local s = p:stdout_stream()
      local r = channel.select({ s:case_read("a") })
      assert(r.channel == s and r.ok and r.value == "abc", tostring(r.value))
      r = channel.select({ s:case_read() })
      assert(r.channel == s and r.ok == false and r.value == nil)
      p:wait()
      local q = ex:exec({ "sleep", "5" })
      q:start()
      local stop = channel.new(1)
      coroutine.spawn(function() time.sleep(0.1); stop:send("stop") end)
      r = channel.select({ q:stdout_stream():case_read("l"), stop:case_receive() })
      assert(r.channel == stop and r.value == "stop")
      r = channel.select({ q:stdout_stream():case_read("l"), default = true })
      assert(r.default)
      q:close()
    ]])
  end)
end)

-- A stream that proves to carry bulk data is read a pipe's worth at a time
-- (Outputs::read_chunk): chunk reads of every size, line reads and a wait
-- on the process in between still see every byte once, in order.
describe("a bulk stream", function()
  it("gives every byte in order to reads of every kind", function()
    local parts = {}
    for i = 1, 40000 do parts[i] = string.format("%06d", i) .. string.rep(string.char(32 + i % 90), 200) .. "\n" end
    local data = table.concat(parts) -- about 8 MiB, a line every 207 bytes
    local path = os.tmpname()
    local f = assert(io.open(path, "wb"))
    f:write(data)
    f:close()
    local p = ex:exec({ "cat", path })
    p:start()
    local s = p:stdout_stream()
    local got, i = {}, 0
    local sizes = { nil, 1, 4096, 65536, 70000, 12345 }
    while true do
      i = i + 1
      local piece
      if i % 5 == 0 then
        piece = s:read("L")
      elseif i % 11 == 0 then
        piece = s:read(0)
      else
        piece = s:read(sizes[i % #sizes + 1])
      end
      if not piece then break end
      got[#got + 1] = piece
    end
    assert.equals(0, p:wait())
    os.remove(path)
    got = table.concat(got)
    assert.equals(#data, #got)
    assert.is_true(got == data)
  end)
end)
