// Node.js peer for `scripts/bench-compare`: roomcast's /ws/{client_id} JSON protocol with
// the `ws` package, written the way a Node user would: rooms as Map<string, Set<ws>>, one
// JSON.stringify per broadcast, then ws.send(str) to every other member. Nothing tuned: no
// auth, no rate limit, no history, no heartbeat loop, `ws` defaults otherwise.
//
// Usage: node server.mjs [PORT]   (or PORT=…; HOST defaults to 127.0.0.1)

import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.argv[2] || process.env.PORT || 8080);
const HEARTBEAT_INTERVAL = 30;

/** room name -> sockets in it */
const rooms = new Map();
/** client id -> its socket (one session per client id) */
const clients = new Map();

function join(ws, room) {
  let members = rooms.get(room);
  if (!members) {
    members = new Set();
    rooms.set(room, members);
  }
  members.add(ws);
  ws.rooms.add(room);
}

function leave(ws, room) {
  const members = rooms.get(room);
  if (members) {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  }
  ws.rooms.delete(room);
}

function broadcast(room, message, except) {
  const members = rooms.get(room);
  if (!members) return;
  const data = JSON.stringify(message);
  for (const client of members) {
    if (client !== except && client.readyState === WebSocket.OPEN) client.send(data);
  }
}

function reply(ws, message) {
  ws.send(JSON.stringify(message));
}

function error(ws, code, message, id) {
  const e = { type: 'error', code, message };
  if (id !== undefined) e.id = id;
  reply(ws, e);
}

function ack(ws, id) {
  if (id !== undefined) reply(ws, { type: 'ack', id });
}

const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});
const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const m = /^\/ws\/([^/?#]+)(?:[?#].*)?$/.exec(req.url);
  if (!m) {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  const clientId = decodeURIComponent(m[1]);
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, clientId));
});

function onConnection(ws, clientId) {
  ws.clientId = clientId;
  ws.rooms = new Set();

  const old = clients.get(clientId);
  if (old) old.close(4000, 'Superseded');
  clients.set(clientId, ws);

  reply(ws, {
    type: 'welcome',
    client_id: clientId,
    heartbeat_interval: HEARTBEAT_INTERVAL,
    server_time: new Date().toISOString(),
  });
  join(ws, 'general');

  ws.on('message', (raw, isBinary) => {
    let data;
    try {
      data = JSON.parse(isBinary ? raw : raw.toString());
    } catch {
      error(ws, 'INVALID_JSON', 'the frame is not valid JSON');
      return;
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      error(ws, 'INVALID_MESSAGE', 'expected a JSON object');
      return;
    }
    const id = data.id;
    switch (data.type) {
      case 'subscribe':
        join(ws, data.room);
        ack(ws, id);
        break;
      case 'unsubscribe':
        leave(ws, data.room);
        ack(ws, id);
        break;
      case 'message':
        broadcast(
          data.room,
          {
            type: 'message',
            room: data.room,
            from: clientId,
            content: data.content,
            timestamp: new Date().toISOString(),
          },
          ws,
        );
        ack(ws, id);
        break;
      case 'ping':
        reply(ws, id === undefined ? { type: 'pong' } : { type: 'pong', id });
        break;
      case 'pong':
        break;
      default:
        error(ws, 'UNKNOWN_TYPE', `unknown message type ${JSON.stringify(data.type)}`, id);
    }
  });

  ws.on('close', () => {
    for (const room of ws.rooms) leave(ws, room);
    if (clients.get(clientId) === ws) {
      clients.delete(clientId);
      broadcast('general', { type: 'user_left', client_id: clientId });
    }
  });
  ws.on('error', () => {});
}

server.listen(PORT, HOST, () => {
  console.log(`node-ws peer listening on ws://${HOST}:${PORT}`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
