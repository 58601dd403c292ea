//! Submission throughput against the real daemon: fsync'd single
//! submissions per second at 1, 16 and 256 concurrent keep-alive clients,
//! with `durability = "relaxed"` beside them as the no-fsync reference, on
//! a paused queue so no spawning competes.
//!
//! Run: `cargo bench --bench submit [-- --seconds S --clients 1,16,256]`.
//! Figures go to docs/benchmarks.md with the command and the machine.

mod support;

use std::io::Write;

use support::{submissions_per_second, Build, Daemon};

/// Submissions per second by `clients` threads over `seconds`.
fn submit_rate(build: &Build, durability: &str, clients: usize, seconds: f64) -> f64 {
    let d = Daemon::start_with(
        build,
        &format!("durability = \"{durability}\"\nlog = \"warn\"\n"),
    );
    ureq::patch(&format!("{}/v1/queues/default", d.url))
        .send_json(serde_json::json!({"paused": true}))
        .expect("pause the queue");
    submissions_per_second(&d, clients, seconds)
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
    println!("| build | clients | fsync submissions/s | relaxed submissions/s | fsync / relaxed |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let builds = support::builds();
    for c in clients {
        for b in &builds {
            let fsync = submit_rate(b, "fsync", c, seconds);
            let relaxed = submit_rate(b, "relaxed", c, seconds);
            println!(
                "| {} | {c} | {fsync:.0} | {relaxed:.0} | {:.2} |",
                b.label,
                fsync / relaxed
            );
            let _ = std::io::stdout().flush();
        }
    }
}
