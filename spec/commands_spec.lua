-- Commands and options: a string runs through /bin/sh -c, a list runs the
-- program directly (looked up in the PATH the child will see); every
-- option is checked, naming what is wrong; exec.quote; combinations of
-- options that cannot keep their promise are refused.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native

describe("commands", function()
  it("runs a string command through /bin/sh -c, exactly as typed", function()
    local out, _, code = H.run("X=4; echo $((X + 1)) && echo second")
    assert.equals("5\nsecond\n", out)
    assert.equals(0, code)
  end)

  it("starts an unknown command through the shell and wait() returns 127", function()
    local p = ex:exec("non_existent_command_xyz")
    p:start()
    assert.equals(127, p:wait())
  end)

  it("runs a table command directly, with no shell and no quoting", function()
    local out = H.run({ "printf", "[%s]", "a b", "$HOME", "'q'", "*" })
    assert.equals("[a b][$HOME]['q'][*]", out)
  end)

  it("looks a bare program up in the PATH the child will see", function()
    local out = H.run({ "echo", "found" }, { env = { PATH = "/nonexistent:/bin:/usr/bin" } })
    assert.equals("found\n", out)
    local p = ex:exec({ "echo", "x" }, { env = { PATH = "/nonexistent" } })
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("'echo' not found", err)
  end)

  it("raises at start when the program cannot be found or run, naming it", function()
    local p = ex:exec({ "no-such-program-xyz", "arg" })
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("no%-such%-program%-xyz", err)
    assert.matches("No such file or directory", err)
    local path = H.tmpname(".txt") -- created without any execute bit
    H.write_file(path, "not a program\n")
    p = ex:exec({ path })
    ok, err = pcall(p.start, p)
    os.remove(path)
    assert.is_false(ok)
    assert.matches(path, err, 1, true)
    assert.matches("Permission denied", err)
  end)

  it("raises at exec for empty, NUL-holding or mistyped commands", function()
    local cases = { "", {}, "echo a\0b", { "echo", "a\0" }, 42, true, { "echo", true }, { "", "x" },
                    { [1] = "echo", [3] = "x" }, { "echo", x = 1 } }
    for i, cmd in ipairs(cases) do
      local ok, err = pcall(ex.exec, ex, cmd)
      assert.is_false(ok, "case " .. i)
      assert.matches("command", err)
      assert.matches("executor:exec", err)
    end
    local ok, err = pcall(ex.exec, ex)
    assert.is_false(ok)
    assert.matches("command", err)
  end)
end)

describe("options", function()
  it("raises for unknown option names, naming them", function()
    local ok, err = pcall(ex.exec, ex, "true", { workdir = "/tmp" })
    assert.is_false(ok)
    assert.matches("unknown option 'workdir'", err)
    assert.matches("work_dir", err)
  end)

  it("raises for options of the wrong type", function()
    for _, opts in ipairs({ { work_dir = 1 }, { env = "A=1" }, { process_group = "yes" }, "x" }) do
      local ok, err = pcall(ex.exec, ex, "true", opts)
      assert.is_false(ok)
      assert.matches("options", err)
    end
  end)

  it("checks env keys and values", function()
    for _, env in ipairs({ { [""] = "x" }, { ["A=B"] = "x" }, { A = {} }, { A = true }, { ["A\0"] = "x" }, { A = "x\0" } }) do
      local ok, err = pcall(ex.exec, ex, "true", { env = env })
      assert.is_false(ok)
      assert.matches("env", err)
    end
  end)

  -- The command and option checks live in Rust (src/binding/convert/exec_options.rs);
  -- these pin their messages and the argument each is about.
  it("names what is wrong in the command or an option, as the bad argument", function()
    local cmd = "bad argument #1 (command) to 'executor:exec': "
    local opt = "bad argument #2 (options) to 'executor:exec': "
    local cases = {
      { "", nil, cmd .. "must not be empty" },
      { "a\0b", nil, cmd .. "contains a NUL byte" },
      { {}, nil, cmd .. "must not be an empty table" },
      { { "" }, nil, cmd .. "command[1] (the program) must not be empty" },
      { { "ls", true }, nil, cmd .. "command[2] must be a string or a number (got boolean)" },
      { { "ls", "a\0" }, nil, cmd .. "command[2] contains a NUL byte" },
      { { "ls", n = 1 }, nil, cmd .. "must be a list of strings (found key n)" },
      { true, nil, cmd .. "string or table of strings expected, got boolean" },
      { "true", 5, opt .. "table expected, got number" },
      { "true", { cwd = "/" }, opt .. "unknown option 'cwd' (did you mean 'work_dir'?)" },
      { "true", { [1] = "x" }, opt .. "unknown option '1'" },
      { "true", { input = "x" }, opt .. "unknown option 'input'" }, -- run's, not exec's
      { "true", { detach = 1 }, opt .. "option detach must be a boolean (got number)" },
      { "true", { env = { [""] = "x" } }, opt .. "env has an empty variable name" },
      { "true", { env = { ["A=B"] = "x" } }, opt .. "env variable name 'A=B' contains '='" },
      { "true", { env = { ["A\0"] = "x" } }, opt .. "env variable name contains a NUL byte" },
      { "true", { env = { A = "x\0" } }, opt .. "env value of 'A' contains a NUL byte" },
      { "true", { env = { A = true } }, opt .. "env value of 'A' must be a string or a number (got boolean)" },
      { "true", { env = { [true] = "x" } }, opt .. "env variable names must be strings (got boolean)" },
      { "true", { timeout = "soon" }, opt .. "option timeout: invalid duration 'soon'" },
      -- numbers are shown as tostring shows them
      { "true", { buffer_limit = 1e300 }, opt .. "option buffer_limit must be a whole number of bytes >= 1 (got " .. tostring(1e300) .. ")" },
      { { "ls", [2.5] = "x" }, nil, cmd .. "must be a list of strings (found key " .. tostring(2.5) .. ")" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(ex.exec, ex, c[1], c[2])
      assert.is_false(ok)
      assert.is_truthy(err:find(c[3], 1, true), err)
      assert.is_truthy(err:find("^spec/commands_spec.lua:%d+: "), err) -- at the caller's line
    end
  end)

  it("checks run's own options with the others, and leaves the caller's table as it was", function()
    local run = "bad argument #2 (options) to 'exec.run': "
    for _, c in ipairs({
      { { input = 5 }, "option input must be a string (got number)" },
      { { check = "yes" }, "option check must be a boolean (got string)" },
      { { workdir = "/" }, "unknown option 'workdir' (did you mean 'work_dir'?)" },
    }) do
      local ok, err = pcall(exec.run, "true", c[1])
      assert.is_false(ok)
      assert.is_truthy(err:find(run .. c[2], 1, true), err)
    end
    local opts = { input = "a\n", check = true, timeout = "5s", env = { X = 1 } }
    local r = exec.run({ "sh", "-c", "cat; echo $X" }, opts)
    assert.equals("a\n1\n", r.stdout)
    assert.same({ input = "a\n", check = true, timeout = "5s", env = { X = 1 } }, opts)
  end)

  it("converts numbers in env to strings as tostring does", function()
    local r = exec.run({ "/usr/bin/env" }, { env = { F = 2.0, E = 1e300 } })
    local lines = {}
    for l in r.stdout:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "E=" .. tostring(1e300), "F=" .. tostring(2.0) }, lines)
  end)

  it("converts numbers in argument lists and command_whitelist entries as tostring does", function()
    local r = exec.run({ "echo", 1, 2.5, -3, 2.0 })
    assert.equals(table.concat({ "1", "2.5", "-3", tostring(2.0) }, " ") .. "\n", r.stdout)
    exec.registry.define("numbers:wl", { kind = "exec.native", command_whitelist = { "sleep 0", 7 } })
    local p = exec.get("numbers:wl"):exec({ "sleep", 0 })
    p:start()
    assert.equals(0, p:wait())
  end)

  it("converts numbers in env to strings and does not inherit the parent's env", function()
    local out = H.run({ "/usr/bin/env" }, { env = { N = 42, F = 1.5 } })
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    table.sort(lines)
    assert.same({ "F=1.5", "N=42" }, lines)
  end)

  it("runs in work_dir, and raises at start naming a work_dir that does not exist", function()
    assert.equals("/tmp\n", (H.run("pwd", { work_dir = "/tmp" })))
    local p = ex:exec("pwd", { work_dir = "/no/such/dir" })
    local ok, err = pcall(p.start, p)
    assert.is_false(ok)
    assert.matches("/no/such/dir", err)
    assert.matches("No such file or directory", err)
  end)
end)

describe("exec.quote", function()
  it("round-trips every special character through sh", function()
    local nasty = "a b\t'\"$HOME`id`\\n\n*?[x]{a,b};&|<>()#~!% é ü ✓"
    for i = 1, 255 do nasty = nasty .. string.char(i) end
    local r = exec.run("printf %s " .. exec.quote(nasty))
    assert.equals(nasty, r.stdout)
    assert.equals("''", exec.quote(""))
    assert.equals("'it'\\''s'", exec.quote("it's"))
  end)

  it("passes bytes that are not UTF-8 through commands, arguments and env", function()
    assert.equals("\255\254", exec.run("printf %s " .. exec.quote("\255\254")).stdout)
    assert.equals("\200x", exec.run({ "printf", "%s", "\200x" }).stdout)
    assert.equals("\233t\233", exec.run("printf %s \"$V\"", { env = { V = "\233t\233" } }).stdout)
  end)

  it("raises for non-strings and NUL", function()
    assert.has_error(function() exec.quote({}) end)
    assert.has_error(function() exec.quote("a\0b") end)
  end)
end)

describe("combinations that cannot keep their promise", function()
  it("detach with pty is refused", function()
    local ok, err = pcall(ex.exec, ex, { "true" }, { detach = true, pty = true })
    assert.is_false(ok)
    assert.matches("detach and pty cannot be combined", err)
  end)

  it("run's input with stdin elsewhere is refused, naming both", function()
    for _, stdin in ipairs({ "null", "inherit", { path = "/dev/null" } }) do
      local ok, err = pcall(exec.run, { "cat" }, { stdin = stdin, input = "x" })
      assert.is_false(ok)
      assert.matches("option input cannot be used with option stdin", err)
    end
    local src = ex:exec({ "echo", "x" })
    src:start()
    local ok, err = pcall(exec.run, { "cat" }, { stdin = src:stdout_stream(), input = "x" })
    assert.is_false(ok)
    assert.matches("option input cannot be used with option stdin = another process's stream", err)
    src:close()
    assert.equals("x", exec.run({ "cat" }, { stdin = "pipe", input = "x" }).stdout)
  end)
end)
