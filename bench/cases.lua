-- One benchmark case per call: `lua bench/cases.lua NAME [ARG]` prints one
-- number (higher is better unless the name says otherwise). bench/run.lua
-- runs each case several times, side by side, and prints medians and ratios.
local name, arg1 = arg[1], arg[2]

local function now()
  local exec = package.loaded.exec
  if exec then return exec.time.now() end
  local ok, uv = pcall(require, "luv")
  if ok then uv.update_time(); return uv.hrtime() / 1e9 end
  -- Not os.clock(): that is CPU time, which leaves out waiting for children.
  return require("exec").time.now()
end

local function rss_kib()
  local f = io.open("/proc/self/status")
  local t = f:read("*a")
  f:close()
  return tonumber(t:match("VmRSS:%s*(%d+)"))
end

-- A Lua heap of about `mb` MB (many distinct strings), to show the cost of
-- fork() copying page tables.
local heap
local function grow_heap(mb)
  heap = {}
  local piece = string.rep("h", 1024 * 1024 - 64)
  for i = 1, mb do heap[i] = piece .. i end
end

local cases = {}

---------------------------------------------------------------- spawn
function cases.exec_spawn_argv(n)
  local exec = require("exec")
  local ex = exec.get("process:native")
  local t0 = now()
  for _ = 1, n do
    local p = ex:exec({ "/bin/true" })
    p:start()
    p:wait()
  end
  return n / (now() - t0)
end

function cases.exec_spawn_shell(n)
  local exec = require("exec")
  local ex = exec.get("process:native")
  local t0 = now()
  for _ = 1, n do
    local p = ex:exec("true")
    p:start()
    p:wait()
  end
  return n / (now() - t0)
end

function cases.luv_spawn_argv(n)
  local uv = require("luv")
  local t0 = now()
  for _ = 1, n do
    local h
    h = uv.spawn("/bin/true", { args = {} }, function() h:close() end)
    uv.run()
  end
  return n / (now() - t0)
end

function cases.popen_shell(n)
  local t0 = os.time()
  local c0 = now()
  for _ = 1, n do
    local f = io.popen("true")
    f:read("*a")
    f:close()
  end
  return n / (now() - c0)
end

function cases.os_execute_shell(n)
  local c0 = now()
  for _ = 1, n do os.execute("true") end
  return n / (now() - c0)
end

function cases.exec_spawn_heap(n)
  grow_heap(500)
  return cases.exec_spawn_argv(n)
end

function cases.luv_spawn_heap(n)
  grow_heap(500)
  return cases.luv_spawn_argv(n)
end

function cases.popen_heap(n)
  grow_heap(500)
  return cases.popen_shell(n)
end

---------------------------------------------------------------- stdout read
local function dd(mib)
  return { "dd", "if=/dev/zero", "bs=1M", "count=" .. mib, "status=none" }
end

function cases.exec_read(mib, opts)
  local exec = require("exec")
  local p = exec.get("process:native"):exec(dd(mib), opts)
  local t0 = now()
  p:start()
  local s = p:stdout_stream()
  local total = 0
  while true do
    local c = s:read()
    if not c then break end
    total = total + #c
  end
  p:wait()
  assert(total == mib * 1048576)
  return total / (now() - t0)
end

function cases.exec_read_rss(mib)
  local exec = require("exec")
  local p = exec.get("process:native"):exec(dd(mib))
  p:start()
  local s = p:stdout_stream()
  local r0, peak, n = rss_kib(), 0, 0
  while true do
    local c = s:read()
    if not c then break end
    n = n + 1
    if n % 256 == 0 then peak = math.max(peak, rss_kib()) end
  end
  p:wait()
  return (peak - r0) / 1024 -- MiB of growth
end

function cases.luv_read(mib)
  local uv = require("luv")
  local out = uv.new_pipe(false)
  local total = 0
  local t0 = now()
  local h
  h = uv.spawn("dd", { args = { "if=/dev/zero", "bs=1M", "count=" .. mib, "status=none" }, stdio = { nil, out, nil } },
    function() h:close() end)
  out:read_start(function(err, data)
    if data then total = total + #data else out:close() end
  end)
  uv.run()
  assert(total == mib * 1048576)
  return total / (now() - t0)
end

function cases.popen_read(mib)
  local t0 = now()
  local f = io.popen("dd if=/dev/zero bs=1M count=" .. mib .. " status=none")
  local total = 0
  while true do
    local c = f:read(65536)
    if not c then break end
    total = total + #c
  end
  f:close()
  return total / (now() - t0)
end

---------------------------------------------------------------- lines
-- `seq 1 N` line by line: the stream's lines() iterator, a read("l") loop,
-- and io.popen():lines(). Lines per second.
function cases.exec_lines(n)
  local exec = require("exec")
  local p = exec.get("process:native"):exec({ "seq", "1", tostring(n) })
  local t0 = now()
  p:start()
  local count = 0
  for _ in p:stdout_stream():lines() do count = count + 1 end
  p:wait()
  assert(count == n)
  return n / (now() - t0)
end

function cases.exec_read_l(n)
  local exec = require("exec")
  local p = exec.get("process:native"):exec({ "seq", "1", tostring(n) })
  local t0 = now()
  p:start()
  local s = p:stdout_stream()
  local count = 0
  while s:read("l") do count = count + 1 end
  p:wait()
  assert(count == n)
  return n / (now() - t0)
end

-- The same lines through stream:scanner("lines"): scan() and text() per line.
function cases.exec_scanner_lines(n)
  local exec = require("exec")
  local p = exec.get("process:native"):exec({ "seq", "1", tostring(n) })
  local t0 = now()
  p:start()
  local sc = p:stdout_stream():scanner("lines")
  local count = 0
  while sc:scan() do
    local _ = sc:text()
    count = count + 1
  end
  p:wait()
  assert(count == n and not sc:err())
  return n / (now() - t0)
end

function cases.popen_lines(n)
  local t0 = now()
  local f = io.popen("seq 1 " .. n)
  local count = 0
  for _ in f:lines() do count = count + 1 end
  f:close()
  assert(count == n)
  return n / (now() - t0)
end

---------------------------------------------------------------- whole output
-- 200 MiB captured whole: stream:read("a"), exec.run, io.popen():read("a").
function cases.exec_read_all(mib)
  local exec = require("exec")
  local p = exec.get("process:native"):exec(dd(mib))
  local t0 = now()
  p:start()
  local all = p:stdout_stream():read("a")
  p:wait()
  assert(#all == mib * 1048576)
  return #all / (now() - t0)
end

function cases.exec_run_capture(mib)
  local exec = require("exec")
  local t0 = now()
  local r = exec.run(dd(mib))
  assert(#r.stdout == mib * 1048576)
  return #r.stdout / (now() - t0)
end

function cases.popen_read_all(mib)
  local t0 = now()
  local f = io.popen("dd if=/dev/zero bs=1M count=" .. mib .. " status=none")
  local all = f:read("a")
  f:close()
  assert(#all == mib * 1048576)
  return #all / (now() - t0)
end

---------------------------------------------------------------- short commands
-- The most common use: run `echo hi` and take its output.
function cases.exec_run_shell(n)
  local exec = require("exec")
  local t0 = now()
  for _ = 1, n do assert(exec.run("echo hi").stdout == "hi\n") end
  return n / (now() - t0)
end

function cases.exec_run_argv(n)
  local exec = require("exec")
  local t0 = now()
  for _ = 1, n do assert(exec.run({ "echo", "hi" }).stdout == "hi\n") end
  return n / (now() - t0)
end

-- io.popen(cmd) + read("a") + close(), n times: runs per second.
local function popen_runs(cmd, n)
  local t0 = now()
  for _ = 1, n do
    local f = io.popen(cmd)
    assert(f:read("a") == "hi\n")
    f:close()
  end
  return n / (now() - t0)
end

function cases.popen_echo(n) return popen_runs("echo hi", n) end
function cases.popen_binecho(n) return popen_runs("/bin/echo hi", n) end

---------------------------------------------------------------- stdin write
local BLOCK = string.rep("x", 65536)

-- The same two with the opt-in socket pair instead of a pipe.
function cases.exec_read_socket(mib) return cases.exec_read(mib, { stdout = "socket" }) end
function cases.exec_write_socket(mib) return cases.exec_write(mib, { stdin = "socket" }) end

function cases.exec_write(mib, opts)
  local exec = require("exec")
  local p = exec.get("process:native"):exec("cat > /dev/null", opts)
  local t0 = now()
  p:start()
  for _ = 1, mib * 16 do assert(p:write_stdin(BLOCK)) end
  p:close_stdin()
  p:wait()
  return mib * 1048576 / (now() - t0)
end

-- luv: `count` writes of `block` into the stdin of `program` `args`, with
-- backpressure, as a real program must (queueing 1 GiB at once would
-- measure memory, not the pipe); returns once the child is done.
local function luv_feed(program, args, block, count)
  local uv = require("luv")
  local inp = uv.new_pipe(false)
  local h
  h = uv.spawn(program, { args = args, stdio = { inp, nil, nil } }, function() h:close() end)
  local left = count
  local function pump()
    while left > 0 and inp:get_write_queue_size() < 1048576 do
      left = left - 1
      inp:write(block, left == 0 and function() inp:shutdown(function() inp:close() end) end or nil)
    end
  end
  local idle = uv.new_check()
  idle:start(function() pump(); if left == 0 then idle:stop(); idle:close() end end)
  pump()
  uv.run()
end

function cases.luv_write(mib)
  require("luv") -- loaded before the clock starts, as the other cases do
  local t0 = now()
  luv_feed("sh", { "-c", "cat > /dev/null" }, BLOCK, mib * 16)
  return mib * 1048576 / (now() - t0)
end

-- 1 GiB into `dd of=/dev/null bs=1M` in 1 MiB calls.
local MIB_BLOCK
local function mib_block()
  MIB_BLOCK = MIB_BLOCK or string.rep("x", 1048576)
  return MIB_BLOCK
end
local DD_SINK = { "dd", "of=/dev/null", "bs=1M", "status=none" }

function cases.exec_write_dd(mib, opts)
  local exec = require("exec")
  local block = mib_block()
  local p = exec.get("process:native"):exec(DD_SINK, opts)
  local t0 = now()
  p:start()
  for _ = 1, mib do assert(p:write_stdin(block)) end
  p:close_stdin()
  assert(p:wait() == 0)
  return mib * 1048576 / (now() - t0)
end

function cases.luv_write_dd(mib)
  require("luv")
  local block = mib_block()
  local t0 = now()
  luv_feed("dd", { "of=/dev/null", "bs=1M", "status=none" }, block, mib)
  return mib * 1048576 / (now() - t0)
end

function cases.popen_write_dd(mib)
  local block = mib_block()
  local t0 = now()
  local f = io.popen("dd of=/dev/null bs=1M status=none", "w")
  for _ = 1, mib do f:write(block) end
  f:close()
  return mib * 1048576 / (now() - t0)
end

function cases.popen_write(mib)
  local t0 = now()
  local f = io.popen("cat > /dev/null", "w")
  for _ = 1, mib * 16 do f:write(BLOCK) end
  f:close()
  return mib * 1048576 / (now() - t0)
end

---------------------------------------------------------------- concurrency
function cases.exec_concurrent_wall(n)
  local exec = require("exec")
  local ex = exec.get("process:native")
  local t0, c0 = now(), os.clock()
  local done = exec.channel.new(n)
  for _ = 1, n do
    exec.spawn(function()
      local p = ex:exec({ "sleep", "1" })
      p:start()
      done:send(p:wait())
    end)
  end
  for _ = 1, n do assert(done:receive() == 0) end
  local wall, cpu = now() - t0, os.clock() - c0
  io.stderr:write(string.format("cpu=%.3f\n", cpu))
  return wall
end

function cases.luv_concurrent_wall(n)
  local uv = require("luv")
  local t0 = now()
  local left = n
  for _ = 1, n do
    local h
    h = uv.spawn("sleep", { args = { "1" } }, function(code) assert(code == 0); left = left - 1; h:close() end)
  end
  uv.run()
  assert(left == 0)
  io.stderr:write(string.format("cpu=%.3f\n", os.clock()))
  return now() - t0
end

---------------------------------------------------------------- ping-pong
function cases.exec_pingpong(n)
  local exec = require("exec")
  local p = exec.get("process:native"):exec({ "cat" })
  p:start()
  local s = p:stdout_stream()
  local t0 = now()
  for i = 1, n do
    p:write_stdin("ping\n")
    assert(s:read("l") == "ping")
  end
  local rate = n / (now() - t0)
  p:close_stdin()
  p:wait()
  return rate
end

function cases.luv_pingpong(n)
  local uv = require("luv")
  local inp, out = uv.new_pipe(false), uv.new_pipe(false)
  local h
  h = uv.spawn("cat", { stdio = { inp, out, nil } }, function() h:close() end)
  local i, t0 = 0, now()
  local rate
  out:read_start(function(err, data)
    if not data then out:close() return end
    i = i + 1
    if i < n then inp:write("ping\n") else
      rate = n / (now() - t0)
      inp:shutdown(function() inp:close() end)
    end
  end)
  inp:write("ping\n")
  uv.run()
  return rate
end

---------------------------------------------------------------- channels
function cases.exec_channel(n)
  local exec = require("exec")
  local a, b = exec.channel.new(), exec.channel.new()
  exec.spawn(function()
    for _ = 1, n do b:send(a:receive()) end
  end)
  local t0 = now()
  for i = 1, n do
    a:send(i)
    b:receive()
  end
  return n / (now() - t0)
end

function cases.coroutine_resume(n)
  local co = coroutine.wrap(function(v) while true do v = coroutine.yield(v) end end)
  local t0 = now()
  for i = 1, n do co(i); co(i) end -- two switches per round trip, as above
  return n / (now() - t0)
end

local f = cases[name]
if not f then
  io.stderr:write("unknown case " .. tostring(name) .. "\n")
  os.exit(2)
end
print(string.format("%.6f", f(tonumber(arg1))))
