//! The arena's order JSON (`POST /api/v1/orders` bodies into `OrderRequest`) and what the
//! exchange does with it (`ExchangeState::place` / `cancel`).
//!
//! The input is lines; each line is one action by one of three funded collectives: an
//! order body (JSON) or a cancel of an order id. Asserts: an accepted body writes back to
//! JSON that parses to the same request; the prices and quantities it names round-trip
//! through the decimal parser exactly (no float anywhere); and after every action,
//! accepted or refused, the exchange's conservation check holds (cash and positions sum
//! to what was funded, nothing reserved below zero, no short position without
//! `allow_shorts`).

use roomcast_arena::decimal::{format_units, parse_units};
use roomcast_arena::state::{Emit, ExchangeState, StateLimits};
use roomcast_arena::{ArenaConfig, Funding, OrderRequest};
use roomcast_engine::auth::CollectiveId;

/// The most actions one input runs (keeps each execution short).
const MAX_ACTIONS: usize = 64;

fn exchange() -> Option<(ExchangeState, Vec<CollectiveId>)> {
    let config = ArenaConfig::default();
    let instruments = config.validate().ok()?;
    let mut state = ExchangeState::new(instruments, StateLimits::of(&config));
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let id = CollectiveId::parse(name).ok()?;
        let funding = Funding {
            cash_cents: 1_000_000,
            positions: [
                ("BTC-USD".to_owned(), 100_000),
                ("ETH-USD".to_owned(), 100_000),
            ]
            .into_iter()
            .collect(),
        };
        state.open_account(&id, &funding, &mut Emit::discard());
        ids.push(id);
    }
    Some((state, ids))
}

/// The target body.
pub fn run(data: &[u8]) {
    let Some((mut state, ids)) = exchange() else {
        panic!("the fuzzing exchange must build");
    };
    let mut at_ms = 1_800_000_000_000;
    for line in data.split(|&b| b == b'\n').take(MAX_ACTIONS) {
        let Some((&selector, body)) = line.split_first() else {
            continue;
        };
        let who = &ids[usize::from(selector % 3)];
        at_ms += 1;
        if selector & 0x80 != 0 {
            // A cancel: the rest is the order id in decimal.
            let id = std::str::from_utf8(body)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if let Some(id) = id {
                let _ = state.cancel(who, id, at_ms, &mut Emit::new());
            }
        } else if let Ok(request) = serde_json::from_slice::<OrderRequest>(body) {
            round_trip(&request);
            amounts(&state, &request);
            let _ = state.place(
                who,
                &request,
                at_ms,
                roomcast_arena::state::Mode::Live,
                &mut Emit::new(),
            );
        }
        if let Err(e) = state.check_conservation() {
            panic!(
                "conservation broken after {:?}: {e}",
                String::from_utf8_lossy(line)
            );
        }
    }
}

fn round_trip(request: &OrderRequest) {
    let json = match serde_json::to_string(request) {
        Ok(j) => j,
        Err(e) => panic!("an accepted order does not serialise: {e}"),
    };
    match serde_json::from_str::<OrderRequest>(&json) {
        Ok(again) => assert_eq!(&again, request, "{json}"),
        Err(e) => panic!("{json} does not parse back: {e}"),
    }
}

/// Decimal strings: an accepted amount formats back to a string with the same value.
fn amounts(state: &ExchangeState, request: &OrderRequest) {
    let Some(instrument) = state.instruments().get(&request.symbol) else {
        return;
    };
    let amounts = [
        (Some(&request.quantity), instrument.qty_scale),
        (request.price.as_ref(), instrument.price_scale),
    ];
    for (text, scale) in amounts {
        let Some(text) = text else { continue };
        if let Ok(units) = parse_units(text, scale) {
            assert!(units >= 0, "{text} parsed negative");
            let written = format_units(units, scale);
            assert_eq!(
                parse_units(&written, scale),
                Ok(units),
                "{text} -> {written}"
            );
        }
    }
}
