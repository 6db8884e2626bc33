//! The collectives an `orders` run trades as: their Ed25519 keys, how they come to exist
//! on the server (registered through the admin API, or listed in a `--collectives-file`
//! by an operator who registered them), the signed-request headers of the REST API, and
//! the Ed25519 challenge that opens each one's `/ws/{id}/orders` stream.
//!
//! Signing follows the server's rule (crates/engine/src/auth/signed.rs): `X-Signature` is
//! the base64 Ed25519 signature of `timestamp + method + path_with_query + body`, the
//! timestamp in unix milliseconds.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use serde::Deserialize;

use crate::conn::{ConnectError, Connector, Target};
use crate::http::HttpConn;
use crate::parse::{classify, Msg, PONG};
use crate::ws::{BufferSize, Kind, WsConn};

/// One collective and its signing key.
#[derive(Debug, Clone)]
pub(crate) struct Trader {
    /// The collective id.
    pub(crate) id: String,
    key: SigningKey,
}

/// An entry of `--collectives-file`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    id: String,
    /// Base64 of the 32-byte Ed25519 secret key (seed).
    secret_key: String,
}

/// Most collectives one file may list.
const MAX_FILE_ENTRIES: usize = 10_000;

impl Trader {
    /// `n` collectives `bench-{tag}-c{i}` with fresh random keys.
    pub(crate) fn generate(n: usize, tag: &str) -> Vec<Trader> {
        let mut rng = rand::rng();
        (0..n)
            .map(|i| {
                let mut seed = [0u8; 32];
                rng.fill_bytes(&mut seed);
                Trader {
                    id: format!("bench-{tag}-c{i}"),
                    key: SigningKey::from_bytes(&seed),
                }
            })
            .collect()
    }

    /// Reads `[{"id":"..","secret_key":"<base64 32-byte seed>"}, ..]`.
    pub(crate) fn load_file(path: &Path) -> anyhow::Result<Vec<Trader>> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let entries: Vec<FileEntry> = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: expected [{{\"id\",\"secret_key\"}}, ..]",
                path.display()
            )
        })?;
        if entries.is_empty() || entries.len() > MAX_FILE_ENTRIES {
            bail!(
                "{}: between 1 and {MAX_FILE_ENTRIES} collectives",
                path.display()
            );
        }
        entries
            .into_iter()
            .map(|e| {
                if e.id.is_empty()
                    || !e
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                {
                    bail!("collective id {:?}: use A-Z a-z 0-9 _ . -", e.id);
                }
                let bytes = STANDARD
                    .decode(e.secret_key.trim())
                    .with_context(|| format!("{}: secret_key is not base64", e.id))?;
                let seed: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("{}: secret_key must be 32 bytes", e.id))?;
                Ok(Trader {
                    id: e.id,
                    key: SigningKey::from_bytes(&seed),
                })
            })
            .collect()
    }

    /// The public key, base64 (what the admin API and collectives files take).
    pub(crate) fn public_key(&self) -> String {
        STANDARD.encode(self.key.verifying_key().to_bytes())
    }

    /// Base64 signature of `text`.
    pub(crate) fn sign(&self, text: &[u8]) -> String {
        STANDARD.encode(self.key.sign(text).to_bytes())
    }

    /// `(X-Timestamp, X-Signature)` for a request signed now.
    pub(crate) fn sign_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        scratch: &mut Vec<u8>,
    ) -> (String, String) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
            .to_string();
        scratch.clear();
        scratch.extend_from_slice(ts.as_bytes());
        scratch.extend_from_slice(method.as_bytes());
        scratch.extend_from_slice(path.as_bytes());
        scratch.extend_from_slice(body);
        let sig = self.sign(scratch);
        (ts, sig)
    }
}

/// Registers `traders` with `POST /api/admin/collectives`, funded with `starting_cash`
/// (integer cents) and `quantity` of `symbol`. A collective that already exists is an
/// error (its key would not be ours).
pub(crate) async fn register(
    target: &Target,
    admin_key: Option<&str>,
    traders: &[Trader],
    starting_cash: u64,
    symbol: &str,
    quantity: &str,
) -> anyhow::Result<()> {
    let mut conn = HttpConn::connect(target.addr, &target.host).await?;
    let auth = admin_key.map(|k| format!("Bearer {k}"));
    let path = format!("{}/api/admin/collectives", target.prefix);
    for t in traders {
        let body = serde_json::json!({
            "id": t.id,
            "public_key": t.public_key(),
            "starting_cash": starting_cash,
            "starting_positions": { symbol: quantity },
        })
        .to_string();
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        let r = conn
            .request("POST", &path, &headers, body.as_bytes())
            .await
            .with_context(|| format!("registering {}", t.id))?;
        if r.status != 201 {
            bail!(
                "registering {}: HTTP {}: {} (is --admin-key right?)",
                t.id,
                r.status,
                String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
            );
        }
    }
    Ok(())
}

/// Opens `/ws/{id}/orders`, answers the Ed25519 challenge and waits for `auth_ok`.
pub(crate) async fn open_orders_stream(
    connector: &Connector,
    trader: &Trader,
    limit: Duration,
) -> Result<WsConn, ConnectError> {
    let (mut conn, _) = connector
        .connect(&format!("{}/orders", trader.id), BufferSize::STREAM)
        .await?;
    let handshake = async {
        loop {
            while let Some(f) = conn.next_frame()? {
                match f.kind {
                    Kind::Text => {
                        let text = conn.payload(&f);
                        if classify(text) == Msg::Heartbeat {
                            conn.queue_text(PONG);
                            continue;
                        }
                        let v: serde_json::Value = serde_json::from_slice(text)
                            .map_err(|_| ConnectError::BadResponse("not JSON"))?;
                        match v["type"].as_str() {
                            Some("auth_challenge") => {
                                let challenge = v["challenge"]
                                    .as_str()
                                    .ok_or(ConnectError::BadResponse("no challenge"))?;
                                let answer = serde_json::json!({
                                    "type": "auth_response",
                                    "signature": trader.sign(challenge.as_bytes()),
                                })
                                .to_string();
                                conn.queue_text(answer.as_bytes());
                            }
                            Some("auth_ok") => return Ok(()),
                            Some("error") => {
                                return Err(ConnectError::Refused(
                                    v["code"].as_str().unwrap_or("error").to_owned(),
                                ))
                            }
                            _ => {}
                        }
                    }
                    Kind::Ping => conn.answer_ping(&f),
                    Kind::Close => return Err(ConnectError::Closed(conn.close_code(&f))),
                    Kind::Binary | Kind::Pong => {}
                }
            }
            conn.flush().await?;
            if conn.fill().await? == 0 {
                return Err(ConnectError::Closed(None));
            }
        }
    };
    match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ConnectError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier};

    #[test]
    fn requests_are_signed_over_timestamp_method_path_and_body() {
        let t = &Trader::generate(1, "t")[0];
        let mut scratch = Vec::new();
        let (ts, sig) = t.sign_request("POST", "/api/v1/orders", b"{}", &mut scratch);
        let text = format!("{ts}POST/api/v1/orders{{}}");
        let bytes: [u8; 64] = STANDARD
            .decode(sig)
            .expect("base64")
            .try_into()
            .expect("64 bytes");
        t.key
            .verifying_key()
            .verify(text.as_bytes(), &Signature::from_bytes(&bytes))
            .expect("verifies");
    }

    #[test]
    fn collectives_files_are_checked() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("bench-trader-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let good = dir.join("good.json");
        let seed = STANDARD.encode([7u8; 32]);
        std::fs::write(
            &good,
            format!(r#"[{{"id":"desk-1","secret_key":"{seed}"}}]"#),
        )?;
        let traders = Trader::load_file(&good)?;
        assert_eq!(traders[0].id, "desk-1");
        assert_eq!(
            traders[0].public_key(),
            STANDARD.encode(
                SigningKey::from_bytes(&[7u8; 32])
                    .verifying_key()
                    .to_bytes()
            )
        );
        let bad = dir.join("bad.json");
        std::fs::write(&bad, r#"[{"id":"desk 1","secret_key":"AAAA"}]"#)?;
        assert!(Trader::load_file(&bad).is_err());
        std::fs::write(&bad, r#"[{"id":"d","secret_key":"AAAA"}]"#)?;
        assert!(Trader::load_file(&bad).is_err(), "3 bytes is not a key");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
