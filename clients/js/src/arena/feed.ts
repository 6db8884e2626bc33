/**
 * An arena feed: local state built from a room's snapshot + events, exposed to the
 * caller. A snapshot replaces the state in one step (the handler never sees half of
 * it); after `recovery_failed` the events are ignored until the fresh snapshot the
 * server sends next, so the state is never built on a gap.
 */
import type { Position, RoomEvent } from "../types.js";
import { OrderBook } from "./book.js";
import { OrdersState } from "./orders.js";
import { PortfolioState } from "./portfolio.js";

/** What `client.market()`, `client.portfolio()` and `client.orders()` return. */
export interface ArenaFeed<S> {
  /** The state, updated in place. */
  readonly state: S;
  /** Resolves once the first snapshot is applied. */
  readonly ready: Promise<void>;
  /** The room position the state reflects. */
  readonly position: Position | undefined;
  /** Whether the state waits for a fresh snapshot (after a failed recovery). */
  readonly stale: boolean;
  /** Stops following (leaves the room or closes the stream connection). */
  close(): void;
}

/** How one kind of state takes snapshots and events. */
export interface StateAdapter<S> {
  state: S;
  reset(data: unknown): void;
  apply(type: string, data: unknown): boolean;
}

/** Handler of a feed: the state after the event, and the event. */
export type FeedHandler<S> = (state: S, event: RoomEvent) => void;

/** The state machine of one feed; the client wires its events in. */
export class Feed<S> implements ArenaFeed<S> {
  readonly ready: Promise<void>;
  position: Position | undefined;
  stale = false;
  private markReady!: () => void;
  closer: () => void = () => {};

  constructor(
    private readonly adapter: StateAdapter<S>,
    private readonly handler: FeedHandler<S> | undefined,
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }

  get state(): S {
    return this.adapter.state;
  }

  /** Takes one event of the room (already deduplicated by sequence). */
  onEvent(ev: RoomEvent): void {
    if (ev.type.endsWith("_snapshot")) {
      this.adapter.reset(ev.data);
      this.stale = false;
      this.markReady();
    } else if (this.stale || !this.adapter.apply(ev.type, ev.data)) {
      return;
    }
    this.position = { sequence: ev.sequence, epoch: ev.epoch };
    this.handler?.(this.adapter.state, ev);
  }

  /** History could not cover a gap: wait for the fresh snapshot. */
  onRecoveryFailed(): void {
    this.stale = true;
  }

  close(): void {
    this.closer();
  }
}

/** `market:{symbol}`: `book_snapshot`, then `book_update` (levels), `trade` (last price), `ticker`. */
export function bookAdapter(symbol: string): StateAdapter<OrderBook> {
  const book = new OrderBook(symbol);
  return {
    state: book,
    reset: (d) => book.reset(d as Parameters<OrderBook["reset"]>[0]),
    apply: (type, d) => {
      if (type === "book_update") book.update(d as Parameters<OrderBook["update"]>[0]);
      else if (type === "trade") book.lastPrice = (d as { price?: string }).price;
      else if (type !== "ticker") return false;
      return true;
    },
  };
}

/** `portfolio:{collective}`: `portfolio_snapshot`, then balance and position updates. */
export function portfolioAdapter(): StateAdapter<PortfolioState> {
  const state = new PortfolioState();
  return { state, reset: (d) => state.reset(d as Parameters<PortfolioState["reset"]>[0]), apply: (t, d) => state.apply(t, d) };
}

/** `orders:{collective}`: `orders_snapshot` (open orders), then order events. */
export function ordersAdapter(): StateAdapter<OrdersState> {
  const state = new OrdersState();
  return { state, reset: (d) => state.reset(d as Parameters<OrdersState["reset"]>[0]), apply: (t, d) => state.apply(t, d) };
}
