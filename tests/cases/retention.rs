//! Pruning finished jobs: beyond `keep_finished` the oldest go first; past
//! `retention` a finished job goes; `jobq rm` removes one at once. A pruned
//! job and its output answer 404.

use crate::support::{exit_code, wait_for, TestDaemon};

/// Quick jobs run against `keep_finished = 10`.
const RUN: usize = 30;

#[test]
fn beyond_keep_finished_the_oldest_finished_jobs_are_pruned() {
    // One worker: jobs end in submission order, so "oldest" is unambiguous.
    let d = TestDaemon::builder()
        .workers(1)
        .config_toml("keep_finished = 10\n")
        .start();
    let ids: Vec<String> = (0..RUN)
        .map(|i| d.submit_shell(&format!("echo {i}")).id)
        .collect();
    let last = d.wait_terminal(&ids[RUN - 1]);
    assert_eq!(last.state.as_str(), "succeeded", "{last:?}");
    wait_for("at most 10 succeeded jobs to be listed", || {
        d.list_all("state=succeeded&").len() <= 10
    });
    let kept = d.all_job_ids();
    let want: std::collections::BTreeSet<String> = ids[RUN - 10..].iter().cloned().collect();
    assert_eq!(kept, want, "the 10 newest finished jobs are kept");
    for id in &ids[..RUN - 10] {
        let (status, body) = d.get_json(&format!("/v1/jobs/{id}"));
        assert_eq!(status, 404, "a pruned job: {body}");
        let (status, _) = d.get_bytes(&format!("/v1/jobs/{id}/output"));
        assert_eq!(status, 404, "a pruned job's output");
    }
    let newest = &ids[RUN - 1];
    assert_eq!(
        d.output(newest, "stdout"),
        format!("{}\n", RUN - 1).as_bytes()
    );
}

#[test]
fn past_retention_a_finished_job_is_pruned() {
    let d = TestDaemon::builder()
        .config_toml("retention = \"1s\"\n")
        .start();
    let gate = d.gate();
    let running = d.submit_shell(&gate.shell());
    let done = d.submit_shell("echo bye");
    let job = d.wait_terminal(&done.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    wait_for("the finished job to be pruned", || {
        d.get(&format!("/v1/jobs/{}", done.id)).status == 404
    });
    let (status, _) = d.get_bytes(&format!("/v1/jobs/{}/output", done.id));
    assert_eq!(status, 404);
    // Only finished jobs are pruned.
    assert_eq!(d.state(&running.id), "running");
    gate.open();
}

#[test]
fn jobq_rm_removes_a_finished_job_now() {
    let d = TestDaemon::start();
    let job = d.submit_shell("echo out");
    d.wait_terminal(&job.id);
    let out = d.cli(&["rm", &job.id]);
    assert_eq!(exit_code(&out), 0, "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), job.id);
    let (status, _) = d.get_json(&format!("/v1/jobs/{}", job.id));
    assert_eq!(status, 404);
    let (status, _) = d.get_bytes(&format!("/v1/jobs/{}/output", job.id));
    assert_eq!(status, 404);

    // A job that has not ended is not removed.
    let gate = d.gate();
    let running = d.submit_shell(&gate.shell());
    d.wait_running(&running.id);
    let out = d.cli(&["rm", &running.id]);
    assert_eq!(exit_code(&out), 2, "{out:?}");
    assert_eq!(d.state(&running.id), "running");
}
