// Subscribe/publish, presence, request errors and the state machine against the real server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { RoomcastError, DisconnectedError } from "../dist/index.js";
import { Server, client, stateOf, waitFor } from "./util.mjs";

let server;
before(async () => {
  server = await Server.start(["--history", "memory"]);
});
after(() => server.close());

test("a publish reaches the other subscriber, in order, and resolves on its ack", async (t) => {
  const states = [];
  const alice = client(t, server, { clientId: "alice" });
  alice.on("state", (s) => states.push(s.state));
  const bob = client(t, server, { clientId: "bob" });
  const got = [];
  await alice.subscribe("chat", (ev) => got.push(ev)).ready;
  await bob.subscribe("chat", () => {}).ready;
  const acks = [];
  for (let i = 1; i <= 5; i++) acks.push(await bob.publish("chat", { n: i }));
  assert.deepEqual(acks.map((a) => a.sequence), [1, 2, 3, 4, 5]);
  await waitFor("5 messages", () => got.length === 5);
  assert.deepEqual(got.map((e) => e.content.n), [1, 2, 3, 4, 5]);
  assert.ok(got.every((e) => e.from === "bob" && e.room === "chat" && e.epoch === acks[0].epoch));
  assert.deepEqual(await alice.presence("chat"), ["alice", "bob"]);
  assert.deepEqual(states.slice(), ["connecting", "connected"]);
  assert.deepEqual(alice.position("chat"), { sequence: 5, epoch: acks[0].epoch });
});

test("a refused request rejects with the server's code; the connection stays", async (t) => {
  const c = client(t, server, { clientId: "carol" });
  await stateOf(c, "connected");
  await assert.rejects(c.publish("not-joined", "x"), (e) => e instanceof RoomcastError && e.code === "NOT_SUBSCRIBED");
  const sub = c.subscribe("bad room!", () => {});
  await assert.rejects(sub.ready, (e) => e instanceof RoomcastError && e.code === "INVALID_ROOM");
  assert.equal(c.state, "connected");
});

test("unsubscribe leaves the room; close() ends the session and rejects what is pending", async (t) => {
  const dave = client(t, server, { clientId: "dave" });
  const erin = client(t, server, { clientId: "erin" });
  const sub = dave.subscribe("room-u", () => {});
  await sub.ready;
  await erin.subscribe("room-u", () => {}).ready;
  assert.deepEqual(await erin.presence("room-u"), ["dave", "erin"]);
  await sub.unsubscribe();
  assert.deepEqual(await erin.presence("room-u"), ["erin"]);
  dave.close();
  assert.equal(dave.state, "closed");
  await assert.rejects(dave.publish("room-u", 1), DisconnectedError);
});

test("subscribe with since replays what came after that position, marked replayed", async (t) => {
  const pub = client(t, server, { clientId: "since-pub" });
  await pub.subscribe("since-room", () => {}).ready;
  const acks = [];
  for (let i = 1; i <= 5; i++) acks.push(await pub.publish("since-room", { i }));
  const late = client(t, server, { clientId: "since-late" });
  const got = [];
  const replayed = new Promise((r) => late.on("replay_complete", r));
  await late.subscribe("since-room", (ev) => got.push(ev), { since: { sequence: 2, epoch: acks[0].epoch } }).ready;
  assert.deepEqual(await replayed, { room: "since-room", replayed_count: 3 });
  assert.deepEqual(got.map((e) => [e.sequence, e.content.i, e.replayed]), [
    [3, 3, true],
    [4, 4, true],
    [5, 5, true],
  ]);
});
