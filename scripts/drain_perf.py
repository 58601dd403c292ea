#!/usr/bin/env python3
"""A drain with perf attached, for the daemon's CPU split by thread. Starts a
daemon (`workers` 2, fsync durability), submits N `true` jobs to the paused
default queue, starts perf, resumes the queue and stops perf when all have
succeeded. Usage:
    scripts/drain_perf.py [--jobs N] [--bin PATH] [--mode record|stat] [--out DIR]
`record`: `perf record -F 1999 -g -a` into DIR/perf.data (read it with
`perf report --no-children --sort comm -g none`); `stat`: context switches
and migrations per daemon thread into DIR/stat.txt. The benchmark proper is
`cargo bench --bench throughput`; this is a probe."""
import argparse, http.client, json, os, subprocess, time

import probe_daemon

ap = argparse.ArgumentParser()
ap.add_argument("--jobs", type=int, default=4000)
ap.add_argument("--bin", default="target/release/jobq")
ap.add_argument("--mode", choices=["record", "stat"], default="record")
ap.add_argument("--out", default="/tmp/jobq-drain-perf")
a = ap.parse_args()
os.makedirs(a.out, exist_ok=True)

d, host, port, data = probe_daemon.start(
    a.bin, 'log = "warn"\nworkers = 2\ndurability = "fsync"\n', "jobq-perf-",
    stderr=subprocess.DEVNULL)
c = http.client.HTTPConnection(host, port)


def req(method, path, body=None):
    c.request(method, path, body=None if body is None else json.dumps(body),
              headers={"Content-Type": "application/json"})
    return json.loads(c.getresponse().read() or "null")


req("PATCH", "/v1/queues/default", {"paused": True})
for i in range(0, a.jobs, 1000):
    req("POST", "/v1/jobs/batch", {"jobs": [{"command": ["true"]}] * min(1000, a.jobs - i)})
if a.mode == "stat":
    perf = ["perf", "stat", "-e", "context-switches,cpu-migrations", "--per-thread",
            "-p", str(d.pid), "-o", os.path.join(a.out, "stat.txt")]
else:
    perf = ["perf", "record", "-F", "1999", "-g", "-a", "-o", os.path.join(a.out, "perf.data")]
p = subprocess.Popen(perf, stderr=subprocess.DEVNULL)
time.sleep(0.5)  # perf attached before the first job starts
t0 = time.monotonic()
req("PATCH", "/v1/queues/default", {"paused": False})
while True:
    queue = [q for q in req("GET", "/v1/queues")["queues"] if q["name"] == "default"][0]
    if queue["counts"].get("succeeded", 0) == a.jobs:
        break
    time.sleep(0.01)
took = time.monotonic() - t0
p.send_signal(2)
p.wait()
d.kill()
print(f"{a.jobs} jobs, workers=2, perf {a.mode}: {a.jobs / took:.0f} jobs/s; output in {a.out}")
