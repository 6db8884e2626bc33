#!/usr/bin/env node
// Prints a live order book from the roomcast arena's `market:SYMBOL` room.
//
//   node examples/node-orderbook/orderbook.mjs ws://127.0.0.1:8080 [BTC-USD] [--updates N]
//
// Build the client first (`cd clients/js && npm ci && npm run build`). In your own
// project: `import { RoomcastClient } from "@roomcast/client"` (and, on Node 20,
// `import WebSocket from "ws"`). Run by clients/js/test/market.test.mjs.
import { createRequire } from "node:module";
import { RoomcastClient } from "../../clients/js/dist/index.js";

const args = process.argv.slice(2);
const url = args[0] ?? "ws://127.0.0.1:8080";
const symbol = args[1] && !args[1].startsWith("--") ? args[1] : "BTC-USD";
const limitAt = args.indexOf("--updates");
const limit = limitAt >= 0 ? Number(args[limitAt + 1]) : Infinity;

// Node >= 22 has a global WebSocket; Node 20 takes the `ws` package of clients/js.
const WebSocket = globalThis.WebSocket ?? createRequire(new URL("../../clients/js/package.json", import.meta.url))("ws");

const client = new RoomcastClient(url, { clientId: `orderbook-${process.pid}`, WebSocket });
client.on("state", (s) => console.error(`[${s.state}]${s.code ? ` ${s.code} ${s.reason}` : ""}`));
let updates = 0;
client.market(symbol, (book, ev) => {
  const top = (side) => side.slice(0, 5).map((l) => `${l.quantity.padStart(10)} @ ${l.price}`).join("\n  ");
  console.log(`${symbol} #${ev.sequence} ${ev.type}${book.lastPrice ? ` last ${book.lastPrice}` : ""}`);
  console.log(`  asks:\n  ${top(book.asks.slice(0, 5).reverse()) || "(none)"}`);
  console.log(`  bids:\n  ${top(book.bids) || "(none)"}`);
  if (++updates >= limit) client.close();
});
