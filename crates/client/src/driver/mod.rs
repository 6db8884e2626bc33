//! The driver task: the only owner of the socket. It runs the connection loop (connect,
//! authenticate, resubscribe, read until closed, back off, again), the request table, the
//! per-room recovery state and token refresh, and consumes the handles' [`Command`]s.
//! One task, one `select!`: nothing is shared with the handles but channels.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::auth::Ed25519Credentials;
use crate::backoff::Backoff;
use crate::client::{ClientEvent, State};
use crate::close_action::{action_for, CloseAction};
use crate::error::Error;
use crate::options::{ClientOptions, OfflinePolicy, TokenSource};
use crate::room::{Position, RoomState};

mod requests;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Reply = oneshot::Sender<Result<Value, Error>>;

/// Handshake answers that no retry can fix (bad client id, origin, path); 429/503 retry.
const STOP_STATUSES: [u16; 4] = [400, 401, 403, 404];

/// Pending-request count at which entries of timed-out callers are pruned.
const PENDING_PRUNE_AT: usize = 1024;

/// What a handle asks the driver to do.
pub(crate) enum Command {
    Request {
        message: Value,
        reply: Reply,
    },
    Subscribe {
        room: String,
        since: Option<Position>,
        sink: mpsc::Sender<Value>,
        joined_by_server: bool,
        reply: Option<Reply>,
    },
    Close,
}

/// Who connects where, validated by the builder.
pub(crate) struct DriverConfig {
    pub(crate) base: String,
    pub(crate) owner: String,
    pub(crate) token: Option<String>,
    pub(crate) token_source: Option<TokenSource>,
    pub(crate) ed25519: Option<Ed25519Credentials>,
    pub(crate) stream: Option<String>,
    pub(crate) options: ClientOptions,
    /// A server-joined room followed from the first connection.
    pub(crate) listen: Option<(String, mpsc::Sender<Value>)>,
}

/// A request in flight, keyed by its id.
enum Pending {
    Request {
        reply: Reply,
        publish_to: Option<String>,
    },
    Join {
        room: String,
        with_since: bool,
    },
    Refresh {
        token: String,
    },
    Ignore,
}

/// How one connection attempt ended.
enum Ended {
    /// The link closed (`code` None: no close frame), after being up `up_for` if it was.
    Lost {
        code: Option<u16>,
        reason: String,
        up_for: Option<Duration>,
    },
    /// The HTTP upgrade was refused with this status.
    Refused(u16),
    /// `close()` or every handle dropped.
    ClientClose,
}

/// The connection loop's state.
pub(crate) struct Driver {
    cfg: DriverConfig,
    cmds: mpsc::Receiver<Command>,
    state: watch::Sender<State>,
    events: broadcast::Sender<ClientEvent>,
    closed: watch::Sender<Option<Error>>,
    rooms: HashMap<String, RoomState>,
    auto_room: Option<String>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    offline: VecDeque<(Value, Reply)>,
    backoff: Backoff,
    features: Vec<String>,
}

impl Driver {
    pub(crate) fn new(
        cfg: DriverConfig,
        cmds: mpsc::Receiver<Command>,
        state: watch::Sender<State>,
        events: broadcast::Sender<ClientEvent>,
        closed: watch::Sender<Option<Error>>,
    ) -> Driver {
        let o = &cfg.options;
        let backoff = Backoff::new(o.backoff_base, o.backoff_cap, o.max_attempts);
        let auto_room = match cfg.stream.as_deref() {
            None => Some("general".to_owned()),
            Some(s @ ("portfolio" | "orders")) => Some(format!("{s}:{}", cfg.owner)),
            Some(_) => None,
        };
        let mut rooms = HashMap::new();
        let mut cfg = cfg;
        if let Some((room, sink)) = cfg.listen.take() {
            rooms.insert(room.clone(), RoomState::new(room, true, None, sink, None));
        }
        Driver {
            cfg,
            cmds,
            state,
            events,
            closed,
            rooms,
            auto_room,
            pending: HashMap::new(),
            next_id: 1,
            offline: VecDeque::new(),
            backoff,
            features: Vec::new(),
        }
    }

    /// Runs until the client stops.
    pub(crate) async fn run(mut self) {
        if self.cfg.token.is_none() {
            if let Some(source) = &self.cfg.token_source {
                self.cfg.token = source().await;
            }
        }
        let mut first = true;
        loop {
            self.set_state(if first {
                State::Connecting
            } else {
                State::Reconnecting
            });
            match self.attempt().await {
                Ended::ClientClose => return self.stop(None, "client closed".into()),
                Ended::Refused(status) if STOP_STATUSES.contains(&status) => {
                    return self.stop(None, format!("handshake refused: HTTP {status}"));
                }
                Ended::Refused(status) => self.emit(ClientEvent::Error(format!("HTTP {status}"))),
                Ended::Lost {
                    code,
                    reason,
                    up_for,
                } => {
                    if let Some(up) = up_for {
                        first = false;
                        if up >= self.cfg.options.stable_after {
                            self.backoff.reset();
                        }
                    }
                    match action_for(code) {
                        CloseAction::Reconnect => {}
                        CloseAction::Stop => {
                            return self.stop(code, format!("closed by server: {reason}"));
                        }
                        CloseAction::Reauthenticate => {
                            let fresh = match &self.cfg.token_source {
                                Some(source) => source().await,
                                None => None,
                            };
                            match fresh {
                                Some(t) if Some(&t) != self.cfg.token.as_ref() => {
                                    self.cfg.token = Some(t);
                                }
                                _ => {
                                    return self
                                        .stop(code, format!("authentication refused: {reason}"));
                                }
                            }
                        }
                    }
                }
            }
            let Some(delay) = self.backoff.next_delay() else {
                return self.stop(None, "reconnect attempts used up".into());
            };
            self.set_state(State::Disconnected);
            if !self.idle(delay).await {
                return self.stop(None, "client closed".into());
            }
        }
    }

    /// Waits `delay` while taking commands; false when the client is closed meanwhile.
    async fn idle(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => return false,
                    Some(cmd) => self.offline_command(cmd),
                },
            }
        }
    }

    fn offline_command(&mut self, cmd: Command) {
        match cmd {
            Command::Request { message, reply } => {
                if self.cfg.options.offline_policy == OfflinePolicy::Fail {
                    let _ = reply.send(Err(Error::NotConnected("not connected")));
                } else if self.offline.len() >= self.cfg.options.offline_queue {
                    let _ = reply.send(Err(Error::NotConnected("offline queue is full")));
                } else {
                    self.offline.push_back((message, reply));
                }
            }
            Command::Subscribe {
                room,
                since,
                sink,
                joined_by_server,
                reply,
            } => {
                let _ = self.add_room(room, since, sink, joined_by_server, reply);
            }
            Command::Close => {}
        }
    }

    /// Registers a room; false (and the reply answered) when it is followed already.
    fn add_room(
        &mut self,
        room: String,
        since: Option<Position>,
        sink: mpsc::Sender<Value>,
        joined_by_server: bool,
        reply: Option<Reply>,
    ) -> bool {
        if self.rooms.get(&room).is_some_and(|r| !r.sink.is_closed()) {
            if let Some(reply) = reply {
                let _ = reply.send(Err(Error::AlreadySubscribed(room)));
            }
            return false;
        }
        let state = RoomState::new(room.clone(), joined_by_server, since, sink, reply);
        self.rooms.insert(room, state);
        true
    }

    fn url(&self) -> String {
        let owner = encode(&self.cfg.owner);
        let mut query = Vec::new();
        let path = match &self.cfg.stream {
            Some(s) => format!("/ws/{owner}/{}", encode(s)),
            None => {
                if self.cfg.ed25519.is_some() && self.cfg.token.is_none() {
                    query.push("auth=ed25519".to_owned());
                }
                format!("/ws/{owner}")
            }
        };
        let auto = self.auto_room.as_ref().and_then(|r| self.rooms.get(r));
        if let Some(p) = auto.and_then(|r| r.position.as_ref()) {
            query.push(format!("last_sequence={}", p.sequence));
            query.push(format!("epoch={}", encode(&p.epoch)));
        }
        let mut url = format!("{}{path}", self.cfg.base);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }

    async fn attempt(&mut self) -> Ended {
        let lost = |reason: String| Ended::Lost {
            code: None,
            reason,
            up_for: None,
        };
        let mut request = match self.url().into_client_request() {
            Ok(r) => r,
            Err(e) => return lost(e.to_string()),
        };
        if let Some(token) = &self.cfg.token {
            if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
                request.headers_mut().insert(AUTHORIZATION, value);
            }
        }
        let limit = self.cfg.options.connect_timeout;
        let connecting = tokio_tungstenite::connect_async(request);
        let mut ws = match tokio::time::timeout(limit, connecting).await {
            Err(_) => return lost(format!("connect timed out after {limit:?}")),
            Ok(Err(tungstenite::Error::Http(resp))) => {
                return Ended::Refused(resp.status().as_u16())
            }
            Ok(Err(e)) => {
                self.emit(ClientEvent::Error(format!("connect: {e}")));
                return lost(e.to_string());
            }
            Ok(Ok((ws, _))) => ws,
        };
        let welcome = match tokio::time::timeout(limit, self.handshake(&mut ws)).await {
            Err(_) => return lost("no welcome in time".into()),
            Ok(Err(ended)) => return ended,
            Ok(Ok(welcome)) => welcome,
        };
        let up_since = Instant::now();
        let ended = self.serve(&mut ws, &welcome).await;
        for (_, pending) in self.pending.drain() {
            if let Pending::Request { reply, .. } = pending {
                let _ = reply.send(Err(Error::Disconnected));
            }
        }
        match ended {
            Ended::Lost { code, reason, .. } => Ended::Lost {
                code,
                reason,
                up_for: Some(up_since.elapsed()),
            },
            other => other,
        }
    }

    /// Reads until `welcome`, answering an Ed25519 challenge on the way.
    async fn handshake(&mut self, ws: &mut Ws) -> Result<Value, Ended> {
        loop {
            let msg = match ws.next().await {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Value>(t.as_str()) {
                    Ok(v) => v,
                    Err(e) => return Err(lost_with(None, e.to_string())),
                },
                Some(Ok(Message::Close(frame))) => return Err(closed_by(frame)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(lost_with(None, e.to_string())),
                None => return Err(lost_with(None, "connection ended".into())),
            };
            match msg.get("type").and_then(Value::as_str) {
                Some("auth_challenge") => {
                    let Some(key) = &self.cfg.ed25519 else {
                        return Err(lost_with(None, "challenge without an Ed25519 key".into()));
                    };
                    let challenge = msg.get("challenge").and_then(Value::as_str).unwrap_or("");
                    let answer = json!({"type": "auth_response", "signature": key.sign(challenge)});
                    if let Err(e) = ws.send(Message::text(answer.to_string())).await {
                        return Err(lost_with(None, e.to_string()));
                    }
                }
                Some("welcome") => return Ok(msg),
                _ => {}
            }
        }
    }

    async fn serve(&mut self, ws: &mut Ws, welcome: &Value) -> Ended {
        let interval = welcome
            .get("heartbeat_interval")
            .and_then(Value::as_u64)
            .unwrap_or(30);
        self.features = welcome
            .get("features")
            .and_then(Value::as_array)
            .map(|f| {
                f.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        self.emit(ClientEvent::Welcome(welcome.clone()));
        let dead_after = Duration::from_secs(interval) + self.cfg.options.heartbeat_timeout;
        if let Err(e) = self.resume(ws).await {
            return lost_with(None, e.to_string());
        }
        self.set_state(State::Connected);
        let mut deadline = Instant::now() + dead_after;
        loop {
            tokio::select! {
                frame = ws.next() => {
                    deadline = Instant::now() + dead_after;
                    match frame {
                        Some(Ok(Message::Text(t))) => {
                            let Ok(msg) = serde_json::from_str::<Value>(t.as_str()) else {
                                self.emit(ClientEvent::Error("server sent invalid JSON".into()));
                                continue;
                            };
                            if let Err(e) = self.dispatch(ws, msg).await {
                                return lost_with(None, e.to_string());
                            }
                        }
                        Some(Ok(Message::Close(frame))) => return closed_by(frame),
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return lost_with(None, e.to_string()),
                        None => return lost_with(None, "connection ended".into()),
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Command::Close) => {
                        let frame = CloseFrame { code: WsCloseCode::Normal, reason: "client closed".into() };
                        let _ = ws.send(Message::Close(Some(frame))).await;
                        let drain = async { while let Some(Ok(_)) = ws.next().await {} };
                        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
                        return Ended::ClientClose;
                    }
                    Some(Command::Request { message, reply }) => {
                        if let Err(e) = self.send_request(ws, message, reply).await {
                            return lost_with(None, e.to_string());
                        }
                    }
                    Some(Command::Subscribe { room, since, sink, joined_by_server, reply }) => {
                        if self.add_room(room.clone(), since, sink, joined_by_server, reply)
                            && !joined_by_server
                        {
                            if let Err(e) = self.join(ws, &room).await {
                                return lost_with(None, e.to_string());
                            }
                        }
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    self.emit(ClientEvent::Error(format!("no traffic for {dead_after:?}: link dead")));
                    return lost_with(None, "heartbeat timeout".into());
                }
            }
        }
    }

    /// Resubscribes every room (with `since` when known), then sends the queued requests.
    async fn resume(&mut self, ws: &mut Ws) -> Result<(), tungstenite::Error> {
        let rooms: Vec<String> = self
            .rooms
            .values()
            .filter(|r| !r.joined_by_server)
            .map(|r| r.name.clone())
            .collect();
        for room in rooms {
            self.join(ws, &room).await?;
        }
        while let Some((message, reply)) = self.offline.pop_front() {
            self.send_request(ws, message, reply).await?;
        }
        Ok(())
    }

    fn stop(&mut self, code: Option<u16>, reason: String) {
        let error = Error::Closed { code, reason };
        let _ = self.closed.send(Some(error.clone()));
        for (_, reply) in self.offline.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
        for (_, room) in self.rooms.drain() {
            if let Some(reply) = room.join_reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            match cmd {
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(error.clone()));
                }
                Command::Subscribe {
                    reply: Some(reply), ..
                } => {
                    let _ = reply.send(Err(error.clone()));
                }
                _ => {}
            }
        }
        self.set_state(State::Closed);
    }

    fn set_state(&self, state: State) {
        let changed = self.state.send_if_modified(|s| {
            let change = *s != state && *s != State::Closed;
            if change {
                *s = state;
            }
            change
        });
        if changed {
            self.emit(ClientEvent::State(state));
        }
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }
}

fn lost_with(code: Option<u16>, reason: String) -> Ended {
    Ended::Lost {
        code,
        reason,
        up_for: None,
    }
}

fn closed_by(frame: Option<CloseFrame>) -> Ended {
    match frame {
        Some(f) => lost_with(Some(u16::from(f.code)), f.reason.to_string()),
        None => lost_with(None, "closed without a code".into()),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
