// Gapless recovery while another client publishes: the subscriber is disconnected
// repeatedly by the server (admin API, close 1008 = slow-consumer style) mid-stream and
// still sees every event exactly once, in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server, client, httpPublish, stateOf, waitFor } from "./util.mjs";

test("repeated disconnects during a publish stream lose and repeat nothing", async (t) => {
  const server = await Server.start(["--history", "memory", "--rate-limit", "0", "--history-max-events", "10000"]);
  t.after(() => server.close());
  const alice = client(t, server, { clientId: "alice", backoff: { baseMs: 20, capMs: 100 } });
  const bob = client(t, server, { clientId: "bob" });
  const got = [];
  await alice.subscribe("feed", (ev) => got.push(ev)).ready;
  await bob.subscribe("feed", () => {}).ready;

  const TOTAL = 400;
  let disconnects = 0;
  const publisher = (async () => {
    for (let i = 1; i <= TOTAL; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, k) => bob.publish("feed", { n: i + k })));
    }
  })();
  const kicker = (async () => {
    for (let k = 0; k < 4; k++) {
      await waitFor(`alice connected with progress (${k})`, () => alice.connected && got.length > k * 80, 10_000);
      const r = await server.admin("POST", "/api/admin/connections/alice/disconnect", { code: 1008, reason: "test" });
      if (r.status === 200) disconnects++;
      await stateOf(alice, "disconnected", 5000).catch(() => {});
    }
  })();
  await Promise.all([publisher, kicker]);
  await waitFor(`all ${TOTAL} events`, () => got.length >= TOTAL, 15_000);
  assert.ok(disconnects >= 3, `alice was disconnected ${disconnects} times`);
  assert.deepEqual(
    got.map((e) => e.sequence),
    Array.from({ length: TOTAL }, (_, i) => i + 1),
  );
  assert.ok(got.some((e) => e.replayed), "some events were replayed");
});

test("general is recovered through ?last_sequence, and a publisher never gets its own messages back", async (t) => {
  const server = await Server.start(["--history", "memory", "--rate-limit", "0"]);
  t.after(() => server.close());
  const fast = { baseMs: 20, capMs: 50 };
  const alice = client(t, server, { clientId: "alice", backoff: fast });
  const bob = client(t, server, { clientId: "bob", backoff: fast });
  const atAlice = [];
  const atBob = [];
  await alice.subscribe("general", (ev) => atAlice.push(ev)).ready;
  await bob.subscribe("general", (ev) => atBob.push(ev)).ready;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10; i++) await bob.publish("general", { round, i });
    // Both are kicked: alice resumes general from the URL, bob from his own acks.
    for (const id of ["alice", "bob"]) {
      const c = id === "alice" ? alice : bob;
      const down = stateOf(c, "disconnected");
      await server.admin("POST", `/api/admin/connections/${id}/disconnect`, { code: 1008, reason: "test" });
      await down;
    }
    await httpPublish(server, "general", { round, http: true });
    await Promise.all([stateOf(alice, "connected"), stateOf(bob, "connected")]);
  }
  await waitFor("33 events at alice", () => atAlice.length >= 33);
  assert.deepEqual(atAlice.map((e) => e.sequence), Array.from({ length: 33 }, (_, i) => i + 1));
  await waitFor("the 3 HTTP events at bob", () => atBob.length >= 3);
  assert.ok(atBob.every((e) => e.type === "note"), `bob got only others' events: ${JSON.stringify(atBob.map((e) => e.type))}`);
  assert.equal(atBob.length, 3);
});
