-- The public executor, process and stream objects.
--
-- Each object is an empty table with a metatable of its own, locked
-- (`__metatable`), that holds its state: the raw Rust userdata and the
-- object's fields. So nothing internal is reachable from a handle: `pairs`
-- shows nothing, `getmetatable` returns the class name, and the shared
-- class tables cannot be patched by code that holds a handle.
-- The raw layer never blocks and never raises for operational errors; this
-- file turns its results into the spec's conventions (raise, or return
-- nil + message) and does the waiting through the scheduler.
local core, sched, time, channel = ...

local M = {}
local unpack = table.unpack or unpack

local check_open = sched.check_open
-- Taken when the module loads, before a host may sandbox `debug` away.
local dgetmt = debug.getmetatable
local floor = math.floor

local Executor, Process, Stream = {}, {}, {}
Executor.__index, Process.__index, Stream.__index = Executor, Process, Stream
Executor.__name, Process.__name, Stream.__name = "exec.executor", "exec.process", "exec.stream"

-- The state of `v` if it is an object of `class` (nil otherwise).
local function state_of(v, class)
  if type(v) ~= "table" then return nil end
  local st = dgetmt(v)
  if type(st) == "table" and st.__index == class and st.raw ~= nil then return st end
  return nil
end

local function describe(v)
  local t = type(v)
  if t == "table" then
    local st = dgetmt(v)
    if type(st) == "table" and (st.__index == Executor or st.__index == Process or st.__index == Stream) then
      return st.__index.__name
    end
  end
  return t
end

-- A new object of `class` whose state is `st`.
local function new_object(class, st)
  st.__index = class
  st.__metatable = class.__name
  st.__name = class.__name
  st.__tostring = class.__tostring
  st.__close = class.__close
  return setmetatable({}, st)
end

-- Raise unless `self` is an object of class `mt` (a method called with `.`
-- instead of `:`, or on the wrong object).
local function check_self(self, mt, name)
  check_open()
  local st = state_of(self, mt)
  if not st then
    error(name .. ": self must be an " .. mt.__name .. " (got " .. describe(self) .. "); call it with ':'", 3)
  end
  return st.raw, st
end

-- Same check for functions that must never raise (wait): returns nil, message.
local function soft_self(self, mt, name)
  check_open()
  local st = state_of(self, mt)
  if not st then
    return nil, name .. ": self must be an " .. mt.__name .. " (got " .. describe(self) .. ")"
  end
  return st.raw, st
end

local function arg_error(fname, n, argname, msg)
  error(string.format("bad argument #%d (%s) to '%s': %s", n, argname, fname, msg), 3)
end

----------------------------------------------------------------------------
-- Registry
----------------------------------------------------------------------------

local NATIVE_OPTIONS = {
  kind = true, default_work_dir = "string", default_env = "table",
  command_whitelist = "table", max_processes = "number",
  allowed_env = "table", work_dir_within = "string",
}

-- exec.ssh: the native options (applied on the remote host) and the
-- connection's.
local SSH_OPTIONS = {
  host = "string", port = "number", user = "string", identity_file = "string",
  known_hosts_file = "string", ssh_config_file = "string", ssh_options = "table",
  multiplex = "boolean", ssh_command = "string",
}
for k, v in pairs(NATIVE_OPTIONS) do SSH_OPTIONS[k] = v end

local EXECUTOR_KINDS = { ["exec.native"] = NATIVE_OPTIONS, ["exec.ssh"] = SSH_OPTIONS }

-- { k = v } -> flat { k1, v1, ... }, with the semantics' checks.
local function flatten_env(env, fname, argname)
  local flat = {}
  for k, v in pairs(env) do
    local tk, tv = type(k), type(v)
    if tk == "number" then k = tostring(k) elseif tk ~= "string" then
      arg_error(fname, 2, argname, "variable names must be strings (got " .. tk .. ")")
    end
    if tv == "number" then v = tostring(v) elseif tv ~= "string" then
      arg_error(fname, 2, argname, "value of '" .. k .. "' must be a string or number (got " .. tv .. ")")
    end
    if k == "" then arg_error(fname, 2, argname, "empty variable name") end
    if k:find("=", 1, true) then arg_error(fname, 2, argname, "variable name '" .. k .. "' contains '='") end
    if k:find("\0", 1, true) then arg_error(fname, 2, argname, "variable name contains a NUL byte") end
    if v:find("\0", 1, true) then arg_error(fname, 2, argname, "value of '" .. k .. "' contains a NUL byte") end
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  return flat
end

local function check_string_list(list, fname, argname)
  local n = #list
  for k in pairs(list) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      arg_error(fname, 2, argname, "must be a list (found key " .. tostring(k) .. ")")
    end
  end
  for i = 1, n do
    if type(list[i]) ~= "string" then
      arg_error(fname, 2, argname, "item " .. i .. " must be a string (got " .. type(list[i]) .. ")")
    end
  end
end

local registry = {}
M.registry = registry

--- exec.registry.define(id, config): config.kind is required.
function registry.define(id, config)
  check_open()
  local fname = "exec.registry.define"
  if type(id) ~= "string" then arg_error(fname, 1, "id", "string expected, got " .. type(id)) end
  if id == "" then arg_error(fname, 1, "id", "must not be empty") end
  if type(config) ~= "table" then arg_error(fname, 2, "config", "table expected, got " .. type(config)) end
  local kind = config.kind
  if type(kind) ~= "string" or kind == "" then
    arg_error(fname, 2, "config", "config.kind must be a non-empty string (got " .. type(kind) .. ")")
  end
  local norm = {}
  local known = EXECUTOR_KINDS[kind]
  if known then
    for k, v in pairs(config) do
      local want = known[k]
      if not want then
        arg_error(fname, 2, "config", "unknown option '" .. tostring(k) .. "' for kind " .. kind)
      end
      if want ~= true and type(v) ~= want then
        arg_error(fname, 2, "config", k .. " must be a " .. want .. " (got " .. type(v) .. ")")
      end
      norm[k] = v
    end
    norm.kind = nil
    if config.default_env then norm.default_env = flatten_env(config.default_env, fname, "config.default_env") end
    if config.command_whitelist then
      check_string_list(config.command_whitelist, fname, "config.command_whitelist")
    end
    if config.allowed_env then
      check_string_list(config.allowed_env, fname, "config.allowed_env")
    end
    local max = config.max_processes
    if max ~= nil and (max ~= max or max < 1 or max % 1 ~= 0 or max == math.huge) then
      arg_error(fname, 2, "config", "max_processes must be a whole number >= 1 (got " .. tostring(max) .. ")")
    end
    if kind == "exec.ssh" then
      if config.host == nil then arg_error(fname, 2, "config", "host is required for kind exec.ssh") end
      for k, v in pairs(config.ssh_options or {}) do
        local tv = type(v)
        if type(k) ~= "string" or not (tv == "string" or tv == "number" or tv == "boolean") then
          arg_error(fname, 2, "config", "ssh_options must map option names to strings, numbers or booleans")
        end
      end
    end
  end
  local ok, err = core.define(id, kind, norm)
  if not ok then error(fname .. ": " .. err, 2) end
  return true
end

--- The kind of a defined resource, or nil.
function registry.kind(id)
  check_open()
  if type(id) ~= "string" then arg_error("exec.registry.kind", 1, "id", "string expected, got " .. type(id)) end
  return core.kind(id)
end

-- What a resource file may hold, and may make us do.
local LOAD_MAX_BYTES = core.registry_file_limit
-- VM instructions a Lua resource file may take: data needs about one per
-- token, so a budget that grows with the file never stops data, and stops
-- a loop at once.
local LOAD_BASE_BUDGET = 1000000

-- Options that make ssh (or us) run local programs or load code: only from
-- a file the caller trusts (`exec.registry.load(path, { trust = true })`).
local TRUSTED_ONLY = { ssh_command = true, ssh_config_file = true }
local TRUSTED_ONLY_SSH = {
  proxycommand = true, localcommand = true, knownhostscommand = true, permitlocalcommand = true,
  match = true, pkcs11provider = true, securitykeyprovider = true, proxyusefdpass = true,
}

local function check_untrusted(id, cfg)
  for k in pairs(cfg) do
    if TRUSTED_ONLY[k] then
      return "option " .. k .. " runs local programs: refused from a file unless it is loaded with { trust = true }"
    end
  end
  if type(cfg.ssh_options) == "table" then
    for k in pairs(cfg.ssh_options) do
      if type(k) == "string" and TRUSTED_ONLY_SSH[k:lower()] then
        return "ssh_options." .. k .. " runs local programs: refused from a file unless it is loaded with { trust = true }"
      end
    end
  end
  return nil
end

-- A Lua resource file is a table constructor (with or without `return`),
-- evaluated as data: no access to anything (not even the string methods),
-- within an instruction budget.
local function load_lua_table(text, path)
  local chunk_text = text:match("^%s*return[%s{]") and text or ("return " .. text)
  local env = {}
  local chunk, err
  if setfenv then
    chunk, err = loadstring(chunk_text, "@" .. path)
    if chunk then setfenv(chunk, env) end
  else
    chunk, err = load(chunk_text, "@" .. path, "t", env)
  end
  if not chunk then return nil, err end
  local budget = math.floor((LOAD_BASE_BUDGET + #text) / 1000)
  -- LuaJIT runs no hooks in compiled code: keep the file interpreted.
  if rawget(_G, "jit") and jit.off then jit.off(chunk, true) end
  local co = coroutine.create(chunk)
  local old_hook = { debug.gethook(co) }
  debug.sethook(co, function()
    budget = budget - 1
    if budget < 0 then error("takes too long to evaluate (a resource file is data, not a program)", 2) end
  end, "", 1000)
  local smt = dgetmt("")
  local string_index = smt and smt.__index
  if smt then smt.__index = nil end
  local ok, v = coroutine.resume(co)
  if smt then smt.__index = string_index end
  debug.sethook(co, unpack(old_hook, 1, 3))
  if not ok then return nil, tostring(v) end
  return v
end

--- exec.registry.load(path, [options]): define every resource a file
--- declares. The file maps resource ids to configurations, in JSON (a name
--- ending in .json) or Lua table syntax. All or nothing: on any error, none
--- of the file's resources stay defined. Returns the ids defined, sorted.
--- Options that run local programs are refused unless `options.trust`.
function registry.load(path, options)
  check_open()
  local fname = "exec.registry.load"
  if type(path) ~= "string" then arg_error(fname, 1, "path", "string expected, got " .. type(path)) end
  if options ~= nil and type(options) ~= "table" then
    arg_error(fname, 2, "options", "table expected, got " .. type(options))
  end
  local trust = false
  for k, v in pairs(options or {}) do
    if k ~= "trust" then arg_error(fname, 2, "options", "unknown option '" .. tostring(k) .. "'") end
    if type(v) ~= "boolean" then arg_error(fname, 2, "options", "option trust must be a boolean (got " .. type(v) .. ")") end
    trust = v
  end
  local f, oerr = io.open(path, "rb")
  if not f then error(fname .. ": cannot open " .. tostring(oerr), 2) end
  local text = f:read(LOAD_MAX_BYTES + 1) or ""
  f:close()
  if #text > LOAD_MAX_BYTES then
    error(fname .. ": " .. path .. ": larger than " .. LOAD_MAX_BYTES .. " bytes", 2)
  end
  local data, perr
  if path:lower():match("%.json$") then
    data, perr = core.json_decode(text)
  else
    data, perr = load_lua_table(text, path)
  end
  if perr then error(fname .. ": " .. path .. ": " .. perr, 2) end
  if type(data) ~= "table" then
    error(fname .. ": " .. path .. ": expected a table of resources (got " .. type(data) .. ")", 2)
  end
  local ids = {}
  for id, cfg in pairs(data) do
    if type(id) ~= "string" then
      error(fname .. ": " .. path .. ": resource ids must be strings (got " .. type(id) .. ")", 2)
    end
    if type(cfg) ~= "table" then
      error(fname .. ": " .. path .. ": resource '" .. id .. "' must be a table (got " .. type(cfg) .. ")", 2)
    end
    if not trust then
      local refused = check_untrusted(id, cfg)
      if refused then error(fname .. ": " .. path .. ": resource '" .. id .. "': " .. refused, 2) end
    end
    ids[#ids + 1] = id
  end
  table.sort(ids)
  local done = {}
  for _, id in ipairs(ids) do
    local ok, err = pcall(registry.define, id, data[id])
    if not ok then
      for _, d in ipairs(done) do core.undefine(d) end
      if type(err) ~= "string" or not err:find("exec.registry.define", 1, true) then
        error(err, 0) -- not ours: as it came
      end
      err = err:gsub("^bad argument #%d+ %(%w+%) to 'exec.registry.define': ", ""):gsub("^exec.registry.define: ", "")
      error(fname .. ": " .. path .. ": resource '" .. id .. "': " .. err, 2)
    end
    done[#done + 1] = id
  end
  return ids
end

--- exec.get(id): a process executor from the registry.
function M.get(id)
  check_open()
  local fname = "exec.get"
  if type(id) ~= "string" then arg_error(fname, 1, "resource_id", "string expected, got " .. type(id)) end
  if id == "" then arg_error(fname, 1, "resource_id", "must not be empty") end
  local raw, err = core.get(id)
  if not raw then error(fname .. ": " .. err, 2) end
  return new_object(Executor, { raw = raw })
end

----------------------------------------------------------------------------
-- Executor
----------------------------------------------------------------------------

local EXEC_OPTIONS = {
  work_dir = "string", env = "table", stdin = "string", stdout = "string", stderr = "string",
  process_group = "boolean", timeout = true, buffer_limit = "number",
}

-- A child that outlives its `timeout` gets SIGTERM, then SIGKILL this much later.
local KILL_GRACE = core.kill_grace

local function check_command(cmd, fname)
  local t = type(cmd)
  if t == "string" then
    if cmd == "" then arg_error(fname, 1, "command", "must not be empty") end
    if cmd:find("\0", 1, true) then arg_error(fname, 1, "command", "contains a NUL byte") end
    return
  end
  if t ~= "table" then arg_error(fname, 1, "command", "string or table of strings expected, got " .. t) end
  local n = #cmd
  if n == 0 then arg_error(fname, 1, "command", "must not be an empty table") end
  for k in pairs(cmd) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      arg_error(fname, 1, "command", "must be a list of strings (found key " .. tostring(k) .. ")")
    end
  end
  for i = 1, n do
    local a = cmd[i]
    if type(a) ~= "string" then
      arg_error(fname, 1, "command", "command[" .. i .. "] must be a string (got " .. type(a) .. ")")
    end
    if a:find("\0", 1, true) then arg_error(fname, 1, "command", "command[" .. i .. "] contains a NUL byte") end
  end
  if cmd[1] == "" then arg_error(fname, 1, "command", "command[1] (the program) must not be empty") end
end

local function normalize_options(opts, fname)
  if opts == nil then return nil end
  if type(opts) ~= "table" then arg_error(fname, 2, "options", "table expected, got " .. type(opts)) end
  local norm = {}
  for k, v in pairs(opts) do
    local want = EXEC_OPTIONS[k]
    if not want then
      local hint = ""
      if k == "workdir" or k == "cwd" or k == "dir" then hint = " (did you mean 'work_dir'?)" end
      arg_error(fname, 2, "options", "unknown option '" .. tostring(k) .. "'" .. hint)
    end
    if want ~= true and type(v) ~= want then
      arg_error(fname, 2, "options", "option " .. k .. " must be a " .. want .. " (got " .. type(v) .. ")")
    end
    if k == "env" then
      norm.env = flatten_env(v, fname, "options.env")
    elseif k == "timeout" then
      norm.timeout = time._seconds(v, fname .. ": option timeout")
    else
      norm[k] = v
    end
  end
  if norm.stdout == "stdout" then arg_error(fname, 2, "options", "option stdout cannot be \"stdout\"") end
  local limit = norm.buffer_limit
  if limit ~= nil and (limit ~= limit or limit < 1 or limit % 1 ~= 0 or limit == math.huge) then
    arg_error(fname, 2, "options", "option buffer_limit must be a whole number of bytes >= 1 (got " .. tostring(limit) .. ")")
  end
  -- A timeout bounds the whole command: it gets a process group of its
  -- own, so that what it started ends with it. Not when it reads our
  -- terminal: a child outside the terminal's foreground group would be
  -- stopped (SIGTTIN) as soon as it read.
  if norm.timeout and norm.process_group == nil and not (norm.stdin == "inherit" and core.stdin_is_tty()) then
    norm.process_group = true
  end
  return norm
end

--- executor:exec(command, options): a new, unstarted process handle.
function Executor:exec(command, options)
  local fname = "executor:exec"
  local raw = check_self(self, Executor, fname)
  check_command(command, fname)
  local norm = normalize_options(options, fname)
  if raw:released() then error(fname .. ": executor '" .. raw:id() .. "' has been released", 2) end
  local praw, err = raw:exec(command, norm)
  if not praw then error(fname .. ": " .. err, 2) end
  return new_object(Process, { raw = praw, streams = {}, timeout = norm and norm.timeout,
                               process_group = norm and norm.process_group })
end

--- executor:release(): always true; later exec calls raise.
function Executor:release()
  local raw = check_self(self, Executor, "executor:release")
  return raw:release()
end

function Executor:id()
  return check_self(self, Executor, "executor:id"):id()
end

Executor.__close = function(self) pcall(Executor.release, self) end
Executor.__tostring = function(self)
  local raw = dgetmt(self).raw
  return string.format("exec.executor(%s%s)", raw:id(), raw:released() and ", released" or "")
end

----------------------------------------------------------------------------
-- Process
----------------------------------------------------------------------------

-- How often start() looks whether a remote connection is up.
local CONNECT_POLL = 0.005

-- A remote process first needs its host's shared connection (local ones
-- are always ready at once). Other tasks run meanwhile. nil or a message.
local function await_connection(raw)
  while true do
    local ready, cerr = raw:connect()
    if ready then return nil end
    if ready == nil then return cerr end
    sched.sleep(CONNECT_POLL)
  end
end

-- Send `sig` to whatever of the command still runs: the child (its group
-- with it), or what is left of its group after it exited. True if
-- anything was there to get it.
local function signal_command(raw, sig)
  if raw:state() == "running" and raw:try_wait() == false and raw:signal(sig) then
    return true
  end
  return raw:signal_rest(sig)
end

--- process:start(): raises if already started, closed, the remote
--- connection cannot be made, or the spawn fails.
function Process:start()
  local raw, st = check_self(self, Process, "process:start")
  local cerr = await_connection(raw)
  if cerr then error("process:start: " .. cerr, 2) end
  local ok, err = raw:start()
  if not ok then error("process:start: " .. err, 2) end
  if st.timeout then
    -- Enforced by the event loop, i.e. while the program waits in a
    -- blocking call: SIGTERM (and SIGCONT, for a stopped child) to all that
    -- is left of the command, SIGKILL after the grace period.
    st._timer = sched.at(sched.now() + st.timeout, function()
      if not signal_command(raw, 15) then return end
      st._timed_out = true
      signal_command(raw, 18)
      st._timer = sched.at(sched.now() + KILL_GRACE, function() signal_command(raw, 9) end)
    end)
  end
  return true
end

--- True once the `timeout` option ended the child.
function Process:timed_out()
  local _, st = check_self(self, Process, "process:timed_out")
  return st._timed_out == true
end

function Process:pid()
  return check_self(self, Process, "process:pid"):pid()
end

local function stop_timer(st)
  if st._timer then
    sched.cancel_timer(st._timer)
    st._timer = nil
  end
end

-- Wake everything waiting on this process's tokens: the handle is going away.
local function wake_waiters(raw)
  local t = raw:exit_token()
  if t then sched.fire(t) end
  t = raw:stdin_token()
  if t then sched.fire(t) end
end

--- process:wait([d]): exit_code, nil; or nil, message. Never raises. With a
--- duration `d`, waits at most that long and returns nil, "timeout" if the
--- child is still running (it keeps running).
function Process:wait(d)
  local raw, st = soft_self(self, Process, "process:wait")
  if not raw then return nil, st end
  local deadline
  if d ~= nil then
    local ok, secs = pcall(time._seconds, d, "process:wait")
    if not ok then return nil, tostring(secs) end
    deadline = sched.now() + secs
  end
  -- Tasks already scheduled (typically a reader spawned just before this
  -- call) get to run first, so that the streams they are about to take are
  -- not mistaken for output nobody wants. From then on output cannot hold
  -- the child up (see stream.rs): the first step begins the wait.
  sched.yield()
  while true do
    -- The state machine is Rust's: one call per step.
    local code, a, t1, t2 = raw:wait_step()
    if code then
      -- Other coroutines may be waiting on the exit token, which finishing
      -- retires: wake them, they find the code. (Without this a waiter that
      -- registered after the token's last report would sleep forever.)
      if a then sched.fire(a) end
      if t1 then sched.fire(t1) end
      -- A group may outlive its leader: its timeout still ends it then.
      if st._timer and not (st.process_group and raw:signal_rest(0)) then stop_timer(st) end
      return code, nil
    elseif code == false then
      if deadline then
        local left = deadline - sched.now()
        if left <= 0 then return nil, "timeout" end
        sched.wait_token_for(a, left, "process:wait")
      else
        sched.wait_token(a, "process:wait")
      end
    else
      if t1 then sched.fire(t1) end -- they get the same message
      if t2 then sched.fire(t2) end
      return nil, "process:wait: " .. a
    end
  end
end

--- process:signal(n): true, nil; or nil, message.
function Process:signal(sig)
  local raw = check_self(self, Process, "process:signal")
  if type(sig) ~= "number" then
    arg_error("process:signal", 1, "signal_number", "number expected, got " .. type(sig))
  end
  if sig ~= sig or sig % 1 ~= 0 or sig < 1 or sig > 64 then
    return nil, "process:signal: invalid signal number " .. tostring(sig)
  end
  local ok, err = raw:signal(sig)
  if not ok then return nil, "process:signal: " .. err end
  return true, nil
end

--- process:close(force): always true; idempotent.
function Process:close(force)
  local raw, st = check_self(self, Process, "process:close")
  if force ~= nil and type(force) ~= "boolean" then
    arg_error("process:close", 1, "force_stop", "boolean expected, got " .. type(force))
  end
  wake_waiters(raw)
  stop_timer(st)
  raw:close(force == true)
  return true
end

local function get_stream(self, which, fname)
  local raw, st = check_self(self, Process, fname)
  local state = raw:state()
  if state == "closed" then error(fname .. ": process is closed", 3) end
  if state == "created" then error(fname .. ": process not started", 3) end
  local s = st.streams[which]
  if s then return s end
  local sraw, err = raw:stream(which)
  if not sraw then error(fname .. ": " .. err, 3) end
  -- `owner`: a stream (and a lines() iterator) keeps its process alive.
  s = new_object(Stream, { raw = sraw, token = sraw:token(), owner = self, q = {}, qh = 1, qn = 0 })
  st.streams[which] = s
  return s
end

function Process:stdout_stream()
  return get_stream(self, 1, "process:stdout_stream")
end

function Process:stderr_stream()
  return get_stream(self, 2, "process:stderr_stream")
end

--- process:write_stdin(data): true, nil; or nil, message. Data beyond what
--- the pipe holds is queued and delivered in order by the event loop; the
--- caller waits only while more than 16 MiB is queued.
function Process:write_stdin(data)
  local raw = check_self(self, Process, "process:write_stdin")
  local t = type(data)
  if t == "number" then data = tostring(data) elseif t ~= "string" then
    arg_error("process:write_stdin", 1, "data", "string expected, got " .. t)
  end
  local queued, err = raw:write(data)
  if not queued then return nil, "process:write_stdin: " .. err end
  while raw.stdin_must_wait(queued) do
    local token = raw:stdin_token()
    if not token then return nil, "process:write_stdin: process is closed" end
    sched.wait_token(token, "process:write_stdin")
    queued, err = raw:stdin_queued()
    if not queued then return nil, "process:write_stdin: " .. err end
    if raw:state() ~= "running" then return nil, "process:write_stdin: process is closed" end
  end
  return true, nil
end

--- process:close_stdin(): end-of-file once written data is delivered.
function Process:close_stdin()
  local raw = check_self(self, Process, "process:close_stdin")
  local ok, err = raw:close_stdin()
  if not ok then return nil, "process:close_stdin: " .. err end
  return true, nil
end

Process.__close = function(self) pcall(Process.close, self) end
Process.__tostring = function(self)
  local raw = dgetmt(self).raw
  local pid = raw:pid()
  return string.format("exec.process(%s, %s%s)", raw:command(), raw:state(), pid and (", pid " .. pid) or "")
end

----------------------------------------------------------------------------
-- Stream
----------------------------------------------------------------------------

local CHUNK = 65536

local FORMATS = { l = "l", L = "L", a = "a", ["*l"] = "l", ["*L"] = "L", ["*a"] = "a" }

-- Line reads. Rust puts every whole line available into a queue (a Lua
-- table, st.q[st.qh .. st.qn]) at once, so a line read from the queue
-- costs no call at all. Any other read first gives the queued lines back
-- to the stream, so reads of every kind can be mixed.
local function give_back(raw, st)
  local q, h, n = st.q, st.qh, st.qn
  st.qh, st.qn = 1, 0
  if h <= n then
    local parts = {}
    for i = h, n do parts[#parts + 1] = q[i]; q[i] = nil end
    parts[#parts + 1] = ""
    raw:unread(table.concat(parts, "\n"))
  end
end

-- The next line (with its newline when keep): line | nil (end) | nil, err.
local function next_line(raw, st, keep)
  local q, h = st.q, st.qh
  if h <= st.qn then
    local line = q[h]
    q[h] = nil
    st.qh = h + 1
    if keep then return line .. "\n" end
    return line
  end
  while true do
    local n, last = raw:read_lines(q)
    if n == false then
      sched.wait_token(st.token, "stream:read")
    elseif type(n) == "number" then
      local line = q[1]
      q[1] = nil
      st.qh, st.qn = 2, n
      if keep then return line .. "\n" end
      return line
    elseif n then
      return n -- the last line, which has no newline
    else
      return nil, last
    end
  end
end

-- Call raw[method](raw, arg) until it has an answer, parking the caller on
-- the stream's token while it would block: one call into Rust per attempt.
local function await(raw, st, method, arg)
  while true do
    local data, err = raw[method](raw, arg)
    if data ~= false then return data, err end
    sched.wait_token(st.token, "stream:read")
  end
end

--- stream:read([n | "l" | "L" | "a"]): the next chunk (at most n bytes,
--- 64 KiB by default) as soon as any is available; nil, nil at the end;
--- nil, message on error. "l"/"L" read a line without/with its newline,
--- "a" everything up to the end ("" if nothing is left).
local life = sched.life
function Stream:read(n)
  -- Fast path: the next line of the queue, no call at all.
  local st = dgetmt(self)
  if n == "l" and st ~= nil and st.__index == Stream and not life.closing then
    local h = st.qh
    if h <= st.qn then
      st.qh = h + 1
      return st.q[h]
    end
  end
  local raw
  raw, st = check_self(self, Stream, "stream:read")
  local data, err
  if n == "l" or n == "L" then
    data, err = next_line(raw, st, n == "L")
  elseif n == nil then
    if st.qh <= st.qn then give_back(raw, st) end
    data, err = await(raw, st, "read", CHUNK)
  elseif type(n) == "string" then
    local fmt = FORMATS[n]
    if not fmt then arg_error("stream:read", 1, "n", "invalid format '" .. n .. "' (use a size, \"l\", \"L\" or \"a\")") end
    if fmt == "a" then
      if st.qh <= st.qn then give_back(raw, st) end
      data, err = await(raw, st, "read_all")
    else
      data, err = next_line(raw, st, fmt == "L")
    end
  elseif type(n) ~= "number" then
    arg_error("stream:read", 1, "n", "number or format expected, got " .. type(n))
  elseif n ~= n or n < 1 or n % 1 ~= 0 then
    arg_error("stream:read", 1, "n", "must be a whole number >= 1 (got " .. tostring(n) .. ")")
  else
    if st.qh <= st.qn then give_back(raw, st) end
    data, err = await(raw, st, "read", n > CHUNK and CHUNK or n)
  end
  if data then return data, nil end
  if err then return nil, "stream:read: " .. err end
  return nil, nil
end

--- for line in stream:lines() do ... end: lines without their newline.
--- Raises on a read error (a for loop has no place for a message).
function Stream:lines()
  local raw, st = check_self(self, Stream, "stream:lines")
  local q = st.q
  return function()
    local h = st.qh
    if h <= st.qn then
      st.qh = h + 1
      return q[h] -- (the next batch overwrites the queue: no need to clear)
    end
    check_open()
    local line, err = next_line(raw, st, false)
    if err then error("stream:read: " .. err, 2) end
    return line
  end
end

--- stream:close(): true, nil; idempotent.
function Stream:close()
  local raw = check_self(self, Stream, "stream:close")
  if not raw:closed() then
    local t = raw:token()
    raw:close()
    sched.fire(t)
  end
  return true, nil
end

Stream.__close = function(self) pcall(Stream.close, self) end
Stream.__tostring = function(self)
  return string.format("exec.stream(%s)", dgetmt(self).raw:closed() and "closed" or "open")
end

----------------------------------------------------------------------------
-- One-call capture and shell quoting
----------------------------------------------------------------------------

-- After a timed command's kill grace, how long `run` still waits for its
-- output to end before it stops reading: a process outside the command's
-- group (one that started its own session) may hold the pipes for ever.
local RUN_LINGER = 0.1

-- The body of executor:run and exec.run; `fname` names the caller in errors.
local function run(self, fname, command, options)
  local input
  local opts = nil
  if options ~= nil then
    if type(options) ~= "table" then
      error(string.format("bad argument #2 (options) to '%s': table expected, got %s", fname, type(options)), 3)
    end
    opts = {}
    for k, v in pairs(options) do opts[k] = v end
    input = opts.input
    opts.input = nil
    if input ~= nil and type(input) ~= "string" then
      error(string.format("bad argument #2 (options) to '%s': option input must be a string (got %s)", fname, type(input)), 3)
    end
  end
  -- exec and start do not block once the connection is up (waiting for it
  -- may yield, so it happens outside pcall: Lua 5.1 cannot yield across it).
  local ok, p = pcall(self.exec, self, command, opts)
  if not ok then error((tostring(p):gsub("executor:exec", fname)), 3) end
  local praw, pst = check_self(p, Process, fname)
  local cerr = await_connection(praw)
  if cerr then error(fname .. ": " .. cerr, 3) end
  local started, serr = pcall(p.start, p)
  if not started then error((tostring(serr):gsub("^.-process:start", fname)), 3) end
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
  if not code then error(fname .. ": " .. tostring(werr), 3) end
  return {
    code = code,
    stdout = table.concat(parts.stdout),
    stderr = table.concat(parts.stderr),
    timed_out = pst._timed_out == true,
  }
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
  local ex = M.get("process:native")
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
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

M.Executor, M.Process, M.Stream = Executor, Process, Stream
return M
