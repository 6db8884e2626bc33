//! Protocol steps over one [`WsConn`] that every scenario needs: send a request and wait
//! for its `ack` (subscribe), and keep an otherwise idle connection alive by answering
//! server heartbeats until told to stop.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::conn::ConnectError;
use crate::parse::{classify, Msg, PONG};
use crate::ws::{Kind, WsConn};

/// Subscribes to `room` and waits for the ack, answering heartbeats meanwhile.
pub(crate) async fn subscribe(
    conn: &mut WsConn,
    room: &str,
    limit: Duration,
) -> Result<(), ConnectError> {
    // Room names are validated by the caller to need no JSON escaping.
    let req = format!(r#"{{"type":"subscribe","room":"{room}","id":1}}"#);
    request(conn, req.as_bytes(), "1", limit).await
}

/// Sends `req` (whose `id` is the JSON text `id`) and waits for the reply with that id.
pub(crate) async fn request(
    conn: &mut WsConn,
    req: &[u8],
    id: &str,
    limit: Duration,
) -> Result<(), ConnectError> {
    conn.queue_text(req);
    conn.flush().await?;
    let wait = async {
        loop {
            let mut heartbeat = false;
            while let Some(f) = conn.next_frame()? {
                match f.kind {
                    Kind::Text => match classify(conn.payload(&f)) {
                        Msg::Ack { id: Some(got) } if got == id => return Ok(()),
                        Msg::Error {
                            code,
                            id: Some(got),
                        } if got == id => return Err(ConnectError::Refused(code.into_owned())),
                        Msg::Heartbeat => heartbeat = true,
                        _ => {}
                    },
                    Kind::Ping => conn.answer_ping(&f),
                    Kind::Close => return Err(ConnectError::Closed(conn.close_code(&f))),
                    Kind::Binary | Kind::Pong => {}
                }
            }
            if heartbeat {
                conn.queue_text(PONG);
            }
            conn.flush().await?;
            if conn.fill().await? == 0 {
                return Err(ConnectError::Closed(None));
            }
        }
    };
    match tokio::time::timeout(limit, wait).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// How a held connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HoldEnd {
    /// We were told to stop.
    Stopped,
    /// The server closed it (close code, if any) or the stream failed.
    Dropped(Option<u16>),
}

/// Keeps a connection alive until `stop`: reads everything, answers heartbeats and
/// WebSocket pings, ignores the rest.
pub(crate) async fn hold(conn: &mut WsConn, stop: &CancellationToken) -> HoldEnd {
    let stopped = stop.cancelled();
    tokio::pin!(stopped);
    loop {
        let mut heartbeat = false;
        loop {
            match conn.next_frame() {
                Ok(Some(f)) => match f.kind {
                    Kind::Text => {
                        if classify(conn.payload(&f)) == Msg::Heartbeat {
                            heartbeat = true;
                        }
                    }
                    Kind::Ping => conn.answer_ping(&f),
                    Kind::Close => return HoldEnd::Dropped(conn.close_code(&f)),
                    Kind::Binary | Kind::Pong => {}
                },
                Ok(None) => break,
                Err(_) => return HoldEnd::Dropped(None),
            }
        }
        if let Some(end) = end_round(conn, heartbeat, stopped.as_mut()).await {
            return end;
        }
    }
}

/// The end of one read round of a held connection: answers a heartbeat seen in it,
/// flushes what is queued, then waits for more input or for `stopped`; `Some` when the
/// connection is done.
pub(crate) async fn end_round<F: Future<Output = ()>>(
    conn: &mut WsConn,
    heartbeat: bool,
    stopped: Pin<&mut F>,
) -> Option<HoldEnd> {
    if heartbeat {
        conn.queue_text(PONG);
    }
    if conn.queued() > 0 && conn.flush().await.is_err() {
        return Some(HoldEnd::Dropped(None));
    }
    tokio::select! {
        biased;
        _ = stopped => Some(HoldEnd::Stopped),
        r = conn.fill() => match r {
            Ok(0) | Err(_) => Some(HoldEnd::Dropped(None)),
            Ok(_) => None,
        },
    }
}
