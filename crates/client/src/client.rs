//! [`RoomcastClient`]: the handle applications hold. It is cheap to clone; every call
//! becomes a command to the driver task (driver.rs), which owns the socket, so no lock is
//! ever held across an await. A [`Subscription`] is a `Stream` of one room's events.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::auth::Ed25519Credentials;
use crate::driver::{Command, Driver, DriverConfig};
use crate::error::Error;
use crate::options::{ClientOptions, TokenSource};
use crate::room::Position;

/// The connection state, in the order a session goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The first attempt.
    Connecting,
    /// `welcome` received, rooms resubscribed.
    Connected,
    /// Lost; waiting for the next attempt.
    Disconnected,
    /// A later attempt.
    Reconnecting,
    /// Final: the client stopped (see [`RoomcastClient::closed_reason`]).
    Closed,
}

/// Notifications that belong to no request or subscription.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// The state changed.
    State(State),
    /// A `welcome` on every (re)connect.
    Welcome(Value),
    /// A room could not be recovered exactly (`gap`, `epoch_changed`); re-fetch its state.
    RecoveryFailed(Value),
    /// The server removed the client from a room (e.g. a refreshed token no longer allows it).
    Unsubscribed(Value),
    /// A `refresh` was acked.
    TokenRefreshed(Value),
    /// A frame outside any followed room (`user_left`, admin broadcasts, an `error` without id).
    Message(Value),
    /// Something that did not end the client (a failed attempt, a refused resubscribe).
    Error(String),
}

/// How to reach the server and who the client is.
#[derive(Clone, Default)]
pub struct Builder {
    url: String,
    client_id: Option<String>,
    token: Option<String>,
    token_source: Option<TokenSource>,
    ed25519: Option<Ed25519Credentials>,
    stream: Option<String>,
    options: ClientOptions,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// The client id (defaults to the Ed25519 collective id).
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// A JWT, sent as `Authorization: Bearer`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A token source: called before connecting without a token, on `token_expiring`
    /// (when `welcome.features` has `refresh`) and after an authentication close.
    pub fn token_source(mut self, source: TokenSource) -> Self {
        self.token_source = Some(source);
        self
    }

    /// Authenticate with the Ed25519 challenge (`/ws/{collective}?auth=ed25519`).
    pub fn ed25519(mut self, credentials: Ed25519Credentials) -> Self {
        self.ed25519 = Some(credentials);
        self
    }

    /// Connect to a trading stream: `portfolio`, `orders` or `market`
    /// (`/ws/{collective}/{stream}`); its room is followed with [`RoomcastClient::listen`].
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.stream = Some(stream.into());
        self
    }

    /// Tunables.
    pub fn options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// Starts the connection loop and waits for the first `welcome`.
    ///
    /// Fails with [`Error::Closed`] if the client stops (fatal close code, refused
    /// handshake, attempts used up) before it ever connected. Must run inside tokio.
    pub async fn connect(self) -> Result<RoomcastClient, Error> {
        Ok(self.start(None).await?.0)
    }

    /// [`connect`](Self::connect), following a room the server joins by itself from the
    /// very first connection (a stream's `orders:{c}`, `general`), so nothing it sends
    /// before the first `welcome` returns, such as a stream's snapshot, is missed.
    pub async fn connect_listening(
        self,
        room: &str,
    ) -> Result<(RoomcastClient, Subscription), Error> {
        let (client, sub) = self.start(Some(room.to_owned())).await?;
        let sub = sub.ok_or(Error::Disconnected)?;
        Ok((client, sub))
    }

    async fn start(
        self,
        listen: Option<String>,
    ) -> Result<(RoomcastClient, Option<Subscription>), Error> {
        let owner = self
            .client_id
            .clone()
            .or_else(|| self.ed25519.as_ref().map(|k| k.collective_id().to_owned()))
            .ok_or(Error::Closed {
                code: None,
                reason: "a client id or Ed25519 credentials are required".into(),
            })?;
        let (cmd_tx, cmd_rx) = mpsc::channel(self.options.offline_queue.max(1));
        let (state_tx, mut state_rx) = watch::channel(State::Connecting);
        let (events, _) = broadcast::channel(256);
        let (closed_tx, closed_rx) = watch::channel(None);
        let mut sub = None;
        let mut initial = None;
        if let Some(room) = listen {
            let (tx, rx) = mpsc::channel(self.options.subscription_buffer.max(1));
            sub = Some(Subscription {
                room: room.clone(),
                rx,
            });
            initial = Some((room, tx));
        }
        let config = DriverConfig {
            listen: initial,
            base: self.url.trim_end_matches('/').to_owned(),
            owner,
            token: self.token,
            token_source: self.token_source,
            ed25519: self.ed25519,
            stream: self.stream,
            options: self.options.clone(),
        };
        let driver = Driver::new(config, cmd_rx, state_tx, events.clone(), closed_tx);
        tokio::spawn(driver.run());
        let client = RoomcastClient {
            inner: Arc::new(Inner {
                cmds: cmd_tx,
                events,
                state: state_rx.clone(),
                closed: closed_rx,
                options: self.options,
            }),
        };
        loop {
            match *state_rx.borrow_and_update() {
                State::Connected => return Ok((client, sub)),
                State::Closed => return Err(client.closed_error()),
                _ => {}
            }
            if state_rx.changed().await.is_err() {
                return Err(client.closed_error());
            }
        }
    }
}

#[derive(Debug)]
struct Inner {
    cmds: mpsc::Sender<Command>,
    events: broadcast::Sender<ClientEvent>,
    state: watch::Receiver<State>,
    closed: watch::Receiver<Option<Error>>,
    options: ClientOptions,
}

/// One logical roomcast session that survives reconnects (cheap to clone).
///
/// ```no_run
/// # async fn demo() -> Result<(), roomcast_client::Error> {
/// use futures_util::StreamExt;
/// let client = roomcast_client::RoomcastClient::builder("ws://127.0.0.1:8080")
///     .client_id("alice")
///     .connect()
///     .await?;
/// let mut chat = client.subscribe("chat").await?;
/// client.publish("chat", serde_json::json!({"text": "hello"})).await?;
/// while let Some(event) = chat.next().await {
///     println!("{event}");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RoomcastClient {
    inner: Arc<Inner>,
}

impl RoomcastClient {
    /// Starts building a client for the server at `url` (`ws://host:port`).
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder {
            url: url.into(),
            ..Builder::default()
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.inner.state.borrow()
    }

    /// A watch of the state, to await transitions.
    pub fn state_watch(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    /// Notifications (lossy when not read: a bounded broadcast of 256).
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// Why the client stopped, once it is [`State::Closed`].
    pub fn closed_reason(&self) -> Option<Error> {
        self.inner.closed.borrow().clone()
    }

    /// Waits until the client stops; returns why.
    pub async fn wait_closed(&self) -> Error {
        let mut rx = self.inner.state.clone();
        while *rx.borrow_and_update() != State::Closed {
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.closed_error()
    }

    fn closed_error(&self) -> Error {
        self.closed_reason().unwrap_or(Error::Closed {
            code: None,
            reason: "client stopped".into(),
        })
    }

    /// Joins `room` and returns its events as a stream, each exactly once, in order; with
    /// `since`, the events after it are replayed first. Resolves on the ack.
    pub async fn subscribe(&self, room: &str) -> Result<Subscription, Error> {
        self.subscribe_since(room, None).await
    }

    /// [`subscribe`](Self::subscribe) with a starting position.
    pub async fn subscribe_since(
        &self,
        room: &str,
        since: Option<Position>,
    ) -> Result<Subscription, Error> {
        let (tx, rx) = mpsc::channel(self.inner.options.subscription_buffer.max(1));
        let (reply, ack) = oneshot::channel();
        self.send(Command::Subscribe {
            room: room.to_owned(),
            since,
            sink: tx,
            joined_by_server: false,
            reply: Some(reply),
        })
        .await?;
        self.await_reply(ack).await?;
        Ok(Subscription {
            room: room.to_owned(),
            rx,
        })
    }

    /// Follows a room the server joins by itself (`general`, a trading stream's room).
    pub async fn listen(&self, room: &str) -> Result<Subscription, Error> {
        let (tx, rx) = mpsc::channel(self.inner.options.subscription_buffer.max(1));
        self.send(Command::Subscribe {
            room: room.to_owned(),
            since: None,
            sink: tx,
            joined_by_server: true,
            reply: None,
        })
        .await?;
        Ok(Subscription {
            room: room.to_owned(),
            rx,
        })
    }

    /// Publishes to a joined room; returns the ack (`sequence`, `epoch`).
    pub async fn publish(&self, room: &str, content: Value) -> Result<Value, Error> {
        self.request(json!({"type": "message", "room": room, "content": content}))
            .await
    }

    /// The sorted client ids in `room`.
    pub async fn presence(&self, room: &str) -> Result<Vec<String>, Error> {
        let ack = self
            .request(json!({"type": "presence", "room": room}))
            .await?;
        Ok(ack
            .get("members")
            .and_then(Value::as_array)
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Sends `message` (a JSON object) with a fresh `id` and returns its reply.
    ///
    /// Waits for the connection while reconnecting (see [`crate::OfflinePolicy`]); fails
    /// with [`Error::Server`] on an error reply, [`Error::Disconnected`] if the link drops
    /// first and [`Error::Timeout`] after `request_timeout`.
    pub async fn request(&self, message: Value) -> Result<Value, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Request { message, reply }).await?;
        self.await_reply(rx).await
    }

    /// Closes the connection (1000) and stops reconnecting; idempotent.
    pub async fn close(&self) {
        let _ = self.inner.cmds.send(Command::Close).await;
        self.wait_closed().await;
    }

    async fn send(&self, cmd: Command) -> Result<(), Error> {
        self.inner
            .cmds
            .send(cmd)
            .await
            .map_err(|_| self.closed_error())
    }

    async fn await_reply(
        &self,
        rx: oneshot::Receiver<Result<Value, Error>>,
    ) -> Result<Value, Error> {
        let limit = self.inner.options.request_timeout;
        match tokio::time::timeout(limit, rx).await {
            Err(_) => Err(Error::Timeout(limit)),
            Ok(Err(_)) => Err(self.closed_error()),
            Ok(Ok(result)) => result,
        }
    }
}

/// The events of one room, exactly once and in order across reconnects (a `Stream`).
///
/// `recovery_failed` and snapshots arrive in the stream too. Dropping it leaves the room
/// (when the room's next event finds no reader).
/// The stream ends when the client stops.
#[derive(Debug)]
pub struct Subscription {
    room: String,
    rx: mpsc::Receiver<Value>,
}

impl Subscription {
    /// The room name.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// The next event (`None` once the client stopped).
    pub async fn recv(&mut self) -> Option<Value> {
        self.rx.recv().await
    }
}

impl Stream for Subscription {
    type Item = Value;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Value>> {
        self.rx.poll_recv(cx)
    }
}
