//! Job resource limits (`limits`: memory, cpu_time, processes,
//! open_files): a job past one ends `failed` with reason `limit` and an
//! error naming it; defaults come from `[jobs]` and `[queues.NAME]`, which a
//! spec may only lower; each attempt records its `usage`.

use std::time::{Duration, Instant};

use jobq::job::FailReason;
use serde_json::json;

use crate::support::{assert_error, TestDaemon};

#[test]
fn a_job_allocating_past_its_memory_limit_fails_with_reason_limit() {
    let d = TestDaemon::start();
    let job = d.submit(json!({
        "command": ["perl", "-e", "$x = 'a' x (400 * 1024 * 1024); sleep 60"],
        "limits": { "memory": "64MiB" },
    }));
    let done = d.wait_terminal(&job.id);
    assert_eq!(done.state.as_str(), "failed", "{done:?}");
    assert_eq!(done.reason, Some(FailReason::Limit), "{done:?}");
    let error = done.error.clone().unwrap_or_default();
    assert!(
        error.contains("limit memory") && error.contains("64.0 MiB"),
        "{error}"
    );
    let usage = done.usage.expect("the attempt's usage");
    assert!(usage.max_rss_bytes > 64 << 20, "{usage:?}");
    let view = d.job(&job.id);
    assert_eq!(view.limits.unwrap().memory.unwrap().0, 64 << 20);
    assert_eq!(done.attempts[0].usage, Some(usage));
}

#[test]
fn cpu_time_stops_a_busy_loop() {
    let d = TestDaemon::start();
    let started = Instant::now();
    let job = d.submit(json!({
        "shell": "while :; do :; done",
        "limits": { "cpu_time": "1s" },
        "timeout": "60s",
    }));
    let done = d.wait_terminal(&job.id);
    assert_eq!(done.reason, Some(FailReason::Limit), "{done:?}");
    assert!(
        done.error
            .clone()
            .unwrap_or_default()
            .contains("limit cpu_time"),
        "{done:?}"
    );
    let usage = done.usage.expect("usage");
    assert!(usage.cpu_user_s + usage.cpu_system_s >= 0.9, "{usage:?}");
    assert!(
        started.elapsed() < Duration::from_secs(55),
        "the timeout stopped it, not the limit"
    );
}

/// As another user than root the kernel refuses forks past the limit
/// (`RLIMIT_NPROC`), so a fork loop never has more than `processes`; the
/// watch reports it.
#[test]
fn a_fork_loop_stays_within_processes_and_is_reported() {
    let d = TestDaemon::builder()
        .config_toml("[jobs]\nuser = \"nobody\"\n")
        .start();
    let job = d.submit(json!({
        // bash retries a refused fork (dash gives up at once): the loop
        // goes on pressing at the limit until it is stopped.
        "command": ["bash", "-c", "while :; do sleep 30 & done"],
        "cwd": "/",
        "limits": { "processes": 20 },
    }));
    let mut most = 0;
    let done = loop {
        most = most.max(TestDaemon::carrying(&job.id).len());
        let view = d.job(&job.id);
        if view.state.as_str() == "failed" || view.state.as_str() == "succeeded" {
            break view;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = String::from_utf8_lossy(&d.output(&job.id, "stderr")).into_owned();
    assert_eq!(done.reason, Some(FailReason::Limit), "{done:?} {stderr}");
    assert!(
        done.error
            .clone()
            .unwrap_or_default()
            .contains("limit processes"),
        "{done:?}"
    );
    assert!(most <= 20, "the fork loop had {most} processes at once");
    // Seen pressing at the limit, or told so by bash (a quick loop may end
    // between two looks of a loaded test machine).
    assert!(
        most >= 2 || stderr.contains("fork"),
        "the test saw no fork loop ({most}): {stderr}"
    );
}

#[test]
fn open_files_is_the_jobs_descriptor_limit() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "shell": "ulimit -n", "limits": { "open_files": 64 } }));
    assert_eq!(d.wait_terminal(&job.id).state.as_str(), "succeeded");
    assert_eq!(
        String::from_utf8_lossy(&d.output(&job.id, "stdout")).trim(),
        "64"
    );
}

#[test]
fn queue_and_daemon_defaults_apply_and_a_spec_may_only_lower_them() {
    let d = TestDaemon::builder()
        .config_toml(
            "[jobs]\nlimits = { processes = 50 }\n[queues.small]\nlimits = { memory = \"100MiB\" }\n",
        )
        .start();
    let plain = d.submit(json!({ "shell": "true" }));
    let limits = plain.limits.clone().expect("the daemon's limits");
    assert_eq!(limits.processes, Some(50));
    assert_eq!(limits.memory, None);
    let small = d.submit(json!({ "shell": "true", "queue": "small" }));
    let limits = small.limits.clone().expect("the queue's limits");
    assert_eq!(limits.memory.map(|m| m.0), Some(100 << 20));
    assert_eq!(
        limits.processes,
        Some(50),
        "the queue keeps the daemon's other limits"
    );
    let lower =
        d.submit(json!({ "shell": "true", "queue": "small", "limits": { "memory": "10MiB" } }));
    assert_eq!(lower.limits.unwrap().memory.map(|m| m.0), Some(10 << 20));
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "shell": "true", "queue": "small", "limits": { "memory": "1GiB" } }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("limits.memory"));
    assert!(body.to_string().contains("queue \\\"small\\\""), "{body}");
    let (status, body) = d.post_json(
        "/v1/jobs",
        &json!({ "shell": "true", "limits": { "processes": 51 } }),
    );
    assert_error(
        status,
        &body,
        400,
        "invalid_field",
        Some("limits.processes"),
    );
    assert_eq!(d.job_count(), 3, "a refused job was stored");
}

#[test]
fn bad_limits_are_refused_by_name_and_nothing_is_stored() {
    let d = TestDaemon::start();
    for (limits, field) in [
        (json!({ "memory": "lots" }), "limits.memory"),
        (json!({ "memory": 10 }), "limits.memory"),
        (json!({ "memory": -1 }), "limits.memory"),
        (json!({ "cpu_time": "soon" }), "limits.cpu_time"),
        (json!({ "processes": 0 }), "limits.processes"),
        (json!({ "open_files": 2 }), "limits.open_files"),
        (json!({ "files": 10 }), "limits.files"),
        (json!("64MiB"), "limits"),
    ] {
        let (status, body) = d.post_json("/v1/jobs", &json!({ "shell": "true", "limits": limits }));
        assert_error(status, &body, 400, "invalid_field", Some(field));
    }
    assert_eq!(d.job_count(), 0);
    let out = d.cli(&["submit", "--memory", "lots", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a size"));
}

#[test]
fn each_attempt_records_its_usage_and_show_prints_it() {
    let d = TestDaemon::start();
    let job = d.submit(json!({
        // Holds the 32 MiB for half a second after its CPU work, so the
        // usage watch (every 200 ms) sees them even on a loaded machine.
        "command": ["perl", "-e", "$x = 'a' x (32 * 1024 * 1024); $i = 0; $i++ while $i < 3_000_000; select(undef, undef, undef, 0.5); exit 1"],
        "retries": 1,
        "backoff": "0s",
    }));
    let done = d.wait_terminal(&job.id);
    assert_eq!(done.attempts.len(), 2, "{done:?}");
    for a in &done.attempts {
        let usage = a.usage.expect("each attempt's usage");
        assert!(usage.max_rss_bytes >= 32 << 20, "{usage:?}");
        assert!(usage.cpu_user_s > 0.0, "{usage:?}");
    }
    let out = d.cli(&["show", &job.id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("usage:") && text.contains("max rss"),
        "{text}"
    );
    assert!(text.contains("MAX RSS"), "{text}");
}
