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
