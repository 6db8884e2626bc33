//! The socket side of every WebSocket connection: the one loop that drains an outbox to
//! the socket, reads the client's frames, runs one background job at a time, and closes.
//!
//! A protocol session ([`super::connection`]) and the conformance echo ([`super::echo`])
//! are both an [`Endpoint`] driven by [`pump`], so what Autobahn|Testsuite checks on the
//! echo (framing, fragmentation, control frames, UTF-8, close handshake, size limits) is
//! the code every client connection runs. Only the frame handler differs.
//!
//! Writes are coalesced: everything queued since the last drain is fed to the codec and
//! flushed with one syscall where the kernel allows. Closing always goes through the
//! outbox ([`Outbox::close`]), whoever decides it, so there is exactly one place that
//! writes close frames ([`close_socket`]).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use roomcast_engine::outbox::Outgoing;
use roomcast_engine::Outbox;
use roomcast_protocol::CloseCode;

use crate::wire::{BatchWrite, DirectSocket};

/// A background job of a connection (a history replay), polled by the loop.
pub(super) type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long a close handshake or a stuck write may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How the writer turns queued bytes into WebSocket messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FrameEncoding {
    /// Every queued frame is UTF-8 JSON, sent as a text message (the roomcast protocol).
    Text,
    /// The first byte of a queued frame says what it is ([`TAG_TEXT`] or [`TAG_BINARY`]),
    /// the rest is the payload (the conformance echo returns both kinds).
    Tagged,
}

/// Tag of a queued text frame under [`FrameEncoding::Tagged`].
pub(super) const TAG_TEXT: u8 = b'T';
/// Tag of a queued binary frame under [`FrameEncoding::Tagged`].
pub(super) const TAG_BINARY: u8 = b'B';

/// What [`pump`] needs from what is behind a connection.
pub(super) trait Endpoint {
    /// How this endpoint's outbox frames are written.
    const ENCODING: FrameEncoding;

    /// The queue the writer drains.
    fn outbox(&self) -> &Outbox;

    /// The longest a batch write may take before the connection is dropped.
    fn write_timeout(&self) -> Duration;

    /// The socket's direct writer, when the transport has one: text frames then go
    /// straight to the socket instead of through the codec.
    fn direct(&self) -> Option<&DirectSocket> {
        None
    }

    /// A text, binary, ping or pong frame arrived (close frames are the loop's). Returns
    /// false when the connection is over.
    fn on_frame(&mut self, msg: Message) -> bool;

    /// The next background job to run, when none is running.
    fn next_job(&mut self) -> Option<JobFuture> {
        None
    }

    /// The running background job finished.
    fn job_done(&mut self) {}
}

/// The connection's loop: drain the outbox to the socket, read the client's frames, run
/// one background job at a time. Returns when the connection is over.
pub(super) async fn pump<E: Endpoint>(ws: &mut WebSocket, endpoint: &mut E) {
    let mut batch: VecDeque<Bytes> = VecDeque::new();
    let mut job: Option<JobFuture> = None;
    loop {
        if job.is_none() {
            job = endpoint.next_job();
        }
        tokio::select! {
            biased;
            out = endpoint.outbox().drain(&mut batch) => {
                let limit = endpoint.write_timeout();
                let written = match endpoint.direct().filter(|_| E::ENCODING == FrameEncoding::Text) {
                    Some(direct) => write_direct(ws, direct, &mut batch, limit).await,
                    // Boxed: the timer would otherwise add its size to every idle
                    // connection's task; one allocation per flush is noise next to the
                    // write syscall.
                    None => matches!(
                        Box::pin(tokio::time::timeout(limit, write_batch(ws, &mut batch, E::ENCODING))).await,
                        Ok(Ok(()))
                    ),
                };
                if !written {
                    return;
                }
                endpoint.outbox().written();
                if let Outgoing::Close(close) = out {
                    Box::pin(close_socket(ws, close.code, &close.reason)).await;
                    return;
                }
                // An idle connection keeps no write-queue storage; a busy one reuses it.
                if endpoint.outbox().is_empty() {
                    batch = VecDeque::new();
                }
            }
            _ = async { if let Some(j) = job.as_mut() { j.await } }, if job.is_some() => {
                job = None;
                endpoint.job_done();
            }
            frame = ws.next() => {
                match frame {
                    None => return,
                    Some(Ok(Message::Close(_))) => {
                        // The codec queued the answering close frame; send it, then drop
                        // the TCP connection (the server closes first, RFC 6455 §7.1.1).
                        Box::pin(answer_close(ws)).await;
                        return;
                    }
                    Some(Ok(msg)) => {
                        if !endpoint.on_frame(msg) {
                            return;
                        }
                    }
                    Some(Err(e)) => match read_error_close_code(e) {
                        Some(code) => endpoint.outbox().close(code, code.default_reason(), false),
                        None => return,
                    },
                }
            }
        }
    }
}

/// Sends a close frame and waits briefly for the client's answer, so the client reads the
/// code, without letting a silent peer hold the task.
pub(super) async fn close_socket(ws: &mut WebSocket, code: CloseCode, reason: &str) {
    metrics::counter!("roomcast_connections_closed_total", "code" => code.as_u16().to_string())
        .increment(1);
    let frame = CloseFrame {
        code: code.as_u16(),
        reason: Utf8Bytes::from(reason),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Flushes the close frame the codec queued in answer to the client's.
async fn answer_close(ws: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.flush()).await;
}

/// Maps a read error to the close code the client should get (RFC 6455 §7.4.1), or None
/// to just drop the connection (I/O errors, a peer that vanished).
fn read_error_close_code(e: axum::Error) -> Option<CloseCode> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some(CloseCode::MessageTooBig),
        Some(tungstenite::Error::Utf8(_)) => Some(CloseCode::InvalidPayload),
        Some(tungstenite::Error::Protocol(_)) => Some(CloseCode::ProtocolError),
        _ => None,
    }
}

/// Writes a drained batch of text frames straight to the socket: no codec, no copy into
/// a connection's buffer, no UTF-8 re-check, and (when the socket takes it all, the usual
/// case) no timer and no allocation. Only a full socket, or a codec frame left half
/// written, makes it wait, bounded by `limit`. Returns false when the connection is over.
async fn write_direct(
    ws: &mut WebSocket,
    direct: &DirectSocket,
    batch: &mut VecDeque<Bytes>,
    limit: Duration,
) -> bool {
    match direct.write_text_frames(batch) {
        Ok(BatchWrite::Done) => true,
        Ok(BatchWrite::Pending) => matches!(
            Box::pin(tokio::time::timeout(limit, direct.flushed())).await,
            Ok(Ok(()))
        ),
        Ok(BatchWrite::CodecBusy) => {
            let finished = Box::pin(tokio::time::timeout(limit, async {
                ws.flush().await.ok()?;
                match direct.write_text_frames(batch).ok()? {
                    BatchWrite::Done => Some(()),
                    BatchWrite::Pending => direct.flushed().await.ok(),
                    BatchWrite::CodecBusy => None,
                }
            }))
            .await;
            matches!(finished, Ok(Some(())))
        }
        Err(_) => false,
    }
}

/// Writes a drained batch and flushes it.
async fn write_batch(
    ws: &mut WebSocket,
    batch: &mut VecDeque<Bytes>,
    encoding: FrameEncoding,
) -> Result<(), axum::Error> {
    while let Some(frame) = batch.pop_front() {
        match message(frame, encoding) {
            Some(msg) => ws.feed(msg).await?,
            None => tracing::error!("dropping a malformed outbound frame"),
        }
    }
    ws.flush().await
}

/// The message a queued frame becomes, or None if it is not what its encoding promises.
fn message(frame: Bytes, encoding: FrameEncoding) -> Option<Message> {
    match encoding {
        // Frames are produced as UTF-8 JSON; the check does not copy.
        FrameEncoding::Text => Utf8Bytes::try_from(frame).ok().map(Message::Text),
        FrameEncoding::Tagged => match frame.first() {
            Some(&TAG_TEXT) => Utf8Bytes::try_from(frame.slice(1..))
                .ok()
                .map(Message::Text),
            Some(&TAG_BINARY) => Some(Message::Binary(frame.slice(1..))),
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagged_frames_keep_their_kind() {
        let text = message(Bytes::from_static(b"Th\xc3\xa9"), FrameEncoding::Tagged);
        assert!(matches!(text, Some(Message::Text(t)) if t.as_str() == "hé"));
        let binary = message(Bytes::from_static(b"B\xff\x00"), FrameEncoding::Tagged);
        assert!(matches!(binary, Some(Message::Binary(b)) if b.as_ref() == b"\xff\x00"));
        assert!(message(Bytes::from_static(b"T\xff"), FrameEncoding::Tagged).is_none());
        assert!(message(Bytes::new(), FrameEncoding::Tagged).is_none());
        assert!(message(Bytes::from_static(b"\xff"), FrameEncoding::Text).is_none());
    }
}
