// The browser chat: subscribe to a room, show its messages (live and replayed after a
// reconnect), publish from the form. Settings come from the query string.
import { RoomcastClient } from "@roomcast/client";

const q = new URLSearchParams(location.search);
const server = q.get("server") ?? `ws://${location.hostname}:8080`;
const room = q.get("room") ?? "lobby";
const name = q.get("name") ?? `guest-${Math.floor(Math.random() * 1e6)}`;
const $ = (id) => document.getElementById(id);
$("room").textContent = `#${room} as ${name}`;

function show(from, text) {
  const li = document.createElement("li");
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = from;
  li.append(who, document.createTextNode(text));
  $("log").append(li);
}

const client = new RoomcastClient(server, { clientId: name });
client.on("state", (s) => ($("status").textContent = s.state));
client.on("recovery_failed", () => show("roomcast", "(some messages could not be recovered)"));
client.subscribe(room, (ev) => show(ev.from ?? ev.type, ev.content?.text ?? JSON.stringify(ev.content ?? ev.data)));

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  $("text").value = "";
  try {
    await client.publish(room, { text });
    show(`${name} (me)`, text);
  } catch (err) {
    show("error", err.message);
  }
});
window.roomcastClient = client; // for the console (and the e2e test)
