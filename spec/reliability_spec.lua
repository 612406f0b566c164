-- Nothing lost, leaked or crashed, over many cycles and with big data.
-- `make test` runs the quick sizes; `make stress` (LUA_EXEC_STRESS=1) the long ones.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

local CYCLES = H.stress and 10000 or 1000

-- One spawn/wait cycle, ending the handle in the i-th of several ways.
local function cycle(i)
  local mode = i % 8
  if mode == 0 then
    local p = ex:exec({ "echo", "x" })
    p:start()
    assert(p:wait() == 0)
  elseif mode == 1 then
    local p = ex:exec({ "sleep", "10" })
    p:start()
    p:close()
  elseif mode == 2 then
    local p = ex:exec({ "sleep", "10" })
    p:start()
    p:close(true)
  elseif mode == 3 then
    local p = ex:exec("echo dropped") -- handle dropped, collected later
    p:start()
  elseif mode == 4 then
    local p = ex:exec({ "head", "-c", "200000", "/dev/zero" }) -- stream closed early
    p:start()
    local s = p:stdout_stream()
    assert(s:read(10))
    s:close()
    local code = p:wait()
    assert(code == 0 or code == 141, code)
  elseif mode == 5 then
    local p = ex:exec("printf out; printf err >&2") -- streams never obtained
    p:start()
    assert(p:wait() == 0)
  elseif mode == 6 then
    local p = ex:exec({ "cat" }) -- stdin round trip
    p:start()
    p:write_stdin("ping")
    p:close_stdin()
    assert(p:stdout_stream():read("a") == "ping")
    assert(p:wait() == 0)
  else
    local p = ex:exec("exit 0") -- an error raised in the middle of reading
    p:start()
    local ok = pcall(function()
      local s = p:stdout_stream()
      s:read()
      error("reader failed")
    end)
    assert(not ok)
  end
end

describe("over " .. CYCLES .. " spawn/wait cycles", function()
  it("descriptors, zombies and resident memory do not grow", function()
    -- Warm up: the allocator's arenas, the child table and Lua's heap reach
    -- their working size; growth is measured after that.
    for i = 1, CYCLES / 2 do cycle(i) end
    collectgarbage()
    collectgarbage()
    assert.equals(0, H.children_settle())
    local fds0, list0 = H.fd_count()
    local rss0 = H.rss_kib()
    for i = 1, CYCLES do cycle(i) end
    collectgarbage()
    collectgarbage()
    assert.equals(0, H.children_settle(), "children still held by the library")
    local fds1, list1 = H.fd_count()
    local rss1 = H.rss_kib()
    print(string.format("\n  %d cycles: fds %d -> %d, RSS %d -> %d KiB", CYCLES, fds0, fds1, rss0, rss1))
    assert.equals(fds0, fds1, "before: " .. list0 .. "\nafter: " .. list1)
    assert.equals(0, H.zombies_of(H.own_pid()))
    assert.is_true(rss1 - rss0 < 8 * 1024, "RSS grew by " .. (rss1 - rss0) .. " KiB")
  end)
end)

describe("big data", function()
  local MIB = 1024 * 1024

  -- Adler-32, enough to tell a reordered or corrupted stream.
  local function adler(state, s)
    local a, b = state[1], state[2]
    for i = 1, #s, 4096 do
      local chunk = s:sub(i, i + 4095)
      for j = 1, #chunk do
        a = (a + chunk:byte(j)) % 65521
        b = (b + a) % 65521
      end
    end
    state[1], state[2] = a, b
  end

  it("flows through cat with writer and reader in separate tasks, bytes identical", function()
    local total = (H.stress and 256 or 32) * MIB
    local block = {}
    for i = 0, 255 do block[#block + 1] = string.char(i) end
    block = string.rep(table.concat(block), 256) -- 64 KiB, every byte value
    local p = ex:exec("cat")
    p:start()
    local sent, got = { 1, 0 }, { 1, 0 }
    local nbytes = 0
    local done = exec.channel.new(2)
    exec.spawn(function()
      for i = 1, total / #block do
        -- vary the data so that a reordering would show
        local piece = i % 7 == 0 and block:reverse() or block
        adler(sent, piece)
        assert(p:write_stdin(piece))
      end
      p:close_stdin()
      done:send("w")
    end)
    exec.spawn(function()
      local s = p:stdout_stream()
      while true do
        local c = s:read()
        if not c then break end
        nbytes = nbytes + #c
        adler(got, c)
      end
      done:send("r")
    end)
    done:receive()
    done:receive()
    assert.equals(0, p:wait())
    assert.equals(total, nbytes)
    assert.same(sent, got)
  end)

  it("from a child whose stream nobody obtained does not block wait()", function()
    local size = H.stress and "1G" or "128M"
    local p = ex:exec({ "head", "-c", size, "/dev/zero" })
    p:start()
    assert.equals(0, p:wait())
  end)

  it("keeps resident memory flat while streaming", function()
    local p = ex:exec({ "head", "-c", (H.stress and "2G" or "256M"), "/dev/zero" })
    p:start()
    local s = p:stdout_stream()
    local n, peak = 0, 0
    local rss0 = H.rss_kib()
    while true do
      local c = s:read()
      if not c then break end
      n = n + 1
      if n % 1024 == 0 then
        collectgarbage("step")
        peak = math.max(peak, H.rss_kib())
      end
    end
    assert.equals(0, p:wait())
    assert.is_true(peak - rss0 < 16 * 1024, "RSS grew by " .. (peak - rss0) .. " KiB")
  end)
end)

describe("exhaustion", function()
  it("with the descriptor limit lowered, start fails clearly, leaks nothing, and works again", function()
    local out, status = H.run_script([[
      local exec = require("exec")
      local ex = exec.get("process:native")
      local f = io.open("/proc/self/stat")
      local pid = f:read("*l"):match("^%d+")
      f:close()
      -- The smallest of three listings: io.popen closes the child's end of
      -- its own pipe only after `ls` runs, so `ls` can see both ends.
      local function fds()
        local best
        for _ = 1, 3 do
          local p = io.popen("sleep 0.01; ls /proc/" .. pid .. "/fd")
          local n = 0
          for _ in p:lines() do n = n + 1 end
          p:close()
          if not best or n < best then best = n end
        end
        return best
      end
      local procs, err = {}, nil
      for i = 1, 200 do
        local p = ex:exec({ "sleep", "30" })
        local ok, e = pcall(p.start, p)
        if not ok then err = e break end
        procs[#procs + 1] = p
      end
      print("started " .. #procs)
      print("error: " .. tostring(err))
      collectgarbage()
      local before = fds()
      for _ = 1, 20 do
        local p = ex:exec({ "sleep", "30" })
        assert(not pcall(p.start, p))
      end
      collectgarbage()
      print("leaked " .. (fds() - before))
      for _, p in ipairs(procs) do p:close(true) end
      local p = ex:exec({ "echo", "again" })
      p:start()
      print("after: " .. table.concat({ tostring(p:stdout_stream():read()) }))
      print("code " .. p:wait())
    ]], "ulimit -n 64; ")
    assert.equals(0, status, out)
    assert.matches("Too many open files", out)
    assert.matches("leaked 0", out)
    assert.matches("after: again", out)
    assert.matches("code 0", out)
  end)

  it("with the process limit lowered, start fails clearly and works again", function()
    if H.read_file("/proc/self/status"):match("Uid:%s+(%d+)") ~= "0" then
      pending("needs root to run the check as an unprivileged user (root ignores RLIMIT_NPROC)")
      return
    end
    -- RLIMIT_NPROC does not apply to root: run the interpreter as nobody,
    -- with a copy of exec.so that nobody can surely read.
    local so = assert(package.searchpath("exec", package.cpath))
    local dir = H.tmpname(".d")
    assert(os.execute("mkdir -p " .. dir .. " && cp " .. so .. " " .. dir .. "/exec.so && chmod -R a+rX " .. dir))
    local out, status = H.run_script([[
      local exec = require("exec")
      local ex = exec.get("process:native")
      local procs, err = {}, nil
      for i = 1, 100 do
        local p = ex:exec({ "sleep", "30" })
        local ok, e = pcall(p.start, p)
        if not ok then err = e break end
        procs[#procs + 1] = p
      end
      print("started " .. #procs)
      print("error: " .. tostring(err))
      for _, p in ipairs(procs) do p:close(true) end
      exec.time.sleep(0.5)
      local p = ex:exec({ "echo", "again" })
      p:start()
      print("after: " .. tostring(p:stdout_stream():read()))
      print("code " .. p:wait())
    ]], "LUA_CPATH='" .. dir .. "/?.so' prlimit --nproc=12:12 setpriv --reuid=65534 --regid=65534 --clear-groups ")
    os.execute("rm -rf " .. dir)
    assert.equals(0, status, out)
    assert.matches("Resource temporarily unavailable", out)
    assert.matches("after: again", out)
  end)
end)
