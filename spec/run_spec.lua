-- exec.run and executor:run: input in, both outputs and the exit code out,
-- in the main chunk and from tasks; the child's stdin; check = true; both
-- outputs captured whole whatever the buffer_limit.
local H = require("spec.helper")
local exec = H.exec
local ex = H.native
local script = H.script

describe("exec.run / executor:run", function()
  it("feeds input, collects both streams and the code", function()
    local r = exec.run("cat; echo err >&2; exit 3", { input = "in\n" })
    assert.same({ code = 3, stdout = "in\n", stderr = "err\n", timed_out = false }, r)
    r = ex:run({ "printf", "%s", "x y" })
    assert.equals("x y", r.stdout)
    assert.equals(0, r.code)
  end)

  it("overlaps when run from several tasks", function()
    local t0 = exec.time.now()
    local done = exec.channel.new(5)
    for i = 1, 5 do
      exec.spawn(function() done:send(exec.run("sleep 0.4; echo " .. i).stdout) end)
    end
    local seen = {}
    for _ = 1, 5 do seen[#seen + 1] = done:receive() end
    table.sort(seen)
    assert.same({ "1\n", "2\n", "3\n", "4\n", "5\n" }, seen)
    assert.is_true(exec.time.now() - t0 < 1.8)
  end)

  it("raises, naming itself, for a bad command or a program that cannot start", function()
    local ok, err = pcall(exec.run, "")
    assert.is_false(ok)
    assert.matches("exec.run", err)
    ok, err = pcall(ex.run, ex, { "no-such-program-xyz" })
    assert.is_false(ok)
    assert.matches("executor:run", err)
    assert.matches("no%-such%-program%-xyz", err)
    ok, err = pcall(ex.run, ex, "true", { input = 5 })
    assert.is_false(ok)
    assert.matches("input", err)
  end)
end)

describe("run's stdin", function()
  it("is /dev/null without input, a pipe with it, and what the caller sets otherwise", function()
    local probe = { "sh", "-c", "readlink /proc/self/fd/0; cat" }
    local r = H.exec.run(probe)
    assert.equals("/dev/null\n", r.stdout)
    r = H.exec.run(probe, { input = "in\n" })
    assert.matches("^pipe:%[%d+%]\nin\n$", r.stdout)
    r = H.exec.run(probe, { input = "" })
    assert.matches("^pipe:%[%d+%]\n$", r.stdout)
    local path = H.tmpname(".txt")
    H.write_file(path, "from file\n")
    r = H.exec.run(probe, { stdin = { path = path } })
    assert.equals(path .. "\nfrom file\n", r.stdout)
    os.remove(path)
  end)
end)

describe("run with check = true", function()
  it("raises on a non-zero exit, quoting the last lines of stderr, with the result on the error", function()
    local ok, e = pcall(H.exec.run, "echo out; for i in 1 2 3 4 5 6 7; do echo e$i >&2; done; exit 3", { check = true })
    assert.is_false(ok)
    assert.equals("table", type(e))
    assert.equals("exec.run: 'echo out; for i in 1 2 3 4 5 6 7; do echo e$i >&2; done; exit 3' exited with 3: e3\ne4\ne5\ne6\ne7",
      tostring(e))
    assert.equals(3, e.code)
    assert.equals("out\n", e.stdout)
    assert.equals("e1\ne2\ne3\ne4\ne5\ne6\ne7\n", e.stderr)
    assert.is_false(e.timed_out)
    assert.equals("exec.run_error", getmetatable(e))
  end)

  it("names the command as the caller wrote it, for executor:run and argv", function()
    local ok, e = pcall(H.native.run, H.native, { "sh", "-c", "exit 2" }, { check = true })
    assert.is_false(ok)
    assert.equals("executor:run: 'sh -c exit 2' exited with 2", tostring(e))
  end)

  it("returns the result as usual when the command succeeds; says when it timed out", function()
    assert.equals("hi\n", H.exec.run("echo hi", { check = true }).stdout)
    local ok, e = pcall(H.exec.run, "sleep 5", { check = true, timeout = 0.2 })
    assert.is_false(ok)
    assert.matches("exited with 143 %(timed out%)$", tostring(e))
    assert.is_true(e.timed_out)
  end)

  it("check must be a boolean", function()
    assert.has_error(function() H.exec.run("true", { check = 1 }) end,
      "bad argument #2 (options) to 'exec.run': option check must be a boolean (got number)")
  end)
end)

describe("run captures everything, whatever the read-ahead limit", function()
  -- run reads both outputs to their end itself (Process::collect_step):
  -- neither is ever read ahead into the limited buffer, so a buffer_limit
  -- far below the output drops nothing, on either stream.
  it("both streams whole with buffer_limit = 1, from the main chunk and from tasks", function()
    local out, status = script([[
      local cmd = "head -c 3000000 /dev/zero | tr '\\0' o; head -c 2000000 /dev/zero | tr '\\0' e >&2; " ..
                  "head -c 1000000 /dev/zero | tr '\\0' o"
      local r = exec.run(cmd, { buffer_limit = 1 })
      print("MAIN=" .. #r.stdout .. "," .. #r.stderr .. "," .. r.code .. "," .. tostring(not r.stdout:find("[^o]")))
      local sizes = {}
      for i = 1, 3 do
        coroutine.spawn(function()
          local t = exec.run(cmd, { buffer_limit = 1 })
          sizes[i] = #t.stdout .. "," .. #t.stderr
        end)
      end
      exec.wait_tasks()
      print("TASKS=" .. table.concat(sizes, ";"))
    ]], 60)
    assert.equals(0, status, out)
    assert.matches("MAIN=4000000,2000000,0,true", out, 1, true)
    assert.matches("TASKS=4000000,2000000;4000000,2000000;4000000,2000000", out, 1, true)
  end)
end)
