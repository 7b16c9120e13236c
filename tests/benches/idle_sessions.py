#!/usr/bin/env python3
# Stateless latency beside idle sessions (issue 25): trivial requests (`1 + 2`), one at a time,
# first with no session open, then while 20 sessions sit idle (each created, used once, then
# left alone; each holds a worker process of its own), then alone again. Prints the p50 and p99
# of each phase and the ratio of the p50 beside the sessions to the p50 alone (the first and
# last phases together); issue 25 asks for at most 1.5x. A figure for the README, never a test.
#
# Straight to a running sandbox (the tenant headers are the ones the ingress sets; the tenant's
# `sessions=` ceiling lets it hold 20):
#   cargo build --release -p sandbox -p ingress && LISTEN_ADDR=127.0.0.1:8081 target/release/sandbox &
#   python3 tests/benches/idle_sessions.py http://127.0.0.1:8081 [seconds per phase, default 3]
# Through an ingress, with a tenant's key whose `max_sessions` is at least 20 in its tenants file:
#   BENCH_KEY=<key> python3 tests/benches/idle_sessions.py http://127.0.0.1:8080
import http.client, json, os, statistics, sys, time, urllib.parse

SESSIONS = 20
url = urllib.parse.urlsplit(sys.argv[1])
phase = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
key = os.environ.get("BENCH_KEY")
headers = {"content-type": "application/json"}
if key:
    headers["authorization"] = f"Bearer {key}"
else:
    headers.update({"x-tenant-id": "bench", "x-tenant-limits": f"sessions={SESSIONS}"})

def call(conn, method, path, body=None):
    conn.request(method, path, None if body is None else json.dumps(body), headers)
    r = conn.getresponse()
    return r.status, r.read()

def stateless_for(seconds):
    conn = http.client.HTTPConnection(url.hostname, url.port); lat = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        status, data = call(conn, "POST", "/api/execute", {"code": "1 + 2"})
        assert status == 200 and data.startswith(b'{"status":"success"'), (status, data[:200])
        lat.append(time.perf_counter() - t)
    return lat

def line(label, lat):
    lat = sorted(lat)
    p50 = statistics.median(lat) * 1e6
    print(f"{label}: p50 {p50:.0f} us, p99 {lat[int(len(lat) * 0.99)] * 1e6:.0f} us, n={len(lat)}")
    return p50

conn = http.client.HTTPConnection(url.hostname, url.port)
stateless_for(0.3)
alone = stateless_for(phase)
line("alone", alone)
ids = []
for i in range(SESSIONS):
    status, data = call(conn, "POST", "/api/sessions", {"ttlSeconds": 600})
    assert status == 201, (status, data[:200])
    ids.append(json.loads(data)["id"])
    status, data = call(conn, "POST", f"/api/sessions/{ids[-1]}/execute", {"code": f"globalThis.x = {i}; x"})
    assert status == 200 and json.loads(data)["result"] == i, (status, data[:200])
time.sleep(0.5)
beside = stateless_for(phase)
beside_p50 = line(f"beside {SESSIONS} idle sessions", beside)
for id in ids:
    # Still there, with its state: the sessions were idle, not gone.
    status, data = call(conn, "POST", f"/api/sessions/{id}/execute", {"code": "x"})
    assert status == 200 and json.loads(data)["status"] == "success", (status, data[:200])
    status, _ = call(conn, "DELETE", f"/api/sessions/{id}")
    assert status == 204, status
time.sleep(0.5)
again = stateless_for(phase)
line("alone again", again)
alone_p50 = line("alone, both phases", alone + again)
print(f"p50 beside {SESSIONS} idle sessions / p50 alone: {beside_p50 / alone_p50:.2f}x")
