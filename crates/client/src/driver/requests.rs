//! The driver's request table and inbound dispatch: requests get ids and wait in
//! `pending` until their reply; server messages are routed to a reply, a heartbeat answer,
//! a token refresh, a room (after dedupe) or the client's event channel.

use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message};

use super::{Driver, Pending, Reply, Ws, PENDING_PRUNE_AT};
use crate::client::ClientEvent;
use crate::error::Error;

impl Driver {
    pub(super) async fn join(&mut self, ws: &mut Ws, room: &str) -> Result<(), tungstenite::Error> {
        let Some(state) = self.rooms.get(room) else {
            return Ok(());
        };
        let message = state.subscribe_message();
        let with_since = message.get("since").is_some();
        let pending = Pending::Join {
            room: room.to_owned(),
            with_since,
        };
        self.send_with_id(ws, message, pending).await
    }

    pub(super) async fn send_request(
        &mut self,
        ws: &mut Ws,
        message: Value,
        reply: Reply,
    ) -> Result<(), tungstenite::Error> {
        if !message.is_object() {
            let _ = reply.send(Err(Error::Server {
                code: "INVALID_MESSAGE".into(),
                message: "a request must be a JSON object".into(),
            }));
            return Ok(());
        }
        let publish_to = (message.get("type").and_then(Value::as_str) == Some("message"))
            .then(|| {
                message
                    .get("room")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .flatten();
        let pending = Pending::Request { reply, publish_to };
        self.send_with_id(ws, message, pending).await
    }

    pub(super) async fn send_with_id(
        &mut self,
        ws: &mut Ws,
        mut message: Value,
        pending: Pending,
    ) -> Result<(), tungstenite::Error> {
        let id = self.next_id;
        self.next_id += 1;
        if let Some(obj) = message.as_object_mut() {
            obj.insert("id".into(), json!(id));
        }
        if self.pending.len() >= PENDING_PRUNE_AT {
            // Callers that timed out dropped their receivers: forget those entries.
            self.pending.retain(|_, p| match p {
                Pending::Request { reply, .. } => !reply.is_closed(),
                _ => true,
            });
        }
        self.pending.insert(id, pending);
        ws.send(Message::text(message.to_string())).await
    }

    pub(super) async fn dispatch(
        &mut self,
        ws: &mut Ws,
        msg: Value,
    ) -> Result<(), tungstenite::Error> {
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or("");
        let id = msg.get("id").and_then(Value::as_u64);
        if matches!(kind, "ack" | "error" | "pong") {
            if let Some(pending) = id.and_then(|id| self.pending.remove(&id)) {
                self.settle(pending, msg);
                return Ok(());
            }
        }
        match kind {
            "ping" => return ws.send(Message::text(r#"{"type":"pong"}"#)).await,
            "token_expiring" => return self.refresh(ws).await,
            _ => {}
        }
        let room = msg.get("room").and_then(Value::as_str).map(str::to_owned);
        if kind == "unsubscribed" {
            if let Some(room) = &room {
                self.rooms.remove(room);
            }
            self.emit(ClientEvent::Unsubscribed(msg));
            return Ok(());
        }
        let Some(state) = room.as_ref().and_then(|r| self.rooms.get_mut(r)) else {
            self.emit(ClientEvent::Message(msg));
            return Ok(());
        };
        if !state.accept(&msg) {
            return Ok(());
        }
        if kind == "recovery_failed" {
            let _ = self.events.send(ClientEvent::RecoveryFailed(msg.clone()));
        }
        if state.sink.send(msg).await.is_err() {
            // The subscription was dropped: leave the room.
            let joined_by_server = state.joined_by_server;
            if let Some(room) = room {
                self.rooms.remove(&room);
                if !joined_by_server {
                    let leave = json!({"type": "unsubscribe", "room": room});
                    return self.send_with_id(ws, leave, Pending::Ignore).await;
                }
            }
        }
        Ok(())
    }

    fn settle(&mut self, pending: Pending, msg: Value) {
        let failed = msg.get("type").and_then(Value::as_str) == Some("error");
        let error = || Error::Server {
            code: str_field(&msg, "code"),
            message: str_field(&msg, "message"),
        };
        match pending {
            Pending::Request { reply, publish_to } => {
                if failed {
                    let _ = reply.send(Err(error()));
                    return;
                }
                if let Some(state) = publish_to.and_then(|r| self.rooms.get_mut(&r)) {
                    state.note_own(&msg);
                }
                let _ = reply.send(Ok(msg));
            }
            Pending::Join { room, with_since } => {
                let Some(state) = self.rooms.get_mut(&room) else {
                    return;
                };
                if failed {
                    let err = error();
                    match state.join_reply.take() {
                        Some(reply) => {
                            self.rooms.remove(&room);
                            let _ = reply.send(Err(err));
                        }
                        None => self.emit(ClientEvent::Error(format!("resubscribe {room}: {err}"))),
                    }
                    return;
                }
                if !with_since {
                    state.note_join_ack(&msg);
                }
                if let Some(reply) = state.join_reply.take() {
                    let _ = reply.send(Ok(msg));
                }
            }
            Pending::Refresh { token } => {
                if failed {
                    self.emit(ClientEvent::Error(format!("refresh: {}", error())));
                } else {
                    self.cfg.token = Some(token);
                    self.emit(ClientEvent::TokenRefreshed(msg));
                }
            }
            Pending::Ignore => {}
        }
    }

    pub(super) async fn refresh(&mut self, ws: &mut Ws) -> Result<(), tungstenite::Error> {
        let Some(source) = &self.cfg.token_source else {
            return Ok(());
        };
        if !self.features.iter().any(|f| f == "refresh") {
            return Ok(());
        }
        match source().await {
            Some(token) if Some(&token) != self.cfg.token.as_ref() => {
                let msg = json!({"type": "refresh", "token": token});
                self.send_with_id(ws, msg, Pending::Refresh { token }).await
            }
            // The same token cannot extend the session; expiry will close with 4003.
            _ => Ok(()),
        }
    }
}

fn str_field(msg: &Value, key: &str) -> String {
    msg.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
