//! [`Feed`]: a subscription whose events are applied to an [`ArenaState`]. A snapshot
//! replaces the state; after `recovery_failed` the feed is `stale` and ignores events
//! until the fresh snapshot the server sends next, so the state is never built across a
//! gap.

use serde_json::Value;

use super::state::{ArenaState, BookState};
use crate::auth::Ed25519Credentials;
use crate::client::{RoomcastClient, Subscription};
use crate::error::Error;
use crate::options::ClientOptions;

/// A subscription and the state kept from it.
#[derive(Debug)]
pub struct Feed<S> {
    sub: Subscription,
    state: S,
    ready: bool,
    stale: bool,
}

impl<S: ArenaState> Feed<S> {
    /// Wraps a subscription of a room of this kind.
    pub fn new(sub: Subscription) -> Feed<S> {
        Feed {
            sub,
            state: S::default(),
            ready: false,
            stale: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> &S {
        &self.state
    }

    /// True once a snapshot was applied.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// True between a `recovery_failed` and the next snapshot.
    pub fn stale(&self) -> bool {
        self.stale
    }

    /// Receives the next event, applies it and returns it (`None` once the client stopped).
    pub async fn next(&mut self) -> Option<Value> {
        let event = self.sub.recv().await?;
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        if kind == S::SNAPSHOT {
            self.state.replace(&event["data"]);
            self.ready = true;
            self.stale = false;
        } else if kind == "recovery_failed" {
            self.stale = true;
        } else if self.ready && !self.stale {
            self.state.apply(kind, &event["data"]);
        }
        Some(event)
    }

    /// Applies events until a snapshot has been applied.
    pub async fn until_ready(&mut self) -> Result<(), Error> {
        while !self.ready || self.stale {
            self.next().await.ok_or(Error::Disconnected)?;
        }
        Ok(())
    }
}

/// Subscribes `market:{symbol}` on any client; the `book_snapshot` comes first.
pub async fn follow_market(
    client: &RoomcastClient,
    symbol: &str,
) -> Result<Feed<BookState>, Error> {
    Ok(Feed::new(
        client.subscribe(&format!("market:{symbol}")).await?,
    ))
}

/// Opens a collective's `orders` or `portfolio` stream (`/ws/{collective}/{stream}`,
/// Ed25519 challenge) and returns its client and feed; the snapshot is the first event.
pub async fn follow_stream<S: ArenaState>(
    url: &str,
    credentials: Ed25519Credentials,
    stream: &str,
    options: ClientOptions,
) -> Result<(RoomcastClient, Feed<S>), Error> {
    let room = format!("{stream}:{}", credentials.collective_id());
    let (client, sub) = RoomcastClient::builder(url)
        .ed25519(credentials)
        .stream(stream)
        .options(options)
        .connect_listening(&room)
        .await?;
    Ok((client, Feed::new(sub)))
}
