//! Where a room lives in Redis: key and channel names.
//!
//! Every key of a room carries the room name as a hash tag (`{room}`), so all of them hash
//! to one slot and the publish script may touch them together on a Redis Cluster too.
//! Room names cannot contain braces, so the tag is the whole name.
//!
//! - `PREFIX:{room}:m`: hash `epoch`, `seq` (last sequence), `hist` ("1" once the room
//!   stored an event): one key, so epoch and sequence are lost or kept together;
//! - `PREFIX:{room}:s`: the stream of retained events, entry id `<seq>-0`, fields `f`
//!   (the frame) and `t` (publish time, Unix ms);
//! - `PREFIX:{room}:c`: the pub/sub channel of live events.

use roomcast_protocol::RoomName;

/// Names keys and channels under one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    pub(crate) fn meta(&self, room: &RoomName) -> String {
        format!("{}:{{{}}}:m", self.prefix, room.as_str())
    }

    pub(crate) fn stream(&self, room: &RoomName) -> String {
        format!("{}:{{{}}}:s", self.prefix, room.as_str())
    }

    pub(crate) fn channel(&self, room: &RoomName) -> String {
        format!("{}:{{{}}}:c", self.prefix, room.as_str())
    }

    /// The room a channel name belongs to.
    pub(crate) fn room_of_channel(&self, channel: &str) -> Option<RoomName> {
        let name = channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:c")?;
        RoomName::parse(name).ok()
    }

    /// The control channel every node subscribes to (supersede and cluster notices).
    pub(crate) fn control(&self) -> String {
        format!("{}:control", self.prefix)
    }

    /// A node's heartbeat key (expires when the node stops refreshing it).
    pub(crate) fn node(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// The set of node ids that registered (live or not; liveness is the heartbeat key).
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A node's connection counts (principal -> count, `*` -> total).
    pub(crate) fn node_connections(&self, node: &str) -> String {
        format!("{}:conns:{node}", self.prefix)
    }

    /// The arena lease: the id of the node that runs the exchange (expires unless renewed).
    pub(crate) fn arena_lease(&self) -> String {
        format!("{}:arena:lease", self.prefix)
    }

    /// A node's request channel (requests to the arena node, replies to the asker).
    pub(crate) fn rpc(&self, node: &str) -> String {
        format!("{}:rpc:{node}", self.prefix)
    }

    /// The hash of a room's members across the cluster (`client_id` -> node id).
    pub(crate) fn presence(&self, room: &RoomName) -> String {
        format!("{}:{{{}}}:p", self.prefix, room.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_names_its_room() {
        let keys = Keys::new("rc");
        let room = RoomName::parse("chat:lobby").expect("room");
        assert_eq!(keys.channel(&room), "rc:{chat:lobby}:c");
        assert_eq!(keys.room_of_channel(&keys.channel(&room)), Some(room));
        assert_eq!(keys.room_of_channel("rc:control"), None);
    }
}
