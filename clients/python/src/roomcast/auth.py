"""Ed25519 credentials of a collective: the WebSocket challenge and the REST signature.

Both sign UTF-8 text with the collective's private key and send the signature in base64
(docs/PROTOCOL.md "Ed25519 challenge-response", docs/ARENA.md "Signing requests").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class Ed25519Credentials:
    """A collective id and its private key."""

    collective_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_pem_file(cls, collective_id: str, path: str | Path) -> Ed25519Credentials:
        """Loads an unencrypted PKCS#8 PEM key (as written by `roomcast keygen`)."""
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{path} does not hold an Ed25519 private key")
        return cls(collective_id, key)

    def sign(self, text: str) -> str:
        """Base64 Ed25519 signature of the UTF-8 bytes of `text`."""
        return base64.b64encode(self.private_key.sign(text.encode("utf-8"))).decode("ascii")

    def public_key_b64(self) -> str:
        """The raw 32-byte public key in base64, as the collectives file takes it."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return base64.b64encode(raw).decode("ascii")
