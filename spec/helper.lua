-- Shared helpers for the busted specs. exec.so is found through LUA_CPATH,
-- which scripts/test.sh points at the build for the running interpreter.
local exec = require("exec")

local H = {}

H.exec = exec
H.is_luajit = rawget(_G, "jit") ~= nil
-- The interpreter running the specs, to start more of the same.
H.lua = H.is_luajit and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
-- `local x <close>` exists from Lua 5.4 on.
H.has_close = _VERSION >= "Lua 5.4" and not H.is_luajit
H.native = exec.get("process:native")

--- Run `cmd` (string or argv) to completion: stdout, stderr, exit code.
function H.run(cmd, opts)
  local p = H.native:exec(cmd, opts)
  p:start()
  local out, err = {}, {}
  local done = exec.channel.new(2)
  local function pump(stream, acc)
    exec.spawn(function()
      while true do
        local chunk = stream:read()
        if not chunk then break end
        acc[#acc + 1] = chunk
      end
      done:send(true)
    end)
  end
  pump(p:stdout_stream(), out)
  pump(p:stderr_stream(), err)
  done:receive()
  done:receive()
  local code = p:wait()
  return table.concat(out), table.concat(err), code
end

--- Read a whole stream.
function H.read_all(stream)
  local acc = {}
  while true do
    local chunk, err = stream:read()
    if not chunk then
      assert(err == nil, err)
      break
    end
    acc[#acc + 1] = chunk
  end
  return table.concat(acc)
end

local tmp_n = 0
function H.tmpname(suffix)
  tmp_n = tmp_n + 1
  return string.format("/tmp/lua-exec-spec-%d-%d%s", H.own_pid(), tmp_n, suffix or "")
end

function H.write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

function H.read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local t = f:read("*a")
  f:close()
  return t
end

--- Our own pid (from /proc/self, which is the interpreter).
local own_pid
function H.own_pid()
  if not own_pid then
    local f = assert(io.open("/proc/self/stat"))
    own_pid = tonumber(f:read("*l"):match("^(%d+)"))
    f:close()
  end
  return own_pid
end

--- State letter of a pid from /proc (R, S, Z, ...), or nil if it is gone.
function H.proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil end
  local line = f:read("*l") or ""
  f:close()
  return line:match("^%d+ %b() (%a)")
end

--- True once `pid` is neither running nor a zombie, waiting up to `secs`.
function H.gone(pid, secs)
  local deadline = exec.time.now() + (secs or 5)
  repeat
    if H.proc_state(pid) == nil then return true end
    exec.time.sleep(0.01)
  until exec.time.now() > deadline
  return false
end

--- Number of processes whose command line holds `marker` (the first
--- letter in brackets, so that the shell running pgrep does not match).
function H.running(marker)
  local pattern = "[" .. marker:sub(1, 1) .. "]" .. marker:sub(2)
  local p = io.popen("pgrep -f -- " .. exec.quote(pattern) .. " | wc -l")
  local n = tonumber(p:read("*a"))
  p:close()
  return n
end

--- True once no process holds `marker`, waiting up to `secs` for them to go.
function H.settle_gone(marker, secs)
  local deadline = exec.time.now() + (secs or 5)
  while H.running(marker) > 0 and exec.time.now() < deadline do exec.time.sleep(0.05) end
  return H.running(marker) == 0
end

--- Open descriptors of this interpreter: their number, and a listing
--- (number -> target) for messages.
---
--- The listing is made by `ls` started with io.popen, which shows popen's
--- own pipe too; and io.popen closes the child's end of that pipe only
--- after the child runs, so `ls` can (rarely) see both ends. Hence a short
--- pause before listing, and the smallest of three listings.
function H.fd_count()
  collectgarbage()
  collectgarbage()
  local best_n, best_list
  for _ = 1, 3 do
    local p = io.popen("sleep 0.01; ls -l /proc/" .. H.own_pid() .. "/fd")
    local n, list = 0, {}
    for line in p:lines() do
      local fd, target = line:match("(%d+) %-> (.*)$")
      if fd then
        n = n + 1
        list[#list + 1] = fd .. "->" .. target
      end
    end
    p:close()
    if not best_n or n < best_n then best_n, best_list = n, list end
  end
  return best_n, table.concat(best_list, " ")
end

--- Run a Lua script in a fresh interpreter (same kind as ours, same
--- LUA_CPATH). Returns its combined output and exit status.
function H.run_script(code, prefix)
  local path = H.tmpname(".lua")
  H.write_file(path, code)
  local p = io.popen((prefix or "") .. H.lua .. " " .. path .. " 2>&1; echo \"EXIT=$?\"")
  local out = p:read("*a")
  p:close()
  os.remove(path)
  local status = tonumber(out:match("EXIT=(%d+)%s*$"))
  return out:gsub("EXIT=%d+%s*$", ""), status
end

--- Run `body` (Lua source) in a fresh interpreter, killed after `limit` s
--- (default 20), so that a case that hangs fails instead of stalling the
--- suite. `exec`, `time` and `H` (this helper) are set up for it.
--- `opts.shell` is shell text run before (ulimit), `opts.wrap` a command
--- that runs the interpreter. Returns the combined output and exit status.
function H.script(body, limit, opts)
  opts = opts or {}
  local code = "package.path = './?.lua;' .. package.path\n" ..
    "local exec = require('exec'); local time = require('time'); local H = require('spec.helper')\n" ..
    "io.stdout:setvbuf('line')\n" .. body
  return H.run_script(code, (opts.shell or "") .. "timeout -s KILL " .. (limit or 20) .. " " .. (opts.wrap or ""))
end

--- `H.script(body, limit)` for a case that must pass: it must end with
--- status 0 and print OK last (added here). Returns its output.
function H.passes(body, limit)
  local out, status = H.script(body .. "\nprint('OK')\n", limit or 20)
  -- (Plain error: busted's assert lives in the spec files' environment.)
  if status ~= 0 or not out:find("OK\n$") then
    error("the case failed (exit status " .. tostring(status) .. "):\n" .. out, 2)
  end
  return out
end

--- Start a throwaway sshd on 127.0.0.1 (scripts/sshd.sh) with its files in
--- `dir`: its port and the user to log in as.
function H.sshd_start(dir)
  local r = os.execute("sh scripts/sshd.sh start " .. dir .. " >" .. dir .. ".out 2>&1")
  assert(r == true or r == 0, "scripts/sshd.sh failed: " .. tostring(H.read_file(dir .. ".out")))
  return tonumber(H.read_file(dir .. "/port")), (H.read_file(dir .. "/user"):gsub("%s+$", ""))
end

--- Stop the sshd of `dir` and remove its files.
function H.sshd_stop(dir)
  os.execute("sh scripts/sshd.sh stop " .. dir)
  os.execute("rm -rf " .. dir .. " " .. dir .. ".out")
end

--- Whether we run as root (what the container specs need for podman).
function H.is_root()
  local p = io.popen("id -u")
  local uid = p:read("*l")
  p:close()
  return uid == "0"
end

--- A private podman (scripts/podman.sh) with its storage, run state and
--- configuration in `dir`: the global arguments it takes, the client's
--- environment (its containers.conf) and the test image. Raises if it
--- cannot be set up.
function H.podman_start(dir)
  local r = os.execute("timeout 300 sh scripts/podman.sh start " .. dir .. " >" .. dir .. ".out 2>&1")
  assert(r == true or r == 0, "scripts/podman.sh failed: " .. tostring(H.read_file(dir .. ".out")))
  os.remove(dir .. ".out")
  local args = {}
  for line in io.lines(dir .. "/args") do args[#args + 1] = line end
  return args, { CONTAINERS_CONF = dir .. "/containers.conf" }, (H.read_file(dir .. "/image"):gsub("%s+$", ""))
end

--- The ids of the containers that exist in the podman of `dir`.
function H.podman_ps(dir)
  local p = io.popen("timeout 60 sh scripts/podman.sh ps " .. dir .. " 2>&1")
  local ids = {}
  for line in p:lines() do ids[#ids + 1] = line end
  p:close()
  return ids
end

--- Run podman of `dir` with `args` (a list): its output and whether it
--- succeeded.
function H.podman(dir, args)
  local q = {}
  for i, a in ipairs(args) do q[i] = exec.quote(a) end
  local p = io.popen("timeout 60 sh scripts/podman.sh podman " .. dir .. " " .. table.concat(q, " ") .. " </dev/null 2>&1")
  local out = p:read("*a")
  local ok = p:close()
  return out, ok == true or ok == 0
end

--- Remove every container of the podman of `dir`, and `dir`.
function H.podman_stop(dir)
  os.execute("timeout 120 sh scripts/podman.sh stop " .. dir)
end

--- Children of the interpreter `pid` that are zombies.
function H.zombies_of(pid)
  local n = 0
  local p = io.popen("cat /proc/[0-9]*/stat 2>/dev/null")
  for line in p:lines() do
    local state, ppid = line:match("^%d+ %(.*%) (%a) (%d+)")
    if state == "Z" and tonumber(ppid) == pid then n = n + 1 end
  end
  p:close()
  return n
end

--- Resident memory of this interpreter, in KiB.
function H.rss_kib()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- Wait until the library holds no child (the reaper has finished).
function H.children_settle(secs)
  local core = exec._internal.core
  local deadline = exec.time.now() + (secs or 10)
  while core.live_children() > 0 and exec.time.now() < deadline do
    exec.time.sleep(0.02)
  end
  return core.live_children()
end

--- Scale for long runs: `make stress` sets LUA_EXEC_STRESS=1.
H.stress = os.getenv("LUA_EXEC_STRESS") == "1"

return H
