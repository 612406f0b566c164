-- Restricted executors really restrict (README, "Security"). Each case is an
-- attack that a restricted executor refuses, with the refusal's message
-- checked, and with a check that the attacker's program did not run. The attacker is Lua code that holds a
-- restricted executor and the processes it made, nothing else.
local H = require("spec.helper")
local exec = H.exec

local n_ids = 0
local function define(cfg)
  n_ids = n_ids + 1
  local id = "policy:r" .. n_ids
  exec.registry.define(id, cfg)
  return exec.get(id), id
end

-- A directory an attacker controls, with a `make` of its own that leaves a
-- mark when it runs, and a library to preload.
local evil = H.tmpname("-evil")
local mark = evil .. "/PWNED"
local function pwned()
  local f = io.open(mark)
  if f then f:close(); os.remove(mark); return true end
  return false
end

local function refused(fn, pattern)
  local ok, err = pcall(fn)
  assert.is_false(ok, "the attack was not refused")
  assert.is_truthy(tostring(err):find(pattern, 1, true), tostring(err))
  assert.is_false(pwned(), "the attacker's program ran")
end

setup(function()
  os.execute("mkdir -p " .. evil)
  H.write_file(evil .. "/make", "#!/bin/sh\ntouch " .. mark .. "\necho PWNED\n")
  os.execute("chmod +x " .. evil .. "/make")
end)

teardown(function()
  os.execute("rm -rf " .. evil)
end)

describe("a command_whitelist runs only the programs its owner meant", function()
  local ex
  setup(function()
    ex = define({ kind = "exec.native", command_whitelist = { "make", "make -v", "true" },
                  default_env = { PATH = "/usr/bin:/bin" } })
  end)

  it("refuses a caller's PATH", function()
    refused(function() return ex:run({ "make" }, { env = { PATH = evil } }) end,
      "env variable 'PATH' cannot be set on 'policy:r1'")
  end)

  it("refuses PATH=. with a work_dir holding a program of that name", function()
    refused(function() return ex:run({ "make" }, { env = { PATH = "." }, work_dir = evil }) end,
      "env variable 'PATH' cannot be set")
  end)

  it("resolves a bare name with the resource's PATH, not relative to work_dir", function()
    -- A work_dir alone changes only where the real make runs.
    local r = ex:run({ "make", "-v" }, { work_dir = evil })
    assert.is_falsy(r.stdout:find("PWNED", 1, true))
    assert.is_false(pwned())
    assert.is_truthy(r.stdout:find("GNU Make", 1, true), r.stdout .. r.stderr)
  end)

  it("refuses variables that make the real program load or run something else", function()
    for _, name in ipairs({ "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "SHELLOPTS", "IFS",
                            "BASH_FUNC_make%%", "MAKEFLAGS", "PYTHONPATH", "GCONV_PATH" }) do
      refused(function() return ex:run({ "make", "-v" }, { env = { [name] = evil .. "/x.so" } }) end,
        "env variable '" .. name .. "' cannot be set")
    end
  end)

  it("lets harmless variables through", function()
    assert.equals(0, ex:run({ "true" }, { env = { CFLAGS = "-O2" } }).code)
  end)

  it("refuses a relative program path without a default_work_dir", function()
    local ex2 = define({ kind = "exec.native", command_whitelist = { "./make" } })
    refused(function() return ex2:run({ "./make" }, { work_dir = evil }) end, "is a relative path")
  end)

  it("still refuses commands off the list, whatever the options", function()
    refused(function() return ex:run({ "sh", "-c", "touch " .. mark }) end, "is not in the command_whitelist")
  end)
end)

describe("allowed_env and work_dir_within", function()
  it("allowed_env lets a caller set only the names it lists", function()
    local ex = define({ kind = "exec.native", allowed_env = { "CFLAGS" } })
    assert.equals("-O2\n", ex:run("echo $CFLAGS", { env = { CFLAGS = "-O2" } }).stdout)
    refused(function() return ex:run("true", { env = { HOME = "/" } }) end, "env variable 'HOME' is not in the allowed_env of")
  end)

  it("work_dir_within keeps work_dir inside, symlinks followed", function()
    local root = H.tmpname("-root")
    os.execute("mkdir -p " .. root .. "/inside && ln -s /etc " .. root .. "/escape")
    local ex = define({ kind = "exec.native", work_dir_within = root })
    assert.is_truthy(ex:run("pwd", { work_dir = root .. "/inside" }).stdout:find("/inside", 1, true))
    refused(function() return ex:run("pwd", { work_dir = "/etc" }) end, "is outside the work_dir_within of")
    refused(function() return ex:run("pwd", { work_dir = root .. "/escape" }) end, "is outside the work_dir_within of")
    refused(function() return ex:run("pwd", { work_dir = root .. "/inside/../.." }) end, "is outside the work_dir_within of")
    os.execute("rm -rf " .. root)
  end)

  it("the new options are checked when defined", function()
    local ok, err = pcall(exec.registry.define, "policy:bad", { kind = "exec.native", allowed_env = "PATH" })
    assert.is_false(ok)
    assert.is_truthy(err:find("allowed_env must be a table", 1, true), err)
    ok, err = pcall(exec.registry.define, "policy:bad", { kind = "exec.native", work_dir_within = 1 })
    assert.is_false(ok)
    assert.is_truthy(err:find("work_dir_within must be a string", 1, true), err)
  end)
end)

describe("stdio and the host's environment on a restricted executor", function()
  -- A root with a file inside, a mode-600 secret outside, and links that
  -- lead out of the root.
  local root, secret
  setup(function()
    root = H.tmpname("-stdio-root")
    secret = H.tmpname("-secret")
    H.write_file(secret, "SECRET\n")
    os.execute("chmod 600 " .. secret)
    os.execute("mkdir -p " .. root .. "/sub && ln -s " .. secret .. " " .. root .. "/link"
      .. " && ln -s /etc " .. root .. "/etc && ln -s ../in.txt " .. root .. "/sub/up")
    H.write_file(root .. "/in.txt", "inside\n")
  end)
  teardown(function() os.execute("rm -rf " .. root .. " " .. secret) end)

  -- What `cat` reads from the redirection, or the error raised.
  local function cat_from(ex, stdin, opts)
    opts = opts or {}
    opts.stdin = stdin
    local ok, r = pcall(function()
      local p = ex:exec({ "cat" }, opts)
      p:start()
      local out = p:stdout_stream():read("a")
      p:wait()
      return out
    end)
    assert.is_false(ok and r:find("SECRET", 1, true) ~= nil, "the secret was read")
    return ok, r
  end

  it("a path redirection leads only beneath work_dir_within, resolved by the kernel", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "cat" }, work_dir_within = root })
    assert.same({ true, "inside\n" }, { cat_from(ex, { path = root .. "/in.txt" }) })
    -- Relative paths start from the process's work_dir, not ours.
    assert.same({ true, "inside\n" }, { cat_from(ex, { path = "in.txt" }, { work_dir = root }) })
    assert.same({ true, "inside\n" }, { cat_from(ex, { path = "../in.txt" }, { work_dir = root .. "/sub" }) })
    -- A symlink that stays inside: the kernel follows it; the walk for
    -- kernels without openat2 follows none (docs/security.md).
    if os.getenv("LUA_EXEC_NO_OPENAT2") then
      local ok, err = cat_from(ex, { path = "sub/up" }, { work_dir = root })
      assert.is_false(ok)
      assert.is_truthy(err:find("leads outside the work_dir_within of", 1, true), err)
    else
      assert.same({ true, "inside\n" }, { cat_from(ex, { path = "sub/up" }, { work_dir = root }) })
    end
    local outside, why = cat_from(ex, { path = secret })
    assert.is_false(outside)
    assert.is_truthy(why:find("is outside the work_dir_within of", 1, true), why)
    for _, path in ipairs({ "link", "etc/passwd", "../../../../etc/passwd", "sub/../../x" }) do
      local ok, err = cat_from(ex, { path = path }, { work_dir = root })
      assert.is_false(ok, path)
      assert.is_truthy(err:find("leads outside the work_dir_within of", 1, true), err)
    end
    -- Without a work_dir inside the root, a relative path has nowhere to start.
    local ok, err = cat_from(ex, { path = "in.txt" })
    assert.is_false(ok)
    assert.is_truthy(err:find("needs a work_dir inside the work_dir_within of", 1, true), err)
  end)

  it("an output redirection cannot truncate or append to a file outside", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "echo x" }, work_dir_within = root })
    for _, append in ipairs({ false, true }) do
      local ok, err = pcall(ex.run, ex, "echo x", { stdout = { path = "link", append = append }, work_dir = root })
      assert.is_false(ok)
      assert.is_truthy(err:find("leads outside the work_dir_within of", 1, true), err)
      ok, err = pcall(ex.run, ex, "echo x", { stdout = { path = secret, append = append } })
      assert.is_false(ok)
      assert.is_truthy(err:find("is outside the work_dir_within of", 1, true), err)
    end
    assert.equals("SECRET\n", H.read_file(secret))
    ex:run("echo x", { stdout = { path = root .. "/out.txt" } })
    assert.equals("x\n", H.read_file(root .. "/out.txt"))
  end)

  it("a whitelist without work_dir_within refuses path redirections", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "cat" } })
    local ok, err = cat_from(ex, { path = secret })
    assert.is_false(ok)
    assert.is_truthy(err:find("has a command_whitelist and no work_dir_within", 1, true), err)
  end)

  it("the host's own stdio and environment only where the owner allows them", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "cat", "env" } })
    for _, key in ipairs({ "stdin", "stdout", "stderr" }) do
      local ok, err = pcall(ex.exec, ex, { "cat" }, { [key] = "inherit" })
      assert.is_false(ok)
      assert.is_truthy(err:find(key .. ' = "inherit" is not allowed on', 1, true), err)
    end
    local ok, err = pcall(ex.exec, ex, { "env" }, { inherit_env = true })
    assert.is_false(ok)
    assert.is_truthy(err:find("inherit_env = true is not allowed on", 1, true), err)
    local allowed = define({ kind = "exec.native", command_whitelist = { "cat", "env" }, allow_inherit = true, inherit_env = true })
    allowed:exec({ "cat" }, { stderr = "inherit" })
    allowed:exec({ "env" }, { inherit_env = true })
    -- An unrestricted executor allows both.
    H.native:exec({ "cat" }, { stdin = "inherit", inherit_env = true })
  end)
end)

describe("max_processes", function()
  it("cannot be exceeded from any number of tasks", function()
    local ex = define({ kind = "exec.native", max_processes = 2 })
    local live, most, refusals = 0, 0, 0
    for _ = 1, 10 do
      exec.spawn(function()
        local p = ex:exec({ "sleep", "0.2" })
        local ok, err = pcall(p.start, p)
        if not ok then
          assert.is_truthy(err:find("reached its max_processes limit (2 live processes)", 1, true), err)
          refusals = refusals + 1
          return
        end
        live = live + 1
        if live > most then most = live end
        p:wait()
        live = live - 1
      end)
    end
    exec.wait_tasks()
    assert.equals(2, most)
    assert.equals(8, refusals)
  end)

  it("a closed handle frees its slot only once its child is gone", function()
    local ex = define({ kind = "exec.native", max_processes = 1 })
    local p = ex:exec({ "sleep", "30" })
    p:start()
    p:close(true)
    assert.equals(0, H.children_settle(5))
    local q = ex:exec({ "true" })
    q:start()
    assert.equals(0, q:wait())
  end)
end)

describe("object integrity", function()
  it("nothing internal is reachable from a handle", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "echo hi" } })
    local p = ex:exec("echo hi")
    p:start()
    local s = p:stdout_stream()
    for _, obj in ipairs({ ex, p, s }) do
      assert.is_nil(next(obj), "pairs shows a field")
      assert.equals("string", type(getmetatable(obj)))
      assert.has_error(function() setmetatable(obj, {}) end)
    end
    assert.equals("exec.executor", getmetatable(ex))
    assert.equals("exec.process", getmetatable(p))
    assert.equals("exec.stream", getmetatable(s))
    assert.equals("hi\n", s:read("a"))
    assert.equals(0, p:wait())
  end)

  it("patching a handle does not reach other executors", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "true" } })
    ex.exec = function() return "patched" end -- only this table changes
    local other = exec.get("process:native")
    assert.is_not.equals("patched", other:exec("true"))
    refused(function() return exec.get(ex:id()):exec("touch " .. mark) end, "is not in the command_whitelist")
  end)
end)

describe("exec.registry.load treats a file as data", function()
  local function file(ext, text)
    local path = H.tmpname(ext)
    H.write_file(path, text)
    return path
  end

  it("stops a Lua file that loops, naming the file", function()
    -- In a fresh interpreter under a time limit: a regression would hang.
    local path = file(".lua", "{ ['a:b'] = (function() while true do end end)() }")
    local out, status = H.run_script(string.format([[
      local exec = require("exec")
      local t0 = exec.time.now()
      local ok, err = pcall(exec.registry.load, %q)
      print(string.format("OK=%%s TOOK=%%.1f ERR=%%s", tostring(ok), exec.time.now() - t0, tostring(err)))
    ]], path), "timeout -s KILL 20 ")
    assert.equals(0, status, out)
    assert.matches("OK=false", out)
    assert.is_truthy(out:find(path, 1, true) and out:find("takes too long", 1, true), out)
    assert.is_truthy(tonumber(out:match("TOOK=([%d.]+)")) < 5, out)
    os.remove(path)
  end)

  it("gives a Lua file no string methods either", function()
    local path = file(".lua", "{ ['a:b'] = { kind = ('x'):rep(1e9) } }")
    local ok, err = pcall(exec.registry.load, path)
    assert.is_false(ok)
    assert.is_truthy(err:find(path, 1, true), err)
    assert.equals("xx", ("x"):rep(2)) -- and puts them back
    os.remove(path)
  end)

  it("refuses options that run local programs unless trusted", function()
    local cases = {
      { ".lua", "{ ['load:a'] = { kind = 'exec.ssh', host = 'h', ssh_command = '/tmp/evil' } }", "option ssh_command runs local programs" },
      { ".lua", "{ ['load:a'] = { kind = 'exec.ssh', host = 'h', ssh_options = { ProxyCommand = 'touch /tmp/x' } } }", "ssh_options.ProxyCommand runs local programs" },
      { ".json", '{"load:a": {"kind": "exec.ssh", "host": "h", "ssh_options": {"localcommand": "id", "PermitLocalCommand": "yes"}}}', "runs local programs" },
      { ".json", '{"load:a": {"kind": "exec.ssh", "host": "h", "ssh_config_file": "/tmp/evil.conf"}}', "option ssh_config_file runs local programs" },
    }
    for _, c in ipairs(cases) do
      local path = file(c[1], c[2])
      local ok, err = pcall(exec.registry.load, path)
      assert.is_false(ok)
      assert.is_truthy(err:find(c[3], 1, true) and err:find(path, 1, true), err)
      assert.is_nil(exec.registry.kind("load:a"))
      os.remove(path)
    end
    local path = file(".lua", "{ ['load:trusted'] = { kind = 'exec.ssh', host = 'h', ssh_command = 'ssh' } }")
    assert.same({ "load:trusted" }, exec.registry.load(path, { trust = true }))
    os.remove(path)
  end)

  it("refuses a file above the size limit", function()
    local path = file(".json", "{" .. string.rep(" ", 17 * 1024 * 1024) .. "}")
    local ok, err = pcall(exec.registry.load, path)
    assert.is_false(ok)
    assert.is_truthy(err:find("larger than", 1, true), err)
    os.remove(path)
  end)

  it("loads JSON in linear time (80,000 resources)", function()
    local parts = {}
    for i = 1, 80000 do parts[i] = string.format('"lin:r%d": {"kind": "other"}', i) end
    local path = file(".json", "{" .. table.concat(parts, ",") .. "}")
    local t0 = exec.time.now()
    local ids = exec.registry.load(path)
    local took = exec.time.now() - t0
    assert.equals(80000, #ids)
    assert.is_truthy(took < 8, "took " .. took .. " s")
    os.remove(path)
  end)
end)

describe("exec.ssh executors cannot be steered", function()
  -- A throwaway sshd on 127.0.0.1 (scripts/sshd.sh), as in ssh_spec.lua.
  local dir = H.tmpname("-sshd")
  local port, user
  local n = 0
  local function remote(over)
    n = n + 1
    local c = {
      kind = "exec.ssh", host = "127.0.0.1", port = port, user = user,
      identity_file = dir .. "/user_key", known_hosts_file = dir .. "/known_hosts",
      -- No shared master connection: it would outlive this file as a child
      -- of ours (later specs count our children).
      ssh_config_file = "/dev/null", multiplex = false,
    }
    for k, v in pairs(over or {}) do c[k] = v end
    exec.registry.define("policy:ssh" .. n, c)
    return exec.get("policy:ssh" .. n)
  end

  setup(function()
    port, user = H.sshd_start(dir)
  end)

  teardown(function()
    H.sshd_stop(dir)
  end)

  it("refuses environment names the remote env would read as options", function()
    local ex = remote({ command_whitelist = { "printf ok" } })
    for _, name in ipairs({ "--split-string", "-i", "A-B", "1X" }) do
      local ok, err = pcall(ex.run, ex, { "printf", "ok" }, { env = { [name] = "sh -c 'echo PWNED-$(id -un)' #" } })
      assert.is_false(ok)
      assert.is_truthy(err:find("is not a portable name", 1, true), err)
    end
    assert.equals("ok", ex:run({ "printf", "ok" }, { env = { GOOD_NAME = "1" } }).stdout)
  end)

  it("works under a TMPDIR with a space and a % (ControlPath is neither expanded nor split)", function()
    local tmp = "/tmp/lua-exec spec %d dir"
    os.execute("mkdir -p " .. exec.quote(tmp))
    local out, status = H.run_script(string.format([[
      local exec = require("exec")
      exec.registry.define("h:x", %s)
      local r = exec.get("h:x"):run("echo multiplexed")
      print("OUT=" .. r.stdout)
    ]], string.format("{ kind = 'exec.ssh', host = '127.0.0.1', port = %d, user = %q, identity_file = %q, known_hosts_file = %q, ssh_config_file = '/dev/null' }",
      port, user, dir .. "/user_key", dir .. "/known_hosts")), "TMPDIR=" .. exec.quote(tmp) .. " timeout -s KILL 30 ")
    os.execute("rm -rf " .. exec.quote(tmp))
    assert.equals(0, status, out)
    assert.matches("OUT=multiplexed", out)
  end)

end)

describe("process attributes on a restricted executor", function()
  it("refuse argv0 where a whitelist names the program: a multi-call program runs by its name", function()
    -- `busybox echo hi` called `sh` would run the file `echo` of work_dir.
    H.write_file(evil .. "/echo", "touch " .. mark .. "\n")
    local ex = define({ kind = "exec.native", command_whitelist = { "busybox echo hi" } })
    refused(function() return ex:run({ "busybox", "echo", "hi" }, { argv0 = "sh", work_dir = evil }) end,
      "argv0 cannot be set on")
  end)

  it("keep fds paths beneath work_dir_within", function()
    local ex = define({ kind = "exec.native", command_whitelist = { "cat /dev/fd/3" }, work_dir_within = evil,
                        default_work_dir = evil })
    refused(function() return ex:run({ "cat", "/dev/fd/3" }, { fds = { [3] = { path = "/etc/shadow" } } }) end,
      "fds[3]: path '/etc/shadow' is outside the work_dir_within of")
  end)

  it("let a caller only tighten the owner's limits, and never change its identity", function()
    local ex, id = define({ kind = "exec.native", command_whitelist = { "true" }, rlimits = { nproc = 10 },
                            uid = 65534, gid = 65534 })
    refused(function() return ex:run({ "true" }, { rlimits = { nproc = 100000 } }) end,
      "rlimits.nproc = 100000 is above the limit of '" .. id .. "' (10)")
    refused(function() return ex:run({ "true" }, { groups = { 0 } }) end,
      "groups = { 0 } is not the identity of '" .. id .. "' (uid = 65534, gid = 65534)")
  end)
end)
