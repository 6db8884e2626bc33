//! Ed25519 credentials of a collective: the WebSocket challenge and the REST signature
//! both sign UTF-8 text and send the signature in base64 (docs/PROTOCOL.md "Ed25519
//! challenge-response", docs/ARENA.md "Signing requests").

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey};

/// A private key could not be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid Ed25519 private key: {0}")]
pub struct KeyError(String);

/// A collective id and its private key (cheap to clone).
#[derive(Clone)]
pub struct Ed25519Credentials {
    collective_id: String,
    key: Arc<SigningKey>,
}

impl std::fmt::Debug for Ed25519Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ed25519Credentials")
            .field("collective_id", &self.collective_id)
            .finish_non_exhaustive()
    }
}

impl Ed25519Credentials {
    /// Credentials from a key.
    pub fn new(collective_id: impl Into<String>, key: SigningKey) -> Ed25519Credentials {
        Ed25519Credentials {
            collective_id: collective_id.into(),
            key: Arc::new(key),
        }
    }

    /// Credentials from an unencrypted PKCS#8 PEM key (as `roomcast keygen` writes it).
    pub fn from_pem(collective_id: impl Into<String>, pem: &str) -> Result<Self, KeyError> {
        let key = SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError(e.to_string()))?;
        Ok(Self::new(collective_id, key))
    }

    /// The collective id.
    pub fn collective_id(&self) -> &str {
        &self.collective_id
    }

    /// Base64 Ed25519 signature of the UTF-8 bytes of `text`.
    pub fn sign(&self, text: &str) -> String {
        B64.encode(self.key.sign(text.as_bytes()).to_bytes())
    }

    /// The raw 32-byte public key in base64, as the collectives file takes it.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }
}
