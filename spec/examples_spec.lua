-- Every example in examples/ runs under the interpreter running the specs
-- and prints what the spec says it should.
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
