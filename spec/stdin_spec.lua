-- write_stdin and close_stdin: order, end-of-file, the queue that keeps a
-- write from blocking the program, and a child that stops reading.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

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

describe("write_stdin of more than the queue holds", function()
  it("completes while nobody reads the child's output (20 MiB through cat)", function()
    local out, status = H.script([[
      local p = exec.get("process:native"):exec({ "cat" })
      p:start()
      print("WRITE=" .. tostring(p:write_stdin(("x"):rep(20 * 1024 * 1024))))
      p:close_stdin()
      local s, n = p:stdout_stream(), 0
      while true do
        local chunk, err = s:read()
        if chunk then n = n + #chunk elseif err then print("NOTICE=" .. err) else break end
      end
      print("READ=" .. n .. " CODE=" .. tostring(p:wait()))
    ]], 30)
    assert.equals(0, status, out)
    assert.matches("WRITE=true\n", out)
    -- Up to the buffer_limit is kept; past it the documented notice comes.
    local n = tonumber(out:match("READ=(%d+)"))
    assert.is_true(n == 20 * 1024 * 1024 or out:match("NOTICE=[^\n]*were dropped") ~= nil, out)
    assert.matches("CODE=0", out)
  end)
end)

-- A caller that waits alone has its big writes go from the string itself,
-- the event loop's turns taken in Rust (Process::write_stdin_alone). What
-- arrives, and what the caller may do meanwhile, is what the queue gives.
describe("write_stdin from a caller that waits alone", function()
  -- 24 MiB of every byte value, with a position in each 4 KiB.
  local function pattern(mib)
    local piece = {}
    for i = 1, 256 do piece[i] = string.char(i - 1) end
    piece = table.concat(piece):rep(16)
    local parts = {}
    for i = 1, mib * 256 do parts[i] = string.format("%08d", i) .. piece:sub(9) end
    return table.concat(parts)
  end

  local function file_of(path)
    local f = assert(io.open(path, "rb"))
    local all = f:read("*a")
    f:close()
    return all
  end

  it("delivers every byte in order, in calls of every size", function()
    local data = pattern(24)
    local path = os.tmpname()
    local p = ex:exec({ "sh", "-c", 'exec cat > "$0"', path })
    p:start()
    local at, sizes, i = 1, { 1, 4097, 65536, 1048576, 5000000, 16 * 1048576 + 3 }, 0
    while at <= #data do
      i = i % #sizes + 1
      local piece = data:sub(at, at + sizes[i] - 1)
      assert.is_true(p:write_stdin(piece))
      at = at + #piece
    end
    assert.is_true(p:close_stdin())
    assert.equals(0, p:wait())
    local got = file_of(path)
    os.remove(path)
    assert.equals(#data, #got)
    assert.is_true(got == data)
  end)

  it("is not held up by a child that does not read yet", function()
    local data = pattern(4)
    local path = os.tmpname()
    local p = ex:exec({ "sh", "-c", 'sleep 1; exec cat > "$0"', path })
    p:start()
    local t0 = exec.time.now()
    assert.is_true(p:write_stdin(data))
    assert.is_true(exec.time.now() - t0 < 0.5, "the write waited for the child")
    assert.is_true(p:close_stdin())
    assert.equals(0, p:wait())
    local got = file_of(path)
    os.remove(path)
    assert.is_true(got == data)
  end)

  it("leaves the output of a child that writes as it reads to the reader, whole", function()
    local data = pattern(8)
    local p = ex:exec({ "cat" })
    p:start()
    assert.is_true(p:write_stdin(data))
    assert.is_true(p:close_stdin())
    local got = p:stdout_stream():read("a")
    assert.equals(0, p:wait())
    assert.equals(#data, #got)
    assert.is_true(got == data)
  end)

  it("delivers the same bytes while a task runs (the queue's path)", function()
    local data = pattern(24)
    local path = os.tmpname()
    local p = ex:exec({ "sh", "-c", 'exec cat > "$0"', path })
    p:start()
    local ticks, done = 0, false
    exec.spawn(function()
      while not done do ticks = ticks + 1; exec.time.sleep(0.001) end
    end)
    for at = 1, #data, 1048576 do assert.is_true(p:write_stdin(data:sub(at, at + 1048575))) end
    assert.is_true(p:close_stdin())
    assert.equals(0, p:wait())
    done = true
    exec.wait_tasks()
    local got = file_of(path)
    os.remove(path)
    assert.is_true(ticks > 0)
    assert.is_true(got == data)
  end)

  it("reports a child that closed its input, at once or at the next call", function()
    local p = ex:exec({ "sh", "-c", "exec 0<&-; sleep 0.3" })
    p:start()
    exec.time.sleep(0.1)
    local ok, err = p:write_stdin(string.rep("x", 4 * 1048576))
    if ok then ok, err = p:write_stdin("more") end
    assert.is_nil(ok)
    assert.matches("Broken pipe", err)
    assert.equals(0, p:wait())
  end)
end)
