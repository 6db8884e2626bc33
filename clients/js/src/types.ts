/**
 * The wire shapes the client reads and the public option and event types. docs/PROTOCOL.md
 * is the reference for every field.
 */
import type { BackoffOptions } from "./backoff.js";
import type { Ed25519PrivateKey } from "./ed25519.js";

/** A room's place in its history: the last sequence seen, under which epoch. */
export interface Position {
  sequence: number;
  epoch: string;
}

/**
 * An event of a room: a `message` from another client (`from`, `content`), an HTTP
 * publish (`data`), an arena event or snapshot. `replayed` is true for events recovered
 * from history after a reconnect.
 */
export interface RoomEvent {
  type: string;
  room: string;
  sequence: number;
  epoch: string;
  timestamp?: string;
  from?: string;
  content?: unknown;
  data?: unknown;
  replayed?: boolean;
  [key: string]: unknown;
}

/** The `ack` of a subscribe or publish: the room's position. */
export interface Ack {
  type: "ack";
  id?: string | number;
  room?: string;
  sequence?: number;
  epoch?: string;
  members?: string[];
  expires_in?: number;
}

/** `recovery_failed`: history could not cover the gap; the room continues live from `sequence`. */
export interface RecoveryFailed {
  room: string;
  reason: "gap" | "epoch_changed" | string;
  sequence: number;
  epoch: string;
}

/** Connection states, in the order a session normally goes through them. */
export type ClientState = "connecting" | "connected" | "disconnected" | "reconnecting" | "closed";

/** Payload of the `state` event. `code`/`reason` come from the close that caused it; `delay` is the wait before the next attempt. */
export interface StateChange {
  state: ClientState;
  code?: number;
  reason?: string;
  delay?: number;
}

/** The subset of the WebSocket API the client uses (browsers, Node >= 22, the `ws` package). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

/** A WebSocket constructor (`globalThis.WebSocket`, or `ws` on Node 20). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** What to do with a publish made while disconnected when the queue is full. */
export type QueuePolicy = "drop-oldest" | "fail";

/** Options of {@link RoomcastClient}. */
export interface ClientOptions {
  /** The client id (`/ws/{clientId}`); defaults to `ed25519.collectiveId`. */
  clientId?: string;
  /** A JWT, sent as the `roomcast.bearer.<token>` subprotocol (browsers cannot set headers). */
  token?: string;
  /** Yields a (new) JWT: called before connecting without `token`, on `token_expiring`, and after an auth close (4001-4004, 4012). */
  getToken?: () => string | Promise<string>;
  /** Authenticate as a collective with the Ed25519 challenge. */
  ed25519?: { collectiveId: string; privateKey: Ed25519PrivateKey };
  /**
   * The WebSocket constructor (default `globalThis.WebSocket`; pass `ws` on Node 20). Typed
   * loosely because `ws`'s overloads do not match the DOM signature; it is called as
   * `new WebSocket(url, protocols?)` and used through {@link WebSocketLike}.
   */
  WebSocket?: WebSocketConstructor | (new (...args: never[]) => unknown);
  /** Reconnect delays (full jitter; base 500 ms, cap 30 s). */
  backoff?: BackoffOptions;
  /** A connection up this long resets the backoff (default 10000 ms). */
  stableAfterMs?: number;
  /** Silence tolerated beyond the server's `heartbeat_interval` before the link counts as dead (default 10000 ms). */
  heartbeatTimeoutMs?: number;
  /** Time to get `welcome` after opening a socket (default 10000 ms). */
  connectTimeoutMs?: number;
  /** Time to get the reply of a request (default 10000 ms). */
  requestTimeoutMs?: number;
  /** Publishes made while not connected wait here (default 100; 0 rejects them at once). */
  queueSize?: number;
  /** What a publish into a full queue does (default `fail`: it is rejected). */
  queuePolicy?: QueuePolicy;
  /** Path to connect to instead of `/ws/{clientId}` (the arena streams use `/ws/{collective}/{stream}`). */
  path?: string;
  /** The room the connection joins by itself (`general`, or a stream's room): recovered with `?last_sequence=&epoch=`. */
  connectRoom?: string;
}

/** Options of `subscribe`. */
export interface SubscribeOptions {
  /** Start from this position: events after it are replayed first. */
  since?: Position;
  /** Called when history could not cover a gap in this room (also emitted as the client's `recovery_failed`). */
  onRecoveryFailed?: (info: RecoveryFailed) => void;
}
