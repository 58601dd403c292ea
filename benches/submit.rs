//! Submission throughput against the real daemon: fsync'd single
//! submissions per second at 1, 16 and 256 concurrent keep-alive clients,
//! with `durability = "relaxed"` beside them as the no-fsync reference, on
//! a paused queue so no spawning competes.
//!
//! Run: `cargo bench --bench submit [-- --seconds S --clients 1,16,256]`.
//! Figures go to docs/benchmarks.md with the command and the machine.

mod support;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::Daemon;

/// Submissions per second by `clients` threads over `seconds`.
fn submit_rate(durability: &str, clients: usize, seconds: f64) -> f64 {
    let d = Daemon::start(&format!("durability = \"{durability}\"\nlog = \"warn\"\n"));
    ureq::request("PATCH", &format!("{}/v1/queues/default", d.url))
        .send_json(serde_json::json!({"paused": true}))
        .expect("pause the queue");
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (url, done, stop) = (d.url.clone(), done.clone(), stop.clone());
            thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(30))
                    .build();
                let body = serde_json::json!({"command": ["true"]});
                while !stop.load(Ordering::Relaxed) {
                    agent
                        .post(&format!("{url}/v1/jobs"))
                        .send_json(&body)
                        .expect("submission accepted");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let mut seconds = 3.0;
    let mut clients = vec![1usize, 16, 256];
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds S")
            }
            "--clients" => {
                clients = args
                    .next()
                    .expect("--clients 1,16,256")
                    .split(',')
                    .map(|c| c.parse().expect("a number of clients"))
                    .collect()
            }
            "--bench" => {}
            other => panic!("unknown argument {other:?}; use --seconds S --clients 1,16,256"),
        }
    }
    println!("| clients | fsync submissions/s | relaxed submissions/s | fsync / relaxed |");
    println!("| ---: | ---: | ---: | ---: |");
    for c in clients {
        let fsync = submit_rate("fsync", c, seconds);
        let relaxed = submit_rate("relaxed", c, seconds);
        println!(
            "| {c} | {fsync:.0} | {relaxed:.0} | {:.2} |",
            fsync / relaxed
        );
        let _ = std::io::stdout().flush();
    }
}
