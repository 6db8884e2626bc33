/**
 * Ed25519 signing through WebCrypto (`crypto.subtle`), for the challenge-response
 * handshake and the arena's signed REST requests. No crypto is bundled: platforms
 * without WebCrypto Ed25519 get an {@link UnsupportedError} that says so.
 */
import { UnsupportedError } from "./errors.js";

/**
 * A WebCrypto key, structurally: the DOM's `CryptoKey` and Node's `webcrypto.CryptoKey`
 * both fit, so the declarations need neither the DOM lib nor Node's types.
 */
export interface CryptoKeyLike {
  readonly type: string;
  readonly algorithm: { readonly name: string };
  readonly extractable: boolean;
  readonly usages: readonly string[];
}

/**
 * A private key: a WebCrypto `CryptoKey` (algorithm Ed25519, usage `sign`), a PKCS#8 PEM
 * string (what `roomcast keygen` writes), or PKCS#8 DER bytes.
 */
export type Ed25519PrivateKey = CryptoKeyLike | string | Uint8Array;

function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) {
    throw new UnsupportedError(
      "WebCrypto (crypto.subtle) is unavailable: use a secure context (https or localhost) in browsers, or Node >= 20",
    );
  }
  return s;
}

/** Decodes standard base64 into bytes (works in browsers and Node). */
export function fromBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Encodes bytes as standard base64 (works in browsers and Node). */
export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

function pemBody(pem: string): Uint8Array {
  const m = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(pem);
  if (!m || m[1] === undefined) {
    throw new TypeError("expected a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----)");
  }
  return fromBase64(m[1].replace(/\s+/g, ""));
}

/** Turns any accepted key form into a signing `CryptoKey`. */
export async function importEd25519PrivateKey(key: Ed25519PrivateKey): Promise<CryptoKeyLike> {
  if (typeof key !== "string" && !(key instanceof Uint8Array)) return key;
  const der = typeof key === "string" ? pemBody(key) : key;
  try {
    return await subtle().importKey("pkcs8", der as Uint8Array<ArrayBuffer>, { name: "Ed25519" }, false, ["sign"]);
  } catch (e) {
    if (e instanceof UnsupportedError) throw e;
    if ((e as { name?: string }).name === "NotSupportedError") {
      throw new UnsupportedError(
        "this platform's WebCrypto has no Ed25519 (needs Node >= 20, Chrome >= 137, Firefox >= 129 or Safari >= 17)",
      );
    }
    throw e;
  }
}

/** Signs the UTF-8 bytes of `text`; returns the base64 signature the server expects. */
export async function signEd25519(key: CryptoKeyLike, text: string): Promise<string> {
  const sig = await subtle().sign({ name: "Ed25519" }, key as CryptoKey, new TextEncoder().encode(text));
  return toBase64(new Uint8Array(sig));
}
