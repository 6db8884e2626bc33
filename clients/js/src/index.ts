/**
 * `@roomcast/client`: a roomcast client for browsers and Node. Start with
 * {@link RoomcastClient}; docs/CLIENTS.md documents the API, the reconnect rules, every
 * close code and the recovery semantics.
 *
 * Module map: `client` (connection lifecycle, requests, queue, refresh), `subscription`
 * (per-room position and dedupe), `backoff` (full-jitter delays), `closeCodes` (what each
 * close means), `ed25519` (WebCrypto signing), `arena/*` (book, portfolio, orders state,
 * feeds, signed REST).
 */
export { RoomcastClient, type ClientEvents } from "./client.js";
export { Backoff, type BackoffOptions } from "./backoff.js";
export { CLOSE_CODES, closeAction, type CloseAction, type CloseRule } from "./closeCodes.js";
export { importEd25519PrivateKey, signEd25519, toBase64, fromBase64, type CryptoKeyLike, type Ed25519PrivateKey } from "./ed25519.js";
export { ArenaHttpError, DisconnectedError, QueueFullError, RoomcastError, TimeoutError, UnsupportedError } from "./errors.js";
export type { Handler, Subscription } from "./subscription.js";
export type * from "./types.js";
export { OrderBook, type Level } from "./arena/book.js";
export { OrdersState, type Order } from "./arena/orders.js";
export { PortfolioState, type Balance, type PositionEntry } from "./arena/portfolio.js";
export type { ArenaFeed, FeedHandler } from "./arena/feed.js";
export { ArenaRest, type ArenaRestOptions, type NewOrder } from "./arena/rest.js";
export { compareDecimal } from "./arena/decimal.js";
