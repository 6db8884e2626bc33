//! A minimal HTTP/1.1 client for the generator: one keep-alive connection, one request at
//! a time, the response read by `Content-Length` (or chunked). It exists so the `orders`
//! scenario measures the server's REST path, not a general-purpose client's machinery, and
//! so the bench needs no HTTP client crate (it already speaks raw HTTP for the WebSocket
//! upgrade and the replay seeding).
//!
//! Only what roomcast's API answers is supported; anything else (a response without a
//! length, headers over [`MAX_HEAD`], a body over [`MAX_BODY`]) is an error and the
//! connection is dropped, never a panic.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest response body accepted.
const MAX_BODY: usize = 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// Connect, read or write failed.
    #[error("http i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection before a full response.
    #[error("connection closed by the server")]
    Closed,
    /// The response is not one this client reads.
    #[error("bad response: {0}")]
    BadResponse(&'static str),
}

impl HttpError {
    /// A short label for failure counts.
    pub(crate) fn reason(&self) -> String {
        match self {
            HttpError::Io(e) => format!("io: {:?}", e.kind()),
            HttpError::Closed => "closed".into(),
            HttpError::BadResponse(why) => format!("bad response: {why}"),
        }
    }
}

/// A response: status and body.
#[derive(Debug)]
pub(crate) struct Response {
    /// The status code.
    pub(crate) status: u16,
    /// The body, de-chunked.
    pub(crate) body: Vec<u8>,
}

/// One keep-alive connection.
#[derive(Debug)]
pub(crate) struct HttpConn {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
    /// Bytes of `buf` read but not consumed.
    len: usize,
    req: Vec<u8>,
}

impl HttpConn {
    /// Connects to `addr`; `host` is the `Host` header.
    pub(crate) async fn connect(addr: SocketAddr, host: &str) -> Result<HttpConn, HttpError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            host: host.to_owned(),
            buf: vec![0; 8 * 1024],
            len: 0,
            req: Vec::with_capacity(1024),
        })
    }

    /// Sends one request (`headers` as `(name, value)`) and reads its response.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, HttpError> {
        use std::io::Write as _;
        self.req.clear();
        let _ = write!(
            self.req,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\
             User-Agent: roomcast-bench\r\n",
            self.host,
            body.len()
        );
        if !body.is_empty() {
            self.req
                .extend_from_slice(b"Content-Type: application/json\r\n");
        }
        for (k, v) in headers {
            let _ = write!(self.req, "{k}: {v}\r\n");
        }
        self.req.extend_from_slice(b"\r\n");
        self.req.extend_from_slice(body);
        self.stream.write_all(&self.req).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> Result<(), HttpError> {
        if self.len == self.buf.len() {
            if self.buf.len() >= MAX_HEAD + MAX_BODY {
                return Err(HttpError::BadResponse("response too large"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.stream.read(&mut self.buf[self.len..]).await?;
        if n == 0 {
            return Err(HttpError::Closed);
        }
        self.len += n;
        Ok(())
    }

    async fn read_response(&mut self) -> Result<Response, HttpError> {
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&self.buf[..self.len], b"\r\n\r\n") {
                break i + 4;
            }
            if self.len > MAX_HEAD {
                return Err(HttpError::BadResponse("headers too large"));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| HttpError::BadResponse("headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or(HttpError::BadResponse("no status line"))?;
        let mut length = None;
        let mut chunked = false;
        for (k, v) in lines.filter_map(|l| l.split_once(':')) {
            let (k, v) = (k.trim(), v.trim());
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(
                    v.parse::<usize>()
                        .map_err(|_| HttpError::BadResponse("bad Content-Length"))?,
                );
            } else if k.eq_ignore_ascii_case("transfer-encoding") {
                chunked = v.to_ascii_lowercase().contains("chunked");
            }
        }
        let body = if chunked {
            loop {
                let raw = &self.buf[head_end..self.len];
                if let Some((body, used)) = dechunk_prefix(raw) {
                    self.consume(head_end + used);
                    break body;
                }
                if self.len - head_end > MAX_BODY * 2 {
                    return Err(HttpError::BadResponse("body too large"));
                }
                self.fill().await?;
            }
        } else {
            let length = length.ok_or(HttpError::BadResponse("no Content-Length"))?;
            if length > MAX_BODY {
                return Err(HttpError::BadResponse("body too large"));
            }
            while self.len < head_end + length {
                self.fill().await?;
            }
            let body = self.buf[head_end..head_end + length].to_vec();
            self.consume(head_end + length);
            body
        };
        Ok(Response { status, body })
    }

    /// Drops the first `n` buffered bytes (one response).
    fn consume(&mut self, n: usize) {
        self.buf.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// Decodes a complete `Transfer-Encoding: chunked` body at the start of `b`; returns it and
/// the bytes it took, or `None` while it is incomplete (or malformed).
fn dechunk_prefix(mut b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = b.len();
    let mut out = Vec::new();
    loop {
        let eol = memchr::memmem::find(b, b"\r\n")?;
        let line = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            // No trailers from roomcast: the final CRLF ends the body.
            b = b.strip_prefix(b"\r\n")?;
            return Some((out, total - b.len()));
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Decodes a whole `Transfer-Encoding: chunked` body.
pub(crate) fn dechunk(b: &[u8]) -> Option<Vec<u8>> {
    let mut with_end = b.to_vec();
    if !with_end.ends_with(b"\r\n\r\n") {
        with_end.extend_from_slice(b"\r\n");
    }
    dechunk_prefix(&with_end).map(|(body, _)| body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_prefixes_decode() {
        let raw = b"4\r\nabcd\r\n2\r\nef\r\n0\r\n\r\nHTTP/1.1 200";
        let (body, used) = dechunk_prefix(raw).expect("complete");
        assert_eq!(body, b"abcdef");
        assert_eq!(&raw[used..], b"HTTP/1.1 200");
        assert!(dechunk_prefix(b"4\r\nab").is_none());
        assert!(dechunk_prefix(b"zz\r\n").is_none());
    }

    #[tokio::test]
    async fn keep_alive_requests_read_lengths_and_chunks() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await?;
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            // Both requests, then both responses in one write (coalesced).
            while memchr::memmem::find_iter(&seen, b"\r\n\r\n").count() < 2 {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
            s.write_all(
                b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\
                  transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            )
            .await?;
            anyhow::Ok(seen)
        });
        let mut conn = HttpConn::connect(addr, "x").await?;
        // Pipelined by hand: write the second request before reading the first response.
        conn.stream
            .write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let second = conn.request("GET", "/b", &[("X-A", "1")], b"").await;
        // The first response read belongs to /a (201), the next to /b.
        let first = second?;
        assert_eq!((first.status, first.body.as_slice()), (201, &b"ok"[..]));
        let next = conn.read_response().await?;
        assert_eq!((next.status, next.body.as_slice()), (200, &b"abc"[..]));
        let seen = server.await??;
        assert!(memchr::memmem::find(&seen, b"X-A: 1\r\n").is_some());
        Ok(())
    }
}
