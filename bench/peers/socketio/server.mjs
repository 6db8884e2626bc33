// Socket.IO 4 peer for `scripts/bench-compare`: the roomcast JSON protocol carried inside
// Socket.IO, written the way Socket.IO's docs show it: rooms are Socket.IO rooms
// (`socket.join(room)`), a publish is one `socket.to(room).emit(...)` (the default
// in-memory adapter encodes the packet once and writes it to every member but the sender),
// heartbeats are Engine.IO's (ping every 25 s). WebSocket transport only (no long-polling
// fallback, as a benchmark client would connect), no compression, no auth, no rate limit,
// no history, like the other peers.
//
// The protocol differs from the other peers only in Socket.IO's own framing, which is the
// point of measuring it: clients connect at /socket.io/?EIO=4&transport=websocket&client_id=…,
// complete Engine.IO's open and the namespace connect, and every message travels as the
// single argument of an event named `m` (`42["m",{…}]`); `roomcast bench` speaks this when
// its URL ends in /socket.io (crates/bench/src/socketio.rs). Socket.IO parses the JSON
// itself and closes the connection on a malformed packet, so INVALID_JSON cannot be
// answered and bench/peers/check_protocol.py does not apply.
//
// Usage: node server.mjs [PORT]   (or PORT=…; HOST defaults to 127.0.0.1)

import http from 'node:http';
import { Server } from 'socket.io';
import { serve, chatMessage, welcome } from '../common/protocol.mjs';

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.argv[2] || process.env.PORT || 8080);

/** client id -> its socket (one session per client id) */
const clients = new Map();

const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});
const io = new Server(server, {
  transports: ['websocket'],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 1e6,
});

function reply(socket, message) {
  socket.emit('m', message);
}

io.on('connection', (socket) => {
  const clientId = String(socket.handshake.query.client_id || socket.id);
  const old = clients.get(clientId);
  clients.set(clientId, socket);
  if (old) old.disconnect(true);
  reply(socket, welcome(clientId));
  socket.join('general');

  // The protocol is shared (../common/protocol.mjs); the rooms are Socket.IO rooms.
  const peer = {
    reply: (message) => reply(socket, message),
    join: (room) => {
      if (typeof room === 'string') socket.join(room);
    },
    leave: (room) => {
      if (typeof room === 'string') socket.leave(room);
    },
    publish: (room, content) => {
      if (typeof room === 'string') socket.to(room).emit('m', chatMessage(room, clientId, content));
    },
  };
  socket.on('m', (data) => serve(data, peer));

  socket.on('disconnect', () => {
    if (clients.get(clientId) === socket) {
      clients.delete(clientId);
      io.to('general').emit('m', { type: 'user_left', client_id: clientId });
    }
  });
});

server.listen(PORT, HOST, () => {
  console.log(`socket.io peer listening on http://${HOST}:${PORT}/socket.io/`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => process.exit(0));
}
