//! The dashboard's arena panel: per market the best levels of the book and the last
//! trades, and the equity of the demo bots and registered collectives (bounded).
//!
//! It costs a few reads of the exchange task, so it is computed at most once per
//! [`FRESH`] for all viewers together ([`ArenaPanel::get`]), never once per viewer: every
//! stream asks the shared cache, the first one after expiry recomputes while the others
//! wait for that result. A read that does not finish within [`READ_TIMEOUT`] (an exchange
//! busy with a long batch) keeps the last panel rather than holding the streams.
//!
//! ```json
//! {"running":true,"orders_accepted":..,"orders_rejected":..,"trades":..,"accounts":..,
//!  "markets":[{"symbol":"BTC-USD","last_price":"50000.01","best_bid":..,"best_ask":..,
//!              "volume":"1.5","bids":[{"price","quantity"}..],"asks":[..],
//!              "trades":[{"trade_id","price","quantity","taker_side","timestamp_ms"}..]}],
//!  "equity":[{"collective_id":"bot-1","equity":[{"currency":"USD","equity":"..."}]}]}
//! ```
//! or `{"running":false}` without an arena.

use std::time::{Duration, Instant};

use roomcast_arena::Arena;
use roomcast_engine::auth::CollectiveId;
use serde_json::{json, Value};

use crate::app::AppState;

/// Book levels shown per side.
pub const BOOK_DEPTH: usize = 8;
/// Trades shown per market, newest first.
pub const LAST_TRADES: usize = 10;
/// Collectives whose equity is shown (demo bots first, then registered ones by id).
pub const MAX_EQUITY_ROWS: usize = 12;
/// How long a computed panel is served before the next viewer recomputes it (a little
/// under the stream's period, so every push carries a fresh one).
pub const FRESH: Duration = Duration::from_millis(900);
/// Longest the exchange reads of one computation may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared, once-per-period panel.
#[derive(Debug, Default)]
pub struct ArenaPanel {
    last: tokio::sync::Mutex<Option<(Instant, Value)>>,
}

impl ArenaPanel {
    /// The panel, recomputed when older than [`FRESH`].
    pub async fn get(&self, state: &AppState) -> Value {
        let Some(arena) = &state.arena else {
            return json!({"running": false});
        };
        // A tokio mutex on purpose: held across the reads, so concurrent viewers wait for
        // the one computation instead of each doing their own.
        let mut last = self.last.lock().await;
        if let Some((at, panel)) = last.as_ref() {
            if at.elapsed() < FRESH {
                return panel.clone();
            }
        }
        match tokio::time::timeout(READ_TIMEOUT, compute(state, arena)).await {
            Ok(panel) => {
                *last = Some((Instant::now(), panel.clone()));
                panel
            }
            Err(_) => last
                .as_ref()
                .map_or_else(|| json!({"running": true}), |(_, p)| p.clone()),
        }
    }
}

/// The collectives whose equity is shown: `bot-1..` of the demo, then registered ones.
fn equity_ids(state: &AppState) -> Vec<CollectiveId> {
    let bots = state
        .config
        .arena
        .as_ref()
        .and_then(|a| a.demo.as_ref())
        .map_or(0, |d| d.bots);
    let mut ids: Vec<CollectiveId> = (1..=bots.min(MAX_EQUITY_ROWS))
        .filter_map(|n| CollectiveId::parse(&format!("bot-{n}")).ok())
        .collect();
    let mut registered: Vec<CollectiveId> = state
        .security
        .collectives
        .list()
        .iter()
        .map(|c| c.id.clone())
        .collect();
    registered.sort();
    for id in registered {
        if ids.len() >= MAX_EQUITY_ROWS {
            break;
        }
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

async fn compute(state: &AppState, arena: &Arena) -> Value {
    let stats = arena.stats();
    let mut markets = Vec::new();
    for market in arena.markets().await {
        let book = arena.book(&market.symbol, BOOK_DEPTH).await.ok().flatten();
        let trades = arena
            .trades(&market.symbol, LAST_TRADES)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        markets.push(json!({
            "symbol": market.symbol,
            "quote_currency": market.quote_currency,
            "status": market.status,
            "last_price": market.last_price,
            "best_bid": market.best_bid,
            "best_ask": market.best_ask,
            "volume": market.volume,
            "bids": book.as_ref().map(|b| b.bids.clone()).unwrap_or_default(),
            "asks": book.as_ref().map(|b| b.asks.clone()).unwrap_or_default(),
            "trades": trades,
        }));
    }
    let mut equity = Vec::new();
    for id in equity_ids(state) {
        if let Ok(Some(p)) = arena.portfolio(&id).await {
            equity.push(json!({"collective_id": id.as_str(), "equity": p.equity}));
        }
    }
    json!({
        "running": true,
        "orders_accepted": stats.orders_accepted,
        "orders_rejected": stats.orders_rejected,
        "trades": stats.trades,
        "accounts": stats.accounts,
        "markets": markets,
        "equity": equity,
    })
}
