#!/usr/bin/env python3
"""Batch submission rate on an empty daemon and after PRE jobs are queued.
Starts a daemon (fsync durability, paused default queue), posts batches of
1,000 `true` jobs until PRE are queued (printing the rate of the first
50,000 and the daemon's pid, for `perf record -p`), then posts for 6 s more
and prints that rate. Usage:
    scripts/batch_at_scale.py [--bin PATH] [--pre N]
The benchmark proper is `cargo bench --bench throughput -- --parts scale`."""
import argparse, http.client, json, time

import probe_daemon

ap = argparse.ArgumentParser()
ap.add_argument("--bin", default="target/release/jobq")
ap.add_argument("--pre", type=int, default=900000)
a = ap.parse_args()

d, host, port, data = probe_daemon.start(
    a.bin, 'log = "warn"\nworkers = 2\ndurability = "fsync"\nmax_queued = 10000000\n',
    "jobq-scale-")
c = http.client.HTTPConnection(host, port)

def post(method, path, body):
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    assert r.status < 300, r.status

post("PATCH", "/v1/queues/default", json.dumps({"paused": True}))
batch = json.dumps({"jobs": [{"command": ["true"]}] * 1000})
t0 = time.monotonic()
first = None
for i in range(a.pre // 1000):
    post("POST", "/v1/jobs/batch", batch)
    if i == 49:
        first = 50000 / (time.monotonic() - t0)
print(f"first 50,000: {first or 0:.0f} jobs/s; daemon pid {d.pid}", flush=True)
t0, n = time.monotonic(), 0
while time.monotonic() - t0 < 6:
    post("POST", "/v1/jobs/batch", batch)
    n += 1000
print(f"after {a.pre:,} queued: {n / (time.monotonic() - t0):.0f} jobs/s", flush=True)
d.kill()
d.wait()
