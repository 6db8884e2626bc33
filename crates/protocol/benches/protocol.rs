//! Protocol hot paths: parsing a client request, encoding a room event once, deriving the
//! replay form, and serialising a small control reply.
//!
//! Run: `cargo bench -p roomcast-protocol --bench protocol -- --warm-up-time 1 --measurement-time 3`.

use criterion::Criterion;
use roomcast_protocol::server::{encode_event, mark_replayed, EventBody, Reply};
use roomcast_protocol::{parse_request, ClientId, Epoch, RoomName, Sequence};
use serde_json::value::RawValue;

fn protocol(c: &mut Criterion) {
    let message = r#"{"type":"message","room":"chat:lobby","id":42,"content":{"p":3,"n":123456,"t":1795686737000000000,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}}"#;
    let mut g = c.benchmark_group("protocol");
    g.bench_function("parse_message_request", |b| {
        b.iter(|| parse_request(std::hint::black_box(message)).map(|r| r.id.is_some()))
    });
    let ping = r#"{"type":"ping","id":"p1"}"#;
    g.bench_function("parse_ping", |b| {
        b.iter(|| parse_request(std::hint::black_box(ping)).is_ok())
    });
    let room = RoomName::parse("chat:lobby").expect("room");
    let from = ClientId::parse("alice").expect("id");
    let content =
        RawValue::from_string(r#"{"p":3,"n":123456,"pad":"xxxxxxxxxxxxxxxxxxxxxxxx"}"#.into())
            .expect("raw");
    let epoch = Epoch::new("0123456789abcdef");
    g.bench_function("encode_event", |b| {
        b.iter(|| {
            let body = EventBody::chat(&from, &content);
            encode_event(
                "message",
                &room,
                Sequence(123_456),
                &epoch,
                "2026-11-26T09:40:05.000001Z",
                &body,
            )
        })
    });
    let body = EventBody::chat(&from, &content);
    let frame = encode_event(
        "message",
        &room,
        Sequence(1),
        &epoch,
        "2026-11-26T09:40:05.000001Z",
        &body,
    );
    g.bench_function("mark_replayed", |b| {
        b.iter(|| mark_replayed(std::hint::black_box(&frame)))
    });
    g.bench_function("reply_pong_to_json", |b| {
        b.iter(|| Reply::Pong { id: None }.to_json())
    });
    g.bench_function("timestamp_rfc3339", |b| {
        b.iter(roomcast_protocol::time::now_rfc3339)
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    protocol(&mut c);
    c.final_summary();
}
