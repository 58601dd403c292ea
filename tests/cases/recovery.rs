//! Stopping and starting again: a SIGTERMed daemon drains and exits 0; a
//! SIGKILLed daemon restarted on its data dir has every job it accepted, and
//! handles the job that was running by policy (`on_interrupted`).

use std::collections::BTreeSet;

use jobq::api::JobView;
use jobq::job::FailReason;
use serde_json::json;

use crate::support::{wait_for, TestDaemon};

/// Jobs accepted before the crash: enough that a daemon acknowledging
/// before its writes are durable would likely lose some of the last ones.
const ACCEPTED: usize = 200;

/// Waits until every job in `ids` is terminal and returns them all.
fn wait_all_terminal(d: &TestDaemon, ids: &BTreeSet<String>) -> Vec<JobView> {
    let mut jobs = Vec::new();
    wait_for(&format!("all {} jobs to end", ids.len()), || {
        jobs = d
            .list_all("")
            .into_iter()
            .filter(|j| ids.contains(&j.id))
            .collect();
        jobs.len() == ids.len() && jobs.iter().all(JobView::is_terminal)
    });
    jobs
}

#[test]
fn after_a_crash_every_accepted_job_runs_and_the_interrupted_one_is_requeued() {
    let mut d = TestDaemon::builder().workers(1).start();
    let gate = d.gate();
    let starts = d.path("blocker-starts");
    let blocker = d.submit_shell(&format!(
        "echo started >> '{}'; {}",
        starts.display(),
        gate.shell()
    ));
    d.wait_running(&blocker.id);

    let mut accepted = BTreeSet::from([blocker.id.clone()]);
    for i in 1..ACCEPTED {
        let (status, body) = d.post_json(
            "/v1/jobs",
            &json!({ "command": ["true"], "name": format!("job-{i}") }),
        );
        assert!(
            (200..300).contains(&status),
            "submission {i}: {status} {body}"
        );
        accepted.insert(body["id"].as_str().expect("an id").to_owned());
    }
    assert_eq!(accepted.len(), ACCEPTED);
    d.kill9();

    d.restart();
    let after: BTreeSet<String> = d.all_job_ids();
    let lost: Vec<&String> = accepted.difference(&after).collect();
    assert!(
        lost.is_empty(),
        "{} accepted job(s) lost in the crash: {lost:?}",
        lost.len()
    );

    gate.open();
    let jobs = wait_all_terminal(&d, &accepted);
    for job in &jobs {
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
        let want_attempt = if job.id == blocker.id { 2 } else { 1 };
        assert_eq!(job.attempt, want_attempt, "{job:?}");
    }
    let starts = std::fs::read_to_string(&starts).unwrap();
    assert_eq!(
        starts.lines().count(),
        2,
        "the interrupted job ran again: {starts:?}"
    );
}

#[test]
fn with_on_interrupted_fail_the_interrupted_job_fails() {
    let mut d = TestDaemon::builder()
        .workers(1)
        .config_toml("on_interrupted = \"fail\"\n")
        .start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);
    let rest: BTreeSet<String> = (0..5).map(|_| d.submit_shell("true").id).collect();
    d.kill9();
    gate.open();

    d.restart();
    let job = d.wait_terminal(&blocker.id);
    assert_eq!(job.state.as_str(), "failed", "{job:?}");
    assert_eq!(job.reason, Some(FailReason::Interrupted), "{job:?}");
    assert_eq!(job.attempt, 1, "{job:?}");
    assert!(
        job.error.as_deref().is_some_and(|e| !e.is_empty()),
        "{job:?}"
    );
    for job in wait_all_terminal(&d, &rest) {
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    }
}

#[test]
fn finished_jobs_and_their_output_survive_a_crash() {
    let mut d = TestDaemon::start();
    let ok = d.submit_shell("echo kept; echo also >&2");
    let bad = d.submit_shell("exit 9");
    let ok = d.wait_terminal(&ok.id);
    let bad = d.wait_terminal(&bad.id);
    d.kill9();
    d.restart();
    assert_eq!(d.job(&ok.id), ok);
    assert_eq!(d.job(&bad.id), bad);
    assert_eq!(d.output(&ok.id, "stdout"), b"kept\n");
    assert_eq!(d.output(&ok.id, "stderr"), b"also\n");
}

/// What a client was shown is on disk: a job GET showed ended is still
/// ended, as shown, after a kill -9 right after the answer. (A daemon that
/// answered from memory before the flush would run it again after the
/// restart.) The job ends while another writes output, so its end's flush
/// may wait for company and carries more; GET is polled without pause so
/// the kill lands in that window.
#[test]
fn a_state_a_client_was_shown_survives_a_crash() {
    // About one round in ten catches a daemon that answers too early.
    for round in 0..30 {
        let mut d = TestDaemon::builder().workers(2).start();
        d.submit_shell("yes jobq | head -c 200000000; sleep 5");
        let id = d.submit(json!({ "command": ["true"] })).id;
        let shown = loop {
            let job = d.job(&id);
            if job.is_terminal() {
                break job;
            }
        };
        d.kill9();
        d.restart();
        assert_eq!(
            d.job(&id),
            shown,
            "round {round}: a job shown ended changed after a crash"
        );
    }
}

#[test]
fn sigterm_stops_running_jobs_and_exits_0_and_nothing_is_lost() {
    let mut d = TestDaemon::builder()
        .workers(1)
        .config_toml("shutdown_grace = \"300ms\"\nkill_grace = \"1s\"\n")
        .start();
    // Runs for long on its first attempt only, so a re-run after the
    // restart (if that is the policy) ends at once.
    let ran = d.path("ran");
    let running = d.submit_shell(&format!(
        "if [ -e '{0}' ]; then exit 0; fi; touch '{0}'; sleep 100 & sleep 100",
        ran.display()
    ));
    let pgid = d
        .wait_running(&running.id)
        .pid
        .expect("a running job has a pid");
    wait_for(&format!("two processes in group {pgid}"), || {
        TestDaemon::job_processes(pgid, &running.id).len() >= 2
    });
    let queued = d.submit_shell("echo after restart");

    let status = d.terminate();
    assert_eq!(
        status.code(),
        Some(0),
        "a drained daemon exits 0, got {status}"
    );
    wait_for(
        &format!("the stopped job's process group {pgid} to be empty"),
        || TestDaemon::job_processes(pgid, &running.id).is_empty(),
    );

    d.restart();
    let queued = d.wait_terminal(&queued.id);
    assert_eq!(queued.state.as_str(), "succeeded", "{queued:?}");
    assert_eq!(d.output(&queued.id, "stdout"), b"after restart\n");
    // How a job stopped by a shutdown ends is policy; that it ends is not.
    d.wait_terminal(&running.id);
}

#[test]
fn sigterm_lets_running_jobs_finish_within_the_shutdown_grace() {
    let mut d = TestDaemon::builder()
        .workers(2)
        .config_toml("shutdown_grace = \"30s\"\n")
        .start();
    let gate = d.gate();
    let running = d.submit_shell(&format!("{}; echo finished", gate.shell()));
    d.wait_running(&running.id);
    // A second, queued job must not start during the drain.
    let blocker = d.submit_shell(&format!("{}; echo also", gate.shell()));
    d.wait_running(&blocker.id);
    let never = d.path("started-during-drain");
    let queued = d.submit_shell(&format!("touch '{}'", never.display()));

    d.send_sigterm();
    wait_for("the daemon to refuse submissions while draining", || {
        d.post_json("/v1/jobs", &serde_json::json!({"shell": "true"}))
            .0
            == 503
    });
    gate.open();
    let status = d.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "a drained daemon exits 0, got {status}"
    );
    assert!(!never.exists(), "a queued job started during the drain");

    d.restart();
    for id in [&running.id, &blocker.id] {
        let done = d.job(id);
        assert_eq!(
            done.state.as_str(),
            "succeeded",
            "finished within the grace: {done:?}"
        );
        assert_eq!(done.attempt, 1, "not interrupted, so not re-run: {done:?}");
    }
    assert_eq!(d.output(&running.id, "stdout"), b"finished\n");
    let queued = d.wait_terminal(&queued.id);
    assert_eq!(queued.attempt, 1, "{queued:?}");
}

#[test]
fn a_crashed_daemon_leaves_no_job_process_running_after_restart() {
    let mut d = TestDaemon::builder()
        .workers(1)
        .config_toml("on_interrupted = \"fail\"\n")
        .start();
    let job = d.submit_shell("sleep 300 & sleep 300");
    let pgid = d
        .wait_running(&job.id)
        .pid
        .expect("a running job has a pid");
    wait_for(&format!("three processes in group {pgid}"), || {
        TestDaemon::job_processes(pgid, &job.id).len() >= 3
    });
    // `running` shows as soon as it is written; an acknowledged submission
    // means a flush since, so the start is on disk too and recovery must
    // find the job interrupted (not merely queued, as a crash before that
    // flush would leave it; its processes are killed then as well).
    d.submit_shell("true");

    d.kill9();
    // The leader dies with the daemon (PR_SET_PDEATHSIG)...
    wait_for(
        &format!("the job's leader {pgid} to die with the daemon"),
        || !TestDaemon::job_processes(pgid, &job.id).contains(&pgid),
    );
    // ...and what it started is killed by recovery before anything else.
    d.restart();
    wait_for(
        &format!("process group {pgid} to be empty after recovery"),
        || TestDaemon::job_processes(pgid, &job.id).is_empty(),
    );
    let failed = d.job(&job.id);
    assert_eq!(failed.state.as_str(), "failed", "{failed:?}");
    assert_eq!(
        failed.reason.map(|r| format!("{r:?}")).as_deref(),
        Some("Interrupted")
    );
}

#[test]
fn relaxed_durability_runs_jobs_and_keeps_them_across_a_clean_restart() {
    // sled's own flush is a minute away, so the job's end must come from the
    // drain's final flush. (The drain once skipped it with relaxed
    // durability; a CI run then found the job queued after the restart.)
    let mut d = TestDaemon::builder()
        .config_toml("durability = \"relaxed\"\nflush_interval = \"60s\"\n")
        .start();
    let job = d.submit_shell("echo relaxed");
    let done = d.wait_terminal(&job.id);
    assert_eq!(done.state.as_str(), "succeeded", "{done:?}");
    let status = d.terminate();
    assert_eq!(status.code(), Some(0));
    d.restart();
    assert_eq!(d.job(&job.id).state.as_str(), "succeeded");
    assert_eq!(d.output(&job.id, "stdout"), b"relaxed\n");
}

#[test]
fn a_second_sigterm_exits_at_once_and_recovery_handles_the_rest() {
    let mut d = TestDaemon::builder()
        .workers(1)
        .config_toml("shutdown_grace = \"1h\"\n")
        .start();
    let gate = d.gate();
    let running = d.submit_shell(&format!("{}; echo done", gate.shell()));
    d.wait_running(&running.id);
    d.send_sigterm();
    // The drain would wait an hour for the job; the second signal does not.
    wait_for("the daemon to refuse work while draining", || {
        d.post_json("/v1/jobs", &serde_json::json!({"shell": "true"}))
            .0
            == 503
    });
    d.send_sigterm();
    let status = d.wait_exit();
    assert_eq!(
        status.code(),
        Some(1),
        "a second signal exits at once with 1, got {status}"
    );
    gate.open();
    d.restart();
    let job = d.wait_terminal(&running.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    assert_eq!(job.attempt, 2, "re-run after the forced exit: {job:?}");
}

#[test]
fn recovery_kills_the_processes_of_a_job_whose_start_never_reached_the_disk() {
    use std::os::unix::process::CommandExt;

    let mut d = TestDaemon::builder().workers(1).start();
    let (status, _) = d.patch_json("/v1/queues/default", &json!({ "paused": true }));
    assert_eq!(status, 200);
    let job = d.submit_shell("true");
    // What a crash between a spawn and the flush of the start leaves: a
    // process carrying a job's id while the store still has it queued.
    let mut left = std::process::Command::new("sleep")
        .arg("300")
        .env("JOBQ_JOB_ID", &job.id)
        .process_group(0)
        .spawn()
        .unwrap();
    // A process of some other daemon's job is none of ours.
    let foreign_id = jobq::job::JobId::new().to_string();
    let mut foreign = std::process::Command::new("sleep")
        .arg("300")
        .env("JOBQ_JOB_ID", &foreign_id)
        .process_group(0)
        .spawn()
        .unwrap();

    d.kill9();
    d.restart();
    wait_for("the leftover process to be killed by recovery", || {
        left.try_wait().unwrap().is_some()
    });
    assert_eq!(d.get("/readyz").status, 200);
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "a process with an id not in this store is left alone"
    );
    foreign.kill().unwrap();
    foreign.wait().unwrap();
}
