//! The OpenAPI document against the real server: every documented operation is routed,
//! and every documented request body is accepted exactly as the document describes it (an
//! instance built from the schema is accepted; dropping a required property or, where the
//! schema closes the object, adding an unknown one is refused).

mod util;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Map, Value};
use util::TestServer;

/// One HTTP/1.1 request with extra headers; returns (status, body).
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        server.addr,
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(util::WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, rest.to_owned())
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// An instance of `schema` with every property present: examples where the document has
/// them, `overrides` by property name, else the first enum value or a typed default.
fn instance(doc: &Value, schema: &Value, overrides: &Map<String, Value>) -> Value {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut out = Map::new();
        for part in parts {
            if let Value::Object(o) = instance(doc, part, overrides) {
                out.extend(o);
            }
        }
        return Value::Object(out);
    }
    if let Some(example) = schema.get("example") {
        return example.clone();
    }
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        return variants
            .first()
            .map(|v| instance(doc, v, overrides))
            .unwrap_or(Value::Null);
    }
    let ty = match &schema["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null")
            .to_owned(),
        _ => "object".to_owned(),
    };
    match ty.as_str() {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, prop) in props {
                    let value = match overrides.get(name) {
                        Some(v) => v.clone(),
                        None => instance(doc, prop, overrides),
                    };
                    out.insert(name.clone(), value);
                }
            }
            Value::Object(out)
        }
        "string" => json!("x"),
        "integer" => json!(1),
        "boolean" => json!(false),
        "array" => json!([]),
        _ => Value::Null,
    }
}

fn required(doc: &Value, schema: &Value) -> Vec<String> {
    let schema = resolve(doc, schema);
    let mut out: Vec<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(required(doc, part));
    }
    out
}

fn body_schema<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    &doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
}

fn sign(key: &SigningKey, method: &str, path: &str, body: &str) -> Vec<(&'static str, String)> {
    let ts = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).to_string();
    let sig = STANDARD.encode(
        key.sign(format!("{ts}{method}{path}{body}").as_bytes())
            .to_bytes(),
    );
    vec![
        ("X-Collective-Id", "acme".to_owned()),
        ("X-Timestamp", ts),
        ("X-Signature", sig),
    ]
}

#[tokio::test]
async fn documented_operations_exist_and_documented_bodies_are_accepted() {
    let server = TestServer::start(&["--api-key", "publisher-key"]).await;
    let (status, text) = send(&server, "GET", "/api/openapi.json", &[], "").await;
    assert_eq!(status, 200, "{text}");
    let doc: Value = serde_json::from_str(&text).expect("JSON document");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );

    // Every documented operation is routed: the router answers neither 405 nor its bare
    // 404 (handlers' own 404s carry a JSON error body).
    let paths = doc["paths"].as_object().expect("paths");
    for expected in [
        "/api/publish",
        "/api/publish/batch",
        "/api/history/{room}",
        "/api/admin/collectives",
        "/api/v1/orders",
        "/api/v1/orders/{order_id}",
        "/api/v1/portfolio",
        "/api/v1/markets",
        "/api/v1/markets/{symbol}/book",
        "/api/v1/markets/{symbol}/trades",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    for (path, ops) in paths {
        let concrete = path
            .replace("{room}", "chat")
            .replace("{order_id}", "1")
            .replace("{symbol}", "BTC-USD")
            .replace("{client_id}", "nobody")
            .replace("{id}", "nobody");
        for method in ops.as_object().expect("operations").keys() {
            let (status, body) = send(&server, &method.to_uppercase(), &concrete, &[], "").await;
            assert_ne!(status, 405, "{method} {path} is not routed");
            if status == 404 {
                let v: Value = serde_json::from_str(&body)
                    .unwrap_or_else(|_| panic!("{method} {path}: router 404 {body:?}"));
                assert!(v["error"]["code"].is_string(), "{method} {path}: {v}");
            }
        }
    }

    // The arena's collective profile is part of the registration body: register through
    // an instance of the documented schema.
    let key = SigningKey::from_bytes(&[5; 32]);
    let schema = body_schema(&doc, "/api/admin/collectives", "post");
    let mut overrides = Map::new();
    overrides.insert("id".into(), json!("acme"));
    overrides.insert(
        "public_key".into(),
        json!(STANDARD.encode(key.verifying_key().as_bytes())),
    );
    let registration = instance(&doc, schema, &overrides);
    assert_eq!(
        registration["starting_cash"],
        json!(10_000_000),
        "{registration}"
    );
    for field in required(&doc, schema) {
        let mut partial = registration.clone();
        partial.as_object_mut().expect("object").remove(&field);
        let (status, body) = send(
            &server,
            "POST",
            "/api/admin/collectives",
            &[],
            &partial.to_string(),
        )
        .await;
        assert_eq!(status, 400, "without {field}: {body}");
    }
    let mut extra = registration.clone();
    extra["starting_bonus"] = json!(1);
    let (status, body) = send(
        &server,
        "POST",
        "/api/admin/collectives",
        &[],
        &extra.to_string(),
    )
    .await;
    assert_eq!(status, 400, "unknown field accepted: {body}");
    let (status, body) = send(
        &server,
        "POST",
        "/api/admin/collectives",
        &[],
        &registration.to_string(),
    )
    .await;
    assert_eq!(status, 201, "{registration} → {body}");

    // A documented order body, signed, is accepted; the schema is closed, so an unknown
    // property is refused, and so is the body without each required property.
    let schema = body_schema(&doc, "/api/v1/orders", "post");
    assert_eq!(resolve(&doc, schema)["additionalProperties"], json!(false));
    let mut overrides = Map::new();
    overrides.insert("symbol".into(), json!("BTC-USD"));
    overrides.insert("quantity".into(), json!("0.01"));
    overrides.insert("price".into(), json!("100.00"));
    overrides.insert("client_order_id".into(), json!("doc-1"));
    let order = instance(&doc, schema, &overrides);
    let place = |body: String| {
        let headers = sign(&key, "POST", "/api/v1/orders", &body);
        let server = &server;
        async move { send(server, "POST", "/api/v1/orders", &headers, &body).await }
    };
    let (status, body) = place(order.to_string()).await;
    assert_eq!(status, 201, "{order} → {body}");
    let mut extra = order.clone();
    extra["leverage"] = json!("10");
    assert_eq!(place(extra.to_string()).await.0, 400);
    for field in required(&doc, schema) {
        let mut partial = order.clone();
        partial.as_object_mut().expect("object").remove(&field);
        let (status, body) = place(partial.to_string()).await;
        assert_eq!(status, 400, "without {field}: {body}");
    }

    // The publish API: the documented item is accepted, alone and as a batch.
    let item = instance(&doc, body_schema(&doc, "/api/publish", "post"), &Map::new());
    let auth = [("Authorization", "Bearer publisher-key".to_owned())];
    let (status, body) = send(&server, "POST", "/api/publish", &auth, &item.to_string()).await;
    assert_eq!(status, 200, "{item} → {body}");
    let batch = instance(
        &doc,
        body_schema(&doc, "/api/publish/batch", "post"),
        &Map::new(),
    );
    assert!(batch.is_array(), "{batch}");
    let (status, body) = send(
        &server,
        "POST",
        "/api/publish/batch",
        &auth,
        &json!([item]).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for field in required(&doc, body_schema(&doc, "/api/publish", "post")) {
        let mut partial = item.clone();
        partial.as_object_mut().expect("object").remove(&field);
        let (status, body) =
            send(&server, "POST", "/api/publish", &auth, &partial.to_string()).await;
        assert_eq!(status, 400, "without {field}: {body}");
    }
}
