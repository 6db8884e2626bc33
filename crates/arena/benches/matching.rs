//! Micro-benchmarks of the order book: resting, crossing, cancelling, and a realistic mix.
//!
//! Run: `cargo bench -p roomcast-arena` (about a minute, release profile).
//!
//! Every group starts from the same book: 1,000 price levels (500 bids at even ticks
//! 99,000..=99,998, 500 asks at even ticks 100,002..=101,000) of 10 orders each, 10,000
//! resting orders in all, from 10 accounts. Setup (building or cloning that book) is never
//! timed: batched groups clone the book outside the measured routine with
//! `iter_batched_ref`, and `cross` rebuilds the swept levels outside its timer.
//!
//! - `rest/existing_level`, `rest/new_level`: 1,000 non-crossing GTC limit orders, at prices
//!   that already have a level (even ticks) or that create one (odd ticks), spread over the
//!   whole book; throughput = orders.
//! - `cross/1_level`, `cross/10_levels`: one IOC limit order that sweeps exactly the best 1 or
//!   10 ask levels (10 or 100 fills); time is per sweep (it includes one `Instant` pair,
//!   ~20-40 ns), throughput = fills.
//! - `cancel/10k_book`: 1,000 cancels of distinct random resting orders; throughput = cancels.
//! - `mixed/60_limit_25_cancel_15_ioc`: a seeded stream of 10,000 operations over the warm
//!   book: 60% GTC limit orders within a few ticks of the touch (some cross), 25% cancels of
//!   live orders, 15% market or IOC orders; throughput = operations.

use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use roomcast_arena::matching::{
    AccountId, MatchEvent, NewOrder, OrderBook, OrderId, OrderKind, Price, Quantity, Side,
    TimeInForce,
};

mod support;

const LEVELS_PER_SIDE: u64 = 500;
const ORDERS_PER_LEVEL: u64 = 10;
const BEST_BID: u64 = 99_998;
const BEST_ASK: u64 = 100_002;
/// Ids of the base book are below this; benchmark orders use ids above it.
const FIRST_FREE_ID: u64 = 1_000_000;
/// The account of benchmark takers: no base order belongs to it, so no self-trades.
const TAKER: AccountId = AccountId(1_000);

fn gtc(id: u64, account: u64, side: Side, price: u64, qty: u64) -> NewOrder {
    NewOrder::limit(
        OrderId(id),
        AccountId(account),
        side,
        Price(price),
        Quantity(qty),
        TimeInForce::Gtc,
    )
}

/// The resting orders of the base book, in submission order (level by level from the touch).
fn base_orders() -> Vec<NewOrder> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut orders = Vec::new();
    let mut id = 0;
    for level in 0..LEVELS_PER_SIDE {
        for (side, price) in [
            (Side::Buy, BEST_BID - 2 * level),
            (Side::Sell, BEST_ASK + 2 * level),
        ] {
            for _ in 0..ORDERS_PER_LEVEL {
                id += 1;
                orders.push(gtc(id, id % 10, side, price, rng.random_range(1..=100)));
            }
        }
    }
    orders
}

fn base_book() -> OrderBook {
    let mut book = OrderBook::default();
    let mut events = Vec::new();
    for order in base_orders() {
        book.submit(order, &mut events).expect("base order rests");
    }
    assert_eq!(book.len(), 10_000);
    book
}

fn rest(c: &mut Criterion, base: &OrderBook) {
    let mut rng = StdRng::seed_from_u64(2);
    let mut orders = |parity: u64| -> Vec<NewOrder> {
        (0..1_000)
            .map(|i| {
                let level = rng.random_range(0..LEVELS_PER_SIDE);
                let (side, price) = if rng.random_bool(0.5) {
                    (Side::Buy, BEST_BID - 2 * level - parity)
                } else {
                    (Side::Sell, BEST_ASK + 2 * level + parity)
                };
                gtc(
                    FIRST_FREE_ID + i,
                    TAKER.0,
                    side,
                    price,
                    rng.random_range(1..=100),
                )
            })
            .collect()
    };
    let existing = orders(0);
    let new = orders(1);
    let mut g = c.benchmark_group("rest");
    g.throughput(Throughput::Elements(1_000));
    for (name, orders) in [("existing_level", &existing), ("new_level", &new)] {
        g.bench_function(name, |b| {
            let mut events = Vec::with_capacity(16);
            b.iter_batched_ref(
                || base.clone(),
                |book| {
                    for &order in orders {
                        events.clear();
                        book.submit(order, &mut events).expect("rests");
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn cross(c: &mut Criterion, base: &OrderBook) {
    let asks: Vec<NewOrder> = base_orders()
        .into_iter()
        .filter(|o| o.side == Side::Sell)
        .collect();
    let mut g = c.benchmark_group("cross");
    for levels in [1u64, 10] {
        let swept = &asks[..(levels * ORDERS_PER_LEVEL) as usize];
        let qty: u64 = swept.iter().map(|o| o.quantity.0).sum();
        let sweep = NewOrder::limit(
            OrderId(FIRST_FREE_ID),
            TAKER,
            Side::Buy,
            Price(BEST_ASK + 2 * (levels - 1)),
            Quantity(qty),
            TimeInForce::Ioc,
        );
        let name = if levels == 1 {
            "1_level".to_owned()
        } else {
            format!("{levels}_levels")
        };
        g.throughput(Throughput::Elements(swept.len() as u64));
        g.bench_function(name, |b| {
            let mut book = base.clone();
            let mut events = Vec::with_capacity(256);
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    events.clear();
                    let start = Instant::now();
                    let outcome = book.submit(sweep, &mut events).expect("valid sweep");
                    timed += start.elapsed();
                    assert_eq!(outcome.filled.0, qty);
                    // Put the swept orders back, untimed, in their original order.
                    for &order in swept {
                        book.submit(order, &mut events).expect("refill rests");
                    }
                }
                timed
            })
        });
    }
    g.finish();
}

fn cancel(c: &mut Criterion, base: &OrderBook) {
    let mut ids: Vec<OrderId> = base_orders().into_iter().map(|o| o.id).collect();
    ids.shuffle(&mut StdRng::seed_from_u64(3));
    ids.truncate(1_000);
    let mut g = c.benchmark_group("cancel");
    g.throughput(Throughput::Elements(ids.len() as u64));
    g.bench_function("10k_book", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |book| {
                for &id in &ids {
                    book.cancel(id).expect("resting");
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// An operation of the mixed stream.
#[derive(Clone, Copy)]
enum Op {
    Submit(NewOrder),
    Cancel(OrderId),
}

/// The seeded mixed stream, generated against a simulation of the book so that cancels
/// target orders that are live at that point and limit prices follow the touch.
fn mixed_ops(base: &OrderBook, n: usize) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(4);
    let mut sim = base.clone();
    let mut live: Vec<OrderId> = base_orders().into_iter().map(|o| o.id).collect();
    let mut events = Vec::new();
    let mut next_id = FIRST_FREE_ID;
    let mut ops = Vec::with_capacity(n);
    while ops.len() < n {
        let roll = rng.random_range(0..100);
        let op = if roll < 25 {
            // A live order: drop candidates that have filled meanwhile.
            let mut id = None;
            while !live.is_empty() && id.is_none() {
                let candidate = live.swap_remove(rng.random_range(0..live.len()));
                id = sim.order(candidate).map(|o| o.id);
            }
            let Some(id) = id else { continue };
            Op::Cancel(id)
        } else {
            next_id += 1;
            let side = if rng.random_bool(0.5) {
                Side::Buy
            } else {
                Side::Sell
            };
            let account = AccountId(rng.random_range(1..=50));
            let quantity = Quantity(rng.random_range(1..=100));
            let bid = sim.best_bid().map_or(BEST_BID, |(p, _)| p.0);
            let ask = sim.best_ask().map_or(BEST_ASK, |(p, _)| p.0);
            let (kind, tif) = if roll < 85 {
                // From one tick inside the touch to six behind it: mostly passive; when the
                // spread is one tick, "one tick inside" is the opposite touch, and it trades.
                let offset = rng.random_range(0..8);
                let price = match side {
                    Side::Buy => (bid + 1).saturating_sub(offset),
                    Side::Sell => (ask + offset).saturating_sub(1),
                };
                (
                    OrderKind::Limit {
                        price: Price(price),
                    },
                    TimeInForce::Gtc,
                )
            } else if roll < 93 {
                (OrderKind::Market, TimeInForce::Ioc)
            } else {
                let price = match side {
                    Side::Buy => ask + 2,
                    Side::Sell => bid.saturating_sub(2),
                };
                (
                    OrderKind::Limit {
                        price: Price(price),
                    },
                    TimeInForce::Ioc,
                )
            };
            let order = NewOrder {
                id: OrderId(next_id),
                account,
                side,
                kind,
                quantity,
                tif,
            };
            Op::Submit(order)
        };
        match op {
            Op::Submit(order) => {
                events.clear();
                let outcome = sim.submit(order, &mut events).expect("valid order");
                if outcome.rested.0 > 0 {
                    live.push(order.id);
                }
            }
            Op::Cancel(id) => {
                sim.cancel(id).expect("live order");
            }
        }
        ops.push(op);
    }
    ops
}

fn mixed(c: &mut Criterion, base: &OrderBook) {
    let ops = mixed_ops(base, 10_000);
    let mut g = c.benchmark_group("mixed");
    g.throughput(Throughput::Elements(ops.len() as u64));
    g.bench_function("60_limit_25_cancel_15_ioc", |b| {
        let mut events: Vec<MatchEvent> = Vec::with_capacity(256);
        b.iter_batched_ref(
            || base.clone(),
            |book| {
                for &op in &ops {
                    match op {
                        Op::Submit(order) => {
                            events.clear();
                            book.submit(order, &mut events).expect("valid order");
                        }
                        Op::Cancel(id) => {
                            book.cancel(id).expect("live order");
                        }
                    }
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn main() {
    let mut c = support::criterion();
    let base = base_book();
    rest(&mut c, &base);
    cross(&mut c, &base);
    cancel(&mut c, &base);
    mixed(&mut c, &base);
    c.final_summary();
}
