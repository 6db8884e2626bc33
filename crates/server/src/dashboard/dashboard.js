// roomcast dashboard: reads the stats stream (api/admin/stream), derives per-second rates
// from consecutive counters, and draws the figures, four small canvas charts and the top
// rooms table, and the trading arena's markets (book, last trades) and equity. No libraries; the admin key comes from this page's ?key= and goes only to
// the stream URL.
"use strict";

(() => {
  const HISTORY = 120; // samples per chart (two minutes at one per second)
  const MAX_BACKOFF_MS = 10000;

  const key = new URLSearchParams(window.location.search).get("key");
  const $ = (id) => document.getElementById(id);

  // Series: bounded arrays of numbers, oldest first.
  const series = {
    connections: [],
    messagesIn: [],
    messagesOut: [],
    deliveries: [],
  };
  const push = (arr, v) => {
    arr.push(v);
    if (arr.length > HISTORY) arr.shift();
  };

  let previous = null; // {timeMs, stats, rooms: Map(room -> [epoch, sequence])}
  let backoff = 1000;
  let everConnected = false;

  function streamUrl() {
    const url = new URL("api/admin/stream", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = "";
    if (key) url.searchParams.set("key", key);
    return url.toString();
  }

  function setStatus(text, cls) {
    const el = $("status");
    el.textContent = text;
    el.className = "status " + cls;
  }

  const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en-US", { maximumFractionDigits: 1 });
  const fmt = (v) => (v === null || v === undefined ? "–" : integer.format(v));
  const fmtRate = (v) => (v === null || v === undefined ? "–" : decimal.format(v));

  function rate(before, now, secs) {
    if (typeof before !== "number" || typeof now !== "number" || secs <= 0) return null;
    if (now < before) return null; // the server restarted
    return (now - before) / secs;
  }

  function uptime(secs) {
    if (typeof secs !== "number") return "";
    const d = Math.floor(secs / 86400);
    const h = Math.floor(secs / 3600) % 24;
    const m = Math.floor(secs / 60) % 60;
    const s = secs % 60;
    const parts = d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${s}s`;
    return "up " + parts;
  }

  function onStats(msg) {
    const s = msg.stats || {};
    const secs = previous ? (msg.time_ms - previous.timeMs) / 1000 : 0;
    const prev = previous ? previous.stats : {};
    const inRate = previous ? rate(prev.messages_in, s.messages_in, secs) : null;
    const outRate = previous ? rate(prev.messages_out, s.messages_out, secs) : null;
    const pubRate = previous ? rate(prev.publishes, s.publishes, secs) : null;
    const deliveryRate = previous ? rate(prev.deliveries, s.deliveries, secs) : null;

    $("connections").textContent = fmt(s.connections);
    $("rooms").textContent = fmt(s.rooms);
    $("subscriptions").textContent = fmt(s.subscriptions);
    $("messages-in-rate").textContent = fmtRate(inRate);
    $("messages-out-rate").textContent = fmtRate(outRate);
    $("publishes-rate").textContent = fmtRate(pubRate);
    $("deliveries-rate").textContent = fmtRate(deliveryRate);
    $("slow-consumers").textContent = fmt(s.slow_consumers);
    $("evicted").textContent = fmt(s.evicted);
    $("dropped-oldest").textContent = fmt(s.dropped_oldest);
    optionalCounter("rate-limited", s.rate_limited ?? s.rate_limit_hits);
    optionalCounter("auth-failures", s.auth_failures);
    $("connections-total").textContent = fmt(s.connections_total);
    $("uptime").textContent = uptime(s.uptime_secs);

    push(series.connections, s.connections || 0);
    if (previous) {
      push(series.messagesIn, inRate || 0);
      push(series.messagesOut, outRate || 0);
      push(series.deliveries, deliveryRate || 0);
    }
    drawChart($("chart-connections"), series.connections, "#4fb3ff");
    drawChart($("chart-messages-in"), series.messagesIn, "#3fb950");
    drawChart($("chart-messages-out"), series.messagesOut, "#d29922");
    drawChart($("chart-deliveries"), series.deliveries, "#bc8cff");

    const rooms = Array.isArray(msg.rooms) ? msg.rooms : [];
    renderRooms(rooms, secs);
    renderArena(msg.arena);

    previous = {
      timeMs: msg.time_ms,
      stats: s,
      rooms: new Map(rooms.map((r) => [r.room, [r.epoch, r.sequence]])),
    };
  }

  // A counter the server may not report: a number, or an object of numbers (by code) that
  // is summed. Its card is shown once the server reports it.
  function optionalCounter(id, value) {
    let total = null;
    if (typeof value === "number") total = value;
    else if (value && typeof value === "object") {
      total = Object.values(value).reduce((a, v) => a + (typeof v === "number" ? v : 0), 0);
    }
    if (total === null) return;
    const el = $(id);
    el.textContent = fmt(total);
    el.parentElement.hidden = false;
  }

  function renderRooms(rooms, secs) {
    const body = $("top-rooms").tBodies[0];
    const rows = rooms.map((r) => {
      const tr = document.createElement("tr");
      let eventsRate = null;
      const before = previous && previous.rooms.get(r.room);
      if (before && before[0] === r.epoch) eventsRate = rate(before[1], r.sequence, secs);
      const cells = [
        [r.room, ""],
        [fmt(r.members), "num"],
        [fmt(r.sequence), "num"],
        [fmtRate(eventsRate), "num"],
      ];
      for (const [text, cls] of cells) {
        const td = document.createElement("td");
        td.textContent = text; // never innerHTML: room names come from clients
        if (cls) td.className = cls;
        tr.appendChild(td);
      }
      return tr;
    });
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = 4;
      td.textContent = "no rooms";
      tr.appendChild(td);
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  // An element with text content (never innerHTML: symbols and ids come from config and
  // clients) and an optional class.
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const [text, cls] of cells) tr.appendChild(el("td", text ?? "–", cls));
    return tr;
  }

  function table(cls, headers, rows, emptyText) {
    const t = el("table", null, cls);
    const head = document.createElement("tr");
    for (const [text, c] of headers) head.appendChild(el("th", text, c));
    t.createTHead().appendChild(head);
    const body = t.createTBody();
    if (rows.length === 0) {
      const tr = row([[emptyText, ""]]);
      tr.className = "empty";
      tr.firstChild.colSpan = headers.length;
      body.appendChild(tr);
    } else {
      body.append(...rows);
    }
    return t;
  }

  // The arena panel: prices are decimal strings from the server and are shown as sent.
  function renderArena(arena) {
    const status = $("arena-status");
    const cards = $("arena-markets");
    if (!arena || arena.running !== true) {
      status.textContent = "trading arena not running";
      status.hidden = false;
      cards.replaceChildren();
      $("arena-equity-block").hidden = true;
      return;
    }
    status.textContent = `${fmt(arena.orders_accepted)} orders accepted · ${fmt(arena.trades)} trades · ${fmt(arena.accounts)} accounts`;
    const markets = Array.isArray(arena.markets) ? arena.markets : [];
    cards.replaceChildren(
      ...markets.map((m) => {
        const card = el("div", null, "market");
        card.dataset.symbol = m.symbol;
        card.appendChild(el("h3", m.symbol));
        card.appendChild(
          el(
            "p",
            `last ${m.last_price ?? "–"} · bid ${m.best_bid ?? "–"} · ask ${m.best_ask ?? "–"} · volume ${m.volume ?? "0"}`,
            "ticker",
          ),
        );
        const asks = (m.asks || []).slice().reverse();
        const bids = m.bids || [];
        const levels = [
          ...asks.map((l) => Object.assign(row([["ask", "side ask"], [l.price, "num"], [l.quantity, "num"]]), { className: "level ask" })),
          ...bids.map((l) => Object.assign(row([["bid", "side bid"], [l.price, "num"], [l.quantity, "num"]]), { className: "level bid" })),
        ];
        card.appendChild(table("book", [["book", ""], ["price", "num"], ["quantity", "num"]], levels, "empty book"));
        const trades = (m.trades || []).map((t) =>
          Object.assign(
            row([
              [new Date(t.timestamp_ms).toLocaleTimeString(), ""],
              [t.taker_side, "side " + t.taker_side],
              [t.price, "num"],
              [t.quantity, "num"],
            ]),
            { className: "trade" },
          ),
        );
        card.appendChild(
          table("trades", [["time", ""], ["taker", ""], ["price", "num"], ["quantity", "num"]], trades, "no trades yet"),
        );
        return card;
      }),
    );
    const equity = Array.isArray(arena.equity) ? arena.equity : [];
    $("arena-equity-block").hidden = equity.length === 0;
    $("arena-equity").tBodies[0].replaceChildren(
      ...equity.map((e) =>
        row([
          [e.collective_id, ""],
          [(e.equity || []).map((q) => `${q.equity} ${q.currency}`).join(", "), "num"],
        ]),
      ),
    );
  }

  // A line chart with a filled area, scaled to its maximum; the maximum is written in the
  // top-left corner. Sized in device pixels so it stays sharp.
  function drawChart(canvas, values, color) {
    const ratio = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    const max = Math.max(1, ...values);
    const pad = 4 * ratio;
    const x = (i) => pad + (i * (w - 2 * pad)) / (HISTORY - 1);
    const y = (v) => h - pad - (v / max) * (h - 2 * pad - 14 * ratio);

    ctx.strokeStyle = "#2a3541";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad, h - pad + 0.5);
    ctx.lineTo(w - pad, h - pad + 0.5);
    ctx.stroke();

    if (values.length > 0) {
      const start = HISTORY - values.length;
      ctx.beginPath();
      values.forEach((v, i) => {
        const px = x(start + i);
        const py = y(v);
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      });
      ctx.strokeStyle = color;
      ctx.lineWidth = 2 * ratio;
      ctx.stroke();
      ctx.lineTo(x(start + values.length - 1), h - pad);
      ctx.lineTo(x(start), h - pad);
      ctx.closePath();
      ctx.globalAlpha = 0.15;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
    }

    ctx.fillStyle = "#8b98a5";
    ctx.font = `${11 * ratio}px system-ui, sans-serif`;
    ctx.textBaseline = "top";
    ctx.fillText("max " + decimal.format(max), pad, pad);
  }

  function connect() {
    setStatus(everConnected ? "reconnecting…" : "connecting…", "connecting");
    let gotMessage = false;
    let socket;
    try {
      socket = new WebSocket(streamUrl());
    } catch (e) {
      setStatus("cannot open the stream: " + e.message, "down");
      return;
    }
    socket.addEventListener("message", (event) => {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      if (msg.type !== "stats") return;
      if (!gotMessage) {
        gotMessage = true;
        everConnected = true;
        backoff = 1000;
        setStatus("live", "live");
      }
      onStats(msg);
    });
    socket.addEventListener("close", () => {
      const wait = backoff;
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      const why = gotMessage ? "disconnected" : "cannot connect (check the key)";
      setStatus(`${why}, retrying in ${Math.round(wait / 1000)} s`, "down");
      window.setTimeout(connect, wait);
    });
  }

  connect();
})();
