"""The start-up every probe in scripts/ shares: a `jobq serve` on a fresh
temp data dir with a config file, on a free port. Not a probe itself."""
import os, subprocess, tempfile, time


def start(binary, config, prefix="jobq-probe-", stderr=None):
    """Starts `binary serve` on a new temp dir with `config` (TOML text) as
    its config file and waits for its address. Returns (process, host, port,
    data dir); `stderr` is where the daemon's log goes (default: inherited)."""
    data = tempfile.mkdtemp(prefix=prefix)
    path = os.path.join(data, "jobq.toml")
    with open(path, "w") as f:
        f.write(config)
    d = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                          "--config", path], stderr=stderr)
    addr_file = os.path.join(data, "jobq.addr")
    deadline = time.monotonic() + 30
    while not os.path.exists(addr_file):
        if d.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"jobq serve did not start (data dir {data})")
        time.sleep(0.02)
    host, port = open(addr_file).read().strip().rsplit(":", 1)
    return d, host, int(port), data
