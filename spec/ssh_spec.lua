-- Remote executors (kind exec.ssh) against a real sshd on 127.0.0.1, made
-- and started by scripts/sshd.sh with throwaway keys.
local H = require("spec.helper")
local exec = H.exec

local dir = H.tmpname("-sshd")
local port, user
local n_ids = 0

-- A fresh resource id, so that each test gets its own connection.
local function new_id()
  n_ids = n_ids + 1
  return "spec:ssh" .. n_ids
end

local function config(over)
  local c = {
    kind = "exec.ssh", host = "127.0.0.1", port = port, user = user,
    identity_file = dir .. "/user_key", known_hosts_file = dir .. "/known_hosts",
    ssh_config_file = "/dev/null",
  }
  for k, v in pairs(over or {}) do c[k] = v end
  return c
end

local function remote(over)
  local id = new_id()
  exec.registry.define(id, config(over))
  return exec.get(id)
end

local function logins()
  local n = 0
  for line in io.lines(dir .. "/sshd.log") do
    if line:find("Accepted publickey", 1, true) then n = n + 1 end
  end
  return n
end

-- Asked on the remote side: is process `pid` gone (or only a zombie)?
local function remote_gone(ex, pid, secs)
  local deadline = exec.time.now() + (secs or 5)
  repeat
    local r = ex:run("s=$(cut -d' ' -f3 /proc/" .. pid .. "/stat 2>/dev/null); [ -z \"$s\" ] || [ \"$s\" = Z ]")
    if r.code == 0 then return true end
    exec.time.sleep(0.05)
  until exec.time.now() > deadline
  return false
end

-- Start `sleep 300` in the background of a remote shell; returns the handle
-- and the remote sleep's pid.
local function remote_sleeper(ex, opts)
  local p = ex:exec("sleep 300 & echo $!; wait", opts)
  p:start()
  local pid = p:stdout_stream():read("l")
  assert.is_truthy(tonumber(pid), "no pid from the remote shell")
  return p, pid
end

describe("exec.ssh executors", function()
  setup(function()
    port, user = H.sshd_start(dir)
  end)

  teardown(function()
    H.sshd_stop(dir)
  end)

  it("are executors of kind exec.ssh with the native API", function()
    local id = new_id()
    exec.registry.define(id, config())
    assert.equals("exec.ssh", exec.registry.kind(id))
    local ex = exec.get(id)
    assert.equals(id, ex:id())
    local p = ex:exec("echo hello; echo oops >&2; exit 3")
    p:start()
    assert.equals("hello\n", H.read_all(p:stdout_stream()))
    assert.equals("oops\n", H.read_all(p:stderr_stream()))
    assert.same({ 3, nil }, { p:wait() })
    assert.is_truthy(tostring(p):find("127.0.0.1", 1, true))
  end)

  it("hand out streams before start(), as native ones, also to a reader waiting for the connection", function()
    local ex = remote()
    local p = ex:exec("echo out; echo err >&2")
    local out, err = p:stdout_stream(), p:stderr_stream()
    local got = exec.channel.new(1)
    exec.spawn(function() got:send(out:read("l")) end)
    p:start()
    assert.equals("out", got:receive())
    assert.equals(out, p:stdout_stream())
    assert.equals("err\n", err:read("a"))
    assert.same({ 0, nil }, { p:wait() })
  end)

  it("give the remote command's exit codes, 128+N for a signal, and 255 as 255", function()
    local ex = remote()
    assert.equals(0, ex:run("true").code)
    assert.equals(255, ex:run("exit 255").code)
    assert.equals(143, ex:run("kill -s TERM $$").code)
    assert.equals(137, ex:run("kill -s KILL $$").code)
    assert.equals(127, ex:run("no-such-command-here").code)
  end)

  it("quote argv commands safely, every byte but NUL", function()
    local ex = remote()
    local bytes = {}
    for b = 1, 255 do bytes[#bytes + 1] = string.char(b) end
    local weird = table.concat(bytes)
    local r = ex:run({ "printf", "%s|", weird, "it's", "$HOME", "a b", "\\n" })
    assert.equals(weird .. "|it's|$HOME|a b|\\n|", r.stdout)
    -- string commands are the remote sh's
    assert.equals("a b\n", ex:run("x='a b'; echo \"$x\"").stdout)
  end)

  it("apply work_dir and env on the remote side, with defaults from the resource", function()
    local ex = remote({ default_work_dir = "/tmp", default_env = { A = "1", B = "2" } })
    local r = ex:run("pwd; echo $A $B; printf '%s\\n' \"$C\"", { env = { B = "3", C = "x'y \"z\" $w" } })
    assert.equals("/tmp\n1 3\nx'y \"z\" $w\n", r.stdout)
    assert.equals("/\n", ex:run("pwd", { work_dir = "/" }).stdout)
    r = ex:run("pwd", { work_dir = "/no/such/dir" })
    assert.equals(127, r.code)
    assert.is_truthy(r.stderr:find("cannot change directory to /no/such/dir", 1, true), r.stderr)
  end)

  it("stream output as it comes and take stdin in order", function()
    local ex = remote()
    local p = ex:exec("echo first; read line; echo \"got $line\"; cat")
    p:start()
    local out = p:stdout_stream()
    assert.equals("first", out:read("l"))
    -- the remote command is still running: nothing was buffered to the end
    assert.same({ nil, "timeout", "timeout" }, { p:wait(0.05) })
    p:write_stdin("one\n")
    assert.equals("got one", out:read("l"))
    local chunks = {}
    for i = 1, 64 do chunks[i] = string.rep(string.char(64 + i % 26), 16384) end
    local data = table.concat(chunks) -- 1 MiB
    local got
    exec.spawn(function() got = out:read("a") end)
    assert.is_true(p:write_stdin(data))
    p:close_stdin()
    assert.equals(0, p:wait())
    exec.wait_tasks()
    assert.equals(#data, #got)
    assert.is_true(got == data)
  end)

  it("merge stderr into stdout on the remote side, in order", function()
    local r = remote():run("echo a; echo b >&2; echo c", { stderr = "stdout" })
    assert.equals("a\nb\nc\n", r.stdout)
    assert.equals("", r.stderr)
  end)

  it("deliver signals to the remote process group", function()
    local ex = remote()
    local p, pid = remote_sleeper(ex)
    assert.same({ true, nil }, { p:signal(15) })
    assert.equals(143, p:wait())
    assert.is_true(remote_gone(ex, pid), "remote sleep " .. pid .. " still runs")
    -- stop and continue reach it too
    p = ex:exec("sleep 300 & echo $!; wait")
    p:start()
    pid = p:stdout_stream():read("l")
    p:signal(19) -- SIGSTOP
    p:signal(18) -- SIGCONT
    p:signal(9)
    assert.equals(137, p:wait())
    assert.is_true(remote_gone(ex, pid))
  end)

  it("end the remote command on close(), on a collected handle and on timeout", function()
    local ex = remote()
    local p, pid = remote_sleeper(ex)
    p:close()
    assert.is_true(remote_gone(ex, pid), "close() left the remote command running")

    p, pid = remote_sleeper(ex)
    p = nil
    collectgarbage()
    collectgarbage()
    assert.is_true(remote_gone(ex, pid), "a collected handle left the remote command running")

    p, pid = remote_sleeper(ex, { timeout = 0.3 })
    assert.equals(143, p:wait())
    assert.is_true(p:timed_out())
    assert.is_true(remote_gone(ex, pid))
  end)

  it("deliver a signal or close() sent right after start()", function()
    local ex = remote()
    local p = ex:exec("sleep 300")
    p:start()
    p:signal(15)
    assert.equals(143, p:wait())
    local mark = H.tmpname(".remote-pid")
    p = ex:exec("sleep 300 & echo $! >" .. mark .. "; wait")
    p:start()
    p:close()
    -- If the command got to start at all, its sleep must be gone.
    local pid
    local deadline = exec.time.now() + 3
    repeat
      pid = ex:run("cat " .. mark .. " 2>/dev/null").stdout:match("%d+")
      if not pid then exec.time.sleep(0.05) end
    until pid or exec.time.now() > deadline
    if pid then assert.is_true(remote_gone(ex, pid), "close() right after start() missed " .. pid) end
    os.remove(mark)
  end)

  it("end the remote command when the local ssh client is killed", function()
    local ex = remote()
    local p, pid = remote_sleeper(ex)
    os.execute("kill -s KILL " .. p:pid())
    assert.equals(137, p:wait())
    assert.is_true(remote_gone(ex, pid), "killing the local ssh left the remote command running")
  end)

  it("end remote commands when the program exits without closing them", function()
    local out, status = H.run_script(string.format([[
      local exec = require("exec")
      exec.registry.define("h:x", %s)
      local p = exec.get("h:x"):exec("sleep 300 & echo $!; wait")
      p:start()
      print("PID=" .. p:stdout_stream():read("l"))
      io.stdout:flush()
      os.exit(0)
    ]], string.format("{ kind = 'exec.ssh', host = '127.0.0.1', port = %d, user = %q, identity_file = %q, known_hosts_file = %q, ssh_config_file = '/dev/null' }",
      port, user, dir .. "/user_key", dir .. "/known_hosts")))
    assert.equals(0, status, out)
    local pid = out:match("PID=(%d+)")
    assert.is_truthy(pid, out)
    assert.is_true(remote_gone(remote(), pid), "exit left the remote command running")
  end)

  -- A remote command is gone (checked on the remote side) after every kind
  -- of state end, as native children are: the stop command the handle's
  -- finalizer starts must not be killed by the state's own teardown.
  local endings = {
    ["the script ends normally"] = "",
    ["the script ends with an error"] = "error('script failed')",
    ["the handle was collected first"] = "p = nil; collectgarbage(); collectgarbage()",
    ["os.exit(0, true) closes the state"] = "os.exit(0, true)",
  }
  for name, ending in pairs(endings) do
    it("end remote commands when " .. name, function()
      local out = H.run_script(string.format([[
        local exec = require("exec")
        exec.registry.define("h:x", %s)
        local p = exec.get("h:x"):exec("sleep 300 & echo $!; wait")
        p:start()
        print("PID=" .. p:stdout_stream():read("l"))
        io.stdout:flush()
      ]], string.format("{ kind = 'exec.ssh', host = '127.0.0.1', port = %d, user = %q, identity_file = %q, known_hosts_file = %q, ssh_config_file = '/dev/null' }",
        port, user, dir .. "/user_key", dir .. "/known_hosts")) .. ending, "timeout -s KILL 30 ")
      local pid = out:match("PID=(%d+)")
      assert.is_truthy(pid, out)
      assert.is_true(remote_gone(remote(), pid), name .. ": the remote command was left running")
    end)
  end

  it("report connection failures as such, at start() or wait()", function()
    -- a port where nothing listens: the one sshd.sh would try after ours
    local closed = 1
    local ex = remote({ port = closed })
    local p = ex:exec("echo never")
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.is_truthy(err:find("cannot connect to " .. user .. "@127.0.0.1:1", 1, true), err)
    assert.is_truthy(err:find("Connection refused", 1, true), err)

    -- without multiplexing the ssh of the command itself fails: wait() says so
    ex = remote({ port = closed, multiplex = false })
    p = ex:exec("echo never")
    p:start()
    local code, werr = p:wait()
    assert.is_nil(code)
    assert.is_truthy(werr:find("ssh connection to", 1, true), werr)
    assert.is_truthy(werr:find("Connection refused", 1, true), werr)
    local r_ok, r_err = pcall(ex.run, ex, "true")
    assert.is_false(r_ok)
    assert.is_truthy(tostring(r_err):find("Connection refused", 1, true), r_err)
  end)

  it("refuse a key the server does not accept, and an unknown host key", function()
    local ok, err = pcall(function() remote({ identity_file = dir .. "/bad_key" }):run("true") end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("Permission denied", 1, true), err)
    ok, err = pcall(function() remote({ known_hosts_file = dir .. "/empty_known_hosts" }):run("true") end)
    assert.is_false(ok)
    assert.is_truthy(tostring(err):find("Host key verification failed", 1, true), err)
  end)

  it("run 50 short commands through one multiplexed connection", function()
    local ex = remote()
    local before = logins()
    for i = 1, 50 do
      local r = ex:run({ "echo", tostring(i) })
      assert.equals(tostring(i) .. "\n", r.stdout)
    end
    assert.equals(1, logins() - before, "one login for 50 commands")
    -- without multiplexing each command logs in: the count above means something
    ex = remote({ multiplex = false })
    before = logins()
    for _ = 1, 3 do assert.equals(0, ex:run("true").code) end
    assert.equals(3, logins() - before)
  end)

  it("run commands of one host in parallel from tasks", function()
    local ex = remote()
    local done = exec.channel.new(8)
    for i = 1, 8 do
      exec.spawn(function() done:send(ex:run("sleep 0.2; echo " .. i).stdout) end)
    end
    local seen = {}
    for _ = 1, 8 do seen[#seen + 1] = done:receive() end
    table.sort(seen)
    assert.same({ "1\n", "2\n", "3\n", "4\n", "5\n", "6\n", "7\n", "8\n" }, seen)
  end)

  it("apply command_whitelist and max_processes locally", function()
    local ex = remote({ command_whitelist = { "echo ok" }, max_processes = 1 })
    assert.equals("ok\n", ex:run("echo ok").stdout)
    assert.has_error(function() ex:exec("echo no") end)
    local p = ex:exec("echo ok")
    p:start()
    local q = ex:exec("echo ok")
    local ok, err = pcall(q.start, q)
    assert.is_false(ok)
    assert.is_truthy(err:find("max_processes", 1, true), err)
    p:wait()
  end)

  it("check their configuration when defined", function()
    local bad = {
      { host = 5 }, { host = "-oProxyCommand=x" }, { host = "deploy@h" }, { port = 0 }, { port = 70000 },
      { user = "-x" }, { ssh_options = { ["Proxy Command"] = "x" } }, { ssh_options = { A = {} } },
      { multiplex = "yes" }, { frobnicate = true },
    }
    for _, over in ipairs(bad) do
      local ok = pcall(exec.registry.define, new_id(), config(over))
      assert.is_false(ok)
    end
    local c = config()
    c.host = nil
    local ok, err = pcall(exec.registry.define, new_id(), c)
    assert.is_false(ok)
    assert.is_truthy(err:find("host is required", 1, true), err)
  end)
end)
