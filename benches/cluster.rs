//! Jobs per second with 1, 2 and 3 real daemons on one real PostgreSQL
//! server (default durability: fsync and synchronous commit), all on this
//! machine, beside the references measured in the same run:
//!
//! - `spawn`: N `/bin/true` spawned and reaped by C threads (C = CPUs),
//!   the ceiling of any row whose jobs are processes;
//! - `sled, 1 daemon`: the same drain on a daemon of its own (the embedded
//!   store), the figure the cluster rows trade for running on several
//!   machines;
//! - River's published figure (riverqueue.com/docs/benchmarks: about 46k
//!   jobs/s "on a commodity laptop (8-core 2022 M2 MacBook Air) with 2,000
//!   worker goroutines", no-op jobs worked in-process, burn-down of 1M),
//!   quoted, not measured: its jobs are function calls, ours processes.
//!
//! Then one job writing 64 MiB of random bytes, on a sled daemon and on a
//! node of a cluster (which copies its output to the database before its
//! end is recorded): MiB/s from its submission until it succeeded.
//!
//! Each row: N `true` jobs submitted (`POST /v1/jobs/batch`, 500 a batch,
//! spread over the nodes) to the paused `default` queue, then resumed; jobs/s
//! from the resume until `GET /v1/queues` shows all N succeeded (polled
//! every 10 ms). Every daemon has `workers` = C. A fresh server per row.
//! Run: `cargo bench --bench cluster [-- --n 3000 --nodes 1,2,3 --workers C
//! --no-fsync]`.
//! Figures go to docs/benchmarks.md with the command and the machine.

#[allow(dead_code)] // shared with the tests
#[path = "../tests/support/postgres.rs"]
mod postgres;
#[allow(dead_code)] // shared with the other benches
mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use postgres::TestPostgres;
use support::{agent, Daemon};

/// River's published figure, jobs/s (see the module docs).
const RIVER_PUBLISHED: f64 = 46_000.0;

struct Args {
    n: usize,
    nodes: Vec<usize>,
    /// `--no-fsync`: the server without fsync and synchronous commit, to
    /// tell the disk's share from the rest.
    no_fsync: bool,
    /// `--workers W`: each daemon's `workers` (default: the CPUs).
    workers: Option<usize>,
}

fn args() -> Args {
    let mut out = Args {
        n: 3000,
        nodes: vec![1, 2, 3],
        no_fsync: false,
        workers: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        match argv[i].as_str() {
            "--n" => {
                out.n = argv[i + 1].parse().expect("--n N");
                i += 1;
            }
            "--nodes" => {
                out.nodes = argv[i + 1]
                    .split(',')
                    .map(|s| s.parse().expect("--nodes 1,2,3"))
                    .collect();
                i += 1;
            }
            "--no-fsync" => out.no_fsync = true,
            "--workers" => {
                out.workers = Some(argv[i + 1].parse().expect("--workers W"));
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// `/bin/true` spawned and reaped by `threads` threads, per second.
fn spawn_rate(n: usize, threads: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let share = n / threads + usize::from(t < n % threads);
            std::thread::spawn(move || {
                for _ in 0..share {
                    std::process::Command::new("/bin/true")
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .output()
                        .expect("spawn /bin/true");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("spawner");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn call(agent: &ureq::Agent, method: &str, url: &str, body: &Value) -> Value {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .expect("a request");
    let mut res = agent.run(req).expect("the daemon answers");
    let text = res.body_mut().read_to_string().unwrap_or_default();
    assert!(res.status().is_success(), "{method} {url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn succeeded(agent: &ureq::Agent, url: &str) -> u64 {
    let queues = call(agent, "GET", &format!("{url}/v1/queues"), &Value::Null);
    queues["queues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|q| q["name"] == "default")
        .filter_map(|q| q["counts"]["succeeded"].as_u64())
        .sum()
}

/// Submits `n` jobs to the paused `default` queue over `daemons`, resumes
/// it, and returns jobs/s until all succeeded.
fn drain(daemons: &[Daemon], n: usize) -> f64 {
    let agent = agent(Duration::from_secs(120));
    let first = &daemons[0].url;
    call(
        &agent,
        "PATCH",
        &format!("{first}/v1/queues/default"),
        &json!({ "paused": true, "create": true }),
    );
    let mut left = n;
    let mut i = 0;
    while left > 0 {
        let take = left.min(500);
        let jobs: Vec<Value> = (0..take).map(|_| json!({ "command": ["true"] })).collect();
        let url = &daemons[i % daemons.len()].url;
        call(
            &agent,
            "POST",
            &format!("{url}/v1/jobs/batch"),
            &json!({ "jobs": jobs }),
        );
        left -= take;
        i += 1;
    }
    let start = Instant::now();
    call(
        &agent,
        "PATCH",
        &format!("{first}/v1/queues/default"),
        &json!({ "paused": false }),
    );
    let deadline = start + Duration::from_secs(600);
    while succeeded(&agent, first) < n as u64 {
        assert!(Instant::now() < deadline, "the drain did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// One job that writes `file` to stdout: MiB/s from its submission until
/// it succeeded, its output captured (and, on a cluster, copied to the
/// database before the end is recorded).
fn output_rate(d: &Daemon, file: &std::path::Path) -> f64 {
    let agent = agent(Duration::from_secs(600));
    let bytes = std::fs::metadata(file).expect("the output file").len() as f64;
    let start = Instant::now();
    let job = call(
        &agent,
        "POST",
        &format!("{}/v1/jobs", d.url),
        &json!({ "command": ["cat", file.to_str().unwrap()] }),
    );
    let id = job["id"].as_str().expect("an id").to_owned();
    let done = call(
        &agent,
        "GET",
        &format!("{}/v1/jobs/{id}?wait=5m", d.url),
        &Value::Null,
    );
    assert_eq!(done["state"], "succeeded", "{done}");
    bytes / (1 << 20) as f64 / start.elapsed().as_secs_f64()
}

fn node_config(pg: &TestPostgres, node: usize, workers: usize) -> String {
    format!(
        "workers = {workers}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nnode = \"node-{node}\"\n",
        pg.url("postgres")
    )
}

fn main() {
    let args = args();
    let cpus = cpus();
    let c = args.workers.unwrap_or(cpus);
    println!(
        "cluster bench: n = {}, workers = {c} per daemon, {cpus} CPUs, PostgreSQL {}",
        args.n,
        if args.no_fsync {
            "without fsync"
        } else {
            "with fsync (its default)"
        }
    );
    let spawn = spawn_rate(args.n, cpus);
    let sled = {
        let d = Daemon::start(&format!("workers = {c}\n"));
        drain(std::slice::from_ref(&d), args.n)
    };
    let mut rows = Vec::new();
    for &nodes in &args.nodes {
        let pg = if args.no_fsync {
            TestPostgres::start()
        } else {
            TestPostgres::start_durable()
        };
        let daemons: Vec<Daemon> = (0..nodes)
            .map(|i| Daemon::start(&node_config(&pg, i, c)))
            .collect();
        let rate = drain(&daemons, args.n);
        drop(daemons);
        rows.push((nodes, rate));
    }
    println!();
    println!("| run | jobs/s | / spawn | / sled | / 1 node |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    println!("| spawn (`/bin/true`, {cpus} threads) | {spawn:.0} | 1.00 | | |");
    println!(
        "| sled, 1 daemon | {sled:.0} | {:.2} | 1.00 | |",
        sled / spawn
    );
    let one = rows.iter().find(|(n, _)| *n == 1).map(|(_, r)| *r);
    for (nodes, rate) in &rows {
        let per_one = one.map_or(String::new(), |o| format!("{:.2}", rate / o));
        println!(
            "| PostgreSQL, {nodes} daemon{} | {rate:.0} | {:.2} | {:.2} | {per_one} |",
            if *nodes == 1 { "" } else { "s" },
            rate / spawn,
            rate / sled
        );
    }
    println!(
        "| River, published (8-core M2, in-process no-op jobs) | {RIVER_PUBLISHED:.0} | | | |"
    );

    // Output: one job writing 64 MiB of random bytes (incompressible, as
    // PostgreSQL would otherwise compress it away).
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("random");
    let mut bytes = vec![0u8; 64 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&file, &bytes).expect("write the output file");
    let sled = output_rate(&Daemon::start(&format!("workers = {c}\n")), &file);
    let pg = if args.no_fsync {
        TestPostgres::start()
    } else {
        TestPostgres::start_durable()
    };
    let node = Daemon::start(&node_config(&pg, 0, c));
    let cluster = output_rate(&node, &file);
    println!();
    println!("| one job, 64 MiB of output | MiB/s | / sled |");
    println!("| --- | ---: | ---: |");
    println!("| sled, 1 daemon | {sled:.0} | 1.00 |");
    println!(
        "| PostgreSQL, 1 daemon (output copied to the database) | {cluster:.0} | {:.2} |",
        cluster / sled
    );
}
