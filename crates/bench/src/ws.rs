//! A minimal client-side WebSocket codec (RFC 6455) over a tokio `TcpStream`.
//!
//! Why not tungstenite for the load itself: a subscriber in a fan-out run receives
//! hundreds of thousands of small frames per second, and the generator must cost less per
//! delivery than the server it measures. This codec reads whatever the kernel has in one
//! large `read` (the buffer starts small and doubles up to a cap while reads fill it, so
//! idle connections stay cheap), then walks the complete frames in place: no allocation,
//! no copy and no task wake per frame. Frames are handed out as [`Frame`] ranges into the
//! read buffer, valid until the next read. Outgoing frames are masked (as a client must)
//! and queued in one buffer so a batch of publishes leaves in one `write`.
//!
//! Supported: text, binary, fragmented messages (reassembled), ping (answered by the
//! caller through [`WsConn::answer_ping`]), pong, close. Not supported: extensions
//! (compression is never negotiated), TLS.
//!
//! A connection in the [`Dialect::SocketIo`] dialect carries the same JSON messages inside
//! Socket.IO event packets (see [`crate::socketio`]): text is wrapped on the way out and
//! unwrapped on the way in, and Engine.IO pings are answered here, so the scenarios read
//! and write exactly what they do against a roomcast server.

use std::io;
use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest frame or reassembled message accepted from the server.
pub(crate) const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// How a connection's read buffer is sized.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferSize {
    /// Bytes allocated at connect time.
    pub(crate) initial: usize,
    /// Largest size the buffer grows to while reads keep filling it.
    pub(crate) max: usize,
}

impl BufferSize {
    /// For connections that mostly wait (heartbeats, acks).
    pub(crate) const IDLE: BufferSize = BufferSize {
        initial: 1024,
        max: 16 * 1024,
    };
    /// For connections that receive a stream of messages.
    pub(crate) const STREAM: BufferSize = BufferSize {
        initial: 8 * 1024,
        max: 256 * 1024,
    };
}

/// Frame types handed to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A complete text message.
    Text,
    /// A complete binary message.
    Binary,
    /// A ping; answer with [`WsConn::answer_ping`].
    Ping,
    /// A pong.
    Pong,
    /// A close frame; the payload holds the code and reason.
    Close,
}

/// One frame (or reassembled message) in the read buffer.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Its type.
    pub(crate) kind: Kind,
    range: Range<usize>,
    reassembled: bool,
}

/// Codec failures.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WsError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The server broke the framing rules.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// A frame or message larger than [`MAX_MESSAGE`].
    #[error("message of {0} bytes is too large")]
    TooLarge(u64),
}

/// How application messages travel inside text frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Dialect {
    /// One JSON message per text frame (roomcast and the plain WebSocket peers).
    #[default]
    Plain,
    /// Socket.IO 4: each message is the argument of an `m` event packet.
    SocketIo,
}

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// One WebSocket connection (client side), after the handshake.
#[derive(Debug)]
pub(crate) struct WsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    need: usize,
    max_buf: usize,
    frag: Vec<u8>,
    frag_op: Option<u8>,
    out: Vec<u8>,
    mask_state: u32,
    dialect: Dialect,
}

impl WsConn {
    /// Wraps a stream whose handshake is done; `leftover` holds bytes read past the
    /// handshake response (the first frames).
    pub(crate) fn new(stream: TcpStream, leftover: &[u8], size: BufferSize) -> WsConn {
        let mut buf = vec![0u8; size.initial.max(leftover.len()).max(256)];
        buf[..leftover.len()].copy_from_slice(leftover);
        WsConn {
            stream,
            buf,
            start: 0,
            end: leftover.len(),
            need: 0,
            max_buf: size.max.max(size.initial),
            frag: Vec::new(),
            frag_op: None,
            out: Vec::new(),
            mask_state: rand::random::<u32>() | 1,
            dialect: Dialect::Plain,
        }
    }

    /// Switches the message framing (after a Socket.IO handshake).
    pub(crate) fn set_dialect(&mut self, dialect: Dialect) {
        self.dialect = dialect;
    }

    /// Reads what the socket has into the buffer, waiting for at least one byte.
    /// Returns 0 at end of stream. Frames handed out before are invalidated.
    pub(crate) async fn fill(&mut self) -> Result<usize, WsError> {
        self.make_room()?;
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        self.after_read(n);
        Ok(n)
    }

    /// Like [`fill`](Self::fill) but never waits: `Ok(None)` when nothing is ready.
    pub(crate) fn try_fill(&mut self) -> Result<Option<usize>, WsError> {
        self.make_room()?;
        match self.stream.try_read(&mut self.buf[self.end..]) {
            Ok(n) => {
                self.after_read(n);
                Ok(Some(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn after_read(&mut self, n: usize) {
        let filled = self.end + n == self.buf.len();
        self.end += n;
        // A read that filled the buffer means more was waiting: read more at once next time.
        if filled && self.buf.len() < self.max_buf {
            let len = (self.buf.len() * 2).min(self.max_buf);
            self.buf.resize(len, 0);
        }
    }

    fn make_room(&mut self) -> Result<(), WsError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let pending = self.end - self.start;
        let wanted = self.need.max(pending + 1);
        if wanted > self.buf.len() {
            if wanted > MAX_MESSAGE + 14 {
                return Err(WsError::TooLarge(wanted as u64));
            }
            self.buf.resize(wanted, 0);
        }
        // Move a partial frame to the front when the free tail is small.
        if self.start > 0 && self.buf.len() - self.end < self.buf.len() / 2 {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if self.end == self.buf.len() {
            let len = self.buf.len() * 2;
            self.buf.resize(len, 0);
        }
        Ok(())
    }

    /// The next complete frame already in the buffer, or `None` when more bytes are
    /// needed. Fragmented messages are reassembled; control frames pass through. In the
    /// Socket.IO dialect a text frame holding an event is narrowed to its argument, and
    /// Engine.IO pings are answered (queued) and skipped.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, WsError> {
        loop {
            let Some(mut f) = self.next_raw_frame()? else {
                return Ok(None);
            };
            if self.dialect == Dialect::Plain || f.kind != Kind::Text {
                return Ok(Some(f));
            }
            match crate::socketio::packet(self.payload(&f)) {
                crate::socketio::Packet::Event(inner) => {
                    f.range = f.range.start + inner.start..f.range.start + inner.end;
                    return Ok(Some(f));
                }
                crate::socketio::Packet::Ping => {
                    self.queue_raw_text(crate::socketio::PONG);
                }
                crate::socketio::Packet::Other => return Ok(Some(f)),
            }
        }
    }

    fn next_raw_frame(&mut self) -> Result<Option<Frame>, WsError> {
        loop {
            let avail = &self.buf[self.start..self.end];
            if avail.len() < 2 {
                return Ok(None);
            }
            let (b0, b1) = (avail[0], avail[1]);
            if b0 & 0x70 != 0 {
                return Err(WsError::Protocol(
                    "reserved bits set (no extension was negotiated)",
                ));
            }
            let fin = b0 & 0x80 != 0;
            let op = b0 & 0x0f;
            let masked = b1 & 0x80 != 0;
            let (len, mut header) = match b1 & 0x7f {
                126 => {
                    if avail.len() < 4 {
                        return Ok(None);
                    }
                    (u64::from(u16::from_be_bytes([avail[2], avail[3]])), 4)
                }
                127 => {
                    if avail.len() < 10 {
                        return Ok(None);
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&avail[2..10]);
                    (u64::from_be_bytes(b), 10)
                }
                n => (u64::from(n), 2),
            };
            if len > MAX_MESSAGE as u64 {
                return Err(WsError::TooLarge(len));
            }
            let mask_at = header;
            if masked {
                header += 4;
            }
            let len = len as usize;
            let total = header + len;
            if avail.len() < total {
                self.need = total;
                return Ok(None);
            }
            self.need = 0;
            let range = self.start + header..self.start + total;
            if masked {
                // Servers must not mask; accept it anyway.
                let key = [
                    avail[mask_at],
                    avail[mask_at + 1],
                    avail[mask_at + 2],
                    avail[mask_at + 3],
                ];
                apply_mask(&mut self.buf[range.clone()], key);
            }
            self.start += total;
            let kind = match op {
                OP_TEXT | OP_BINARY => {
                    if self.frag_op.is_some() {
                        return Err(WsError::Protocol("new message inside a fragmented one"));
                    }
                    if !fin {
                        self.frag_op = Some(op);
                        self.frag.clear();
                        self.frag.extend_from_slice(&self.buf[range]);
                        continue;
                    }
                    if op == OP_TEXT {
                        Kind::Text
                    } else {
                        Kind::Binary
                    }
                }
                OP_CONT => {
                    let Some(first) = self.frag_op else {
                        return Err(WsError::Protocol("continuation without a first fragment"));
                    };
                    if self.frag.len() + len > MAX_MESSAGE {
                        return Err(WsError::TooLarge((self.frag.len() + len) as u64));
                    }
                    self.frag.extend_from_slice(&self.buf[range]);
                    if !fin {
                        continue;
                    }
                    self.frag_op = None;
                    let kind = if first == OP_TEXT {
                        Kind::Text
                    } else {
                        Kind::Binary
                    };
                    return Ok(Some(Frame {
                        kind,
                        range: 0..self.frag.len(),
                        reassembled: true,
                    }));
                }
                OP_CLOSE | OP_PING | OP_PONG => {
                    if !fin || len > 125 {
                        return Err(WsError::Protocol("control frame fragmented or too long"));
                    }
                    match op {
                        OP_CLOSE => Kind::Close,
                        OP_PING => Kind::Ping,
                        _ => Kind::Pong,
                    }
                }
                _ => return Err(WsError::Protocol("unknown opcode")),
            };
            return Ok(Some(Frame {
                kind,
                range,
                reassembled: false,
            }));
        }
    }

    /// The payload of a frame returned by [`next_frame`](Self::next_frame).
    #[inline]
    pub(crate) fn payload(&self, f: &Frame) -> &[u8] {
        if f.reassembled {
            &self.frag[f.range.clone()]
        } else {
            &self.buf[f.range.clone()]
        }
    }

    /// The close code in a close frame's payload, if any.
    pub(crate) fn close_code(&self, f: &Frame) -> Option<u16> {
        let p = self.payload(f);
        (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]]))
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift32: masking keys need not be secret here, only varied.
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        x.to_ne_bytes()
    }

    fn queue_frame(&mut self, op: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.out.push(0x80 | op);
        if len < 126 {
            self.out.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            self.out.push(0x80 | 126);
            self.out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            self.out.push(0x80 | 127);
            self.out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        let key = self.next_mask();
        self.out.extend_from_slice(&key);
        let at = self.out.len();
        for p in parts {
            self.out.extend_from_slice(p);
        }
        apply_mask(&mut self.out[at..], key);
    }

    /// Queues a message (a text frame, wrapped as the dialect wants);
    /// [`flush`](Self::flush) sends everything queued in one write.
    pub(crate) fn queue_text(&mut self, text: &[u8]) {
        match self.dialect {
            Dialect::Plain => self.queue_frame(OP_TEXT, &[text]),
            Dialect::SocketIo => self.queue_frame(
                OP_TEXT,
                &[
                    crate::socketio::EVENT_HEAD,
                    text,
                    crate::socketio::EVENT_TAIL,
                ],
            ),
        }
    }

    /// Queues a text frame as is, whatever the dialect (Engine.IO control packets).
    pub(crate) fn queue_raw_text(&mut self, text: &[u8]) {
        self.queue_frame(OP_TEXT, &[text]);
    }

    /// Queues the answer to a ping frame.
    pub(crate) fn queue_pong(&mut self, payload: &[u8]) {
        self.queue_frame(OP_PONG, &[payload]);
    }

    /// Queues the pong that answers the ping frame `f` (RFC 6455: same payload).
    pub(crate) fn answer_ping(&mut self, f: &Frame) {
        let payload = self.payload(f).to_vec();
        self.queue_pong(&payload);
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.out.len()
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), WsError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Starts a normal close (1000) and waits up to `limit` for the server's close frame
    /// or the end of the stream.
    pub(crate) async fn close(&mut self, limit: Duration) -> Result<(), WsError> {
        let mut payload = 1000u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"bye");
        self.queue_frame(OP_CLOSE, &[&payload]);
        self.flush().await?;
        let wait = async {
            loop {
                while let Some(f) = self.next_frame()? {
                    if f.kind == Kind::Close {
                        return Ok(());
                    }
                }
                if self.fill().await? == 0 {
                    return Ok(());
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }
}

/// XORs `data` with the repeating 4-byte `key`, 8 bytes at a time.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let k = u32::from_ne_bytes(key);
    let k64 = u64::from(k) | (u64::from(k) << 32);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ k64).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_the_bytewise_definition() {
        let key = [1, 2, 3, 250];
        let data: Vec<u8> = (0..37u8).collect();
        let mut fast = data.clone();
        apply_mask(&mut fast, key);
        let slow: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(fast, slow);
    }

    async fn pair() -> (WsConn, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let (c, s) = tokio::join!(TcpStream::connect(addr), l.accept());
        let conn = WsConn::new(
            c.expect("connect"),
            &[],
            BufferSize {
                initial: 256,
                max: 4096,
            },
        );
        (conn, s.expect("accept").0)
    }

    fn server_frame(op: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 | op } else { op }];
        let len = payload.len();
        if len < 126 {
            f.push(len as u8);
        } else if len <= 65535 {
            f.push(126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            f.push(127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    #[tokio::test]
    async fn reads_coalesced_split_large_and_fragmented_frames() {
        let (mut conn, mut server) = pair().await;
        let big = vec![b'a'; 70_000];
        let mut bytes = Vec::new();
        bytes.extend(server_frame(OP_TEXT, true, b"one"));
        bytes.extend(server_frame(OP_TEXT, true, b"two"));
        bytes.extend(server_frame(OP_TEXT, true, &big));
        bytes.extend(server_frame(OP_TEXT, false, b"fr"));
        bytes.extend(server_frame(OP_PING, true, b"p"));
        bytes.extend(server_frame(OP_CONT, true, b"ag"));
        bytes.extend(server_frame(OP_CLOSE, true, &1000u16.to_be_bytes()));
        let writer = tokio::spawn(async move {
            // Dribble the bytes so frames straddle reads.
            for chunk in bytes.chunks(999) {
                server.write_all(chunk).await.expect("write");
                tokio::task::yield_now().await;
            }
            server
        });
        let mut got: Vec<(Kind, Vec<u8>)> = Vec::new();
        'outer: loop {
            while let Some(f) = conn.next_frame().expect("frame") {
                got.push((f.kind, conn.payload(&f).to_vec()));
                if f.kind == Kind::Close {
                    assert_eq!(conn.close_code(&f), Some(1000));
                    break 'outer;
                }
            }
            assert!(conn.fill().await.expect("read") > 0, "eof too early");
        }
        let _server = writer.await.expect("join");
        let kinds: Vec<Kind> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            kinds,
            [
                Kind::Text,
                Kind::Text,
                Kind::Text,
                Kind::Ping,
                Kind::Text,
                Kind::Close
            ]
        );
        assert_eq!(got[0].1, b"one");
        assert_eq!(got[1].1, b"two");
        assert_eq!(got[2].1, big);
        assert_eq!(got[4].1, b"frag");
    }

    #[tokio::test]
    async fn writes_masked_frames() {
        let (mut conn, mut server) = pair().await;
        conn.queue_text(b"hello");
        conn.queue_text(&[b'x'; 300]);
        conn.flush().await.expect("flush");
        let mut buf = vec![0u8; 2 + 4 + 5 + 4 + 4 + 300];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(buf[0], 0x81);
        assert_eq!(buf[1], 0x80 | 5);
        let key = [buf[2], buf[3], buf[4], buf[5]];
        let text: Vec<u8> = buf[6..11]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(text, b"hello");
        assert_eq!(buf[12], 0x80 | 126);
        assert_eq!(u16::from_be_bytes([buf[13], buf[14]]), 300);
    }
}
