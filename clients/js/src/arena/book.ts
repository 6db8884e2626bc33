/**
 * A market's order book kept from `book_snapshot` + `book_update` (absolute level
 * totals; `"0"` removes a level). Prices and quantities stay decimal strings.
 */
import { compareDecimal, isZero } from "./decimal.js";

/** One price level. */
export interface Level {
  price: string;
  quantity: string;
}

interface BookData {
  symbol?: string;
  bids?: Level[];
  asks?: Level[];
}

/** The local copy of one symbol's book. */
export class OrderBook {
  private readonly bidMap = new Map<string, string>();
  private readonly askMap = new Map<string, string>();
  /** Last trade price seen (`trade` events), if any. */
  lastPrice: string | undefined;

  constructor(readonly symbol: string) {}

  /** Replaces the whole book (a snapshot). */
  reset(data: BookData): void {
    this.bidMap.clear();
    this.askMap.clear();
    this.update(data);
  }

  /** Applies changed levels (a `book_update`). */
  update(data: BookData): void {
    for (const l of data.bids ?? []) set(this.bidMap, l);
    for (const l of data.asks ?? []) set(this.askMap, l);
  }

  /** Bids, best (highest) first. */
  get bids(): Level[] {
    return levels(this.bidMap).sort((x, y) => compareDecimal(y.price, x.price));
  }

  /** Asks, best (lowest) first. */
  get asks(): Level[] {
    return levels(this.askMap).sort((x, y) => compareDecimal(x.price, y.price));
  }

  /** The book in the shape of `GET /api/v1/markets/{symbol}/book`. */
  toJSON(): { symbol: string; bids: Level[]; asks: Level[] } {
    return { symbol: this.symbol, bids: this.bids, asks: this.asks };
  }
}

function set(map: Map<string, string>, l: Level): void {
  if (isZero(l.quantity)) map.delete(l.price);
  else map.set(l.price, l.quantity);
}

function levels(map: Map<string, string>): Level[] {
  return [...map].map(([price, quantity]) => ({ price, quantity }));
}
