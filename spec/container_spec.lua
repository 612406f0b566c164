-- Container executors (kind exec.docker) against a real podman whose
-- storage, run state and configuration live in a temporary directory
-- (scripts/podman.sh), with a test image made on the spot from
-- busybox-static. Each case runs in a fresh interpreter under a time limit
-- (H.script), and after each one no container may be left in that podman.
-- docker, which has no daemon here, is driven through the same code path:
-- its command lines are checked with a stand-in client that records its
-- arguments, and its "daemon down" error with the real client when there
-- is one.
local H = require("spec.helper")
local exec = H.exec

local root = H.is_root()
local dir = H.tmpname("-podman")
local args, env, image
local prelude

-- What every case's script starts with: the engine set-up as locals, and
-- `define(over)`, which defines a fresh resource and returns its executor.
local function make_prelude()
  local q = {}
  for i, a in ipairs(args) do q[i] = string.format("%q", a) end
  return string.format([[
local D, IMAGE, CONF = %q, %q, %q
local ARGS = { %s }
local n_ids = 0
local function config(over)
  local c = { kind = "exec.docker", image = IMAGE, engine = "podman", engine_args = ARGS,
              engine_env = { CONTAINERS_CONF = CONF } }
  for k, v in pairs(over or {}) do c[k] = v end
  for k, v in pairs(c) do if v == false and k ~= "auto_remove" and k ~= "read_only_rootfs" then c[k] = nil end end
  return c
end
local function define(over)
  n_ids = n_ids + 1
  local id = "spec:container" .. n_ids
  exec.registry.define(id, config(over))
  return exec.get(id)
end
-- Until no container is left (or `secs` passed): the ids still there.
local function settle_empty(secs)
  local deadline = time.now() + (secs or 6)
  local left = H.podman_ps(D)
  while #left > 0 and time.now() < deadline do
    time.sleep(0.1)
    left = H.podman_ps(D)
  end
  return left
end
]], dir, image, env.CONTAINERS_CONF, table.concat(q, ", "))
end

-- Run `body` after the prelude in a fresh interpreter killed after `limit`
-- seconds; it must print OK at its end.
local function run_case(body, limit)
  local out, status = H.script(prelude .. body .. "\nprint('OK')\n", limit or 30)
  assert.equals(0, status, out)
  assert.matches("\nOK\n$", "\n" .. out, nil, false, out)
  return out
end

describe("exec.docker executors", function()
  if not root then
    pending("need root: podman here runs rootful (scripts/podman.sh), and the specs run as " .. tostring(os.getenv("USER")))
    return
  end

  setup(function()
    args, env, image = H.podman_start(dir)
    prelude = make_prelude()
  end)

  teardown(function()
    H.podman_stop(dir)
  end)

  -- Nothing of ours may be left in podman ps -a after any case.
  after_each(function()
    local deadline = exec.time.now() + 6
    local left = H.podman_ps(dir)
    while #left > 0 and exec.time.now() < deadline do
      exec.time.sleep(0.1)
      left = H.podman_ps(dir)
    end
    if #left > 0 then
      H.podman(dir, { "rm", "-a", "-f", "-t", "0" })
      error("containers left behind: " .. table.concat(left, " "))
    end
  end)

  it("are process executors of kind exec.docker: output, exit codes, stderr apart", function()
    run_case([[
      local ex = define()
      assert(exec.registry.kind("spec:container1") == "exec.docker")
      local r = ex:run("echo out; echo err >&2; exit 3")
      assert(r.code == 3 and r.stdout == "out\n" and r.stderr == "err\n", r.code .. r.stdout .. r.stderr)
      assert(ex:run("true").code == 0)
      -- argv runs the program itself, its arguments intact: every byte but
      -- NUL that is UTF-8 (the engines pass commands as JSON text)
      local bytes = {}
      for b = 1, 127 do bytes[#bytes + 1] = string.char(b) end
      local weird = table.concat(bytes) .. "é€😀"
      r = ex:run({ "printf", "%s|", weird, "it's", "$HOME", "a b" })
      assert(r.stdout == weird .. "|it's|$HOME|a b|", r.stdout)
      local ok, e = pcall(ex.exec, ex, { "echo", "\255" })
      assert(not ok and tostring(e):find("command[2] is not valid UTF-8", 1, true), tostring(e))
      -- stdin and output are bytes
      local all = {}
      for b = 0, 255 do all[#all + 1] = string.char(b) end
      all = table.concat(all)
      assert(ex:run({ "cat" }, { input = all }).stdout == all)
      -- a string runs /bin/sh -c in the container
      assert(ex:run("x='a b'; echo \"$x\"").stdout == "a b\n")
      local p = ex:exec({ "echo", "hi" })
      assert(tostring(p):find(IMAGE, 1, true), tostring(p))
      p:start()
      assert(p:stdout_stream():read("a") == "hi\n")
      local code, err = p:wait()
      assert(code == 0 and err == nil)
      assert(select(1, p:status()) == "exited")
    ]])
  end)

  it("give 126 and 127 their meaning, and the program's own 125", function()
    run_case([[
      local ex = define()
      local r = ex:run("exec no-such-program")
      assert(r.code == 127 and r.stderr:find("not found"), r.code .. r.stderr)
      r = ex:run("/etc")
      assert(r.code == 126, r.code .. r.stderr)
      assert(ex:run("exit 125").code == 125)
      -- an argv program that is not there: catatonit (podman's --init)
      -- reports it with code 1 and its message (docker's tini says 127)
      r = ex:run({ "no-such-program" })
      assert(r.code ~= 0 and r.stderr:find("No such file or directory", 1, true), r.code .. r.stderr)
    ]])
  end)

  it("stream stdin in order, end it with close_stdin, and stream output as it comes", function()
    run_case([[
      local ex = define()
      local p = ex:exec("echo first; read line; echo \"got $line\"; cat")
      p:start()
      local out = p:stdout_stream()
      assert(out:read("l") == "first")
      assert(select(2, p:wait(0.05)) == "timeout")
      p:write_stdin("one\n")
      assert(out:read("l") == "got one")
      local data = string.rep("0123456789abcdef", 65536) -- 1 MiB
      p:write_stdin(data)
      p:close_stdin()
      local got = out:read("a")
      assert(got == data, #got)
      assert(p:wait() == 0)
      -- run's input, and a stdin ended at once
      assert(ex:run({ "cat" }, { input = "piped\n" }).stdout == "piped\n")
      local r = ex:run("wc -c")
      assert(r.stdout:match("^%s*0%s*$"), r.stdout)
    ]])
  end)

  it("hand out streams before start(), and pipe to and from native processes", function()
    run_case([[
      local ex = define()
      local p = ex:exec("echo one; sleep 0.2; echo two >&2")
      local out, err = p:stdout_stream(), p:stderr_stream()
      local got = exec.channel.new(1)
      exec.spawn(function() got:send(out:read("l")) end)
      p:start()
      assert(got:receive() == "one")
      assert(err:read("a") == "two\n")
      assert(p:wait() == 0)
      local native = exec.get("process:native")
      local seq = native:exec({ "seq", "1", "100000" }); seq:start()
      local wc = ex:exec({ "wc", "-l" }, { stdin = seq:stdout_stream() }); wc:start()
      local tr = native:exec({ "tr", "0-9", "a-j" }, { stdin = wc:stdout_stream() }); tr:start()
      local text = tr:stdout_stream():read("a")
      assert(text:match("^%s*baaaaa%s*$"), text)
      assert(seq:wait() == 0 and wc:wait() == 0 and tr:wait() == 0)
      -- stderr = "stdout" merges them
      local r = ex:run("echo a; echo b >&2", { stderr = "stdout" })
      assert(r.stdout:find("a\n", 1, true) and r.stdout:find("b\n", 1, true) and r.stderr == "", r.stdout)
    ]])
  end)

  it("apply env and work_dir in the container, over default_env and default_work_dir", function()
    run_case([[
      local ex = define({ default_env = { A = "1", B = "2" }, default_work_dir = "/work" })
      local r = ex:run("pwd; echo $A $B; printf '%s\n' \"$C\"", { env = { B = "3", C = "x'y \"z\" $w" } })
      assert(r.stdout == "/work\n1 3\nx'y \"z\" $w\n", r.stdout)
      assert(ex:run("pwd", { work_dir = "/tmp" }).stdout == "/tmp\n")
      -- the host's environment is not the container's
      assert(ex:run("echo \"[$CONTAINERS_CONF]\"").stdout == "[]\n")
      local ok, e = pcall(ex.exec, ex, "pwd", { work_dir = "tmp" })
      assert(not ok and tostring(e):find("must be an absolute path in the container", 1, true), tostring(e))
      -- podman's runtime checks the directory before the program runs
      ok, e = pcall(ex.run, ex, "pwd", { work_dir = "/no/such/dir" })
      assert(not ok and tostring(e):find("podman could not start the container (exit code 126)", 1, true)
        and tostring(e):find("/no/such/dir", 1, true), tostring(e))
    ]])
  end)

  it("hold the policy of restricted resources: whitelist, env names, work_dir_within", function()
    run_case([[
      local ex = define({ command_whitelist = { "echo ok", "pwd" }, work_dir_within = "/work" })
      assert(ex:run("echo ok").stdout == "ok\n")
      local ok, e = pcall(ex.exec, ex, "echo ok; id")
      assert(not ok and tostring(e):find("not in the command_whitelist", 1, true), tostring(e))
      ok, e = pcall(ex.exec, ex, "echo ok", { env = { LD_PRELOAD = "/x.so" } })
      assert(not ok and tostring(e):find("LD_PRELOAD", 1, true), tostring(e))
      ok, e = pcall(ex.exec, ex, "pwd", { work_dir = "/work/../etc" })
      assert(not ok and tostring(e):find("outside the work_dir_within", 1, true), tostring(e))
      assert(ex:run("pwd", { work_dir = "/work/./" }).stdout == "/work\n")
      local only = define({ allowed_env = { "X" } })
      ok, e = pcall(only.exec, only, "true", { env = { Y = "1" } })
      assert(not ok and tostring(e):find("not in the allowed_env", 1, true), tostring(e))
    ]])
  end)

  it("deliver signals by name to the program: TERM gives 143, also at once after start()", function()
    run_case([[
      local ex = define()
      for _, case in ipairs({ { "TERM", 143 }, { "INT", 130 }, { "KILL", 137 }, { "sigusr1", 138 } }) do
        local p = ex:exec({ "sleep", "100" })
        p:start()
        assert(p:signal(case[1]))
        local code = p:wait()
        assert(code == case[2], case[1] .. " gave " .. tostring(code))
      end
      -- a shell that traps the signal keeps running and says so
      local p = ex:exec("trap 'echo got-hup' HUP; echo ready; while :; do sleep 0.05; done")
      p:start()
      local out = p:stdout_stream()
      assert(out:read("l") == "ready")
      assert(p:signal("HUP"))
      assert(out:read("l") == "got-hup")
      p:close()
      assert(select(2, p:signal("TERM")))
    ]], 40)
  end)

  it("end and remove the container on timeout, also when the program ignores SIGTERM", function()
    run_case([[
      local ex = define()
      local t0 = time.now()
      local r = ex:run({ "sleep", "100" }, { timeout = "1s" })
      assert(r.timed_out and r.code == 143, tostring(r.code))
      r = ex:run("trap '' TERM; sleep 100", { timeout = "1s" })
      assert(r.timed_out and r.code == 137, tostring(r.code))
      assert(time.now() - t0 < 8, time.now() - t0)
      local left = settle_empty()
      assert(#left == 0, "left: " .. table.concat(left, " "))
    ]], 40)
  end)

  it("end and remove the container on close(), close(true) and a collected handle", function()
    run_case([[
      local ex = define()
      local function sleeper(cmd)
        local p = ex:exec(cmd or { "sleep", "100" })
        p:start()
        return p
      end
      local a = sleeper()
      local b = sleeper("trap '' TERM; sleep 100")
      local c = sleeper()
      local d = sleeper()
      assert(#H.podman_ps(D) == 4)
      a:close()
      b:close()
      c:close(true)
      d = nil
      collectgarbage(); collectgarbage()
      local left = settle_empty()
      assert(#left == 0, "left: " .. table.concat(left, " "))
      assert(select(1, a:status()) ~= "running")
    ]], 40)
  end)

  it("leave no container and no client when the Lua state ends, or the program exits", function()
    local marker = "lua-exec-spec-state-end-" .. H.own_pid()
    for _, ending in ipairs({ "", "os.exit(0, true)", "os.exit(0)" }) do
      local out, status = H.script(prelude .. [[
        local ex = define()
        KEEP = {} -- (a collected handle would end its container before the state does)
        for i = 1, 3 do
          local p = ex:exec({ "sh", "-c", "sleep 100", "]] .. marker .. [[" })
          p:start()
          KEEP[i] = p
        end
        local q = ex:exec("trap '' TERM; sleep 100")
        q:start()
        print("STARTED=" .. #H.podman_ps(D))
      ]] .. ending, 30)
      assert.equals(0, status, out)
      assert.matches("STARTED=4", out)
      local deadline = exec.time.now() + 6
      while #H.podman_ps(dir) > 0 and exec.time.now() < deadline do exec.time.sleep(0.1) end
      assert.same({}, H.podman_ps(dir))
      local p = io.popen("pgrep -f -- '[" .. marker:sub(1, 1) .. "]" .. marker:sub(2) .. "' | wc -l")
      local n = tonumber(p:read("*a"))
      p:close()
      assert.equals(0, n)
    end
  end)

  it("network_mode = \"none\" leaves only lo; another mode is passed on", function()
    run_case([[
      local function interfaces(ex)
        local r = ex:run("cat /proc/net/dev")
        assert(r.code == 0, r.stderr)
        local names = {}
        for name in r.stdout:gmatch("\n%s*([^%s:|]+):") do names[#names + 1] = name end
        table.sort(names)
        return table.concat(names, ",")
      end
      assert(interfaces(define({ network_mode = "none" })) == "lo")
      local host = interfaces(define({ network_mode = "host" }))
      assert(host ~= "lo" and host:find("lo", 1, true), host)
    ]])
  end)

  it("read_only_rootfs makes writes fail; tmpfs mounts stay writable", function()
    run_case([[
      local ex = define({ read_only_rootfs = true, tmpfs = { ["/work"] = "size=1m" } })
      local r = ex:run("touch /x; echo $?; touch /work/y && echo wrote")
      assert(r.stdout:match("^[1-9]%d*\nwrote\n$"), r.stdout)
      assert(r.stderr:find("Read-only file system", 1, true), r.stderr)
      assert(define():run("touch /x && echo wrote").stdout == "wrote\n")
    ]])
  end)

  it("enforce memory_limit and pids_limit: a growing shell is killed, forks are refused", function()
    run_case([[
      os.remove("oom")
      local r = define({ memory_limit = "32m" }):run("x=a; while :; do x=$x$x; done", { timeout = "20s" })
      assert(r.code == 137 and not r.timed_out, tostring(r.code))
      -- (podman's conmon notes the kill in a file in its working directory,
      -- which is the library's own, not ours)
      assert(io.open("oom") == nil, "an oom file was left in the current directory")
      -- each started sleep prints its number; the shell stops at the limit
      local pids = define({ pids_limit = 16 })
      r = pids:run("i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); echo $i; done", { timeout = "20s" })
      local last = tonumber(r.stdout:match("(%d+)\n$"))
      assert(last and last < 16, r.stdout)
      assert(r.stderr:find("can't fork", 1, true), r.stderr)
      -- a fork bomb is contained, and its timeout still ends it all (the
      -- shell execs its sleep: at the limit it could not fork one)
      local t0 = time.now()
      r = define({ pids_limit = 32, cpu_quota = 20000 }):run("f() { f | f & }; f; exec sleep 100", { timeout = "2s" })
      assert(r.timed_out and r.code == 143, tostring(r.code) .. r.stderr:sub(-300))
      assert(time.now() - t0 < 10, time.now() - t0)
      local left = settle_empty()
      assert(#left == 0, "left: " .. table.concat(left, " "))
    ]], 60)
  end)

  it("take user, cap_drop, no_new_privileges and volumes", function()
    local shared = dir .. "/shared"
    os.execute("mkdir -p " .. shared .. " && echo hostdata >" .. shared .. "/f")
    run_case([[
      local ex = define({ user = "65534:65534", cap_drop = { "ALL" }, no_new_privileges = true,
                          volumes = { "]] .. shared .. [[:/data:ro" } })
      local r = ex:run("id -u; id -g; cat /data/f; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /data/g")
      assert(r.stdout:match("^65534\n65534\nhostdata\nCapEff:%s+0+\nNoNewPrivs:%s+1\n$"), r.stdout)
      assert(r.code ~= 0 and r.stderr:find("Read-only file system", 1, true), r.stderr)
    ]])
  end)

  it("keep the containers with auto_remove = false, stopped by close()", function()
    run_case([[
      local ex = define({ auto_remove = false })
      assert(ex:run("exit 7").code == 7)
      local p = ex:exec("trap '' TERM; sleep 100")
      p:start()
      p:close()
      local deadline = time.now() + 6
      local function states()
        local out = H.podman(D, { "ps", "-a", "--format", "{{.Status}}" })
        local n = 0
        for line in out:gmatch("[^\n]+") do n = n + (line:match("^Exited") and 1 or 100) end
        return n, out
      end
      while states() ~= 2 and time.now() < deadline do time.sleep(0.1) end
      assert(states() == 2, select(2, states()))
      H.podman(D, { "rm", "-a", "-f" })
    ]], 30)
  end)

  it("run with pty = true on a terminal of the container's own", function()
    run_case([[
      local p = define():exec("tty; stty size; read x; echo got $x", { pty = { rows = 30, cols = 100 } })
      p:start()
      p:write_stdin("hello\n")
      local s, all = p:stdout_stream(), ""
      while true do local c = s:read(); if not c then break end; all = all .. c end
      assert(all:find("/dev/pts/", 1, true) and all:find("30 100\r\n", 1, true) and all:find("got hello\r\n", 1, true), all)
      assert(p:wait() == 0)
    ]])
  end)

  it("share max_processes and queue across tasks", function()
    run_case([[
      local ex = define({ max_processes = 2, queue = true })
      local done = {}
      for i = 1, 4 do
        exec.spawn(function()
          local out = ex:run("sleep 0.3; echo " .. i).stdout
          done[#done + 1] = out
        end)
      end
      assert(exec.wait_tasks())
      assert(#done == 4, #done)
      local strict = define({ max_processes = 1 })
      local p = strict:exec({ "sleep", "5" }); p:start()
      local ok, e = pcall(strict.run, strict, "true")
      assert(not ok and tostring(e):find("max_processes", 1, true), tostring(e))
      p:close()
    ]], 40)
  end)

  it("run in an existing container with container = ..., signals and stops included", function()
    local name = "lua-exec-spec-long-" .. H.own_pid()
    local out, ok = H.podman(dir, { "run", "-d", "--init", "--name", name, image, "sleep", "1000" })
    assert.is_true(ok, out)
    local fine, err = pcall(run_case, [[
      local ex = define({ image = false, container = "]] .. name .. [[" })
      local r = ex:run("echo out; echo err >&2; pwd; echo $A; exit 4", { env = { A = "a b" }, work_dir = "/tmp" })
      assert(r.code == 4 and r.stdout == "out\n/tmp\na b\n" and r.stderr == "err\n", r.stdout .. r.stderr)
      assert(ex:run({ "echo", "a\\nb" }).stdout == "a\\nb\n")
      assert(ex:run("cat", { input = "in\n" }).stdout == "in\n")
      local function running()
        return ex:run("ps -o args | grep -c '^sleep 200'").stdout:match("%d+")
      end
      local p = ex:exec({ "sleep", "200" })
      p:start()
      time.sleep(0.3)
      assert(running() == "1", running())
      assert(p:signal("TERM"))
      assert(p:wait() == 143)
      -- close ends the exec'd program (no engine forwards signals to it)
      p = ex:exec("sleep 200"); p:start(); time.sleep(0.3)
      p:close()
      local deadline = time.now() + 5
      while running() ~= "0" and time.now() < deadline do time.sleep(0.1) end
      assert(running() == "0", running())
      r = ex:run("sleep 200", { timeout = "0.5s" })
      assert(r.timed_out and r.code == 143, tostring(r.code))
      -- a container that is not there
      local gone = define({ image = false, container = "no-such-container-here" })
      local ok, e = pcall(gone.run, gone, "true")
      assert(not ok and tostring(e):find("no-such-container-here", 1, true), tostring(e))
    ]], 40)
    H.podman(dir, { "rm", "-f", "-t", "0", name })
    assert(fine, err)
  end)

  it("raise clear errors for a missing engine, an absent image, a docker daemon that is down", function()
    local docker = io.popen("command -v docker"):read("*l")
    run_case([[
      local function start_error(ex, cmd)
        local p = ex:exec(cmd or "true")
        local ok, e = pcall(p.start, p)
        assert(not ok, "started")
        assert(select(1, p:status()) ~= "running")
        return tostring(e)
      end
      local e = start_error(define({ engine = "/no/such/docker" }))
      assert(e:find("process:start: container engine '/no/such/docker' not found", 1, true), e)
      -- (podman tries to pull it first: three attempts a second apart)
      local p = define({ image = "localhost/lua-exec-no-such-image:1" }):exec("true")
      local s = p:stdout_stream()
      local ok, err = pcall(p.start, p)
      e = tostring(err)
      assert(not ok and e:find("process:start: podman could not start the container (exit code 125): Error: ", 1, true)
        and e:find("lua-exec-no-such-image", 1, true), e)
      -- a stream taken before the failed start learns why
      local v, why = s:read()
      assert(v == nil and why:find("process did not start: podman could not start", 1, true), tostring(why))
      assert(select(2, p:wait()) ~= nil)
      if ]] .. string.format("%q", docker or "") .. [[ ~= "" then
        e = start_error(define({ engine = "docker", engine_args = {}, engine_env = {}, host = "unix://" .. D .. "/no-docker.sock" }))
        assert(e:find("docker could not start the container (exit code 125): docker: Cannot connect to the Docker daemon", 1, true), e)
      end
    ]], 40)
  end)

  it("build docker's command lines as podman's, checked with a stand-in docker client", function()
    local fake = dir .. "/fakebin"
    os.execute("mkdir -p " .. fake)
    H.write_file(fake .. "/docker", [[#!/bin/sh
{ echo "@@@ $$"; for a; do printf '%s\n' "$a"; done; } >>"$FAKE_LOG"
case " $* " in
  *" version "*) echo "Cannot connect to the Docker daemon at unix:///fake.sock. Is the docker daemon running?" >&2; exit 1 ;;
esac
echo "docker: Cannot connect to the Docker daemon at unix:///fake.sock. Is the docker daemon running?" >&2
echo >&2
echo "Run 'docker run --help' for more information" >&2
exit 125
]])
    os.execute("chmod +x " .. fake .. "/docker")
    run_case([[
      local log = D .. "/fake.log"
      local fake = D .. "/fakebin/docker"
      local function calls()
        local out = {}
        for line in ((H.read_file(log) or "") .. ""):gmatch("([^\n]*)\n") do
          if line:match("^@@@ %d+$") then out[#out + 1] = {} else table.insert(out[#out], line) end
        end
        return out
      end
      local ex = define({ engine = fake, engine_args = { "--config", "/etc/d" }, engine_env = { FAKE_LOG = log },
        host = "tcp://10.0.0.5:2375", network_mode = "none", memory_limit = 268435456, cpu_quota = 50000,
        pids_limit = 64, read_only_rootfs = true, no_new_privileges = true, cap_drop = { "ALL" },
        tmpfs = { "/tmp:size=1m" }, user = "1000:1000", default_work_dir = "/w", default_env = { A = "1" } })
      local p = ex:exec({ "echo", "x y" })
      local ok, e = pcall(p.start, p)
      assert(not ok and tostring(e):find("docker could not start the container (exit code 125): docker: Cannot connect", 1, true), tostring(e))
      local argv = calls()[1]
      local name = argv[9]:match("^%-%-name=(lua%-exec%-%x+)$")
      assert(name, table.concat(argv, " "))
      local want = { fake, "--host=tcp://10.0.0.5:2375", "--config", "/etc/d", "run", "--rm", "--interactive", "--init",
        "--read-only", "--name=" .. name, "CIDFILE", "--security-opt=no-new-privileges", "--network=none",
        "--user=1000:1000", "--memory=268435456", "--cpu-quota=50000", "--pids-limit=64", "--cap-drop=ALL",
        "--tmpfs=/tmp:size=1m", "--workdir=/w", "--env=A=1", "--", IMAGE, "echo", "x y" }
      table.insert(argv, 1, fake)
      assert(argv[11]:match("^%-%-cidfile=/"), argv[11])
      argv[11] = "CIDFILE"
      assert(table.concat(argv, "|") == table.concat(want, "|"), table.concat(argv, "|"))
      -- exec mode: docker exec with the wrapper
      os.remove(log)
      local in_box = define({ image = false, container = "box", engine = fake, engine_args = {}, engine_env = { FAKE_LOG = log } })
      assert(not pcall(in_box.run, in_box, "true"))
      argv = calls()[1]
      assert(table.concat(argv, " ", 1, 6) == "container inspect --format {{.State.Running}} -- box", table.concat(argv, " "))
      -- no engine given: the first that answers; here neither does
      os.remove(log)
      local none = define({ engine = false, engine_args = {}, engine_env = { FAKE_LOG = log, PATH = D .. "/fakebin" } })
      ok, e = pcall(none.run, none, "true")
      assert(not ok and tostring(e):find("no container engine answers (docker: Cannot connect to the Docker daemon", 1, true)
        and tostring(e):find("podman: ", 1, true), tostring(e))
      -- and with podman there, podman
      local path = D .. "/fakebin:" .. os.getenv("PATH")
      local chosen = define({ engine = false, engine_env = { FAKE_LOG = log, PATH = path, CONTAINERS_CONF = CONF } })
      assert(chosen:run("echo chosen").stdout == "chosen\n")
    ]])
  end)

  it("check every option at define time, and keep host-reaching options out of untrusted files", function()
    run_case([[
      local n_bad = 0
      local function refused(over, want)
        n_bad = n_bad + 1
        local ok, e = pcall(exec.registry.define, "spec:bad" .. n_bad, config(over))
        assert(not ok and tostring(e):find(want, 1, true), tostring(e) .. " (wanted " .. want .. ")")
      end
      refused({ image = false }, "image is required for kind exec.docker")
      refused({ container = "x" }, "image and container cannot both be set")
      refused({ image = "-x" }, "image '-x' is not valid")
      refused({ engine = "nerdctl" }, "engine must be \"docker\", \"podman\" or an absolute path")
      refused({ engine_args = { "--url=tcp://x" } }, "use the option host")
      refused({ volumes = { "data:/data" } }, "volumes: 'data:/data'")
      refused({ memory_limit = "lots" }, "memory_limit must be a number of bytes")
      refused({ memory_limit = 1.5 }, "memory_limit must be a whole number of bytes")
      refused({ cpu_quota = 10 }, "cpu_quota must be a whole number of microseconds")
      refused({ pids_limit = 0 }, "pids_limit must be a whole number of at least 1")
      refused({ user = "a b" }, "user 'a b'")
      refused({ cap_add = { "NET RAW" } }, "cap_add: 'NET RAW'")
      refused({ tmpfs = { ["tmp"] = "" } }, "tmpfs: 'tmp'")
      refused({ network = "none" }, "unknown option 'network' for kind exec.docker")
      refused({ inherit_env = true }, "inherit_env has no meaning for kind exec.docker")
      refused({ default_work_dir = "work" }, "default_work_dir 'work' must be an absolute path")
      refused({ image = false, container = "c", pids_limit = 5 }, "pids_limit applies to a fresh container")
      local ex = define()
      local ok, e = pcall(ex.exec, ex, "true", { detach = true })
      assert(not ok and tostring(e):find("detach is not available", 1, true), tostring(e))
      local f = D .. "/res.lua"
      for _, opt in ipairs({ "engine = '/bin/x'", "engine_args = { '--root', '/' }", "engine_env = { X = '1' }",
                             "volumes = { '/:/host' }", "cap_add = { 'SYS_ADMIN' }" }) do
        H.write_file(f, "{ ['files:c'] = { kind = 'exec.docker', image = 'x', " .. opt .. " } }")
        local ok, e = pcall(exec.registry.load, f)
        assert(not ok and tostring(e):find("refused from a file unless it is loaded with { trust = true }", 1, true), tostring(e))
      end
      H.write_file(f, "{ ['files:c'] = { kind = 'exec.docker', image = 'x', network_mode = 'none', memory_limit = '64m' } }")
      assert(exec.registry.load(f)[1] == "files:c")
    ]])
  end)
end)
