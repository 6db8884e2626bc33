//! The embedding example (`examples/embed.rs`) run as a library user would: on a free
//! loopback port, with a real WebSocket client that gets its welcome, joins a room and
//! has its message delivered to another member; then the example's `stop` future shuts it down cleanly.

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod example;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("open")
            .expect("frame");
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).expect("json");
        }
    }
}

#[tokio::test]
async fn the_embedding_example_serves_websocket_clients() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(example::embed(listener, async {
        let _ = stop_rx.await;
    }));

    let mut clients = Vec::new();
    for id in ["alice", "bob"] {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws/{id}"))
            .await
            .expect("connect");
        let welcome = next_json(&mut ws).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws.send(Message::text(
            r#"{"type":"subscribe","room":"lobby","id":1}"#,
        ))
        .await
        .expect("send");
        loop {
            let v = next_json(&mut ws).await;
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "ack" {
                break;
            }
        }
        clients.push(ws);
    }
    let message = r#"{"type":"message","room":"lobby","content":{"n":1},"id":2}"#;
    clients[0].send(Message::text(message)).await.expect("send");
    loop {
        let v = next_json(&mut clients[1]).await;
        assert_ne!(v["type"], "error", "{v}");
        if v["type"] == "message" {
            assert_eq!(v["from"], "alice", "{v}");
            assert_eq!(v["content"]["n"], 1, "{v}");
            break;
        }
    }

    stop_tx.send(()).expect("server still running");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops within 10 s")
        .expect("task")
        .expect("clean shutdown");
}
