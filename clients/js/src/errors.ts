/**
 * The errors the client rejects promises with. One class per cause, so callers can
 * branch with `instanceof` instead of parsing messages.
 */

/** The server answered a request with `{"type":"error"}`; `code` is the wire code. */
export class RoomcastError extends Error {
  override readonly name = "RoomcastError";
  constructor(
    /** The wire error code, e.g. `NOT_SUBSCRIBED`, `FORBIDDEN`, `INVALID_TOKEN`. */
    readonly code: string,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

/**
 * The connection ended (or was never up) before the request was answered. A publish
 * rejected this way may or may not have been applied by the server.
 */
export class DisconnectedError extends Error {
  override readonly name = "DisconnectedError";
}

/** No reply arrived within `requestTimeoutMs`. */
export class TimeoutError extends Error {
  override readonly name = "TimeoutError";
}

/** The offline publish queue was full (policy `fail`), or the publish was dropped from it (policy `drop-oldest`). */
export class QueueFullError extends Error {
  override readonly name = "QueueFullError";
}

/** The platform lacks something the client needs (a WebSocket constructor, WebCrypto, Ed25519). */
export class UnsupportedError extends Error {
  override readonly name = "UnsupportedError";
}

/** A REST call of the arena answered with a non-2xx status. */
export class ArenaHttpError extends Error {
  override readonly name = "ArenaHttpError";
  constructor(
    /** The HTTP status. */
    readonly status: number,
    /** `error.code` of the body (e.g. `insufficient_funds`, `invalid_signature`), or `HTTP_<status>`. */
    readonly code: string,
    message: string,
    /** `error.reason` of a 422 reject, when present. */
    readonly reason?: string,
  ) {
    super(`${status} ${code}: ${message}`);
  }
}
