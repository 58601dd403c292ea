//! How long `jobq serve` takes from SIGTERM to its exit when nothing is
//! running: idle and fresh, after some jobs ran, and with 50,000 jobs in
//! the store. A unit's restart waits this long; the target is under 200 ms.
//!
//! Run: `cargo bench --bench shutdown [-- --rounds N]`. Figures go to
//! docs/benchmarks.md with the command and the machine.

mod support;

use std::time::Duration;

use support::{Build, Daemon};

/// The median of `rounds` SIGTERM-to-exit times of daemons `prepare`d first.
fn median_exit(build: &Build, rounds: usize, prepare: impl Fn(&Daemon)) -> Duration {
    let mut times: Vec<Duration> = (0..rounds)
        .map(|_| {
            let mut d = Daemon::start_with(build, "log = \"warn\"\n");
            prepare(&d);
            d.terminate()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// Submits `n` jobs in batches of 10,000, each delayed an hour (so they
/// stay in the store, scheduled).
fn scheduled(d: &Daemon, n: usize) {
    let agent = support::agent(Duration::from_secs(60));
    for chunk in 0..n.div_ceil(10_000) {
        let size = (n - chunk * 10_000).min(10_000);
        let jobs: Vec<_> = (0..size)
            .map(|_| serde_json::json!({"command": ["true"], "delay": "1h"}))
            .collect();
        agent
            .post(&format!("{}/v1/jobs/batch", d.url))
            .send_json(serde_json::json!({ "jobs": jobs }))
            .expect("submit a batch");
    }
}

/// Runs `n` jobs of `true` and waits for the last.
fn ran(d: &Daemon, n: usize) {
    let agent = support::agent(Duration::from_secs(60));
    let mut last = String::new();
    for _ in 0..n {
        let job: serde_json::Value = agent
            .post(&format!("{}/v1/jobs", d.url))
            .send_json(serde_json::json!({"command": ["true"]}))
            .expect("submit")
            .body_mut()
            .read_json()
            .expect("a job");
        last = job["id"].as_str().unwrap().to_owned();
    }
    agent
        .get(&format!("{}/v1/jobs/{last}?wait=60s", d.url))
        .call()
        .expect("wait for the last job");
}

fn main() {
    let mut rounds = 5;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--rounds" {
            rounds = args
                .next()
                .and_then(|v| v.parse().ok())
                .expect("--rounds N");
        }
    }
    let builds = support::builds();
    let ms = |d: Duration| format!(" {:.1} |", d.as_secs_f64() * 1e3);
    let (mut idle, mut after_jobs, mut stored) = (String::new(), String::new(), String::new());
    for b in &builds {
        idle.push_str(&ms(median_exit(b, rounds, |_| {})));
        after_jobs.push_str(&ms(median_exit(b, rounds, |d| ran(d, 20))));
        stored.push_str(&ms(median_exit(b, rounds.min(3), |d| scheduled(d, 50_000))));
    }
    let labels: String = builds
        .iter()
        .map(|b| format!(" {} ms |", b.label))
        .collect();
    println!("SIGTERM to exit, median of {rounds} daemons (target < 200 ms):");
    println!("| daemon |{labels}");
    println!("| --- |{}", " ---: |".repeat(builds.len()));
    println!("| idle, fresh |{idle}");
    println!("| after 20 jobs ran |{after_jobs}");
    println!("| 50,000 scheduled jobs stored |{stored}");
}
