//! The conformance echo: `GET /conformance/echo`, mounted only with `--conformance-echo`
//! (which start-up refuses outside `--dev` on a loopback address, [`crate::conformance`]).
//!
//! It exists so Autobahn|Testsuite's `fuzzingclient` can test roomcast's own WebSocket
//! code (`scripts/autobahn`): the upgrade checks, codec configuration and size limits are
//! those of `/ws/{client_id}` ([`super::refusal`], [`super::configure`]), and the
//! connection runs the same socket loop, outbox, writer and close path
//! ([`super::socket::pump`]). Only the frame handler differs: every text and binary
//! message goes back as it came, and there is no authentication, session or protocol.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use roomcast_engine::outbox::OutboxLimits;
use roomcast_engine::Outbox;
use roomcast_protocol::CloseCode;

use super::socket::{self, close_socket, Endpoint, FrameEncoding, TAG_BINARY, TAG_TEXT};
use crate::app::AppState;

/// `GET /conformance/echo`: the checks of `/ws/{client_id}` before upgrading (403, 429,
/// 503), then an echo connection.
pub async fn upgrade(
    State(state): State<AppState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(refused) = super::refusal(&state, remote, &headers) {
        return refused;
    }
    super::configure(ws, &state.config).on_upgrade(move |socket| {
        let tasks = state.tasks.clone();
        tasks.track_future(run(socket, state, remote))
    })
}

/// An echo connection: the connection limits hold, the shutdown closes it like a session.
async fn run(mut ws: WebSocket, state: AppState, remote: SocketAddr) {
    let principal = format!("conformance-echo:{}", remote.ip());
    let _permit = match state.security.connections.try_acquire(principal) {
        Ok(permit) => permit,
        Err(limit) => {
            close_socket(&mut ws, limit.close_code(), limit.close_reason()).await;
            return;
        }
    };
    let hub = state.hub.config();
    let outbox = Outbox::new(
        OutboxLimits {
            messages: hub.outbox_capacity,
            bytes: hub.outbox_max_bytes,
        },
        hub.slow_consumer,
    );
    let mut echo = Echo {
        outbox: &outbox,
        write_timeout: hub.dead_after(),
    };
    let code: CloseCode = state.config.shutdown_close;
    let shutdown = async {
        state.shutdown.cancelled().await;
        outbox.close(code, code.default_reason(), true);
        // The loop below sends the close and ends the connection.
        std::future::pending::<()>().await
    };
    tokio::select! {
        () = socket::pump(&mut ws, &mut echo) => {}
        () = shutdown => {}
    }
}

/// The echo's frame handler.
struct Echo<'a> {
    outbox: &'a Outbox,
    write_timeout: Duration,
}

impl Endpoint for Echo<'_> {
    const ENCODING: FrameEncoding = FrameEncoding::Tagged;

    fn outbox(&self) -> &Outbox {
        self.outbox
    }

    fn write_timeout(&self) -> Duration {
        self.write_timeout
    }

    fn on_frame(&mut self, msg: Message) -> bool {
        let frame = match msg {
            Message::Text(text) => tagged(TAG_TEXT, text.as_bytes()),
            Message::Binary(data) => tagged(TAG_BINARY, &data),
            // The codec answers pings itself.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return true,
        };
        // A full queue closes with the slow-consumer code, as for a session.
        self.outbox.push(frame);
        true
    }
}

/// `payload` behind its [`FrameEncoding::Tagged`] tag.
fn tagged(tag: u8, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 1);
    frame.put_u8(tag);
    frame.put_slice(payload);
    frame.freeze()
}
