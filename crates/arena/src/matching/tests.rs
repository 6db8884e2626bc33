//! Unit tests of the matching rules, through [`OrderBook`]'s public API, one rule per test.
//! Every test also checks the book's structural invariants after each step.

use super::*;

const A: AccountId = AccountId(1);
const B: AccountId = AccountId(2);
const C: AccountId = AccountId(3);

fn gtc(id: u64, account: AccountId, side: Side, price: u64, qty: u64) -> NewOrder {
    NewOrder::limit(
        OrderId(id),
        account,
        side,
        Price(price),
        Quantity(qty),
        TimeInForce::Gtc,
    )
}

fn with_tif(order: NewOrder, tif: TimeInForce) -> NewOrder {
    NewOrder { tif, ..order }
}

/// Submits and returns the outcome and the events; checks the invariants.
fn submit(book: &mut OrderBook, order: NewOrder) -> (SubmitOutcome, Vec<MatchEvent>) {
    let mut events = Vec::new();
    let outcome = book.submit(order, &mut events).expect("valid order");
    book.check_invariants();
    let sum = outcome.filled.0 + outcome.rested.0 + outcome.cancelled.0;
    assert_eq!(sum, order.quantity.0, "conservation");
    (outcome, events)
}

/// Submits an order that must be refused; checks that nothing changed.
fn refuse(book: &mut OrderBook, order: NewOrder) -> MatchError {
    let before = (book.depth(usize::MAX), book.len());
    let mut events = Vec::new();
    let err = book
        .submit(order, &mut events)
        .expect_err("must be refused");
    assert!(events.is_empty(), "a refused order emits nothing");
    assert_eq!((book.depth(usize::MAX), book.len()), before);
    book.check_invariants();
    err
}

fn fill(
    taker: (u64, AccountId),
    maker: (u64, AccountId),
    side: Side,
    price: u64,
    qty: u64,
) -> MatchEvent {
    MatchEvent::Fill(Fill {
        taker: OrderId(taker.0),
        maker: OrderId(maker.0),
        taker_account: taker.1,
        maker_account: maker.1,
        taker_side: side,
        price: Price(price),
        quantity: Quantity(qty),
    })
}

fn rested(id: u64, account: AccountId, side: Side, price: u64, qty: u64) -> MatchEvent {
    MatchEvent::Rested {
        id: OrderId(id),
        account,
        side,
        price: Price(price),
        quantity: Quantity(qty),
    }
}

fn cancelled(id: u64, account: AccountId, qty: u64, reason: CancelReason) -> MatchEvent {
    MatchEvent::Cancelled {
        id: OrderId(id),
        account,
        quantity: Quantity(qty),
        reason,
    }
}

fn levels(pairs: &[(u64, u64)]) -> Vec<(Price, Quantity)> {
    pairs
        .iter()
        .map(|&(p, q)| (Price(p), Quantity(q)))
        .collect()
}

#[test]
fn same_price_fills_in_arrival_order() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 5));
    submit(&mut book, gtc(2, B, Side::Sell, 100, 5));
    let (outcome, events) = submit(&mut book, gtc(3, C, Side::Buy, 100, 7));
    assert_eq!(
        events,
        [
            fill((3, C), (1, A), Side::Buy, 100, 5),
            fill((3, C), (2, B), Side::Buy, 100, 2),
        ]
    );
    assert_eq!(outcome.status(), OrderStatus::Filled);
    // The partially filled maker keeps its place and its remainder.
    assert_eq!(
        book.order(OrderId(2)).map(|o| o.quantity),
        Some(Quantity(3))
    );
    assert_eq!(book.order(OrderId(1)), None);
}

#[test]
fn better_price_fills_first_whatever_the_arrival_order() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Buy, 99, 5));
    submit(&mut book, gtc(2, B, Side::Buy, 101, 5));
    submit(&mut book, gtc(3, A, Side::Buy, 100, 5));
    let (_, events) = submit(&mut book, gtc(4, C, Side::Sell, 99, 12));
    assert_eq!(
        events,
        [
            fill((4, C), (2, B), Side::Sell, 101, 5),
            fill((4, C), (3, A), Side::Sell, 100, 5),
            fill((4, C), (1, A), Side::Sell, 99, 2),
        ]
    );
    assert_eq!(book.best_bid(), Some((Price(99), Quantity(3))));
}

#[test]
fn partial_fill_rests_the_remainder_at_its_limit() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 4));
    let (outcome, events) = submit(&mut book, gtc(2, B, Side::Buy, 101, 10));
    assert_eq!(
        events,
        [
            fill((2, B), (1, A), Side::Buy, 100, 4),
            rested(2, B, Side::Buy, 101, 6),
        ]
    );
    assert_eq!(
        outcome,
        SubmitOutcome {
            filled: Quantity(4),
            rested: Quantity(6),
            cancelled: Quantity::ZERO
        }
    );
    assert_eq!(
        outcome.status(),
        OrderStatus::Resting {
            partially_filled: true
        }
    );
    assert_eq!(
        book.order(OrderId(2)),
        Some(RestingOrder {
            id: OrderId(2),
            account: B,
            side: Side::Buy,
            price: Price(101),
            quantity: Quantity(6)
        })
    );
    assert_eq!(book.best_bid(), Some((Price(101), Quantity(6))));
    assert_eq!(book.best_ask(), None);
    assert_eq!(book.len(), 1);
}

#[test]
fn fills_trade_at_the_maker_price() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Buy, 105, 3));
    let (_, events) = submit(&mut book, gtc(2, B, Side::Sell, 90, 3));
    assert_eq!(events, [fill((2, B), (1, A), Side::Sell, 105, 3)]);
    let MatchEvent::Fill(f) = events[0] else {
        panic!("expected a fill");
    };
    assert_eq!(f.notional(), 315);
}

#[test]
fn ioc_remainder_is_cancelled_not_rested() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 2));
    submit(&mut book, gtc(2, A, Side::Sell, 102, 2));
    let ioc = with_tif(gtc(3, B, Side::Buy, 101, 5), TimeInForce::Ioc);
    let (outcome, events) = submit(&mut book, ioc);
    assert_eq!(
        events,
        [
            fill((3, B), (1, A), Side::Buy, 100, 2),
            cancelled(3, B, 3, CancelReason::Unfilled),
        ]
    );
    assert_eq!(
        outcome.status(),
        OrderStatus::Cancelled {
            partially_filled: true
        }
    );
    assert_eq!(book.order(OrderId(3)), None);
    assert_eq!(
        book.depth(10),
        Depth {
            bids: vec![],
            asks: levels(&[(102, 2)])
        }
    );
}

#[test]
fn market_order_on_an_empty_book_is_cancelled() {
    let mut book = OrderBook::default();
    let order = NewOrder::market(OrderId(1), A, Side::Buy, Quantity(5));
    let (outcome, events) = submit(&mut book, order);
    assert_eq!(events, [cancelled(1, A, 5, CancelReason::Unfilled)]);
    assert_eq!(
        outcome.status(),
        OrderStatus::Cancelled {
            partially_filled: false
        }
    );
    assert!(book.is_empty());
}

#[test]
fn market_order_sweeps_every_price() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Buy, 100, 2));
    submit(&mut book, gtc(2, A, Side::Buy, 1, 2));
    let order = NewOrder::market(OrderId(3), B, Side::Sell, Quantity(3));
    let (_, events) = submit(&mut book, order);
    assert_eq!(
        events,
        [
            fill((3, B), (1, A), Side::Sell, 100, 2),
            fill((3, B), (2, A), Side::Sell, 1, 1),
        ]
    );
}

#[test]
fn fok_fills_in_full_when_enough_is_available() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 3));
    submit(&mut book, gtc(2, B, Side::Sell, 101, 3));
    submit(&mut book, gtc(3, B, Side::Sell, 102, 3));
    let fok = with_tif(gtc(4, C, Side::Buy, 101, 6), TimeInForce::Fok);
    let (outcome, events) = submit(&mut book, fok);
    assert_eq!(
        events,
        [
            fill((4, C), (1, A), Side::Buy, 100, 3),
            fill((4, C), (2, B), Side::Buy, 101, 3),
        ]
    );
    assert_eq!(outcome.status(), OrderStatus::Filled);
    assert_eq!(book.best_ask(), Some((Price(102), Quantity(3))));
}

#[test]
fn fok_that_cannot_fill_in_full_fills_nothing() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 3));
    submit(&mut book, gtc(2, B, Side::Sell, 101, 3));
    submit(&mut book, gtc(3, B, Side::Sell, 102, 3));
    let before = book.depth(usize::MAX);
    // 9 lots exist, but only 6 at 101 or better.
    let fok = with_tif(gtc(4, C, Side::Buy, 101, 7), TimeInForce::Fok);
    let (outcome, events) = submit(&mut book, fok);
    assert_eq!(events, [cancelled(4, C, 7, CancelReason::Unfilled)]);
    assert_eq!(outcome.filled, Quantity::ZERO);
    assert_eq!(outcome.cancelled, Quantity(7));
    assert_eq!(book.depth(usize::MAX), before);
    // A market FOK for more than the whole side is killed too.
    let fok = NewOrder {
        tif: TimeInForce::Fok,
        ..NewOrder::market(OrderId(5), C, Side::Buy, Quantity(10))
    };
    let (_, events) = submit(&mut book, fok);
    assert_eq!(events, [cancelled(5, C, 10, CancelReason::Unfilled)]);
    assert_eq!(book.depth(usize::MAX), before);
}

#[test]
fn fok_does_not_count_own_orders() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 5));
    submit(&mut book, gtc(2, B, Side::Sell, 100, 5));
    let before = book.depth(usize::MAX);
    // 10 lots at 100, but 5 are A's own: not fillable, and A's order is not cancelled.
    let fok = with_tif(gtc(3, A, Side::Buy, 100, 6), TimeInForce::Fok);
    let (_, events) = submit(&mut book, fok);
    assert_eq!(events, [cancelled(3, A, 6, CancelReason::Unfilled)]);
    assert_eq!(book.depth(usize::MAX), before);
    // 5 is fillable: A's resting order is cancelled on the way, B's fills.
    let fok = with_tif(gtc(4, A, Side::Buy, 100, 5), TimeInForce::Fok);
    let (_, events) = submit(&mut book, fok);
    assert_eq!(
        events,
        [
            cancelled(1, A, 5, CancelReason::SelfTrade),
            fill((4, A), (2, B), Side::Buy, 100, 5),
        ]
    );
    assert!(book.is_empty());
}

#[test]
fn self_trade_cancels_the_resting_order_and_matching_continues() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 5));
    submit(&mut book, gtc(2, B, Side::Sell, 100, 2));
    submit(&mut book, gtc(3, A, Side::Sell, 101, 4));
    let (outcome, events) = submit(&mut book, gtc(4, A, Side::Buy, 101, 3));
    assert_eq!(
        events,
        [
            cancelled(1, A, 5, CancelReason::SelfTrade),
            fill((4, A), (2, B), Side::Buy, 100, 2),
            cancelled(3, A, 4, CancelReason::SelfTrade),
            rested(4, A, Side::Buy, 101, 1),
        ]
    );
    assert_eq!(outcome.filled, Quantity(2));
    assert_eq!(outcome.rested, Quantity(1));
    assert_eq!(book.order(OrderId(1)), None);
    assert_eq!(book.order(OrderId(3)), None);
    assert_eq!(
        book.depth(10),
        Depth {
            bids: levels(&[(101, 1)]),
            asks: vec![]
        }
    );
}

#[test]
fn cancelled_order_no_longer_matches_and_leaves_depth() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Sell, 100, 5));
    submit(&mut book, gtc(2, B, Side::Sell, 100, 2));
    submit(&mut book, gtc(3, B, Side::Sell, 101, 1));
    assert_eq!(book.depth(10).asks, levels(&[(100, 7), (101, 1)]));

    let gone = book.cancel(OrderId(1)).expect("resting");
    book.check_invariants();
    assert_eq!(
        gone,
        RestingOrder {
            id: OrderId(1),
            account: A,
            side: Side::Sell,
            price: Price(100),
            quantity: Quantity(5)
        }
    );
    assert_eq!(book.depth(10).asks, levels(&[(100, 2), (101, 1)]));
    assert_eq!(book.len(), 2);

    // Cancelling the last order of a level removes the level.
    book.cancel(OrderId(3)).expect("resting");
    book.check_invariants();
    assert_eq!(book.depth(10).asks, levels(&[(100, 2)]));
    assert_eq!(book.level_count(Side::Sell), 1);

    let (_, events) = submit(&mut book, gtc(4, C, Side::Buy, 101, 5));
    assert_eq!(
        events,
        [
            fill((4, C), (2, B), Side::Buy, 100, 2),
            rested(4, C, Side::Buy, 101, 3),
        ]
    );
}

#[test]
fn cancel_after_a_partial_fill_returns_what_is_left() {
    let mut book = OrderBook::default();
    submit(&mut book, gtc(1, A, Side::Buy, 100, 10));
    submit(&mut book, gtc(2, B, Side::Sell, 100, 4));
    let gone = book.cancel(OrderId(1)).expect("resting");
    assert_eq!(gone.quantity, Quantity(6));
    assert!(book.is_empty());
    book.check_invariants();
}

#[test]
fn unknown_and_duplicate_ids_are_refused() {
    let mut book = OrderBook::default();
    assert_eq!(
        book.cancel(OrderId(9)),
        Err(MatchError::UnknownOrder { id: OrderId(9) })
    );
    submit(&mut book, gtc(1, A, Side::Buy, 100, 10));
    let err = refuse(&mut book, gtc(1, B, Side::Sell, 200, 1));
    assert_eq!(err, MatchError::DuplicateOrderId { id: OrderId(1) });
    // An IOC with a resting order's id is refused too, even though it would never rest.
    let err = refuse(
        &mut book,
        with_tif(gtc(1, B, Side::Sell, 100, 1), TimeInForce::Ioc),
    );
    assert_eq!(err, MatchError::DuplicateOrderId { id: OrderId(1) });

    // Once an order has left the book, its id is free again, and cancelling it fails.
    book.cancel(OrderId(1)).expect("resting");
    assert_eq!(
        book.cancel(OrderId(1)),
        Err(MatchError::UnknownOrder { id: OrderId(1) })
    );
    submit(&mut book, gtc(1, B, Side::Sell, 200, 1));
}

#[test]
fn invalid_orders_are_refused_and_change_nothing() {
    let mut book = OrderBook::new(BookLimits::new(10, Quantity(1000)).expect("valid limits"));
    submit(&mut book, gtc(1, A, Side::Sell, 100, 5));
    let id = OrderId(2);
    assert_eq!(
        refuse(&mut book, gtc(2, B, Side::Buy, 100, 0)),
        MatchError::ZeroQuantity { id }
    );
    assert_eq!(
        refuse(&mut book, gtc(2, B, Side::Buy, 0, 5)),
        MatchError::ZeroPrice { id }
    );
    assert_eq!(
        refuse(&mut book, gtc(2, B, Side::Buy, 100, 1001)),
        MatchError::QuantityTooLarge {
            id,
            quantity: Quantity(1001),
            max: Quantity(1000)
        }
    );
    let market_gtc = with_tif(
        NewOrder::market(id, B, Side::Buy, Quantity(1)),
        TimeInForce::Gtc,
    );
    assert_eq!(
        refuse(&mut book, market_gtc),
        MatchError::MarketOrderCannotRest { id }
    );
}

#[test]
fn full_book_refuses_orders_that_could_rest() {
    let mut book = OrderBook::new(BookLimits::new(2, Quantity(1000)).expect("valid limits"));
    submit(&mut book, gtc(1, A, Side::Sell, 100, 5));
    submit(&mut book, gtc(2, A, Side::Sell, 101, 5));
    // A GTC order is refused, even one that would cross.
    assert_eq!(
        refuse(&mut book, gtc(3, B, Side::Buy, 100, 1)),
        MatchError::BookFull { max_orders: 2 }
    );
    assert_eq!(
        refuse(&mut book, gtc(3, B, Side::Sell, 200, 1)),
        MatchError::BookFull { max_orders: 2 }
    );
    // Orders that never rest are still accepted, and may make room.
    let ioc = with_tif(gtc(3, B, Side::Buy, 100, 5), TimeInForce::Ioc);
    let (outcome, _) = submit(&mut book, ioc);
    assert_eq!(outcome.filled, Quantity(5));
    assert_eq!(book.len(), 1);
    submit(&mut book, gtc(4, B, Side::Buy, 99, 1));
    assert_eq!(book.len(), 2);
    book.cancel(OrderId(4)).expect("resting");
    submit(&mut book, gtc(5, B, Side::Buy, 99, 1));
}

#[test]
fn events_are_appended_not_replaced() {
    let mut book = OrderBook::default();
    let mut events = Vec::new();
    book.submit(gtc(1, A, Side::Sell, 100, 1), &mut events)
        .expect("valid order");
    book.submit(gtc(2, B, Side::Buy, 100, 1), &mut events)
        .expect("valid order");
    assert_eq!(
        events,
        [
            rested(1, A, Side::Sell, 100, 1),
            fill((2, B), (1, A), Side::Buy, 100, 1),
        ]
    );
}

#[test]
fn extreme_prices_and_quantities() {
    let max_qty = Quantity(u64::MAX / 4);
    let mut book = OrderBook::new(BookLimits::new(4, max_qty).expect("valid limits"));
    submit(&mut book, gtc(1, A, Side::Sell, u64::MAX, max_qty.0));
    submit(&mut book, gtc(2, B, Side::Sell, u64::MAX, max_qty.0));
    submit(&mut book, gtc(3, C, Side::Buy, 1, max_qty.0));
    assert_eq!(
        book.best_ask(),
        Some((Price(u64::MAX), Quantity(max_qty.0 * 2)))
    );
    assert_eq!(book.best_bid(), Some((Price(1), max_qty)));
    let (_, events) = submit(&mut book, gtc(4, C, Side::Buy, u64::MAX, max_qty.0));
    let MatchEvent::Fill(f) = events[0] else {
        panic!("expected a fill");
    };
    assert_eq!(f.notional(), u128::from(u64::MAX) * u128::from(max_qty.0));
}

#[test]
fn error_messages_have_no_trailing_period() {
    let errors = [
        MatchError::ZeroQuantity { id: OrderId(1) },
        MatchError::ZeroPrice { id: OrderId(1) },
        MatchError::QuantityTooLarge {
            id: OrderId(1),
            quantity: Quantity(2),
            max: Quantity(1),
        },
        MatchError::MarketOrderCannotRest { id: OrderId(1) },
        MatchError::DuplicateOrderId { id: OrderId(1) },
        MatchError::UnknownOrder { id: OrderId(1) },
        MatchError::BookFull { max_orders: 1 },
    ];
    for e in errors {
        let message = e.to_string();
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        MatchError::BookFull { max_orders: 3 }.to_string(),
        "the book is full (3 resting orders)"
    );
}
