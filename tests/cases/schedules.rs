//! Schedules (docs/api.md, "Schedules"): a fire makes exactly one job, even
//! across kill -9; `overlap` and `missed` do what they say; a paused or
//! deleted schedule does not fire; bad input is a 400 naming the field with
//! nothing stored; who may manage which schedule; the CLI.
//!
//! DST gaps and repeats are unit tests of the timetable
//! (src/schedule/timetable.rs): they need dates, not waiting.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{json, Value};

use super::auth::{bearer, tokens, ADMIN, CI, OTHER, VIEWER};
use jobq::api::JobView;

use crate::support::{
    assert_error, assert_holds, exit_code, run_bounded, stderr, stdout, wait_for, TestDaemon,
};

/// `PUT /v1/schedules/{name}` with `body` → (status, JSON).
fn put(d: &TestDaemon, name: &str, body: &Value) -> (u16, Value) {
    put_as(d, None, name, body)
}

/// [`put`] with `token` (else the daemon's own).
fn put_as(d: &TestDaemon, token: Option<&str>, name: &str, body: &Value) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let reply = d.send(
        "PUT",
        &format!("/v1/schedules/{name}"),
        &headers,
        Some(("application/json", &bytes)),
    );
    (reply.status, reply.json())
}

/// Creates schedule `name`, failing unless it is a 201.
fn create(d: &TestDaemon, name: &str, body: Value) -> Value {
    let (status, reply) = put(d, name, &body);
    assert_eq!(status, 201, "PUT {name} {body}: {reply}");
    reply
}

/// The schedule as `GET` shows it.
fn get(d: &TestDaemon, name: &str) -> Value {
    let (status, body) = d.get_json(&format!("/v1/schedules/{name}"));
    assert_eq!(status, 200, "GET /v1/schedules/{name}: {body}");
    body
}

/// The jobs schedule `name` made, oldest first.
fn fired(d: &TestDaemon, name: &str) -> Vec<JobView> {
    let mut jobs: Vec<JobView> = d
        .list_all("")
        .into_iter()
        .filter(|j| j.schedule.as_deref() == Some(name))
        .collect();
    jobs.sort_by_key(|j| j.number);
    jobs
}

/// The fire time in a fire's idempotency key (`schedule:<name>:<time>`).
fn fire_time(job: &JobView) -> Timestamp {
    let key = job
        .idempotency_key
        .as_deref()
        .expect("a fire's job has a key");
    let name = job.schedule.as_deref().unwrap();
    let time = key
        .strip_prefix(&format!("schedule:{name}:"))
        .unwrap_or_else(|| panic!("not a fire key: {key}"));
    time.parse().unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Waits until schedule `name` has made at least `n` jobs; returns them.
fn wait_fired(d: &TestDaemon, name: &str, n: usize) -> Vec<JobView> {
    let mut jobs = Vec::new();
    wait_for(&format!("{n} jobs of schedule {name}"), || {
        jobs = fired(d, name);
        jobs.len() >= n
    });
    jobs
}

/// `PATCH /v1/schedules/{name}` `{"paused": paused}`, failing unless 200.
fn pause(d: &TestDaemon, name: &str, paused: bool) -> Value {
    let (status, body) = d.patch_json(
        &format!("/v1/schedules/{name}"),
        &json!({ "paused": paused }),
    );
    assert_eq!(status, 200, "PATCH {name}: {body}");
    body
}

#[test]
fn a_one_second_schedule_makes_one_job_per_fire_across_kill_9() {
    let mut d = TestDaemon::start();
    create(
        &d,
        "tick",
        json!({"cron": "*/1 * * * * *", "job": {"command": ["true"]}}),
    );
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = Instant::now();
    let mut restarts = Vec::new();
    // kill -9 at random moments (a fire's write among them), restarting
    // at once, for 20 s.
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(rng.u64(700..2500)));
        let t = Instant::now();
        d.restart();
        restarts.push(t.elapsed());
    }
    std::thread::sleep(Duration::from_millis(1200));
    let (status, body) = d.delete("/v1/schedules/tick");
    assert_eq!(status, 204, "{body}");
    let jobs = fired(&d, "tick");
    let context = format!("seed {seed}; restarts took {restarts:?}");
    let keys: BTreeSet<&str> = jobs
        .iter()
        .map(|j| j.idempotency_key.as_deref().unwrap())
        .collect();
    assert_eq!(keys.len(), jobs.len(), "a fire made two jobs ({context})");
    let times: Vec<Timestamp> = jobs.iter().map(fire_time).collect();
    let mut sorted = times.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        assert_eq!(
            pair[1].duration_since(pair[0]),
            jiff::SignedDuration::from_secs(1),
            "a gap or a repeat between fires {} and {} ({context}); fires: {sorted:?}",
            pair[0],
            pair[1]
        );
    }
    assert!(
        jobs.len() >= 19,
        "{} jobs in over 21 s ({context})",
        jobs.len()
    );
    assert!(restarts.len() >= 6, "{context}");
    for job in &jobs {
        let job = d.wait_terminal(&job.id);
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
        assert_eq!(job.owner, "anonymous");
    }
    // A deleted schedule fires no more, across a restart too.
    d.restart();
    let count = d.job_count();
    assert_holds(
        "no job after the delete",
        Duration::from_millis(2500),
        || d.job_count() == count,
    );
}

#[test]
fn forbid_skips_fires_while_the_previous_job_runs() {
    let d = TestDaemon::start();
    let gate = d.gate();
    create(
        &d,
        "slow",
        json!({"cron": "*/1 * * * * *", "overlap": "forbid", "job": {"shell": gate.shell()}}),
    );
    let first = wait_fired(&d, "slow", 1).remove(0);
    d.wait_running(&first.id);
    assert_holds(
        "one job while the first runs",
        Duration::from_millis(3000),
        || fired(&d, "slow").len() == 1,
    );
    let schedule = get(&d, "slow");
    assert!(schedule["skipped"].as_u64().unwrap() >= 2, "{schedule}");
    assert_eq!(schedule["last_job"], first.id.as_str());
    assert_eq!(schedule["last_job_state"], "running");
    gate.open();
    let ended = d.wait_terminal(&first.id);
    let jobs = wait_fired(&d, "slow", 2);
    pause(&d, "slow", true);
    assert!(
        jobs[1].created_at >= ended.finished_at.unwrap(),
        "the next job came before the first ended: {jobs:?}"
    );
}

#[test]
fn replace_cancels_the_previous_job_then_starts() {
    let d = TestDaemon::start();
    create(
        &d,
        "fresh",
        json!({"cron": "*/1 * * * * *", "overlap": "replace", "job": {"command": ["sleep", "30"]}}),
    );
    wait_fired(&d, "fresh", 3);
    pause(&d, "fresh", true);
    let jobs = fired(&d, "fresh");
    let (last, earlier) = jobs.split_last().unwrap();
    let mut ended = Vec::new();
    for job in earlier {
        let job = d.wait_terminal(&job.id);
        assert_eq!(job.state.as_str(), "cancelled", "{job:?}");
        ended.push(job);
    }
    let last = d.wait_running(&last.id);
    // Each started only once the one before it had ended.
    for (before, after) in ended.iter().zip(ended.iter().skip(1).chain([&last])) {
        if let (Some(end), Some(start)) = (before.finished_at, after.started_at) {
            assert!(
                start >= end,
                "{} started before {} ended",
                after.id,
                before.id
            );
        }
    }
    let (status, _) = d.post_empty(&format!("/v1/jobs/{}/cancel", last.id));
    assert_eq!(status, 200);
}

/// A daemon down across three fires: `run_once` makes one job for them,
/// keyed by the latest; `skip` makes none and counts them.
#[test]
fn missed_fires_run_once_or_are_skipped_after_an_outage() {
    let mut d = TestDaemon::start();
    let now = Timestamp::now();
    let second = |ahead: i64| (now.as_second() + ahead).rem_euclid(60);
    // Three fires, 2 to 4 s from now, and then not for a minute.
    let cron = format!("{},{},{} * * * * *", second(2), second(3), second(4));
    create(
        &d,
        "once",
        json!({"cron": cron, "missed": "run_once", "job": {"command": ["true"]}}),
    );
    create(
        &d,
        "none",
        json!({"cron": cron, "missed": "skip", "job": {"command": ["true"]}}),
    );
    d.kill9();
    assert!(
        Timestamp::now().duration_since(now) < jiff::SignedDuration::from_millis(1500),
        "the set-up took so long that a fire may have come before the outage"
    );
    // Down for 5 s and more, across the three fires.
    std::thread::sleep(Duration::from_secs(6));
    d.restart();
    let once = fired(&d, "once");
    assert_eq!(once.len(), 1, "run_once: {once:?}");
    let latest = Timestamp::from_second(now.as_second() + 4).unwrap();
    assert_eq!(fire_time(&once[0]), latest);
    assert_eq!(fired(&d, "none").len(), 0, "skip");
    let none = get(&d, "none");
    assert_eq!(none["skipped"], 3, "{none}");
    assert_eq!(none["last_job"], Value::Null);
    let next: Timestamp = get(&d, "once")["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(next > Timestamp::now(), "{next}");
    assert_holds("no more fires", Duration::from_millis(1500), || {
        fired(&d, "once").len() == 1 && fired(&d, "none").is_empty()
    });
    assert_eq!(d.wait_terminal(&once[0].id).state.as_str(), "succeeded");
}

#[test]
fn run_starts_one_now_and_paused_or_deleted_schedules_do_not_fire() {
    let d = TestDaemon::start();
    let created = create(
        &d,
        "manual",
        json!({"cron": "@yearly", "paused": true, "job": {"shell": "echo manual", "labels": {"k": "v"}}}),
    );
    assert_eq!(created["paused"], true);
    assert_eq!(created["next_run_at"], Value::Null);
    assert_eq!(created["timezone"], "UTC");
    assert_eq!(created["overlap"], "allow");
    assert_eq!(created["missed"], "run_once");

    let (status, body) = d.post_empty("/v1/schedules/manual/run");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schedule"], "manual");
    assert_eq!(body["labels"]["k"], "v");
    assert_eq!(body["idempotency_key"], Value::Null);
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(d.wait_terminal(&id).state.as_str(), "succeeded");
    assert_eq!(d.output(&id, "stdout"), b"manual\n");
    let schedule = get(&d, "manual");
    assert_eq!(schedule["last_job"], id.as_str());
    assert_eq!(schedule["last_job_state"], "succeeded");
    let (status, body) = d.post_empty("/v1/schedules/nothing/run");
    assert_error(status, &body, 404, "not_found", None);

    // Replaced: same creation, history kept, fires every second.
    let (status, replaced) = put(
        &d,
        "manual",
        &json!({"cron": "*/1 * * * * *", "job": {"command": ["true"]}}),
    );
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["created_at"], created["created_at"]);
    assert_eq!(replaced["last_job"], id.as_str());
    wait_fired(&d, "manual", 2);

    // Paused: no fires.
    let paused = pause(&d, "manual", true);
    assert_eq!(paused["next_run_at"], Value::Null);
    let count = fired(&d, "manual").len();
    assert_holds("no fire while paused", Duration::from_millis(2200), || {
        fired(&d, "manual").len() == count
    });
    // Resumed: fires again.
    let resumed = pause(&d, "manual", false);
    assert!(resumed["next_run_at"].is_string(), "{resumed}");
    wait_fired(&d, "manual", count + 1);

    // Deleted: no fires; its jobs stay.
    let (status, _) = d.delete("/v1/schedules/manual");
    assert_eq!(status, 204);
    let (status, body) = d.get_json("/v1/schedules/manual");
    assert_error(status, &body, 404, "not_found", None);
    let count = fired(&d, "manual").len();
    assert!(count >= 3);
    assert_holds("no fire once deleted", Duration::from_millis(2200), || {
        fired(&d, "manual").len() == count
    });
    let (_, list) = d.get_json("/v1/schedules");
    assert_eq!(list, json!({"schedules": []}));
}

#[test]
fn bad_input_is_a_400_naming_the_field_and_stores_nothing() {
    let d = TestDaemon::builder()
        .config_toml("[jobs]\nlimits = { memory = \"1GiB\" }\n")
        .start();
    let ok_job = json!({"command": ["true"]});
    let with_job = |job: Value| json!({"cron": "@daily", "job": job});
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"cron": "0 25 * * *", "job": ok_job}),
            "cron",
            "field 2 (hour, 0-23) \"25\"",
        ),
        (
            json!({"cron": "* * *", "job": ok_job}),
            "cron",
            "has 3 fields",
        ),
        (
            json!({"cron": "61 * * * * *", "job": ok_job}),
            "cron",
            "field 1 (second",
        ),
        (
            json!({"cron": "* * * 13 *", "job": ok_job}),
            "cron",
            "field 4 (month",
        ),
        (
            json!({"cron": "@often", "job": ok_job}),
            "cron",
            "not an alias",
        ),
        (
            json!({"cron": "0 0 30 2 *", "job": ok_job}),
            "cron",
            "never fire",
        ),
        (json!({"cron": "", "job": ok_job}), "cron", "empty"),
        (
            json!({"cron": "@daily", "timezone": "Mars/Olympus", "job": ok_job}),
            "timezone",
            "not a known IANA",
        ),
        (
            json!({"cron": "@daily", "timezone": "", "job": ok_job}),
            "timezone",
            "IANA",
        ),
        (
            with_job(json!({"command": ["true"], "delay": "1s"})),
            "job.delay",
            "fire time",
        ),
        (
            with_job(json!({"command": ["true"], "run_at": "2030-01-01T00:00:00Z"})),
            "job.run_at",
            "fire time",
        ),
        (
            with_job(json!({"command": ["true"], "after": ["1"]})),
            "job.after",
            "wait",
        ),
        (
            with_job(json!({"command": ["true"], "idempotency_key": "k"})),
            "job.idempotency_key",
            "schedule:<name>",
        ),
        (
            with_job(
                json!({"command": ["true"], "stdin_upload": "0192f1c4-8a6e-7c3b-9d1e-3f5a7b9c1d2e"}),
            ),
            "job.stdin_upload",
            "inline",
        ),
        (with_job(json!({})), "job.command", "give one of"),
        (with_job(json!({"shell": " "})), "job.shell", "empty"),
        (
            with_job(json!({"command": ["true"], "cwd": "/no/such/dir"})),
            "job.cwd",
            "not an existing directory",
        ),
        (
            with_job(json!({"command": ["true"], "queue": "Not A Queue"})),
            "job.queue",
            "not a queue name",
        ),
        (
            with_job(json!({"command": ["true"], "limits": {"memory": "2GiB"}})),
            "job.limits.memory",
            "above the limit of 1.0 GiB",
        ),
        (with_job(json!(["true"])), "job", "JSON object"),
    ];
    for (body, field, says) in &cases {
        let (status, reply) = put(&d, "bad", body);
        assert_error(status, &reply, 400, "invalid_field", Some(field));
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Malformed bodies: not the fields the API knows.
    for body in [
        json!({"cron": "@daily"}),
        json!({"job": ok_job}),
        json!({"cron": "@daily", "job": ok_job, "crontab": "x"}),
        json!({"cron": "@daily", "job": ok_job, "overlap": "sometimes"}),
        json!({"cron": "@daily", "job": ok_job, "missed": "all"}),
        json!({"cron": 5, "job": ok_job}),
    ] {
        let (status, reply) = put(&d, "bad", &body);
        assert_eq!(status, 400, "{body}: {reply}");
    }
    // Bad names.
    for name in ["Bad", "a%20b", &"x".repeat(65)] {
        let (status, reply) = put(&d, name, &json!({"cron": "@daily", "job": ok_job}));
        assert_error(status, &reply, 400, "invalid_field", Some("name"));
    }
    // Nothing stored, nothing run.
    let (_, list) = d.get_json("/v1/schedules");
    assert_eq!(list, json!({"schedules": []}));
    assert_eq!(d.job_count(), 0);

    create(&d, "good", json!({"cron": "@daily", "job": ok_job}));
    for body in [
        json!({}),
        json!({"paused": "yes"}),
        json!({"paused": null}),
        json!({"paused": true, "cron": "x"}),
    ] {
        let (status, reply) = d.patch_json("/v1/schedules/good", &body);
        assert_eq!(status, 400, "{body}: {reply}");
    }
    assert_eq!(
        get(&d, "good")["paused"],
        false,
        "a refused patch changed it"
    );
    let (status, reply) = put(&d, "good", &json!({"cron": "0 99 * * *", "job": ok_job}));
    assert_error(status, &reply, 400, "invalid_field", Some("cron"));
    assert_eq!(
        get(&d, "good")["cron"],
        "@daily",
        "a refused replace changed it"
    );
    for (method, path) in [
        ("GET", "/v1/schedules/none"),
        ("DELETE", "/v1/schedules/none"),
        ("POST", "/v1/schedules/none/run"),
    ] {
        let reply = d.send(method, path, &[], None);
        assert_error(reply.status, &reply.json(), 404, "not_found", None);
    }
    let (status, reply) = d.patch_json("/v1/schedules/none", &json!({"paused": true}));
    assert_error(status, &reply, 404, "not_found", None);
}

#[test]
fn submit_tokens_manage_their_own_schedules_and_fires_run_as_the_creator() {
    let d = tokens().start();
    let act = |token: &str, method: &str, path: &str, body: Option<Value>| {
        let bytes = body.map(|b| serde_json::to_vec(&b).unwrap());
        let auth = bearer(token);
        let reply = d.send(
            method,
            path,
            &[("Authorization", &auth)],
            bytes.as_deref().map(|b| ("application/json", b)),
        );
        (reply.status, reply.json())
    };
    let spec = json!({"cron": "@yearly", "paused": true,
        "job": {"command": ["true"], "env": {"API_KEY": "s3cr3t-value"}}});
    let (status, body) = put_as(&d, Some(CI), "ci", &spec);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["owner"], "token:ci");
    assert_eq!(body["job"]["env"]["API_KEY"], "s3cr3t-value");

    // Another submit token may not touch it; read may not create.
    for (method, path, body) in [
        ("PATCH", "/v1/schedules/ci", Some(json!({"paused": false}))),
        ("DELETE", "/v1/schedules/ci", None),
        ("POST", "/v1/schedules/ci/run", None),
        ("PUT", "/v1/schedules/ci", Some(spec.clone())),
    ] {
        let (status, reply) = act(OTHER, method, path, body);
        assert_error(status, &reply, 403, "forbidden", None);
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("owned by token:ci"),
            "{method} {path}: {message}"
        );
    }
    let (status, reply) = put_as(&d, Some(VIEWER), "mine", &spec);
    assert_error(status, &reply, 403, "forbidden", None);
    let schedule = get(&d, "ci");
    assert_eq!(schedule["paused"], true, "a refused request changed it");
    assert_eq!(schedule["last_job"], Value::Null, "a refused run ran it");

    // Read may look, without the env values; the owner sees them.
    for token in [VIEWER, OTHER] {
        let (status, list) = act(token, "GET", "/v1/schedules", None);
        assert_eq!(status, 200);
        assert_eq!(list["schedules"][0]["job"]["env"]["API_KEY"], "<hidden>");
    }
    let (_, mine) = act(CI, "GET", "/v1/schedules/ci", None);
    assert_eq!(mine["job"]["env"]["API_KEY"], "s3cr3t-value");

    // Its jobs are the creator's, run as the creator's user, by run and by
    // fire.
    let (status, direct) = act(CI, "POST", "/v1/jobs", Some(json!({"command": ["true"]})));
    assert_eq!(status, 201, "{direct}");
    let (status, run) = act(CI, "POST", "/v1/schedules/ci/run", None);
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["owner"], "token:ci");
    assert_eq!(run["user"], direct["user"]);
    let (status, body) = put_as(
        &d,
        Some(CI),
        "ci-tick",
        &json!({"cron": "*/1 * * * * *", "job": {"command": ["true"]}}),
    );
    assert_eq!(status, 201, "{body}");
    let fire = wait_fired(&d, "ci-tick", 1).remove(0);
    assert_eq!(fire.owner, "token:ci");
    assert_eq!(fire.user, direct["user"].as_str().map(str::to_owned));
    let (status, _) = act(CI, "DELETE", "/v1/schedules/ci-tick", None);
    assert_eq!(status, 204);

    // An admin may manage anyone's; the owner stays.
    let (status, body) = act(
        ADMIN,
        "PATCH",
        "/v1/schedules/ci",
        Some(json!({"paused": false})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = put_as(&d, Some(ADMIN), "ci", &spec);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["owner"], "token:ci");
    let (status, _) = act(ADMIN, "DELETE", "/v1/schedules/ci", None);
    assert_eq!(status, 204);
}

#[test]
fn the_cli_adds_lists_shows_runs_pauses_and_removes() {
    let d = TestDaemon::start();
    let out = d.cli(&[
        "schedule",
        "add",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Berlin",
        "--overlap",
        "forbid",
        "--name",
        "backup",
        "--",
        "echo",
        "saved",
    ]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("nightly: next fire "),
        "{}",
        stdout(&out)
    );
    let out = d.cli(&["schedule", "run", "nightly"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    let job = d.wait_terminal(&id);
    assert_eq!(job.name.as_deref(), Some("backup"));
    assert_eq!(d.output(&id, "stdout"), b"saved\n");

    // Next fire in local time (TZ), relative, and the last job's state.
    let mut list = d.cli_command(&["schedule", "list"]);
    list.env("TZ", "Asia/Tokyo");
    let out = run_bounded(list, "jobq schedule list");
    let text = stdout(&out);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    assert!(text.starts_with("NAME"), "{text}");
    let row = text
        .lines()
        .find(|l| l.starts_with("nightly"))
        .expect(&text);
    for part in [
        "0 3 * * *",
        "Europe/Berlin",
        "JST (in ",
        "#1 succeeded",
        "echo saved",
    ] {
        assert!(row.contains(part), "{part:?} in {row:?}");
    }
    let out = d.cli(&["schedule", "show", "nightly"]);
    let text = stdout(&out);
    for part in [
        "cron:      0 3 * * * (Europe/Berlin)",
        "overlap:   forbid",
        "last job:  #1 succeeded",
    ] {
        assert!(text.contains(part), "{part:?} in {text}");
    }
    let out = d.cli(&["schedule", "list", "--json"]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["schedules"][0]["name"], "nightly");

    let out = d.cli(&["schedule", "pause", "nightly"]);
    assert_eq!(stdout(&out), "nightly: paused\n");
    let out = d.cli(&["schedule", "resume", "nightly"]);
    assert!(
        stdout(&out).starts_with("nightly: next fire "),
        "{}",
        stdout(&out)
    );

    let out = d.cli(&[
        "schedule",
        "add",
        "bad",
        "--cron",
        "0 25 * * *",
        "--",
        "true",
    ]);
    assert_eq!(exit_code(&out), 2);
    assert!(
        stderr(&out).contains("field 2 (hour, 0-23) \"25\""),
        "{}",
        stderr(&out)
    );
    let out = d.cli(&[
        "schedule",
        "add",
        "bad",
        "--cron",
        "@daily",
        "--tz",
        "Nowhere/Town",
        "--",
        "true",
    ]);
    assert_eq!(exit_code(&out), 2);
    assert!(stderr(&out).contains("timezone"), "{}", stderr(&out));

    let out = d.cli(&["schedule", "rm", "nightly"]);
    assert_eq!(stdout(&out), "nightly: removed\n");
    let out = d.cli(&["schedule", "show", "nightly"]);
    assert_ne!(exit_code(&out), 0);
    assert!(
        stderr(&out).contains("no schedule \"nightly\""),
        "{}",
        stderr(&out)
    );
}
