//! Output capture against the real daemon:
//! - throughput: MiB/s captured from a job writing N MiB to stdout, next to
//!   `cat` writing the same bytes to a file in the daemon's data dir in the
//!   same run (the target: at least 0.5 of it), and into /dev/null (the
//!   pipe's own speed on this machine);
//! - follow latency: time from a write in the job to its arrival at a
//!   follower (`GET …/output?follow=true`), p50 and p99, over lines
//!   written every 10 ms, each carrying its write time.
//!
//! Run: `cargo bench --bench output [-- --mib 1024 --lines 500]`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{Build, Daemon};

fn submit(d: &Daemon, spec: serde_json::Value) -> String {
    let job: serde_json::Value = ureq::post(&format!("{}/v1/jobs", d.url))
        .send_json(spec)
        .expect("submit")
        .body_mut()
        .read_json()
        .expect("job json");
    job["id"].as_str().expect("id").to_owned()
}

fn wait_done(d: &Daemon, id: &str) -> serde_json::Value {
    loop {
        let job: serde_json::Value = ureq::get(&format!("{}/v1/jobs/{id}?wait=60s", d.url))
            .call()
            .expect("get job")
            .body_mut()
            .read_json()
            .expect("job json");
        if ["succeeded", "failed", "cancelled"].contains(&job["state"].as_str().unwrap_or("")) {
            return job;
        }
    }
}

fn seconds_between(a: &str, b: &str) -> f64 {
    let a: jiff::Timestamp = a.parse().expect("time");
    let b: jiff::Timestamp = b.parse().expect("time");
    b.duration_since(a).as_secs_f64()
}

/// MiB/s of `head -c N /dev/zero | cat > to` (`to` a file or /dev/null);
/// with `sync`, the file is written through to disk before the clock
/// stops.
fn cat_rate(mib: u64, to: &std::path::Path, sync: bool) -> f64 {
    let start = Instant::now();
    let then = if sync {
        format!(" && sync '{}'", to.display())
    } else {
        String::new()
    };
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c {} /dev/zero | cat > '{}'{then}",
            mib << 20,
            to.display(),
        ))
        .stdout(Stdio::null())
        .status()
        .expect("run cat");
    assert!(status.success());
    let rate = mib as f64 / start.elapsed().as_secs_f64();
    if to.is_file() {
        std::fs::remove_file(to).expect("remove cat's file");
    }
    rate
}

/// MiB/s captured by the daemon from a job writing `mib` MiB, timed by the
/// job's own started_at/finished_at; and the rate of `cat` writing the
/// same bytes to a file in that daemon's data dir (the better of one run
/// before the capture and one after), and with a sync.
fn capture_rate(build: &Build, mib: u64) -> (f64, f64, f64) {
    let d = Daemon::start_with(
        build,
        &format!("max_output = \"{}MiB\"\nlog = \"warn\"\n", mib + 1),
    );
    let reference = d.data_dir().join("cat-reference");
    let before = cat_rate(mib, &reference, false);
    let synced = cat_rate(mib, &reference, true);
    let id = submit(
        &d,
        serde_json::json!({"command": ["head", "-c", (mib << 20).to_string(), "/dev/zero"]}),
    );
    let job = wait_done(&d, &id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["output_truncated"], false, "{job}");
    // The disk's speed dips now and then on this VM: the reference is the
    // better of two `cat`s, one before the capture and one after.
    let to_file = before.max(cat_rate(mib, &reference, false));
    let secs = seconds_between(
        job["started_at"].as_str().unwrap(),
        job["finished_at"].as_str().unwrap(),
    );
    (mib as f64 / secs, to_file, synced)
}

/// Follow latencies in ms, sorted.
fn follow_latencies(build: &Build, lines: usize) -> Vec<f64> {
    let d = Daemon::start_with(build, "log = \"warn\"\n");
    let script = format!(
        "import time,sys\nfor i in range({lines}):\n    sys.stdout.write('%d\\n' % time.time_ns()); sys.stdout.flush(); time.sleep(0.01)\n"
    );
    let id = submit(
        &d,
        serde_json::json!({"command": ["python3", "-c", script]}),
    );
    let res = ureq::get(&format!("{}/v1/jobs/{id}/output?follow=true", d.url))
        .call()
        .expect("follow");
    let mut out = Vec::with_capacity(lines);
    for line in BufReader::new(res.into_body().into_reader()).lines() {
        let line = line.expect("read line");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i128;
        let sent: i128 = line.trim().parse().expect("a timestamp line");
        out.push((now - sent) as f64 / 1e6);
    }
    assert_eq!(out.len(), lines, "every line arrived");
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let mut mib = 1024u64;
    let mut lines = 500usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--mib" => mib = args.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--lines" => lines = args.next().and_then(|v| v.parse().ok()).expect("--lines N"),
            "--bench" => {}
            other => panic!("unknown argument {other:?}; use --mib N --lines N"),
        }
    }
    let builds = support::builds();
    for b in &builds {
        println!("{}: {}", b.label, b.bin.display());
    }
    println!();
    let cat = cat_rate(mib, std::path::Path::new("/dev/null"), false);
    // Each build beside its own `cat` reference, measured just before it.
    let captures: Vec<(f64, f64, f64)> = builds.iter().map(|b| capture_rate(b, mib)).collect();
    let labels: String = builds
        .iter()
        .map(|b| format!(" {} | ratio |", b.label))
        .collect();
    println!("| output throughput ({mib} MiB), MiB/s |{labels}");
    println!("| --- |{}", " ---: | ---: |".repeat(builds.len()));
    let line = |name: &str, value: &dyn Fn(&(f64, f64, f64)) -> f64| {
        let cells: String = captures
            .iter()
            .map(|c| format!(" {:.0} | {:.2} |", value(c), value(c) / c.1))
            .collect();
        println!("| {name} |{cells}");
    };
    line("cat > a file in the data dir (the reference)", &|c| c.1);
    line("cat > a file in the data dir, then sync", &|c| c.2);
    line("cat > /dev/null", &|_| cat);
    line("captured by jobq (target ≥ 0.50)", &|c| c.0);
    let lats: Vec<Vec<f64>> = builds.iter().map(|b| follow_latencies(b, lines)).collect();
    println!();
    let labels: String = builds.iter().map(|b| format!(" {} |", b.label)).collect();
    println!("| follow latency ms ({lines} lines, 10 ms apart) |{labels}");
    println!("| --- |{}", " ---: |".repeat(builds.len()));
    for (name, q) in [("p50", 0.50), ("p99", 0.99), ("max", 1.0)] {
        let cells: String = lats
            .iter()
            .map(|l| format!(" {:.2} |", percentile(l, q)))
            .collect();
        println!("| {name} |{cells}");
    }
    std::thread::sleep(Duration::from_millis(10));
}
