//! The plain-TCP transport of every connection, shared between the connection's task and
//! the publishers that write to it directly.
//!
//! hyper, then the WebSocket codec, read and write the socket through [`Wire`] as through
//! any stream. A publisher holding the connection's [`DirectSocket`] (attached to its
//! outbox, see [`roomcast_engine::outbox::DirectWrite`]) writes a whole text frame with
//! one `send` when the socket has room, without waking the connection's task. One mutex
//! per socket keeps the byte stream whole: a direct write happens only when the codec has
//! no partly written bytes, and the remainder of a partial direct write is sent before
//! anything the codec writes next. TLS connections have no direct path (the frame would
//! have to be encrypted in order with the codec's records).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use roomcast_engine::outbox::{DirectWrite, DirectWritten};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What keeps the byte stream whole between the codec and direct writers.
#[derive(Debug, Default)]
struct Pending {
    /// Bytes of direct writes the kernel has not taken yet, in order; they go out first.
    remainder: VecDeque<Bytes>,
    /// The codec has handed bytes to [`Wire::poll_write`] that are not all written yet.
    codec_partial: bool,
}

#[derive(Debug)]
struct Shared {
    tcp: TcpStream,
    pending: Mutex<Pending>,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        // Every mutation is a single assignment: a poisoned lock is still consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection's TCP stream, readable and writable by hyper and the codec.
#[derive(Debug)]
pub struct Wire {
    shared: Arc<Shared>,
}

/// A handle that writes text frames straight to a [`Wire`]'s socket.
#[derive(Debug, Clone)]
pub struct DirectSocket {
    shared: Arc<Shared>,
}

impl Wire {
    /// Wraps an accepted stream.
    pub fn new(tcp: TcpStream) -> Wire {
        Wire {
            shared: Arc::new(Shared {
                tcp,
                pending: Mutex::new(Pending::default()),
            }),
        }
    }

    /// The handle publishers write through.
    pub fn direct(&self) -> DirectSocket {
        DirectSocket {
            shared: self.shared.clone(),
        }
    }
}

/// Most chunks of the remainder handed to one `writev`.
const MAX_IOVECS: usize = 64;

/// Writes as much of the remainder as the socket takes now, without waiting. Ok(true)
/// once none is left. Goes through tokio, so a full socket clears its write readiness.
fn write_remainder(tcp: &TcpStream, pending: &mut Pending) -> io::Result<bool> {
    while !pending.remainder.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(pending.remainder.iter()) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        let mut n = match tcp.try_write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        };
        while n > 0 {
            let Some(front) = pending.remainder.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                pending.remainder.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
    Ok(true)
}

/// Sends the remainder: Ready(Ok) once none is left, Pending (write readiness
/// registered) while some is.
fn flush_remainder(
    tcp: &TcpStream,
    pending: &mut Pending,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    loop {
        if write_remainder(tcp, pending)? {
            return Poll::Ready(Ok(()));
        }
        ready!(tcp.poll_write_ready(cx))?;
    }
}

impl AsyncRead for Wire {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let tcp = &self.shared.tcp;
        loop {
            ready!(tcp.poll_read_ready(cx))?;
            match tcp.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &self.shared;
        let mut pending = shared.pending();
        // From here until all of `buf` is written, direct writers stay off the socket.
        pending.codec_partial = true;
        ready!(flush_remainder(&shared.tcp, &mut pending, cx))?;
        loop {
            match shared.tcp.try_write(buf) {
                Ok(n) => {
                    pending.codec_partial = n < buf.len();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready!(shared.tcp.poll_write_ready(cx))?;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &self.shared;
        flush_remainder(&shared.tcp, &mut shared.pending(), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.as_mut().poll_flush(cx))?;
        let sock = socket2::SockRef::from(&self.shared.tcp);
        match sock.shutdown(std::net::Shutdown::Write) {
            // The peer may have gone already; the socket is dropped next either way.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Poll::Ready(Ok(())),
            r => Poll::Ready(r),
        }
    }
}

/// A TCP listener whose connections are [`Wire`]s with `TCP_NODELAY` set: real-time
/// traffic is many small frames, and without it Nagle's algorithm holds a reply (e.g. an
/// ack right after the welcome) until the peer's delayed ACK, ~40 ms.
#[derive(Debug)]
pub struct WireListener(pub tokio::net::TcpListener);

impl axum::serve::Listener for WireListener {
    type Io = Wire;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        (Wire::new(tcp), addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// Payloads up to this size are copied behind their header and sent with one `send`;
/// larger ones go out with `writev` straight from the shared frame.
const SMALL_FRAME: usize = 1024;

/// The header of an unmasked, unfragmented server text frame (RFC 6455 §5.2).
fn text_header(len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x81;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// What [`DirectSocket::write_text_frames`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchWrite {
    /// Every frame is on the socket.
    Done,
    /// Some bytes wait for the socket to drain: await [`DirectSocket::flushed`].
    Pending,
    /// The codec has a frame partly written: flush the codec first, then call again
    /// (the frames are untouched).
    CodecBusy,
}

/// Frames are copied behind their headers into this per-thread buffer, up to its size,
/// and sent with one `send`: cheaper than a `writev` of two slices per frame, and no
/// connection holds write storage between flushes.
const SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl DirectSocket {
    /// The handle as an outbox's direct writer.
    pub fn into_sink(self) -> Arc<dyn DirectWrite> {
        self.shared
    }

    /// Writes `frames` (text payloads, in order) as unfragmented text frames, as far as
    /// the socket takes them now; what it does not take is kept, ahead of anything
    /// written later. Empties `frames` unless the codec is busy.
    pub fn write_text_frames(&self, frames: &mut VecDeque<Bytes>) -> io::Result<BatchWrite> {
        let shared = &self.shared;
        let mut pending = shared.pending();
        if pending.codec_partial {
            return Ok(BatchWrite::CodecBusy);
        }
        if !pending.remainder.is_empty() {
            queue_frames(&mut pending, frames);
            return Ok(if write_remainder(&shared.tcp, &mut pending)? {
                BatchWrite::Done
            } else {
                BatchWrite::Pending
            });
        }
        SCRATCH_BUF.with(|scratch| {
            let mut buf = scratch.borrow_mut();
            while !frames.is_empty() {
                buf.clear();
                while let Some(frame) = frames.front() {
                    if frame.len() > SCRATCH - 10 || buf.len() + frame.len() + 10 > SCRATCH {
                        break;
                    }
                    let mut header = [0u8; 10];
                    let h = text_header(frame.len(), &mut header);
                    buf.extend_from_slice(&header[..h]);
                    buf.extend_from_slice(frame);
                    frames.pop_front();
                }
                if buf.is_empty() {
                    // A frame larger than the buffer: it and the rest go out as chunks.
                    queue_frames(&mut pending, frames);
                    break;
                }
                let sent = match socket2::SockRef::from(&shared.tcp).send(&buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                if sent < buf.len() {
                    pending
                        .remainder
                        .push_back(Bytes::copy_from_slice(&buf[sent..]));
                    queue_frames(&mut pending, frames);
                    break;
                }
            }
            Ok(())
        })?;
        Ok(if write_remainder(&shared.tcp, &mut pending)? {
            BatchWrite::Done
        } else {
            BatchWrite::Pending
        })
    }

    /// Completes once the kept bytes of direct writes are all on the socket.
    pub async fn flushed(&self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let shared = &self.shared;
            flush_remainder(&shared.tcp, &mut shared.pending(), cx)
        })
        .await
    }
}

/// Appends `frames` (emptying it) to the remainder as header and payload chunks.
fn queue_frames(pending: &mut Pending, frames: &mut VecDeque<Bytes>) {
    for frame in frames.drain(..) {
        keep_unsent(pending, &frame, 0);
    }
}

/// Appends to the remainder what is left of the text frame carrying `payload` once its
/// first `sent` bytes (header included) are on the socket. The payload is shared, not
/// copied.
fn keep_unsent(pending: &mut Pending, payload: &Bytes, sent: usize) {
    let mut header = [0u8; 10];
    let h = text_header(payload.len(), &mut header);
    if sent < h {
        pending
            .remainder
            .push_back(Bytes::copy_from_slice(&header[sent..h]));
    }
    pending
        .remainder
        .push_back(payload.slice(sent.saturating_sub(h)..));
}

impl DirectWrite for Shared {
    fn unsent_bytes(&self) -> usize {
        self.pending().remainder.iter().map(Bytes::len).sum()
    }

    fn try_write_text(&self, payload: &Bytes) -> DirectWritten {
        let mut pending = self.pending();
        if pending.codec_partial || !pending.remainder.is_empty() {
            return DirectWritten::Not;
        }
        let mut header = [0u8; 10];
        let h = text_header(payload.len(), &mut header);
        let written = if payload.len() <= SMALL_FRAME {
            // One `send` of a stack copy: cheaper than `writev`'s trip through the VFS.
            let mut frame = [0u8; SMALL_FRAME + 4];
            frame[..h].copy_from_slice(&header[..h]);
            frame[h..h + payload.len()].copy_from_slice(payload);
            // Straight to the socket, not through tokio's readiness check: a direct write
            // never waits, and a `WouldBlock` here leaves the readiness the codec's next
            // write clears itself.
            socket2::SockRef::from(&self.tcp).send(&frame[..h + payload.len()])
        } else {
            let bufs = [IoSlice::new(&header[..h]), IoSlice::new(payload)];
            self.tcp.try_write_vectored(&bufs)
        };
        match written {
            Ok(n) if n == h + payload.len() => DirectWritten::All,
            Ok(0) => DirectWritten::Not,
            Ok(n) => {
                // Rare: the socket took part of the frame. Keep the rest; it goes first.
                keep_unsent(&mut pending, payload, n);
                DirectWritten::Partly
            }
            // WouldBlock, or an error the connection's own reads and writes will report.
            Err(_) => DirectWritten::Not,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Over a real loopback socket whose peer does not read: what the socket does not
    /// take is reported by `unsent_bytes` (what the process-wide cap counts), and all of
    /// it reaches the peer once it reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unsent_bytes_are_what_a_full_socket_has_not_taken() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpSocket::new_v4().expect("socket");
        client.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let (client, accepted) = tokio::join!(client.connect(addr), listener.accept());
        let mut client = client.expect("connect");
        let wire = Wire::new(accepted.expect("accept").0);
        let direct = wire.direct();
        // 16 MiB: more than the kernel buffers a loopback connection.
        let payload = Bytes::from(vec![b'x'; 64 * 1024]);
        let mut frames: VecDeque<Bytes> = (0..256).map(|_| payload.clone()).collect();
        let total = 256 * (payload.len() + 10);
        assert_eq!(direct.clone().into_sink().unsent_bytes(), 0);
        let outcome = direct.write_text_frames(&mut frames).expect("write");
        assert_eq!(outcome, BatchWrite::Pending);
        assert!(frames.is_empty(), "the batch is taken whole");
        let sink = direct.clone().into_sink();
        let unsent = sink.unsent_bytes();
        assert!(unsent > 0 && unsent < total, "{unsent} of {total}");
        // The hub's process-wide cap sees those bytes although the session's queue is
        // empty, and closes the session as a slow consumer.
        let config = roomcast_engine::HubConfig {
            max_queued_bytes: 1 << 20,
            ..roomcast_engine::HubConfig::default()
        };
        let history = roomcast_engine::history::MemoryHistory::new(Default::default());
        let hub = roomcast_engine::Hub::new(config, Arc::new(history));
        let id = roomcast_protocol::ClientId::parse("stalled").expect("client id");
        let session = hub.connect(id, roomcast_engine::SessionMeta::default());
        session.outbox.set_direct(sink.clone());
        assert_eq!(session.outbox.queued_bytes(), 0);
        assert_eq!(session.outbox.held_bytes(), unsent);
        assert_eq!(hub.enforce_queued_bytes_cap(), 1);
        assert!(session.outbox.is_closed());
        // Once closing, it is not closed (or counted) again.
        assert_eq!(hub.enforce_queued_bytes_cap(), 0);
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            let mut buf = vec![0u8; 256 * 1024];
            while got < total {
                match client.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            got
        });
        direct.flushed().await.expect("flushed");
        assert_eq!(sink.unsent_bytes(), 0);
        assert_eq!(reader.await.expect("reader"), total);
    }

    #[test]
    fn what_is_kept_of_a_partly_sent_frame_completes_it() {
        let payload = Bytes::from(vec![b'p'; 300]);
        let mut header = [0u8; 10];
        let h = text_header(payload.len(), &mut header);
        let whole: Vec<u8> = header[..h].iter().chain(payload.iter()).copied().collect();
        for sent in [0, 1, h, h + 1, whole.len() - 1] {
            let mut pending = Pending::default();
            keep_unsent(&mut pending, &payload, sent);
            let kept: Vec<u8> = pending.remainder.iter().flatten().copied().collect();
            assert_eq!(kept, whole[sent..], "sent {sent}");
        }
    }

    #[test]
    fn headers_follow_rfc6455_length_forms() {
        let mut h = [0u8; 10];
        assert_eq!(text_header(125, &mut h), 2);
        assert_eq!(&h[..2], &[0x81, 125]);
        assert_eq!(text_header(126, &mut h), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0, 126]);
        assert_eq!(text_header(65_535, &mut h), 4);
        assert_eq!(&h[..4], &[0x81, 126, 0xff, 0xff]);
        assert_eq!(text_header(65_536, &mut h), 10);
        assert_eq!(&h[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }
}
