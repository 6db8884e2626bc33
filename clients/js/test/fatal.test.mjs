// Close codes that mean stop end the session for good; the others reconnect. Each close
// is produced by the real server (a superseding connection, or the admin API).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, client, nextEvent, stateOf } from "./util.mjs";

let server;
before(async () => {
  server = await Server.start(["--history", "memory"]);
});
after(() => server.close());

const fast = { baseMs: 20, capMs: 50 };

/** Asserts that `c` makes no further state change for `ms` (it does not reconnect). */
async function staysClosed(c, ms = 600) {
  await assert.rejects(nextEvent(c, "state", () => true, ms), /timed out/);
  assert.equal(c.state, "closed");
}

test("4011 superseded: the old session stops and does not reconnect", async (t) => {
  const first = client(t, server, { clientId: "dup", backoff: fast });
  await stateOf(first, "connected");
  const closed = stateOf(first, "closed");
  const second = client(t, server, { clientId: "dup", backoff: fast });
  const s = await closed;
  assert.equal(s.code, 4011);
  await staysClosed(first);
  assert.equal(second.state, "connected");
});

for (const code of [4031, 4022, 4003]) {
  test(`close ${code} stops the client (no getToken)`, async (t) => {
    const id = `stop-${code}`;
    const c = client(t, server, { clientId: id, backoff: fast });
    await stateOf(c, "connected");
    const closed = stateOf(c, "closed");
    const r = await server.admin("POST", `/api/admin/connections/${id}/disconnect`, { code, reason: "test" });
    assert.equal(r.status, 200);
    assert.equal((await closed).code, code);
    await staysClosed(c);
  });
}

for (const code of [1008, 4091, 4021]) {
  test(`close ${code} reconnects with backoff`, async (t) => {
    const id = `retry-${code}`;
    const c = client(t, server, { clientId: id, backoff: fast });
    await stateOf(c, "connected");
    const down = stateOf(c, "disconnected");
    await server.admin("POST", `/api/admin/connections/${id}/disconnect`, { code, reason: "test" });
    const d = await down;
    assert.equal(d.code, code);
    assert.ok(d.delay >= 0 && d.delay < fast.baseMs);
    await stateOf(c, "connected");
  });
}
