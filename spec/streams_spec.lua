local H = require("spec.helper")
local exec = H.exec
local ex = H.native

describe("output streams", function()
  it("are the same object on every call", function()
    local p = ex:exec("echo hi")
    p:start()
    assert.equals(p:stdout_stream(), p:stdout_stream())
    assert.equals(p:stderr_stream(), p:stderr_stream())
    assert.are_not.equal(p:stdout_stream(), p:stderr_stream())
    p:wait()
  end)

  it("are handed out before start too, and are the same objects after it (spec/wippy_compat_spec.lua)", function()
    local p = ex:exec("echo hi")
    local s = p:stdout_stream()
    p:start()
    assert.equals(s, p:stdout_stream())
    assert.equals("hi\n", s:read())
    p:wait()
  end)

  it("read chunks, then nil, nil at the end", function()
    local p = ex:exec("printf abc; printf err >&2")
    p:start()
    local out, err = p:stdout_stream(), p:stderr_stream()
    assert.equals("abc", H.read_all(out))
    local a, b = out:read()
    assert.is_nil(a)
    assert.is_nil(b)
    assert.equals("err", H.read_all(err))
    assert.equals(0, p:wait())
  end)

  it("read(n) returns at most n bytes", function()
    local p = ex:exec("printf 0123456789")
    p:start()
    local s = p:stdout_stream()
    local got = {}
    while true do
      local c = s:read(3)
      if not c then break end
      assert.is_true(#c <= 3 and #c >= 1)
      got[#got + 1] = c
    end
    assert.equals("0123456789", table.concat(got))
    p:wait()
  end)

  it("return chunks of at most 64 KiB", function()
    local p = ex:exec({ "head", "-c", "1000000", "/dev/zero" })
    p:start()
    local s = p:stdout_stream()
    local total = 0
    while true do
      local c = s:read(2 ^ 40)
      if not c then break end
      assert.is_true(#c <= 65536)
      total = total + #c
    end
    assert.equals(1000000, total)
    p:wait()
  end)

  it("raise for a bad read size, naming the argument", function()
    local p = ex:exec("true")
    p:start()
    local s = p:stdout_stream()
    for _, n in ipairs({ -1, 1.5, 0 / 0, "x", true, {} }) do
      local ok, err = pcall(s.read, s, n)
      assert.is_false(ok)
      assert.matches("'stream:read'", err)
      assert.matches("%(n%)", err)
    end
    p:wait()
  end)

  it("close returns true, nil and is idempotent; reading a closed stream returns nil, message", function()
    local p = ex:exec("echo hi")
    p:start()
    local s = p:stdout_stream()
    assert.equals("hi\n", s:read())
    assert.same({ true, nil }, { s:close() })
    assert.same({ true, nil }, { s:close() })
    local data, err = s:read()
    assert.is_nil(data)
    assert.matches("closed", err)
    assert.equals(0, p:wait())
  end)

  it("stay readable after wait(), so output is never lost by waiting first", function()
    local p = ex:exec({ "head", "-c", "50000", "/dev/zero" })
    p:start()
    local s = p:stdout_stream()
    assert.equals(0, p:wait())
    assert.equals(50000, #H.read_all(s))
  end)

  it("obtained but not read do not block wait(), and keep all their output", function()
    local p = ex:exec("head -c 3000000 /dev/zero; head -c 2000000 /dev/zero >&2")
    p:start()
    local out, err = p:stdout_stream(), p:stderr_stream()
    assert.equals(0, p:wait())
    assert.equals(3000000, #H.read_all(out))
    assert.equals(2000000, #H.read_all(err))
  end)

  it("do not block wait() when never obtained, however much the child writes", function()
    local p = ex:exec({ "head", "-c", "5000000", "/dev/zero" })
    p:start()
    assert.equals(0, p:wait())
    p = ex:exec("head -c 3000000 /dev/zero >&2; echo done")
    p:start()
    assert.equals(0, p:wait())
  end)

  it("let wait() return when a grandchild keeps the pipe open", function()
    local p = ex:exec("sleep 30 & echo hi; exit 4")
    p:start()
    local t0 = exec.time.now()
    assert.equals(4, p:wait())
    assert.is_true(exec.time.now() - t0 < 20)
  end)

  it("see end-of-file even when stdout is closed early by the child", function()
    local p = ex:exec("exec >&-; sleep 0.1; exit 2")
    p:start()
    assert.equals("", H.read_all(p:stdout_stream()))
    assert.equals(2, p:wait())
  end)

  it("wake a reader that blocked before wait() took its output in", function()
    -- The reader parks on the stream; the child writes and exits while no
    -- loop runs; wait() then takes the output in (read-ahead), which uses
    -- up the pipe's edge: the reader must still be told.
    local p = H.native:exec("echo hello")
    p:start()
    local got
    exec.spawn(function() got = p:stdout_stream():read() end)
    exec.time.sleep(0.01)
    os.execute("sleep 0.3")
    assert.equals(0, p:wait())
    exec.time.sleep(0.2)
    assert.equals("hello\n", got)
  end)

  it("mix line, chunk, whole and lines() reads, in order", function()
    local p = H.native:exec("printf 'a\\nb\\nc\\nd\\ne\\nfff'")
    p:start()
    local s = p:stdout_stream()
    local it = s:lines()
    assert.equals("a", it())
    assert.equals("b\n", s:read("L"))
    assert.equals("c", s:read("l"))
    assert.equals("d\n", s:read(2))
    assert.equals("e", it())
    assert.equals("fff", s:read("a"))
    assert.is_nil(it())
    assert.equals(0, p:wait())
  end)

  it("read many lines whole across pipe reads, and a last line without newline", function()
    local p = H.native:exec("seq 1 100000; printf tail")
    p:start()
    local s = p:stdout_stream()
    local n, last = 0, nil
    for line in s:lines() do
      n = n + 1
      if n <= 100000 then assert(line == tostring(n), line) end
      last = line
    end
    assert.equals(100001, n)
    assert.equals("tail", last)
    assert.equals(0, p:wait())
  end)

  it("can be closed with <close> on Lua 5.4", function()
    if not H.has_close then
      pending(H.lua .. " has no <close> variables (Lua 5.4 syntax)")
      return
    end
    local chunk = assert(load([[
      local ex = ...
      local p <close> = ex:exec("echo hi")
      p:start()
      local s <close> = p:stdout_stream()
      local data = s:read()
      return data, s, p
    ]]))
    local data, s, p = chunk(ex)
    assert.equals("hi\n", data)
    local _, err = s:read()
    assert.matches("closed", err)
    assert.has_error(function() p:stdout_stream() end)
  end)
end)

describe("stdin", function()
  it("round-trips through cat, with close_stdin sending end-of-file", function()
    local p = ex:exec("cat")
    p:start()
    assert.same({ true, nil }, { p:write_stdin("hello ") })
    assert.same({ true, nil }, { p:write_stdin("world") })
    assert.same({ true, nil }, { p:close_stdin() })
    assert.equals("hello world", H.read_all(p:stdout_stream()))
    assert.equals(0, p:wait())
  end)

  it("accepts numbers and raises for other types, naming the argument", function()
    local p = ex:exec("cat")
    p:start()
    assert.is_true(p:write_stdin(42))
    for _, bad in ipairs({ nil, true, {}, function() end }) do
      local ok, err = pcall(p.write_stdin, p, bad)
      assert.is_false(ok)
      assert.matches("data", err)
    end
    p:close_stdin()
    assert.equals("42", H.read_all(p:stdout_stream()))
    p:wait()
  end)

  it("close_stdin is idempotent and later writes return nil, message", function()
    local p = ex:exec("cat")
    p:start()
    p:close_stdin()
    assert.is_true(p:close_stdin())
    local ok, err = p:write_stdin("late")
    assert.is_nil(ok)
    assert.matches("closed", err)
    assert.equals(0, p:wait())
  end)

  it("queues 8 MiB written before anyone reads, and delivers it in order", function()
    local p = ex:exec("cat")
    p:start()
    local parts = {}
    for i = 1, 128 do
      parts[i] = string.rep(string.char(i % 256), 65536)
      assert.is_true(p:write_stdin(parts[i]))
    end
    p:close_stdin()
    local got = H.read_all(p:stdout_stream())
    assert.equals(8 * 1024 * 1024, #got)
    assert.is_true(got == table.concat(parts))
    assert.equals(0, p:wait())
  end)

  it("returns nil, message when the child has exited, and the interpreter lives", function()
    local p = ex:exec("exit 0")
    p:start()
    exec.time.sleep(0.2)
    local ok, err = p:write_stdin(string.rep("x", 100000))
    assert.is_nil(ok)
    assert.matches("stdin", err)
    ok, err = p:write_stdin("again")
    assert.is_nil(ok)
    assert.is_string(err)
    assert.equals(0, p:wait())
  end)

  it("returns nil, message when the child closed its stdin", function()
    local p = ex:exec("exec 0<&-; echo closed; sleep 5")
    p:start()
    assert.equals("closed\n", p:stdout_stream():read())
    local ok, err = p:write_stdin("x")
    assert.is_nil(ok)
    assert.matches("Broken pipe", err)
    p:close(true)
  end)
end)

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
