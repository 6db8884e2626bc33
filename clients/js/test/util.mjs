// Test helpers: start the REAL roomcast binary on an ephemeral loopback port, wait for
// events with deadlines (never blind sleeps), and build clients with the `ws` package
// (Node 20 has no global WebSocket).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import WS from "ws";
import { RoomcastClient } from "../dist/index.js";

export const BIN = process.env.ROOMCAST_BIN;
if (!BIN) {
  console.error("set ROOMCAST_BIN to the roomcast binary (scripts/test-js does)");
  process.exit(2);
}

/** A running server; `restart` starts it again on the same address and data dir. */
export class Server {
  static async start(args = [], opts = {}) {
    const s = new Server(args, opts.dataDir ?? mkdtempSync(path.join(tmpdir(), "roomcast-js-")));
    await s.spawn("127.0.0.1:0");
    return s;
  }

  constructor(args, dataDir) {
    this.args = args;
    this.dataDir = dataDir;
    this.stderr = "";
  }

  get ws() {
    return `ws://${this.addr}`;
  }
  get http() {
    return `http://${this.addr}`;
  }

  spawn(bind) {
    const proc = spawn(BIN, ["serve", "--bind", bind, "--dev", "--data-dir", this.dataDir, ...this.args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    this.proc = proc;
    proc.stderr.on("data", (d) => {
      this.stderr = (this.stderr + d).slice(-20_000);
    });
    return new Promise((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.stderr}`)), 15_000);
      proc.stdout.on("data", (d) => {
        out += d;
        const m = /listening on ws:\/\/(\S+)/.exec(out);
        if (m && !this.ready) {
          this.ready = true;
          clearTimeout(timer);
          this.addr = m[1];
          resolve();
        }
      });
      proc.on("exit", (code) => {
        clearTimeout(timer);
        if (!this.ready) reject(new Error(`server exited with ${code}:\n${this.stderr}`));
      });
    });
  }

  /** Stops the process with `signal` and waits for it to exit. */
  async stop(signal = "SIGTERM") {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill(signal);
    await exited;
  }

  /** Starts the server again on the same address and data dir. */
  async restart() {
    this.ready = false;
    await this.spawn(this.addr);
  }

  async close() {
    await this.stop("SIGKILL");
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  async admin(method, p, body) {
    const res = await fetch(this.http + p, {
      method,
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }
}

/** A client on `server` with the `ws` constructor; closed by `t.after`. */
export function client(t, server, opts = {}) {
  const c = new RoomcastClient(server.ws ?? server, { WebSocket: WS, ...opts });
  t.after(() => c.close());
  return c;
}

/** Resolves with the first `event` payload of `emitter` matching `pred`, or rejects after `ms`. */
export function nextEvent(emitter, event, pred = () => true, ms = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for "${event}"`));
    }, ms);
    const off = emitter.on(event, (arg) => {
      if (!pred(arg)) return;
      clearTimeout(timer);
      off();
      resolve(arg);
    });
  });
}

/** Waits until `probe()` is truthy (polled every 20 ms), or rejects after `ms`; `what` may be a function (read at the timeout). */
export async function waitFor(what, probe, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "function" ? what() : what}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for the client's state to become `state`. */
export function stateOf(c, state, ms = 10_000) {
  if (c.state === state) return Promise.resolve({ state });
  return nextEvent(c, "state", (s) => s.state === state, ms);
}

/** Publishes over the HTTP API (open in --dev). */
export async function httpPublish(server, room, data, type = "note") {
  const res = await fetch(`${server.http}/api/publish`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ room, type, data }),
  });
  if (res.status !== 200) throw new Error(`publish: ${res.status} ${await res.text()}`);
  return res.json();
}
