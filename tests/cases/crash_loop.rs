//! The durability promise under fire: clients submit continuously while
//! jobs run, the daemon is SIGKILLed at a random moment, restarted, and
//! checked. Every round: every submission that got a 2xx exists, no job is
//! listed twice, the store opens, and every job (those interrupted
//! included) ends `succeeded` — none stays `running`.
//!
//! `JOBQ_CRASH_ROUNDS` sets the number of rounds (default 20, run in CI);
//! `JOBQ_CRASH_SEED` replays a run (the seed is printed).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::support::{wait_for, TestDaemon};

/// Rounds run by default: the issue asks for at least 20 in CI.
const DEFAULT_ROUNDS: usize = 20;
/// Concurrent submitting clients.
const CLIENTS: usize = 4;

/// Submits jobs until `stop` or until the daemon stops answering; returns
/// the ids that were acknowledged with 201.
fn submitter(url: String, stop: Arc<AtomicBool>, n: usize) -> Vec<String> {
    let agent = crate::support::agent(Duration::from_secs(5), true);
    let mut acked = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        // Mostly instant jobs, some that are likely running at the kill.
        let spec = if i.is_multiple_of(8) {
            serde_json::json!({"shell": "sleep 0.2", "name": format!("c{n}-{i}")})
        } else {
            serde_json::json!({"command": ["true"], "name": format!("c{n}-{i}")})
        };
        let body = serde_json::to_vec(&spec).expect("serialize");
        match agent.post(&format!("{url}/v1/jobs")).send(&body[..]) {
            Ok(mut res) if res.status() == 201 => {
                // Killed while the body was on its way: acknowledged, but
                // the id never arrived, so there is nothing to check.
                let Ok(body) = res.body_mut().read_to_vec() else {
                    break;
                };
                let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    break;
                };
                acked.push(body["id"].as_str().expect("job id").to_owned());
            }
            Ok(res) => panic!("unexpected answer {}", res.status()),
            // Killed mid-request: not acknowledged, so not promised.
            Err(_) => break,
        }
    }
    acked
}

#[test]
fn kill_9_at_random_moments_loses_and_duplicates_nothing() {
    let rounds: usize = std::env::var("JOBQ_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var("JOBQ_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash loop: {rounds} rounds, JOBQ_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut d = TestDaemon::builder().workers(2).start();
    let mut acked: BTreeSet<String> = BTreeSet::new();

    for round in 1..=rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|n| {
                let (url, stop) = (d.url(), stop.clone());
                thread::spawn(move || submitter(url, stop, n))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.u64(50..400)));
        d.kill9();
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            acked.extend(c.join().expect("submitter thread"));
        }

        d.restart();
        let listed: Vec<String> = d.list_all("").into_iter().map(|j| j.id).collect();
        let unique: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(
            listed.len(),
            unique.len(),
            "round {round} (seed {seed}): a job is listed twice"
        );
        let lost: Vec<&String> = acked.difference(&unique).collect();
        assert!(
            lost.is_empty(),
            "round {round} (seed {seed}): {} acknowledged job(s) lost: {lost:?}",
            lost.len()
        );
        wait_for(
            &format!("round {round}: every job to succeed after recovery"),
            || {
                d.list_all("state=waiting,scheduled,queued,running,failed,cancelled&")
                    .is_empty()
            },
        );
    }
    println!(
        "crash loop: {rounds} rounds, {} acknowledged jobs, none lost",
        acked.len()
    );
    assert!(
        !acked.is_empty(),
        "no submission was acknowledged: the test tested nothing"
    );
}
