// roomcast's client protocol as the Node peers of `scripts/bench-compare` speak it (node-ws,
// uws, socketio): the welcome, the dispatch of a client's message (subscribe, unsubscribe,
// message, ping, pong) and the ack, pong and error replies. One copy, so the peers answer
// alike and each peer's own file holds only what is being compared: how it accepts sockets
// and how its rooms fan a message out. No dependencies: each peer resolves its own packages.

export const HEARTBEAT_INTERVAL = 30;

/** The first frame of a session. */
export function welcome(clientId) {
  return {
    type: 'welcome',
    client_id: clientId,
    heartbeat_interval: HEARTBEAT_INTERVAL,
    server_time: new Date().toISOString(),
  };
}

/** The `message` event a publish fans out to a room. */
export function chatMessage(room, from, content) {
  return { type: 'message', room, from, content, timestamp: new Date().toISOString() };
}

function error(peer, code, message, id) {
  const e = { type: 'error', code, message };
  if (id !== undefined) e.id = id;
  peer.reply(e);
}

function ack(peer, id) {
  if (id !== undefined) peer.reply({ type: 'ack', id });
}

/**
 * Serves one text frame: INVALID_JSON if it does not parse, else as `serve`.
 */
export function serveText(text, peer) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    error(peer, 'INVALID_JSON', 'the frame is not valid JSON');
    return;
  }
  serve(data, peer);
}

/**
 * Serves one parsed client message for the connection `peer`, which is the peer's own
 * server logic: `reply(message)` sends to this client; `join(room)`, `leave(room)` and
 * `publish(room, content)` (to the room's other members) get the request's `room` as sent
 * and check it as that peer does.
 */
export function serve(data, peer) {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) {
    error(peer, 'INVALID_MESSAGE', 'expected a JSON object');
    return;
  }
  const id = data.id;
  switch (data.type) {
    case 'subscribe':
      peer.join(data.room);
      ack(peer, id);
      break;
    case 'unsubscribe':
      peer.leave(data.room);
      ack(peer, id);
      break;
    case 'message':
      peer.publish(data.room, data.content);
      ack(peer, id);
      break;
    case 'ping':
      peer.reply(id === undefined ? { type: 'pong' } : { type: 'pong', id });
      break;
    case 'pong':
      break;
    default:
      error(peer, 'UNKNOWN_TYPE', `unknown message type ${JSON.stringify(data.type)}`, id);
  }
}
