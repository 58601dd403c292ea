//! Named queues: per-queue concurrency limits under the global `workers`
//! limit, queues made on first use, no starvation between queues, and
//! `GET`/`PATCH /v1/queues` (live limits, pause surviving a restart, counts,
//! refused patches that change nothing), plus the `jobq queue(s)` commands.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::support::{
    assert_error, assert_holds, assert_ok, exit_code, marked_sleep, max_overlap, read_marks,
    stdout, TestDaemon, HOLD_WINDOW,
};

#[test]
fn queue_limits_and_the_worker_limit_hold_together_and_are_reached() {
    let d = TestDaemon::builder()
        .config_toml("workers = 4\n[queues.a]\nconcurrency = 2\n[queues.b]\nconcurrency = 3\n")
        .start();
    let log = d.path("marks");
    // Fewer jobs in `a` than in `b`: once `a` runs dry, `b` has the room to
    // reach its own limit of 3 (while `a` holds 2, the worker limit caps
    // `b` at 2).
    let mut ids = Vec::new();
    for (queue, n) in [("a", 6), ("b", 10)] {
        for _ in 0..n {
            let job = d.submit(json!({
                "shell": marked_sleep(&log, queue, "0.3"),
                "queue": queue,
            }));
            ids.push(job.id);
        }
    }
    for id in &ids {
        let job = d.wait_terminal(id);
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    }
    let marks = read_marks(&log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(marks.len(), 32, "{text}");
    let of = |q: &str| max_overlap(marks.iter().filter(|m| m.tag == q));
    let (a, b, all) = (of("a"), of("b"), max_overlap(&marks));
    assert!(
        a <= 2,
        "{a} jobs of queue a (concurrency 2) ran at once:\n{text}"
    );
    assert!(
        b <= 3,
        "{b} jobs of queue b (concurrency 3) ran at once:\n{text}"
    );
    assert!(all <= 4, "{all} jobs ran at once with workers = 4:\n{text}");
    assert_eq!(a, 2, "queue a never reached its limit of 2:\n{text}");
    assert_eq!(b, 3, "queue b never reached its limit of 3:\n{text}");
    assert_eq!(all, 4, "the worker limit of 4 was never reached:\n{text}");
}

#[test]
fn a_queue_is_made_on_first_use_with_the_default_limit() {
    let d = TestDaemon::builder()
        .config_toml("default_concurrency = 3\n")
        .start();
    assert_eq!(d.find_queue("fresh.q-1"), None, "not used yet");
    let job = d.submit(json!({ "command": ["true"], "queue": "fresh.q-1" }));
    assert_eq!(job.queue, "fresh.q-1");
    d.wait_terminal(&job.id);
    let q = d.queue("fresh.q-1");
    assert_eq!(q["concurrency"], 3, "default_concurrency applies: {q}");
    assert_eq!(q["paused"], false, "{q}");
    assert_eq!(q["counts"]["succeeded"], 1, "{q}");

    // Without default_concurrency, only `workers` limits a new queue.
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["true"], "queue": "other" }));
    d.wait_terminal(&job.id);
    let q = d.queue("other");
    assert_eq!(q["concurrency"], Value::Null, "{q}");
    assert_eq!(q["counts"]["succeeded"], 1, "{q}");
    assert!(
        d.find_queue("default").is_some(),
        "default is always listed"
    );
}

#[test]
fn a_busy_queue_does_not_starve_another() {
    let d = TestDaemon::builder()
        .workers(2)
        .config_toml("[queues.a]\nconcurrency = 1\n")
        .start();
    let gate = d.gate();
    let long = d.submit(json!({ "shell": gate.shell(), "queue": "a" }));
    let backlog: Vec<String> = (0..20)
        .map(|_| d.submit(json!({ "command": ["true"], "queue": "a" })).id)
        .collect();
    d.wait_running(&long.id);
    // Submitted last, behind 20 jobs of `a` that cannot start.
    let other = d.submit(json!({ "command": ["true"], "queue": "b" }));
    let other = d.wait_terminal(&other.id);
    assert_eq!(other.state.as_str(), "succeeded", "{other:?}");
    assert_eq!(d.state(&long.id), "running", "queue a is still busy");
    for id in &backlog {
        assert_eq!(d.state(id), "queued", "queue a's limit is 1");
    }
    gate.open();
    for id in &backlog {
        assert_eq!(d.wait_terminal(id).state.as_str(), "succeeded");
    }
}

#[test]
fn patching_concurrency_changes_the_limit_live() {
    let d = TestDaemon::builder().workers(4).start();
    let q = d.patch_queue("live", json!({ "concurrency": 1 }));
    assert_eq!(q["name"], "live", "{q}");
    assert_eq!(q["concurrency"], 1, "{q}");
    let gate = d.gate();
    let ids: Vec<String> = (0..3)
        .map(|_| {
            d.submit(json!({ "shell": gate.shell(), "queue": "live" }))
                .id
        })
        .collect();
    d.wait_running(&ids[0]);
    assert_holds(
        "with concurrency 1, the other two stay queued",
        HOLD_WINDOW / 2,
        || d.state(&ids[1]) == "queued" && d.state(&ids[2]) == "queued",
    );

    assert_eq!(
        d.patch_queue("live", json!({ "concurrency": 2 }))["concurrency"],
        2
    );
    d.wait_running(&ids[1]);
    assert_eq!(d.state(&ids[2]), "queued", "the limit is now 2");
    assert_eq!(d.queue("live")["running"], 2);

    // null returns to the configured limit: none but `workers` here.
    let q = d.patch_queue("live", json!({ "concurrency": null }));
    assert_eq!(q["concurrency"], Value::Null, "{q}");
    d.wait_running(&ids[2]);
    gate.open();
    for id in &ids {
        assert_eq!(d.wait_terminal(id).state.as_str(), "succeeded");
    }
}

#[test]
fn a_paused_queue_starts_nothing_lets_running_jobs_finish_and_stays_paused_after_a_restart() {
    let mut d = TestDaemon::builder().workers(2).start();
    let gate = d.gate();
    let running = d.submit(json!({ "shell": gate.shell(), "queue": "p" }));
    d.wait_running(&running.id);

    let q = d.patch_queue("p", json!({ "paused": true }));
    assert_eq!(q["paused"], true, "{q}");
    let held = d.submit(json!({ "command": ["true"], "queue": "p" }));
    // A job of another queue still runs: pausing is per queue.
    let elsewhere = d.submit(json!({ "command": ["true"], "queue": "other" }));
    assert_eq!(d.wait_terminal(&elsewhere.id).state.as_str(), "succeeded");

    gate.open();
    let running = d.wait_terminal(&running.id);
    assert_eq!(
        running.state.as_str(),
        "succeeded",
        "a running job finishes when its queue is paused: {running:?}"
    );
    assert_holds(
        "a job of a paused queue stays queued, with a worker free",
        HOLD_WINDOW,
        || d.state(&held.id) == "queued",
    );

    d.kill9();
    d.restart();
    let q = d.queue("p");
    assert_eq!(q["paused"], true, "pause survives a restart: {q}");
    assert_holds(
        "after the restart, the paused queue's job stays queued",
        HOLD_WINDOW / 2,
        || d.state(&held.id) == "queued",
    );

    let q = d.patch_queue("p", json!({ "paused": false }));
    assert_eq!(q["paused"], false, "{q}");
    let held = d.wait_terminal(&held.id);
    assert_eq!(held.state.as_str(), "succeeded", "{held:?}");
    assert_eq!(held.attempt, 1, "{held:?}");
}

#[test]
fn get_queues_counts_jobs_by_state() {
    let d = TestDaemon::builder().workers(4).start();
    let queue = "cnt";
    let spec = |extra: Value| {
        let mut spec = json!({ "queue": queue });
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        spec
    };
    let ok = d.submit(spec(json!({ "command": ["true"] })));
    let bad = d.submit(spec(json!({ "shell": "exit 3" })));
    d.wait_terminal(&ok.id);
    d.wait_terminal(&bad.id);
    let gate = d.gate();
    let running = d.submit(spec(json!({ "shell": gate.shell() })));
    d.wait_running(&running.id);
    d.patch_queue(queue, json!({ "paused": true }));
    let queued: Vec<String> = (0..2)
        .map(|_| d.submit(spec(json!({ "command": ["true"] }))).id)
        .collect();
    let scheduled = d.submit(spec(json!({ "command": ["true"], "delay": "1h" })));
    let waiting = d.submit(spec(json!({ "command": ["true"], "after": [running.id] })));
    let cancelled = d.submit(spec(json!({ "command": ["true"] })));
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/cancel", cancelled.id));
    assert_eq!(status, 200, "{body}");
    // A job of another queue does not count here.
    d.submit(json!({ "command": ["true"], "queue": "elsewhere" }));

    assert_eq!(d.state(&scheduled.id), "scheduled");
    assert_eq!(d.state(&waiting.id), "waiting");
    for id in &queued {
        assert_eq!(d.state(id), "queued");
    }
    let q = d.queue(queue);
    let want: BTreeMap<&str, u64> = [
        ("waiting", 1),
        ("scheduled", 1),
        ("queued", 2),
        ("running", 1),
        ("succeeded", 1),
        ("failed", 1),
        ("cancelled", 1),
    ]
    .into();
    for (state, n) in &want {
        assert_eq!(q["counts"][state], *n, "counts.{state}: {q}");
    }
    // And they agree with the job listing of that queue.
    let listed = d.list_all(&format!("queue={queue}&"));
    for (state, n) in &want {
        let have = listed.iter().filter(|j| j.state.as_str() == *state).count();
        assert_eq!(have as u64, *n, "GET /v1/jobs?queue={queue}, state {state}");
    }
    assert_eq!(q["running"], 1, "{q}");
    assert_eq!(q["paused"], true, "{q}");
    assert_eq!(q["concurrency"], Value::Null, "{q}");
}

#[test]
fn bad_queue_patches_are_refused_and_change_nothing() {
    let d = TestDaemon::start();
    d.patch_queue("keep", json!({ "concurrency": 2 }));
    let before = d.queue("keep");
    assert_eq!(before["concurrency"], 2, "{before}");
    assert_eq!(before["paused"], false, "{before}");

    let cases = [
        (json!({ "concurrency": 0 }), Some("concurrency")),
        (json!({ "concurrency": 4097 }), Some("concurrency")),
        (json!({ "concurrency": -1 }), Some("concurrency")),
        (json!({ "concurrency": "x" }), Some("concurrency")),
        (json!({ "concurrency": 1.5 }), Some("concurrency")),
        (json!({ "paused": "yes" }), Some("paused")),
        // The good half of a bad patch is not applied either.
        (json!({ "concurrency": 5, "paused": "yes" }), Some("paused")),
        (json!({ "concurrency": 5, "colour": "red" }), Some("colour")),
        // Nothing to change: which field to name is the daemon's choice.
        (json!({}), None),
    ];
    for (body, field) in &cases {
        let (status, reply) = d.patch_json("/v1/queues/keep", body);
        assert_error(status, &reply, 400, "invalid_field", *field);
        assert!(
            reply["error"]["field"]
                .as_str()
                .is_some_and(|f| !f.is_empty()),
            "PATCH {body}: the field at fault is named: {reply}"
        );
    }
    let long = "q".repeat(65);
    for name in ["BAD", long.as_str()] {
        let (status, reply) =
            d.patch_json(&format!("/v1/queues/{name}"), &json!({ "paused": true }));
        assert_error(status, &reply, 400, "invalid_field", None);
        assert!(
            reply["error"]["field"]
                .as_str()
                .is_some_and(|f| !f.is_empty()),
            "PATCH /v1/queues/{name}: the field at fault is named: {reply}"
        );
        assert_eq!(d.find_queue(name), None, "a refused name is no queue");
    }
    // A 64-character name is still a name.
    d.patch_queue(&"q".repeat(64), json!({ "paused": false }));
    assert_eq!(d.queue("keep"), before, "refused patches changed the queue");
}

// ---- the CLI ----

#[test]
fn cli_queue_commands_pause_resume_and_limit() {
    let d = TestDaemon::start();
    let job = d.submit(json!({ "command": ["true"], "queue": "cliq" }));
    d.wait_terminal(&job.id);

    let out = d.cli(&["queue", "pause", "cliq"]);
    assert_ok(&out);
    assert_eq!(d.queue("cliq")["paused"], true);

    let out = d.cli(&["queues"]);
    assert_ok(&out);
    let table = stdout(&out);
    // A table: a header line of column names, then one row per queue.
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cliq"))
        .unwrap_or_else(|| panic!("`jobq queues` lists cliq:\n{table}"))
        .split_whitespace()
        .collect();
    let cell = |name: &str| {
        let i = header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column:\n{table}"));
        row.get(i).copied().unwrap_or_default()
    };
    assert_eq!(cell("PAUSED"), "yes", "{table}");
    assert_eq!(cell("SUCCEEDED"), "1", "{table}");
    assert_eq!(cell("CONCURRENCY"), "-", "{table}");
    assert!(table.contains("default"), "{table}");

    let out = d.cli(&["queues", "--json"]);
    assert_ok(&out);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("JSON from queues --json");
    let q = listed["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "cliq"))
        .unwrap_or_else(|| panic!("cliq in {listed}"));
    assert_eq!(q["paused"], true, "{q}");
    assert_eq!(q["counts"]["succeeded"], 1, "{q}");

    let out = d.cli(&["queue", "resume", "cliq"]);
    assert_ok(&out);
    assert_eq!(d.queue("cliq")["paused"], false);

    let out = d.cli(&["queue", "set", "cliq", "--concurrency", "3"]);
    assert_ok(&out);
    assert_eq!(d.queue("cliq")["concurrency"], 3);
    let out = d.cli(&["queue", "set", "cliq", "--concurrency", "default"]);
    assert_ok(&out);
    assert_eq!(d.queue("cliq")["concurrency"], Value::Null);

    for (args, want) in [
        (
            &["queue", "set", "cliq", "--concurrency", "0"][..],
            "queue pause",
        ),
        (
            &["queue", "set", "cliq", "--concurrency", "5000"][..],
            "at most 4096",
        ),
        (&["queue", "pause", "BAD"][..], "not a queue name"),
    ] {
        let out = d.cli(args);
        assert_eq!(exit_code(&out), 2, "jobq {args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "jobq {args:?}: {err}");
    }
    assert_eq!(d.queue("cliq")["concurrency"], Value::Null);
    assert_eq!(d.find_queue("BAD"), None);
}

// ---- making and removing queues ----

#[test]
fn a_patch_makes_no_queue_unless_asked_to() {
    let d = TestDaemon::builder()
        .config_toml("[queues.declared]\nconcurrency = 2\n")
        .start();
    let (status, body) = d.patch_json("/v1/queues/typo", &json!({ "paused": true }));
    assert_error(status, &body, 404, "not_found", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("create"),
        "{body}"
    );
    assert_eq!(d.find_queue("typo"), None, "a refused patch made a queue");

    // Known queues need no `create`: the config's, one with jobs, default.
    for name in ["declared", "default"] {
        let (status, body) =
            d.patch_json(&format!("/v1/queues/{name}"), &json!({ "paused": false }));
        assert_eq!(status, 200, "{name}: {body}");
    }
    d.submit(json!({ "command": ["true"], "queue": "used" }));
    let (status, body) = d.patch_json("/v1/queues/used", &json!({ "concurrency": 3 }));
    assert_eq!(status, 200, "{body}");

    // `create` alone makes a queue with the configured limits.
    let (status, body) = d.patch_json("/v1/queues/fresh", &json!({ "create": true }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], false, "{body}");
    assert!(d.find_queue("fresh").is_some());
    let (status, body) = d.patch_json("/v1/queues/fresh", &json!({ "paused": true }));
    assert_eq!(status, 200, "once made, it is known: {body}");

    let (status, body) = d.patch_json("/v1/queues/typo", &json!({ "create": "yes" }));
    assert_error(status, &body, 400, "invalid_field", Some("create"));
    assert_eq!(d.find_queue("typo"), None);
}

#[test]
fn only_an_empty_undeclared_queue_is_removed() {
    let mut d = TestDaemon::builder()
        .config_toml("[queues.declared]\nconcurrency = 2\n")
        .start();
    d.patch_queue("empty", json!({ "paused": true, "concurrency": 7 }));
    let job = d.submit(json!({ "command": ["true"], "queue": "busy" }));
    d.wait_terminal(&job.id);

    for (name, status_want, code, words) in [
        ("nothing", 404, "not_found", "no queue"),
        ("busy", 409, "conflict", "1 jobs"),
        ("default", 409, "conflict", "default"),
        ("declared", 409, "conflict", "config"),
        ("BAD", 400, "invalid_field", "not a queue name"),
    ] {
        let (status, body) = d.delete(&format!("/v1/queues/{name}"));
        assert_error(status, &body, status_want, code, None);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "DELETE {name}: {message}");
    }
    assert!(d.find_queue("busy").is_some() && d.find_queue("declared").is_some());

    let (status, _) = d.delete("/v1/queues/empty");
    assert_eq!(status, 204);
    assert_eq!(d.find_queue("empty"), None, "a removed queue is not listed");
    let (status, body) = d.patch_json("/v1/queues/empty", &json!({ "paused": true }));
    assert_error(status, &body, 404, "not_found", None);
    d.restart();
    assert_eq!(d.find_queue("empty"), None, "the removal is stored");

    // Once its jobs are gone, a used queue can go too.
    let (status, _) = d.delete(&format!("/v1/jobs/{}", job.id));
    assert_eq!(status, 204);
    d.patch_queue("busy", json!({ "paused": true }));
    let (status, body) = d.delete("/v1/queues/busy");
    assert_eq!(status, 204, "{body}");
}

#[test]
fn queue_names_in_paths_are_percent_decoded() {
    let d = TestDaemon::start();
    let (status, body) = d.patch_json("/v1/queues/my%2Dq", &json!({ "create": true }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "my-q");
    assert!(d.find_queue("my-q").is_some());
    let (status, body) = d.patch_json("/v1/queues/bad%20name", &json!({ "create": true }));
    assert_error(status, &body, 400, "invalid_field", None);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"bad name\""), "{message}");
    let (status, body) = d.patch_json("/v1/queues/%FF", &json!({ "create": true }));
    assert_error(status, &body, 400, "invalid_field", None);
    let (status, _) = d.delete("/v1/queues/my%2dq");
    assert_eq!(status, 204);
}

#[test]
fn cli_queue_create_and_rm() {
    let d = TestDaemon::start();
    let out = d.cli(&["queue", "pause", "nosuch"]);
    assert_eq!(exit_code(&out), 2, "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("--create"), "{err}");
    assert_eq!(d.find_queue("nosuch"), None);

    let out = d.cli(&["queue", "pause", "nosuch", "--create"]);
    assert_ok(&out);
    assert!(
        stdout(&out).starts_with("nosuch: paused"),
        "{}",
        stdout(&out)
    );
    let out = d.cli(&["queue", "set", "nosuch", "--concurrency", "3"]);
    assert_ok(&out);

    let out = d.cli(&["queue", "rm", "nosuch"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "nosuch: removed\n");
    assert_eq!(d.find_queue("nosuch"), None);
    for args in [
        &["queue", "rm", "nosuch"][..],
        &["queue", "rm", "default"][..],
    ] {
        let out = d.cli(args);
        assert_eq!(exit_code(&out), 2, "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("jobq:"));
    }
}
