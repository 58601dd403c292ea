//! Whether work under the engine's lock grows linearly with its size: the
//! shapes issue 12 found quadratic, each timed at n and 10·n in one run.
//! A linear operation takes about 10× as long at 10·n; a quadratic one
//! about 100×.
//!
//! - **batch with keys**: one `POST /v1/jobs/batch` of n specs, each with
//!   its own idempotency key (the in-batch key lookup);
//! - **after, deduplicated**: one job whose `after` has n entries, n/2 jobs
//!   each named twice (the dedupe of `after`);
//! - **fan-out**: a job with n dependents succeeds; time until all n are
//!   released (the cascade, under the lock).
//!
//! Run: `cargo bench --bench scaling [-- --n N]` (default 1,000 and
//! 10,000). Figures go to docs/benchmarks.md with the command.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{Build, Daemon};

fn agent() -> ureq::Agent {
    support::agent(Duration::from_secs(600))
}

fn post(agent: &ureq::Agent, url: &str, body: &Value) -> Value {
    agent
        .post(url)
        .send_json(body)
        .expect("accepted")
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_json()
        .expect("JSON answer")
}

fn paused_daemon(build: &Build) -> Daemon {
    let d = Daemon::start_with(build, "log = \"warn\"\nworkers = 2\nmax_body = \"64MiB\"\n");
    ureq::patch(&format!("{}/v1/queues/default", d.url))
        .send_json(json!({"paused": true}))
        .expect("pause the queue");
    d
}

/// Seconds for one batch of `n` jobs, each with a key of its own.
fn batch_with_keys(build: &Build, n: usize) -> f64 {
    let d = paused_daemon(build);
    let jobs: Vec<Value> = (0..n)
        .map(|i| json!({"command": ["true"], "idempotency_key": format!("k{i}")}))
        .collect();
    let start = Instant::now();
    post(
        &agent(),
        &format!("{}/v1/jobs/batch", d.url),
        &json!({ "jobs": jobs }),
    );
    start.elapsed().as_secs_f64()
}

/// Ids of `n` fresh jobs in a paused queue.
fn jobs(d: &Daemon, n: usize) -> Vec<String> {
    let agent = agent();
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let k = (n - ids.len()).min(10_000);
        let answer = post(
            &agent,
            &format!("{}/v1/jobs/batch", d.url),
            &json!({ "jobs": vec![json!({"command": ["true"]}); k] }),
        );
        for job in answer["jobs"].as_array().expect("jobs") {
            ids.push(job["id"].as_str().expect("id").to_owned());
        }
    }
    ids
}

/// Seconds for one submission whose `after` has `n` entries: `n / 2` jobs,
/// each twice (at most 10,000 entries are allowed).
fn after_deduplicated(build: &Build, n: usize) -> f64 {
    let d = paused_daemon(build);
    let ids = jobs(&d, n / 2);
    let after: Vec<&String> = ids.iter().chain(ids.iter()).collect();
    let start = Instant::now();
    post(
        &agent(),
        &format!("{}/v1/jobs", d.url),
        &json!({"command": ["true"], "after": after}),
    );
    start.elapsed().as_secs_f64()
}

/// Seconds from the success of a job with `n` dependents until all of them
/// are released.
fn fan_out(build: &Build, n: usize) -> f64 {
    let d = paused_daemon(build);
    let agent = agent();
    let parent = post(
        &agent,
        &format!("{}/v1/jobs", d.url),
        &json!({"command": ["true"]}),
    );
    let parent = parent["id"].as_str().expect("id").to_owned();
    let mut left = n;
    while left > 0 {
        let k = left.min(10_000);
        let spec = json!({"command": ["true"], "after": [parent], "queue": "held"});
        post(
            &agent,
            &format!("{}/v1/jobs/batch", d.url),
            &json!({ "jobs": vec![spec; k] }),
        );
        left -= k;
    }
    ureq::patch(&format!("{}/v1/queues/held", d.url))
        .send_json(json!({"paused": true}))
        .expect("pause the dependents' queue");
    let start = Instant::now();
    ureq::patch(&format!("{}/v1/queues/default", d.url))
        .send_json(json!({"paused": false}))
        .expect("resume the parent's queue");
    loop {
        let queues: Value = agent
            .get(&format!("{}/v1/queues", d.url))
            .call()
            .expect("GET /v1/queues")
            .body_mut()
            .read_json()
            .expect("queues");
        let held = queues["queues"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == "held"))
            .map(|q| q["counts"]["queued"].as_u64().unwrap_or(0))
            .unwrap_or(0);
        if held as usize == n {
            return start.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let mut n = 1_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--n" => n = args.next().and_then(|v| v.parse().ok()).expect("--n N"),
            "--bench" => {}
            other => panic!("unknown argument {other:?}; use --n N"),
        }
    }
    let big = 10 * n;
    println!("| operation | build | n = {n} | n = {big} | ratio (linear ≈ 10) |");
    println!("| --- | --- | ---: | ---: | ---: |");
    type Part = fn(&Build, usize) -> f64;
    let builds = support::builds();
    let parts: [(&str, Part); 3] = [
        ("batch with keys", batch_with_keys),
        ("after, deduplicated", after_deduplicated),
        ("fan-out release", fan_out),
    ];
    for (name, part) in parts {
        for b in &builds {
            let small = part(b, n);
            let large = part(b, big);
            println!(
                "| {name} | {} | {:.1} ms | {:.1} ms | {:.1} |",
                b.label,
                small * 1e3,
                large * 1e3,
                large / small
            );
        }
    }
}
