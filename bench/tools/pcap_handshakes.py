#!/usr/bin/env python3
"""Splits WebSocket handshakes in a loopback packet capture into client and server time.

usage: bench/tools/pcap_handshakes.py CAPTURE.pcap SERVER_PORT

Capture while `roomcast bench connect` runs, e.g.
    tcpdump -i lo -s 128 -w hs.pcap 'tcp port PORT'
For each connection it takes the client's SYN, its first two data packets (the HTTP
upgrade request, then the subscribe frame) and the server's first data packet after each
(the 101 response, the subscribe ack), and prints percentiles of:
  - SYN -> HTTP request (client side: connect and send),
  - HTTP request -> 101 (server side),
  - last server frame -> subscribe sent (client side),
  - subscribe -> ack (server side),
then the clusters of slow (> 5 ms) server answers to the upgrade request, with the wall
clock time each starts (to line up with `perf` or ftrace). Standard library only.
"""
import collections
import struct
import sys


def read_packets(path, port):
    conns = collections.defaultdict(list)
    with open(path, "rb") as f:
        magic, _, _, _, _, _, link = struct.unpack("<IHHiIII", f.read(24))
        scale = 1e9 if magic == 0xA1B23C4D else 1e6
        link_header = {1: 14, 113: 16}.get(link, 0)
        while True:
            h = f.read(16)
            if len(h) < 16:
                break
            sec, frac, incl, _ = struct.unpack("<IIII", h)
            data = f.read(incl)
            ip = data[link_header:]
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            sport, dport = struct.unpack(">HH", tcp[0:4])
            payload = total - ihl - (tcp[12] >> 4) * 4
            if dport == port:
                key, side = (ip[12:16], sport), "c"
            elif sport == port:
                key, side = (ip[16:20], dport), "s"
            else:
                continue
            pkt = (sec + frac / scale, side, tcp[13], payload)
            # On lo each packet may be captured twice; keep one.
            if not conns[key] or conns[key][-1] != pkt:
                conns[key].append(pkt)
    return conns


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    conns = read_packets(sys.argv[1], int(sys.argv[2]))
    rows = collections.defaultdict(list)
    upgrades = []
    for pkts in conns.values():
        syn = [p for p in pkts if p[1] == "c" and p[2] & 0x02]
        cdata = [p[0] for p in pkts if p[1] == "c" and p[3] > 0]
        sdata = [p[0] for p in pkts if p[1] == "s" and p[3] > 0]
        if not syn or len(cdata) < 2 or len(sdata) < 2:
            continue
        t_req, t_sub = cdata[0], cdata[1]
        t_101 = next((t for t in sdata if t >= t_req), None)
        t_ack = next((t for t in sdata if t >= t_sub), None)
        before_sub = [t for t in sdata if t < t_sub]
        if t_101 is None or t_ack is None or not before_sub:
            continue
        rows["SYN -> HTTP request (client)"].append(t_req - syn[0][0])
        rows["HTTP request -> 101 (server)"].append(t_101 - t_req)
        rows["last server frame -> subscribe (client)"].append(t_sub - before_sub[-1])
        rows["subscribe -> ack (server)"].append(t_ack - t_sub)
        upgrades.append((t_req, t_101 - t_req))
    for name, values in rows.items():
        print(f"{name:42s} n={len(values)} p50 {pct(values, .5):.3f} p90 {pct(values, .9):.3f} "
              f"p99 {pct(values, .99):.3f} max {max(values) * 1e3:.3f} ms")
    clusters = []
    for t, d in sorted(upgrades):
        if d <= 0.005:
            continue
        if clusters and t - clusters[-1][1] < 0.030:
            c = clusters[-1]
            c[1], c[2], c[3] = t, c[2] + 1, max(c[3], d)
        else:
            clusters.append([t, t, 1, d])
    print("slow HTTP request -> 101 (> 5 ms): start (wall clock), length ms, count, worst ms")
    for start, end, count, worst in clusters:
        print(f"  {start:.4f} {1e3 * (end - start):6.1f} {count:5d} {1e3 * worst:6.1f}")


if __name__ == "__main__":
    main()
