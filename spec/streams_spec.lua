-- Output streams: chunk reads, the end, close, how a stream and wait()
-- go together (read-ahead, the stream nobody reads, buffer_limit and its
-- notice, memory bounds), and a stream that keeps its process alive.
-- Cases that could hang run in a fresh interpreter under a time limit.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native
local script = H.script

describe("output streams", function()
  it("are the same object on every call", function()
    local p = ex:exec("echo hi")
    p:start()
    assert.equals(p:stdout_stream(), p:stdout_stream())
    assert.equals(p:stderr_stream(), p:stderr_stream())
    assert.are_not.equal(p:stdout_stream(), p:stderr_stream())
    p:wait()
  end)

  it("are handed out before start too, and are the same objects after it (spec/streams_before_start_spec.lua)", function()
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

describe("output is never lost because a handle was collected", function()
  it("a lines() iterator keeps its process alive", function()
    local out, status = script([[
      local function lines_of(cmd)
        local p = exec.get("process:native"):exec(cmd); p:start(); return p:stdout_stream():lines()
      end
      local n = 0
      for _ in lines_of("for i in $(seq 1 50); do echo $i; sleep 0.01; done") do
        n = n + 1
        if n == 10 then collectgarbage(); collectgarbage() end
      end
      print("LINES=" .. n)
    ]])
    assert.equals(0, status, out)
    assert.matches("LINES=50", out)
  end)

  it("a stream keeps its process alive, and the child is still reaped once both are gone", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("sleep 0.3; echo late")
      p:start()
      local pid = p:pid()
      local s = p:stdout_stream()
      p = nil
      collectgarbage(); collectgarbage()
      print("READ=" .. tostring(s:read("l")))
      s = nil
      collectgarbage(); collectgarbage()
      print("GONE=" .. tostring(H.gone(pid, 5)))
    ]])
    assert.equals(0, status, out)
    assert.matches("READ=late", out)
    assert.matches("GONE=true", out)
  end)
end)

describe("no deadlock on the stream nobody reads, and bounded memory", function()
  it("reading stdout alone does not hang on a full stderr", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 1000000 /dev/zero >&2; echo done"); p:start()
      print("OUT=" .. p:stdout_stream():read("a"))
      print("CODE=" .. p:wait())
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("OUT=done", out)
    assert.matches("CODE=0", out)
  end)

  it("stderr taken in while stdout was read is still there to read afterwards", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 1000000 /dev/zero | tr '\\0' e >&2; echo done"); p:start()
      local o = p:stdout_stream():read("a")
      local e = p:stderr_stream():read("a")
      print("OUT=" .. o .. "ERRLEN=" .. #e .. " ALLE=" .. tostring(not e:find("[^e]")))
      print("CODE=" .. p:wait())
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("OUT=done\nERRLEN=1000000 ALLE=true", out)
  end)

  it("an endless writer nobody reads does not grow memory without bound while wait() runs", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec({ "yes" }); p:start()
      local s = p:stdout_stream()
      local before = H.rss_kib()
      print("WAIT=" .. tostring(select(2, p:wait("3s"))))
      local grown = H.rss_kib() - before
      print("GROWN_MIB=" .. math.floor(grown / 1024))
      p:close()
      local chunk, err = s:read()
      print("FIRST=" .. tostring(chunk and #chunk) .. " " .. tostring(err))
    ]], 20)
    assert.equals(0, status, out)
    assert.matches("WAIT=timeout", out)
    local grown = tonumber(out:match("GROWN_MIB=(%-?%d+)"))
    assert.is_truthy(grown and grown < 40, out)
    assert.matches("FIRST=nil [^\n]*dropped", out)
  end)

  it("buffer_limit sets the limit per process", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 300000 /dev/zero >&2; echo done", { buffer_limit = 100000 })
      p:start()
      print("OUT=" .. p:stdout_stream():read("a"))
      local s = p:stderr_stream()
      local chunk, err = s:read()
      print("FIRST=" .. tostring(chunk) .. " " .. tostring(err))
      local rest = s:read("a")
      print("REST=" .. #rest)
      print("CODE=" .. p:wait())
    ]], 10)
    assert.equals(0, status, out)
    assert.matches("OUT=done", out)
    assert.matches("FIRST=nil [^\n]*200000 bytes[^\n]*dropped", out)
    assert.matches("REST=100000", out)
  end)

  it("under a memory limit, waiting on an endless writer neither aborts nor grows", function()
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 800000000 /dev/zero"); p:start()
      local s = p:stdout_stream()
      print("CODE=" .. tostring(p:wait()))
      local chunk, err = s:read()
      print("FIRST=" .. tostring(chunk) .. " " .. tostring(err))
    ]], 30, { shell = "ulimit -v 400000; " })
    assert.equals(0, status, out)
    assert.matches("CODE=0", out)
    assert.matches("FIRST=nil [^\n]*dropped", out)
  end)

  it("running out of memory fails the read instead of aborting", function()
    -- read("a") gathers the output in Rust: past the memory limit it
    -- returns nil, message (or Lua raises its own memory error).
    local out, status = script([[
      local p = exec.get("process:native"):exec("head -c 800000000 /dev/zero"); p:start()
      local ok, data, err = pcall(function() return p:stdout_stream():read("a") end)
      print("OK=" .. tostring(ok) .. " DATA=" .. tostring(ok and data and #data or nil) .. " ERR=" .. tostring(err or (not ok and data)))
      p:close()
    ]], 30, { shell = "ulimit -v 400000; " })
    assert.equals(0, status, out)
    assert.matches("DATA=nil ERR=[^\n]*memory", out)
  end)
end)
