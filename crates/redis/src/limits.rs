//! Connection limits across the cluster: the per-principal and total limits (4022) count
//! the connections of every live node, not just this one.
//!
//! Each node keeps a hash of its own connections (`PREFIX:conns:NODE`, principal ->
//! count, `*` -> total) and is listed in `PREFIX:nodes`. [`ACQUIRE_SCRIPT`] sums the
//! hashes of the nodes whose heartbeat key is alive (a dead node's are ignored, and the
//! node is dropped from the list), refuses past a limit, or counts the new connection in
//! this node's hash, atomically, so two nodes cannot both take the last slot. A
//! [`ClusterSlot`] gives its count back when dropped.
//!
//! While Redis is unreachable a connection is admitted on the node's own limits only
//! (availability over strictness); after Redis lost its data the counts restart from
//! the connections made since.

use std::sync::{Arc, LazyLock};

use redis::Script;
use roomcast_engine::limits::LimitExceeded;

use crate::{ClusterError, Node};

/// KEYS: node list, this node's hash. ARGV: principal, max per principal (0 = none),
/// max total (0 = none), heartbeat key prefix, hash prefix, hash TTL ms. Returns 0 when
/// admitted, 1 past the per-principal limit, 2 past the total.
static ACQUIRE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local mine, total = 0, 0
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = ARGV[5] .. n
  if h == KEYS[2] or redis.call('EXISTS', ARGV[4] .. n) == 1 then
    mine = mine + tonumber(redis.call('HGET', h, ARGV[1]) or '0')
    total = total + tonumber(redis.call('HGET', h, '*') or '0')
  else
    redis.call('SREM', KEYS[1], n)
  end
end
if tonumber(ARGV[2]) > 0 and mine >= tonumber(ARGV[2]) then return 1 end
if tonumber(ARGV[3]) > 0 and total >= tonumber(ARGV[3]) then return 2 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HINCRBY', KEYS[2], '*', 1)
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 0
"#,
    )
});

/// KEYS: this node's hash. ARGV: principal.
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for _, f in ipairs({ARGV[1], '*'}) do
  if tonumber(redis.call('HINCRBY', KEYS[1], f, -1)) <= 0 then redis.call('HDEL', KEYS[1], f) end
end
return 0
"#,
    )
});

/// A connection counted in Redis; dropping it gives the count back (in the background).
#[derive(Debug)]
pub struct ClusterSlot {
    node: Arc<Node>,
    principal: String,
}

impl Drop for ClusterSlot {
    fn drop(&mut self) {
        let node = self.node.clone();
        let principal = std::mem::take(&mut self.principal);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut conn = node.conn.clone();
                let mut release = RELEASE_SCRIPT.key(node.keys.node_connections(&node.id));
                release.arg(principal);
                let _ = node.timed(release.invoke_async::<i64>(&mut conn)).await;
            });
        }
    }
}

/// Counts a connection of `principal` against the cluster's limits.
pub(crate) async fn acquire(
    node: &Arc<Node>,
    principal: &str,
    max_per_principal: usize,
    max_total: usize,
) -> Result<Result<ClusterSlot, LimitExceeded>, ClusterError> {
    let mut conn = node.conn.clone();
    let verdict: i64 = node
        .timed(
            ACQUIRE_SCRIPT
                .key(node.keys.nodes())
                .key(node.keys.node_connections(&node.id))
                .arg(principal)
                .arg(max_per_principal)
                .arg(max_total)
                .arg(node.keys.node(""))
                .arg(node.keys.node_connections(""))
                .arg(crate::presence::NODE_TTL.as_millis() as u64 * 10)
                .invoke_async(&mut conn),
        )
        .await?;
    Ok(match verdict {
        0 => Ok(ClusterSlot {
            node: node.clone(),
            principal: principal.to_owned(),
        }),
        1 => Err(LimitExceeded::PerPrincipal {
            max: max_per_principal,
        }),
        _ => Err(LimitExceeded::Total { max: max_total }),
    })
}

/// Live nodes and their connection counts, sorted by node id.
pub(crate) async fn nodes(node: &Node) -> Result<Vec<(String, u64)>, ClusterError> {
    let mut conn = node.conn.clone();
    let mut members = redis::cmd("SMEMBERS");
    members.arg(node.keys.nodes());
    let mut ids: Vec<String> = node.timed(members.query_async(&mut conn)).await?;
    ids.sort();
    let mut pipe = redis::pipe();
    for id in &ids {
        pipe.cmd("EXISTS").arg(node.keys.node(id));
        pipe.cmd("HGET")
            .arg(node.keys.node_connections(id))
            .arg("*");
    }
    let replies: Vec<Option<u64>> = node.timed(pipe.query_async(&mut conn)).await?;
    Ok(ids
        .into_iter()
        .zip(replies.chunks(2))
        .filter(|(_, r)| r.first().copied().flatten().unwrap_or(0) == 1)
        .map(|(id, r)| (id, r.get(1).copied().flatten().unwrap_or(0)))
        .collect())
}
