// Reconnect across a server restart on the same data dir: after SIGTERM (clean stop,
// epochs kept) the client replays exactly what it missed; after kill -9 (new epoch) it
// surfaces recovery_failed and continues live.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server, client, httpPublish, nextEvent, stateOf, waitFor } from "./util.mjs";

const pinned = { baseMs: 1000, capMs: 4000, random: () => 0.999 };

test("after SIGTERM + restart nothing is missed or repeated, including offline publishes", async (t) => {
  const server = await Server.start(["--shutdown-grace", "1"]);
  t.after(() => server.close());
  const alice = client(t, server, { clientId: "alice", backoff: pinned });
  const bob = client(t, server, { clientId: "bob", backoff: { baseMs: 50, capMs: 200 } });
  const got = [];
  await alice.subscribe("chat", (ev) => got.push(ev)).ready;
  await bob.subscribe("chat", () => {}).ready;
  for (let i = 1; i <= 5; i++) await bob.publish("chat", { n: i });
  await waitFor("the first 5", () => got.length === 5);

  const aliceDown = stateOf(alice, "disconnected");
  await server.stop("SIGTERM");
  const down = await aliceDown;
  assert.equal(down.code, 4091);
  // bob publishes while the server is down: the publishes wait in the offline queue.
  await stateOf(bob, "disconnected");
  const queued = [6, 7, 8].map((n) => bob.publish("chat", { n }));
  await server.restart();
  // Published while alice is still waiting out her backoff: she must get them by replay.
  for (let i = 9; i <= 11; i++) await httpPublish(server, "chat", { n: i });
  const acks = await Promise.all(queued);
  assert.ok(acks.every((a) => a.sequence >= 6 && a.sequence <= 11));

  await waitFor("all 11 events at alice", () => got.length >= 11, 15_000);
  const seqs = got.map((e) => e.sequence);
  assert.deepEqual(seqs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  const ns = got.map((e) => (e.content ?? e.data).n).sort((a, b) => a - b);
  assert.deepEqual(ns, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.ok(got.some((e) => e.replayed === true), "some events came from history");
  assert.equal(new Set(got.map((e) => e.epoch)).size, 1, "a clean restart keeps the epoch");
});

test("after kill -9 + restart the client surfaces recovery_failed (epoch_changed) and continues", async (t) => {
  const server = await Server.start([]);
  t.after(() => server.close());
  const alice = client(t, server, { clientId: "alice", backoff: { baseMs: 100, capMs: 400 } });
  const got = [];
  const failures = [];
  await alice.subscribe("chat", (ev) => got.push(ev), { onRecoveryFailed: (i) => failures.push(i) }).ready;
  for (let i = 1; i <= 3; i++) await httpPublish(server, "chat", { n: i });
  await waitFor("3 events", () => got.length === 3);
  const oldEpoch = got[0].epoch;

  const failed = nextEvent(alice, "recovery_failed", () => true, 15_000);
  await server.stop("SIGKILL");
  await server.restart();
  const info = await failed;
  assert.equal(info.room, "chat");
  assert.equal(info.reason, "epoch_changed");
  assert.notEqual(info.epoch, oldEpoch);
  assert.equal(failures.length, 1);
  assert.deepEqual(alice.position("chat"), { sequence: info.sequence, epoch: info.epoch });

  const ack = await httpPublish(server, "chat", { n: 4 });
  await waitFor("the live event after the failed recovery", () => got.length === 4);
  assert.equal(got[3].sequence, ack.sequence);
  assert.equal(got[3].epoch, info.epoch);
});
