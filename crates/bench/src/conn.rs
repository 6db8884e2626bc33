//! Where every connection of a run comes from: the target parsed from `--url`, the auth
//! token (`--token` as is, or an HS256 JWT minted per client from `--jwt-secret`), the
//! local source address, and the HTTP upgrade.
//!
//! Source addresses: one source IP can hold about one ephemeral port range of
//! connections to one server port (~28k here), and `connect` gets slower long before
//! that, because the kernel searches the range for a free port on every call (measured
//! here: 19.5k connections from one address cost the generator ~230 µs of CPU each, from
//! eight addresses ~55 µs). So on a loopback IPv4 target with more than
//! [`SPREAD_FROM`] connections, and whenever `--source-ips` is given, each socket is bound
//! to the next address (round robin) with `IP_BIND_ADDRESS_NO_PORT`, so the kernel picks
//! the port at `connect` time per 4-tuple instead of reserving one per address at
//! `bind` time. `--source-ips 127.0.0.1` pins everything to one address.
//!
//! A URL whose path ends in `/socket.io` names a Socket.IO 4 server: connections upgrade at
//! its WebSocket endpoint and speak the same messages inside Socket.IO packets
//! ([`crate::socketio`]).
//!
//! The upgrade is written and checked here (request, `101`, `Sec-WebSocket-Accept`) so
//! the bytes the server sends right after the response (its `welcome`) stay in the
//! connection's read buffer for the codec in [`crate::ws`].

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use jsonwebtoken::{EncodingKey, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::args::{CommonArgs, SourceIps};
use crate::ws::{BufferSize, Dialect, WsConn};

/// Largest upgrade response accepted.
const MAX_RESPONSE: usize = 16 * 1024;

/// Ephemeral ports left to the rest of the machine when filling a source address.
const PORT_MARGIN: u64 = 1000;

/// Connections from which a loopback run spreads over several source addresses, and how
/// many each address then carries at most.
pub(crate) const SPREAD_FROM: u64 = 4096;

/// The server, as given by `--url`.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The resolved address.
    pub(crate) addr: SocketAddr,
    /// The `Host` header.
    pub(crate) host: String,
    /// Path before `/ws/{client_id}` (empty for the root); for Socket.IO, its endpoint.
    pub(crate) prefix: String,
    /// Plain WebSocket or Socket.IO.
    pub(crate) dialect: Dialect,
}

impl Target {
    /// Parses and resolves `ws://host[:port][/prefix]`.
    pub(crate) async fn resolve(url: &str) -> anyhow::Result<Target> {
        let rest = if let Some(r) = url.strip_prefix("ws://") {
            r
        } else if url.starts_with("wss://") {
            bail!(
                "{url}: wss:// is not supported; point the bench at the server's plain ws:// port"
            )
        } else {
            bail!("{url}: the URL must start with ws://")
        };
        if rest.contains(['?', '#']) {
            bail!("{url}: the URL must not carry a query or fragment");
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() {
            bail!("{url}: no host");
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolved to no address"))?;
        let mut prefix = path.trim_end_matches('/').to_string();
        // `ws://host/ws` names the endpoint itself.
        if prefix.ends_with("/ws") {
            prefix.truncate(prefix.len() - 3);
        }
        let dialect = if prefix.ends_with("/socket.io") {
            Dialect::SocketIo
        } else {
            Dialect::Plain
        };
        Ok(Target {
            addr,
            host: authority.to_string(),
            prefix,
            dialect,
        })
    }
}

/// How connections prove who they are.
#[derive(Clone)]
enum Auth {
    None,
    Token(String),
    Jwt(EncodingKey),
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
}

impl Auth {
    fn token_for(&self, client_id: &str) -> Result<Option<String>, ConnectError> {
        match self {
            Auth::None => Ok(None),
            Auth::Token(t) => Ok(Some(t.clone())),
            Auth::Jwt(key) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let claims = Claims {
                    sub: client_id,
                    iat: now,
                    exp: now + 24 * 3600,
                };
                jsonwebtoken::encode(&Header::default(), &claims, key)
                    .map(Some)
                    .map_err(|e| ConnectError::Token(e.to_string()))
            }
        }
    }
}

/// Why a connection attempt failed; [`ConnectError::reason`] groups them for reports.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// TCP connect or socket setup failed.
    #[error("tcp: {0}")]
    Tcp(std::io::Error),
    /// The upgrade request or response failed on the wire.
    #[error("handshake i/o: {0}")]
    Io(std::io::Error),
    /// The server answered with another status than 101.
    #[error("HTTP {0}")]
    Status(u16),
    /// The server's upgrade response was malformed.
    #[error("bad upgrade response: {0}")]
    BadResponse(&'static str),
    /// Minting the JWT failed.
    #[error("token: {0}")]
    Token(String),
    /// The attempt (or a step after it) took too long.
    #[error("timed out")]
    Timeout,
    /// The server closed the connection during setup.
    #[error("closed by server (code {0:?})")]
    Closed(Option<u16>),
    /// The server refused a setup request.
    #[error("server error {0}")]
    Refused(String),
    /// The WebSocket stream failed during setup.
    #[error("{0}")]
    Ws(#[from] crate::ws::WsError),
}

impl ConnectError {
    /// A short grouping key for failure counts (`tcp: connection refused`, `http 429`).
    pub(crate) fn reason(&self) -> String {
        match self {
            ConnectError::Tcp(e) => format!("tcp: {}", e.kind()),
            ConnectError::Io(e) => format!("handshake i/o: {}", e.kind()),
            ConnectError::Status(s) => format!("http {s}"),
            ConnectError::BadResponse(_) => "bad upgrade response".into(),
            ConnectError::Token(_) => "token".into(),
            ConnectError::Timeout => "timeout".into(),
            ConnectError::Closed(c) => match c {
                Some(c) => format!("closed {c}"),
                None => "closed".into(),
            },
            ConnectError::Refused(code) => format!("error {code}"),
            ConnectError::Ws(_) => "websocket".into(),
        }
    }
}

/// Opens connections to the target, one per call.
pub(crate) struct Connector {
    target: Target,
    auth: Auth,
    sources: Vec<IpAddr>,
    next_source: AtomicUsize,
    /// Deadline of one whole setup (connect, upgrade, first request).
    pub(crate) timeout: Duration,
}

impl Connector {
    /// A connector to `url` for a run that will hold up to `connections` sockets at once.
    /// Resolves the URL and chooses source addresses.
    pub(crate) async fn new(
        common: &CommonArgs,
        url: &str,
        connections: u64,
    ) -> anyhow::Result<Connector> {
        let target = Target::resolve(url).await?;
        let auth = match (&common.token, &common.jwt_secret) {
            (Some(t), _) => Auth::Token(t.clone()),
            (None, Some(s)) => Auth::Jwt(EncodingKey::from_secret(s.as_bytes())),
            (None, None) => Auth::None,
        };
        let sources = choose_sources(common.source_ips.as_ref(), target.addr, connections)?;
        Ok(Connector {
            target,
            auth,
            sources,
            next_source: AtomicUsize::new(0),
            timeout: common.connect_timeout.get(),
        })
    }

    /// The source addresses in use (empty: the kernel's choice).
    pub(crate) fn sources(&self) -> &[IpAddr] {
        &self.sources
    }

    /// TCP connect + upgrade for `client_id`, bounded by [`Connector::timeout`]. Returns
    /// the connection and how long TCP + upgrade took.
    pub(crate) async fn connect(
        &self,
        client_id: &str,
        size: BufferSize,
    ) -> Result<(WsConn, Duration), ConnectError> {
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.timeout, self.connect_inner(client_id, size)).await {
            Ok(Ok(conn)) => Ok((conn, started.elapsed())),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    async fn connect_inner(
        &self,
        client_id: &str,
        size: BufferSize,
    ) -> Result<WsConn, ConnectError> {
        let source = if self.sources.is_empty() {
            None
        } else {
            let i = self.next_source.fetch_add(1, Ordering::Relaxed);
            Some(self.sources[i % self.sources.len()])
        };
        let stream = tcp_connect(self.target.addr, source)
            .await
            .map_err(ConnectError::Tcp)?;
        let token = self.auth.token_for(client_id)?;
        self.upgrade(stream, client_id, token.as_deref(), size)
            .await
    }

    async fn upgrade(
        &self,
        mut stream: TcpStream,
        client_id: &str,
        token: Option<&str>,
        size: BufferSize,
    ) -> Result<WsConn, ConnectError> {
        let key = generate_key();
        let mut req = String::with_capacity(256);
        match self.target.dialect {
            Dialect::Plain => {
                let _ = write!(req, "GET {}/ws/{}", self.target.prefix, client_id);
                if let Some(t) = token {
                    req.push_str("?token=");
                    percent_encode(t, &mut req);
                }
            }
            Dialect::SocketIo => {
                req.push_str("GET ");
                req.push_str(&crate::socketio::upgrade_path(
                    &self.target.prefix,
                    client_id,
                    token,
                ));
            }
        }
        let _ = write!(
            req,
            " HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
             User-Agent: roomcast-bench\r\n\r\n",
            self.target.host
        );
        stream
            .write_all(req.as_bytes())
            .await
            .map_err(ConnectError::Io)?;
        let mut buf = vec![0u8; 1024];
        let mut len = 0;
        let head_end = loop {
            if len == buf.len() {
                if buf.len() >= MAX_RESPONSE {
                    return Err(ConnectError::BadResponse("response headers too large"));
                }
                buf.resize(buf.len() * 2, 0);
            }
            let n = stream
                .read(&mut buf[len..])
                .await
                .map_err(ConnectError::Io)?;
            if n == 0 {
                return Err(ConnectError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let from = len.saturating_sub(3);
            len += n;
            if let Some(i) = memchr::memmem::find(&buf[from..len], b"\r\n\r\n") {
                break from + i + 4;
            }
        };
        let head = std::str::from_utf8(&buf[..head_end])
            .map_err(|_| ConnectError::BadResponse("headers are not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or(ConnectError::BadResponse("no status line"))?;
        if status != 101 {
            return Err(ConnectError::Status(status));
        }
        let accept = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-accept"))
            .map(|(_, v)| v.trim())
            .ok_or(ConnectError::BadResponse("no Sec-WebSocket-Accept"))?;
        if accept != derive_accept_key(key.as_bytes()) {
            return Err(ConnectError::BadResponse("wrong Sec-WebSocket-Accept"));
        }
        let mut conn = WsConn::new(stream, &buf[head_end..len], size);
        if self.target.dialect == Dialect::SocketIo {
            crate::socketio::handshake(&mut conn, self.timeout).await?;
        }
        Ok(conn)
    }
}

/// Connects a TCP socket, from `source` when given (with `IP_BIND_ADDRESS_NO_PORT`).
async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        if ip.is_ipv4() {
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            )
            .map_err(std::io::Error::from)?;
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Source addresses for a run: `--source-ips` when given; otherwise, on an IPv4
/// loopback target with more than [`SPREAD_FROM`] connections, `127.0.0.2`, `127.0.0.3`,
/// … one per [`SPREAD_FROM`] connections; otherwise none (the kernel's choice).
fn choose_sources(
    given: Option<&SourceIps>,
    target: SocketAddr,
    connections: u64,
) -> anyhow::Result<Vec<IpAddr>> {
    let per_ip = crate::sys::ephemeral_ports()
        .saturating_sub(PORT_MARGIN)
        .max(1000);
    if let Some(s) = given {
        let ips = s.ips().to_vec();
        if ips.iter().any(|ip| ip.is_ipv4() != target.is_ipv4()) {
            bail!("--source-ips must be of the same IP family as the server address {target}");
        }
        if connections > per_ip * ips.len() as u64 {
            eprintln!(
                "warning: {connections} connections over {} source addresses exceed ~{per_ip} \
                 ephemeral ports per address; some connects may fail",
                ips.len()
            );
        }
        return Ok(ips);
    }
    match target.ip() {
        IpAddr::V4(v4) if v4.is_loopback() && connections > SPREAD_FROM => {
            let count = connections.div_ceil(SPREAD_FROM).min(250);
            let ips = (0..count)
                .map(|d| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + d as u8)))
                .collect();
            Ok(ips)
        }
        _ if connections > per_ip => bail!(
            "{connections} connections exceed the ~{per_ip} ephemeral ports of one source \
             address; pass --source-ips with local addresses to spread them over"
        ),
        _ => Ok(Vec::new()),
    }
}

/// Appends `s` percent-encoded for a query value.
pub(crate) fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A short tag that makes this run's client ids unique (`bench-<tag>-s12`).
pub(crate) fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0x00ff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_resolve() {
        let t = Target::resolve("ws://127.0.0.1:9000").await.expect("plain");
        assert_eq!(t.addr.port(), 9000);
        assert_eq!(t.prefix, "");
        let t = Target::resolve("ws://127.0.0.1:9000/rc/ws/")
            .await
            .expect("prefix");
        assert_eq!(t.prefix, "/rc");
        assert!(Target::resolve("wss://127.0.0.1:9000").await.is_err());
        assert!(Target::resolve("http://127.0.0.1:9000").await.is_err());
        assert!(Target::resolve("ws://127.0.0.1:9000/?a=b").await.is_err());
        assert_eq!(t.dialect, Dialect::Plain);
        let t = Target::resolve("ws://127.0.0.1:9000/socket.io")
            .await
            .expect("socket.io");
        assert_eq!(
            (t.dialect, t.prefix.as_str()),
            (Dialect::SocketIo, "/socket.io")
        );
    }

    #[test]
    fn sources_are_chosen_beyond_one_port_range() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        assert!(choose_sources(None, lo, 1000).expect("ok").is_empty());
        let many = choose_sources(None, lo, 60_000).expect("ok");
        assert_eq!(many.len(), 15, "{many:?}");
        assert_eq!(many[0], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(many[14], IpAddr::V4(Ipv4Addr::new(127, 0, 0, 16)));
        let pinned: SourceIps = "127.0.0.1".parse().expect("one address");
        assert_eq!(
            choose_sources(Some(&pinned), lo, 60_000).expect("ok").len(),
            1
        );
        let remote: SocketAddr = "10.1.2.3:80".parse().expect("addr");
        assert!(choose_sources(None, remote, 60_000).is_err());
    }

    #[test]
    fn tokens_are_percent_encoded() {
        let mut s = String::new();
        percent_encode("a b+c.d", &mut s);
        assert_eq!(s, "a%20b%2Bc.d");
    }
}
