"""Builds the markdown table of a `scripts/bench-compare` run from its results folder.

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
]
REF = "roomcast"
GEN_BOUND = 90.0  # generator CPU, % of a core, from which a figure may be the generator's


def si(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.2f}M"
    if a >= 1e4:
        return f"{v / 1e3:.1f}k"
    if a >= 1e3:
        return f"{v / 1e3:.2f}k"
    if a >= 100:
        return f"{v:.0f}"
    return f"{v:.1f}"


def count(n):
    if not isinstance(n, (int, float)):
        return "?"
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else str(n)


def ms(us):
    if us is None:
        return "–"
    v = us / 1000.0
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def kib(b):
    return "–" if b is None else f"{b / 1024:.1f}"


def pct(v):
    return "–" if v is None else f"{v:.0f}"


def ratio(v, ref, places=2):
    if v is None or not ref:
        return ""
    r = v / ref
    if r >= 100:
        return f" ({r:.0f}×)"
    if r >= 10:
        return f" ({r:.1f}×)"
    if r >= 0.1:
        return f" ({r:.{places}f}×)"
    return f" ({r:.3f}×)"


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
    md += t.lines
    md.append("")
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
    md.append("")
    md += targets(out)
    if t.notes:
        md.append("")
        for i, n in enumerate(t.notes, 1):
            md.append(f"[^{i}]: {n}")
    return "\n".join(md) + "\n"


def figure(out, row, sc, get):
    r, st = load(out, row, sc)
    if r is None:
        return None
    try:
        return get(r)
    except (KeyError, TypeError):
        return None


def targets(out):
    """Issue 6's targets that these runs measure: measured, target, met."""
    def f(row, sc, get):
        return figure(out, row, sc, get)

    dps_any = lambda r: r["deliveries_per_sec"]  # noqa: E731
    rows = []

    def add(what, measured, target, ok):
        rows.append(f"| {what} | {measured} | {target} | "
                    f"{'–' if ok is None else ('yes' if ok else '**no**')} |")

    def vs(what, mine, theirs, want, higher_better=True):
        if mine is None or theirs is None or not theirs or not mine:
            add(what, "–", want, None)
            return
        r = mine / theirs if higher_better else theirs / mine
        need = float(want.split("×")[0].lstrip("≥ "))
        add(what, f"{r:.1f}×", want, r >= need)

    rc_fan = f(REF, "fanout-1k", dps_any)
    rc_fan_lost = f(REF, "fanout-1k", lambda r: r["lost"])
    add("fan-out 1k subs, deliveries/s, zero loss",
        "–" if rc_fan is None else f"{si(rc_fan)} (lost {rc_fan_lost})",
        "≥ 1M", None if rc_fan is None else (rc_fan >= 1e6 and rc_fan_lost == 0))
    rc_big = f(REF, "fanout-10k", dps_any)
    big_subs = f(REF, "fanout-10k", lambda r: r["subscribers"])
    add(f"fan-out {count(big_subs) if big_subs else '10k'} subs, deliveries/s",
        si(rc_big) if rc_big is not None else "–", "≥ 700k (at 10k subs)",
        None if rc_big is None or big_subs != 10000 else rc_big >= 7e5)
    p99 = f(REF, "latency", lambda r: r["latency_us"]["p99"])
    add("1k subs at 20 pub/s, p99", "–" if p99 is None else f"{ms(p99)} ms", "≤ 10 ms",
        None if p99 is None else p99 <= 10_000)
    rss = f(REF, "idle", lambda r: r["rss_per_connection_bytes"])
    add("RSS growth per idle subscribed connection",
        "–" if rss is None else f"{kib(rss)} KiB", "≤ 2 KiB", None if rss is None else rss <= 2048)
    hs = f(REF, "idle", lambda r: r["handshakes_per_sec"])
    add("handshakes/s (dev mode: no JWT verify here)", si(hs), "≥ 8k (with JWT)",
        None if hs is None else hs >= 8000)
    echo = f(REF, "echo", lambda r: r["round_trips_per_sec"])
    add("echo round trips/s, 1k conns", si(echo), "≥ 50k", None if echo is None else echo >= 5e4)
    vs("fan-out 1k deliveries/s vs Node ws", rc_fan, f("node-ws", "fanout-1k", dps_any), "≥ 5×")
    vs("fan-out 1k deliveries/s vs FastAPI", rc_fan, f("fastapi", "fanout-1k", dps_any), "≥ 20×")
    vs("handshakes/s vs Node ws", hs, f("node-ws", "idle", lambda r: r["handshakes_per_sec"]), "≥ 2×")
    vs("echo round trips/s vs Node ws", echo, f("node-ws", "echo", lambda r: r["round_trips_per_sec"]), "≥ 2×")
    vs("memory per connection vs Node ws (Node ÷ roomcast)", rss,
       f("node-ws", "idle", lambda r: r["rss_per_connection_bytes"]), "≥ 3×", higher_better=False)
    if not any("| yes |" in r or "| **no** |" in r for r in rows):
        return []
    return ["## Issue 6 targets measured by this run (roomcast row)", "",
            "| target | measured | wanted | met |", "|---|---|---|---|"] + rows


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: table.py RESULTS_DIR")
    sys.stdout.write(build(sys.argv[1]))
