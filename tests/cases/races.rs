//! Races in the engine, each driven open on purpose rather than hoped for:
//! a job must never run twice at once, never start before its time, and a
//! change a client was told about must never be undone by recovery.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{agent, assert_holds, TestDaemon};

/// For every job id, the process groups of live (not zombie) processes that
/// carry it in `JOBQ_JOB_ID` right now.
fn groups_by_job() -> BTreeMap<String, BTreeSet<u32>> {
    let mut out: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() < 3 || fields[0] == "Z" {
            continue;
        }
        let Ok(pgid) = fields[2].parse::<u32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(path.join("environ")) else {
            continue;
        };
        if let Some(id) = env
            .split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(b"JOBQ_JOB_ID="))
        {
            out.entry(String::from_utf8_lossy(id).into_owned())
                .or_default()
                .insert(pgid);
        }
    }
    out
}

/// How long the cancel-and-retry storm runs: the issue saw two groups of
/// one job within 12 s in every run; 10 s of 8 clients gives the window
/// thousands of chances.
const STORM: Duration = Duration::from_secs(15);

#[test]
fn a_job_cancelled_and_retried_under_load_never_runs_twice_at_once() {
    let d = TestDaemon::builder().workers(2).start();
    let ids: Vec<String> = (0..51)
        .map(|i| {
            d.submit(json!({"command": ["sleep", "0.3"], "name": format!("storm-{i}")}))
                .id
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let url = d.url();
    // Half the clients cancel, half retry, all on the same few jobs, so that
    // a cancel often lands between another client's retry and its announce.
    let hot: Vec<String> = ids[..4].to_vec();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let (hot, stop, url) = (hot.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                let agent = agent(Duration::from_secs(30), true);
                let action = if c % 2 == 0 { "cancel" } else { "retry" };
                let mut n = c;
                while !stop.load(Ordering::Relaxed) {
                    let id = &hot[n % hot.len()];
                    n += 1;
                    let _ = agent
                        .post(&format!("{url}/v1/jobs/{id}/{action}"))
                        .send_empty();
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut twice = None;
    while start.elapsed() < STORM && twice.is_none() {
        twice = groups_by_job()
            .into_iter()
            .find(|(id, groups)| ids.contains(id) && groups.len() > 1);
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    assert_eq!(twice, None, "a job ran in two process groups at once");
}

#[test]
fn a_stale_timer_after_a_restart_does_not_start_a_job_early() {
    let mut d = TestDaemon::start();
    // Fails, and waits 3 s (±25%) for its first retry.
    let job = d.submit(json!({"shell": "exit 1", "retries": 5, "backoff": "3s"}));
    let scheduled = d.wait_job(&job.id, "its first retry to be scheduled", |j| {
        j.state.as_str() == "scheduled"
    });
    // Restart while the retry waits: the timer is reloaded from the store.
    d.restart();
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200, "{body}");
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/retry", job.id));
    assert_eq!(status, 200, "{body}");
    // The retried attempt fails at once and waits 3 s × 2^(attempt-1)
    // (±25%), far longer than the cancelled retry's old due time.
    let again = d.wait_job(&job.id, "the manual retry to fail and be scheduled", |j| {
        j.state.as_str() == "scheduled" && j.attempt > scheduled.attempt + 1
    });
    let due = again.run_at.expect("a scheduled job has run_at");
    let old_due = scheduled.run_at.expect("a scheduled job has run_at");
    assert!(due > old_due, "{due} vs {old_due}");
    let attempts = again.attempts.len();
    let watch_until = old_due
        .checked_add(jiff::SignedDuration::from_secs(2))
        .unwrap();
    let window = watch_until
        .duration_since(jiff::Timestamp::now())
        .unsigned_abs()
        .max(Duration::from_secs(1));
    assert_holds(
        "the job waits for its own backoff, not the cancelled one's",
        window,
        || {
            let j = d.job(&job.id);
            j.attempts.len() == attempts && j.state.as_str() == "scheduled"
        },
    );
}

#[test]
fn a_change_during_recovery_is_refused_and_a_cancel_is_not_undone() {
    // A job runs; the daemon dies; the first requests after the restart race
    // recovery, which re-queues the interrupted job. Other running jobs
    // make recovery take a little longer.
    let mut d = TestDaemon::builder().workers(21).start();
    for round in 0..5 {
        let gate = d.gate();
        let job = d.submit_shell(&gate.shell());
        let others: Vec<String> = (0..20).map(|_| d.submit_shell(&gate.shell()).id).collect();
        d.wait_running(&job.id);
        for id in &others {
            d.wait_running(id);
        }
        d.kill9();
        let addr_file = d.data_dir().join("jobq.addr");
        let _ = std::fs::remove_file(&addr_file);
        let id = job.id.clone();
        // Cancel from the moment the new daemon writes its address; after
        // each answer, ask whether recovery was done.
        let hammer = std::thread::spawn(move || {
            let agent = agent(Duration::from_secs(5), false);
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut seen = Vec::new();
            while Instant::now() < deadline {
                let Some(addr) = std::fs::read_to_string(&addr_file)
                    .ok()
                    .and_then(|t| t.lines().next().map(str::to_owned))
                else {
                    std::thread::yield_now();
                    continue;
                };
                let Ok(resp) = agent
                    .post(&format!("http://{addr}/v1/jobs/{id}/cancel"))
                    .send_empty()
                else {
                    continue;
                };
                let cancel = resp.status().as_u16();
                let ready = agent
                    .get(&format!("http://{addr}/readyz"))
                    .call()
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                seen.push((cancel, ready));
                if cancel == 200 || cancel == 409 {
                    break;
                }
            }
            seen
        });
        d.restart();
        let seen = hammer.join().expect("hammer thread");
        gate.open();
        for (cancel, ready) in &seen {
            assert!(
                !(*cancel == 200 && *ready == 503),
                "round {round}: a cancel was taken while recovery was not done: {seen:?}"
            );
        }
        if seen.last().is_some_and(|(cancel, _)| *cancel == 200) {
            // Told cancelled: it must stay cancelled and not run again.
            let ended = d.wait_terminal(&job.id);
            assert_eq!(
                ended.state.as_str(),
                "cancelled",
                "round {round}: {ended:?}"
            );
            assert_holds(
                "a cancelled job is not run again",
                Duration::from_millis(300),
                || d.state(&job.id) == "cancelled",
            );
        }
        for id in others.iter().chain([&job.id]) {
            d.wait_terminal(id);
        }
    }
}
