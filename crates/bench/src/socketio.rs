//! Just enough of Socket.IO 4 (Engine.IO protocol 4, WebSocket transport only) for the
//! bench to load a Socket.IO server with the same messages it sends roomcast.
//!
//! Why a dialect and not a separate generator: the comparison is only fair when the same
//! generator, with the same counting, pacing and cost per message, drives every server.
//! So a Socket.IO connection speaks the roomcast JSON protocol *inside* Socket.IO: every
//! message is the single argument of an event named `m` (`42["m",{…}]`), and the peer in
//! `bench/peers/socketio` answers in kind. What differs from a plain WebSocket server is
//! Socket.IO's own: its handshake (the Engine.IO `open` packet, then the namespace
//! `connect` and its answer, one extra round trip), 8 bytes of packet framing around each
//! message, and Engine.IO's heartbeat (the server sends `2`, the client answers `3`), which
//! [`crate::ws::WsConn`] answers by itself. Polling, binary attachments, acks and
//! namespaces other than `/` are not spoken.

use std::ops::Range;
use std::time::Duration;

use crate::conn::ConnectError;
use crate::ws::{Dialect, Kind, WsConn};

/// What precedes a message: an event packet (`4` message, `2` event) named `m`.
pub(crate) const EVENT_HEAD: &[u8] = br#"42["m","#;
/// What follows it.
pub(crate) const EVENT_TAIL: &[u8] = b"]";
/// Engine.IO ping, sent by the server.
const PING: &[u8] = b"2";
/// Engine.IO pong, the client's answer.
pub(crate) const PONG: &[u8] = b"3";
/// Socket.IO `connect` to the main namespace, sent by the client after `open`.
const CONNECT: &[u8] = b"40";

/// One text frame of a Socket.IO connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    /// An `m` event: the message is at this range of the frame.
    Event(Range<usize>),
    /// An Engine.IO ping.
    Ping,
    /// Anything else (open, connect answers, other events).
    Other,
}

/// Classifies a text frame.
#[inline]
pub(crate) fn packet(text: &[u8]) -> Packet {
    if text.starts_with(EVENT_HEAD) && text.ends_with(EVENT_TAIL) && text.len() > 8 {
        Packet::Event(EVENT_HEAD.len()..text.len() - EVENT_TAIL.len())
    } else if text == PING {
        Packet::Ping
    } else {
        Packet::Other
    }
}

/// The request target of the WebSocket upgrade: Socket.IO's endpoint under `prefix`
/// (`…/socket.io/`), with the client id and the token as query parameters.
pub(crate) fn upgrade_path(prefix: &str, client_id: &str, token: Option<&str>) -> String {
    let mut path = format!("{prefix}/?EIO=4&transport=websocket&client_id=");
    crate::conn::percent_encode(client_id, &mut path);
    if let Some(t) = token {
        path.push_str("&token=");
        crate::conn::percent_encode(t, &mut path);
    }
    path
}

/// After the upgrade: waits for Engine.IO's `open`, connects to the main namespace and
/// waits for its answer; the connection then carries messages in the Socket.IO dialect.
pub(crate) async fn handshake(conn: &mut WsConn, limit: Duration) -> Result<(), ConnectError> {
    let steps = async {
        wait_for(conn, b'0').await?;
        conn.queue_raw_text(CONNECT);
        conn.flush().await?;
        wait_for(conn, b'4').await
    };
    match tokio::time::timeout(limit, steps).await {
        Ok(r) => {
            r?;
            conn.set_dialect(Dialect::SocketIo);
            Ok(())
        }
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// Reads until a text frame starting with `first` (`0` open; `4`: `40` connected, `44`
/// refused).
async fn wait_for(conn: &mut WsConn, first: u8) -> Result<(), ConnectError> {
    loop {
        while let Some(f) = conn.next_frame()? {
            match f.kind {
                Kind::Text => {
                    let p = conn.payload(&f);
                    if p.starts_with(b"44") {
                        let why = String::from_utf8_lossy(&p[2..]).into_owned();
                        return Err(ConnectError::Refused(format!(
                            "socket.io connect_error {why}"
                        )));
                    }
                    if p.first() == Some(&first) {
                        return Ok(());
                    }
                }
                Kind::Close => return Err(ConnectError::Closed(conn.close_code(&f))),
                Kind::Ping => {
                    let p = conn.payload(&f).to_vec();
                    conn.queue_pong(&p);
                }
                Kind::Binary | Kind::Pong => {}
            }
        }
        if conn.queued() > 0 {
            conn.flush().await?;
        }
        if conn.fill().await? == 0 {
            return Err(ConnectError::Closed(None));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_narrowed_to_their_argument() {
        let frame = br#"42["m",{"type":"ack","id":1}]"#;
        let Packet::Event(r) = packet(frame) else {
            panic!("not an event");
        };
        assert_eq!(&frame[r], br#"{"type":"ack","id":1}"#);
        assert_eq!(packet(b"2"), Packet::Ping);
        assert_eq!(packet(b"40{\"sid\":\"x\"}"), Packet::Other);
        assert_eq!(packet(br#"42["other",1]"#), Packet::Other);
        assert_eq!(packet(br#"42["m","#), Packet::Other);
    }

    #[test]
    fn the_upgrade_names_the_transport_and_the_client() {
        assert_eq!(
            upgrade_path("/socket.io", "a b", Some("t.k")),
            "/socket.io/?EIO=4&transport=websocket&client_id=a%20b&token=t.k"
        );
    }
}
