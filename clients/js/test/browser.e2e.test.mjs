// End-to-end in real headless Chromium (Debian's chromium driven by playwright-core):
// examples/browser-chat, with the built client as native ES modules, served by the real
// roomcast binary itself (`roomcast serve --static DIR`) and talking to it. A Node
// client's broadcast must appear in the page, and the page's message must reach the Node
// client.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Server, client, waitFor } from "./util.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const PAGE_DIR = path.resolve(here, "../../../examples/browser-chat");
const DIST = path.resolve(here, "../dist");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** The folder roomcast serves: the example page, with the built client at ./roomcast-client/. */
function siteDir() {
  const dir = mkdtempSync(path.join(tmpdir(), "roomcast-site-"));
  cpSync(PAGE_DIR, dir, { recursive: true });
  cpSync(DIST, path.join(dir, "roomcast-client"), { recursive: true });
  return dir;
}

let server;
let browser;
before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM)`);
  server = await Server.start(["--history", "memory", "--static", siteDir()]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});
after(async () => {
  await browser?.close();
  await server?.close();
});

test("a broadcast from a Node client appears in the page, and the page's message reaches Node", async (t) => {
  const page = await browser.newPage();
  const consoleLines = [];
  page.on("console", (m) => consoleLines.push(m.text()));
  page.on("pageerror", (e) => consoleLines.push(`pageerror: ${e.message}`));
  await page.goto(`${server.http}/?server=${encodeURIComponent(server.ws)}&room=lobby&name=browser-ann`);
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
