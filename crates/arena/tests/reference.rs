//! Differential test of [`OrderBook`] against a deliberately naive reference model.
//!
//! The reference keeps every resting order in one `Vec` and, before each single fill, sorts
//! the candidates by price then arrival: slow and obviously right. Seeded random streams of
//! submits (limit and market, every time in force, five accounts, prices in a narrow band so
//! orders cross often, a few invalid orders) and cancels (live, dead and unknown ids) are
//! applied to both; after every operation the results, the events and the full depth must be
//! identical, and the book-level invariants (never crossed, conservation of quantity) must
//! hold. Half of the seeds use a tiny `max_orders` so that `BookFull` is exercised too.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcast_arena::matching::{
    AccountId, BookLimits, CancelReason, Depth, Fill, MatchError, MatchEvent, NewOrder, OrderBook,
    OrderId, OrderKind, Price, Quantity, RestingOrder, Side, SubmitOutcome, TimeInForce,
};

const SEEDS: u64 = 20;
const OPS_PER_SEED: usize = 5_000;
const MAX_QTY: u64 = 50;

#[derive(Debug, Clone, Copy)]
struct RefOrder {
    id: OrderId,
    account: AccountId,
    side: Side,
    price: u64,
    qty: u64,
    arrival: u64,
}

/// The naive model: same rules, no cleverness.
struct Reference {
    resting: Vec<RefOrder>,
    arrivals: u64,
    max_orders: usize,
    max_qty: u64,
}

impl Reference {
    fn submit(
        &mut self,
        o: NewOrder,
        events: &mut Vec<MatchEvent>,
    ) -> Result<SubmitOutcome, MatchError> {
        let id = o.id;
        let limit = match o.kind {
            OrderKind::Limit { price } => Some(price.0),
            OrderKind::Market => None,
        };
        if o.quantity.0 == 0 {
            return Err(MatchError::ZeroQuantity { id });
        }
        if o.quantity.0 > self.max_qty {
            return Err(MatchError::QuantityTooLarge {
                id,
                quantity: o.quantity,
                max: Quantity(self.max_qty),
            });
        }
        if limit == Some(0) {
            return Err(MatchError::ZeroPrice { id });
        }
        if limit.is_none() && o.tif == TimeInForce::Gtc {
            return Err(MatchError::MarketOrderCannotRest { id });
        }
        if self.resting.iter().any(|r| r.id == id) {
            return Err(MatchError::DuplicateOrderId { id });
        }
        if o.tif == TimeInForce::Gtc && self.resting.len() >= self.max_orders {
            return Err(MatchError::BookFull {
                max_orders: self.max_orders,
            });
        }

        let acceptable = |r: &RefOrder| {
            r.side != o.side
                && match (limit, o.side) {
                    (None, _) => true,
                    (Some(l), Side::Buy) => r.price <= l,
                    (Some(l), Side::Sell) => r.price >= l,
                }
        };
        let kill = |events: &mut Vec<MatchEvent>, qty: u64| {
            events.push(MatchEvent::Cancelled {
                id,
                account: o.account,
                quantity: Quantity(qty),
                reason: CancelReason::Unfilled,
            });
        };
        if o.tif == TimeInForce::Fok {
            let available: u64 = self
                .resting
                .iter()
                .filter(|r| acceptable(r) && r.account != o.account)
                .map(|r| r.qty)
                .sum();
            if available < o.quantity.0 {
                kill(events, o.quantity.0);
                return Ok(SubmitOutcome {
                    filled: Quantity(0),
                    rested: Quantity(0),
                    cancelled: o.quantity,
                });
            }
        }

        let mut remaining = o.quantity.0;
        while remaining > 0 {
            let mut candidates: Vec<RefOrder> = self
                .resting
                .iter()
                .copied()
                .filter(|r| acceptable(r))
                .collect();
            candidates.sort_by_key(|r| {
                let priority = match o.side {
                    Side::Buy => r.price,             // lowest ask first
                    Side::Sell => u64::MAX - r.price, // highest bid first
                };
                (priority, r.arrival)
            });
            let Some(maker) = candidates.first().copied() else {
                break;
            };
            let pos = self
                .resting
                .iter()
                .position(|r| r.id == maker.id)
                .expect("candidate is resting");
            if maker.account == o.account {
                self.resting.remove(pos);
                events.push(MatchEvent::Cancelled {
                    id: maker.id,
                    account: maker.account,
                    quantity: Quantity(maker.qty),
                    reason: CancelReason::SelfTrade,
                });
                continue;
            }
            let traded = remaining.min(maker.qty);
            remaining -= traded;
            self.resting[pos].qty -= traded;
            if self.resting[pos].qty == 0 {
                self.resting.remove(pos);
            }
            events.push(MatchEvent::Fill(Fill {
                taker: id,
                maker: maker.id,
                taker_account: o.account,
                maker_account: maker.account,
                taker_side: o.side,
                price: Price(maker.price),
                quantity: Quantity(traded),
            }));
        }

        let mut outcome = SubmitOutcome {
            filled: Quantity(o.quantity.0 - remaining),
            rested: Quantity(0),
            cancelled: Quantity(0),
        };
        if remaining == 0 {
            return Ok(outcome);
        }
        match (limit, o.tif) {
            (Some(price), TimeInForce::Gtc) => {
                self.arrivals += 1;
                self.resting.push(RefOrder {
                    id,
                    account: o.account,
                    side: o.side,
                    price,
                    qty: remaining,
                    arrival: self.arrivals,
                });
                events.push(MatchEvent::Rested {
                    id,
                    account: o.account,
                    side: o.side,
                    price: Price(price),
                    quantity: Quantity(remaining),
                });
                outcome.rested = Quantity(remaining);
            }
            _ => {
                kill(events, remaining);
                outcome.cancelled = Quantity(remaining);
            }
        }
        Ok(outcome)
    }

    fn cancel(&mut self, id: OrderId) -> Result<RestingOrder, MatchError> {
        let pos = self
            .resting
            .iter()
            .position(|r| r.id == id)
            .ok_or(MatchError::UnknownOrder { id })?;
        Ok(resting(self.resting.remove(pos)))
    }

    fn order(&self, id: OrderId) -> Option<RestingOrder> {
        self.resting
            .iter()
            .find(|r| r.id == id)
            .copied()
            .map(resting)
    }

    fn depth(&self) -> Depth {
        let side = |side: Side| {
            let mut levels = std::collections::BTreeMap::<u64, u64>::new();
            for r in self.resting.iter().filter(|r| r.side == side) {
                *levels.entry(r.price).or_default() += r.qty;
            }
            let levels = levels.into_iter().map(|(p, q)| (Price(p), Quantity(q)));
            match side {
                Side::Buy => levels.rev().collect(),
                Side::Sell => levels.collect(),
            }
        };
        Depth {
            bids: side(Side::Buy),
            asks: side(Side::Sell),
        }
    }
}

fn resting(r: RefOrder) -> RestingOrder {
    RestingOrder {
        id: r.id,
        account: r.account,
        side: r.side,
        price: Price(r.price),
        quantity: Quantity(r.qty),
    }
}

fn total(levels: &[(Price, Quantity)]) -> u64 {
    levels.iter().map(|(_, q)| q.0).sum()
}

/// A random operation.
enum Op {
    Submit(NewOrder),
    Cancel(OrderId),
}

struct Generator {
    rng: StdRng,
    next_id: u64,
}

impl Generator {
    fn op(&mut self) -> Op {
        let rng = &mut self.rng;
        if rng.random_bool(0.25) {
            // Mostly recent ids (often still resting), sometimes ids never used.
            let id = if rng.random_bool(0.9) {
                self.next_id.saturating_sub(rng.random_range(1..=60))
            } else {
                self.next_id + rng.random_range(0..5)
            };
            return Op::Cancel(OrderId(id));
        }
        let id = if rng.random_bool(0.02) {
            self.next_id.saturating_sub(rng.random_range(1..=30)) // maybe a duplicate
        } else {
            self.next_id += 1;
            self.next_id
        };
        let side = if rng.random_bool(0.5) {
            Side::Buy
        } else {
            Side::Sell
        };
        let account = AccountId(rng.random_range(1..=5));
        let quantity = match rng.random_range(0..100) {
            0 => 0,
            1 => rng.random_range(MAX_QTY + 1..=MAX_QTY + 10),
            _ => rng.random_range(1..=20),
        };
        let (kind, tif) = if rng.random_bool(0.85) {
            // Buys in 90..=102, sells in 98..=110: they cross often, yet the book has depth.
            let price = match side {
                _ if rng.random_bool(0.01) => 0,
                Side::Buy => rng.random_range(90..=102),
                Side::Sell => rng.random_range(98..=110),
            };
            let tif = match rng.random_range(0..10) {
                0 | 1 => TimeInForce::Ioc,
                2 | 3 => TimeInForce::Fok,
                _ => TimeInForce::Gtc,
            };
            (
                OrderKind::Limit {
                    price: Price(price),
                },
                tif,
            )
        } else {
            let tif = match rng.random_range(0..20) {
                0 => TimeInForce::Gtc, // invalid
                1..=10 => TimeInForce::Ioc,
                _ => TimeInForce::Fok,
            };
            (OrderKind::Market, tif)
        };
        Op::Submit(NewOrder {
            id: OrderId(id),
            account,
            side,
            kind,
            quantity: Quantity(quantity),
            tif,
        })
    }
}

/// Checks what must hold for one submit, from the book's side alone.
fn check_submit(
    order: &NewOrder,
    outcome: &SubmitOutcome,
    events: &[MatchEvent],
    before: &Depth,
    after: &Depth,
) {
    let qty = order.quantity.0;
    assert_eq!(
        outcome.filled.0 + outcome.rested.0 + outcome.cancelled.0,
        qty,
        "conservation of the taker's quantity"
    );
    let (mut fills, mut self_trades, mut rested, mut unfilled) = (0, 0, 0, 0);
    for event in events {
        match *event {
            MatchEvent::Fill(f) => {
                assert_eq!(f.taker, order.id);
                assert_ne!(f.taker_account, f.maker_account, "self-trade");
                fills += f.quantity.0;
            }
            MatchEvent::Cancelled {
                id,
                quantity,
                reason: CancelReason::SelfTrade,
                ..
            } => {
                assert_ne!(id, order.id);
                self_trades += quantity.0;
            }
            MatchEvent::Cancelled {
                id,
                quantity,
                reason: CancelReason::Unfilled,
                ..
            } => {
                assert_eq!(id, order.id);
                unfilled += quantity.0;
            }
            MatchEvent::Rested { id, quantity, .. } => {
                assert_eq!(id, order.id);
                rested += quantity.0;
            }
        }
    }
    assert_eq!(
        (fills, rested, unfilled),
        (outcome.filled.0, outcome.rested.0, outcome.cancelled.0)
    );
    // Resting quantity: what was there, minus what traded or was self-trade cancelled, plus
    // what rested.
    let book_before = total(&before.bids) + total(&before.asks);
    let book_after = total(&after.bids) + total(&after.asks);
    assert_eq!(
        book_before - fills - self_trades + rested,
        book_after,
        "book conservation"
    );
}

fn run(seed: u64) {
    let max_orders = if seed.is_multiple_of(2) { 60 } else { 10_000 };
    let limits = BookLimits::new(max_orders, Quantity(MAX_QTY)).expect("valid limits");
    let mut book = OrderBook::new(limits);
    let mut reference = Reference {
        resting: Vec::new(),
        arrivals: 0,
        max_orders,
        max_qty: MAX_QTY,
    };
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        next_id: 0,
    };
    let (mut got_events, mut want_events) = (Vec::new(), Vec::new());
    let mut stats = [0usize; 5]; // fills, book full, self-trades, other errors, peak len
    for step in 0..OPS_PER_SEED {
        let before = book.depth(usize::MAX);
        let ctx = |what: &str| format!("seed {seed}, step {step}: {what}");
        match generator.op() {
            Op::Submit(order) => {
                got_events.clear();
                want_events.clear();
                let got = book.submit(order, &mut got_events);
                let want = reference.submit(order, &mut want_events);
                assert_eq!(got, want, "{}", ctx(&format!("result of {order:?}")));
                assert_eq!(
                    got_events,
                    want_events,
                    "{}",
                    ctx(&format!("events of {order:?}"))
                );
                match got {
                    Ok(outcome) => {
                        check_submit(
                            &order,
                            &outcome,
                            &got_events,
                            &before,
                            &book.depth(usize::MAX),
                        );
                        stats[0] += usize::from(outcome.filled.0 > 0);
                        stats[2] += got_events
                            .iter()
                            .filter(|e| {
                                matches!(
                                    e,
                                    MatchEvent::Cancelled {
                                        reason: CancelReason::SelfTrade,
                                        ..
                                    }
                                )
                            })
                            .count();
                    }
                    Err(MatchError::BookFull { .. }) => stats[1] += 1,
                    Err(_) => {
                        stats[3] += 1;
                        assert_eq!(
                            book.depth(usize::MAX),
                            before,
                            "{}",
                            ctx("refused order changed the book")
                        );
                    }
                }
                assert_eq!(
                    book.order(order.id),
                    reference.order(order.id),
                    "{}",
                    ctx("order()")
                );
            }
            Op::Cancel(id) => {
                let got = book.cancel(id);
                assert_eq!(
                    got,
                    reference.cancel(id),
                    "{}",
                    ctx(&format!("cancel {id}"))
                );
                assert_eq!(
                    book.order(id),
                    None,
                    "{}",
                    ctx("cancelled order still there")
                );
            }
        }
        let depth = book.depth(usize::MAX);
        assert_eq!(depth, reference.depth(), "{}", ctx("depth"));
        assert_eq!(book.len(), reference.resting.len(), "{}", ctx("len"));
        stats[4] = stats[4].max(book.len());
        assert_eq!(
            book.best_bid(),
            depth.bids.first().copied(),
            "{}",
            ctx("best bid")
        );
        assert_eq!(
            book.best_ask(),
            depth.asks.first().copied(),
            "{}",
            ctx("best ask")
        );
        if let (Some((bid, _)), Some((ask, _))) = (book.best_bid(), book.best_ask()) {
            assert!(
                bid < ask,
                "{}",
                ctx(&format!("crossed book {bid} >= {ask}"))
            );
        }
        assert_eq!(
            book.depth(3).bids,
            depth.bids.iter().take(3).copied().collect::<Vec<_>>()
        );
    }
    // The stream must actually exercise the interesting paths.
    assert!(stats[0] > 100, "seed {seed}: too few fills {stats:?}");
    assert!(stats[2] > 10, "seed {seed}: too few self-trades {stats:?}");
    assert!(
        stats[3] > 10,
        "seed {seed}: too few invalid orders {stats:?}"
    );
    if max_orders == 60 {
        assert!(stats[1] > 0, "seed {seed}: never full {stats:?}");
    }
}

#[test]
fn order_book_matches_the_naive_reference() {
    for seed in 0..SEEDS {
        run(seed);
    }
}
