//! The two Lua scripts that make Redis the cluster's sequencer and history.
//!
//! `PUBLISH_SCRIPT` runs once per event and does, atomically: start a new epoch if the
//! room's state is missing (never existed, expired, evicted, flushed, or Redis restarted
//! without persistence) or its stream was lost while its hash says it had one; `HINCRBY`
//! the sequence; splice sequence and epoch into the frame the node encoded around them
//! ([`roomcast_protocol::server::EventParts`]); `XADD` it (capped with `MAXLEN ~`) when the
//! room keeps history; refresh the keys' TTL; `PUBLISH` `origin \n frame` on the room's
//! channel. Redis runs scripts one at a time, so a room's channel order is its sequence
//! order on every node, and the bytes published are the bytes every node writes to its
//! sockets.
//!
//! `LOAD_SCRIPT` reads a room's head and retained events for a node that starts mirroring
//! it, creating the epoch the same way if it is missing, so the node and the next publish
//! agree on it.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: meta, stream. ARGV: channel, prefix, infix, suffix, max_events, ttl_ms,
/// candidate epoch, origin, unix_ms. Returns `{epoch, seq}` as strings.
pub(crate) static PUBLISH_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local maxlen = tonumber(ARGV[5])
if (not epoch) or (redis.call('HGET', KEYS[1], 'hist') == '1' and redis.call('EXISTS', KEYS[2]) == 0) then
  epoch = ARGV[7]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
local frame = ARGV[2] .. seq .. ARGV[3] .. epoch .. ARGV[4]
if maxlen > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, seq .. '-0', 'f', frame, 't', ARGV[9])
  redis.call('HSET', KEYS[1], 'hist', '1')
  redis.call('PEXPIRE', KEYS[2], ARGV[6])
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[1], ARGV[8] .. '\n' .. frame)
return {epoch, tostring(seq)}
"#,
    )
});

/// KEYS: meta, stream. ARGV: candidate epoch, ttl_ms, max_events. Returns
/// `{epoch, seq, id1, t1, f1, id2, t2, f2, ...}` as strings, newest event first.
pub(crate) static LOAD_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if (not epoch) or (redis.call('HGET', KEYS[1], 'hist') == '1' and redis.call('EXISTS', KEYS[2]) == 0) then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local out = {epoch, tostring(redis.call('HGET', KEYS[1], 'seq'))}
if tonumber(ARGV[3]) > 0 then
  local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', ARGV[3])
  for _, e in ipairs(entries) do
    local fields = e[2]
    local f, t = '', '0'
    for i = 1, #fields, 2 do
      if fields[i] == 'f' then f = fields[i + 1] elseif fields[i] == 't' then t = fields[i + 1] end
    end
    table.insert(out, e[1])
    table.insert(out, t)
    table.insert(out, f)
  end
end
return out
"#,
    )
});

/// KEYS: meta. ARGV: candidate epoch, ttl_ms. Returns `{epoch, seq}` as strings: the
/// room's head without its events, creating the epoch like `LOAD_SCRIPT` when missing.
/// (A room that keeps history and lost its stream gets a new epoch on its next load or
/// publish; the head read here then names the old epoch, and a client resuming from it
/// gets `recovery_failed` rather than a silent skip.)
pub(crate) static HEAD_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return {epoch, tostring(redis.call('HGET', KEYS[1], 'seq'))}
"#,
    )
});

/// KEYS: lease. ARGV: claimant, ttl_ms. Takes the lease when it is free, extends it when
/// the claimant holds it; returns the holder either way.
pub(crate) static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return holder
"#,
    )
});

/// KEYS: lease. ARGV: holder. Deletes the lease only if `holder` still holds it.
pub(crate) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#,
    )
});
