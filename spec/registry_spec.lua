-- The resource registry: exec.get, exec.registry.define and its checks,
-- what an exec.native resource's options do, and exec.registry.load (Lua
-- and JSON files, all or nothing, a regular file only, a bounded memory).
local H = require("spec.helper")
local exec = H.exec

describe("exec.get", function()
  it("returns the built-in process:native executor", function()
    local ex = exec.get("process:native")
    assert.is_table(ex)
    assert.matches("exec.executor%(process:native%)", tostring(ex))
    local out, _, code = H.run("echo ok")
    assert.equals("ok\n", out)
    assert.equals(0, code)
  end)

  it("raises for a non-string or empty id, naming the argument", function()
    for _, bad in ipairs({ 1, true, {}, function() end }) do
      local ok, err = pcall(exec.get, bad)
      assert.is_false(ok)
      assert.matches("resource_id", err)
      assert.matches("exec.get", err)
    end
    local ok, err = pcall(exec.get)
    assert.is_false(ok)
    assert.matches("string expected, got nil", err)
    ok, err = pcall(exec.get, "")
    assert.is_false(ok)
    assert.matches("must not be empty", err)
  end)

  it("raises for an unknown resource, naming it", function()
    local ok, err = pcall(exec.get, "process:nope")
    assert.is_false(ok)
    assert.matches("'process:nope' does not exist", err)
    assert.equals("string", type(err))
  end)

  it("raises for a resource that is not a process executor", function()
    exec.registry.define("db:registry-spec", { kind = "sql.postgres", dsn = "x" })
    assert.equals("sql.postgres", exec.registry.kind("db:registry-spec"))
    local ok, err = pcall(exec.get, "db:registry-spec")
    assert.is_false(ok)
    assert.matches("not a process executor", err)
  end)

  it("raises when acquisition fails (default_work_dir missing)", function()
    exec.registry.define("proc:missing-dir", { kind = "exec.native", default_work_dir = "/no/such/dir/x" })
    local ok, err = pcall(exec.get, "proc:missing-dir")
    assert.is_false(ok)
    assert.matches("/no/such/dir/x", err)
    assert.matches("No such file or directory", err)
  end)
end)

describe("exec.registry.define", function()
  it("requires config.kind", function()
    local ok, err = pcall(exec.registry.define, "x:nokind", {})
    assert.is_false(ok)
    assert.matches("config.kind", err)
  end)

  it("rejects unknown options of exec.native, naming them", function()
    local ok, err = pcall(exec.registry.define, "x:typo", { kind = "exec.native", default_workdir = "/tmp" })
    assert.is_false(ok)
    assert.matches("default_workdir", err)
  end)

  it("rejects duplicate ids and ids without a namespace", function()
    exec.registry.define("x:dup", { kind = "exec.native" })
    local ok, err = pcall(exec.registry.define, "x:dup", { kind = "exec.native" })
    assert.is_false(ok)
    assert.matches("already defined", err)
    ok, err = pcall(exec.registry.define, "nonamespace", { kind = "exec.native" })
    assert.is_false(ok)
    assert.matches("namespace:name", err)
  end)

  it("rejects bad max_processes and bad whitelist entries", function()
    for _, bad in ipairs({ 0, -1, 1.5, 0 / 0 }) do
      local ok, err = pcall(exec.registry.define, "x:max" .. tostring(bad), { kind = "exec.native", max_processes = bad })
      assert.is_false(ok)
      assert.matches("max_processes", err)
    end
    local ok, err = pcall(exec.registry.define, "x:wl", { kind = "exec.native", command_whitelist = { "ls", false } })
    assert.is_false(ok)
    assert.matches("command_whitelist%[2%] must be a string or a number %(got boolean%)", err)
  end)

  -- Every check of a definition lives in Rust (src/binding/convert/definition.rs);
  -- these pin the messages it gives, with the argument they are about.
  it("names what is wrong in a definition, as the bad argument", function()
    local cases = {
      { 5, { kind = "exec.native" }, "bad argument #1 (id) to 'exec.registry.define': string expected, got number" },
      { "", { kind = "exec.native" }, "bad argument #1 (id) to 'exec.registry.define': must not be empty" },
      { "x:c", "native", "bad argument #2 (config) to 'exec.registry.define': table expected, got string" },
      { "x:c", { kind = 1 }, "config.kind must be a non-empty string (got number)" },
      { "x:c", { kind = "" }, "config.kind must be a non-empty string (got empty string)" },
      { "x:c", { kind = "exec.native", queue = "yes" }, "(config) to 'exec.registry.define': queue must be a boolean (got string)" },
      { "x:c", { kind = "exec.native", host = "h" }, "unknown option 'host' for kind exec.native" },
      { "x:c", { kind = "exec.native", default_env = { [""] = "x" } }, "default_env has an empty variable name" },
      { "x:c", { kind = "exec.native", default_env = { A = {} } },
        "default_env value of 'A' must be a string or a number (got table)" },
      { "x:c", { kind = "exec.native", command_whitelist = { "ls", x = "y" } }, "command_whitelist must be a list (found key x)" },
      { "x:c", { kind = "exec.native", allowed_env = { {} } }, "allowed_env[1] must be a string or a number (got table)" },
      { "x:c", { kind = "exec.ssh" }, "host is required for kind exec.ssh" },
      { "x:c", { kind = "exec.ssh", host = "h", ssh_options = { [1] = "x" } },
        "ssh_options must map option names to strings, numbers or booleans" },
      { "x:c", { kind = "exec.ssh", host = "h", ssh_options = { A = {} } },
        "ssh_options must map option names to strings, numbers or booleans" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(exec.registry.define, c[1], c[2])
      assert.is_false(ok)
      assert.is_truthy(err:find(c[3], 1, true), err)
      assert.is_truthy(err:find("^spec/registry_spec.lua:%d+: "), err) -- at the caller's line
    end
    assert.is_nil(exec.registry.kind("x:c"))
  end)
end)

describe("an exec.native executor", function()
  it("uses default_work_dir, which work_dir overrides", function()
    exec.registry.define("proc:in-tmp", { kind = "exec.native", default_work_dir = "/tmp" })
    local ex = exec.get("proc:in-tmp")
    local p = ex:exec("pwd")
    p:start()
    assert.equals("/tmp\n", H.read_all(p:stdout_stream()))
    assert.equals(0, p:wait())
    p = ex:exec("pwd", { work_dir = "/" })
    p:start()
    assert.equals("/\n", H.read_all(p:stdout_stream()))
    p:wait()
  end)

  it("gives the child exactly default_env overlaid with env", function()
    exec.registry.define("proc:envs", { kind = "exec.native", default_env = { A = "1", B = "2", N = 7 } })
    local ex = exec.get("proc:envs")
    local p = ex:exec({ "/usr/bin/env" }, { env = { B = "3" } })
    p:start()
    local out = H.read_all(p:stdout_stream())
    p:wait()
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "A=1", "B=3", "N=7" }, lines)
  end)

  it("inherits the parent's environment when neither env nor default_env is set", function()
    local out = H.run({ "/usr/bin/env" })
    assert.matches("PATH=", out)
    local home = os.getenv("HOME")
    if home then assert.matches("HOME=" .. home:gsub("%p", "%%%0"), out) end
  end)

  it("enforces command_whitelist on the whole command", function()
    exec.registry.define("proc:wl", { kind = "exec.native", command_whitelist = { "echo allowed", "printf %s x" } })
    local ex = exec.get("proc:wl")
    local p = ex:exec("echo allowed")
    p:start()
    assert.equals("allowed\n", H.read_all(p:stdout_stream()))
    p:wait()
    p = ex:exec({ "printf", "%s", "x" })
    p:start()
    assert.equals("x", H.read_all(p:stdout_stream()))
    p:wait()
    local ok, err = pcall(ex.exec, ex, "echo allowed; id")
    assert.is_false(ok)
    assert.matches("command_whitelist", err)
  end)

  it("limits live processes with max_processes and frees the slot on exit", function()
    exec.registry.define("proc:max2", { kind = "exec.native", max_processes = 2 })
    local ex = exec.get("proc:max2")
    local a, b, c = ex:exec("sleep 5"), ex:exec("sleep 5"), ex:exec("true")
    a:start()
    b:start()
    local ok, err = pcall(c.start, c)
    assert.is_false(ok)
    assert.matches("max_processes", err)
    assert.matches("2", err)
    a:signal(9)
    assert.equals(137, a:wait())
    c:start()
    assert.equals(0, c:wait())
    b:close(true)
  end)

  it("release is idempotent, makes exec raise, and keeps earlier processes usable", function()
    exec.registry.define("proc:rel", { kind = "exec.native" })
    local ex = exec.get("proc:rel")
    local p = ex:exec("cat")
    assert.is_true(ex:release())
    assert.is_true(ex:release())
    local ok, err = pcall(ex.exec, ex, "true")
    assert.is_false(ok)
    assert.matches("released", err)
    p:start()
    p:write_stdin("still here")
    p:close_stdin()
    assert.equals("still here", H.read_all(p:stdout_stream()))
    assert.equals(0, p:wait())
  end)
end)

describe("exec.registry.load bounds the memory a Lua file takes", function()
  local LIMIT = exec._internal.core.registry_memory_limit
  local function file(text)
    local path = H.tmpname(".lua")
    H.write_file(path, text)
    return path
  end

  -- In a fresh interpreter, whose peak memory tells what the file took.
  local function load_alone(path)
    local out, status = H.run_script(string.format([[
      local exec = require("exec")
      local ok, err = pcall(exec.registry.load, %q)
      print("OK=" .. tostring(ok))
      print("ERR=" .. tostring(err))
      local f = io.open("/proc/self/status"); local st = f:read("*a"); f:close()
      print("PEAK_KB=" .. st:match("VmHWM:%%s*(%%d+)"))
      print("AFTER=" .. exec.run({ "echo", ("x"):rep(3) }).stdout)
    ]], path), "timeout -s KILL 60 ")
    os.remove(path)
    assert.equals(0, status, out)
    return out
  end

  it("is 16 MiB", function()
    assert.equals(16 * 1024 * 1024, LIMIT)
  end)

  it("stops a short file that doubles a string, naming the file, with little memory taken", function()
    -- 89 bytes, 24 doublings: 256 MiB of string (462 MB of memory unbounded).
    local path = file('(function() local s = "xxxxxxxxxxxxxxxx" for i = 1, 24 do s = s .. s end return {} end)()')
    local out = load_alone(path)
    assert.matches("OK=false", out, nil, true)
    assert.is_truthy(out:find(path .. ": takes more than " .. LIMIT .. " bytes of memory to evaluate", 1, true), out)
    assert.is_truthy(tonumber(out:match("PEAK_KB=(%d+)")) < 64 * 1024, out)
    assert.matches("AFTER=xxx", out, nil, true)
  end)

  it("stops a concatenation of many operands (bytes are counted, not instructions)", function()
    -- Two concatenations, 150 and 120 operands: an 18 MB string.
    local a, b = {}, {}
    for i = 1, 150 do a[i] = "a" end
    for i = 1, 120 do b[i] = "b" end
    local path = file("(function() local a = '" .. ("x"):rep(1000) .. "' local b = " .. table.concat(a, "..") ..
      " return { ['big:one'] = { kind = " .. table.concat(b, "..") .. " } } end)()")
    local out = load_alone(path)
    assert.matches("OK=false", out, nil, true)
    assert.is_truthy(out:find("takes more than " .. LIMIT .. " bytes of memory", 1, true), out)
    assert.matches("AFTER=xxx", out, nil, true)
  end)

  it("does not stop data: 20,000 resources", function()
    local parts = {}
    for i = 1, 20000 do parts[i] = string.format("['mem:r%d'] = { kind = 'other', n = %d, tags = { 'a', 'b' } }", i, i) end
    local path = file("{ " .. table.concat(parts, ",\n") .. " }")
    local ids = exec.registry.load(path)
    os.remove(path)
    assert.equals(20000, #ids)
    assert.equals("other", exec.registry.kind("mem:r20000"))
  end)

  it("puts the allocator back: a refused file leaves the state's memory unbounded again", function()
    local path = file('(function() local s = "xxxxxxxxxxxxxxxx" for i = 1, 24 do s = s .. s end return {} end)()')
    local ok, err = pcall(exec.registry.load, path)
    os.remove(path)
    assert.is_false(ok)
    assert.is_truthy(err:find("bytes of memory", 1, true), err)
    local big = ("x"):rep(2 * LIMIT)
    assert.equals(2 * LIMIT, #big)
  end)
end)

-- The primitive behind the bound (src/binding/memory_limit.rs).
describe("core.within_memory", function()
  local core = exec._internal.core
  local MiB = 1024 * 1024

  it("calls the function and returns whether it stayed within the limit, then pcall's results", function()
    assert.same({ true, true, 1, 2 }, { core.within_memory(MiB, function(a, b) return a, b end, 1, 2) })
    -- (Far above the limit: garbage of earlier specs freed meanwhile counts
    -- as given back.)
    collectgarbage()
    local within, ok, err = core.within_memory(MiB, function() return ("x"):rep(64 * MiB) end)
    assert.is_false(within)
    assert.is_false(ok)
    assert.matches("not enough memory", tostring(err))
    -- Net bytes: what is freed meanwhile is given back.
    within = core.within_memory(MiB, function()
      for _ = 1, 64 do local s = ("y"):rep(256 * 1024); s = nil; collectgarbage() end
    end)
    assert.is_true(within)
  end)

  it("gives an error of the function back unchanged, with the allocator restored", function()
    local e = setmetatable({}, { __tostring = function() return "mine" end })
    local within, ok, err = core.within_memory(MiB, function() error(e) end)
    assert.is_true(within)
    assert.is_false(ok)
    assert.equals(e, err)
    assert.equals(32 * MiB, #("x"):rep(32 * MiB))
  end)

  it("is left by Ctrl-C with the allocator restored", function()
    local out, status = H.script([[
      local k = exec.get("process:native"):exec({ "sh", "-c", "sleep 0.3; kill -INT $PPID" },
        { stdin = "null", stdout = "null", stderr = "null" })
      k:start()
      local spin = function() while true do end end
      if jit then jit.off(spin) end -- (LuaJIT runs no hook in compiled code)
      local within, ok, err = exec._internal.core.within_memory(1024 * 1024, spin)
      print("WITHIN=" .. tostring(within), "OK=" .. tostring(ok), "ERR=" .. tostring(err))
      print("BIG=" .. #("x"):rep(64 * 1024 * 1024))
    ]], 20)
    assert.equals(0, status, out)
    assert.matches("WITHIN=true", out, nil, true)
    assert.matches("OK=false", out, nil, true)
    assert.matches("ERR=[^\n]*interrupted!", out)
    assert.matches("BIG=" .. 64 * MiB, out, nil, true)
  end)
end)

describe("exec.registry.load reads only a regular file", function()
  it("refuses a FIFO and a device at once instead of blocking", function()
    local fifo = H.tmpname("-resources.lua")
    assert(os.execute("mkfifo " .. fifo))
    local out, status = H.script(([[
      for _, path in ipairs({ %q, "/dev/zero", "/dev/stdin" }) do
        local ok, err = pcall(exec.registry.load, path)
        print("LOAD=" .. tostring(ok) .. " " .. tostring(err))
      end
    ]]):format(fifo), 10)
    os.remove(fifo)
    assert.equals(0, status, out)
    local _, n = out:gsub("LOAD=false [^\n]*: not a regular file", "")
    assert.equals(3, n, out)
  end)
end)

describe("exec.registry.load", function()
  it("defines resources from a Lua table file and from JSON", function()
    local lpath = H.tmpname(".lua")
    H.write_file(lpath, [[
      -- a fleet
      {
        ["load:build1"] = { kind = "exec.ssh", host = "10.0.0.5", port = 22, user = "deploy",
                            ssh_options = { ServerAliveInterval = 15 }, max_processes = 4 },
        ["load:local"] = { kind = "exec.native", default_env = { X = "1" } },
      }
    ]])
    assert.same({ "load:build1", "load:local" }, exec.registry.load(lpath))
    assert.equals("exec.ssh", exec.registry.kind("load:build1"))
    assert.equals("1\n", exec.get("load:local"):run("echo $X").stdout)

    local jpath = H.tmpname(".json")
    H.write_file(jpath, [[{"load:j1": {"kind": "exec.ssh", "host": "h1", "multiplex": false,
      "command_whitelist": ["uptime"]}, "load:j2": {"kind": "exec.native", "max_processes": 2}}]])
    assert.same({ "load:j1", "load:j2" }, exec.registry.load(jpath))
    assert.equals("exec.ssh", exec.registry.kind("load:j1"))
    os.remove(lpath)
    os.remove(jpath)
  end)

  it("defines all or nothing, and names the file and the resource in errors", function()
    local path = H.tmpname(".lua")
    H.write_file(path, [[ return { ["all:a"] = { kind = "exec.native" }, ["all:b"] = { kind = "exec.ssh" } } ]])
    local ok, err = pcall(exec.registry.load, path)
    assert.is_false(ok)
    assert.is_truthy(err:find(path, 1, true), err)
    assert.is_truthy(err:find("all:b", 1, true) and err:find("host is required", 1, true), err)
    assert.is_nil(exec.registry.kind("all:a"))

    H.write_file(path, [[ { ["x:y"] = os.exit(3) } ]])
    ok, err = pcall(exec.registry.load, path)
    assert.is_false(ok) -- no access to anything: `os` is nil there
    assert.is_truthy(err:find("os", 1, true), err)

    local jpath = H.tmpname(".json")
    H.write_file(jpath, '{"j:x": {"kind": "exec.native",}}')
    ok, err = pcall(exec.registry.load, jpath)
    assert.is_false(ok)
    assert.is_truthy(err:find("line 1, column 32", 1, true), err)
    ok, err = pcall(exec.registry.load, "/no/such/file.json")
    assert.is_false(ok)
    assert.is_truthy(err:find("No such file", 1, true), err)
    os.remove(path)
    os.remove(jpath)
  end)
end)
