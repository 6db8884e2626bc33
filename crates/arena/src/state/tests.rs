//! Scenario tests of the state machine (risk, reservations, settlement, views) and the
//! property test: random order/cancel sequences from several accounts keep conservation,
//! exact reservations and an uncrossed book, and replaying the logged commands on a fresh
//! state rebuilds it exactly.

use proptest::prelude::*;

use super::*;
use crate::config::InstrumentConfig;
use crate::views::{OrderSide, OrderType, TimeInForce};

fn cid(s: &str) -> CollectiveId {
    CollectiveId::parse(s).expect("id")
}

fn state_with(config: &ArenaConfig) -> ExchangeState {
    ExchangeState::new(config.validate().expect("valid"), StateLimits::of(config))
}

/// Accounts a, b, c with 10,000.00 USD and 10 BTC each.
fn funded(config: &ArenaConfig) -> (ExchangeState, Vec<Command>) {
    let mut s = state_with(config);
    let mut log = Vec::new();
    for n in ["a", "b", "c"] {
        let funding = Funding {
            cash_cents: 1_000_000,
            positions: [("BTC-USD".to_owned(), 100_000)].into_iter().collect(),
        };
        assert!(s.open_account(&cid(n), &funding, &mut Emit::discard()));
        log.push(Command::OpenAccount {
            collective: cid(n),
            funding,
        });
    }
    (s, log)
}

fn req(side: OrderSide, qty: &str, price: Option<&str>, tif: TimeInForce) -> OrderRequest {
    OrderRequest {
        symbol: "BTC-USD".into(),
        side,
        order_type: if price.is_some() {
            OrderType::Limit
        } else {
            OrderType::Market
        },
        quantity: qty.into(),
        price: price.map(str::to_owned),
        time_in_force: tif,
        client_order_id: None,
    }
}

fn place(s: &mut ExchangeState, who: &str, r: OrderRequest) -> Result<OrderView, OrderError> {
    match s.place(&cid(who), &r, 1, Mode::Live, &mut Emit::new())? {
        Placed::New(v) | Placed::Duplicate(v) => Ok(v),
    }
}

/// A good-till-cancelled limit order.
fn gtc(side: OrderSide, qty: &str, price: &str) -> OrderRequest {
    req(side, qty, Some(price), TimeInForce::Gtc)
}

/// Places a good-till-cancelled limit order for `who`.
fn limit(
    s: &mut ExchangeState,
    who: &str,
    side: OrderSide,
    qty: &str,
    price: &str,
) -> Result<OrderView, OrderError> {
    place(s, who, gtc(side, qty, price))
}

fn reason(r: Result<OrderView, OrderError>) -> Option<&'static str> {
    r.err().map(|e| e.reason())
}

fn balance(s: &ExchangeState, who: &str) -> crate::views::BalanceView {
    s.balance_view(&cid(who), "USD").expect("balance")
}

fn position(s: &ExchangeState, who: &str) -> crate::views::PositionView {
    s.position_view(&cid(who), "BTC-USD").expect("position")
}

#[test]
fn a_buy_at_a_better_price_releases_the_difference() {
    let (mut s, _) = funded(&ArenaConfig::default());
    limit(&mut s, "a", OrderSide::Sell, "1", "100").expect("sell rests");
    assert_eq!(position(&s, "a").reserved, "1");
    let buy = limit(&mut s, "b", OrderSide::Buy, "2", "101").expect("buy");
    assert_eq!(buy.filled_quantity, "1");
    assert_eq!(buy.status, OrderStatus::PartiallyFilled);
    assert_eq!(buy.average_fill_price.as_deref(), Some("100"));
    // b paid 100 for 1 BTC and still reserves 101 for the resting 1 BTC.
    let b = balance(&s, "b");
    assert_eq!(
        (b.total.as_str(), b.reserved.as_str(), b.available.as_str()),
        ("9900", "101", "9799")
    );
    let a = balance(&s, "a");
    assert_eq!(a.total, "10100");
    assert_eq!(position(&s, "a").quantity, "9");
    assert_eq!(position(&s, "b").quantity, "11");
    assert_eq!(
        s.book_view("BTC-USD", 10).expect("book").bids[0].price,
        "101"
    );
    s.check_conservation().expect("conserved");
}

#[test]
fn every_reject_reason_of_the_checks() {
    let mut config = ArenaConfig::default();
    config.instruments.push(InstrumentConfig {
        open: false,
        ..InstrumentConfig::new("SHUT", "1", "1")
    });
    let (mut s, _) = funded(&config);
    // A good limit buy of 1 at 1, changed in one field.
    let buy_one = |tweak: fn(&mut OrderRequest)| {
        let mut r = gtc(OrderSide::Buy, "1", "1");
        tweak(&mut r);
        r
    };
    let cases = [
        (gtc(OrderSide::Buy, "1", "1000000"), "insufficient_funds"),
        (gtc(OrderSide::Sell, "11", "1"), "insufficient_position"),
        (gtc(OrderSide::Buy, "1", "1.001"), "invalid_tick"),
        (gtc(OrderSide::Buy, "0.00001", "1"), "invalid_lot"),
        (gtc(OrderSide::Buy, "0", "1"), "invalid_quantity"),
        (gtc(OrderSide::Buy, "-1", "1"), "invalid_quantity"),
        (gtc(OrderSide::Buy, "1e2", "1"), "invalid_quantity"),
        (gtc(OrderSide::Buy, "1", "0"), "invalid_price"),
        (gtc(OrderSide::Buy, "1", "abc"), "invalid_price"),
        (gtc(OrderSide::Buy, "101", "1"), "order_too_large"),
        (buy_one(|r| r.price = None), "invalid_price"),
        (
            buy_one(|r| r.order_type = OrderType::Market),
            "invalid_price",
        ),
        (buy_one(|r| r.symbol = "DOGE".into()), "unknown_symbol"),
        (buy_one(|r| r.symbol = "SHUT".into()), "market_closed"),
        (
            buy_one(|r| r.client_order_id = Some("bad id!".into())),
            "invalid_client_order_id",
        ),
    ];
    for (r, want) in cases {
        let mut emit = Emit::new();
        let got = s.place(&cid("a"), &r, 1, Mode::Live, &mut emit);
        assert_eq!(
            got.as_ref().err().map(OrderError::reason),
            Some(want),
            "{r:?}"
        );
        assert_eq!(emit.events.len(), 1, "one order_rejected event for {want}");
        assert_eq!(emit.events[0].event_type, "order_rejected");
        assert_eq!(emit.events[0].room.as_str(), "orders:a");
        assert!(emit.events[0].data.get().contains(want));
    }
    assert_eq!(
        reason(limit(&mut s, "nobody", OrderSide::Buy, "1", "1")),
        Some("unknown_account")
    );
    assert_eq!(s.next_order_id(), 1, "rejects consume no order id");
    s.check_conservation().expect("conserved");
}

#[test]
fn shorts_need_the_flag() {
    let config = ArenaConfig {
        allow_shorts: true,
        ..ArenaConfig::default()
    };
    let (mut s, _) = funded(&config);
    limit(&mut s, "a", OrderSide::Sell, "15", "100").expect("short allowed");
    limit(&mut s, "b", OrderSide::Buy, "15", "100").expect("fills");
    assert_eq!(position(&s, "a").quantity, "-5");
    assert_eq!(
        position(&s, "a").average_entry_price.as_deref(),
        Some("100")
    );
    s.check_conservation().expect("conserved");
}

#[test]
fn client_order_id_returns_the_first_order() {
    let (mut s, _) = funded(&ArenaConfig::default());
    let r = OrderRequest {
        client_order_id: Some("my-1".into()),
        ..req(OrderSide::Buy, "1", Some("50"), TimeInForce::Gtc)
    };
    let first = place(&mut s, "a", r.clone()).expect("first");
    let mut emit = Emit::new();
    let again = s
        .place(&cid("a"), &r, 2, Mode::Live, &mut emit)
        .expect("duplicate");
    assert_eq!(again, Placed::Duplicate(first.clone()));
    assert!(emit.events.is_empty());
    assert_eq!(s.orders_of(&cid("a"), true).len(), 1);
    // Another collective may use the same id.
    let other = place(&mut s, "b", r).expect("b's own");
    assert_ne!(other.order_id, first.order_id);
}

#[test]
fn ioc_remainder_is_cancelled_and_released() {
    let (mut s, _) = funded(&ArenaConfig::default());
    limit(&mut s, "a", OrderSide::Sell, "1", "100").expect("rests");
    let ioc = place(
        &mut s,
        "b",
        req(OrderSide::Buy, "3", Some("100"), TimeInForce::Ioc),
    )
    .expect("ioc");
    assert_eq!(ioc.status, OrderStatus::Cancelled);
    assert_eq!(ioc.cancel_reason, Some(CancelReason::Unfilled));
    assert_eq!(
        (
            ioc.filled_quantity.as_str(),
            ioc.remaining_quantity.as_str()
        ),
        ("1", "0")
    );
    assert_eq!(balance(&s, "b").reserved, "0");
    assert_eq!(balance(&s, "b").total, "9900");
    let fok = place(
        &mut s,
        "b",
        req(OrderSide::Buy, "1", Some("100"), TimeInForce::Fok),
    )
    .expect("fok");
    assert_eq!(fok.status, OrderStatus::Cancelled);
    s.check_conservation().expect("conserved");
}

#[test]
fn market_buys_reserve_what_the_book_would_cost() {
    let (mut s, _) = funded(&ArenaConfig::default());
    limit(&mut s, "a", OrderSide::Sell, "1", "6000").expect("rests");
    limit(&mut s, "a", OrderSide::Sell, "1", "6000.5").expect("rests");
    // 2 BTC would cost 12000.50 > 10000 free.
    assert_eq!(
        reason(place(
            &mut s,
            "b",
            req(OrderSide::Buy, "2", None, TimeInForce::Gtc)
        )),
        Some("insufficient_funds")
    );
    let m = place(
        &mut s,
        "b",
        req(OrderSide::Buy, "1.5", None, TimeInForce::Gtc),
    )
    .expect("market");
    assert_eq!(m.time_in_force, TimeInForce::Ioc);
    assert_eq!(m.status, OrderStatus::Filled);
    // 1 @ 6000 + 0.5 @ 6000.50 = 9000.25
    assert_eq!(balance(&s, "b").total, "999.75");
    assert_eq!(balance(&s, "b").reserved, "0");
    // Market sell with no bids: nothing fills, nothing stays reserved.
    let m = place(
        &mut s,
        "c",
        req(OrderSide::Sell, "1", None, TimeInForce::Ioc),
    )
    .expect("market sell");
    assert_eq!(m.status, OrderStatus::Cancelled);
    assert_eq!(position(&s, "c").reserved, "0");
    s.check_conservation().expect("conserved");
}

#[test]
fn cancel_releases_and_knows_the_owner() {
    let (mut s, _) = funded(&ArenaConfig::default());
    let o = limit(&mut s, "a", OrderSide::Buy, "1", "100").expect("rests");
    assert_eq!(balance(&s, "a").reserved, "100");
    assert_eq!(
        s.cancel(&cid("b"), o.order_id, 2, &mut Emit::new()).err(),
        Some(OrderError::NotFound)
    );
    assert_eq!(
        s.cancel(&cid("a"), 999, 2, &mut Emit::new()).err(),
        Some(OrderError::NotFound)
    );
    let mut emit = Emit::new();
    let c = s
        .cancel(&cid("a"), o.order_id, 2, &mut emit)
        .expect("cancel");
    assert_eq!(c.status, OrderStatus::Cancelled);
    assert_eq!(c.cancel_reason, Some(CancelReason::Requested));
    let types: Vec<_> = emit
        .events
        .iter()
        .map(|e| (e.room.as_str().to_owned(), e.event_type))
        .collect();
    assert!(types.contains(&("orders:a".into(), "order_cancelled")));
    assert!(types.contains(&(format!("order:a/{}", o.order_id), "order_cancelled")));
    assert!(types.contains(&("portfolio:a".into(), "balance_updated")));
    assert!(types.contains(&("market:BTC-USD".into(), "book_update")));
    assert_eq!(balance(&s, "a").reserved, "0");
    assert_eq!(
        s.cancel(&cid("a"), o.order_id, 3, &mut Emit::new()).err(),
        Some(OrderError::NotOpen)
    );
    s.check_conservation().expect("conserved");
}

#[test]
fn realised_pnl_and_average_entry() {
    let (mut s, _) = funded(&ArenaConfig::default());
    // b's starting 10 BTC carry no cost; d starts flat so its average is the trades' own.
    let d = Funding {
        cash_cents: 1_000_000,
        ..Funding::default()
    };
    s.open_account(&cid("d"), &d, &mut Emit::discard());
    limit(&mut s, "a", OrderSide::Sell, "1", "100").expect("rests");
    limit(&mut s, "a", OrderSide::Sell, "1", "120").expect("rests");
    limit(&mut s, "d", OrderSide::Buy, "2", "120").expect("buys both");
    assert_eq!(
        position(&s, "d").average_entry_price.as_deref(),
        Some("110")
    );
    limit(&mut s, "c", OrderSide::Buy, "1", "130").expect("rests");
    limit(&mut s, "d", OrderSide::Sell, "1", "130").expect("sells");
    let d = position(&s, "d");
    assert_eq!((d.quantity.as_str(), d.realised_pnl.as_str()), ("1", "20"));
    assert_eq!(d.average_entry_price.as_deref(), Some("110"));
    assert_eq!(balance(&s, "d").realised_pnl, "20");
    let p = s.portfolio_view(&cid("d")).expect("portfolio");
    // cash 10000 - 220 + 130 = 9910; 1 BTC marked at the last trade 130.
    assert_eq!(p.equity[0].equity, "10040");
    s.check_conservation().expect("conserved");
}

#[test]
fn self_trade_cancels_the_resting_order() {
    let (mut s, _) = funded(&ArenaConfig::default());
    let rest = limit(&mut s, "a", OrderSide::Sell, "1", "100").expect("rests");
    limit(&mut s, "a", OrderSide::Buy, "1", "100").expect("rests after stp");
    let old = s.order_of(&cid("a"), rest.order_id).expect("known");
    assert_eq!(old.cancel_reason, Some(CancelReason::SelfTrade));
    assert_eq!(position(&s, "a").reserved, "0");
    s.check_conservation().expect("conserved");
}

/// One random operation of the property test.
#[derive(Debug, Clone)]
enum Op {
    Place {
        who: usize,
        buy: bool,
        market: bool,
        price: u64,
        lots: u64,
        tif: u8,
    },
    Cancel {
        who: usize,
        nth: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, any::<bool>(), prop::bool::weighted(0.1), 95..106u64, 1..40u64, 0..3u8)
            .prop_map(|(who, buy, market, price, lots, tif)| Op::Place { who, buy, market, price, lots, tif }),
        1 => (0..4usize, 0..50usize).prop_map(|(who, nth)| Op::Cancel { who, nth }),
    ]
}

const WHO: [&str; 4] = ["a", "b", "c", "d"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_trading_conserves_and_replays_exactly(
        ops in prop::collection::vec(op(), 1..200),
        allow_shorts in any::<bool>(),
    ) {
        let config = ArenaConfig { allow_shorts, ..ArenaConfig::default() };
        let mut s = state_with(&config);
        let mut log = Vec::new();
        for (n, who) in WHO.iter().enumerate() {
            // Little cash and position, so reservations run out and rejects happen.
            let funding = Funding {
                cash_cents: 50_000 + 10_000 * n as u64,
                positions: [("BTC-USD".to_owned(), 500u64)].into_iter().collect(),
            };
            s.open_account(&cid(who), &funding, &mut Emit::discard());
            log.push(Command::OpenAccount { collective: cid(who), funding });
        }
        for (t, op) in ops.into_iter().enumerate() {
            let at_ms = t as i64;
            match op {
                Op::Place { who, buy, market, price, lots, tif } => {
                    let tif = [TimeInForce::Gtc, TimeInForce::Ioc, TimeInForce::Fok][tif as usize];
                    let side = if buy { OrderSide::Buy } else { OrderSide::Sell };
                    let ins = s.instruments().get("BTC-USD").cloned().expect("btc");
                    let r = OrderRequest {
                        symbol: "BTC-USD".into(),
                        side,
                        order_type: if market { OrderType::Market } else { OrderType::Limit },
                        quantity: ins.format_quantity(i128::from(lots)),
                        price: (!market).then(|| ins.format_price(price * 100)),
                        time_in_force: tif,
                        client_order_id: None,
                    };
                    let order_id = s.next_order_id();
                    if let Ok(Placed::New(_)) = s.place(&cid(WHO[who]), &r, at_ms, Mode::Live, &mut Emit::new()) {
                        log.push(Command::Place { order_id, collective: cid(WHO[who]), request: r, at_ms });
                    }
                }
                Op::Cancel { who, nth } => {
                    let open = s.orders_of(&cid(WHO[who]), true);
                    if let Some(o) = open.get(nth % open.len().max(1)) {
                        let id = o.order_id;
                        s.cancel(&cid(WHO[who]), id, at_ms, &mut Emit::new()).expect("open order cancels");
                        log.push(Command::Cancel { collective: cid(WHO[who]), order_id: id, at_ms });
                    }
                }
            }
            if let Err(e) = s.check_conservation() {
                prop_assert!(false, "after step {t}: {e}");
            }
        }
        // Replay on a fresh state gives the same state; so does a snapshot round trip.
        let mut replayed = state_with(&config);
        for cmd in &log {
            replayed.apply(cmd, &mut Emit::discard(), Mode::Replay).map_err(TestCaseError::fail)?;
        }
        prop_assert_eq!(replayed.snapshot(), s.snapshot());
        let json = serde_json::to_vec(&s.snapshot()).expect("json");
        // The checkpoint replica's copy-free serialisation writes the same bytes.
        prop_assert_eq!(&s.snapshot_json().expect("json"), &json);
        let mut restored = state_with(&config);
        restored.restore(serde_json::from_slice(&json).expect("decode")).map_err(TestCaseError::fail)?;
        prop_assert_eq!(restored.snapshot(), s.snapshot());
        restored.check_conservation().map_err(TestCaseError::fail)?;
        prop_assert_eq!(restored.book_view("BTC-USD", usize::MAX), s.book_view("BTC-USD", usize::MAX));
    }
}

#[test]
fn a_batched_sink_merges_summaries_and_omits_levels_born_and_gone_inside_the_batch() {
    let (mut s, _) = funded(&ArenaConfig::default());
    let mut emit = Emit::batched();
    let gtc = TimeInForce::Gtc;
    // a rests at 100 and b takes it, then a rests at 101 (which stays): two commands from
    // a, one from b, one batch.
    for (who, r) in [
        ("a", req(OrderSide::Sell, "1", Some("100.00"), gtc)),
        ("b", req(OrderSide::Buy, "1", Some("100.00"), gtc)),
        ("a", req(OrderSide::Sell, "2", Some("101.00"), gtc)),
    ] {
        s.place(&cid(who), &r, 1, Mode::Live, &mut emit)
            .expect("placed");
    }
    let summaries = |emit: &Emit| {
        emit.events
            .iter()
            .filter(|e| {
                matches!(
                    e.event_type,
                    "book_update" | "ticker" | "balance_updated" | "position_updated"
                )
            })
            .count()
    };
    assert_eq!(summaries(&emit), 0, "summaries wait for the flush");
    s.flush_summaries(&mut emit);
    let of = |ty: &str| -> Vec<&str> {
        emit.events
            .iter()
            .filter(|e| e.event_type == ty)
            .map(|e| e.data.get())
            .collect()
    };
    let books = of("book_update");
    assert_eq!(books.len(), 1, "{books:?}");
    assert!(books[0].contains("\"101\""), "{}", books[0]);
    assert!(
        !books[0].contains("\"100\""),
        "level 100 came and went: {}",
        books[0]
    );
    assert_eq!(of("ticker").len(), 1);
    assert_eq!(of("trade").len(), 1);
    // One balance and one position update per account touched, with the final values.
    assert_eq!(of("balance_updated").len(), 2);
    assert_eq!(of("position_updated").len(), 2);
    let a_usd = emit
        .events
        .iter()
        .find(|e| e.event_type == "balance_updated" && e.room.as_str() == "portfolio:a")
        .expect("a's balance");
    let now = serde_json::to_string(&balance(&s, "a")).expect("json");
    assert_eq!(a_usd.data.get(), now);
    // Flushed: nothing is left pending.
    let before = emit.events.len();
    s.flush_summaries(&mut emit);
    assert_eq!(emit.events.len(), before);
}

#[test]
fn a_batched_book_update_lists_bids_high_to_low_then_asks_low_to_high() {
    let (mut s, _) = funded(&ArenaConfig::default());
    let mut emit = Emit::batched();
    let gtc = TimeInForce::Gtc;
    for i in 0..40u32 {
        let (who, side, price) = if i % 2 == 0 {
            ("a", OrderSide::Buy, 90 - i / 2)
        } else {
            ("b", OrderSide::Sell, 110 + i / 2)
        };
        let price = format!("{price}.00");
        s.place(
            &cid(who),
            &req(side, "0.1", Some(&price), gtc),
            1,
            Mode::Live,
            &mut emit,
        )
        .expect("placed");
    }
    s.flush_summaries(&mut emit);
    let update = emit
        .events
        .iter()
        .find(|e| e.event_type == "book_update")
        .expect("a book update");
    let v: serde_json::Value = serde_json::from_str(update.data.get()).expect("json");
    // Whole prices here: the integer part orders them.
    let prices = |side: &str| -> Vec<u64> {
        v[side]
            .as_array()
            .expect("levels")
            .iter()
            .map(|l| {
                let p = l["price"].as_str().expect("price");
                p.split('.').next().unwrap_or(p).parse().expect("number")
            })
            .collect()
    };
    let (bids, asks) = (prices("bids"), prices("asks"));
    assert_eq!((bids.len(), asks.len()), (20, 20));
    assert!(bids.windows(2).all(|w| w[0] > w[1]), "{bids:?}");
    assert!(asks.windows(2).all(|w| w[0] < w[1]), "{asks:?}");
}
