-- One-call capture (executor:run, exec.run) and shell quoting.
local core, sched, channel, O, process, registry = ...
local arg_error, check_self = O.arg_error, O.check_self
local check_open, raise = O.check_open, O.raise
local Executor, Process = O.Executor, O.Process
local KILL_GRACE = core.kill_grace

local M = {}

----------------------------------------------------------------------------
-- One-call capture and shell quoting
----------------------------------------------------------------------------

-- After a timed command's kill grace, how long `run` still waits for its
-- output to end before it stops reading: a process outside the command's
-- group (one that started its own session) may hold the pipes for ever.
local RUN_LINGER = 0.1

-- How many lines of stderr a `check` error quotes, and at most how many bytes.
local CHECK_LINES, CHECK_BYTES = 5, 2000

-- The error value `check = true` raises: the message, and the result's
-- fields (code, stdout, stderr, timed_out) plus `command`.
local CheckError = { __name = "exec.run_error", __metatable = "exec.run_error" }
CheckError.__tostring = function(e) return e.message end

local function check_error(fname, described, result)
  local tail = result.stderr:sub(-CHECK_BYTES):gsub("\n+$", "")
  local lines = {}
  for line in (tail .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  local from = math.max(1, #lines - CHECK_LINES + 1)
  tail = table.concat(lines, "\n", from)
  local msg = fname .. ": '" .. described .. "' exited with " .. result.code ..
    (result.timed_out and " (timed out)" or "") .. (tail ~= "" and (": " .. tail) or "")
  local e = { message = msg, command = described }
  for k, v in pairs(result) do e[k] = v end
  return setmetatable(e, CheckError)
end

-- The body of executor:run and exec.run; `fname` names the caller in errors.
local function run(self, fname, command, options)
  -- (input and check are checked with the other options, in Rust.)
  local p = process.new_process(self, command, options, fname, true)
  local input, check
  if options ~= nil then input, check = rawget(options, "input"), rawget(options, "check") end
  local praw, pst = check_self(p, Process, fname)
  process.start(p, fname)
  local parts = { stdout = {}, stderr = {} }
  local streams = {}
  local done = channel.new(2)
  local readers, finished = 0, 0
  for _, which in ipairs({ "stdout", "stderr" }) do
    local got, s = pcall(p[which .. "_stream"], p)
    if got then
      readers = readers + 1
      streams[#streams + 1] = s
      sched.spawn(function()
        while true do
          local chunk = s:read()
          if not chunk then break end
          parts[which][#parts[which] + 1] = chunk
        end
        finished = finished + 1
        done:send(true)
      end)
    end
  end
  local function stop_reading()
    for _, s in ipairs(streams) do s:close() end
  end
  local timers = {}
  if pst.timeout then
    -- The whole call is bounded: output still open at the deadline means
    -- something of the command still runs; past the kill grace, what holds
    -- the pipes is not ours to wait for.
    local deadline = sched.now() + pst.timeout
    timers[1] = sched.at(deadline, function()
      if finished < readers then pst._timed_out = true end
    end)
    timers[2] = sched.at(deadline + KILL_GRACE + RUN_LINGER, stop_reading)
  end
  local function body()
    if input and input ~= "" then p:write_stdin(input) end
    p:close_stdin()
    local code, werr = p:wait()
    for _ = 1, readers do done:receive() end
    return code, werr
  end
  local fine, code, werr
  if sched.yield_across_pcall or not sched.current_task() then
    fine, code, werr = pcall(body)
  else
    fine, code, werr = true, body() -- Lua 5.1 in a task: cannot pcall here
  end
  for _, t in ipairs(timers) do sched.cancel_timer(t) end
  if not fine then
    -- Not ours (Ctrl-C, memory): end what the call started, then let the
    -- error go on unchanged.
    stop_reading()
    p:close(true)
    error(code, 0)
  end
  if not code then raise(fname .. ": " .. tostring(werr)) end
  local result = {
    code = code,
    stdout = table.concat(parts.stdout),
    stderr = table.concat(parts.stderr),
    timed_out = pst._timed_out == true,
  }
  if check and code ~= 0 then error(check_error(fname, praw:command(), result), 0) end
  return result
end

--- executor:run(command, options): start, feed options.input, collect both
--- streams, wait. Returns { code =, stdout =, stderr =, timed_out = }.
function Executor:run(command, options)
  check_self(self, Executor, "executor:run")
  return run(self, "executor:run", command, options)
end

--- exec.run(command, options): executor:run on process:native.
function M.run(command, options)
  check_open()
  local ex = registry.get("process:native")
  local r = run(ex, "exec.run", command, options)
  ex:release()
  return r
end

--- exec.quote(s): s quoted for /bin/sh, safe for any bytes but NUL.
function M.quote(s)
  local t = type(s)
  if t == "number" then s = tostring(s) elseif t ~= "string" then
    arg_error("exec.quote", 1, "s", "string expected, got " .. t)
  end
  if s:find("\0", 1, true) then arg_error("exec.quote", 1, "s", "contains a NUL byte") end
  return core.quote(s)
end

return M
