"""Builds the markdown tables of a `scripts/bench-compare` run from its results folder:
the comparison of every row, then "Targets (roomcast only)" (target | measured | wanted |
met, met computed from the JSON reports of the comparison and the roomcast-only runs).

Usage: python3 table.py bench-results/<timestamp>  > table.md

Reads meta.txt and <row>/<scenario>.json|.status written by the script; standard library
only. Every figure comes from the `roomcast bench` JSON reports; ratios are this server's
figure divided by the `roomcast` row's (pinned, limits off, history in memory).
"""

import json
import os
import sys

ROWS = [
    ("roomcast", "roomcast"),
    ("roomcast-limits", "roomcast +limits"),
    ("roomcast-durable", "roomcast +durable"),
    ("roomcast-unpinned", "roomcast unpinned"),
    ("fastapi", "FastAPI (seed)"),
    ("node-ws", "Node ws"),
    ("py-websockets", "py websockets"),
    ("uws", "uWS.js"),
    ("socketio", "Socket.IO"),
]
PEER16 = "uws"  # issue 16's reference peer
REF = "roomcast"
GEN_BOUND = 90.0  # generator CPU, % of a core, from which a figure may be the generator's


def decimals(x, steps, rest):
    """The places of the first (bound, places) step that `x` reaches, else `rest`."""
    return next((places for bound, places in steps if x >= bound), rest)


def si(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e3:
        return f"{v / 1e3:.{decimals(a, [(1e4, 1)], 2)}f}k"
    return f"{v:.{decimals(a, [(100, 0)], 1)}f}"


def count(n):
    if not isinstance(n, (int, float)):
        return "?"
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else str(n)


def ms(us):
    if us is None:
        return "–"
    v = us / 1000.0
    return f"{v:.{decimals(v, [(100, 0), (10, 1)], 2)}f}"


def kib(b):
    return "–" if b is None else f"{b / 1024:.1f}"


def pct(v):
    return "–" if v is None else f"{v:.0f}"


def ratio(v, ref, places=2):
    if v is None or not ref:
        return ""
    r = v / ref
    return f" ({r:.{decimals(r, [(100, 0), (10, 1), (0.1, places)], 3)}f}×)"


def load(out, row, sc):
    """(report or None, status text)."""
    base = os.path.join(out, row, sc)
    status = None
    if os.path.exists(base + ".status"):
        with open(base + ".status") as f:
            status = f.read().strip()
    if status is None:
        return None, None  # not run
    report = None
    if os.path.exists(base + ".json"):
        try:
            with open(base + ".json") as f:
                report = json.load(f)
        except ValueError:
            report = None
    return report, status


def report_or_cell(out, t, row, sc):
    """(report, None) or (None, measured cell saying why there is no report)."""
    r, st = load(out, row, sc)
    if r is not None:
        return r, None
    if st is None:
        return None, "–"  # not run in this mode or selection
    reason = st[4:].strip() if st.startswith("n/a:") else st
    return None, t.note(f"{row}, {sc}: {reason}")


def shortfall(counts):
    """Of (count, text) pairs, text a function (called only for a nonzero count): " (text,
    text)" for the nonzero counts (or ""), and whether every count was zero."""
    extra = [text() for n, text in counts if n]
    return ("" if not extra else " (" + ", ".join(extra) + ")"), not extra


def server_cpu_percent(r):
    s, m = r.get("server_cpu_seconds"), r.get("measured_seconds")
    if s is None or not m:
        return None
    return 100.0 * s / m


class Table:
    def __init__(self, out):
        self.out = out
        self.rows = [(k, label) for k, label in ROWS if os.path.isdir(os.path.join(out, k))]
        self.lines = []
        self.notes = []  # footnotes for n/a cells
        self.gen_flag = False

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)
        return f"n/a[^{self.notes.index(text) + 1}]"

    def header(self):
        cols = ["scenario", "metric"] + [label for _, label in self.rows]
        self.lines.append("| " + " | ".join(cols) + " |")
        self.lines.append("|" + "---|" * len(cols))

    def section(self, sc, title, metrics):
        """metrics: list of (name, fn(report, ref_report) -> str)."""
        data = {k: load(self.out, k, sc) for k, _ in self.rows}
        if all(st is None for _, st in data.values()):
            return
        ref = data.get(REF, (None, None))[0]
        if callable(title):
            any_report = next((r for r, _ in data.values() if r is not None), None)
            title = title(any_report.get("parameters", {}) if any_report else {})
        first = True
        for name, fn in metrics:
            cells = []
            for k, _ in self.rows:
                report, status = data[k]
                if status is None:
                    cells.append("–")
                elif report is None:
                    reason = status[4:].strip() if status.startswith("n/a:") else status
                    cells.append(self.note(f"{k}, {sc}: {reason}"))
                else:
                    cell = fn(report, ref if k != REF else None)
                    if status != "ok" and first:
                        cell += " " + self.note(f"{k}, {sc}: {status}").replace("n/a", "")
                    cells.append(cell)
            self.lines.append(
                "| " + " | ".join([f"**{title}**" if first else "", name] + cells) + " |"
            )
            first = False

    def cpu(self, r, _ref):
        g = r.get("generator_cpu_percent")
        flag = ""
        if g is not None and g >= GEN_BOUND:
            flag = " ⚠"
            self.gen_flag = True
        return f"{pct(server_cpu_percent(r))} / {pct(g)}{flag}"


def lat(r, key, *qs):
    h = r.get(key) or {}
    if not h.get("count"):
        return "no samples"
    return " / ".join(ms(h.get(q)) for q in qs)


def losses(r):
    cell = f'{r["lost"]} / {r["duplicated"]} / {r["reordered"]}'
    if r["lost"]:
        cell += f' of {si(r["expected"])}'
    if r.get("drain_complete") is False:
        cell += f' (drain cut at {r.get("drain_seconds", 0):.0f} s)'
    if r.get("subscribers_failed"):
        cell += f', {r["subscribers_failed"]} subscribers failed'
    if r.get("subscribers_disconnected"):
        cell += f', {r["subscribers_disconnected"]} disconnected'
    return cell


def per(r, per_sec_key):
    """Server CPU microseconds per event (robust to CPU stolen by other processes)."""
    cpu, secs, rate = r.get("server_cpu_seconds"), r.get("measured_seconds"), r.get(per_sec_key)
    if cpu is None or not secs or not rate:
        return None
    return cpu * 1e6 / (rate * secs)


def us(v):
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else (f"{v:.1f}" if v >= 10 else f"{v:.2f}")


def cost_metric(name, key):
    return (name, lambda r, ref: us(per(r, key)) + (ratio(per(r, key), per(ref, key)) if ref else ""))


def fanout_metrics(t):
    return [
        ("deliveries/s", lambda r, ref: si(r["deliveries_per_sec"])
         + (ratio(r["deliveries_per_sec"], ref["deliveries_per_sec"]) if ref else "")),
        ("lost / dup / reordered", lambda r, _: losses(r)),
        ("latency p50 / p99 ms", lambda r, _: lat(r, "latency_us", "p50", "p99")),
        ("CPU % server / generator", t.cpu),
        cost_metric("server CPU µs per delivery", "deliveries_per_sec"),
    ]


def build(out):
    t = Table(out)
    meta = []
    if os.path.exists(os.path.join(out, "meta.txt")):
        with open(os.path.join(out, "meta.txt")) as f:
            meta = [line.rstrip("\n") for line in f if line.strip()]
    md = ["# roomcast vs peers", ""]
    md += [f"- {line}" for line in meta]
    md.append("")
    t.header()
    t.section("fanout-1k", lambda p: f'fan-out, 1 pub → {count(p.get("subscribers"))} subs, 1 room, max rate', fanout_metrics(t))
    t.section("fanout-10k", lambda p: f'fan-out, 1 pub → {count(p.get("subscribers"))} subs, 1 room, max rate', fanout_metrics(t))
    t.section("latency", lambda p: f'light load, {count(p.get("subscribers"))} subs at {p.get("rate", "?"):g} pub/s', [
        ("latency p50 / p99 / p99.9 ms", lambda r, ref: lat(r, "latency_us", "p50", "p99", "p99.9")
         + (ratio(r["latency_us"]["p99"], ref["latency_us"]["p99"], 1)
            if ref and r["latency_us"].get("count") else "")),
        ("lost / dup / reordered", lambda r, _: losses(r)),
        ("CPU % server / generator", t.cpu),
    ])
    t.section("idle", lambda p: f'{count(p.get("connections"))} idle connections (opened at max rate)', [
        ("connected / failed", lambda r, _: f'{r["connected"]} / {r["failed"]}'),
        ("RSS per connection KiB", lambda r, ref: kib(r.get("rss_per_connection_bytes"))
         + (ratio(r.get("rss_per_connection_bytes"), ref.get("rss_per_connection_bytes")) if ref else "")),
        ("server RSS MiB before → open", lambda r, _: (
            f'{r["server_rss_before_bytes"] / 2**20:.0f} → {r["server_rss_open_bytes"] / 2**20:.0f}'
            if r.get("server_rss_before_bytes") is not None and r.get("server_rss_open_bytes") is not None else "–")),
        ("server CPU % while idle", lambda r, _: pct(r.get("server_cpu_percent_hold"))),
        ("handshakes/s", lambda r, ref: si(r["handshakes_per_sec"])
         + (ratio(r["handshakes_per_sec"], ref["handshakes_per_sec"]) if ref else "")),
        ("handshake p50 / p99 ms", lambda r, _: lat(r, "handshake_latency_us", "p50", "p99")),
        ("CPU % server / generator", t.cpu),
        cost_metric("server CPU µs per handshake", "handshakes_per_sec"),
    ])
    t.section("echo", lambda p: f'echo, {count(p.get("connections"))} conns, 1 ping in flight each', [
        ("round trips/s", lambda r, ref: si(r["round_trips_per_sec"])
         + (ratio(r["round_trips_per_sec"], ref["round_trips_per_sec"]) if ref else "")),
        ("latency p50 / p99 ms", lambda r, _: lat(r, "latency_us", "p50", "p99")),
        ("lost", lambda r, _: str(r["lost"])),
        ("CPU % server / generator", t.cpu),
        cost_metric("server CPU µs per round trip", "round_trips_per_sec"),
    ])
    t.section("light-200", lambda p: f'light load, {count(p.get("subscribers"))} subs at {p.get("rate", "?"):g} pub/s', [
        ("latency p50 / p99 / p99.9 ms", lambda r, _: lat(r, "latency_us", "p50", "p99", "p99.9")),
        ("lost / dup / reordered", lambda r, _: losses(r)),
        ("CPU % server / generator", t.cpu),
        cost_metric("server CPU µs per delivery", "deliveries_per_sec"),
    ])
    t.section("rooms-100", lambda p: f'{count(p.get("rooms"))} rooms × {count((p.get("subscribers") or 0) // max(p.get("rooms") or 1, 1))} subs, {p.get("publishers", "?")} pubs at {p.get("rate", "?"):g} pub/s in total', fanout_metrics(t) + [
        ("latency p99.9 ms", lambda r, _: lat(r, "latency_us", "p99.9")),
    ])
    if len(t.lines) > 2:
        md += t.lines
        md.append("")
        md += comparison_legend(t)
    else:
        md.append("(no comparison scenario in this run)")
    tmd = targets(out, t, run_mode(meta) == "quick")
    if tmd:
        md.append("")
        md += tmd
    umd = issue16(out, t, run_mode(meta) == "quick")
    if umd:
        md.append("")
        md += umd
    if t.notes:
        md.append("")
        for i, n in enumerate(t.notes, 1):
            md.append(f"[^{i}]: {n}")
    return "\n".join(md) + "\n"


def comparison_legend(t):
    md = []
    md.append("(n×) = this server's figure ÷ roomcast's (first column: pinned to CPU 1, limits "
              "off, history in memory). Higher is better for rates, lower for latency and "
              "memory. Server CPU is its process over the measured time, generator CPU the "
              "load generator's, both in % of one core. Server CPU µs per event is the "
              "server's CPU time over the measured time divided by the events in it: it "
              "holds up better than rates when other processes take CPU from the pinned "
              "server.")
    md.append("– = not run (this mode or --servers/--scenarios left it out).")
    if t.gen_flag:
        md.append("⚠ the load generator used ≥ 90% of its core: that figure may be the "
                  "generator's limit rather than the server's.")
    return md


def run_mode(meta):
    for line in meta:
        if line.startswith("mode:"):
            return line.split(":", 1)[1].strip()
    return None


def targets(out, t, quick):
    """The performance targets, from roomcast-only runs (plus the comparison's rows):
    target | measured | wanted | met, met computed from the JSON reports."""
    if not any(os.path.isdir(os.path.join(out, k)) for k in (REF, "roomcast-unpinned")):
        return []
    rows = []
    gen_bound = []

    def run(row, sc):
        return report_or_cell(out, t, row, sc)

    def add(what, measured, wanted, ok):
        met = "n/a" if ok is None else ("yes" if ok else "**no**")
        rows.append(f"| {what} | {measured} | {wanted} | {met} |")

    def target(row, sc, label, wanted, fn):
        """fn(report) -> (measured text, met bool); label(parameters or {}) -> text."""
        r, missing = run(row, sc)
        what = label((r or {}).get("parameters") or {})
        if r is None:
            add(what, missing, wanted, None)
            return
        try:
            measured, ok = fn(r)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            add(what, "?", wanted, None)
            return
        g = r.get("generator_cpu_percent")
        if g is not None and g >= GEN_BOUND:
            measured += " ⚠"
            gen_bound.append(what)
        add(what, measured, wanted, ok)

    def p(params, key, default):
        v = params.get(key, default)
        return default if v is None else v

    def rate_text(v):
        return v if isinstance(v, str) else f"{v:,.0f}" if v >= 1000 else f"{v:g}"

    def where(row):
        return " (unpinned)" if row != REF else " (pinned)"

    def fanout_complete(r):
        """Text about owed deliveries that did not arrive, and whether there were none."""
        text, none = shortfall([
            (r["lost"], lambda: f'{r["lost"]} lost of {si(r["expected"])}'),
            (r.get("subscribers_failed"), lambda: f'{r["subscribers_failed"]} subs failed'),
            (r.get("subscribers_disconnected"),
             lambda: f'{r["subscribers_disconnected"]} disconnected'),
        ])
        return text, none and r["latency_us"].get("count", 0) > 0

    def latency_target(row, sc, q, limit_ms, nominal_subs, nominal_rate, suffix=""):
        def fn(r):
            extra, complete = fanout_complete(r)
            v = r["latency_us"][q]
            return f"{ms(v)} ms{extra}", complete and v <= limit_ms * 1000

        target(row, sc,
               lambda pr: f'latency, {count(p(pr, "subscribers", nominal_subs))} subs at '
                          f'{rate_text(p(pr, "rate", nominal_rate))} pub/s: {q}{suffix}',
               f"≤ {limit_ms:g} ms", fn)

    def connect_complete(r):
        text, none = shortfall([
            (r["failed"], lambda: f'{r["failed"]} failed'),
            (r.get("dropped"), lambda: f'{r["dropped"]} dropped'),
        ])
        return text, none and r["connected"] == r["connections"] and r["connected"] > 0

    # Fan-out throughput (comparison runs).
    def fan1k(r):
        return (f'{si(r["deliveries_per_sec"])}/s, {r["lost"]} lost',
                r["deliveries_per_sec"] >= 1e6 and r["lost"] == 0)

    target(REF, "fanout-1k",
           lambda pr: f'fan-out, 1 pub → {count(p(pr, "subscribers", 1000))} subs, max rate: '
                      "deliveries/s with 0 lost",
           "≥ 1M/s, 0 lost", fan1k)
    target(REF, "fanout-10k",
           lambda pr: f'fan-out, 1 pub → {count(p(pr, "subscribers", 10000))} subs, max rate: '
                      "deliveries/s",
           "≥ 700k/s",
           lambda r: (f'{si(r["deliveries_per_sec"])}/s' + fanout_complete(r)[0],
                      r["deliveries_per_sec"] >= 7e5))

    # Latency at light load.
    latency_target(REF, "latency-100", "p99", 2, 100, 20)
    for row in (REF, "roomcast-unpinned"):
        latency_target(row, "latency", "p99", 10, 1000, 20, where(row))
    for row in (REF, "roomcast-unpinned"):
        latency_target(row, "latency-10k", "p50", 50, 10000, 2, where(row))
        latency_target(row, "latency-10k", "p99", 100, 10000, 2, where(row))

    # Echo.
    def echo_half(r):
        asked = r["parameters"]["rate"]
        v = r["latency_us"]["p99"]
        got = r["round_trips_per_sec"]
        extra = f', {r["lost"]} lost' if r["lost"] else ""
        ok = (r["latency_us"].get("count", 0) > 0 and v <= 5000 and r["lost"] == 0
              and got >= 0.95 * asked)
        return f"{ms(v)} ms at {si(got)}/s{extra}", ok

    target(REF, "echo-half",
           lambda pr: f'echo, {count(p(pr, "connections", 1000))} conns at '
                      f'{rate_text(p(pr, "rate", 50000))} pings/s: round-trip p99',
           "≤ 5 ms (at ≥ 95% of the asked rate)", echo_half)
    target(REF, "echo",
           lambda pr: f'echo, {count(p(pr, "connections", 1000))} conns, max rate: round trips/s',
           "≥ 50k/s",
           lambda r: (f'{si(r["round_trips_per_sec"])}/s'
                      + (f', {r["lost"]} lost' if r["lost"] else ""),
                      r["round_trips_per_sec"] >= 5e4))

    # JWT handshakes (server with --jwt-secret, no --dev).
    def jwt_5k(r):
        extra, ok = connect_complete(r)
        v = r["handshake_latency_us"]["p99"]
        return (f'{ms(v)} ms at {si(r["handshakes_per_sec"])}/s{extra}',
                ok and v <= 10_000)

    def jwt_max(r):
        extra, ok = connect_complete(r)
        v = r["handshakes_per_sec"]
        return f"{si(v)}/s{extra}", ok and v >= 8000

    target(REF, "jwt-5k",
           lambda pr: f'JWT (HS256) handshakes, {count(p(pr, "connections", 10000))} conns at '
                      f'{rate_text(p(pr, "rate", 5000))}/s: p99 (TCP connect → subscribe ack)',
           "≤ 10 ms", jwt_5k)
    target(REF, "jwt-max",
           lambda pr: f'JWT (HS256) handshakes, {count(p(pr, "connections", 10000))} conns at '
                      "max rate: handshakes/s",
           "≥ 8k/s", jwt_max)

    # Idle connections with a heartbeat round.
    def idle_label(what):
        def label(pr):
            n = p(pr, "connections", 19500)
            n = f"{n:,}" if isinstance(n, int) else count(n)
            return f'{n} idle subscribed conns held {p(pr, "duration", 35):g} s: {what}'
        return label

    def idle_rss(r):
        extra, ok = connect_complete(r)
        v = r["rss_per_connection_bytes"]
        return f"{kib(v)} KiB ({v:.0f} B){extra}", ok and v <= 2048

    def idle_cpu(r):
        extra, ok = connect_complete(r)
        v = r["server_cpu_percent_hold"]
        return f"{v:.2f}% of a core{extra}", ok and v <= 2.0

    target(REF, "idle-19k", idle_label("server RSS growth per connection"), "≤ 2 KiB", idle_rss)
    target(REF, "idle-19k", idle_label("server CPU while held"), "≤ 2% of a core", idle_cpu)

    # Against the peers (same scenario, same conditions).
    def vs(what, sc, key, peer, peer_label, need, fmt, lower_better=False):
        mine, why_mine = run(REF, sc)
        theirs, why_theirs = run(peer, sc)
        wanted = f"≤ 1/{need:g} of {peer_label}'s" if lower_better else f"≥ {need:g}× {peer_label}"
        a = mine.get(key) if mine else None
        b = theirs.get(key) if theirs else None
        if not a or not b:
            why = [w for w in (why_mine, why_theirs) if w and w != "–"]
            add(what, why[0] if why else "–", wanted, None)
            return
        r = a / b
        add(what, f"{r:.2f}× ({fmt(a)} vs {fmt(b)})", wanted,
            r <= 1 / need if lower_better else r >= need)

    dps = lambda v: f"{si(v)}/s"  # noqa: E731
    vs("fan-out 1k deliveries/s vs Node ws", "fanout-1k", "deliveries_per_sec",
       "node-ws", "Node ws", 5, dps)
    vs("fan-out 1k deliveries/s vs FastAPI", "fanout-1k", "deliveries_per_sec",
       "fastapi", "FastAPI", 20, dps)
    vs("handshakes/s vs Node ws (idle run, no auth on either)", "idle", "handshakes_per_sec",
       "node-ws", "Node ws", 2, dps)
    vs("echo round trips/s vs Node ws", "echo", "round_trips_per_sec",
       "node-ws", "Node ws", 2, dps)
    vs("RSS per idle connection vs Node ws", "idle", "rss_per_connection_bytes",
       "node-ws", "Node ws", 3, lambda v: f"{kib(v)} KiB", lower_better=True)

    title = "## Targets (roomcast only)"
    if quick:
        title += " (quick mode: not the target conditions)"
    md = [title, ""]
    if quick:
        md += ["Quick mode runs fewer connections for shorter times: the figures are a "
               "smoke test, not a check of the targets.", ""]
    md += ["| target | measured | wanted | met |", "|---|---|---|---|"] + rows
    md += ["",
           "met is computed from the JSON reports: latency targets also need every owed "
           "delivery to arrive (no loss, no failed or disconnected subscriber), handshake "
           "and idle targets every connection to open and stay open, echo-half ≥ 95% of the "
           "asked rate with no loss. n/a = the run is missing (– : not run in this mode or "
           "selection; otherwise see the footnote). The jwt-* runs start roomcast with "
           "`--jwt-secret` instead of `--dev` and the generator mints one HS256 token per "
           "connection. Pinned = the roomcast row (server on CPU 1, generator on CPU 0), "
           "unpinned = the roomcast-unpinned row (both share both cores). Outside --quick "
           "the idle-19k hold (35 s) is longer than the server's 30 s heartbeat interval, so "
           "its CPU figure includes one heartbeat round."]
    if gen_bound:
        md.append("⚠ the load generator used ≥ 90% of its core during that run: the figure "
                  "may be the generator's limit rather than the server's.")
    return md


def issue16(out, t, quick):
    """Issue 16's targets: roomcast (pinned row) against uWS.js in the same run, same
    generator, both servers pinned. Each row: target | roomcast | uWS.js | wanted | met."""
    if not os.path.isdir(os.path.join(out, PEER16)) or not os.path.isdir(os.path.join(out, REF)):
        return []
    rows = []

    def run(row, sc):
        return report_or_cell(out, t, row, sc)

    def add(what, a, b, wanted, ok):
        met = "n/a" if ok is None else ("yes" if ok else "**no**")
        rows.append(f"| {what} | {a} | {b} | {wanted} | {met} |")

    def clean(r):
        """Zero loss, duplication and reordering, every subscriber there to the end."""
        return (not r.get("lost") and not r.get("duplicated") and not r.get("reordered")
                and not r.get("subscribers_failed") and not r.get("subscribers_disconnected"))

    def compare(what, sc, value, fmt, wanted, better, sc_peer=None):
        """value(report) -> number or None; better(mine, theirs) -> bool."""
        mine, why_mine = run(REF, sc)
        theirs, why_theirs = run(PEER16, sc_peer or sc)
        a = value(mine) if mine else None
        b = value(theirs) if theirs else None
        a_txt = fmt(a) if a is not None else (why_mine or "?")
        b_txt = fmt(b) if b is not None else (why_theirs or "?")
        if a is None or b is None:
            add(what, a_txt, b_txt, wanted, None)
            return
        dirty = [n for n, r in (("roomcast", mine), ("uWS.js", theirs)) if not clean(r)]
        if dirty:
            a_txt += " (" + ", ".join(dirty) + ": loss/dup/reorder or dropped subscribers)"
        add(what, f"{a_txt} ({a / b:.2f}×)" if b else a_txt, b_txt, wanted,
            better(a, b) and not dirty)

    cpu_fmt = lambda v: f"{us(v)} µs"  # noqa: E731
    le = lambda a, b: a <= b  # noqa: E731
    ge = lambda a, b: a >= b  # noqa: E731
    for sc, what in (
        ("fanout-1k", "fan-out 1 pub → 1k subs, max rate"),
        ("fanout-10k", "fan-out 1 pub → 10k subs, max rate"),
        ("latency", "1k subs at 20 pub/s"),
        ("light-200", "100 subs at 200 pub/s"),
        ("rooms-100", "100 rooms × 100 subs, 2k pub/s (saturated)"),
    ):
        compare(f"{what}: server CPU per delivery", sc,
                lambda r: per(r, "deliveries_per_sec"), cpu_fmt, "≤ uWS.js's", le)
    for sc, what in (("idle", "10k"), ("idle-19k", "19.5k")):
        compare(f"{what} idle connections: server RSS per connection", sc,
                lambda r: r.get("rss_per_connection_bytes"), lambda v: f"{v:,.0f} B",
                "≤ 75% of uWS.js's", lambda a, b: a <= 0.75 * b)
    compare("handshakes/s (10k, max rate, no auth)", "idle",
            lambda r: r.get("handshakes_per_sec") if r.get("failed") == 0 else None,
            lambda v: f"{si(v)}/s", "≥ uWS.js's", ge)
    compare("handshakes/s (10k, max rate, HS256 JWT verified)", "jwt-max",
            lambda r: r.get("handshakes_per_sec") if r.get("failed") == 0 else None,
            lambda v: f"{si(v)}/s", "≥ uWS.js's", ge)
    compare("echo 1k conns, max rate: server CPU per round trip", "echo",
            lambda r: per(r, "round_trips_per_sec"), cpu_fmt, "≤ uWS.js's", le)
    compare("100 rooms × 100 subs, 2k pub/s (saturated): p99", "rooms-100",
            lambda r: (r.get("latency_us") or {}).get("p99"), lambda v: f"{ms(v)} ms",
            "≤ uWS.js's", le)
    # Every roomcast run of this table: zero loss / duplication / reordering.
    dirty, seen = [], 0
    for sc in ("fanout-1k", "fanout-10k", "latency", "light-200", "rooms-100", "echo",
               "latency-100", "latency-10k", "echo-half"):
        r, _ = load(out, REF, sc)
        if r is None:
            continue
        seen += 1
        if not clean(r):
            dirty.append(sc)
    if seen:
        add("zero loss / duplication / reordering in every roomcast run",
            f"{seen - len(dirty)} of {seen} runs clean" + (f" (not: {', '.join(dirty)})" if dirty else ""),
            "–", "all", not dirty)

    title = "## Issue 16 targets: roomcast vs uWS.js (same run, both pinned to CPU 1)"
    if quick:
        title += " (quick mode: not the target conditions)"
    md = [title, "", "| target | roomcast | uWS.js | wanted | met |", "|---|---|---|---|---|"]
    md += rows
    md += ["",
           "Server CPU per delivery / round trip = the server's CPU time over the measured "
           "window ÷ the events in it. uWS.js verifies the same HS256 JWTs in its upgrade "
           "handler (node:crypto) for jwt-max; its heartbeats are µWS's automatic protocol "
           "pings (idleTimeout 60 s), roomcast's its 30 s application heartbeat. A row is met "
           "only when roomcast's and uWS.js's runs are also free of loss, duplication and "
           "reordering."]
    return md


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS_DIR")
    sys.stdout.write(build(sys.argv[1]))
