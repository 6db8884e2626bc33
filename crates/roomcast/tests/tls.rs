//! `--tls-cert` / `--tls-key`: the real binary serves HTTPS and `wss://` with a certificate
//! made for the test, checked by a real TLS client that trusts only that certificate; a
//! client that does not speak TLS gets nothing, and a bad key pair refuses to start.

mod util;

use std::process::Stdio;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for `localhost`, written as PEM files.
fn certificate(dir: &std::path::Path) -> (String, String, CertificateDer<'static>) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).expect("write key");
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        cert.cert.der().clone(),
    )
}

type Wss = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

/// The next text frame as JSON.
async fn next(ws: &mut Wss) -> serde_json::Value {
    match tokio::time::timeout(util::WAIT, ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str()).expect("json"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

fn connector(trusted: CertificateDer<'static>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted).expect("trust the test certificate");
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[tokio::test]
async fn https_and_wss_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, der) = certificate(dir.path());
    let data = dir.path().join("data");
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args([
            "serve",
            "--dev",
            "--bind",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ])
        .arg("--data-dir")
        .arg(&data)
        .env_remove("ROOMCAST_DEV")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn roomcast");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(util::WAIT, lines.next_line())
        .await
        .expect("announced in time")
        .expect("read")
        .expect("a line");
    let addr: std::net::SocketAddr = line
        .strip_prefix("listening on wss://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .parse()
        .expect("an address");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = connector(der);

    // HTTPS.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut https = tls.connect(name.clone(), tcp).await.expect("TLS handshake");
    https
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut reply = Vec::new();
    tokio::time::timeout(util::WAIT, https.read_to_end(&mut reply))
        .await
        .expect("in time")
        .expect("read");
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("ok"), "{reply}");

    // wss:// end to end: welcome, subscribe, publish to self through a second client.
    let open = |id: &'static str| {
        let tls = tls.clone();
        let name = name.clone();
        async move {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            let stream = tls.connect(name, tcp).await.expect("TLS handshake");
            let (ws, _) =
                tokio_tungstenite::client_async(format!("wss://localhost/ws/{id}"), stream)
                    .await
                    .expect("upgrade over TLS");
            ws
        }
    };
    let mut alice = open("alice").await;
    assert_eq!(next(&mut alice).await["type"], "welcome");
    alice
        .send(Message::text(r#"{"type":"subscribe","room":"tls","id":1}"#))
        .await
        .expect("send");
    assert_eq!(next(&mut alice).await["type"], "ack");
    let mut bob = open("bob").await;
    assert_eq!(next(&mut bob).await["type"], "welcome");
    bob.send(Message::text(r#"{"type":"subscribe","room":"tls","id":1}"#))
        .await
        .expect("send");
    assert_eq!(next(&mut bob).await["type"], "ack");
    bob.send(Message::text(
        r#"{"type":"message","room":"tls","content":"over tls"}"#,
    ))
    .await
    .expect("send");
    let event = next(&mut alice).await;
    assert_eq!(
        (event["type"].as_str(), event["content"].as_str()),
        (Some("message"), Some("over tls"))
    );

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(util::WAIT, plain.read_to_end(&mut buf)).await;
    assert!(
        !String::from_utf8_lossy(&buf).contains("200"),
        "plain HTTP was answered"
    );
}

#[tokio::test]
async fn a_missing_or_mismatched_key_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, _key, _) = certificate(dir.path());
    let other = tempfile::tempdir().expect("temp dir");
    let (_, other_key, _) = certificate(other.path());
    for args in [
        vec!["--tls-cert", cert.as_str()],
        vec!["--tls-cert", cert.as_str(), "--tls-key", other_key.as_str()],
        vec!["--tls-cert", cert.as_str(), "--tls-key", "/no/such/key.pem"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_roomcast"))
            .args([
                "serve",
                "--dev",
                "--bind",
                "127.0.0.1:0",
                "--history",
                "memory",
            ])
            .args(&args)
            .env_remove("ROOMCAST_DEV")
            .output()
            .await
            .expect("run roomcast");
        assert!(!out.status.success(), "{args:?} started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("tls") || stderr.contains("TLS") || stderr.contains("key"),
            "{args:?}: {stderr}"
        );
    }
}
