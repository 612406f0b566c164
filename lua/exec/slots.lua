-- max_processes slots for resources with `queue = true`: a start beyond
-- the limit waits for a slot, first come, first served.
local parts = ...
local core, sched, fifo = parts.core, parts.sched, parts.fifo

local M = {}

-- `queue = true`: starts beyond max_processes wait for a slot, first come,
-- first served. One queue per resource, a fifo of entries { co =, gone = }.
-- A slot is freed when a child is reaped: by a wait() here (which kicks the
-- queue at once) or by the reaper thread after a close() (noticed within
-- the fallback poll interval).
local queues = {}
local FALLBACK_POLL = core.fallback_poll
-- Per resource, the processes started here that hold a slot, by their
-- state tables (weak: a collected handle's child is ended and reaped by the
-- library anyway). Not by the raw userdata: a collected one is finalized
-- (destructed) a collection before a weak table forgets it, while a plain
-- table that nothing reaches leaves the weak table at once.
-- A child that exited while nobody waits for it still holds its slot
-- until it is reaped: a queued start reaps those itself (as status() does).
local holders = {}

local function reap_holders(id)
  local set = holders[id]
  if not set then return end
  for hst in pairs(set) do
    local praw = hst.raw
    if praw:state() ~= "running" or praw:try_wait() ~= false then set[hst] = nil end
  end
end

local function queue_key(id) return "exec.queue:" .. id end

-- Someone of resource `id` may have freed a slot: its queue looks again.
function M.kick(id)
  if id and queues[id] then sched.fire(queue_key(id)) end
end

-- Drop entries from the head whose caller can no longer take its turn: an
-- error took it out of await_slot, or its task was closed while it waited.
local function live_head(q)
  local e = fifo.peek(q)
  while e ~= nil and (e.gone or (e.co and coroutine.status(e.co) == "dead")) do
    fifo.pop(q)
    e = fifo.peek(q)
  end
  return e
end

local function room(raw, id)
  if raw:has_room() then return true end
  reap_holders(id)
  return raw:has_room()
end

function M.await(raw, id, fname)
  local q = queues[id]
  if not q then
    q = fifo.new()
    queues[id] = q
  end
  if live_head(q) == nil and room(raw, id) then return end
  local me = { co = coroutine.running() }
  fifo.push(q, me)
  local clock = sched.clock
  local function wait_turn()
    while true do
      local seen = clock.n
      if live_head(q) == me and room(raw, id) then return end
      sched.wait_token_for(queue_key(id), FALLBACK_POLL, fname .. " (waiting for a max_processes slot)", seen)
    end
  end
  -- An error anywhere in the wait (Ctrl-C, memory) gives up the turn and
  -- goes on unchanged. (Lua 5.1 cannot yield across pcall: there, an error
  -- in a task ends the task, which live_head notices.)
  if sched.yield_across_pcall or not sched.current_task() then
    local ok, err = pcall(wait_turn)
    if not ok then
      me.gone = true
      error(err, 0)
    end
  else
    wait_turn()
  end
  -- Our turn: leave the queue; the next one looks once this start is done.
  fifo.pop(q)
  if fifo.count(q) == 0 then queues[id] = nil end
end

--- Process state `st` of resource `id` holds a slot until it is reaped.
function M.hold(id, st)
  holders[id] = holders[id] or setmetatable({}, { __mode = "k" })
  holders[id][st] = true
end

return M
