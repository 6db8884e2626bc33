// Full-jitter backoff: the arithmetic, and the real reconnect schedule against a port
// where nothing listens.
import { test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { Backoff, DisconnectedError, QueueFullError } from "../dist/index.js";
import { client, nextEvent } from "./util.mjs";

test("delays are uniform in [0, min(cap, base*2^n)), capped, bounded in attempts, and reset", () => {
  const b = new Backoff({ baseMs: 500, capMs: 30_000 });
  for (let n = 0; n < 12; n++) {
    const window = Math.min(30_000, 500 * 2 ** n);
    assert.equal(b.window(n), window);
    for (let k = 0; k < 200; k++) {
      const d = new Backoff({ baseMs: 500, capMs: 30_000 });
      for (let i = 0; i < n; i++) d.next();
      const v = d.next();
      assert.ok(v >= 0 && v < window, `attempt ${n}: ${v} outside [0, ${window})`);
    }
  }
  const top = new Backoff({ baseMs: 500, capMs: 30_000, random: () => 0.999999, maxAttempts: 8 });
  const seen = Array.from({ length: 8 }, () => top.next());
  assert.deepEqual(seen, [499, 999, 1999, 3999, 7999, 15999, 29999, 29999]);
  assert.equal(top.next(), null, "out of attempts");
  top.reset();
  assert.equal(top.next(), 499);
  const zero = new Backoff({ random: () => 0 });
  assert.equal(zero.next(), 0);
  assert.throws(() => new Backoff({ baseMs: 0 }), RangeError);
});

test("the client waits each announced delay before retrying, then gives up after maxAttempts", async (t) => {
  // A port that was free a moment ago: connections are refused.
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const c = client(t, `ws://127.0.0.1:${port}`, {
    clientId: "lonely",
    backoff: { baseMs: 100, capMs: 400, maxAttempts: 4, random: () => 0.999 },
  });
  const log = [];
  c.on("state", (s) => log.push({ ...s, at: performance.now() }));
  const closed = await nextEvent(c, "state", (s) => s.state === "closed", 10_000);
  assert.match(closed.reason, /gave up after 4 attempts/);
  const waits = log.filter((s) => s.state === "disconnected");
  assert.deepEqual(waits.map((s) => s.delay), [99, 199, 399, 399]);
  for (const w of waits) {
    const next = log.find((s) => s.at > w.at && s.state === "reconnecting");
    const gap = next.at - w.at;
    assert.ok(gap >= w.delay - 2 && gap < w.delay + 300, `waited ${gap} ms for a ${w.delay} ms delay`);
  }
});

test("publishes while disconnected wait in a bounded queue: fail or drop-oldest when full", async (t) => {
  const port = await new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const url = `ws://127.0.0.1:${port}`;
  const failing = client(t, url, { clientId: "q1", queueSize: 2, queuePolicy: "fail" });
  const a = failing.publish("r", 1);
  const b = failing.publish("r", 2);
  await assert.rejects(failing.publish("r", 3), QueueFullError);
  const dropping = client(t, url, { clientId: "q2", queueSize: 2, queuePolicy: "drop-oldest" });
  const c = dropping.publish("r", 1);
  const d = dropping.publish("r", 2);
  const e = dropping.publish("r", 3);
  await assert.rejects(c, QueueFullError);
  // Closing rejects what is still queued: nothing is silently lost.
  failing.close();
  dropping.close();
  for (const p of [a, b, d, e]) await assert.rejects(p, DisconnectedError);
});
