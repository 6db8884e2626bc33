// End-to-end test of the web dashboard in real headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core). Run by scripts/e2e, which starts the server and passes:
//   ROOMCAST_HTTP       base URL of a running server, e.g. http://127.0.0.1:41234
//   ROOMCAST_ADMIN_KEY  its admin key
//   E2E_ARTIFACTS       where screenshots go (default test-artifacts/dashboard)
//   CHROMIUM            the browser (default /usr/bin/chromium)
// The test loads the page, reads the connections figure N, opens a real WebSocket client,
// waits (polling the DOM against a deadline, never a blind sleep) for N+1, for its room in
// the top-rooms table and for a non-zero inbound rate, then closes it and waits for N again.
// The server runs with --demo, so the Markets panel must show, for every market, a book
// with levels and (once the bots have crossed) trades, and the bots' equity.
// Screenshots of each stage are written for inspection.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import WebSocket from "ws";

const BASE = process.env.ROOMCAST_HTTP;
const KEY = process.env.ROOMCAST_ADMIN_KEY;
const ARTIFACTS = process.env.E2E_ARTIFACTS || "test-artifacts/dashboard";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TEST_TIMEOUT_MS = 90_000;
const WAIT_MS = 15_000;
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

if (!BASE || !KEY) {
  console.error("dashboard.test.mjs: set ROOMCAST_HTTP and ROOMCAST_ADMIN_KEY (scripts/e2e does)");
  process.exit(2);
}
const WS_BASE = BASE.replace(/^http/, "ws");

/** Polls `probe` until it returns something other than undefined/null/false. */
async function waitFor(what, probe, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last !== undefined && last !== null && last !== false) return last;
    } catch (e) {
      last = `error: ${e.message}`;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last seen: ${JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The integer shown in #id, or null while it shows a placeholder. */
async function figure(page, id) {
  const text = (await page.textContent(`#${id}`)) ?? "";
  const n = Number(text.replace(/,/g, "").trim());
  return text.trim() !== "" && Number.isFinite(n) ? n : null;
}

/** Opens a protocol client, waits for its welcome and joins `room`. */
async function openClient(clientId, room) {
  const ws = new WebSocket(`${WS_BASE}/ws/${clientId}`);
  const inbox = [];
  ws.on("message", (data) => {
    try {
      inbox.push(JSON.parse(data.toString()));
    } catch {
      // not JSON: ignored
    }
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  await waitFor("the welcome message", () => inbox.some((m) => m.type === "welcome"));
  ws.send(JSON.stringify({ type: "subscribe", room, id: "sub" }));
  await waitFor("the subscribe ack", () => inbox.some((m) => m.type === "ack" && m.id === "sub"));
  return ws;
}

test("dashboard shows live figures that follow a real client", { timeout: TEST_TIMEOUT_MS }, async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const profile = mkdtempSync(path.join(tmpdir(), "roomcast-e2e-profile-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
    timeout: 20_000,
  });
  let client;
  t.after(async () => {
    if (client) client.terminate();
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  });

  // Access rule: 401 without the key or with a wrong one (checked without the page, so
  // the page's console stays clean).
  for (const url of [`${BASE}/dashboard`, `${BASE}/dashboard?key=not-the-key`]) {
    const res = await context.request.get(url);
    assert.equal(res.status(), 401, `GET ${url.replace(KEY, "<key>")}`);
  }

  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.url().replace(KEY, "<key>")}`);
  });

  const res = await page.goto(`${BASE}/dashboard?key=${encodeURIComponent(KEY)}`);
  assert.ok(res, "a response for the dashboard page");
  assert.equal(res.status(), 200, "dashboard page status");
  assert.equal(await page.title(), "roomcast dashboard");
  await waitFor("the stream to be live", async () => (await page.textContent("#status")) === "live");
  const before = await waitFor("the connections figure", () => figure(page, "connections"));
  await page.screenshot({ path: path.join(ARTIFACTS, "01-loaded.png"), fullPage: true });

  // The arena panel (demo bots trading): a card per market with book levels and trades.
  const markets = await waitFor("market cards in the arena panel", async () => {
    const n = await page.locator("#arena-markets .market").count();
    return n > 0 ? n : null;
  });
  await waitFor("a book with bid and ask levels in every market", async () => {
    for (let i = 0; i < markets; i++) {
      const card = page.locator("#arena-markets .market").nth(i);
      if ((await card.locator("table.book tr.level.bid").count()) === 0) return false;
      if ((await card.locator("table.book tr.level.ask").count()) === 0) return false;
    }
    return true;
  }, 30_000);
  await waitFor("trades in the arena panel", async () =>
    (await page.locator("#arena-markets table.trades tr.trade").count()) > 0, 30_000);
  const firstLevel = await page.locator("#arena-markets table.book tr.level").first().textContent();
  assert.match(firstLevel ?? "", /\d+\.\d+/, "a book level shows a decimal price");
  await waitFor("the bots' equity", async () =>
    (await page.textContent("#arena-equity"))?.includes("bot-1"),
  );
  assert.equal(
    (await page.textContent("#markets"))?.includes("trading arena not running"),
    false,
    "the Markets section shows the running arena",
  );
  await page.screenshot({ path: path.join(ARTIFACTS, "01b-arena.png"), fullPage: true });
  console.log(`# arena panel: ${markets} markets with books and trades`);
  console.log(`# page loaded, connections = ${before}`);

  // A real client connects and joins a room: the figure must become N+1.
  const room = `e2e-room-${process.pid}`;
  client = await openClient(`e2e-client-${process.pid}`, room);
  await waitFor(`connections to become ${before + 1}`, async () => (await figure(page, "connections")) === before + 1);
  await waitFor(`room ${room} in the top-rooms table`, async () =>
    (await page.textContent("#top-rooms"))?.includes(room),
  );

  // It publishes until the dashboard shows inbound traffic (each send is one message in).
  // At most ~3 per second: well inside the server's default per-connection rate limit.
  let sent = 0;
  let lastSend = 0;
  await waitFor("a non-zero messages-in rate", async () => {
    if (Date.now() - lastSend >= 300) {
      client.send(JSON.stringify({ type: "message", room, content: { n: sent++ } }));
      lastSend = Date.now();
    }
    const rate = await figure(page, "messages-in-rate");
    return rate !== null && rate > 0;
  });
  await page.screenshot({ path: path.join(ARTIFACTS, "02-client-connected.png"), fullPage: true });
  console.log(`# client connected: connections = ${before + 1}, ${sent} messages sent`);

  // It leaves: back to N.
  client.close();
  await waitFor(`connections to return to ${before}`, async () => (await figure(page, "connections")) === before);
  await page.screenshot({ path: path.join(ARTIFACTS, "03-client-gone.png"), fullPage: true });

  assert.deepEqual(problems, [], "no script or console errors on the page");
});
