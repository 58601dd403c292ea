#!/usr/bin/env python3
"""Disk use under churn: run N short jobs through a daemon with a small
`keep_finished` and print the store's size on disk as it goes. Usage:
    scripts/retention_disk.py [--jobs N] [--keep K] [--bin PATH]
Submits in batches of 1,000 (POST /v1/jobs/batch), keeping at most ~5,000
jobs waiting, and prints `du` of <data_dir>/store every 25,000 jobs."""
import argparse, http.client, json, os, socket, subprocess, time

import probe_daemon

ap = argparse.ArgumentParser()
ap.add_argument("--jobs", type=int, default=200_000)
ap.add_argument("--keep", type=int, default=1000)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--bin", default="target/release/jobq")
a = ap.parse_args()

d, host, port, data = probe_daemon.start(
    a.bin, f'keep_finished = {a.keep}\nlog = "warn"\nworkers = {a.workers}\n', "jobq-retention-")
c = http.client.HTTPConnection(host, port, timeout=120)
c.connect(); c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

def call(method, path, body=None):
    c.request(method, path, body=None if body is None else json.dumps(body))
    r = c.getresponse(); data = r.read()
    assert r.status < 300, (r.status, data)
    return json.loads(data) if data else None

def counts():
    q = call("GET", "/v1/queues")["queues"]
    return {k: sum(x["counts"][k] for x in q) for k in q[0]["counts"]}

def du():
    return int(subprocess.check_output(["du", "-sb", os.path.join(data, "store")]).split()[0])

print(f"data_dir={data} start store={du()/2**20:.1f} MiB", flush=True)
t0 = time.monotonic(); sent = 0; next_report = 25_000
while sent < a.jobs:
    n = counts()
    if n["queued"] + n["running"] > 5000:
        time.sleep(0.05); continue
    call("POST", "/v1/jobs/batch", {"jobs": [{"command": ["true"]}] * 1000}); sent += 1000
    if sent >= next_report:
        print(f"submitted={sent} terminal_kept={n['succeeded']+n['failed']} store={du()/2**20:.1f} MiB t={time.monotonic()-t0:.0f}s", flush=True)
        next_report += 25_000
while True:
    n = counts()
    if n["queued"] + n["running"] == 0:
        break
    time.sleep(0.2)
time.sleep(1)
print(f"done jobs={a.jobs} kept={n['succeeded']+n['failed']} store={du()/2**20:.1f} MiB "
      f"wall={time.monotonic()-t0:.0f}s", flush=True)
d.terminate(); d.wait()
print(f"after shutdown store={du()/2**20:.1f} MiB")
