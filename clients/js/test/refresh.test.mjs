// Token refresh: on `token_expiring` the client calls getToken() and sends `refresh`, so
// the session outlives its first token; a narrower token leaves rooms (`unsubscribed`);
// an auth close with a getToken that yields a new token reconnects, without one it stops.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Server, client, nextEvent, stateOf } from "./util.mjs";

const SECRET = "js-client-test-secret-0123456789";
const b64url = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");

/** An HS256 JWT for `sub`, valid `ttl` seconds. */
function jwt(sub, ttl, extra = {}) {
  const head = b64url({ alg: "HS256", typ: "JWT" });
  const body = b64url({ sub, exp: Math.floor(Date.now() / 1000) + ttl, ...extra });
  const sig = createHmac("sha256", SECRET).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

let server;
before(async () => {
  server = await Server.start(["--history", "memory", "--jwt-secret", SECRET, "--jwt-leeway", "0", "--heartbeat-interval", "1"]);
});
after(() => server.close());

test("the session outlives its first token through token_expiring + refresh", async (t) => {
  let minted = 0;
  const c = client(t, server, {
    clientId: "tok",
    token: jwt("tok", 3),
    getToken: () => (minted++, jwt("tok", 60)),
  });
  const welcome = await nextEvent(c, "welcome");
  assert.ok(welcome.features.includes("refresh"));
  const warned = await nextEvent(c, "token_expiring", () => true, 5000);
  assert.ok(warned.expires_in <= 3);
  const refreshed = await nextEvent(c, "refreshed", () => true, 5000);
  assert.ok(refreshed.expires_in > 50);
  assert.equal(minted, 1);
  // Past the first token's expiry (3 s, no leeway) the session is still the same one.
  await assert.rejects(nextEvent(c, "state", () => true, 2500), /timed out/);
  assert.equal(c.state, "connected");
});

test("a narrower token leaves the rooms it no longer allows", async (t) => {
  const c = client(t, server, {
    clientId: "narrow",
    token: jwt("narrow", 3, { rooms: ["chat:*", "general"] }),
    getToken: () => jwt("narrow", 60, { rooms: ["chat:a", "general"] }),
  });
  await c.subscribe("chat:a", () => {}).ready;
  await c.subscribe("chat:b", () => {}).ready;
  const left = await nextEvent(c, "unsubscribed", () => true, 6000);
  assert.deepEqual(left, { room: "chat:b", reason: "forbidden" });
  assert.equal(c.position("chat:b"), undefined);
  assert.deepEqual(await c.presence("chat:a"), ["narrow"]);
});

test("an auth close reconnects with a new token from getToken; without getToken it stops", async (t) => {
  const c = client(t, server, { clientId: "reauth", getToken: () => jwt("reauth", 60, { jti: Math.random() }), backoff: { baseMs: 20, capMs: 50 } });
  await stateOf(c, "connected");
  const down = stateOf(c, "disconnected");
  await server.admin("POST", "/api/admin/connections/reauth/disconnect", { code: 4003, reason: "Token expired" });
  assert.equal((await down).code, 4003);
  await stateOf(c, "connected");

  const fixed = client(t, server, { clientId: "fixed", token: jwt("fixed", 60) });
  await stateOf(fixed, "connected");
  const closed = stateOf(fixed, "closed");
  await server.admin("POST", "/api/admin/connections/fixed/disconnect", { code: 4003, reason: "Token expired" });
  assert.equal((await closed).code, 4003);
});
