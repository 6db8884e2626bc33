// Heartbeat: the client answers the server's pings (so the server keeps it), and a
// server that goes silent (SIGSTOP) is declared dead after heartbeat_interval + timeout.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Server, client, nextEvent, stateOf } from "./util.mjs";

test("pongs keep the session; a silent server is detected and the client reconnects", async (t) => {
  const server = await Server.start(["--history", "memory", "--heartbeat-interval", "1", "--heartbeat-timeout", "1"]);
  t.after(async () => {
    server.proc.kill("SIGCONT");
    await server.close();
  });
  const c = client(t, server, { clientId: "hb", heartbeatTimeoutMs: 500, backoff: { baseMs: 50, capMs: 100 } });
  const welcome = await nextEvent(c, "welcome");
  assert.equal(welcome.heartbeat_interval, 1);
  // Without pongs the server would close us after 2 s of silence from our side.
  await assert.rejects(nextEvent(c, "state", () => true, 3500), /timed out/);
  assert.equal(c.state, "connected");

  const stoppedAt = performance.now();
  server.proc.kill("SIGSTOP");
  const down = await stateOf(c, "disconnected", 5000);
  const after = performance.now() - stoppedAt;
  assert.equal(down.reason, "heartbeat timeout");
  assert.ok(after < 3500, `dead link noticed after ${after} ms`);
  server.proc.kill("SIGCONT");
  await stateOf(c, "connected", 10_000);
});
