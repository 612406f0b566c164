-- time.sleep / time.after / time.parse_duration over the scheduler's timers.
local parts = ...
local sched, channel = parts.sched, parts.channel
local raise = sched.raise

local M = {}

-- Go's limit: a duration is an int64 of nanoseconds (about 292 years).
local MAX_SECONDS = 9223372036.854775807

local UNITS = { ns = 1e-9, us = 1e-6, ["\194\181s"] = 1e-6, ["\206\188s"] = 1e-6, ms = 1e-3, s = 1, m = 60, h = 3600 }

local function invalid(d, why)
  local shown = type(d) == "string" and ("'" .. sched.shown(d) .. "'") or tostring(d)
  return nil, "invalid duration " .. shown .. (why and (" (" .. why .. ")") or "")
end

--- Seconds in `d`: a number of seconds, or a Go duration string such as
--- "1s", "250ms", "1m30s", "1.5h" (units ns, us, ms, s, m, h). Returns
--- nil and why not for anything else.
local function parse(d)
  local t = type(d)
  if t == "number" then
    if d ~= d then return invalid(d, "not a number") end
    if d < 0 then return invalid(d, "negative") end
    if d > MAX_SECONDS then return invalid(d, "out of range") end
    return d
  end
  if t ~= "string" then
    return nil, "duration must be a string such as \"1s\" or a number of seconds (got " .. t .. ")"
  end
  local s = d
  local sign = 1
  local first = s:sub(1, 1)
  if first == "-" or first == "+" then
    if first == "-" then sign = -1 end
    s = s:sub(2)
  end
  if s == "0" then return 0 end
  if s == "" then return invalid(d) end
  local total, pos = 0, 1
  while pos <= #s do
    local num, unit, nxt = s:match("^(%d*%.?%d*)([^%d%.]+)()", pos)
    if not num or num == "" or num == "." then return invalid(d) end
    local factor = UNITS[unit]
    if not factor then return invalid(d, "unknown unit '" .. sched.shown(unit) .. "'") end
    total = total + tonumber(num) * factor
    pos = nxt
  end
  if sign < 0 and total > 0 then return invalid(d, "negative") end
  if total > MAX_SECONDS then return invalid(d, "out of range") end
  return total
end
M._parse = parse -- internal: seconds | nil, why

--- Seconds in `d`, or raise "<fname>: why" (at the caller's line).
local function seconds(d, fname)
  local secs, why = parse(d)
  if not secs then raise(fname .. ": " .. why) end
  return secs
end
M._seconds = seconds -- internal: (d, function name for messages)

function M.parse_duration(d)
  return seconds(d, "time.parse_duration")
end

--- Block the caller (only its task, inside a task) for `d`.
function M.sleep(d)
  local s = seconds(d, "time.sleep")
  sched.sleep(s)
end

--- A channel that receives `true` once, after `d`: for select with a timeout.
function M.after(d)
  local s = seconds(d, "time.after")
  local ch = channel.new(1)
  sched.at(sched.now() + s, function() if not ch:is_closed() then ch:send(true) end end)
  return ch
end

--- Monotonic clock, in seconds.
function M.now()
  return sched.now()
end

return M
