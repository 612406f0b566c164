-- Process attributes (README, "Process attributes"): resource limits,
-- identity, umask, niceness, death with the parent, descriptors beyond 0-2,
-- argv[0]; exec.which; run's max_output. Each is checked from the child's
-- side (/proc/self/limits, /proc/self/status, id, /proc/self/cmdline), and
-- each case that can hang, exhaust something or kill runs in a fresh
-- interpreter under a time limit (H.script).
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

local root = H.is_root()
local function need_root()
  if not root then
    pending("needs root (switching to nobody); run as " .. tostring(os.getenv("USER")))
    return true
  end
end

-- A line of /proc/self/limits: soft and hard, as the file shows them.
local function limit_of(text, name)
  local soft, hard = text:match(name .. "%s+(%S+)%s+(%S+)")
  return soft, hard
end

-- A field of /proc/self/status ("Umask", "Uid", ...), as the file shows it.
local function status_field(text, name)
  return text:match(name .. ":\t([^\n]*)")
end

local n_ids = 0
local function define(cfg)
  n_ids = n_ids + 1
  local id = "attrs:r" .. n_ids
  cfg.kind = cfg.kind or "exec.native"
  exec.registry.define(id, cfg)
  return exec.get(id), id
end

local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "did not raise")
  assert.is_truthy(tostring(err):find(pattern, 1, true), tostring(err))
end

describe("rlimits", function()
  it("are set in the child, soft and hard alike (cpu: hard one second more), sizes with units", function()
    local r = exec.run({ "cat", "/proc/self/limits" }, {
      rlimits = { cpu = 7, as = "512m", fsize = "1m", nofile = 77, nproc = 999, core = 0, stack = 4194304 },
    })
    assert.equals(0, r.code, r.stderr)
    assert.same({ "7", "8" }, { limit_of(r.stdout, "Max cpu time") })
    assert.same({ tostring(512 * 1024 * 1024), tostring(512 * 1024 * 1024) }, { limit_of(r.stdout, "Max address space") })
    assert.same({ "1048576", "1048576" }, { limit_of(r.stdout, "Max file size") })
    assert.same({ "77", "77" }, { limit_of(r.stdout, "Max open files") })
    assert.same({ "999", "999" }, { limit_of(r.stdout, "Max processes") })
    assert.same({ "0", "0" }, { limit_of(r.stdout, "Max core file size") })
    assert.same({ "4194304", "4194304" }, { limit_of(r.stdout, "Max stack size") })
    -- The same seen by the shell's ulimit.
    r = exec.run({ "sh", "-c", "ulimit -n; ulimit -t" }, { rlimits = { nofile = 77, cpu = 7 } })
    assert.equals("77\n7\n", r.stdout)
    -- Ours are unchanged.
    local f = assert(io.open("/proc/self/limits"))
    local ours = f:read("*a")
    f:close()
    assert.are_not.equal("77", (limit_of(ours, "Max open files")))
  end)

  it("cpu = 1 ends a busy loop with SIGXCPU", function()
    local out, status = H.script([[
      local p = exec.get("process:native"):exec({ "sh", "-c", "while :; do :; done" }, { rlimits = { cpu = 1 } })
      p:start()
      local t0 = time.now()
      print("code", p:wait())
      print("status", p:status())
      print("took", time.now() - t0)
    ]], 20)
    assert.equals(0, status, out)
    assert.is_truthy(out:find("code\t152", 1, true), out)
    assert.is_truthy(out:find("status\tsignaled\t24", 1, true), out)
    assert.is_true(tonumber(out:match("took\t([%d.]+)")) < 5, out)
  end)

  it("as makes a big allocation fail", function()
    local out, status = H.script([[
      local big = "local s = string.rep('x', 300 * 1024 * 1024); print(#s)"
      local r = exec.run({ H.lua, "-e", big }, { rlimits = { as = "100m" } })
      print("limited", r.code, (r.stderr:gsub("\n", " ")))
      r = exec.run({ H.lua, "-e", big })
      print("free", r.code, r.stdout)
    ]], 30)
    assert.equals(0, status, out)
    assert.is_truthy(out:find("limited\t1\t.*not enough memory"), out)
    assert.is_truthy(out:find("free\t0\t314572800", 1, true), out)
  end)

  it("fsize stops a writer with SIGXFSZ at the limit", function()
    local path = H.tmpname(".fsize")
    local out, status = H.script(string.format([[
      local p = exec.get("process:native"):exec({ "sh", "-c", "head -c 3000000 /dev/zero > %s" },
        { rlimits = { fsize = "1m" } })
      p:start()
      print("code", p:wait())
    ]], path), 20)
    local f = io.open(path)
    local size = f and f:seek("end")
    if f then f:close() end
    os.remove(path)
    assert.equals(0, status, out)
    -- The shell reports its child's SIGXFSZ (25) as 128 + 25.
    assert.is_truthy(out:find("code\t153", 1, true), out)
    assert.equals(1048576, size)
  end)

  it("nproc stops a fork bomb of a user who is not root (nproc does not bind root)", function()
    if need_root() then return end
    -- Each process prints a line, forks two more down to depth 6 (127 in
    -- all, and a sleep each), and sleeps: all at once without the limit.
    -- With it, a fork fails once the user has 10 processes (dash then
    -- exits, which frees a slot: a few more start over the 2 s).
    local out, status = H.script([[
      local bomb = "b() { echo started; if [ $1 -lt 6 ]; then b $(($1+1)) & b $(($1+1)) & fi; sleep 2; wait; }; b 0"
      local function started(opts)
        opts.uid, opts.timeout = "nobody", "10s"
        local r = exec.run({ "sh", "-c", bomb }, opts)
        return select(2, r.stdout:gsub("started", "")), r.stderr
      end
      local n, err = started({ rlimits = { nproc = 10 } })
      print("limited", n, err:find("Cannot fork") ~= nil)
      print("free", (started({})))
    ]], 40)
    assert.equals(0, status, out)
    local limited, said = out:match("limited\t(%d+)\t(%a+)")
    assert.is_true(tonumber(limited) >= 1 and tonumber(limited) < 40, out)
    assert.equals("true", said)
    assert.is_truthy(out:find("free\t127", 1, true), out)
  end)

  it("refuse bad values, naming the option", function()
    raises("option rlimits: unknown limit 'bogus'", exec.run, { "true" }, { rlimits = { bogus = 1 } })
    raises("option rlimits.nofile must be a whole number of descriptors >= 0 (got \"10k\")", exec.run, { "true" },
      { rlimits = { nofile = "10k" } })
    raises("option rlimits.as must be a whole number of bytes >= 0 or a size such as \"256m\" (got \"12x\")",
      exec.run, { "true" }, { rlimits = { as = "12x" } })
    raises("option rlimits.cpu must be a whole number of seconds >= 0 (got -1)", exec.run, { "true" }, { rlimits = { cpu = -1 } })
    raises("option rlimits must be a table (got number)", exec.run, { "true" }, { rlimits = 5 })
  end)
end)

describe("uid, gid, groups, umask, nice", function()
  it("switch a child of root to nobody, with its own group and no group of ours", function()
    if need_root() then return end
    local r = exec.run({ "id" }, { uid = "nobody" })
    assert.equals("uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n", r.stdout)
    r = exec.run({ "sh", "-c", "id -u; id -g; id -G" }, { uid = 65534, gid = "nogroup", groups = { "nogroup", 4 } })
    assert.equals("65534\n65534\n65534 4\n", r.stdout)
    r = exec.run({ "cat", "/proc/self/status" }, { uid = "nobody", gid = 65534, groups = {} })
    assert.equals("65534\t65534\t65534\t65534", status_field(r.stdout, "Uid"))
    assert.equals("65534\t65534\t65534\t65534", status_field(r.stdout, "Gid"))
    assert.equals("", status_field(r.stdout, "Groups"):match("^%s*(.-)%s*$"))
  end)

  it("set the umask and the niceness", function()
    local r = exec.run({ "cat", "/proc/self/status" }, { umask = "027" })
    assert.equals("0027", status_field(r.stdout, "Umask"))
    r = exec.run({ "sh", "-c", "umask" }, { umask = 63 })
    assert.equals("0077\n", r.stdout)
    r = exec.run({ "cat", "/proc/self/stat" }, { nice = 7 })
    -- Field 19 of stat, after the command's name in parentheses.
    local after = r.stdout:match("%) (.*)$")
    local fields = {}
    for w in after:gmatch("%S+") do fields[#fields + 1] = w end
    assert.equals("7", fields[17])
  end)

  it("the umask applies to the files the library creates for the child too", function()
    local dir = H.tmpname("-umask")
    os.execute("mkdir -p " .. dir)
    local r_ex = define({ work_dir_within = dir, default_work_dir = dir, umask = "077" })
    r_ex:run({ "sh", "-c", "echo out; echo three >&3" },
      { stdout = { path = "out.txt" }, fds = { [3] = { path = "three.txt", write = true } } })
    exec.run({ "true" }, { umask = "027", stdout = { path = dir .. "/own.txt" } })
    local r = exec.run({ "stat", "-c", "%n %a", "out.txt", "three.txt", "own.txt" }, { work_dir = dir })
    assert.equals("out.txt 600\nthree.txt 600\nown.txt 640\n", r.stdout)
    os.execute("rm -rf " .. dir)
  end)

  it("raise with the system's reason and the step when we may not (EPERM)", function()
    if need_root() then return end
    -- A fresh interpreter running as nobody asks for root.
    local path = H.tmpname(".lua")
    H.write_file(path, [[
      package.path = './?.lua;' .. package.path
      local exec = require("exec")
      local ok, err = pcall(exec.run, { "id" }, { uid = 0, gid = 65534 })
      print("uid", err)
      ok, err = pcall(exec.run, { "true" }, { rlimits = { nofile = 1073741816 } })
      print("nofile", err)
      ok, err = pcall(exec.run, { "true" }, { nice = -5 })
      print("nice", err)
      local raw = exec._internal.core.get("process:native")
      local p = raw:exec({ "id" }, { uid = 0, gid = 65534 }, false)
      print("raw", p:start())
    ]])
    os.execute("chmod 644 " .. path)
    local r = exec.run({ "timeout", "-s", "KILL", "20", H.lua, path }, { uid = "nobody" })
    os.remove(path)
    assert.equals(0, r.code, r.stdout .. r.stderr)
    local out = r.stdout
    assert.is_truthy(out:find("uid\t[^\n]*exec.run: cannot start 'id': uid = 0: setuid: Operation not permitted"), out)
    assert.is_truthy(out:find("nofile\t[^\n]*rlimits.nofile = 1073741816: setrlimit: Operation not permitted"), out)
    assert.is_truthy(out:find("nice\t[^\n]*nice = %-5: setpriority: Permission denied"), out)
    assert.is_truthy(out:find("raw\tnil\tcannot start 'id': uid = 0: setuid: Operation not permitted\tEPERM", 1, true), out)
  end)

  it("refuse bad values, naming the option", function()
    raises("option uid: no user named 'no-such-user-x'", exec.run, { "true" }, { uid = "no-such-user-x" })
    raises("option gid: no group named 'no-such-group-x'", exec.run, { "true" }, { gid = "no-such-group-x" })
    raises("option groups[2]: no group named 'nope-x'", exec.run, { "true" }, { groups = { "root", "nope-x" } })
    raises("option uid must be a user name or a whole number from 0 to 4294967294 (got -1)", exec.run, { "true" }, { uid = -1 })
    raises("option umask must be a whole number from 0 to 511 (0777) or a string of octal digits such as \"077\" (got \"089\")",
      exec.run, { "true" }, { umask = "089" })
    raises("option nice must be a whole number from -20 to 19 (got 20)", exec.run, { "true" }, { nice = 20 })
    raises("uid = 4000000000 has no entry in the password database to take its group from: give gid too",
      exec.run, { "true" }, { uid = 4000000000 })
  end)
end)

describe("kill_on_parent_death", function()
  -- Start an interpreter that starts `sleep 30` (with or without the
  -- option) and says both pids; kill the interpreter with SIGKILL; how the
  -- sleep is one second later (nil: gone; "Z": dead, not yet reaped by
  -- whoever adopted it).
  local function after_parent_killed(kill)
    local path = H.tmpname(".lua")
    H.write_file(path, string.format([[
      local exec = require("exec")
      local p = exec.get("process:native"):exec({ "sleep", "30" },
        { kill_on_parent_death = %s, stdin = "null", stdout = "null", stderr = "null" })
      p:start()
      local f = assert(io.open("/proc/self/stat"))
      print(f:read("*l"):match("^%%d+"), p:pid())
      io.stdout:flush()
      exec.time.sleep(30)
    ]], tostring(kill)))
    -- (Not a group of its own: the group's SIGKILL would reach the sleep.)
    local host = ex:exec({ H.lua, path }, { timeout = "20s", process_group = false })
    host:start()
    local line = host:stdout_stream():read("l")
    local _, child = line:match("^(%d+)%s+(%d+)$")
    assert.is_truthy(child, line)
    host:signal("KILL")
    host:wait()
    exec.time.sleep(1)
    local state = H.proc_state(child)
    if state and state ~= "Z" then os.execute("kill -9 " .. child) end
    os.remove(path)
    return state
  end

  it("kills the child within a second of our death by SIGKILL", function()
    local state = after_parent_killed(true)
    assert.is_true(state == nil or state == "Z", tostring(state))
  end)

  it("is what makes the difference: without it the child outlives us", function()
    local state = after_parent_killed(false)
    assert.is_true(state ~= nil and state ~= "Z", tostring(state))
  end)

  it("cannot be combined with detach", function()
    raises("detach and kill_on_parent_death cannot be combined", exec.run, { "true" },
      { kill_on_parent_death = true, detach = true })
  end)
end)

describe("a resource's attributes are ceilings", function()
  local r_ex, r_id
  setup(function()
    r_ex, r_id = define({ rlimits = { nproc = 500, nofile = 200 }, nice = 5, umask = "027",
                          uid = root and "nobody" or nil, kill_on_parent_death = true })
  end)

  it("apply when the caller sets none", function()
    local r = r_ex:run({ "sh", "-c", "cat /proc/self/limits /proc/self/status" })
    assert.equals(0, r.code, r.stderr)
    assert.same({ "500", "500" }, { limit_of(r.stdout, "Max processes") })
    assert.same({ "200", "200" }, { limit_of(r.stdout, "Max open files") })
    assert.equals("0027", status_field(r.stdout, "Umask"))
    if root then assert.equals("65534\t65534\t65534\t65534", status_field(r.stdout, "Uid")) end
  end)

  it("may be tightened", function()
    local r = r_ex:run({ "cat", "/proc/self/limits", "/proc/self/status" },
      { rlimits = { nofile = 100, cpu = 30 }, nice = 9, umask = "077", uid = root and 65534 or nil })
    assert.equals(0, r.code, r.stderr)
    assert.same({ "100", "100" }, { limit_of(r.stdout, "Max open files") })
    assert.same({ "500", "500" }, { limit_of(r.stdout, "Max processes") })
    assert.same({ "30", "31" }, { limit_of(r.stdout, "Max cpu time") })
    assert.equals("0077", status_field(r.stdout, "Umask"))
    -- The identity its uid alone gives (that user's group, no others) may
    -- be repeated in full.
    if root then
      local p = io.popen("id -g nobody")
      local gid = tonumber(p:read("*l"))
      p:close()
      r = r_ex:run({ "id", "-G" }, { uid = "nobody", gid = gid, groups = {} })
      assert.equals(0, r.code, r.stderr)
      assert.equals(gid .. "\n", r.stdout)
    end
  end)

  it("refuse a looser value, naming the option and the resource's value", function()
    raises("rlimits.nofile = 1000 is above the limit of '" .. r_id .. "' (200): a caller may only lower it",
      r_ex.run, r_ex, { "true" }, { rlimits = { nofile = 1000 } })
    raises("nice = 0 is below the nice of '" .. r_id .. "' (5): a caller may only raise it",
      r_ex.run, r_ex, { "true" }, { nice = 0 })
    raises("umask = 022 lacks bits of the umask of '" .. r_id .. "' (027): a caller may only add bits",
      r_ex.run, r_ex, { "true" }, { umask = "022" })
    raises("kill_on_parent_death = false is not allowed on '" .. r_id .. "'",
      r_ex.run, r_ex, { "true" }, { kill_on_parent_death = false })
    if root then
      raises("uid = 0 is not the identity of '" .. r_id .. "' (uid = 65534): a caller may give the same or none",
        r_ex.run, r_ex, { "true" }, { uid = 0 })
      raises("groups = { 0 } is not the identity of '" .. r_id .. "'", r_ex.run, r_ex, { "true" }, { groups = { 0 } })
      raises("gid = 0 is not the identity of '" .. r_id .. "'", r_ex.exec, r_ex, { "true" }, { gid = "root" })
    end
  end)

  it("are checked when the resource is defined, and refused for remote kinds", function()
    raises("bad argument #2 (config) to 'exec.registry.define': nice must be a whole number from -20 to 19 (got 30)",
      exec.registry.define, "attrs:bad1", { kind = "exec.native", nice = 30 })
    raises("bad argument #2 (config) to 'exec.registry.define': uid = 4000000000 has no entry in the password " ..
      "database to take its group from: give gid too", exec.registry.define, "attrs:bad4",
      { kind = "exec.native", uid = 4000000000 })
    raises("rlimits is not an option of kind exec.docker: its processes are not started here " ..
      "(a container's own are memory_limit, pids_limit, cpu_quota and user)",
      exec.registry.define, "attrs:bad2", { kind = "exec.docker", image = "x", rlimits = { nproc = 5 } })
    raises("uid is not an option of kind exec.ssh", exec.registry.define, "attrs:bad3",
      { kind = "exec.ssh", host = "127.0.0.1", uid = 0 })
  end)

  it("and a caller's are refused on a remote resource", function()
    exec.registry.define("attrs:ssh", { kind = "exec.ssh", host = "127.0.0.1", multiplex = false })
    local remote = exec.get("attrs:ssh")
    raises("rlimits is not available for remote resource 'attrs:ssh': the remote command is started by the remote host",
      remote.exec, remote, { "true" }, { rlimits = { nproc = 5 } })
    raises("kill_on_parent_death is not available for remote resource 'attrs:ssh'", remote.exec, remote, { "true" },
      { kill_on_parent_death = true })
    raises("argv0 is not available for remote resource 'attrs:ssh'", remote.exec, remote, { "true" }, { argv0 = "x" })
    raises("fds is not available for remote resource 'attrs:ssh'", remote.exec, remote, { "true" },
      { fds = { [3] = io.stdout } })
  end)
end)

describe("fds", function()
  it("hands the child descriptors at their numbers, and closes ours after the start", function()
    local out_path, in_path, five = H.tmpname(".fd3"), H.tmpname(".fd4"), H.tmpname(".fd5")
    H.write_file(in_path, "from four\n")
    local before = H.fd_count()
    local lua_file = assert(io.open(five, "w"))
    local src = ex:exec({ "echo", "from six" })
    src:start()
    local six = src:stdout_stream()
    local p = ex:exec({ "sh", "-c", "echo to three >&3; cat <&4; echo to five >&5; cat <&6; ls /proc/self/fd" }, {
      fds = { [3] = { path = out_path, write = true }, [4] = { path = in_path }, [5] = lua_file,
              [6] = six },
    })
    p:start()
    -- Ours are closed once it started: no descriptor of ours leads to the
    -- paths, and the Lua file's only descriptor is its own.
    local _, ours = H.fd_count()
    assert.is_falsy(ours:find(out_path, 1, true), ours)
    assert.is_falsy(ours:find(in_path, 1, true), ours)
    assert.equals(1, select(2, ours:gsub(five:gsub("%p", "%%%0"), "")), ours)
    local listing = H.read_all(p:stdout_stream())
    assert.equals(0, p:wait())
    src:wait()
    lua_file:close()
    -- The child saw each at its number, and nothing else above 2 (4 is
    -- the ls's own directory).
    assert.is_truthy(listing:find("from four\n", 1, true), listing)
    assert.is_truthy(listing:find("from six\n", 1, true), listing)
    local fds = {}
    for n in listing:gmatch("(%d+)\n") do fds[#fds + 1] = tonumber(n) end
    table.sort(fds)
    assert.same({ 0, 1, 2, 3, 4, 5, 6, 7 }, fds)
    assert.equals("to three\n", H.read_file(out_path))
    -- The stream was handed over; our copies closed at the start.
    local got, err, code = six:read()
    assert.is_nil(got)
    assert.equals("handed_over", code, err)
    assert.equals(before, (H.fd_count()))
    os.remove(out_path); os.remove(in_path); os.remove(five)
  end)

  it("follows the path rules of a restricted executor", function()
    local dir = H.tmpname("-within")
    os.execute("mkdir -p " .. dir)
    H.write_file(dir .. "/in.txt", "inside\n")
    local r_ex, r_id = define({ work_dir_within = dir, default_work_dir = dir })
    local r = r_ex:run({ "cat", "/dev/fd/3" }, { fds = { [3] = { path = "in.txt" } } })
    assert.equals("inside\n", r.stdout)
    raises("fds[3]: path '/etc/passwd' is outside the work_dir_within of '" .. r_id .. "'",
      r_ex.run, r_ex, { "cat", "/dev/fd/3" }, { fds = { [3] = { path = "/etc/passwd" } } })
    os.execute("rm -rf " .. dir)
  end)

  it("refuses a stream given twice, or one that cannot go, before it takes any", function()
    local src = ex:exec({ "echo", "kept" })
    src:start()
    local s = src:stdout_stream()
    raises("option fds[4]: the stream cannot be handed over: it is given as fds[3] too", ex.exec, ex, { "true" },
      { fds = { [3] = s, [4] = s } })
    raises("option fds[3]: the stream cannot be handed over: it is given as stdin too", ex.exec, ex, { "true" },
      { stdin = s, fds = { [3] = s } })
    -- A terminal's stream cannot go: the pipe given beside it stays ours.
    local t = ex:exec({ "true" }, { pty = true })
    t:start()
    raises("option fds[3]: the stream cannot be handed over: it reads a terminal", ex.exec, ex, { "true" },
      { stdin = s, fds = { [3] = t:stdout_stream() } })
    t:wait()
    t:close()
    assert.equals("kept\n", H.read_all(s))
    assert.equals(0, src:wait())
  end)

  it("refuses bad numbers and values, naming the option", function()
    raises("option fds: keys must be descriptor numbers from 3 to 65535 (found key 2)", ex.exec, ex, { "true" },
      { fds = { [2] = io.stdout } })
    raises("option fds[3] must be a file, another process's output stream or { path = ... } (got string)", ex.exec, ex,
      { "true" }, { fds = { [3] = "x" } })
    raises("option fds[3] must be a file, another process's output stream or { path = ... } (got thread)", ex.exec, ex,
      { "true" }, { fds = { [3] = coroutine.create(function() end) } })
    -- A userdata that is not a file (newproxy: Lua 5.1 and LuaJIT only).
    local other = rawget(_G, "newproxy") and newproxy(true)
    if other then
      raises("option fds[3] must be a file, another process's output stream or { path = ... } (got a userdata that " ..
        "is not a file)", ex.exec, ex, { "true" }, { fds = { [3] = other } })
    end
    raises("option fds[3]: unknown field 'mode' (use path, write and append)", ex.exec, ex, { "true" },
      { fds = { [3] = { path = "x", mode = "r" } } })
    -- A number at (or just below) our limit of open files leaves no room
    -- for the library's own copies above it: said so, at the start.
    local p = io.popen("ulimit -n")
    local limit = tonumber(p:read("*l"))
    p:close()
    if limit and limit <= 65537 then
      for _, n in ipairs({ limit - 2, limit - 1 }) do
        raises("fds[" .. n .. "]: no descriptor above " .. n .. " is free below our limit of open files (" .. limit ..
          ", RLIMIT_NOFILE)", exec.run, { "true" }, { fds = { [n] = io.stdout } })
      end
    end
    local q = ex:exec({ "echo" })
    raises("option fds[4]: the stream cannot be handed over: its process is not started", ex.exec, ex, { "true" },
      { fds = { [4] = q:stdout_stream() } })
    q:close()
  end)
end)

describe("argv0", function()
  it("is the name the program sees", function()
    local r = exec.run({ "sh", "-c", "tr '\\0' '\\n' < /proc/$$/cmdline | head -n 1; echo $0" }, { argv0 = "renamed" })
    assert.equals("renamed\nrenamed\n", r.stdout)
  end)

  it("is refused on a resource with a whitelist (a multi-call program runs by its name)", function()
    local w = define({ command_whitelist = { "true" } })
    raises("argv0 cannot be set on", w.exec, w, { "true" }, { argv0 = "sh" })
  end)
end)

describe("exec.which", function()
  it("finds what a start would run", function()
    local sh = exec.which("sh")
    assert.is_truthy(sh:find("^/"), sh)
    assert.equals(sh .. "\n", exec.run("command -v sh").stdout)
    assert.equals("/bin/sh", exec.which("sh", "/nonexistent:/bin"))
    assert.equals("/bin/sh", exec.which("/bin/sh"))
  end)

  it("says why nothing would run", function()
    local found, err, code = exec.which("no-such-program-x", "/bin:/usr/bin")
    assert.is_nil(found)
    assert.equals("exec.which: program 'no-such-program-x' not found in PATH (/bin:/usr/bin): No such file or directory", err)
    assert.equals("ENOENT", code)
    found, err, code = exec.which("passwd", "/etc")
    assert.is_nil(found)
    assert.equals("EACCES", code, err)
    raises("bad argument #1 (name) to 'exec.which': string expected, got nil", exec.which)
    raises("bad argument #2 (path) to 'exec.which': string or nil expected, got number", exec.which, "sh", 5)
  end)
end)

describe("run's max_output", function()
  it("keeps each output up to the cap and says so, without killing the child", function()
    local out, status = H.script([[
      local r = exec.run("head -c 3000000 /dev/zero; echo tail >&2; exit 3", { max_output = 1000 })
      print(#r.stdout, r.stderr == "tail\n", r.truncated, r.code)
      r = exec.run("echo short", { max_output = 1000 })
      print(r.stdout == "short\n", r.truncated)
      print(exec.run("echo x").truncated)
    ]], 20)
    assert.equals(0, status, out)
    assert.equals("1000\ttrue\ttrue\t3\ntrue\tfalse\nnil\n", out)
    -- check quotes the end of stderr: when max_output dropped it, it says so.
    local ok, e = pcall(exec.run, "printf 'aaaaaaaaaaaaaaaa' >&2; echo the-real-reason >&2; exit 2",
      { check = true, max_output = 10 })
    assert.is_false(ok)
    assert.equals("exec.run: 'printf 'aaaaaaaaaaaaaaaa' >&2; echo the-real-reason >&2; exit 2' exited with 2: " ..
      "aaaaaaaaaa [stderr cut at max_output = 10 bytes: its end was dropped]", tostring(e))
    assert.is_true(e.truncated)
    ok, e = pcall(exec.run, "head -c 100 /dev/zero; echo why >&2; exit 3", { check = true, max_output = 10 })
    assert.equals("exec.run: 'head -c 100 /dev/zero; echo why >&2; exit 3' exited with 3: why", tostring(e))
    assert.is_true(e.truncated)
    raises("option max_output must be a whole number of bytes >= 0 (got -1)", exec.run, "true", { max_output = -1 })
    raises("unknown option 'max_output'", ex.exec, ex, "true", { max_output = 1 })
  end)
end)
