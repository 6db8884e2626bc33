/**
 * The arena's REST API with signed requests: each private call carries
 * `X-Collective-Id`, `X-Timestamp` (ms) and `X-Signature`, the base64 Ed25519 signature
 * of `timestamp + method + path_with_query + body` (docs/ARENA.md). Uses the platform's
 * `fetch` and WebCrypto; a JWT (`token`) works instead of a key.
 */
import { importEd25519PrivateKey, signEd25519, type CryptoKeyLike, type Ed25519PrivateKey } from "../ed25519.js";
import { ArenaHttpError } from "../errors.js";
import type { Level } from "./book.js";
import type { Order } from "./orders.js";

/** Options of {@link ArenaRest}. */
export interface ArenaRestOptions {
  /** The collective to act as. */
  collectiveId: string;
  /** Its Ed25519 private key (or give `token`). */
  privateKey?: Ed25519PrivateKey;
  /** A JWT for the collective, instead of signing. */
  token?: string;
  /** The fetch implementation (default `globalThis.fetch`). */
  fetch?: typeof fetch;
}

/** A new order (decimal strings, never numbers). */
export interface NewOrder {
  symbol: string;
  side: "buy" | "sell";
  type: "limit" | "market";
  quantity: string;
  price?: string;
  time_in_force?: "gtc" | "ioc" | "fok";
  client_order_id?: string;
}

/** The REST client. `baseUrl` is `http(s)://host:port` (`ws(s)://` is accepted and converted). */
export class ArenaRest {
  private readonly base: string;
  private readonly key: Promise<CryptoKeyLike> | undefined;
  private readonly fetchImpl: typeof fetch;

  constructor(
    baseUrl: string,
    private readonly opts: ArenaRestOptions,
  ) {
    this.base = baseUrl.replace(/^ws/, "http").replace(/\/+$/, "");
    if (!opts.privateKey && !opts.token) throw new TypeError("ArenaRest needs privateKey or token");
    this.key = opts.privateKey ? importEd25519PrivateKey(opts.privateKey) : undefined;
    this.key?.catch(() => {});
    const f = opts.fetch ?? globalThis.fetch;
    if (!f) throw new TypeError("no fetch on this platform: pass opts.fetch");
    this.fetchImpl = f.bind(globalThis);
  }

  /** Places an order; resolves with it (201). A refused order rejects with the reason (422). */
  placeOrder(order: NewOrder): Promise<Order> {
    return this.signed("POST", "/api/v1/orders", order);
  }

  /** Cancels an open order. */
  cancelOrder(orderId: number): Promise<Order> {
    return this.signed("DELETE", `/api/v1/orders/${orderId}`);
  }

  /** One of the caller's orders. */
  order(orderId: number): Promise<Order> {
    return this.signed("GET", `/api/v1/orders/${orderId}`);
  }

  /** The caller's open (default) or open and recent orders. */
  orders(status: "open" | "all" = "open"): Promise<Order[]> {
    return this.signed<Order[] | { orders: Order[] }>("GET", `/api/v1/orders?status=${status}`).then((r) =>
      Array.isArray(r) ? r : r.orders,
    );
  }

  /** Balances, positions, realised PnL, equity. */
  portfolio(): Promise<Record<string, unknown>> {
    return this.signed("GET", "/api/v1/portfolio");
  }

  /** A market's book, best `depth` levels per side (public). */
  book(symbol: string, depth = 20): Promise<{ symbol: string; bids: Level[]; asks: Level[] }> {
    return this.call("GET", `/api/v1/markets/${encodeURIComponent(symbol)}/book?depth=${depth}`, undefined, {});
  }

  /** Sends a signed request to any private route; `path` includes the query. */
  async signed<T>(method: string, path: string, body?: unknown): Promise<T> {
    const text = body === undefined ? "" : JSON.stringify(body);
    const headers: Record<string, string> = { "X-Collective-Id": this.opts.collectiveId };
    if (this.key) {
      const ts = String(Date.now());
      headers["X-Timestamp"] = ts;
      headers["X-Signature"] = await signEd25519(await this.key, ts + method + path + text);
    } else {
      headers.Authorization = `Bearer ${this.opts.token}`;
    }
    return this.call(method, path, text || undefined, headers);
  }

  private async call<T>(method: string, path: string, body: string | undefined, headers: Record<string, string>): Promise<T> {
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await this.fetchImpl(this.base + path, body === undefined ? { method, headers } : { method, headers, body });
    const raw = await res.text();
    let json: unknown;
    try {
      json = raw ? JSON.parse(raw) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string; reason?: string } } | undefined)?.error;
      throw new ArenaHttpError(res.status, err?.code ?? `HTTP_${res.status}`, err?.message ?? raw.slice(0, 200), err?.reason);
    }
    return json as T;
  }
}
