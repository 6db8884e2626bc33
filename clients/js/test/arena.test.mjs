// Ed25519 through WebCrypto (challenge on /ws/{collective}?auth=ed25519 and on the
// orders/portfolio streams), the signed REST helper, and the local order state.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { ArenaRest, ArenaHttpError, toBase64 } from "../dist/index.js";
import { Server, client, stateOf, waitFor } from "./util.mjs";

let server;
let acme;
let stranger;
before(async () => {
  const gen = () => crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  acme = await gen();
  stranger = await gen();
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", acme.publicKey));
  const dir = mkdtempSync(path.join(tmpdir(), "roomcast-js-coll-"));
  const file = path.join(dir, "collectives.json");
  writeFileSync(file, JSON.stringify([{ id: "acme", public_key: toBase64(raw), starting_cash: 10_000_000 }]));
  server = await Server.start(["--history", "memory", "--collectives", file]);
});
after(() => server.close());

test("the Ed25519 challenge signed with WebCrypto authenticates; a wrong key is refused for good", async (t) => {
  const c = client(t, server, { ed25519: { collectiveId: "acme", privateKey: acme.privateKey } });
  const welcome = new Promise((r) => c.on("welcome", r));
  assert.equal((await welcome).client_id, "acme");
  const got = [];
  await c.subscribe("acme-room", (e) => got.push(e)).ready;

  const bad = client(t, server, { ed25519: { collectiveId: "acme", privateKey: stranger.privateKey } });
  const closed = await stateOf(bad, "closed");
  assert.equal(closed.code, 4001);
  assert.equal(c.state, "connected");
});

test("a PKCS#8 PEM key works too, for the socket and for signed REST", async (t) => {
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", acme.privateKey));
  const pem = `-----BEGIN PRIVATE KEY-----\n${toBase64(der)}\n-----END PRIVATE KEY-----\n`;
  const rest = new ArenaRest(server.http, { collectiveId: "acme", privateKey: pem });
  const portfolio = await rest.portfolio();
  assert.equal(portfolio.collective_id, "acme");
  const intruder = new ArenaRest(server.http, { collectiveId: "acme", privateKey: stranger.privateKey });
  await assert.rejects(intruder.portfolio(), (e) => e instanceof ArenaHttpError && e.status === 401 && e.code === "invalid_signature");
});

test("orders and portfolio streams follow signed REST orders", async (t) => {
  const c = client(t, server, { ed25519: { collectiveId: "acme", privateKey: acme.privateKey } });
  const rest = new ArenaRest(server.http, { collectiveId: "acme", privateKey: acme.privateKey });
  const orders = c.orders();
  const portfolio = c.portfolio();
  await Promise.all([orders.ready, portfolio.ready]);
  assert.equal(orders.state.open.size, 0);
  assert.equal(portfolio.state.balances.get("USD").available, "100000");

  const placed = await rest.placeOrder({ symbol: "BTC-USD", side: "buy", type: "limit", quantity: "0.5", price: "1000.00", client_order_id: "js-1" });
  assert.equal(placed.status, "open");
  await waitFor("the order in the orders stream", () => orders.state.open.has(placed.order_id));
  await waitFor("the reservation in the portfolio", () => portfolio.state.balances.get("USD").reserved === "500");
  assert.equal(portfolio.state.balances.get("USD").available, "99500");

  const rejected = rest.placeOrder({ symbol: "BTC-USD", side: "buy", type: "limit", quantity: "0.5", price: "1000.001" });
  await assert.rejects(rejected, (e) => e instanceof ArenaHttpError && e.status === 422 && e.reason === "invalid_tick");

  await rest.cancelOrder(placed.order_id);
  await waitFor("the cancel in the orders stream", () => !orders.state.open.has(placed.order_id));
  await waitFor("the release in the portfolio", () => portfolio.state.balances.get("USD").reserved === "0");
  const open = await rest.orders("open");
  assert.equal(open.length, 0);
  orders.close();
  portfolio.close();
});

test("a stream connection resumes with ?last_sequence and replays what it missed", async (t) => {
  const c = client(t, server, { ed25519: { collectiveId: "acme", privateKey: acme.privateKey }, backoff: { baseMs: 1000, capMs: 1000, random: () => 0.999 } });
  const rest = new ArenaRest(server.http, { collectiveId: "acme", privateKey: acme.privateKey });
  const events = [];
  const orders = c.orders((_s, ev) => events.push(ev));
  await orders.ready;
  const r = await server.admin("POST", "/api/admin/connections/acme:orders/disconnect", { code: 1008, reason: "test" });
  assert.equal(r.status, 200);
  // Placed while the stream is down (it waits ~1 s before retrying).
  const placed = await rest.placeOrder({ symbol: "ETH-USD", side: "buy", type: "limit", quantity: "1", price: "10.00" });
  await waitFor("the missed order, replayed", () => orders.state.open.has(placed.order_id));
  const created = events.find((e) => e.type === "order_created" && e.data.order_id === placed.order_id);
  assert.equal(created.replayed, true);
  assert.equal(events.filter((e) => e.type.endsWith("_snapshot")).length, 1, "no second snapshot: the gap was replayed");
  await rest.cancelOrder(placed.order_id);
  await waitFor("the cancel", () => !orders.state.open.has(placed.order_id));
});
