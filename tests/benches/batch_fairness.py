#!/usr/bin/env python3
# Fairness beside a batch (issue 23): tenant B's trivial requests, one at a time, alone and then
# while tenant A sends batches of 1,000 items back to back, straight to a running sandbox (the
# tenant headers are the ones the ingress sets). Prints B's p50 and p99 and the ratio of its
# p50 to its p50 alone; a figure for the README, never a test.
#
#   cargo build --release -p sandbox && LISTEN_ADDR=127.0.0.1:8081 target/release/sandbox &
#   python3 tests/benches/batch_fairness.py 127.0.0.1 8081 [seconds per phase, default 3]
import http.client, json, statistics, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
phase = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
def client():
    return http.client.HTTPConnection(host, port)
def post(conn, path, body, tenant, limits):
    conn.request("POST", path, json.dumps(body), {"content-type": "application/json",
                 "x-tenant-id": tenant, "x-tenant-limits": limits})
    r = conn.getresponse(); data = r.read()
    return r.status, data
def b_for(seconds):
    conn = client(); lat = []; end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        status, data = post(conn, "/api/execute", {"code": "1 + 2"}, "b", "concurrency=1")
        if status == 200 and data.startswith(b'{"status":"success"'):
            lat.append(time.perf_counter() - t)
    return lat
def a_batches(stop, limits, code, items, count):
    conn = client()
    while not stop.is_set():
        status, data = post(conn, "/api/batch", {"code": code, "inputs": list(range(items))}, "a", limits)
        assert status == 200, (status, data[:200])
        count[0] += items
b_for(0.3)
alone = b_for(phase)
p50 = statistics.median(alone) * 1e6
print(f"B alone: p50 {p50:.0f} us, p99 {sorted(alone)[int(len(alone)*0.99)]*1e6:.0f} us, n={len(alone)}")
for label, limits, code in [
    ("A's batches of 1000 trivial items, A's ceiling 1 of 2", "concurrency=1", "input * 2"),
    ("A's batches of 1000 trivial items, A's ceiling 2 of 2", "concurrency=2", "input * 2"),
    ("A's batches of 1000 5-ms items, A's ceiling 1 of 2", "concurrency=1", "const end = Date.now() + 5; while (Date.now() < end) {} input"),
]:
    stop = threading.Event(); count = [0]
    t = threading.Thread(target=a_batches, args=(stop, limits, code, 1000, count)); t.start()
    time.sleep(0.3)
    lat = b_for(phase)
    stop.set(); t.join()
    q = statistics.median(lat) * 1e6
    print(f"{label}: B p50 {q:.0f} us ({q/p50:.2f}x alone), p99 {sorted(lat)[int(len(lat)*0.99)]*1e6:.0f} us, n={len(lat)}, A's items done {count[0]}")
