/**
 * `RoomcastClient`: one logical session over a sequence of WebSocket connections. It
 * owns the connection lifecycle (connect, authenticate, welcome, heartbeat, close,
 * reconnect with backoff), requests with ids (promises resolved by the reply), the
 * bounded offline publish queue and token refresh. Per-room recovery lives in
 * `subscription.ts`, the arena's state in `arena/`.
 */
import type { OrderBook } from "./arena/book.js";
import {
  bookAdapter,
  Feed,
  ordersAdapter,
  portfolioAdapter,
  type ArenaFeed,
  type FeedHandler,
  type StateAdapter,
} from "./arena/feed.js";
import type { OrdersState } from "./arena/orders.js";
import type { PortfolioState } from "./arena/portfolio.js";
import { Backoff } from "./backoff.js";
import { closeAction } from "./closeCodes.js";
import { importEd25519PrivateKey, signEd25519, type CryptoKeyLike } from "./ed25519.js";
import { Emitter } from "./emitter.js";
import { DisconnectedError, QueueFullError, RoomcastError, TimeoutError, UnsupportedError } from "./errors.js";
import { RoomState, type Handler, type Subscription } from "./subscription.js";
import type {
  Ack,
  ClientOptions,
  ClientState,
  RecoveryFailed,
  RoomEvent,
  StateChange,
  SubscribeOptions,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";

/** Events of {@link RoomcastClient} (`client.on(name, listener)`). */
export interface ClientEvents {
  [key: string]: unknown;
  /** Every state change. */
  state: StateChange;
  /** History could not cover a gap in a room: re-fetch that room's state. */
  recovery_failed: RecoveryFailed;
  /** A room finished replaying after a resubscribe. */
  replay_complete: { room: string; replayed_count: number };
  /** The server left a room for us (`reason`: `forbidden` after a refresh narrowed the token). */
  unsubscribed: { room: string; reason: string };
  /** The server warned that the session's token expires in `expires_in` seconds. */
  token_expiring: { expires_in: number };
  /** A `refresh` was accepted: the session now lives `expires_in` more seconds. */
  refreshed: { expires_in: number };
  /** The session was welcomed (every (re)connect). */
  welcome: { client_id: string; heartbeat_interval: number; features: string[] };
  /** An error that belongs to no request: a server `error` without id, a failed refresh, a bad frame. */
  error: Error;
  /** Any frame that is not a room event or a reply (`user_left`, admin broadcasts). */
  message: Record<string, unknown>;
}

interface Pending {
  resolve: (reply: Ack) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Queued {
  msg: Record<string, unknown>;
  resolve: (reply: Ack) => void;
  reject: (err: Error) => void;
}

const OPEN = 1;

/** A roomcast session that survives disconnects. See docs/CLIENTS.md. */
export class RoomcastClient extends Emitter<ClientEvents> {
  /** The client id of the session. */
  readonly clientId: string;
  private readonly opts: ClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly base: string;
  private readonly path: string;
  private readonly backoff: Backoff;
  private readonly rooms = new Map<string, RoomState>();
  private readonly pending = new Map<string | number, Pending>();
  private readonly queue: Queued[] = [];
  private ws: WebSocketLike | undefined;
  private welcomed = false;
  private features: string[] = [];
  private heartbeatMs = 30_000;
  private token: string | undefined;
  private signingKey: Promise<CryptoKeyLike> | undefined;
  private nextId = 1;
  private current: ClientState = "connecting";
  private connectedOnce = false;
  private closing = false;
  private livenessTimer: ReturnType<typeof setTimeout> | undefined;
  private stableTimer: ReturnType<typeof setTimeout> | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly children = new Set<{ close(): void }>();

  /**
   * Starts connecting at once. `url` is the server's base URL (`ws://host:port`,
   * `wss://…`; `http(s)://` is turned into `ws(s)://`).
   */
  constructor(url: string, opts: ClientOptions = {}) {
    super();
    this.opts = opts;
    const id = opts.clientId ?? opts.ed25519?.collectiveId;
    if (!id) throw new TypeError("RoomcastClient needs clientId (or ed25519.collectiveId)");
    this.clientId = id;
    const WS = (opts.WebSocket ?? (globalThis as { WebSocket?: unknown }).WebSocket) as WebSocketConstructor | undefined;
    if (!WS) {
      throw new UnsupportedError("no WebSocket on this platform: pass one, e.g. {WebSocket: (await import('ws')).default}");
    }
    this.WS = WS;
    this.base = url.replace(/^http/, "ws").replace(/\/+$/, "");
    const defaultPath = `/ws/${encodeURIComponent(id)}`;
    this.path = opts.path ?? (opts.ed25519 ? `${defaultPath}?auth=ed25519` : defaultPath);
    this.backoff = new Backoff(opts.backoff);
    this.token = opts.token;
    if (opts.ed25519) this.signingKey = importEd25519PrivateKey(opts.ed25519.privateKey);
    // A rejected key import surfaces at the challenge; do not leave it unhandled meanwhile.
    this.signingKey?.catch(() => {});
    const connectRoom = opts.connectRoom ?? (opts.path ? undefined : "general");
    if (connectRoom) this.connectRoom = connectRoom;
    // Deferred, so listeners added right after `new` see the first `connecting`.
    queueMicrotask(() => void this.connect());
  }

  /** The room this connection joins by itself (recovered through the URL, never subscribed). */
  private connectRoom: string | undefined;

  /** The current state. */
  get state(): ClientState {
    return this.current;
  }

  /** Whether the session is welcomed and requests go out at once. */
  get connected(): boolean {
    return this.current === "connected";
  }

  /** Features the server announced in `welcome` (e.g. `refresh`). */
  get serverFeatures(): readonly string[] {
    return this.features;
  }

  /** The last delivered position of `room`, if any. */
  position(room: string) {
    return this.rooms.get(room)?.position;
  }

  /**
   * Joins `room` and calls `handler` with each of its events, exactly once and in order
   * across reconnects (replayed events carry `replayed: true`).
   */
  subscribe(room: string, handler: Handler, opts: SubscribeOptions = {}): Subscription {
    let state = this.rooms.get(room);
    const fresh = !state;
    if (!state) {
      state = new RoomState(room, opts.since);
      this.rooms.set(room, state);
    }
    state.handlers.add(handler);
    if (opts.onRecoveryFailed) state.recoveryFailedHandlers.add(opts.onRecoveryFailed);
    const rs = state;
    let ready: Promise<void>;
    if (!fresh) {
      ready = Promise.resolve();
    } else if (this.welcomed) {
      ready = this.sendSubscribe(rs).then(() => undefined);
    } else {
      ready = new Promise<void>((resolve, reject) => {
        const off = this.on("welcome", () => {
          off();
          offState();
          // The welcome handler sent the subscribe; wait for its ack.
          this.subscribeAcks.get(room)?.then(() => resolve(), reject) ?? resolve();
        });
        const offState = this.on("state", (s) => {
          if (s.state === "closed") {
            off();
            offState();
            reject(new DisconnectedError(`client closed before ${room} was joined`));
          }
        });
      });
    }
    ready.catch(() => {});
    return {
      room,
      ready,
      get position() {
        return rs.position ? { ...rs.position } : undefined;
      },
      unsubscribe: async () => {
        rs.handlers.delete(handler);
        if (opts.onRecoveryFailed) rs.recoveryFailedHandlers.delete(opts.onRecoveryFailed);
        if (rs.handlers.size > 0 || this.rooms.get(room) !== rs) return;
        this.rooms.delete(room);
        if (this.welcomed && room !== this.connectRoom) await this.request({ type: "unsubscribe", room });
      },
    };
  }

  private readonly subscribeAcks = new Map<string, Promise<Ack>>();

  private sendSubscribe(rs: RoomState): Promise<Ack> {
    const msg: Record<string, unknown> = { type: "subscribe", room: rs.room };
    // The connect room is already joined and recovered through the URL: a subscribe only
    // learns its position when we have none.
    if (rs.room === this.connectRoom) {
      // A stream's room gets its snapshot by itself; a subscribe would attach it twice.
      if (rs.position || this.opts.path) return Promise.resolve({ type: "ack" });
    } else if (rs.position) {
      msg.since = { ...rs.position };
    }
    const p = this.request(msg).then((ack) => {
      if (this.rooms.get(rs.room) === rs && typeof ack.sequence === "number" && typeof ack.epoch === "string") {
        rs.adoptAck(ack.sequence, ack.epoch);
      }
      return ack;
    });
    p.catch((e) => {
      // A refused room (FORBIDDEN, INVALID_ROOM) is not retried on every reconnect.
      if (e instanceof RoomcastError && this.rooms.get(rs.room) === rs) this.rooms.delete(rs.room);
    });
    this.subscribeAcks.set(rs.room, p);
    return p;
  }

  /** Publishes `content` to `room` (joined first); resolves with the ack (`sequence`, `epoch`). Queued while reconnecting. */
  publish(room: string, content: unknown): Promise<Ack> {
    const msg = { type: "message", room, content };
    if (this.welcomed) return this.publishNow(msg);
    if (this.current === "closed") return Promise.reject(new DisconnectedError("client is closed"));
    const max = this.opts.queueSize ?? 100;
    return new Promise<Ack>((resolve, reject) => {
      if (this.queue.length >= max) {
        if ((this.opts.queuePolicy ?? "fail") === "fail" || max === 0) {
          reject(new QueueFullError(`offline queue full (${max})`));
          return;
        }
        this.queue.shift()?.reject(new QueueFullError("dropped from the full offline queue"));
      }
      this.queue.push({ msg, resolve, reject });
    });
  }

  private publishNow(msg: Record<string, unknown>): Promise<Ack> {
    return this.request(msg).then((ack) => {
      const rs = this.rooms.get(msg.room as string);
      if (rs && typeof ack.sequence === "number" && typeof ack.epoch === "string") rs.ownPublish(ack.sequence, ack.epoch);
      return ack;
    });
  }

  /** The members of `room` (sorted). Rejects when not connected. */
  async presence(room: string): Promise<string[]> {
    const ack = await this.request({ type: "presence", room });
    return ack.members ?? [];
  }

  /**
   * Sends a request with a fresh `id`; resolves with its reply (`ack`, `pong`), rejects
   * with {@link RoomcastError} on `error`, {@link DisconnectedError} when the connection
   * ends first, {@link TimeoutError} after `requestTimeoutMs`.
   */
  request(msg: Record<string, unknown>): Promise<Ack> {
    const ws = this.ws;
    if (!ws || !this.welcomed || ws.readyState !== OPEN) {
      return Promise.reject(new DisconnectedError(`not connected (state ${this.current})`));
    }
    const id = this.nextId++;
    return new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError(`no reply to ${String(msg.type)} within ${this.opts.requestTimeoutMs ?? 10_000} ms`));
      }, this.opts.requestTimeoutMs ?? 10_000);
      this.pending.set(id, { resolve, reject, timer });
      ws.send(JSON.stringify({ ...msg, id }));
    });
  }

  /** Closes the session for good: no reconnect; pending requests and queued publishes are rejected. */
  close(): void {
    if (this.current === "closed") return;
    this.closing = true;
    for (const c of [...this.children]) c.close();
    const ws = this.ws;
    this.teardown(new DisconnectedError("client closed"));
    if (ws) {
      detach(ws);
      try {
        ws.close(1000, "client closed");
      } catch {
        /* already closed */
      }
    }
    this.failQueue(new DisconnectedError("client closed"));
    this.setState({ state: "closed" });
  }

  /** Registers something to close with this client (the arena feeds' stream connections). */
  adopt(child: { close(): void }): () => void {
    this.children.add(child);
    return () => this.children.delete(child);
  }

  // ---- arena feeds ----

  /**
   * Follows `market:{symbol}` on this connection: the order book from `book_snapshot` +
   * `book_update`, kept across reconnects (replay, or a fresh snapshot after a gap).
   */
  market(symbol: string, handler?: FeedHandler<OrderBook>): ArenaFeed<OrderBook> {
    const adapter = bookAdapter(symbol);
    const feed = new Feed(adapter, handler);
    const sub = this.subscribe(`market:${symbol}`, (ev) => feed.onEvent(ev), {
      onRecoveryFailed: () => feed.onRecoveryFailed(),
    });
    feed.closer = () => void sub.unsubscribe().catch(() => {});
    return feed;
  }

  /** Follows the collective's portfolio over its own stream connection (`/ws/{collective}/portfolio`). */
  portfolio(handler?: FeedHandler<PortfolioState>): ArenaFeed<PortfolioState> {
    return this.streamFeed("portfolio", portfolioAdapter(), handler);
  }

  /** Follows the collective's open orders over its own stream connection (`/ws/{collective}/orders`). */
  orders(handler?: FeedHandler<OrdersState>): ArenaFeed<OrdersState> {
    return this.streamFeed("orders", ordersAdapter(), handler);
  }

  private streamFeed<S>(stream: "portfolio" | "orders", adapter: StateAdapter<S>, handler?: FeedHandler<S>): ArenaFeed<S> {
    const collective = this.opts.ed25519?.collectiveId ?? this.clientId;
    const room = `${stream}:${collective}`;
    const child = new RoomcastClient(this.base, {
      ...this.opts,
      clientId: `${collective}:${stream}`,
      path: `/ws/${encodeURIComponent(collective)}/${stream}`,
      connectRoom: room,
      token: this.token,
    });
    const feed = new Feed(adapter, handler);
    child.subscribe(room, (ev) => feed.onEvent(ev), { onRecoveryFailed: () => feed.onRecoveryFailed() });
    child.on("recovery_failed", (info) => this.emit("recovery_failed", info));
    child.on("error", (e) => this.emit("error", e));
    const release = this.adopt(child);
    feed.closer = () => {
      release();
      child.close();
    };
    return feed;
  }

  // ---- connection lifecycle ----

  private async connect(): Promise<void> {
    if (this.closing) return;
    this.setState({ state: this.connectedOnce || this.backoff.attempts > 0 ? "reconnecting" : "connecting" });
    if (!this.token && this.opts.getToken && !this.opts.ed25519) {
      try {
        this.token = await this.opts.getToken();
      } catch (e) {
        this.emit("error", asError(e));
        this.onDisconnected(1006, "getToken failed");
        return;
      }
      if (this.closing) return;
    }
    let url = this.base + this.path;
    const rs = this.connectRoom ? this.rooms.get(this.connectRoom) : undefined;
    if (rs?.position) {
      url += `${url.includes("?") ? "&" : "?"}last_sequence=${rs.position.sequence}&epoch=${encodeURIComponent(rs.position.epoch)}`;
    }
    let ws: WebSocketLike;
    try {
      ws = this.token ? new this.WS(url, [`roomcast.bearer.${this.token}`]) : new this.WS(url);
    } catch (e) {
      this.emit("error", asError(e));
      this.onDisconnected(1006, "could not open a socket");
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    ws.onmessage = (ev) => this.onFrame(ws, typeof ev.data === "string" ? ev.data : String(ev.data));
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      detach(ws);
      this.onDisconnected(ev.code, ev.reason);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    this.armLiveness(ws, this.opts.connectTimeoutMs ?? 10_000);
  }

  private onFrame(ws: WebSocketLike, text: string): void {
    if (this.ws !== ws) return;
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(text);
    } catch {
      this.emit("error", new Error(`unreadable frame from the server: ${text.slice(0, 80)}`));
      return;
    }
    if (this.welcomed) this.armLiveness(ws, this.heartbeatMs + (this.opts.heartbeatTimeoutMs ?? 10_000));
    switch (msg.type) {
      case "auth_challenge":
        void this.answerChallenge(ws, String(msg.challenge));
        return;
      case "auth_ok":
        return;
      case "welcome":
        this.onWelcome(ws, msg);
        return;
      case "ping":
        ws.send('{"type":"pong"}');
        return;
      case "pong":
      case "ack":
        this.settle(msg.id, (p) => p.resolve(msg as unknown as Ack));
        return;
      case "error": {
        const err = new RoomcastError(String(msg.code), String(msg.message ?? ""));
        if (msg.id === undefined || !this.settle(msg.id, (p) => p.reject(err))) this.emit("error", err);
        return;
      }
      case "token_expiring":
        this.emit("token_expiring", { expires_in: Number(msg.expires_in) });
        void this.refreshToken();
        return;
      case "unsubscribed": {
        const room = String(msg.room);
        this.rooms.delete(room);
        this.emit("unsubscribed", { room, reason: String(msg.reason) });
        return;
      }
      case "recovery_failed": {
        const info = msg as unknown as RecoveryFailed;
        this.rooms.get(info.room)?.recoveryFailed(info);
        this.emit("recovery_failed", { room: info.room, reason: info.reason, sequence: info.sequence, epoch: info.epoch });
        return;
      }
      case "replay_complete":
        this.emit("replay_complete", { room: String(msg.room), replayed_count: Number(msg.replayed_count) });
        return;
    }
    if (typeof msg.room === "string" && typeof msg.sequence === "number" && typeof msg.type === "string") {
      this.rooms.get(msg.room)?.deliver(msg as RoomEvent);
      return;
    }
    this.emit("message", msg);
  }

  private async answerChallenge(ws: WebSocketLike, challenge: string): Promise<void> {
    if (!this.signingKey) {
      this.emit("error", new Error("the server sent an Ed25519 challenge but no ed25519 key is configured"));
      return;
    }
    try {
      const signature = await signEd25519(await this.signingKey, challenge);
      if (this.ws === ws && ws.readyState === OPEN) ws.send(JSON.stringify({ type: "auth_response", signature }));
    } catch (e) {
      // Signing can only fail for a platform or key problem: retrying would not help.
      this.emit("error", asError(e));
      this.close();
    }
  }

  private onWelcome(ws: WebSocketLike, msg: Record<string, unknown>): void {
    this.welcomed = true;
    this.connectedOnce = true;
    this.features = Array.isArray(msg.features) ? msg.features.map(String) : [];
    const hb = Number(msg.heartbeat_interval);
    this.heartbeatMs = Number.isFinite(hb) && hb > 0 ? hb * 1000 : 30_000;
    this.armLiveness(ws, this.heartbeatMs + (this.opts.heartbeatTimeoutMs ?? 10_000));
    clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => this.backoff.reset(), this.opts.stableAfterMs ?? 10_000);
    this.setState({ state: "connected" });
    // Subscribes go out before the queued publishes (a publish needs its room joined);
    // the server handles one connection's requests in order.
    for (const rs of this.rooms.values()) this.sendSubscribe(rs);
    const queued = this.queue.splice(0);
    for (const q of queued) this.publishNow(q.msg).then(q.resolve, q.reject);
    this.emit("welcome", {
      client_id: String(msg.client_id),
      heartbeat_interval: this.heartbeatMs / 1000,
      features: this.features,
    });
  }

  private async refreshToken(): Promise<void> {
    if (!this.features.includes("refresh") || !this.opts.getToken) return;
    try {
      const token = await this.opts.getToken();
      this.token = token;
      const ack = await this.request({ type: "refresh", token });
      this.emit("refreshed", { expires_in: Number(ack.expires_in) });
    } catch (e) {
      this.emit("error", asError(e));
    }
  }

  private armLiveness(ws: WebSocketLike, ms: number): void {
    clearTimeout(this.livenessTimer);
    this.livenessTimer = setTimeout(() => {
      if (this.ws !== ws) return;
      // Dead link: do not wait for a close handshake the peer will never answer.
      detach(ws);
      try {
        const terminate = (ws as { terminate?: () => void }).terminate;
        if (terminate) terminate.call(ws);
        else ws.close(4000, "heartbeat timeout");
      } catch {
        /* ignore */
      }
      this.onDisconnected(1006, this.welcomed ? "heartbeat timeout" : "connect timeout");
    }, ms);
  }

  private settle(id: unknown, f: (p: Pending) => void): boolean {
    if (typeof id !== "string" && typeof id !== "number") return false;
    const p = this.pending.get(id);
    if (!p) return false;
    this.pending.delete(id);
    clearTimeout(p.timer);
    f(p);
    return true;
  }

  private teardown(err: Error): void {
    clearTimeout(this.livenessTimer);
    clearTimeout(this.stableTimer);
    clearTimeout(this.retryTimer);
    this.ws = undefined;
    this.welcomed = false;
    this.subscribeAcks.clear();
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }

  private failQueue(err: Error): void {
    for (const q of this.queue.splice(0)) q.reject(err);
  }

  private onDisconnected(code: number, reason: string): void {
    this.teardown(new DisconnectedError(`connection closed (${code}${reason ? ` ${reason}` : ""})`));
    if (this.closing) return;
    void this.afterClose(code, reason);
  }

  private async afterClose(code: number, reason: string): Promise<void> {
    const action = closeAction(code);
    if (action === "stop") return this.stop(code, reason);
    if (action === "reauth") {
      if (!this.opts.getToken || this.opts.ed25519) return this.stop(code, reason);
      let fresh: string;
      try {
        fresh = await this.opts.getToken();
      } catch (e) {
        this.emit("error", asError(e));
        return this.stop(code, reason);
      }
      if (fresh === this.token) return this.stop(code, reason);
      this.token = fresh;
    }
    if (this.closing) return;
    const delay = this.backoff.next();
    if (delay === null) return this.stop(code, `${reason || "closed"}; gave up after ${this.backoff.maxAttempts} attempts`);
    this.setState({ state: "disconnected", code, reason, delay });
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private stop(code: number, reason: string): void {
    this.closing = true;
    for (const c of [...this.children]) c.close();
    this.failQueue(new DisconnectedError(`connection closed for good (${code} ${reason})`));
    this.setState({ state: "closed", code, reason });
  }

  private setState(change: StateChange): void {
    this.current = change.state;
    this.emit("state", change);
  }
}

function detach(ws: WebSocketLike): void {
  ws.onmessage = null;
  ws.onclose = null;
  ws.onopen = null;
  ws.onerror = () => {};
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}
