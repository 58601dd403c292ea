#!/usr/bin/env python3
"""Rough throughput check: start a daemon, submit N `true` jobs with C client
threads, and time until all are terminal. Prints jobs/s. Usage:
    scripts/drain2000.py [--jobs N] [--workers W] [--clients C] [--bin PATH]
The real benchmark lives in benches/ (a later issue); this is a quick probe."""
import argparse, http.client, json, socket, tempfile, threading, time

import probe_daemon

ap = argparse.ArgumentParser()
ap.add_argument("--jobs", type=int, default=2000)
ap.add_argument("--workers", type=int, default=2)
ap.add_argument("--clients", type=int, default=8)
ap.add_argument("--bin", default="target/release/jobq")
a = ap.parse_args()

log = tempfile.TemporaryFile()
d, host, port, data = probe_daemon.start(a.bin, f"workers = {a.workers}\n", stderr=log)

def conn():
    c = http.client.HTTPConnection(host, port, timeout=60)
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c

ids, lock = [], threading.Lock()
def submitter(n):
    c = conn()
    for _ in range(n):
        c.request("POST", "/v1/jobs", body=json.dumps({"command": ["true"]}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse(); body = r.read()
        assert r.status == 201, (r.status, body)
        with lock:
            ids.append(json.loads(body)["id"])

t0 = time.monotonic()
per = a.jobs // a.clients
threads = [threading.Thread(target=submitter, args=(per,)) for _ in range(a.clients)]
for t in threads: t.start()
for t in threads: t.join()
t_submit = time.monotonic() - t0
c = conn()
for i in ids:  # long-poll each job until terminal
    while True:
        c.request("GET", f"/v1/jobs/{i}?wait=60s"); r = c.getresponse(); j = json.loads(r.read())
        if j["state"] in ("succeeded", "failed", "cancelled"):
            assert j["state"] == "succeeded", j
            break
t_all = time.monotonic() - t0
d.terminate(); d.wait()
n = per * a.clients
print(f"jobs={n} workers={a.workers} clients={a.clients} submit={t_submit:.2f}s "
      f"({n/t_submit:.0f}/s) all_done={t_all:.2f}s -> {n/t_all:.0f} jobs/s")
