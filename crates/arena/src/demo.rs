//! The demo bots: collectives `bot-1`..`bot-N` that keep a market alive for `roomcast serve
//! --demo`.
//!
//! Each tick (at `orders_per_second` over all bots) one bot places one order through
//! [`Arena::place_order`], the same command path as REST users: no back door. Prices follow
//! a bounded random walk around a mid price per symbol (starting at the last trade price,
//! else a default); most orders rest a few ticks away from the mid, about one in four
//! crosses it so trades happen. A bot keeps at most [`MAX_OPEN_PER_BOT`] of its orders open
//! and cancels its oldest beyond that. The random generator is seeded from the config, so a
//! run is reproducible given the same interleaving with other traders.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcast_engine::auth::CollectiveId;
use tokio_util::sync::CancellationToken;

use crate::account::Funding;
use crate::arena::Arena;
use crate::config::DemoConfig;
use crate::views::{OrderRequest, OrderSide, OrderType, TimeInForce};

/// Orders a bot keeps open before cancelling its oldest.
pub const MAX_OPEN_PER_BOT: usize = 20;

/// Lots of each symbol every bot starts with.
pub const BOT_STARTING_LOTS: u64 = 1_000_000;

/// The default mid price of a symbol with no trade yet.
fn default_mid(symbol: &str) -> &'static str {
    match symbol {
        "BTC-USD" => "50000",
        "ETH-USD" => "3000",
        _ => "100",
    }
}

struct Walk {
    symbol: String,
    mid: u64,
    low: u64,
    high: u64,
}

/// Runs the bots until `cancel` fires.
pub async fn run(arena: Arena, config: DemoConfig, cancel: CancellationToken) {
    let symbols: Vec<String> = if config.symbols.is_empty() {
        arena
            .instruments()
            .iter()
            .map(|i| i.symbol.clone())
            .collect()
    } else {
        config.symbols.clone()
    };
    let mut bots = Vec::new();
    for n in 1..=config.bots {
        let Ok(id) = CollectiveId::parse(&format!("bot-{n}")) else {
            continue;
        };
        let funding = Funding {
            cash_cents: config.starting_cash,
            positions: symbols
                .iter()
                .map(|s| (s.clone(), BOT_STARTING_LOTS))
                .collect::<BTreeMap<_, _>>(),
        };
        if let Err(e) = arena.open_account(id.clone(), funding).await {
            tracing::warn!(error = %e, "demo bot account not opened");
            return;
        }
        bots.push((id, VecDeque::<u64>::new()));
    }
    if bots.is_empty() || symbols.is_empty() || config.orders_per_second == 0 {
        return;
    }
    let markets = arena.markets().await;
    let mut walks: Vec<Walk> = symbols
        .iter()
        .filter_map(|s| {
            let ins = arena.instruments().get(s)?;
            let last = markets
                .iter()
                .find(|m| &m.symbol == s)
                .and_then(|m| m.last_price.clone());
            let start = last
                .and_then(|p| ins.parse_price(&p).ok())
                .or_else(|| ins.parse_price(default_mid(s)).ok())?
                .0;
            Some(Walk {
                symbol: s.clone(),
                mid: start,
                low: (start / 2).max(100),
                high: start.saturating_mul(2).max(200),
            })
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut tick = tokio::time::interval(Duration::from_micros(
        1_000_000 / u64::from(config.orders_per_second),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let b = rng.random_range(0..bots.len());
        let w = rng.random_range(0..walks.len());
        let walk = &mut walks[w];
        let step: i64 = rng.random_range(-3..=3);
        walk.mid = walk
            .mid
            .saturating_add_signed(step)
            .clamp(walk.low, walk.high);
        let side = if rng.random_bool(0.5) {
            OrderSide::Buy
        } else {
            OrderSide::Sell
        };
        let crossing = rng.random_bool(0.25);
        let offset: u64 = if crossing {
            rng.random_range(1..=5)
        } else {
            rng.random_range(1..=25)
        };
        let price = match (side, crossing) {
            (OrderSide::Buy, false) | (OrderSide::Sell, true) => {
                walk.mid.saturating_sub(offset).max(1)
            }
            (OrderSide::Buy, true) | (OrderSide::Sell, false) => walk.mid.saturating_add(offset),
        };
        let Some(ins) = arena.instruments().get(&walk.symbol) else {
            continue;
        };
        let lots: u64 = rng.random_range(1..=50) * 10;
        let request = OrderRequest {
            symbol: walk.symbol.clone(),
            side,
            order_type: OrderType::Limit,
            quantity: ins.format_quantity(i128::from(lots)),
            price: Some(ins.format_price(price)),
            time_in_force: TimeInForce::Gtc,
            client_order_id: None,
        };
        let (id, open) = &mut bots[b];
        match arena.place_order(id, request).await {
            Ok(order) => {
                if order.remaining_quantity != "0" {
                    open.push_back(order.order_id);
                }
            }
            Err(e) => tracing::debug!(bot = %id, reason = e.reason(), "demo order refused"),
        }
        while open.len() > MAX_OPEN_PER_BOT {
            if let Some(old) = open.pop_front() {
                // NotOpen (it filled meanwhile) is expected.
                drop(arena.cancel_order(id, old).await);
            }
        }
    }
}
