// uWebSockets.js peer for `scripts/bench-compare`: roomcast's /ws/{client_id} JSON protocol
// on µWS's C++ core under Node, written the way its authors show it: rooms are native
// topics (`ws.subscribe(room)`, `ws.publish(room, text)`: µWS fans the one buffer out in
// C++ to every subscriber but the sender), one JSON.stringify per publish. Heartbeats are
// µWS's own (protocol pings every `idleTimeout` / 2, `sendPingsAutomatically`).
// `maxBackpressure` is raised to 16 MiB: the default (64 KiB) makes `publish` silently skip
// a subscriber whose queue is over it, which the bench would count as loss. No auth, no
// rate limit, no history, like the other peers.
//
// With JWT_SECRET set, every upgrade must carry `?token=` an HS256 JWT signed with it whose
// `sub` is the client id and which has not expired (verified with node:crypto in the
// upgrade handler, before µWS accepts the socket), as roomcast's --jwt-secret does.
//
// Usage: node server.mjs [PORT]   (or PORT=…; HOST defaults to 127.0.0.1)
// The npm package `uwebsockets` 3.0.6 republishes uWS.js binaries (the official releases
// are not on the npm registry); see bench/README.md.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import { HEARTBEAT_INTERVAL, chatMessage, serveText, welcome } from '../common/protocol.mjs';

const require = createRequire(import.meta.url);
const uWS = require('uwebsockets');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.argv[2] || process.env.PORT || 8080);
const decoder = new TextDecoder();
const JWT_SECRET = process.env.JWT_SECRET || '';

/** Whether `token` is an unexpired HS256 JWT for `clientId` signed with JWT_SECRET. */
function jwtValid(token, clientId) {
  const parts = token.split('.');
  if (parts.length !== 3) return false;
  const expected = createHmac('sha256', JWT_SECRET).update(`${parts[0]}.${parts[1]}`).digest();
  const given = Buffer.from(parts[2], 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  try {
    const header = JSON.parse(Buffer.from(parts[0], 'base64url').toString());
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    if (header.alg !== 'HS256') return false;
    if (claims.sub !== clientId) return false;
    return typeof claims.exp !== 'number' || claims.exp * 1000 > Date.now();
  } catch {
    return false;
  }
}

/** client id -> its socket (one session per client id) */
const clients = new Map();

function reply(ws, message) {
  ws.send(JSON.stringify(message), false);
}

const app = uWS.App();

app.ws('/ws/:id', {
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 16 * 1024 * 1024,
  closeOnBackpressureLimit: false,
  idleTimeout: 2 * HEARTBEAT_INTERVAL,
  sendPingsAutomatically: true,

  upgrade: (res, req, context) => {
    let clientId;
    try {
      clientId = decodeURIComponent(req.getParameter(0));
    } catch {
      res.writeStatus('400 Bad Request').end();
      return;
    }
    if (JWT_SECRET) {
      const token = new URLSearchParams(req.getQuery() || '').get('token') || '';
      if (!jwtValid(token, clientId)) {
        res.writeStatus('401 Unauthorized').end();
        return;
      }
    }
    res.upgrade(
      { clientId, closed: false },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },

  open: (ws) => {
    const data = ws.getUserData();
    const old = clients.get(data.clientId);
    clients.set(data.clientId, ws);
    if (old) old.end(4000, 'Superseded');
    reply(ws, welcome(data.clientId));
    ws.subscribe('general');
    // The protocol is shared (../common/protocol.mjs); the rooms are µWS topics.
    data.peer = {
      reply: (message) => reply(ws, message),
      join: (room) => {
        if (typeof room === 'string') ws.subscribe(room);
      },
      leave: (room) => {
        if (typeof room === 'string') ws.unsubscribe(room);
      },
      publish: (room, content) => {
        if (typeof room === 'string') {
          ws.publish(room, JSON.stringify(chatMessage(room, data.clientId, content)), false);
        }
      },
    };
  },

  message: (ws, raw) => serveText(decoder.decode(raw), ws.getUserData().peer),

  close: (ws) => {
    const data = ws.getUserData();
    data.closed = true;
    if (clients.get(data.clientId) === ws) {
      clients.delete(data.clientId);
      app.publish('general', JSON.stringify({ type: 'user_left', client_id: data.clientId }), false);
    }
  },
});

app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});

app.listen(HOST, PORT, (token) => {
  if (!token) {
    console.error(`uws peer could not listen on ${HOST}:${PORT}`);
    process.exit(2);
  }
  console.log(`uws peer listening on ws://${HOST}:${PORT}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
