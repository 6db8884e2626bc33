//! The conformance echo (`--conformance-echo`, what scripts/autobahn runs Autobahn|Testsuite
//! against) and the RFC 6455 close codes the real endpoint answers framing faults with,
//! over real sockets against the real binary.

mod util;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use util::*;

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn echo(server: &TestServer) -> Ws {
    let (ws, _) = connect_async(server.url("/conformance/echo"))
        .await
        .expect("connect to the echo");
    ws
}

async fn next(ws: &mut Ws) -> Option<Message> {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a frame in time")
        .map(|r| r.expect("a valid frame"))
}

/// Reads until the server's close frame; returns its code.
async fn close_code(ws: &mut Ws) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("close in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("read error before the close frame: {e}"),
            None => panic!("connection ended without a close frame"),
        }
    }
}

fn text_frame(payload: &[u8]) -> Message {
    Message::Frame(Frame::message(
        payload.to_vec(),
        OpCode::Data(Data::Text),
        true,
    ))
}

#[tokio::test]
async fn echo_returns_text_and_binary_and_closes_cleanly() {
    let server = TestServer::start(&["--conformance-echo"]).await;
    let mut ws = echo(&server).await;
    ws.send(Message::text("héllo")).await.expect("send");
    assert_eq!(next(&mut ws).await, Some(Message::text("héllo")));
    ws.send(Message::binary(vec![0u8, 255, 7]))
        .await
        .expect("send");
    assert_eq!(
        next(&mut ws).await,
        Some(Message::binary(vec![0u8, 255, 7]))
    );
    ws.send(Message::Ping(b"p".to_vec().into()))
        .await
        .expect("ping");
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong(b"p".to_vec().into()))
    );
    // The client closes: the server answers with the same code, then ends the TCP stream.
    ws.send(Message::Close(Some(CloseFrame {
        code: 1000.into(),
        reason: "bye".into(),
    })))
    .await
    .expect("close");
    assert_eq!(close_code(&mut ws).await, Some(1000));
    assert!(
        next(&mut ws).await.is_none(),
        "the server ends the connection"
    );
}

#[tokio::test]
async fn echo_keeps_the_configured_message_limit() {
    let server = TestServer::start(&["--conformance-echo", "--max-message-bytes", "1024"]).await;
    let mut ws = echo(&server).await;
    ws.send(Message::text("x".repeat(1024)))
        .await
        .expect("send");
    assert_eq!(next(&mut ws).await, Some(Message::text("x".repeat(1024))));
    ws.send(Message::text("x".repeat(1025)))
        .await
        .expect("send");
    assert_eq!(close_code(&mut ws).await, Some(1009));
}

#[tokio::test]
async fn framing_faults_close_with_rfc_codes_on_the_session_endpoint() {
    let server = TestServer::start(&[]).await;
    let mut watcher = server.connect("watcher").await;

    // Invalid UTF-8 in a text frame: 1007.
    let mut c = server.connect("utf8").await;
    c.stream_mut()
        .send(text_frame(b"{\"type\":\"ping\",\"x\":\"\xff\"}"))
        .await
        .expect("send");
    assert_eq!(recv_close(&mut c).await.0, Some(1007));

    // A reserved bit without an extension: 1002.
    let mut c = server.connect("rsv").await;
    let mut frame = Frame::message(b"{}".to_vec(), OpCode::Data(Data::Text), true);
    frame.header_mut().rsv1 = true;
    c.stream_mut()
        .send(Message::Frame(frame))
        .await
        .expect("send");
    assert_eq!(recv_close(&mut c).await.0, Some(1002));

    // A bystander keeps being served.
    let pong = request(
        &mut watcher,
        serde_json::json!({"type":"ping"}),
        serde_json::json!(1),
    )
    .await;
    assert_eq!(pong["type"], "pong");
}

#[tokio::test]
async fn the_echo_is_not_mounted_by_default() {
    let server = TestServer::start(&[]).await;
    let (status, _) = server
        .http_request("GET", "/conformance/echo", None, None)
        .await;
    assert_eq!(status, 404);
}

fn check_config(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .arg("check-config")
        .args(args)
        .env_remove("ROOMCAST_DEV")
        .output()
        .expect("run check-config");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_refuses_the_echo_with_production_settings() {
    let (ok, stderr) = check_config(&["--dev", "--conformance-echo"]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = check_config(&[
        "--conformance-echo",
        "--jwt-secret",
        "a-production-secret-0123",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--conformance-echo") && stderr.contains("without --dev"),
        "{stderr}"
    );
    let (ok, stderr) = check_config(&["--dev", "--conformance-echo", "--bind", "0.0.0.0:8080"]);
    assert!(!ok);
    assert!(stderr.contains("non-loopback"), "{stderr}");
}
