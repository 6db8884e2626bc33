/**
 * A collective's open orders kept from `orders_snapshot` + order events: created and
 * partially filled orders are (re)stored whole, filled and cancelled ones leave.
 */

/** An order as the arena sends it (decimal strings; see docs/ARENA.md). */
export interface Order {
  order_id: number;
  symbol: string;
  side: "buy" | "sell";
  type: "limit" | "market";
  status: "open" | "partially_filled" | "filled" | "cancelled";
  price?: string | null;
  quantity: string;
  filled_quantity: string;
  remaining_quantity: string;
  client_order_id?: string | null;
  [key: string]: unknown;
}

/** The local copy of the open orders, by order id. */
export class OrdersState {
  readonly open = new Map<number, Order>();

  /** Replaces everything (a snapshot). */
  reset(data: { orders?: Order[] }): void {
    this.open.clear();
    for (const o of data.orders ?? []) this.open.set(o.order_id, o);
  }

  /** Applies one event; returns false for a type it does not know. */
  apply(type: string, data: unknown): boolean {
    const o = data as Order;
    switch (type) {
      case "order_created":
      case "order_partial":
        this.open.set(o.order_id, { ...this.open.get(o.order_id), ...o });
        return true;
      case "order_filled":
      case "order_cancelled":
        this.open.delete(o.order_id);
        return true;
      case "order_rejected":
        return true;
      default:
        return false;
    }
  }
}
