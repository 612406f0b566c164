-- The resource registry from Lua: define, kind, load (resource files are
-- data), and exec.get.
local parts = ...
local core, O = parts.core, parts.object
local arg_error, new_object = O.arg_error, O.new_object
local check_open, dgetmt, raise = O.check_open, O.dgetmt, O.raise
local Executor = O.Executor
local unpack = table.unpack or unpack

local M = {}

----------------------------------------------------------------------------
-- Registry
----------------------------------------------------------------------------

local registry = {}
M.registry = registry

-- Argument names for the bad-argument messages of define.
local DEFINE_ARGS = { "id", "config" }

--- exec.registry.define(id, config): config.kind is required. The id and
--- every option are checked by Rust (src/binding/convert.rs).
function registry.define(id, config)
  check_open()
  local ok, err, code, n = core.define(id, config)
  if not ok then O.failed("exec.registry.define", err, code, n, DEFINE_ARGS, true) end
  return true
end

--- The kind of a defined resource, or nil.
function registry.kind(id)
  check_open()
  if type(id) ~= "string" then arg_error("exec.registry.kind", 1, "id", "string expected, got " .. type(id)) end
  return core.kind(id)
end

-- What a resource file may hold, and may make us do.
-- VM instructions a Lua resource file may take: data needs about one per
-- token, so a budget that grows with the file never stops data, and stops
-- a loop at once.
local LOAD_BASE_BUDGET = 1000000
-- Bytes the state's memory may grow by while a Lua resource file is
-- evaluated (src/binding/memory_limit.rs): an expression can take much
-- more memory than instructions (s = s .. s doubles it at each step).
local LOAD_MAX_MEMORY = core.registry_memory_limit
local fatal = O.fatal

-- Options that make ssh (or us) run local programs or load code: only from
-- a file the caller trusts (`exec.registry.load(path, { trust = true })`).
-- For exec.docker also those that hand the host's files or privileges to
-- the commands.
local TRUSTED_ONLY = {
  ssh_command = "runs local programs", ssh_config_file = "runs local programs",
  engine = "runs local programs", engine_args = "runs local programs", engine_env = "runs local programs",
  volumes = "hands host files to the commands", cap_add = "hands privileges to the commands",
}
local TRUSTED_ONLY_SSH = {
  proxycommand = true, localcommand = true, knownhostscommand = true, permitlocalcommand = true,
  match = true, pkcs11provider = true, securitykeyprovider = true, proxyusefdpass = true,
}

local function check_untrusted(id, cfg)
  for k in pairs(cfg) do
    if TRUSTED_ONLY[k] then
      return "option " .. k .. " " .. TRUSTED_ONLY[k] .. ": refused from a file unless it is loaded with { trust = true }"
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
-- within an instruction budget and a memory limit.
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
    if budget < 0 then raise("takes too long to evaluate (a resource file is data, not a program)") end
  end, "", 1000)
  local smt = dgetmt("")
  local string_index = smt and smt.__index
  if smt then smt.__index = nil end
  -- (This pcall only puts the string methods back: its error goes on.)
  local called, within, resumed, ok, v = pcall(core.within_memory, LOAD_MAX_MEMORY, coroutine.resume, co)
  if smt then smt.__index = string_index end
  debug.sethook(co, unpack(old_hook, 1, 3))
  if not called then error(within, 0) end
  if not within then
    return nil, "takes more than " .. LOAD_MAX_MEMORY .. " bytes of memory to evaluate (a resource file is data, not a program)"
  end
  if not resumed then error(ok, 0) end
  if not ok then
    -- An interrupt (LuaJIT runs the Ctrl-C hook in the file's coroutine),
    -- or running out of memory short of the limit, is not the file's.
    if fatal(v) then error(v, 0) end
    return nil, tostring(v)
  end
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
    if k ~= "trust" then arg_error(fname, 2, "options", "unknown option '" .. O.shown(k) .. "'") end
    if type(v) ~= "boolean" then arg_error(fname, 2, "options", "option trust must be a boolean (got " .. type(v) .. ")") end
    trust = v
  end
  -- Read in Rust: only a regular file, never blocking (a FIFO would hold
  -- the program in open(2), where even Ctrl-C cannot end it).
  local shown_path = O.shown(path)
  local text, rerr = core.read_data_file(path)
  if not text then raise(fname .. ": " .. shown_path .. ": " .. rerr) end
  local data, perr
  if path:lower():match("%.json$") then
    data, perr = core.json_decode(text)
  else
    data, perr = load_lua_table(text, path)
  end
  if perr then raise(fname .. ": " .. shown_path .. ": " .. perr) end
  if type(data) ~= "table" then
    raise(fname .. ": " .. shown_path .. ": expected a table of resources (got " .. type(data) .. ")")
  end
  local ids = {}
  for id, cfg in pairs(data) do
    if type(id) ~= "string" then
      raise(fname .. ": " .. shown_path .. ": resource ids must be strings (got " .. type(id) .. ")")
    end
    if type(cfg) ~= "table" then
      raise(fname .. ": " .. shown_path .. ": resource '" .. O.shown(id) .. "' must be a table (got " .. type(cfg) .. ")")
    end
    if not trust then
      local refused = check_untrusted(id, cfg)
      if refused then raise(fname .. ": " .. shown_path .. ": resource '" .. O.shown(id) .. "': " .. refused) end
    end
    ids[#ids + 1] = id
  end
  table.sort(ids)
  local done = {}
  for _, id in ipairs(ids) do
    local ok, err = core.define(id, data[id])
    if not ok then
      for _, d in ipairs(done) do core.undefine(d) end
      raise(fname .. ": " .. shown_path .. ": resource '" .. O.shown(id) .. "': " .. err)
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
  if not raw then raise(fname .. ": " .. err) end
  return new_object(Executor, { raw = raw })
end

return M
