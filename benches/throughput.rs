//! Job throughput against the real daemon, every figure beside a reference
//! measured in the same run, printed as one markdown table:
//!
//! - `spawn`: N `/bin/true` with stdin null and stdout/stderr piped,
//!   spawned and reaped by C plain threads (C = CPUs): the reference rate
//!   for the rows below that are in jobs/s.
//! - `drain`: N `true` jobs submitted up front (`POST /v1/jobs/batch`, 1,000
//!   a batch) to the paused `default` queue, then resumed; jobs/s from the
//!   resume until all are terminal (`GET /v1/queues` polled every 10 ms).
//! - `e2e`: N jobs submitted one by one by 16 keep-alive clients while the
//!   pool runs them; jobs/s from the first submission until all terminal.
//! - `submit`: fsync'd single submissions/s at 16 and 256 keep-alive
//!   clients, and jobs/s submitted by one client in batches of 1,000, all
//!   on a paused queue (a fresh daemon each). `--batch-jobs` defaults to
//!   100,000 (about 2 s): at 20,000 the figure was mostly the fresh
//!   daemon's warm-up (45k/s, against 67k/s over 100,000).
//! - `latency`: on an idle pool, one `sleep 0.05` job at a time (the next
//!   after the previous ended), 1,000 jobs as the issue asks (about 60 s):
//!   the daemon's own `created_at`→`started_at`,
//!   and the client-side time from starting the POST until the job's
//!   `running` event arrives on a `GET /v1/events?queue=…` stream opened
//!   beforehand. Reference: the time `std::process::Command::spawn` takes
//!   for `/bin/true` with piped output, sequentially, in the same run.
//! - `scale`: `--scale-jobs` jobs (default 1,000,000, the issue's figure:
//!   about 35 s and 700 MiB of temp space) submitted by one client in batches of 1,000 to
//!   a paused queue: submission rate over the first and the last 10% of the
//!   batches, the daemon's RSS (VmRSS) and the data dir's size at the end,
//!   the restart time (SIGKILL, then a new daemon on the same data dir,
//!   from spawn until `/readyz` is 200), the time of `GET /v1/jobs` (first
//!   page, median of 5), of `GET /v1/jobs?state=failed` (no match among
//!   1M: the state-index path) and of `jobq list` (median of 3). References: the
//!   same daemon measured empty before the submissions; for the data dir,
//!   the jobs' own JSON (jobs × the size of one job as `GET` returns it).
//! - `cli`: `jobq submit -- true` invocations per second from a shell
//!   loop (`sh -c 'while …'`), on a paused queue with 0 and with
//!   `--cli-queued` (default 100,000, the issue's figure) jobs queued;
//!   reference: `jobq --version` from the same loop (the process start
//!   alone).
//!
//! Every daemon runs with `workers` = C and `durability = "fsync"` (the
//! default). With `JOBQ_BENCH_BIN=/path/to/jobq` (the previous commit's
//! build, say), every part is measured with this build and then with that
//! one, and the table prints both beside each other with `value /
//! previous`. Run:
//! `cargo bench --bench throughput [-- --parts spawn,drain,e2e,submit,latency,scale,cli
//!  --n 2000 --threads C --clients 16 --seconds 3 --submit-clients 16,256
//!  --batch-jobs 100000 --latency-jobs 1000 --scale-jobs 1000000
//!  --cli-runs 200 --cli-queued 100000]`.
//! Figures go to docs/benchmarks.md with the command and the machine.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Build, Daemon};

const TERMINAL: [&str; 3] = ["succeeded", "failed", "cancelled"];
const BATCH: usize = 1000;

struct Opts {
    parts: Vec<String>,
    n: usize,
    threads: usize,
    clients: usize,
    seconds: f64,
    submit_clients: Vec<usize>,
    batch_jobs: usize,
    latency_jobs: usize,
    scale_jobs: usize,
    cli_runs: usize,
    cli_queued: usize,
}

const ALL_PARTS: [&str; 7] = ["spawn", "drain", "e2e", "submit", "latency", "scale", "cli"];
const USAGE: &str = "use --parts spawn,drain,e2e,submit,latency,scale,cli --n N --threads C \
--clients 16 --seconds S --submit-clients 16,256 --batch-jobs N --latency-jobs N \
--scale-jobs N --cli-runs N --cli-queued N";

fn parse_args(cpus: usize) -> Opts {
    let mut o = Opts {
        parts: ALL_PARTS.iter().map(|p| p.to_string()).collect(),
        n: 2000,
        threads: cpus,
        clients: 16,
        seconds: 3.0,
        submit_clients: vec![16, 256],
        batch_jobs: 100_000,
        latency_jobs: 1000,
        scale_jobs: 1_000_000,
        cli_runs: 200,
        cli_queued: 100_000,
    };
    let mut args = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> T {
        v.and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number; {USAGE}"))
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--parts" => {
                o.parts = args
                    .next()
                    .expect("--parts a,b,c")
                    .split(',')
                    .map(|p| {
                        assert!(ALL_PARTS.contains(&p), "unknown part {p:?}; {USAGE}");
                        p.to_owned()
                    })
                    .collect()
            }
            "--n" => o.n = num(&arg, args.next()),
            "--threads" => o.threads = num(&arg, args.next()),
            "--clients" => o.clients = num(&arg, args.next()),
            "--seconds" => o.seconds = num(&arg, args.next()),
            "--submit-clients" => {
                o.submit_clients = args
                    .next()
                    .expect("--submit-clients 16,256")
                    .split(',')
                    .map(|c| num("--submit-clients", Some(c.to_owned())))
                    .collect()
            }
            "--batch-jobs" => o.batch_jobs = num(&arg, args.next()),
            "--latency-jobs" => o.latency_jobs = num(&arg, args.next()),
            "--scale-jobs" => o.scale_jobs = num(&arg, args.next()),
            "--cli-runs" => o.cli_runs = num(&arg, args.next()),
            "--cli-queued" => o.cli_queued = num(&arg, args.next()),
            "--bench" => {}
            other => panic!("unknown argument {other:?}; {USAGE}"),
        }
    }
    assert!(o.n > 0 && o.threads > 0 && o.clients > 0, "{USAGE}");
    o
}

/// One figure as one build measured it, beside its reference from the
/// same run.
struct Row {
    figure: String,
    value: f64,
    reference: f64,
    decimals: usize,
}

impl Row {
    fn new(figure: impl Into<String>, value: f64, reference: f64, decimals: usize) -> Row {
        Row {
            figure: figure.into(),
            value,
            reference,
            decimals,
        }
    }
}

fn ratio(value: f64, reference: f64) -> String {
    if reference > 0.0 {
        format!("{:.2}", value / reference)
    } else {
        "—".to_owned()
    }
}

/// The table's header: value, reference and ratio for this build, and the
/// same for the previous one when `JOBQ_BENCH_BIN` names it.
fn header(builds: usize) {
    if builds > 1 {
        println!("| part | figure | value | reference | ratio | previous | previous's reference | previous's ratio | value / previous |");
        println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    } else {
        println!("| part | figure | value | reference | ratio |");
        println!("| --- | --- | ---: | ---: | ---: |");
    }
    let _ = std::io::stdout().flush();
}

/// Prints one part's rows: `measured[b]` holds build `b`'s rows, in the
/// same order for every build; the first build names the figures.
fn print_rows(part: &str, measured: &[Vec<Row>]) {
    for (i, row) in measured[0].iter().enumerate() {
        let d = row.decimals;
        let mut line = format!(
            "| {part} | {} | {:.d$} | {:.d$} | {} |",
            row.figure,
            row.value,
            row.reference,
            ratio(row.value, row.reference)
        );
        for other in &measured[1..] {
            let o = &other[i];
            line.push_str(&format!(
                " {:.d$} | {:.d$} | {} | {} |",
                o.value,
                o.reference,
                ratio(o.value, o.reference),
                ratio(row.value, o.value)
            ));
        }
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
}

/// Measures one part with every build in turn (this build first), so the
/// two sets of figures come from one sitting.
fn each_build(builds: &[Build], mut part: impl FnMut(&Build) -> Vec<Row>) -> Vec<Vec<Row>> {
    builds
        .iter()
        .map(|b| {
            eprintln!("  with {} ({})", b.label, b.bin.display());
            part(b)
        })
        .collect()
}

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(120))
}

/// A daemon with `workers` = `threads`, fsync durability and room for
/// `max_queued` waiting jobs.
fn daemon(build: &Build, threads: usize, max_queued: usize) -> Daemon {
    Daemon::start_with(
        build,
        &format!(
            "log = \"warn\"\nworkers = {threads}\ndurability = \"fsync\"\nmax_queued = {}\n",
            max_queued.max(1_000_000)
        ),
    )
}

fn set_paused(d: &Daemon, paused: bool) {
    ureq::patch(&format!("{}/v1/queues/default", d.url))
        .send_json(json!({ "paused": paused }))
        .expect("pause/resume the queue");
}

/// Submits `n` `true` jobs in batches of 1,000 from one client; returns
/// each batch's (jobs, seconds).
fn submit_batches(d: &Daemon, n: usize) -> Vec<(usize, f64)> {
    let agent = agent();
    let url = format!("{}/v1/jobs/batch", d.url);
    let mut times = Vec::with_capacity(n.div_ceil(BATCH));
    let mut left = n;
    while left > 0 {
        let k = left.min(BATCH);
        let body = json!({ "jobs": vec![json!({"command": ["true"]}); k] });
        let start = Instant::now();
        let res = agent.post(&url).send_json(&body).expect("batch accepted");
        // The answer holds every job; read it whole, but do not parse it.
        std::io::copy(&mut res.into_body().into_reader(), &mut std::io::sink())
            .expect("read batch answer");
        times.push((k, start.elapsed().as_secs_f64()));
        left -= k;
    }
    times
}

/// The `default` queue's counts by state.
fn default_counts(agent: &ureq::Agent, d: &Daemon) -> Value {
    let queues: Value = agent
        .get(&format!("{}/v1/queues", d.url))
        .call()
        .expect("GET /v1/queues")
        .body_mut()
        .read_json()
        .expect("queues json");
    queues["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "default"))
        .map(|q| q["counts"].clone())
        .unwrap_or(Value::Null)
}

fn count(counts: &Value, states: &[&str]) -> u64 {
    states.iter().filter_map(|s| counts[*s].as_u64()).sum()
}

/// Polls until `n` jobs of the default queue are terminal; warns on
/// stderr when some did not succeed.
fn wait_terminal(d: &Daemon, n: usize) {
    let agent = agent();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let counts = default_counts(&agent, d);
        if count(&counts, &TERMINAL) >= n as u64 {
            let ok = count(&counts, &["succeeded"]);
            if ok < n as u64 {
                eprintln!("warning: only {ok} of {n} jobs succeeded: {counts}");
            }
            return;
        }
        assert!(Instant::now() < deadline, "jobs did not finish: {counts}");
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------- spawn

/// `/bin/true` processes per second, `threads` at a time.
fn spawn_rate(n: usize, threads: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let next = next.clone();
            thread::spawn(move || {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let out = Command::new("/bin/true")
                        .stdin(Stdio::null())
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .spawn()
                        .expect("spawn /bin/true")
                        .wait_with_output()
                        .expect("reap /bin/true");
                    assert!(out.status.success());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("spawn thread");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------- drain, e2e

/// Jobs/s from resuming a paused queue holding `n` jobs until all are
/// terminal.
fn drain_rate(build: &Build, n: usize, threads: usize) -> f64 {
    let d = daemon(build, threads, n);
    set_paused(&d, true);
    submit_batches(&d, n);
    let start = Instant::now();
    set_paused(&d, false);
    wait_terminal(&d, n);
    n as f64 / start.elapsed().as_secs_f64()
}

/// Jobs/s with `clients` submitting `n` jobs one by one while they run.
fn e2e_rate(build: &Build, n: usize, threads: usize, clients: usize) -> f64 {
    let d = daemon(build, threads, n);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (url, next) = (format!("{}/v1/jobs", d.url), next.clone());
            thread::spawn(move || {
                let agent = agent();
                let body = json!({"command": ["true"]});
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    agent
                        .post(&url)
                        .send_json(&body)
                        .expect("submission accepted");
                }
            })
        })
        .collect();
    wait_terminal(&d, n);
    let rate = n as f64 / start.elapsed().as_secs_f64();
    for h in handles {
        h.join().expect("client thread");
    }
    rate
}

// ---------------------------------------------------------------- submit

/// Single submissions/s by `clients` keep-alive clients over `seconds`,
/// on a paused queue.
fn submit_rate(build: &Build, threads: usize, clients: usize, seconds: f64) -> f64 {
    let d = daemon(build, threads, 0);
    set_paused(&d, true);
    support::submissions_per_second(&d, clients, seconds)
}

/// The request of one single submission, as the load generator sends it.
fn submit_request(addr: &str) -> Vec<u8> {
    let body = br#"{"command":["true"]}"#;
    let mut request = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Single submissions/s to jobq (paused queue, fsync) from `clients`
/// connections of [`support::load`], the generator beanstalkd gets too.
fn submit_rate_raw(build: &Build, threads: usize, clients: usize, seconds: f64) -> f64 {
    let d = daemon(build, threads, 0);
    set_paused(&d, true);
    let addr = d.url.trim_start_matches("http://").to_owned();
    let request = submit_request(&addr);
    support::load::requests_per_second(
        &addr,
        clients,
        seconds,
        &request,
        support::load::Answer::Http,
    )
}

/// beanstalkd, found on PATH or installed from Debian (root with apt-get);
/// `None` (said loudly) when neither works.
fn beanstalkd() -> Option<std::path::PathBuf> {
    let found = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    };
    if let Some(path) = found("beanstalkd") {
        return Some(path);
    }
    eprintln!("submit: beanstalkd is not installed; installing it (apt-get install beanstalkd)");
    let installed = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "beanstalkd",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        eprintln!("submit: SKIPPED the beanstalkd reference: cannot install beanstalkd (not root, or no apt-get)");
        return None;
    }
    found("beanstalkd")
}

/// beanstalkd 1.x with `-f0` (an fsync per put) on a binlog in a temp dir:
/// `put`s/s from `clients` connections of the same load generator.
fn beanstalkd_rate(bin: &std::path::Path, clients: usize, seconds: f64) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(bin)
        .args(["-l", "127.0.0.1", "-p", &port.to_string(), "-f0", "-b"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("start beanstalkd");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "beanstalkd did not listen");
        thread::sleep(Duration::from_millis(10));
    }
    let rate = support::load::requests_per_second(
        &addr,
        clients,
        seconds,
        b"put 0 0 60 4\r\ntrue\r\n",
        support::load::Answer::Line("INSERTED"),
    );
    let _ = child.kill();
    let _ = child.wait();
    rate
}

/// Jobs/s submitted in batches of 1,000 by one client, on a paused queue.
fn batch_rate(build: &Build, threads: usize, n: usize) -> f64 {
    let d = daemon(build, threads, n);
    set_paused(&d, true);
    let times = submit_batches(&d, n);
    n as f64 / times.iter().map(|t| t.1).sum::<f64>()
}

// ---------------------------------------------------------------- latency

fn seconds_between(a: &str, b: &str) -> f64 {
    let a: jiff::Timestamp = a.parse().expect("time");
    let b: jiff::Timestamp = b.parse().expect("time");
    b.duration_since(a).as_secs_f64()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct Latencies {
    /// created_at → started_at, ms, sorted.
    api: Vec<f64>,
    /// POST start → `running` event received, ms, sorted.
    client: Vec<f64>,
    /// `Command::spawn` of `/bin/true`, ms, sorted.
    spawn: Vec<f64>,
}

fn latencies(build: &Build, threads: usize, jobs: usize) -> Latencies {
    let mut spawn: Vec<f64> = (0..jobs)
        .map(|_| {
            let start = Instant::now();
            let child = Command::new("/bin/true")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn /bin/true");
            let took = start.elapsed().as_secs_f64() * 1e3;
            child.wait_with_output().expect("reap /bin/true");
            took
        })
        .collect();

    let d = daemon(build, threads, 0);
    // One event stream for the whole run, opened before the first job:
    // (job id, state, arrival time) for every state change.
    let (tx, rx) = mpsc::channel::<(String, String, Instant)>();
    let events = ureq::Agent::config_builder()
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
        .get(&format!("{}/v1/events?queue=default", d.url))
        .call()
        .expect("GET /v1/events");
    thread::spawn(move || {
        for line in BufReader::new(events.into_body().into_reader()).lines() {
            let Ok(line) = line else { return };
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let now = Instant::now();
            let Ok(ev) = serde_json::from_str::<Value>(data.trim()) else {
                continue;
            };
            let (Some(id), Some(state)) = (ev["id"].as_str(), ev["state"].as_str()) else {
                continue;
            };
            if tx.send((id.to_owned(), state.to_owned(), now)).is_err() {
                return;
            }
        }
    });
    let agent = agent();
    let mut api = Vec::with_capacity(jobs);
    let mut client = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let start = Instant::now();
        let job: Value = agent
            .post(&format!("{}/v1/jobs", d.url))
            .send_json(json!({"command": ["sleep", "0.05"]}))
            .expect("submit")
            .body_mut()
            .read_json()
            .expect("job json");
        let id = job["id"].as_str().expect("id").to_owned();
        let mut running = None;
        loop {
            let (ev_id, state, at) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("job events");
            if ev_id != id {
                continue;
            }
            if state == "running" {
                running = Some(at);
            }
            if TERMINAL.contains(&state.as_str()) {
                break;
            }
        }
        let running = running.expect("a running event before the end");
        client.push(running.duration_since(start).as_secs_f64() * 1e3);
        let job: Value = agent
            .get(&format!("{}/v1/jobs/{id}", d.url))
            .call()
            .expect("get job")
            .body_mut()
            .read_json()
            .expect("job json");
        api.push(
            seconds_between(
                job["created_at"].as_str().expect("created_at"),
                job["started_at"].as_str().expect("started_at"),
            ) * 1e3,
        );
    }
    for v in [&mut api, &mut client, &mut spawn] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    Latencies { api, client, spawn }
}

// ---------------------------------------------------------------- scale

fn rss_kib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Apparent size of everything under `path`, like `du -sb`.
fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median time of `GET /v1/jobs{query}` (first page), read to the end.
fn list_page_ms(d: &Daemon, query: &str) -> f64 {
    let agent = agent();
    let url = format!("{}/v1/jobs{query}", d.url);
    median_ms(5, || {
        let res = agent.get(&url).call().expect("GET /v1/jobs");
        std::io::copy(&mut res.into_body().into_reader(), &mut std::io::sink()).expect("read list");
    })
}

fn cli_list_ms(build: &Build, d: &Daemon) -> f64 {
    median_ms(3, || {
        let status = Command::new(&build.bin)
            .args(["--server", &d.url, "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run jobq list");
        assert!(status.success(), "jobq list failed");
    })
}

fn scale(build: &Build, threads: usize, jobs: usize) -> Vec<Row> {
    let mut d = daemon(build, threads, jobs + BATCH);
    set_paused(&d, true);
    // References: the same daemon, empty.
    let restart_empty = d.restart().as_secs_f64() * 1e3;
    let rss_empty = rss_kib(d.pid()) / 1024.0;
    let page_empty = list_page_ms(&d, "");
    let failed_empty = list_page_ms(&d, "?state=failed");
    let cli_empty = cli_list_ms(build, &d);

    eprintln!("scale: submitting {jobs} jobs");
    let times = submit_batches(&d, jobs);
    let tenth = times.len().div_ceil(10);
    let rate = |ts: &[(usize, f64)]| {
        ts.iter().map(|t| t.0).sum::<usize>() as f64 / ts.iter().map(|t| t.1).sum::<f64>()
    };
    let first = rate(&times[..tenth]);
    let last = rate(&times[times.len() - tenth..]);
    let rss = rss_kib(d.pid()) / 1024.0;
    let data = dir_bytes(d.data_dir()) as f64 / (1 << 20) as f64;
    let one: Value = agent()
        .get(&format!("{}/v1/jobs?limit=1", d.url))
        .call()
        .expect("GET /v1/jobs")
        .body_mut()
        .read_json()
        .expect("list json");
    let job_bytes = serde_json::to_vec(&one["jobs"][0]).expect("job").len();
    let json_mib = (jobs * job_bytes) as f64 / (1 << 20) as f64;
    let page = list_page_ms(&d, "");
    let failed = list_page_ms(&d, "?state=failed");
    let cli = cli_list_ms(build, &d);
    let restart = d.restart().as_secs_f64() * 1e3;
    let queued = count(&default_counts(&agent(), &d), &["queued"]);
    if queued != jobs as u64 {
        eprintln!("warning: {queued} of {jobs} jobs queued after the restart");
    }

    let k = format!("{jobs} jobs");
    vec![
        Row::new(
            format!("batch submit jobs/s, last 10% (ref: first 10%), {k}"),
            last,
            first,
            0,
        ),
        Row::new(
            format!("daemon RSS MiB at {k} (ref: empty)"),
            rss,
            rss_empty,
            1,
        ),
        Row::new(
            format!("data dir MiB at {k} (ref: jobs × {job_bytes} B job JSON)"),
            data,
            json_mib,
            1,
        ),
        Row::new(
            format!("restart (SIGKILL, spawn → /readyz 200) ms at {k} (ref: empty)"),
            restart,
            restart_empty,
            0,
        ),
        Row::new(
            format!("GET /v1/jobs first page ms at {k} (ref: empty)"),
            page,
            page_empty,
            1,
        ),
        Row::new(
            format!("GET /v1/jobs?state=failed (none) ms at {k} (ref: empty)"),
            failed,
            failed_empty,
            2,
        ),
        Row::new(
            format!("`jobq list` ms at {k} (ref: empty)"),
            cli,
            cli_empty,
            1,
        ),
    ]
}

// ---------------------------------------------------------------- cli

/// `jobq <args>` run `runs` times by a shell loop, as a user's script
/// would; invocations per second, process start included.
fn process_rate(build: &Build, runs: usize, args: &[&str]) -> f64 {
    let script = format!(
        "i=0; while [ $i -lt {runs} ]; do \"$0\" \"$@\" >/dev/null || exit 1; i=$((i+1)); done"
    );
    let start = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .arg(&build.bin)
        .args(args)
        .stdin(Stdio::null())
        .status()
        .expect("run sh");
    assert!(status.success(), "a shell loop of jobq {args:?} failed");
    runs as f64 / start.elapsed().as_secs_f64()
}

fn cli(build: &Build, threads: usize, runs: usize, queued: usize) -> Vec<Row> {
    let d = daemon(build, threads, queued + runs * 2);
    set_paused(&d, true);
    let version = process_rate(build, runs, &["--version"]);
    let submit = ["--server", &d.url, "submit", "--", "true"];
    let at_zero = process_rate(build, runs, &submit);
    submit_batches(&d, queued);
    let at_queued = process_rate(build, runs, &submit);
    vec![
        Row::new(
            "`jobq submit -- true` runs/s from a shell loop, 0 queued (ref: `jobq --version`)",
            at_zero,
            version,
            0,
        ),
        Row::new(
            format!(
                "`jobq submit -- true` runs/s from a shell loop, {queued} queued (ref: 0 queued)"
            ),
            at_queued,
            at_zero,
            0,
        ),
    ]
}

// ---------------------------------------------------------------- main

fn main() {
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let o = parse_args(cpus);
    let has = |p: &str| o.parts.iter().any(|q| q == p);
    let builds = support::builds();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "`cargo bench --bench throughput{}{}`",
        if args.is_empty() { "" } else { " -- " },
        args.join(" ")
    );
    println!();
    println!(
        "CPUs: {cpus}, threads/workers C = {}, kernel: {kernel}",
        o.threads
    );
    for b in &builds {
        println!("{}: {}", b.label, b.bin.display());
    }
    println!();
    header(builds.len());

    let n = o.n;
    let c = o.threads;
    // The reference for every jobs/s figure; measured once, first, and
    // shared by every build.
    let needs_spawn = ["spawn", "drain", "e2e", "submit"].iter().any(|p| has(p));
    let spawn = if needs_spawn {
        eprintln!("spawn: {n} /bin/true, {c} threads");
        spawn_rate(n, c)
    } else {
        0.0
    };
    let ref_name = format!("ref: spawn {n} /bin/true, {c} threads");
    if needs_spawn {
        let figure = format!("/bin/true spawned+reaped/s, {n}, {c} threads (piped out/err)");
        let same = || vec![Row::new(figure.clone(), spawn, spawn, 0)];
        print_rows("spawn", &builds.iter().map(|_| same()).collect::<Vec<_>>());
    }
    if has("drain") {
        eprintln!("drain: {n} jobs");
        let figure = format!(
            "jobs/s, {n} `true` queued then resumed, workers={c} ({ref_name}; target ≥ 0.75)"
        );
        let rows = each_build(&builds, |b| {
            vec![Row::new(figure.clone(), drain_rate(b, n, c), spawn, 0)]
        });
        print_rows("drain", &rows);
    }
    if has("e2e") {
        eprintln!("e2e: {n} jobs, {} clients", o.clients);
        let figure = format!(
            "jobs/s, {n} `true` submitted by {} clients while running ({ref_name}; target ≥ 0.65)",
            o.clients
        );
        let rows = each_build(&builds, |b| {
            vec![Row::new(
                figure.clone(),
                e2e_rate(b, n, c, o.clients),
                spawn,
                0,
            )]
        });
        print_rows("e2e", &rows);
    }
    if has("submit") {
        if let Some(bin) = beanstalkd() {
            let clients = o.clients;
            eprintln!(
                "submit: beanstalkd -f0 and jobq, {clients} connections, {} s each",
                o.seconds
            );
            let figure = format!("fsync'd single submissions/s, {clients} connections, one load generator (ref: beanstalkd -f0 puts/s, same generator, measured before each build; target ≥ 2.00)");
            let rows = each_build(&builds, |b| {
                let beanstalk = beanstalkd_rate(&bin, clients, o.seconds);
                let jobq = submit_rate_raw(b, c, clients, o.seconds);
                vec![Row::new(figure.clone(), jobq, beanstalk, 0)]
            });
            print_rows("submit", &rows);
        }
        let rows = each_build(&builds, |b| {
            let mut rows: Vec<Row> = o
                .submit_clients
                .iter()
                .map(|&clients| {
                    eprintln!("submit: {clients} clients, {} s", o.seconds);
                    Row::new(
                        format!(
                            "fsync'd single submissions/s, {clients} clients, paused ({ref_name})"
                        ),
                        submit_rate(b, c, clients, o.seconds),
                        spawn,
                        0,
                    )
                })
                .collect();
            eprintln!("submit: {} jobs in batches of {BATCH}", o.batch_jobs);
            rows.push(Row::new(
                format!(
                    "batch-submitted jobs/s, {} in batches of {BATCH}, 1 client, paused ({ref_name})",
                    o.batch_jobs
                ),
                batch_rate(b, c, o.batch_jobs),
                spawn,
                0,
            ));
            rows
        });
        print_rows("submit", &rows);
    }
    if has("latency") {
        eprintln!("latency: {} jobs", o.latency_jobs);
        let j = o.latency_jobs;
        let rows = each_build(&builds, |b| {
            let l = latencies(b, c, j);
            let mut rows = Vec::new();
            for (p, q) in [("p50", 0.50), ("p99", 0.99)] {
                let reference = percentile(&l.spawn, q);
                rows.push(Row::new(
                    format!("submit→running ms {p}, created_at→started_at, {j} jobs (ref: spawn() of /bin/true)"),
                    percentile(&l.api, q),
                    reference,
                    2,
                ));
                rows.push(Row::new(
                    format!("submit→running ms {p}, POST start→`running` event, {j} jobs (ref: spawn() of /bin/true)"),
                    percentile(&l.client, q),
                    reference,
                    2,
                ));
            }
            rows
        });
        print_rows("latency", &rows);
    }
    if has("scale") {
        eprintln!("scale: {} jobs", o.scale_jobs);
        let rows = each_build(&builds, |b| scale(b, c, o.scale_jobs));
        print_rows("scale", &rows);
    }
    if has("cli") {
        eprintln!("cli: {} runs, 0 and {} queued", o.cli_runs, o.cli_queued);
        let rows = each_build(&builds, |b| cli(b, c, o.cli_runs, o.cli_queued));
        print_rows("cli", &rows);
    }
}
