#!/usr/bin/env python3
"""Replicated-write latency probe (bench/backup.sh): one ACL rule added
through the node's REST API on its unix socket every INTERVAL seconds for
DURATION seconds (each a raft commit), the rules deleted again afterwards;
prints one JSON line with the count and p50/p99/max in ms.
Usage: writeprobe.py SOCKET DURATION_S [INTERVAL_S] [LABEL]"""
import http.client, json, socket, sys, time


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(conn, method, url, body=None):
    conn.request(method, url, body=json.dumps(body) if body is not None else None,
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise SystemExit(f"writeprobe: {method} {url}: {resp.status} {data[:200]!r}")
    return json.loads(data) if data else None


def main():
    sock, duration = sys.argv[1], float(sys.argv[2])
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.02
    label = sys.argv[4] if len(sys.argv) > 4 else ""
    conn = UnixConnection(sock)
    lat, ids = [], []
    start = time.monotonic()
    next_at = start
    i = 0
    while time.monotonic() - start < duration:
        t0 = time.monotonic()
        rule = call(conn, "POST", "/api/v1/acl", {"kind": "username", "value": f"probe-{label}-{i}",
                                                  "topic": f"probe/{i}", "action": "publish", "permission": "allow"})
        lat.append((time.monotonic() - t0) * 1000)
        ids.append(rule["id"])
        i += 1
        next_at += interval
        time.sleep(max(0, next_at - time.monotonic()))
    for rid in ids:
        call(conn, "DELETE", f"/api/v1/acl/{rid}")
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
    print(json.dumps({"label": label, "writes": len(lat), "p50_ms": round(pct(0.50), 2),
                      "p99_ms": round(pct(0.99), 2), "max_ms": round(lat[-1], 2)}))


if __name__ == "__main__":
    main()
