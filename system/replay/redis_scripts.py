"""Lua scripts that the Redis store runs server-side, each atomically (Redis runs one script at a time).

Key layout of a table (base = "<prefix>:{<table>}", the braces keep a table's keys in one cluster slot):
  base:info           hash   capacity_steps samples_per_insert min_size_to_sample error_buffer shard  (set once)
                             layout head tail steps inserted_steps sampled_steps
                             evicted_chunks evicted_steps positions                            (counters)
  base:index          hash   seq -> "step_offset length payload_start task_id episode_id"
  base:pos            zset   seq scored by the chunk's position: its first step counted over every step
                             ever inserted, so the stored steps are [score of the oldest, inserted_steps)
  base:ep:<episode>   hash   step_offset -> seq            (idempotency and following an episode's chunks)
  base:chunk:<seq>    string encoded chunk (chunk.py); seqs head..tail-1 are stored, in FIFO order
  base:staging:<id>   string a chunk on its way in (lives only inside one MULTI/EXEC)

The rate limiter formulas mirror limiter.py; the sampling arithmetic mirrors store.pick_index and
EmbeddedStore._try_sample, so both backends turn the same random numbers into the same picks. A key or field
that something else overwrote (another type, a counter that is not a number) fails the script with
"CORRUPT <key>: <what>", which the client turns into a ReplayError naming the key.
"""

# Shared Lua: errors naming the key, the counters, the limiter's two questions, index entries, positions.
_COMMON = """
local function corrupt(key, detail)
  error({err = 'CORRUPT ' .. key .. ': ' .. detail})
end
-- redis.call on a key that a foreign write may have given another type: a CORRUPT error naming it.
local function call(key, ...)
  local v = redis.pcall(...)
  if type(v) == 'table' and v.err then corrupt(key, v.err) end
  return v
end
local NUMBERS = {'head', 'tail', 'steps', 'inserted_steps', 'sampled_steps', 'capacity_steps',
  'samples_per_insert', 'min_size_to_sample', 'error_buffer'}
-- nil when the table's settings are missing (server restarted without its data, keys deleted): the client
-- then stores them again and retries.
local function counters(info)
  local v = call(info, 'HMGET', info, 'head', 'tail', 'steps', 'inserted_steps', 'sampled_steps',
    'capacity_steps', 'samples_per_insert', 'min_size_to_sample', 'error_buffer', 'layout')
  if not v[6] then return nil end
  local n = {}
  for i, name in ipairs(NUMBERS) do
    n[i] = 0
    if v[i] then
      n[i] = tonumber(v[i])
      if not n[i] or n[i] ~= n[i] or n[i] == math.huge or n[i] == -math.huge then
        corrupt(info, "field '" .. name .. "' = '" .. string.sub(v[i], 1, 40) .. "' is not a number")
      end
    end
  end
  return {head = n[1], tail = n[2], steps = n[3], inserted = n[4], sampled = n[5], capacity = n[6],
    spi = n[7], min_size = n[8], error_buffer = n[9], layout = v[10] or nil}
end
local function can_insert(c, n)
  if c.spi == 0 or c.steps + n <= c.min_size then return true end
  return (c.inserted + n) * c.spi - c.sampled <= c.spi * c.min_size + c.error_buffer
end
local function can_sample(c, m, counted)
  if c.steps < c.min_size then return false end
  if not counted or c.spi == 0 then return true end
  return c.inserted * c.spi - (c.sampled + m) >= c.spi * c.min_size - c.error_buffer
end
local function parse_entry(entry)
  if not entry then return nil end
  local o, l, p, t, e = string.match(entry, '^(%d+) (%d+) (%d+) (%-?%d+) (.+)$')
  if not o then return nil end
  return {offset = tonumber(o), length = tonumber(l), payload = tonumber(p), task = tonumber(t), episode = e}
end
-- Positions are integers kept as zset scores; '%.0f' keeps every digit (tostring would print 1e+15).
local function int(x) return string.format('%.0f', x) end
-- The position of the oldest stored step (the next position, inserted_steps, when the table is empty).
local function oldest_position(pos, c)
  local first = call(pos, 'ZRANGE', pos, 0, 0, 'WITHSCORES')
  if first[2] then return tonumber(first[2]) end
  return c.inserted
end
"""

# Creates the table's fixed parameters on first use and returns what is stored (the caller compares). Tables
# written before positions existed get them once, from their index.
# KEYS: info, index, pos. ARGV: capacity_steps, samples_per_insert, min_size_to_sample, error_buffer, shard.
INIT_TABLE = _COMMON + """
local info, index, pos = KEYS[1], KEYS[2], KEYS[3]
local names = {'capacity_steps', 'samples_per_insert', 'min_size_to_sample', 'error_buffer', 'shard'}
for i, name in ipairs(names) do call(info, 'HSETNX', info, name, ARGV[i]) end
if call(info, 'HSETNX', info, 'positions', 1) == 1 then
  local c = counters(info)
  local p = c.inserted - c.steps
  for seq = c.head, c.tail - 1 do
    local entry = parse_entry(call(index, 'HGET', index, seq))
    if entry then
      call(pos, 'ZADD', pos, int(p), seq)
      p = p + entry.length
    end
  end
end
return call(info, 'HMGET', info, unpack(names))
"""

# KEYS: info. ARGV: steps. Returns 1 when an insert of that many steps would be allowed now.
CAN_INSERT = _COMMON + """
local c = counters(KEYS[1])
return (not c or can_insert(c, tonumber(ARGV[1]))) and 1 or 0
"""

# Moves a staged chunk into the table (or drops it: duplicate, layout mismatch, rate limited), then evicts
# the oldest chunks until the table fits its capacity. Runs inside the same MULTI/EXEC as the SET of the
# staging key, so nobody ever sees the chunk half-written. Stored steps are counted from positions, so an
# evicted chunk whose index entry is unreadable still leaves the counters right.
# KEYS: info, index, episode hash, staging key, pos.
# ARGV: base, episode_id, step_offset, length, payload_start, task_id, layout, layout without bounds.
COMMIT = _COMMON + """
local info, index, episode, staging, pos = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local base, length = ARGV[1], tonumber(ARGV[4])
local c = counters(info)
if not c then
  redis.call('DEL', staging)
  return {'uninitialised'}
end
local existing = tonumber(call(episode, 'HGET', episode, ARGV[3]))
-- An entry below head is stale (its chunk was evicted while its index entry was unreadable): not stored.
if existing and existing >= c.head then
  redis.call('DEL', staging)
  return {'duplicate', existing}
end
-- A table written before layouts had bounds keeps its bounds-free layout and takes bounded chunks of that shape.
if c.layout and c.layout ~= ARGV[7] and c.layout ~= ARGV[8] then
  redis.call('DEL', staging)
  return {'layout', c.layout}
end
if not can_insert(c, length) then
  redis.call('DEL', staging)
  return {'limited'}
end
local before = c.inserted - oldest_position(pos, c)
local seq = c.tail
local key = base .. ':chunk:' .. seq
redis.call('RENAME', staging, key)
redis.call('PERSIST', key)
call(index, 'HSET', index, seq, table.concat({ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[2]}, ' '))
call(episode, 'HSET', episode, ARGV[3], seq)
call(pos, 'ZADD', pos, int(c.inserted), seq)
local inserted = c.inserted + length
local steps, head, evicted = inserted - oldest_position(pos, c), c.head, 0
while steps > c.capacity and head < seq do
  local old = parse_entry(call(index, 'HGET', index, head))
  if old then
    local chunks = base .. ':ep:' .. old.episode
    if call(chunks, 'HGET', chunks, old.offset) == tostring(head) then call(chunks, 'HDEL', chunks, old.offset) end
  end
  call(index, 'HDEL', index, head)
  redis.call('DEL', base .. ':chunk:' .. head)
  call(pos, 'ZREM', pos, head)
  head = head + 1
  evicted = evicted + 1
  steps = inserted - oldest_position(pos, c)
end
if not c.layout then redis.call('HSET', info, 'layout', ARGV[7]) end
redis.call('HSET', info, 'tail', seq + 1, 'head', head, 'steps', steps, 'inserted_steps', int(inserted))
redis.call('HINCRBY', info, 'evicted_chunks', evicted)
redis.call('HINCRBY', info, 'evicted_steps', before + length - steps)
return {'inserted', seq, evicted}
"""

# Picks sequences of T steps and returns where their bytes are; the client then reads those byte ranges in one
# MULTI/EXEC and drops any sequence whose chunk was evicted in between (chunk keys are never reused).
# Each uniform picks a start step among the stored ones (positions [oldest, inserted_steps)); the chunk
# holding it is the one with the largest position at or below it.
# KEYS: info, index, pos. ARGV: base, T, recency, counted (1/0), want, then one uniform per candidate.
# Returns {'limited'}, {'uninitialised'} or {'ok', layout, stored steps, candidates examined, malformed index
#          entries met, then per sequence: candidate index (0-based), episode, start, task, n_pieces,
#          n_pieces x (seq, first_step, end_step, payload_start, chunk_length)}.
SAMPLE = _COMMON + """
local info, index, pos = KEYS[1], KEYS[2], KEYS[3]
local base, T, recency, counted, want = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1',
  tonumber(ARGV[5])
local c = counters(info)
if not c then return {'uninitialised'} end
if not can_sample(c, want * T, counted) then return {'limited'} end
local oldest = oldest_position(pos, c)
local stored = c.inserted - oldest
local exponent = 1 / (1 + recency)
local out = {'ok', c.layout or '', stored, 0, 0}
local found, examined, malformed = 0, 0, 0
for i = 6, #ARGV do
  if found == want or stored < 1 then break end
  examined = examined + 1
  local k = math.floor(stored * tonumber(ARGV[i]) ^ exponent)
  if k > stored - 1 then k = stored - 1 end
  local target = oldest + k
  local hit = call(pos, 'ZREVRANGEBYSCORE', pos, int(target), '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
  local entry = hit[1] and call(index, 'HGET', index, hit[1])
  local first = parse_entry(entry)
  if entry and not first then malformed = malformed + 1 end
  local offset = first and target - tonumber(hit[2])
  if first and offset < first.length then
    local stop = math.min(first.length, offset + T)
    local pieces = {tonumber(hit[1]), offset, stop, first.payload, first.length}
    local need, next_offset = T - (stop - offset), first.offset + first.length
    local chunks = base .. ':ep:' .. first.episode
    while need > 0 do
      local next_seq = call(chunks, 'HGET', chunks, next_offset)
      local entry = parse_entry(next_seq and call(index, 'HGET', index, next_seq))
      if not entry or entry.offset ~= next_offset then break end
      local take = math.min(need, entry.length)
      for _, v in ipairs({tonumber(next_seq), 0, take, entry.payload, entry.length}) do pieces[#pieces + 1] = v end
      need, next_offset = need - take, next_offset + entry.length
    end
    if need == 0 then
      found = found + 1
      for _, v in ipairs({i - 6, first.episode, first.offset + offset, first.task, #pieces / 5}) do
        out[#out + 1] = v
      end
      for _, v in ipairs(pieces) do out[#out + 1] = v end
    end
  end
end
out[4], out[5] = examined, malformed
if counted and found > 0 then redis.call('HINCRBY', info, 'sampled_steps', found * T) end
return out
"""

# The limiter check and count of a sample whose picks did not count (the sharded store picks on every shard,
# then keeps the first picks in one global order). Runs first in the MULTI/EXEC that reads the picked bytes.
# KEYS: info. ARGV: steps, counted (1/0). Returns 1 (counted, or not counted and allowed) or 0 (limited).
COUNT_SAMPLED = _COMMON + """
local c = counters(KEYS[1])
local m, counted = tonumber(ARGV[1]), ARGV[2] == '1'
if not c or not can_sample(c, m, counted) then return 0 end
if counted then redis.call('HINCRBY', KEYS[1], 'sampled_steps', m) end
return 1
"""
