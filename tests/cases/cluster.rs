//! Several real daemons on one real PostgreSQL database (docs/cluster.md):
//! every job runs once across them, a queue's limit holds across them, a
//! killed node's jobs run again elsewhere within the lease, a stopped node
//! that comes back does not finish its old jobs, a cancel on one node stops
//! a job on another, and an event stream on one node sees jobs end on
//! another, a schedule fires once a second across them and another node
//! fires it once its leader stops. Plus `[store]`'s bad forms.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::*;

/// A node's config: `[store]` on `pg` as `node`, with `lease` and `extra`
/// TOML on top.
fn node_config(pg: &TestPostgres, node: &str, lease: &str, extra: &str) -> String {
    format!(
        "{extra}\n[store]\nbackend = \"postgres\"\nurl = \"{}\"\nnode = \"{node}\"\nlease = \"{lease}\"\n",
        pg.url("postgres")
    )
}

fn start_node(
    pg: &TestPostgres,
    node: &str,
    workers: usize,
    lease: &str,
    extra: &str,
) -> TestDaemon {
    TestDaemon::builder()
        .workers(workers)
        .config_toml(&node_config(pg, node, lease, extra))
        .start()
}

/// Lines of a file jobs append to (missing: none yet).
fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// How many times each line occurs.
fn tally(lines: &[String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for l in lines {
        *out.entry(l.clone()).or_insert(0) += 1;
    }
    out
}

/// The count of `state` jobs in `queue`, cluster-wide, as node `d` reports.
fn count(d: &TestDaemon, queue: &str, state: &str) -> u64 {
    d.find_queue(queue)
        .and_then(|q| q["counts"][state].as_u64())
        .unwrap_or(0)
}

#[test]
fn three_daemons_run_3000_jobs_and_each_runs_exactly_once() {
    let pg = TestPostgres::start();
    let nodes: Vec<TestDaemon> = ["a", "b", "c"]
        .iter()
        .map(|n| start_node(&pg, n, 8, "30s", ""))
        .collect();
    let runs = nodes[0].path("runs");
    // Each job appends its id: one short write with O_APPEND (`>>`) is
    // atomic, so a job that ran twice shows twice.
    let spec = json!({ "shell": format!("echo $JOBQ_JOB_ID >> {}", runs.display()) });
    let mut ids = Vec::new();
    for batch in 0..30 {
        let node = &nodes[batch % 3];
        let jobs: Vec<Value> = (0..100).map(|_| spec.clone()).collect();
        let (status, body) = node.post_json("/v1/jobs/batch", &json!({ "jobs": jobs }));
        assert_eq!(status, 201, "{body}");
        ids.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(ids.len(), 3000);
    let deadline = Instant::now() + WAIT_TIMEOUT * 4;
    while count(&nodes[1], "default", "succeeded") < 3000 {
        assert!(
            Instant::now() < deadline,
            "3000 jobs did not all succeed: {:?}",
            nodes[1].find_queue("default")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = tally(&lines(&runs));
    assert_eq!(seen.len(), 3000, "every job ran");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs that ran more than once: {twice:?}");
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    for id in ids.iter().step_by(50) {
        let job = nodes[2].job(id);
        assert_eq!(job.state.as_str(), "succeeded");
        *by_node
            .entry(job.node.clone().expect("a cluster job names its node"))
            .or_default() += 1;
    }
    assert!(
        by_node
            .keys()
            .all(|n| ["a", "b", "c"].contains(&n.as_str())),
        "{by_node:?}"
    );
    let (status, body) = nodes[0].get_json("/v1/nodes");
    assert_eq!(status, 200, "{body}");
    let names: Vec<&str> = body["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(
        body["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["state"] == "up"),
        "{body}"
    );
}

#[test]
fn a_queue_limit_of_2_holds_across_three_daemons() {
    let pg = TestPostgres::start();
    let extra = "[queues.two]\nconcurrency = 2\n";
    let nodes: Vec<TestDaemon> = ["a", "b", "c"]
        .iter()
        .map(|n| start_node(&pg, n, 4, "30s", extra))
        .collect();
    let log = nodes[0].path("log");
    let line = format!(
        "echo + >> {log}; sleep 0.2; echo - >> {log}",
        log = log.display()
    );
    let jobs: Vec<Value> = (0..24)
        .map(|_| json!({ "shell": line, "queue": "two" }))
        .collect();
    let (status, body) = nodes[1].post_json("/v1/jobs/batch", &json!({ "jobs": jobs }));
    assert_eq!(status, 201, "{body}");
    let mut most_in_db = 0;
    let deadline = Instant::now() + WAIT_TIMEOUT * 2;
    while count(&nodes[2], "two", "succeeded") < 24 {
        assert!(Instant::now() < deadline, "the jobs did not all end");
        let running: u64 = pg
            .psql(
                "postgres",
                "SELECT count(*) FROM jobq_jobs WHERE queue = 'two' AND state = 'running'",
            )
            .parse()
            .unwrap();
        most_in_db = most_in_db.max(running);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut now, mut most) = (0i32, 0i32);
    for l in lines(&log) {
        now += if l == "+" { 1 } else { -1 };
        most = most.max(now);
    }
    assert!(most <= 2, "{most} jobs of a queue limited to 2 ran at once");
    assert!(
        most_in_db <= 2,
        "the database had {most_in_db} running at once"
    );
    assert_eq!(most, 2, "both slots were used (else this proves nothing)");
}

#[test]
fn a_killed_nodes_jobs_run_again_on_another_within_the_lease_and_nothing_else_twice() {
    let pg = TestPostgres::start();
    let mut b = start_node(&pg, "b", 2, "3s", "on_interrupted = \"requeue\"");
    let runs = b.path("runs");
    let gate = b.gate();
    let blocked = format!("echo $JOBQ_JOB_ID >> {}; {}", runs.display(), gate.shell());
    let on_b: Vec<String> = (0..2)
        .map(|_| b.submit(json!({ "shell": blocked })).id)
        .collect();
    for id in &on_b {
        b.wait_running(id);
    }
    let a = start_node(&pg, "a", 2, "3s", "on_interrupted = \"requeue\"");
    let c = start_node(&pg, "c", 2, "3s", "on_interrupted = \"requeue\"");
    // Some work of a's and c's own, which must not run twice either.
    let quick = json!({ "shell": format!("echo $JOBQ_JOB_ID >> {}", runs.display()) });
    let others: Vec<String> = (0..6).map(|_| a.submit(quick.clone()).id).collect();
    for id in &others {
        assert_eq!(a.wait_terminal(id).state.as_str(), "succeeded");
    }
    // The machine of node b dies: the daemon and its jobs.
    b.kill9();
    b.kill_jobs();
    let killed = Instant::now();
    for id in &on_b {
        let job = a.wait_job(id, "running again as attempt 2", |j| {
            j.state.as_str() == "running" && j.attempt == 2
        });
        assert!(
            ["a", "c"].contains(&job.node.as_deref().unwrap_or("")),
            "{job:?}"
        );
        assert_eq!(
            job.attempts[0].reason,
            Some(jobq::job::FailReason::Interrupted),
            "{job:?}"
        );
        assert!(
            job.attempts[0]
                .error
                .as_deref()
                .unwrap_or("")
                .contains("node b"),
            "{job:?}"
        );
    }
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(3 + 10),
        "re-run {took:?} after the kill; lease 3s"
    );
    let (_, nodes) = c.get_json("/v1/nodes");
    let b_state = nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "b")
        .map(|n| n["state"].clone());
    assert_eq!(b_state, Some(json!("dead")), "{nodes}");
    gate.open();
    for id in &on_b {
        assert_eq!(c.wait_terminal(id).state.as_str(), "succeeded");
    }
    let seen = tally(&lines(&runs));
    for id in &on_b {
        assert_eq!(
            seen.get(id),
            Some(&2),
            "b's job ran on b, then once more: {seen:?}"
        );
    }
    for id in &others {
        assert_eq!(seen.get(id), Some(&1), "other jobs ran once: {seen:?}");
    }
}

#[test]
fn a_stopped_node_that_comes_back_after_its_lease_does_not_finish_its_old_job() {
    let pg = TestPostgres::start();
    let b = start_node(&pg, "b", 1, "2s", "on_interrupted = \"requeue\"");
    let ends = b.path("ends");
    let gate = b.gate();
    let line = format!("{}; echo $JOBQ_JOB_ID >> {}", gate.shell(), ends.display());
    let job = b.submit(json!({ "shell": line }));
    b.wait_running(&job.id);
    let a = start_node(&pg, "a", 1, "2s", "on_interrupted = \"requeue\"");
    signal(b.pid(), rustix::process::Signal::STOP);
    let moved = a.wait_job(&job.id, "running on a as attempt 2", |j| {
        j.state.as_str() == "running" && j.attempt == 2
    });
    assert_eq!(moved.node.as_deref(), Some("a"));
    signal(b.pid(), rustix::process::Signal::CONT);
    // Back, b learns at its next heartbeat that its claim is gone, and
    // stops its copy of the job without recording anything.
    wait_for("b to drop its lost claim", || {
        b.stderr_all().contains("lost its claim")
    });
    wait_for("b's copy of the job to be gone, a's to run", || {
        TestDaemon::carrying(&job.id).len() == 1
    });
    gate.open();
    let done = a.wait_terminal(&job.id);
    assert_eq!(done.state.as_str(), "succeeded", "{done:?}");
    assert_eq!(done.node.as_deref(), Some("a"));
    assert_eq!(done.attempt, 2);
    assert_eq!(
        lines(&ends).join(","),
        job.id,
        "only a's run got to its end"
    );
}

#[test]
fn a_cancel_on_one_node_stops_a_job_running_on_another() {
    let pg = TestPostgres::start();
    let b = start_node(&pg, "b", 1, "30s", "");
    let gate = b.gate();
    let job = b.submit_shell(&gate.shell());
    b.wait_running(&job.id);
    let a = start_node(&pg, "a", 1, "30s", "");
    let (status, body) = a.post_empty(&format!("/v1/jobs/{}/cancel", job.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");
    assert_eq!(body["node"], "b", "{body}");
    assert_eq!(
        body["signal"], "SIGTERM",
        "the process on b was stopped: {body}"
    );
    assert!(
        TestDaemon::carrying(&job.id).is_empty(),
        "no process of the job is left"
    );
}

/// The fire times of schedule `name`'s jobs, as `d` lists them, each as
/// often as a job has it.
fn fire_times(d: &TestDaemon, name: &str) -> Vec<jiff::Timestamp> {
    let prefix = format!("schedule:{name}:");
    let mut times: Vec<jiff::Timestamp> = d
        .list_all("")
        .iter()
        .filter(|j| j.schedule.as_deref() == Some(name))
        .filter_map(|j| {
            j.idempotency_key
                .as_deref()?
                .strip_prefix(&prefix)?
                .parse()
                .ok()
        })
        .collect();
    times.sort();
    times
}

#[test]
fn a_schedule_on_three_daemons_fires_once_a_second_and_another_node_takes_over() {
    let pg = TestPostgres::start();
    let names = ["a", "b", "c"];
    let mut nodes: Vec<TestDaemon> = names
        .iter()
        .map(|n| start_node(&pg, n, 2, "3s", ""))
        .collect();
    let body = serde_json::to_vec(&json!({"cron": "*/1 * * * * *", "job": {"command": ["true"]}}))
        .unwrap();
    let reply = nodes[0].send(
        "PUT",
        "/v1/schedules/tick",
        &[],
        Some(("application/json", &body)),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    // Put on a, seen on b and c.
    for node in &nodes[1..] {
        let (status, list) = node.get_json("/v1/schedules");
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["schedules"][0]["name"], "tick", "{list}");
        assert_eq!(list["schedules"][0]["owner"], "anonymous", "{list}");
    }
    std::thread::sleep(Duration::from_secs(5));
    let before = fire_times(&nodes[1], "tick");
    assert!(before.len() >= 4, "fires in 5 s: {before:?}");
    for pair in before.windows(2) {
        assert_eq!(
            pair[1].duration_since(pair[0]),
            jiff::SignedDuration::from_secs(1),
            "a repeat or a gap between fires while one leader fired: {before:?}"
        );
    }
    // The leader drains; another node fires from its next try on (a
    // third of the lease), the fires in between by the `missed` rule.
    let leader = pg.psql(
        "postgres",
        "SELECT node FROM jobq_leaders WHERE role = 'schedules'",
    );
    let i = names
        .iter()
        .position(|n| *n == leader)
        .unwrap_or_else(|| panic!("the leader is one of the nodes: {leader:?}"));
    // Only the leader fired (the key alone would hide several firers).
    let firers: Vec<&str> = names
        .iter()
        .zip(&nodes)
        .filter(|(_, d)| d.stderr_all().contains("schedule fired"))
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(firers, [leader.as_str()], "the nodes that fired");
    assert!(nodes[i].terminate().success());
    let stopped = jiff::Timestamp::now();
    let other = &nodes[(i + 1) % 3];
    wait_for("a fire after the leader stopped", || {
        fire_times(other, "tick")
            .last()
            .is_some_and(|t| *t > stopped + jiff::SignedDuration::from_secs(2))
    });
    let (status, body) = other.delete("/v1/schedules/tick");
    assert_eq!(status, 204, "{body}");
    let all = fire_times(other, "tick");
    let mut distinct = all.clone();
    distinct.dedup();
    assert_eq!(all, distinct, "a fire time made two jobs");
    let now_leader = pg.psql(
        "postgres",
        "SELECT node FROM jobq_leaders WHERE role = 'schedules'",
    );
    assert_ne!(now_leader, leader, "another node leads");
    for job in other.list_all("") {
        assert_eq!(other.wait_terminal(&job.id).state.as_str(), "succeeded");
    }
}

#[test]
fn an_event_stream_on_one_node_sees_jobs_end_on_another() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 1, "30s", "");
    // a's one worker is busy, so b runs what comes next.
    let gate = a.gate();
    let blocker = a.submit_shell(&gate.shell());
    a.wait_running(&blocker.id);
    let b = start_node(&pg, "b", 2, "30s", "");
    let mut events = a.events("queue=elsewhere");
    let job = a.submit(json!({ "shell": "exit 0", "queue": "elsewhere" }));
    let mut states = Vec::new();
    while let Some(e) = events.next_event() {
        let e = e.json();
        if e["id"] == job.id.as_str() {
            states.push(e["state"].as_str().unwrap_or_default().to_owned());
            if states.last().is_some_and(|s| s == "succeeded") {
                break;
            }
        }
    }
    assert!(states.iter().any(|s| s == "running"), "{states:?}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{states:?}"
    );
    assert_eq!(b.job(&job.id).node.as_deref(), Some("b"));
    gate.open();
}

#[test]
fn listing_idempotency_retry_and_removal_work_from_any_node() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 2, "30s", "");
    let b = start_node(&pg, "b", 2, "30s", "");
    let mut ids = Vec::new();
    for i in 0..7 {
        let node = if i % 2 == 0 { &a } else { &b };
        let job = node.submit(
            json!({ "shell": "exit 3", "labels": { "set": "x" }, "name": format!("j{i}") }),
        );
        ids.push(job.id);
    }
    let other = a.submit(json!({ "shell": "true" }));
    for id in &ids {
        assert_eq!(b.wait_terminal(id).state.as_str(), "failed");
    }
    b.wait_terminal(&other.id);
    // Pages of 3 through the label filter, newest first, on either node.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?label=set:x&limit=3&cursor={c}"),
            None => "/v1/jobs?label=set:x&limit=3".to_owned(),
        };
        let (status, body) = b.get_json(&path);
        assert_eq!(status, 200, "{body}");
        seen.extend(
            body["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_str().unwrap().to_owned()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every labelled job once, newest first");
    let (_, body) = a.get_json("/v1/jobs?state=succeeded");
    let succeeded: Vec<&str> = body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(succeeded, [other.id.as_str()]);
    let (_, body) = a.get_json("/v1/jobs?name=j3");
    assert_eq!(body["jobs"][0]["id"], ids[3].as_str(), "{body}");

    // The same idempotency key on two nodes: one job.
    let (status, first) = a.post_json(
        "/v1/jobs",
        &json!({ "shell": "true", "idempotency_key": "nightly-1" }),
    );
    assert_eq!(status, 201, "{first}");
    let (status, again) = b.post_json(
        "/v1/jobs",
        &json!({ "shell": "true", "idempotency_key": "nightly-1" }),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);

    // A failed job retried on the other node runs again.
    let (status, body) = b.post_empty(&format!("/v1/jobs/{}/retry", ids[0]));
    assert_eq!(status, 200, "{body}");
    let again = a.wait_job(&ids[0], "attempt 2 ended", |j| {
        j.attempt == 2 && j.state.as_str() == "failed"
    });
    assert_eq!(again.attempts.len(), 2, "{again:?}");
    // Removing it from either node: gone everywhere; a running job is a 409.
    let (status, body) = a.post_json("/v1/jobs", &json!({ "shell": "sleep 30" }));
    assert_eq!(status, 201, "{body}");
    let running = body["id"].as_str().unwrap().to_owned();
    b.wait_running(&running);
    let (status, body) = a.delete(&format!("/v1/jobs/{running}"));
    assert_error(status, &body, 409, "conflict", None);
    let (status, body) = a.delete(&format!("/v1/jobs/{}", ids[1]));
    assert_eq!(status, 204, "{body}");
    let (status, _) = b.get_json(&format!("/v1/jobs/{}", ids[1]));
    assert_eq!(status, 404);
    let (status, _) = a.post_empty(&format!("/v1/jobs/{running}/cancel"));
    assert_eq!(status, 200);
}

#[test]
fn dependencies_release_and_fail_across_nodes() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 2, "30s", "");
    let b = start_node(&pg, "b", 2, "30s", "");
    let order = a.path("order");
    let gate = a.gate();
    let step = |name: &str| format!("echo {name} >> {}", order.display());
    let first = a.submit(json!({ "shell": format!("{}; {}", gate.shell(), step("first")) }));
    let second = b.submit(json!({ "shell": step("second"), "after": [first.id] }));
    let third = a.submit(json!({ "shell": step("third"), "after": [second.id] }));
    assert_eq!(b.job(&second.id).state.as_str(), "waiting");
    assert_eq!(a.job(&third.id).state.as_str(), "waiting");
    gate.open();
    assert_eq!(b.wait_terminal(&third.id).state.as_str(), "succeeded");
    assert_eq!(lines(&order), ["first", "second", "third"]);

    // A failure fails its dependents, and theirs.
    let bad = a.submit(json!({ "shell": "exit 1" }));
    let child = b.submit(json!({ "shell": step("never"), "after": [bad.id] }));
    let grandchild = a.submit(json!({ "shell": step("never"), "after": [child.id] }));
    for id in [&child.id, &grandchild.id] {
        let job = b.wait_terminal(id);
        assert_eq!(job.state.as_str(), "failed", "{job:?}");
        assert_eq!(
            job.reason,
            Some(jobq::job::FailReason::Dependency),
            "{job:?}"
        );
    }
    // After a job that already failed: failed at once.
    let late = b.submit(json!({ "shell": step("never"), "after": [bad.id] }));
    assert_eq!(late.state.as_str(), "failed");
    assert!(!lines(&order).contains(&"never".to_owned()));
    // After a job that does not exist: a 400 naming the field, nothing stored.
    let before = pg.psql("postgres", "SELECT count(*) FROM jobq_jobs");
    let (status, body) = a.post_json(
        "/v1/jobs",
        &json!({ "shell": "true", "after": ["0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"] }),
    );
    assert_error(status, &body, 400, "invalid_field", Some("after"));
    assert_eq!(
        pg.psql("postgres", "SELECT count(*) FROM jobq_jobs"),
        before
    );
}

#[test]
fn bulk_cancel_retry_and_clean_reach_jobs_on_every_node() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 1, "30s", "");
    let b = start_node(&pg, "b", 1, "30s", "");
    // Each node's one worker holds a job of queue `work`; three more wait.
    let gate = a.gate();
    let held: Vec<String> = (0..5)
        .map(|_| {
            a.submit(json!({ "shell": gate.shell(), "queue": "work" }))
                .id
        })
        .collect();
    wait_for("both nodes to run a job", || {
        held.iter()
            .filter(|id| a.job(id).state.as_str() == "running")
            .count()
            == 2
    });
    let out = b.cli(&["cancel", "--queue", "work"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "cancelled 5 jobs\n");
    for id in &held {
        assert_eq!(a.job(id).state.as_str(), "cancelled");
    }
    assert!(
        held.iter().all(|id| TestDaemon::carrying(id).is_empty()),
        "no process is left"
    );
    let out = a.cli(&["retry", "--queue", "work", "--cancelled"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    gate.open();
    for id in &held {
        let job = b.wait_terminal(id);
        assert_eq!(
            (job.state.as_str(), job.attempt),
            ("succeeded", 2),
            "{job:?}"
        );
    }
    let out = b.cli(&["clean", "--queue", "work"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "SELECT count(*) FROM jobq_jobs WHERE queue = 'work'"
        ),
        "0"
    );
}

#[test]
fn retention_prunes_the_oldest_finished_jobs_once_across_nodes() {
    let pg = TestPostgres::start();
    let extra = "keep_finished = 3";
    let a = start_node(&pg, "a", 2, "30s", extra);
    let b = start_node(&pg, "b", 2, "30s", extra);
    let mut ids = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { &a } else { &b };
        let job = node.submit(json!({ "shell": "echo out" }));
        node.wait_terminal(&job.id);
        ids.push(job.id);
    }
    wait_for("the housekeepers to prune down to 3 finished jobs", || {
        pg.psql("postgres", "SELECT count(*) FROM jobq_jobs") == "3"
    });
    for id in &ids[..5] {
        assert_eq!(
            a.get_json(&format!("/v1/jobs/{id}")).0,
            404,
            "the oldest went"
        );
    }
    for id in &ids[5..] {
        assert_eq!(
            b.get_json(&format!("/v1/jobs/{id}")).0,
            200,
            "the newest stay"
        );
    }
    // Not one more goes: two housekeepers did not both prune the excess.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM jobq_jobs"), "3");
}

#[test]
fn a_node_cut_off_from_the_database_stops_its_jobs_after_the_lease_and_carries_on_after() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 1, "2s", "on_interrupted = \"requeue\"");
    let runs = a.path("runs");
    let gate = a.gate();
    let job = a.submit(
        json!({ "shell": format!("echo $JOBQ_JOB_ID >> {}; {}", runs.display(), gate.shell()) }),
    );
    a.wait_running(&job.id);
    pg.stop();
    // Without renewals for a lease, the node cannot know whether another
    // node took the job over: it stops it.
    wait_for("the node to stop a job it can no longer vouch for", || {
        TestDaemon::carrying(&job.id).is_empty()
    });
    assert!(
        a.stderr_all().contains("lost its claim"),
        "{}",
        a.stderr_tail()
    );
    let (status, body) = a.get_json(&format!("/v1/jobs/{}", job.id));
    assert_error(status, &body, 503, "unavailable", None);
    pg.restart();
    // Back: the lapsed claim is rescued and the job runs again.
    let again = a.wait_job(&job.id, "running again", |j| {
        j.state.as_str() == "running" && j.attempt == 2
    });
    assert_eq!(
        again.attempts[0].reason,
        Some(jobq::job::FailReason::Interrupted)
    );
    gate.open();
    assert_eq!(a.wait_terminal(&job.id).state.as_str(), "succeeded");
    assert_eq!(lines(&runs).len(), 2, "the first run and the re-run");
}

#[test]
fn stdin_reaches_the_job_on_whichever_node_runs_it_and_queues_can_be_removed() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 1, "30s", "[queues.declared]\nconcurrency = 1\n");
    let b = start_node(&pg, "b", 1, "30s", "[queues.declared]\nconcurrency = 1\n");
    for i in 0..4 {
        let job = a.submit(json!({ "command": ["cat"], "stdin": format!("line {i}\n") }));
        let done = b.wait_terminal(&job.id);
        assert_eq!(done.state.as_str(), "succeeded", "{done:?}");
        let owner = if done.node.as_deref() == Some("a") {
            &a
        } else {
            &b
        };
        assert_eq!(
            owner.output(&job.id, "stdout"),
            format!("line {i}\n").into_bytes()
        );
    }
    assert_eq!(pg.psql("postgres", "SELECT count(*) FROM jobq_stdin"), "4");

    let (status, body) = a.patch_json("/v1/queues/spare", &json!({ "create": true }));
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.delete("/v1/queues/spare");
    assert_eq!(status, 204, "{body}");
    assert!(a.find_queue("spare").is_none(), "gone for every node");
    let (status, body) = b.delete("/v1/queues/spare");
    assert_error(status, &body, 404, "not_found", None);
    let (status, body) = b.delete("/v1/queues/default");
    assert_error(status, &body, 409, "conflict", None);
    let (status, body) = b.delete("/v1/queues/declared");
    assert_error(status, &body, 409, "conflict", None);
    a.submit(json!({ "shell": "true", "queue": "busy" }));
    let (status, body) = b.delete("/v1/queues/busy");
    assert_error(status, &body, 409, "conflict", None);
}

#[test]
fn output_is_followed_live_on_any_node() {
    let pg = TestPostgres::start();
    let a = start_node(&pg, "a", 1, "30s", "");
    let gate = a.gate();
    let job = a.submit(json!({
        "shell": format!("echo one; echo oops >&2; {}; echo two", gate.shell())
    }));
    a.wait_running(&job.id);
    let b = start_node(&pg, "b", 1, "30s", "");
    let path = format!("/v1/jobs/{}/output?follow=true", job.id);
    let here = a
        .open_stream(&path, &[])
        .expect_ok("application/octet-stream");
    let mut there = b
        .open_stream(
            &format!("/v1/jobs/{}/output", job.id),
            &[("Accept", "text/event-stream")],
        )
        .expect_ok("text/event-stream")
        .sse();
    // Node b's follower sees the first line while the job still runs on a.
    let first = there.next_event().expect("an event");
    let first = if first.event == "attempt" {
        there.next_event().expect("an event")
    } else {
        first
    };
    assert_eq!(first.event, "stdout", "{first:?}");
    assert_eq!(first.bytes(), b"one\n");
    assert_eq!(b.job(&job.id).state.as_str(), "running");
    gate.open();
    assert_eq!(
        String::from_utf8_lossy(&here.read_all()),
        "one\noops\ntwo\n"
    );
    let mut rest = Vec::new();
    while let Some(e) = there.next_event() {
        rest.push((e.event.clone(), e.data.clone()));
        if e.event == "end" {
            break;
        }
    }
    assert!(rest.iter().any(|(e, _)| e == "stderr"), "{rest:?}");
    assert_eq!(
        rest.last().map(|(e, _)| e.as_str()),
        Some("end"),
        "{rest:?}"
    );
    // A plain read on b, by stream.
    assert_eq!(b.output(&job.id, "stdout"), b"one\ntwo\n");
    assert_eq!(b.output(&job.id, "stderr"), b"oops\n");
}

#[test]
fn store_settings_in_bad_forms_are_refused_by_name() {
    let pg = TestPostgres::start();
    let url = pg.url("postgres");
    let cases = [
        (
            "[store]\nbackend = \"postgres\"\n",
            "store.url",
            "needs `url`",
        ),
        (
            &*format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nurl_file = \"/x\"\n"),
            "store.url",
            "not both",
        ),
        (
            "[store]\nbackend = \"postgres\"\nurl = \"mysql://secret@db/x\"\n",
            "store.url",
            "not a PostgreSQL URL",
        ),
        (
            &*format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nlease = \"100ms\"\n"),
            "store.lease",
            "too short",
        ),
        (
            &*format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\nnode = \"web 3\"\n"),
            "store.node",
            "not a node name",
        ),
        (
            "[store]\nurl = \"postgres://x@db/y\"\n",
            "store.url",
            "is for backend = \"postgres\"",
        ),
        (
            "[store]\npoll_only = true\n",
            "store.poll_only",
            "is for backend = \"postgres\"",
        ),
        (
            &*format!("[store]\nbackend = \"postgres\"\nurl = \"{url}\"\npoll_only = \"yes\"\n"),
            "poll_only",
            "expected a boolean",
        ),
        (
            "[store]\nbackend = \"etcd\"\n",
            "backend",
            "unknown variant",
        ),
    ];
    for (toml, key, words) in cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jobq.toml");
        fs::write(&file, toml).unwrap();
        let out = jobq_command(&["config", "check", "--config", file.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains(words),
            "{toml}: {stderr}"
        );
        assert!(
            !stderr.contains("secret"),
            "a URL is never echoed: {stderr}"
        );
    }
}

#[test]
fn a_database_with_a_newer_schema_or_none_reachable_stops_the_daemon_at_start() {
    let pg = TestPostgres::start();
    drop(start_node(&pg, "a", 1, "30s", ""));
    pg.psql(
        "postgres",
        "INSERT INTO jobq_schema_versions (version, description, success, checksum, execution_time)
         VALUES (99, 'from the future', true, '\\x00', 0)",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobq.toml");
    fs::write(&file, node_config(&pg, "a", "30s", "")).unwrap();
    let data = dir.path().join("data");
    let out = jobq_command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("newer than this jobq knows"), "{stderr}");
    let nobody = format!("[store]\nbackend = \"postgres\"\nurl = \"postgres://jobq:hunter2@127.0.0.1:{}/postgres\"\n", free_port());
    fs::write(&file, nobody).unwrap();
    let out = jobq_command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot connect to the PostgreSQL store"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("hunter2"),
        "the password is never shown: {stderr}"
    );
}

/// Sessions on the test server's `postgres` database that last ran a
/// LISTEN: a node's listening connection.
fn listening_sessions(pg: &TestPostgres) -> u32 {
    pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres' AND query ILIKE 'listen%'",
    )
    .trim()
    .parse()
    .expect("a count")
}

#[test]
fn poll_only_nodes_run_wait_follow_and_cancel_without_listen() {
    let pg = TestPostgres::start();
    let poll = "poll_only = true\n";
    let node = |name: &str| {
        TestDaemon::builder()
            .workers(1)
            .config_toml(&format!("{}{poll}", node_config(&pg, name, "3s", "")))
            .start()
    };
    let a = node("a");
    let b = node("b");
    assert_eq!(listening_sessions(&pg), 0, "poll-only nodes do not LISTEN");
    assert!(a.stderr_all().contains("poll-only"));

    // A job submitted on b runs, and a waiter on a hears of its end.
    let quick = b.submit_shell("echo polled");
    let (status, done) = a.get_json(&format!("/v1/jobs/{}?wait=20s", quick.id));
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(a.output(&quick.id, "stdout"), b"polled\n");

    // Output followed on one node of a job on either; a cancel from the
    // other reaches it by the heartbeat.
    let gate = a.gate();
    let slow = a.submit_shell(&format!("echo one; {}; echo two", gate.shell()));
    let runner = if a.wait_running(&slow.id).node.as_deref() == Some("a") {
        &a
    } else {
        &b
    };
    let other = if std::ptr::eq(runner, &a) { &b } else { &a };
    let follower = other
        .open_stream(&format!("/v1/jobs/{}/output?follow=true", slow.id), &[])
        .expect_ok("application/octet-stream");
    let (status, body) = other.post_empty(&format!("/v1/jobs/{}/cancel", slow.id));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["state"], "cancelled", "{body}");
    assert_eq!(String::from_utf8_lossy(&follower.read_all()), "one\n");
    gate.open();

    // The same check sees a node that listens.
    let c = start_node(&pg, "c", 1, "3s", "");
    wait_for("node c to LISTEN", || listening_sessions(&pg) > 0);
    drop(c);
}
