//! The HTTP connection loop: accepts connections (plain TCP or completed TLS), refuses an
//! address over its open-connection budget, and serves each connection with hyper's
//! HTTP/1.1 server with a header read timeout and upgrades.
//!
//! It replaces `axum::serve`, which sets no timer, so hyper's header read timeout never
//! applies there: a client that sends an upgrade request one byte a minute (slowloris)
//! would hold a socket and a task forever. Here a client has `header_read_timeout` to send
//! a request's complete headers, after which hyper closes the connection without a response.
//!
//! The per-IP budget (nginx's `limit_conn`) counts every open connection, WebSockets
//! included: the permit travels inside the connection's I/O object, which the upgraded
//! WebSocket keeps, so it is given back when the socket is dropped. Over the budget a
//! connection gets a canned `429 Too Many Requests` with `Retry-After: 1` and is closed
//! before any of its bytes are read.
//!
//! Only HTTP/1.1 is served (the TLS listener offers only `http/1.1` by ALPN): WebSockets
//! use the HTTP/1.1 upgrade, and the APIs are small request/response calls.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use roomcast_engine::limits::{PendingAuth, PendingPermit};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// A connection's transport: a stream, and a handle for writing WebSocket frames straight
/// to its socket where the transport allows (plain TCP; see [`crate::wire`]).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The direct-write handle, if the transport has one.
    fn direct(&self) -> Option<crate::wire::DirectSocket> {
        None
    }
}

impl Transport for crate::wire::Wire {
    fn direct(&self) -> Option<crate::wire::DirectSocket> {
        Some(crate::wire::Wire::direct(self))
    }
}

impl Transport for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {}

/// What the loop needs to know about each connection.
#[derive(Debug, Clone)]
pub struct AcceptConfig {
    /// Time allowed for a request's complete headers.
    pub header_read_timeout: Duration,
    /// Open connections per IP (0 = unlimited).
    pub max_connections_per_ip: usize,
}

/// The reply to a connection over its address's budget (it is closed right after).
const TOO_MANY: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n\
Content-Type: text/plain\r\nContent-Length: 37\r\nConnection: close\r\n\r\n\
too many connections from this address";

/// Longest wait for the canned 429 to be written to a client that does not read.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `stop` is cancelled, then stops accepting, asks every
/// HTTP connection to finish its current request, and returns when they have.
pub async fn serve<L>(mut listener: L, app: Router, config: AcceptConfig, stop: CancellationToken)
where
    L: Listener<Addr = SocketAddr>,
    L::Io: Transport,
{
    // The pending-authentication budget type is exactly a per-address counter with
    // permits; with no total bound it is the per-IP connection budget.
    let per_ip = PendingAuth::new(0, config.max_connections_per_ip);
    let conns = TaskTracker::new();
    loop {
        let (io, remote) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let permit = match per_ip.try_acquire(remote.ip()) {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!(%remote, max = config.max_connections_per_ip, "connection refused: per-IP budget");
                metrics::counter!("roomcast_connections_refused_total", "reason" => "per_ip")
                    .increment(1);
                tokio::spawn(refuse(io));
                continue;
            }
        };
        let direct = io.direct();
        let io = Counted {
            io,
            _permit: permit,
        };
        conns.spawn(serve_one(
            io,
            direct,
            remote,
            app.clone(),
            config.header_read_timeout,
            stop.clone(),
        ));
    }
    drop(listener);
    conns.close();
    conns.wait().await;
}

/// Writes the canned 429 and closes.
async fn refuse<I: AsyncWrite + Unpin>(mut io: I) {
    let _ = tokio::time::timeout(REFUSE_WRITE_TIMEOUT, async {
        let _ = io.write_all(TOO_MANY).await;
        let _ = io.shutdown().await;
    })
    .await;
}

/// One HTTP/1.1 connection, upgrades included.
async fn serve_one<I>(
    io: I,
    direct: Option<crate::wire::DirectSocket>,
    remote: SocketAddr,
    app: Router,
    header_read_timeout: Duration,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = app.map_request(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(remote));
        if let Some(direct) = &direct {
            req.extensions_mut().insert(direct.clone());
        }
        req
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::trace!(%remote, error = %e, "HTTP connection ended with an error");
            }
            return;
        }
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

/// A connection's I/O that holds its address's permit for as long as it lives (through an
/// upgrade, as the WebSocket's transport).
struct Counted<I> {
    io: I,
    _permit: PendingPermit,
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
