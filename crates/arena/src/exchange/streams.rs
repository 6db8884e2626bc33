//! The streams' starting points: a room's snapshot (its event type and data for a
//! principal) and the attach that pushes it and joins the room with nothing between the
//! two (the exchange task is the only publisher into arena rooms; see the parent module's
//! "Atomic snapshots"). Apart from the order loop because it is read-only, and the one
//! place that knows which view each kind of arena room starts from.

use std::sync::Arc;

use bytes::Bytes;
use roomcast_engine::auth::CollectiveId;
use roomcast_engine::history::RoomHead;
use roomcast_engine::Session;
use roomcast_protocol::request::RequestId;
use roomcast_protocol::RoomName;

use super::Exchange;
use crate::error::AttachError;
use crate::rooms::ArenaRoom;
use crate::views::PortfolioView;

impl Exchange {
    /// Pushes the room's snapshot into `session`'s outbox and joins it to the room; see the
    /// module docs for why nothing can fall between the two.
    pub(super) fn attach(
        &self,
        session: &Arc<Session>,
        room: &RoomName,
        principal: Option<&CollectiveId>,
        request_id: Option<&RequestId>,
    ) -> Result<RoomHead, AttachError> {
        let (ty, data) = self.view(room, principal)?;
        let head = self
            .hub
            .subscribe(session, room)
            .map_err(|e| AttachError::Subscribe(e.to_string()))?;
        let frame = snapshot_frame(ty, room, &head, request_id, &data);
        session.outbox.push(Bytes::from(frame));
        Ok(head)
    }

    /// A room's snapshot event type and data, for `principal` (a private room of another
    /// collective is [`AttachError::Forbidden`]).
    pub(crate) fn view(
        &self,
        room: &RoomName,
        principal: Option<&CollectiveId>,
    ) -> Result<(&'static str, String), AttachError> {
        let kind = ArenaRoom::parse(room)?.ok_or(AttachError::NotArenaRoom)?;
        if let Some(owner) = kind.owner() {
            if principal != Some(owner) {
                return Err(AttachError::Forbidden);
            }
        }
        let (ty, data) = match &kind {
            ArenaRoom::Portfolio(c) => {
                let view = self
                    .state
                    .portfolio_view(c)
                    .unwrap_or_else(|| PortfolioView {
                        collective_id: c.clone(),
                        balances: Vec::new(),
                        positions: Vec::new(),
                        equity: Vec::new(),
                    });
                ("portfolio_snapshot", serde_json::to_string(&view))
            }
            ArenaRoom::Orders(c) => (
                "orders_snapshot",
                serde_json::to_string(&self.state.orders_snapshot(c)),
            ),
            ArenaRoom::Order(c, id) => {
                let view = self
                    .state
                    .order_of(c, *id)
                    .ok_or(AttachError::UnknownOrder)?;
                ("order_snapshot", serde_json::to_string(&view))
            }
            ArenaRoom::Market(symbol) => {
                let view = self
                    .state
                    .book_view(symbol, usize::MAX)
                    .ok_or(AttachError::UnknownSymbol)?;
                ("book_snapshot", serde_json::to_string(&view))
            }
        };
        let data = data.map_err(|e| AttachError::Subscribe(e.to_string()))?;
        Ok((ty, data))
    }
}

/// `{"type":T,"room":R,"sequence":n,"epoch":E[,"id":I],"data":D}`.
pub(crate) fn snapshot_frame(
    ty: &str,
    room: &RoomName,
    head: &RoomHead,
    id: Option<&RequestId>,
    data: &str,
) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    let mut s = String::with_capacity(data.len() + 128);
    s.push_str("{\"type\":\"");
    s.push_str(ty);
    s.push_str("\",\"room\":");
    s.push_str(&quote(room.as_str()));
    s.push_str(",\"sequence\":");
    s.push_str(&head.sequence.0.to_string());
    s.push_str(",\"epoch\":");
    s.push_str(&quote(head.epoch.as_str()));
    if let Some(id) = id {
        s.push_str(",\"id\":");
        s.push_str(id.as_json());
    }
    s.push_str(",\"data\":");
    s.push_str(data);
    s.push('}');
    s
}
