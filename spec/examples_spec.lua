-- Every example in examples/ runs under the interpreter running the specs
-- and prints what the spec says it should; and Wippy's own examples run
-- as written for Wippy (streams taken before start(), `if err then
-- error(err) end` checks), each in a fresh interpreter under a time limit.
local H = require("spec.helper")

local function run_example(name)
  local p = io.popen(H.lua .. " examples/run.lua examples/" .. name .. " 2>&1; echo \"EXIT=$?\"")
  local out = p:read("*a")
  p:close()
  return out:gsub("EXIT=%d+%s*$", ""), tonumber(out:match("EXIT=(%d+)%s*$"))
end

describe("examples", function()
  it("01_basic prints the child's output", function()
    local out, status = run_example("01_basic.lua")
    assert.equals(0, status, out)
    assert.equals("Output:\tHello World\n\n", out)
  end)

  it("02_env_workdir returns the working directory and the variable", function()
    local out, status = run_example("02_env_workdir.lua")
    assert.equals(0, status, out)
    assert.equals('returned[1]: "/tmp\\\nHello from env\\\n"\n', out)
  end)

  it("03_stdin_sort returns the sorted lines", function()
    local out, status = run_example("03_stdin_sort.lua")
    assert.equals(0, status, out)
    assert.equals('returned[1]: "apple\\\nbanana\\\ncherry\\\n"\n', out)
  end)

  it("04_termination ends sleep with SIGTERM: 143", function()
    local out, status = run_example("04_termination.lua")
    assert.equals(0, status, out)
    assert.equals("exit code:\t143\t(128 + SIGTERM)\n", out)
  end)

  it("05_error_handling returns 127 for a command the shell cannot find", function()
    local out, status = run_example("05_error_handling.lua")
    assert.equals(0, status, out)
    assert.matches("returned%[1%]: 127\n$", out)
  end)

  it("06_argv_and_errors passes arguments verbatim and reports a missing program", function()
    local out, status = run_example("06_argv_and_errors.lua")
    assert.equals(0, status, out)
    assert.equals("argv output:\ttwo words|$HOME|\texit:\t0\tnil\nstart failed:\ttrue\ttrue\n", out)
  end)

  it("07_job_runner runs 12 jobs 3 at a time and names the failures", function()
    local out, status = run_example("07_job_runner.lua")
    assert.equals(0, status, out)
    assert.equals("jobs run: 12, failed: 5 10\n", out)
  end)

  it("08_log_follower follows until its deadline", function()
    local out, status = run_example("08_log_follower.lua")
    assert.equals(0, status, out)
    assert.equals("log: event 1\nlog: event 2\nlog: event 3\ndeadline passed\nlines seen: 3\n", out)
  end)

  it("09_pipeline agrees with the shell", function()
    local out, status = run_example("09_pipeline.lua")
    assert.equals(0, status, out)
    assert.equals("lines with a 7: 468559 (as the shell says)\n", out)
  end)
end)

local passes = H.passes

describe("Wippy's examples, as written for Wippy", function()
  it("a stream taken before start(), read after it, with `if err then error(err) end` checks", function()
    passes([=[
      local executor, err = exec.get("process:native")
      if err then error(err) end
      local proc, err = executor:exec("echo 'Hello World'")
      if err then error(err) end

      local stdout = proc:stdout_stream()
      local ok, err = proc:start()
      if err then error(err) end

      local output = ""
      while true do
        local data, err = stdout:read()
        if err then error(err) end
        if not data then break end
        output = output .. data
      end
      stdout:close()

      local exit_code, err = proc:wait()
      if err then error(err) end
      executor:release()
      assert(ok == true, tostring(ok))
      assert(output == "Hello World\n", output)
      assert(exit_code == 0, exit_code)
    ]=])
  end)

  it("stdout and stderr taken before start(), read by coroutines, with env and work_dir", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc, err = executor:exec("pwd && echo $CUSTOM_VAR && echo oops >&2", {
        work_dir = "/tmp",
        env = { PATH = "/usr/bin:/bin", CUSTOM_VAR = "Hello from env" },
      })
      if err then error(err) end
      local stdout, stderr = proc:stdout_stream(), proc:stderr_stream()
      proc:start()

      local done = channel.new(2)
      local function collect(name, stream)
        coroutine.spawn(function()
          local output = ""
          while true do
            local chunk, err = stream:read()
            if err then error(err) end
            if not chunk then break end
            output = output .. chunk
          end
          stream:close()
          done:send({ name, output })
        end)
      end
      collect("stdout", stdout)
      collect("stderr", stderr)
      local got = {}
      for _ = 1, 2 do
        local r = done:receive()
        got[r[1]] = r[2]
      end
      local exit_code, err = proc:wait()
      if err then error(err) end
      assert(got.stdout == "/tmp\nHello from env\n", got.stdout)
      assert(got.stderr == "oops\n", got.stderr)
      assert(exit_code == 0)
    ]=])
  end)

  it("stdin: sort, with its stdout taken before start()", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc = executor:exec("sort")
      local stdout = proc:stdout_stream()
      proc:start()
      local ok, err = proc:write_stdin("banana\napple\ncherry\n")
      if err then error(err) end
      proc:close_stdin()
      local data, err = stdout:read("a")
      if err then error(err) end
      assert(data == "apple\nbanana\ncherry\n", data)
      assert(proc:wait() == 0)
    ]=])
  end)

  it("a reader spawned before start() waits for it; the scanner and read(0) on streams taken before start()", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc = executor:exec("printf 'one\\r\\ntwo\\n'; printf 'err' >&2")
      local stdout = proc:stdout_stream()
      local stderr = proc:stderr_stream()
      local lines = {}
      local done = channel.new(1)
      coroutine.spawn(function()
        local scanner = stdout:scanner("lines")
        while scanner:scan() do lines[#lines + 1] = scanner:text() end
        if scanner:err() then error(scanner:err()) end
        done:send(true)
      end)
      local ok, err = proc:start()
      if err then error(err) end
      local data, err = stderr:read(0)
      if err then error(err) end
      assert(data == "err", data)
      done:receive()
      assert(#lines == 2 and lines[1] == "one" and lines[2] == "two", table.concat(lines, "|"))
      local code, err = proc:wait()
      if err then error(err) end
      assert(code == 0)
    ]=])
  end)

  it("a command that does not exist: its stderr, taken before start(), says so", function()
    passes([=[
      local executor = exec.get("process:native")
      local proc = executor:exec("non_existent_command")
      local stderr = proc:stderr_stream()
      proc:start()
      local msg = stderr:read("a")
      local code, err = proc:wait()
      if err then error(err) end
      assert(code == 127, code)
      assert(msg:find("not found"), msg)
    ]=])
  end)
end)
