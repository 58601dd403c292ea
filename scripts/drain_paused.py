#!/usr/bin/env python3
"""Where a job's time goes while a paused queue drains. Starts a daemon
(`workers` W, fsync durability), submits N `true` jobs to the paused default
queue in batches, resumes it and times until all have succeeded; then reads
the first 600 jobs' timestamps: how long each ran (started_at → finished_at,
spawn excluded) and the gap between consecutive starts. Usage:
    scripts/drain_paused.py [--jobs N] [--workers W] [--bin PATH]
The benchmark proper is `cargo bench --bench throughput`; this is a probe."""
import argparse, http.client, json, statistics, time

import probe_daemon
from datetime import datetime

ap = argparse.ArgumentParser()
ap.add_argument("--jobs", type=int, default=2000)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--bin", default="target/release/jobq")
a = ap.parse_args()

d, host, port, data = probe_daemon.start(
    a.bin, f'log = "warn"\nworkers = {a.workers}\ndurability = "fsync"\n', "jobq-drain-")
c = http.client.HTTPConnection(host, port)

def req(method, path, body=None):
    c.request(method, path, body=None if body is None else json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return json.loads(r.read() or "null")

req("PATCH", "/v1/queues/default", {"paused": True})
ids = []
for i in range(0, a.jobs, 1000):
    batch = req("POST", "/v1/jobs/batch", {"jobs": [{"command": ["true"]}] * min(1000, a.jobs - i)})
    ids += [j["id"] for j in batch["jobs"]]
t0 = time.monotonic()
req("PATCH", "/v1/queues/default", {"paused": False})
while True:
    queues = req("GET", "/v1/queues")["queues"]
    if [q for q in queues if q["name"] == "default"][0]["counts"].get("succeeded", 0) == a.jobs:
        break
    time.sleep(0.02)
elapsed = time.monotonic() - t0

def ts(x):
    return datetime.fromisoformat(x.replace("Z", "+00:00")).timestamp()

jobs = [req("GET", f"/v1/jobs/{i}") for i in ids[:600]]
runs = sorted(ts(j["finished_at"]) - ts(j["started_at"]) for j in jobs)
starts = sorted(ts(j["started_at"]) for j in jobs)
gaps = [b - x for x, b in zip(starts, starts[1:])]
print(f"{a.jobs} jobs, workers={a.workers}: {a.jobs / elapsed:.0f} jobs/s; "
      f"run ms median {statistics.median(runs) * 1e3:.2f} p90 {runs[int(len(runs) * .9)] * 1e3:.2f}; "
      f"gap between starts ms median {statistics.median(gaps) * 1e3:.2f}")
d.terminate()
d.wait()
