"""Lua scripts that the Redis store runs server-side, each atomically (Redis runs one script at a time).

Key layout of a table (base = "<prefix>:{<table>}", the braces keep a table's keys in one cluster slot):
  base:info           hash   capacity_steps samples_per_insert min_size_to_sample error_buffer   (set once)
                             layout head tail steps max_len inserted_steps sampled_steps
                             evicted_chunks evicted_steps                                        (counters)
  base:index          hash   seq -> "step_offset length payload_start task_id episode_id"
  base:ep:<episode>   hash   step_offset -> seq            (idempotency and following an episode's chunks)
  base:chunk:<seq>    string encoded chunk (chunk.py); seqs head..tail-1 are stored, in FIFO order
  base:staging:<id>   string a chunk on its way in (lives only inside one MULTI/EXEC)

The rate limiter formulas mirror limiter.py; the sampling arithmetic mirrors store.pick_index and
EmbeddedStore._try_sample, so both backends turn the same random numbers into the same picks.
"""

# Creates the table's fixed parameters on first use; returns what is stored (the caller compares).
# KEYS: info. ARGV: capacity_steps, samples_per_insert, min_size_to_sample, error_buffer.
INIT_TABLE = """
local names = {'capacity_steps', 'samples_per_insert', 'min_size_to_sample', 'error_buffer'}
for i, name in ipairs(names) do redis.call('HSETNX', KEYS[1], name, ARGV[i]) end
return redis.call('HMGET', KEYS[1], unpack(names))
"""

# Shared Lua: read the counters, and the limiter's two questions.
_COMMON = """
-- nil when the table's settings are missing (server restarted without its data, keys deleted): the client
-- then stores them again and retries.
local function counters(info)
  local v = redis.call('HMGET', info, 'head', 'tail', 'steps', 'inserted_steps', 'sampled_steps',
    'capacity_steps', 'samples_per_insert', 'min_size_to_sample', 'error_buffer', 'max_len', 'layout')
  if not v[6] then return nil end
  return {head = tonumber(v[1] or 0), tail = tonumber(v[2] or 0), steps = tonumber(v[3] or 0),
    inserted = tonumber(v[4] or 0), sampled = tonumber(v[5] or 0), capacity = tonumber(v[6]),
    spi = tonumber(v[7]), min_size = tonumber(v[8]), error_buffer = tonumber(v[9]),
    max_len = tonumber(v[10] or 0), layout = v[11]}
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
"""

# KEYS: info. ARGV: steps. Returns 1 when an insert of that many steps would be allowed now.
CAN_INSERT = _COMMON + """
local c = counters(KEYS[1])
return (not c or can_insert(c, tonumber(ARGV[1]))) and 1 or 0
"""

# Moves a staged chunk into the table (or drops it: duplicate, layout mismatch, rate limited), then evicts
# the oldest chunks until the table fits its capacity. Runs inside the same MULTI/EXEC as the SET of the
# staging key, so nobody ever sees the chunk half-written.
# KEYS: info, index, episode hash, staging key.
# ARGV: base, episode_id, step_offset, length, payload_start, task_id, layout.
COMMIT = _COMMON + """
local info, index, episode, staging = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local base, length = ARGV[1], tonumber(ARGV[4])
local existing = redis.call('HGET', episode, ARGV[3])
if existing then
  redis.call('DEL', staging)
  return {'duplicate', tonumber(existing)}
end
local c = counters(info)
if not c then
  redis.call('DEL', staging)
  return {'uninitialised'}
end
if c.layout and c.layout ~= ARGV[7] then
  redis.call('DEL', staging)
  return {'layout', c.layout}
end
if not can_insert(c, length) then
  redis.call('DEL', staging)
  return {'limited'}
end
local seq = c.tail
local key = base .. ':chunk:' .. seq
redis.call('RENAME', staging, key)
redis.call('PERSIST', key)
redis.call('HSET', index, seq, table.concat({ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[2]}, ' '))
redis.call('HSET', episode, ARGV[3], seq)
local steps, head, evicted, evicted_steps = c.steps + length, c.head, 0, 0
while steps > c.capacity and head < seq do
  local old = parse_entry(redis.call('HGET', index, head))
  if old then
    redis.call('HDEL', base .. ':ep:' .. old.episode, old.offset)
    steps = steps - old.length
    evicted_steps = evicted_steps + old.length
  end
  redis.call('HDEL', index, head)
  redis.call('DEL', base .. ':chunk:' .. head)
  head = head + 1
  evicted = evicted + 1
end
redis.call('HSET', info, 'layout', ARGV[7], 'tail', seq + 1, 'head', head, 'steps', steps,
  'max_len', math.max(c.max_len, length))
redis.call('HINCRBY', info, 'inserted_steps', length)
redis.call('HINCRBY', info, 'evicted_chunks', evicted)
redis.call('HINCRBY', info, 'evicted_steps', evicted_steps)
return {'inserted', seq, evicted}
"""

# Picks sequences of T steps and returns where their bytes are; the client then reads those byte ranges in one
# MULTI/EXEC and drops any sequence whose chunk was evicted in between (chunk keys are never reused).
# KEYS: info, index. ARGV: base, T, recency, counted (1/0), want, then pairs of uniforms (u_chunk, u_offset).
# Returns {'limited'} or {'ok', layout, then per sequence: episode, start, task, n_pieces,
#          n_pieces x (seq, first_step, end_step, payload_start, chunk_length)}.
SAMPLE = _COMMON + """
local info, index = KEYS[1], KEYS[2]
local base, T, recency, counted, want = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1',
  tonumber(ARGV[5])
local c = counters(info)
if not c then return {'uninitialised'} end
if not can_sample(c, want * T, counted) then return {'limited'} end
local count, exponent = c.tail - c.head, 1 / (1 + recency)
local out, found = {'ok', c.layout}, 0
for i = 6, #ARGV - 1, 2 do
  if found == want then break end
  local k = math.floor(count * tonumber(ARGV[i]) ^ exponent)
  if k > count - 1 then k = count - 1 end
  local seq = c.head + k
  local first = parse_entry(redis.call('HGET', index, seq))
  local offset = math.floor(tonumber(ARGV[i + 1]) * c.max_len)
  if first and offset < first.length then
    local stop = math.min(first.length, offset + T)
    local pieces = {seq, offset, stop, first.payload, first.length}
    local need, next_offset = T - (stop - offset), first.offset + first.length
    local chunks = base .. ':ep:' .. first.episode
    while need > 0 do
      local next_seq = redis.call('HGET', chunks, next_offset)
      local entry = parse_entry(next_seq and redis.call('HGET', index, next_seq))
      if not entry or entry.offset ~= next_offset then break end
      local take = math.min(need, entry.length)
      for _, v in ipairs({tonumber(next_seq), 0, take, entry.payload, entry.length}) do pieces[#pieces + 1] = v end
      need, next_offset = need - take, next_offset + entry.length
    end
    if need == 0 then
      found = found + 1
      for _, v in ipairs({first.episode, first.offset + offset, first.task, #pieces / 5}) do out[#out + 1] = v end
      for _, v in ipairs(pieces) do out[#out + 1] = v end
    end
  end
end
if counted and found > 0 then redis.call('HINCRBY', info, 'sampled_steps', found * T) end
return out
"""
