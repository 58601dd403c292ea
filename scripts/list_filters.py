#!/usr/bin/env python3
"""Listing time with filters at scale: starts a daemon (paused default
queue), submits N `true` jobs in batches of 1,000, then times one
`GET /v1/jobs` first page per filter (none; state=queued, running, failed;
queue=other). Usage:
    scripts/list_filters.py [--jobs N] [--bin PATH]
The benchmark proper (`cargo bench --bench throughput -- --parts scale`)
reports the plain and the state=failed listing at 1M."""
import argparse, http.client, json, time

import probe_daemon

ap = argparse.ArgumentParser()
ap.add_argument("--jobs", type=int, default=300_000)
ap.add_argument("--bin", default="target/release/jobq")
a = ap.parse_args()

d, host, port, data = probe_daemon.start(
    a.bin, 'log = "warn"\nworkers = 2\nmax_queued = 10000000\n', "jobq-filter-")
c = http.client.HTTPConnection(host, port)

def req(method, path, body=None):
    c.request(method, path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()

req("PATCH", "/v1/queues/default", '{"paused": true}')
batch = json.dumps({"jobs": [{"command": ["true"]}] * 1000})
for _ in range(a.jobs // 1000):
    req("POST", "/v1/jobs/batch", batch)
for query in ["", "?state=queued", "?state=running", "?state=failed", "?queue=other"]:
    t = time.monotonic()
    status, body = req("GET", "/v1/jobs" + query)
    took = time.monotonic() - t
    print(f"GET /v1/jobs{query}: {status}, {len(json.loads(body)['jobs'])} jobs, {took * 1e3:.1f} ms")
d.terminate()
d.wait()
