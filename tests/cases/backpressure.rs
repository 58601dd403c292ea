//! `max_queued`: past that many jobs waiting to start, a submission gets
//! 429 `queue_full` (and the CLI exits 2 saying so) until room is made.

use serde_json::json;

use crate::support::{assert_error, exit_code, TestDaemon};

#[test]
fn past_max_queued_submissions_are_refused_until_there_is_room() {
    let d = TestDaemon::builder()
        .config_toml("max_queued = 5\n")
        .start();
    d.patch_queue("held", json!({ "paused": true }));
    let spec = json!({ "command": ["true"], "queue": "held" });
    let ids: Vec<String> = (0..5).map(|_| d.submit(spec.clone()).id).collect();

    let (status, body) = d.post_json("/v1/jobs", &spec);
    assert_error(status, &body, 429, "queue_full", None);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("5 jobs wait to start") && message.contains("max_queued = 5"),
        "the refusal says how many wait and the limit: {message}"
    );
    // Other queues share the limit: it counts every job not yet started.
    let (status, body) = d.post_json("/v1/jobs", &json!({ "command": ["true"] }));
    assert_error(status, &body, 429, "queue_full", None);
    // A delayed job waits to start too.
    let (status, body) = d.post_json("/v1/jobs", &json!({ "command": ["true"], "delay": "1h" }));
    assert_error(status, &body, 429, "queue_full", None);
    assert_eq!(d.job_count(), 5, "a refused submission created a job");

    let out = d.cli(&["submit", "--queue", "held", "--", "true"]);
    assert_eq!(exit_code(&out), 2, "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        err.starts_with("jobq:") && err.contains("full"),
        "the CLI says the queue is full: {err}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(d.job_count(), 5);

    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", ids[0]));
    assert_eq!(status, 200, "{body}");
    let job = d.submit(spec.clone());
    assert_eq!(job.state.as_str(), "queued", "{job:?}");
    let (status, body) = d.post_json("/v1/jobs", &spec);
    assert_error(status, &body, 429, "queue_full", None);
}
