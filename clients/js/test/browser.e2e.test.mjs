// End-to-end in real headless Chromium (Debian's chromium driven by playwright-core):
// examples/browser-chat, with the built client served as native ES modules by a tiny
// Node HTTP server, talks to the real roomcast binary. A Node client's broadcast must
// appear in the page, and the page's message must reach the Node client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Server, client, waitFor } from "./util.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const PAGE_DIR = path.resolve(here, "../../../examples/browser-chat");
const DIST = path.resolve(here, "../dist");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TYPES = { ".html": "text/html", ".js": "text/javascript", ".map": "application/json" };

/** Serves the example page at / and the client's dist/ at /roomcast-client/. */
function staticServer() {
  const http = createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    let file;
    if (url.pathname.startsWith("/roomcast-client/")) file = path.join(DIST, url.pathname.slice("/roomcast-client/".length));
    else file = path.join(PAGE_DIR, url.pathname === "/" ? "index.html" : url.pathname.slice(1));
    file = path.normalize(file);
    if ((!file.startsWith(DIST) && !file.startsWith(PAGE_DIR)) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => http.listen(0, "127.0.0.1", () => resolve(http)));
}

let server;
let http;
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  server = await Server.start(["--history", "memory"]);
  http = await staticServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});
after(async () => {
  await browser?.close();
  http?.close();
  await server?.close();
});

test("a broadcast from a Node client appears in the page, and the page's message reaches Node", async (t) => {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(m.text()));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  const { port } = http.address();
  await page.goto(`http://127.0.0.1:${port}/?server=${encodeURIComponent(server.ws)}&room=lobby&name=browser-ann`);
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected", null, { timeout: 15_000 })
    .catch((e) => assert.fail(`${e.message}\npage console:\n${consoleLines.join("\n")}`));
  await waitFor("the page in the room", async () => {
    const ack = await page.evaluate(() => window.roomcastClient.presence("lobby").catch(() => []));
    return ack.includes("browser-ann");
  });

  const node = client(t, server, { clientId: "node-bob" });
  const got = [];
  await node.subscribe("lobby", (ev) => got.push(ev)).ready;
  await node.publish("lobby", { text: "hello from node" });
  await page.waitForFunction(() => document.getElementById("log").textContent.includes("hello from node"), null, { timeout: 10_000 });
  const line = await page.locator("#log li", { hasText: "hello from node" }).textContent();
  assert.match(line, /^node-bob/);

  await page.fill("#text", "hi from chromium");
  await page.click("button");
  await waitFor("the page's message at the Node client", () => got.some((e) => e.content?.text === "hi from chromium"));
  assert.equal(got.find((e) => e.content?.text === "hi from chromium").from, "browser-ann");
  await page.close();
});
