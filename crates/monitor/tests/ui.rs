//! The live view rendered into ratatui's `TestBackend` from fixture stats: the buffer must
//! show the figures, the rooms and a failed node as down.

use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::Terminal;
use roomcast_monitor::model::Model;
use roomcast_monitor::poll::NodeData;
use roomcast_monitor::ui;
use serde_json::{json, Value};

fn fixture(messages_in: u64, deliveries: u64, chat_sequence: u64) -> NodeData {
    let stats_raw = json!({
        "connections": 1234, "rooms": 2, "subscriptions": 1500, "connections_total": 4000,
        "messages_in": messages_in, "deliveries": deliveries, "publishes": messages_in,
        "slow_consumers": 7, "evicted": 3, "dropped_oldest": 0, "uptime_secs": 3725,
        "arena": {"orders_accepted": messages_in, "orders_rejected": 2, "trades": deliveries / 10,
            "accounts": 3, "symbols": [
                {"symbol": "BTC-USD", "last_price": "50000.11", "best_bid": "50000.1",
                 "best_ask": "50000.14", "volume": "0.195"},
                {"symbol": "ETH-USD", "last_price": null, "best_bid": null,
                 "best_ask": null, "volume": "0"}
            ]}
    });
    let rooms_raw = json!({"rooms": [
        {"room": "lobby", "members": 1200, "sequence": 9, "epoch": "e"},
        {"room": "trading-floor", "members": 300, "sequence": chat_sequence, "epoch": "e"}
    ]});
    NodeData::from_json(stats_raw, rooms_raw).expect("fixture parses")
}

fn render(model: &Model) -> String {
    let mut terminal = Terminal::new(TestBackend::new(160, 40)).expect("test terminal");
    terminal
        .draw(|f| ui::draw(f, model))
        .expect("draw into the test backend");
    ui::buffer_text(terminal.backend().buffer())
}

#[test]
fn renders_figures_rooms_and_a_down_node() {
    let t0 = Instant::now();
    let mut model = Model::new(
        vec![
            "http://127.0.0.1:8080".to_owned(),
            "http://127.0.0.1:8081".to_owned(),
        ],
        Duration::from_secs(1),
    );
    model.record::<String>(0, t0, Ok(fixture(1000, 5000, 40)));
    model.record::<String>(0, t0 + Duration::from_secs(1), Ok(fixture(1250, 6500, 52)));
    model.record(
        1,
        t0 + Duration::from_secs(1),
        Err("/api/admin/stats: connect to 127.0.0.1:8081: Connection refused (os error 111)"),
    );

    let screen = render(&model);
    let line_with = |needle: &str| -> &str {
        screen
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{screen}"))
    };
    assert!(line_with("connections").contains("1234"), "{screen}");
    assert!(line_with("subscriptions").contains("1500"), "{screen}");
    assert!(line_with("in msg/s").contains("250.0"), "{screen}");
    // The fixture has no `messages_out`: out falls back to deliveries.
    assert!(line_with("out msg/s").contains("1500.0"), "{screen}");
    assert!(line_with("deliveries/s").contains("1500.0"), "{screen}");
    assert!(line_with("slow consumers").contains('7'), "{screen}");
    assert!(line_with("evicted").contains('3'), "{screen}");
    assert!(line_with("uptime").contains("1h02m"), "{screen}");
    // The arena: rates from two polls (250 orders/s, 150 trades/s) and a line per market.
    let arena = line_with("arena");
    assert!(
        arena.contains("250.0/s") && arena.contains("150.0/s"),
        "{screen}"
    );
    let btc = line_with("BTC-USD");
    for part in ["50000.11", "50000.1", "50000.14", "0.195"] {
        assert!(btc.contains(part), "{part} in {btc}");
    }
    assert!(
        line_with("ETH-USD").contains("last            -"),
        "{screen}"
    );
    // Top rooms: by members, and trading-floor by rate (12 events in 1 s).
    assert!(line_with("lobby").contains("1200"), "{screen}");
    assert!(screen.contains("top rooms by msg/s"), "{screen}");
    assert!(
        screen
            .lines()
            .any(|l| l.contains("trading-floor") && l.contains("12.0")),
        "{screen}"
    );
    // The header and the second node's panel.
    assert!(
        line_with("roomcast monitor").contains("1/2 nodes up"),
        "{screen}"
    );
    assert!(line_with("127.0.0.1:8081").contains("[down]"), "{screen}");
    assert!(
        line_with("down: ").contains("Connection refused"),
        "{screen}"
    );
    assert!(line_with("127.0.0.1:8080").contains("[up]"), "{screen}");
}

#[test]
fn a_node_not_yet_polled_says_so_and_a_tiny_terminal_does_not_panic() {
    let model = Model::new(
        vec!["http://10.0.0.1:8080".to_owned()],
        Duration::from_secs(1),
    );
    let screen = render(&model);
    assert!(screen.contains("[waiting]"), "{screen}");
    assert!(screen.contains("no data yet"), "{screen}");
    for (w, h) in [(1, 1), (10, 3), (40, 5)] {
        ui::render_text(&model, w, h).expect("renders at any size");
    }
}

#[test]
fn snapshot_json_lists_up_and_down_nodes() {
    use roomcast_monitor::args::NodeUrl;
    use roomcast_monitor::poll::{snapshot_json, NodeError, NodeReading};
    let up = NodeReading {
        url: NodeUrl::parse("http://127.0.0.1:8080").expect("url"),
        result: Ok(fixture(1, 2, 3)),
    };
    let down = NodeReading {
        url: NodeUrl::parse("http://127.0.0.1:8081").expect("url"),
        result: Err(NodeError::Lost),
    };
    let v: Value = snapshot_json(&[up, down]);
    assert_eq!(v["nodes"][0]["url"], "http://127.0.0.1:8080");
    assert_eq!(v["nodes"][0]["stats"]["connections"], 1234);
    assert_eq!(v["nodes"][0]["rooms"][0]["room"], "lobby");
    assert_eq!(v["nodes"][0]["markets"][0]["symbol"], "BTC-USD");
    assert_eq!(v["nodes"][0]["markets"][0]["last_price"], "50000.11");
    assert!(v["nodes"][0]["markets"][1]["last_price"].is_null());
    assert_eq!(v["nodes"][1]["error"], "poll task failed");
    assert!(v["nodes"][1].get("stats").is_none());
}
