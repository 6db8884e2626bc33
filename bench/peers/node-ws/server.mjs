// Node.js peer for `scripts/bench-compare`: roomcast's /ws/{client_id} JSON protocol with
// the `ws` package, written the way a Node user would: rooms as Map<string, Set<ws>>, one
// JSON.stringify per broadcast, then ws.send(str) to every other member. Nothing tuned: no
// auth, no rate limit, no history, no heartbeat loop, `ws` defaults otherwise.
//
// Usage: node server.mjs [PORT]   (or PORT=…; HOST defaults to 127.0.0.1)

import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';
import { chatMessage, serveText, welcome } from '../common/protocol.mjs';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.argv[2] || process.env.PORT || 8080);

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

  reply(ws, welcome(clientId));
  join(ws, 'general');

  // The protocol is shared (../common/protocol.mjs); the rooms are this peer's own.
  const peer = {
    reply: (message) => reply(ws, message),
    join: (room) => join(ws, room),
    leave: (room) => leave(ws, room),
    publish: (room, content) => broadcast(room, chatMessage(room, clientId, content), ws),
  };
  ws.on('message', (raw, isBinary) => serveText(isBinary ? raw : raw.toString(), peer));

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
