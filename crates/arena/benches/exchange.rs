//! Micro-benchmark of the exchange state machine without I/O: what one order costs above
//! the order book (risk checks, reservations, settlement, order records, and building the
//! JSON of its events), to set against the book's ~10 M ops/s and the store's fsync.
//!
//! Run: `cargo bench -p roomcast-arena --bench exchange`.
//!
//! The state: 100 funded collectives and 2,000 resting orders around 100.00. The stream:
//! 1,000 orders from random collectives, 70% GTC limit orders within 20 ticks of the touch
//! (some cross), 30% IOC orders that cross; throughput = orders. `events` builds every
//! event as the exchange task does, `no_events` is the state machine alone (log replay).
//!
//! One run (shared 2-core box, load average ~6): `no_events` 6.3 µs per order (the reply's
//! view included), `events` 21-27 µs per order; the stream makes 757 trades and 10.8 events
//! (2.7 KB of JSON) per order, so building event views is most of an order's CPU.

use criterion::{BatchSize, Throughput};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcast_arena::state::{Emit, ExchangeState, Mode, StateLimits};
use roomcast_arena::{ArenaConfig, Funding, OrderRequest, OrderSide, OrderType, TimeInForce};
use roomcast_engine::auth::CollectiveId;

mod support;

const ACCOUNTS: usize = 100;

fn ids() -> Vec<CollectiveId> {
    (0..ACCOUNTS)
        .map(|i| CollectiveId::parse(&format!("c{i}")).expect("id"))
        .collect()
}

fn order(rng: &mut StdRng, gtc_share: f64) -> OrderRequest {
    let buy = rng.random_bool(0.5);
    let gtc = rng.random_bool(gtc_share);
    let ticks: i64 = if gtc {
        rng.random_range(-20..=5)
    } else {
        rng.random_range(5..=30)
    };
    let price = if buy { 10_000 + ticks } else { 10_000 - ticks };
    OrderRequest {
        symbol: "BTC-USD".into(),
        side: if buy { OrderSide::Buy } else { OrderSide::Sell },
        order_type: OrderType::Limit,
        quantity: format!("0.{:04}", rng.random_range(1..500)),
        price: Some(format!("{}.{:02}", price / 100, price % 100)),
        time_in_force: if gtc {
            TimeInForce::Gtc
        } else {
            TimeInForce::Ioc
        },
        client_order_id: None,
    }
}

fn base() -> ExchangeState {
    let config = ArenaConfig {
        max_open_orders_per_collective: 100_000,
        ..ArenaConfig::default()
    };
    let mut s = ExchangeState::new(config.validate().expect("valid"), StateLimits::of(&config));
    let funding = Funding {
        cash_cents: 10_000_000_000,
        positions: [("BTC-USD".to_owned(), 1_000_000_000)]
            .into_iter()
            .collect(),
    };
    for id in ids() {
        s.open_account(&id, &funding, &mut Emit::discard());
    }
    let mut rng = StdRng::seed_from_u64(1);
    let ids = ids();
    while s.book("BTC-USD").map_or(0, |b| b.len()) < 2_000 {
        let who = &ids[rng.random_range(0..ACCOUNTS)];
        let _ = s.place(
            who,
            &order(&mut rng, 1.0),
            0,
            Mode::Live,
            &mut Emit::discard(),
        );
    }
    s
}

fn main() {
    let mut c = support::criterion();
    let base = base();
    let ids = ids();
    let mut rng = StdRng::seed_from_u64(2);
    let stream: Vec<(usize, OrderRequest)> = (0..1_000)
        .map(|_| (rng.random_range(0..ACCOUNTS), order(&mut rng, 0.7)))
        .collect();
    {
        let mut state = base.clone();
        let mut emit = Emit::new();
        let mut trades = 0;
        for (who, req) in &stream {
            let before = state.trade_count();
            let _ = state.place(&ids[*who], req, 1, Mode::Live, &mut emit);
            trades += state.trade_count() - before;
        }
        println!(
            "stream: {} orders, {trades} trades, {} events ({} bytes of event data)",
            stream.len(),
            emit.events.len(),
            emit.events
                .iter()
                .map(|e| e.data.get().len())
                .sum::<usize>()
        );
    }
    let mut g = c.benchmark_group("exchange");
    g.throughput(Throughput::Elements(stream.len() as u64));
    for (name, events) in [("events", true), ("no_events", false)] {
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || base.clone(),
                |state| {
                    let mut emit = if events { Emit::new() } else { Emit::discard() };
                    for (who, req) in &stream {
                        let _ = state.place(&ids[*who], req, 1, Mode::Live, &mut emit);
                    }
                    emit.events.len()
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
    c.final_summary();
}
