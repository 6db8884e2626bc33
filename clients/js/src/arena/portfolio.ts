/**
 * A collective's portfolio kept from `portfolio_snapshot` + `balance_updated` /
 * `position_updated` (absolute values, not deltas). Amounts stay decimal strings.
 */

/** One currency's balance. */
export interface Balance {
  currency: string;
  total: string;
  reserved: string;
  available: string;
  realised_pnl: string;
}

/** One instrument's position. */
export interface PositionEntry {
  symbol: string;
  quantity: string;
  reserved: string;
  available: string;
  average_entry_price: string;
  realised_pnl: string;
}

/** The local copy of a portfolio. `equity` is as of the last snapshot (events do not carry it). */
export class PortfolioState {
  readonly balances = new Map<string, Balance>();
  readonly positions = new Map<string, PositionEntry>();
  equity: { currency: string; equity: string }[] = [];

  /** Replaces everything (a snapshot). */
  reset(data: { balances?: Balance[]; positions?: PositionEntry[]; equity?: { currency: string; equity: string }[] }): void {
    this.balances.clear();
    this.positions.clear();
    for (const b of data.balances ?? []) this.balances.set(b.currency, b);
    for (const p of data.positions ?? []) this.positions.set(p.symbol, p);
    this.equity = data.equity ?? [];
  }

  /** Applies one event; returns false for a type it does not know. */
  apply(type: string, data: unknown): boolean {
    if (type === "balance_updated") {
      const b = data as Balance;
      this.balances.set(b.currency, b);
    } else if (type === "position_updated") {
      const p = data as PositionEntry;
      this.positions.set(p.symbol, p);
    } else {
      return false;
    }
    return true;
  }
}
