// The market feed keeps the order book equal to GET /api/v1/markets/BTC-USD/book while
// the demo bots trade, across a forced reconnect; the Node order-book example runs.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Server, client, stateOf, waitFor } from "./util.mjs";

let server;
before(async () => {
  server = await Server.start(["--history", "memory", "--demo", "--demo-rate", "10"]);
});
after(() => server.close());

async function restBook() {
  const res = await fetch(`${server.http}/api/v1/markets/BTC-USD/book?depth=1000`);
  assert.equal(res.status, 200);
  const b = await res.json();
  return { bids: b.bids, asks: b.asks };
}

/** Waits until the local book equals the server's at `count` distinct positions. */
async function matches(feed, count) {
  const seen = new Set();
  let last;
  await waitFor(() => `${count} matching book positions (last local / remote: ${last})`, async () => {
    const before = feed.position?.sequence;
    const remote = await restBook();
    const local = feed.state.toJSON();
    // The server moves on while we look: compare only when the local position held still.
    if (feed.position?.sequence === before && JSON.stringify(remote) === JSON.stringify({ bids: local.bids, asks: local.asks })) {
      seen.add(before);
    }
    last = `${JSON.stringify(local).slice(0, 120)} / ${JSON.stringify(remote).slice(0, 120)}`;
    return seen.size >= count;
  }, 20_000);
}

test("the book follows snapshot + updates and equals the REST book, across a reconnect", async (t) => {
  const c = client(t, server, { clientId: "watcher", backoff: { baseMs: 50, capMs: 100 } });
  let updates = 0;
  const feed = c.market("BTC-USD", (_book, ev) => {
    if (ev.type === "book_update") updates++;
  });
  await feed.ready;
  await matches(feed, 3);
  assert.ok(updates > 0, "book updates arrived");
  assert.ok(feed.state.bids.length + feed.state.asks.length > 0, "the demo book has levels");

  await server.admin("POST", "/api/admin/connections/watcher/disconnect", { code: 1008, reason: "test" });
  await stateOf(c, "disconnected");
  await stateOf(c, "connected");
  const at = feed.position.sequence;
  await waitFor("updates after the reconnect", () => feed.position.sequence > at + 3);
  await matches(feed, 2);
  assert.equal(feed.stale, false);
});

test("examples/node-orderbook prints the live book", async () => {
  const script = fileURLToPath(new URL("../../../examples/node-orderbook/orderbook.mjs", import.meta.url));
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(process.execPath, [script, server.ws, "BTC-USD", "--updates", "3"], { timeout: 15_000 }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stderr })) : resolve({ stdout, stderr }),
    );
  });
  assert.match(stdout, /BTC-USD #\d+ book_snapshot/);
  assert.match(stdout, /bids:\n\s+\d/);
  assert.equal(stdout.match(/^BTC-USD #/gm).length, 3);
});
