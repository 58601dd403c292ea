//! Tokens and roles (docs/api.md, "Who may do what"): every route refuses a
//! missing or unknown token and a role too small for it; `submit` tokens
//! act only on their own jobs; env values are shown only to the owner and
//! admins; a token never reaches the daemon's log.

use serde_json::{json, Value};

use crate::support::{assert_error, exit_code, job_from, Builder, TestDaemon};

pub const ADMIN: &str = "admin-token-0123456789";
pub const CI: &str = "ci-token-0123456789abc";
pub const OTHER: &str = "other-token-0123456789";
pub const VIEWER: &str = "viewer-token-012345678";
/// Presented in requests, never configured.
const WRONG: &str = "wrong-token-0123456789";

/// A daemon with one token of each role (and two `submit` ones), whose
/// own requests go as the admin.
pub fn tokens() -> Builder {
    TestDaemon::builder()
        .config_toml(&format!(
            r#"
log = "jobq=trace,info"
[[auth.tokens]]
name = "root"
role = "admin"
token = "{ADMIN}"
[[auth.tokens]]
name = "ci"
role = "submit"
token = "{CI}"
[[auth.tokens]]
name = "other"
role = "submit"
token = "{OTHER}"
[[auth.tokens]]
name = "viewer"
role = "read"
token = "{VIEWER}"
"#
        ))
        .token(ADMIN)
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `method path` with `token` (or none), a JSON body for the methods that
/// take one, the answer read in full (or its head, for a stream).
fn call(d: &TestDaemon, token: Option<&str>, method: &str, path: &str) -> (u16, Value) {
    let auth = token.map(bearer);
    // An empty value stands for no header (and no daemon token).
    let headers = [("Authorization", auth.as_deref().unwrap_or(""))];
    if method == "GET" {
        let stream = d.open_stream(path, &headers[..]);
        let status = stream.status;
        if status < 300 {
            // A 200 may be an endless stream: its status is the answer.
            return (status, Value::Null);
        }
        return (status, stream.json());
    }
    let body = serde_json::to_vec(&json!({"shell": "true"})).unwrap();
    let reply = d.send(method, path, &headers, Some(("application/json", &body)));
    (reply.status, reply.json())
}

#[test]
fn every_route_refuses_a_missing_or_wrong_token_and_a_role_too_small() {
    let d = tokens().start();
    let job = d.submit(json!({"shell": "true"}));
    d.wait_terminal(&job.id);
    let before = d.all_job_ids();
    let routes = jobq::http::routes();
    assert!(routes.len() >= 14, "the route table: {routes:?}");
    for route in routes {
        let path = route
            .path
            .replace(":id", &job.id)
            .replace(":name", "default")
            .replace(":file", "main.js");
        let what = format!("{} {path}", route.method);
        let (status, body) = call(&d, None, route.method, &path);
        if route.access == jobq::http::Access::Public {
            assert!(
                status < 400 || status == 503,
                "{what} is public: {status} {body}"
            );
            continue;
        }
        assert_error(status, &body, 401, "unauthorized", None);
        let (status, body) = call(&d, Some(WRONG), route.method, &path);
        assert_error(status, &body, 401, "unauthorized", None);
        let (status, body) = call(&d, Some(VIEWER), route.method, &path);
        if route.method == "GET" {
            assert!(
                status != 401 && status != 403,
                "{what} with read: {status} {body}"
            );
            assert_eq!(route.access, jobq::http::Access::Read, "{what}");
        } else {
            assert_error(status, &body, 403, "forbidden", None);
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(message.contains("needs the"), "{what}: {message}");
            assert!(
                message.contains("token:viewer has the read role"),
                "{what}: {message}"
            );
        }
        if route.access == jobq::http::Access::Admin {
            let (status, body) = call(&d, Some(CI), route.method, &path);
            assert_error(status, &body, 403, "forbidden", None);
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("needs the admin role")),
                "{what}: {body}"
            );
        }
    }
    // Nothing the refused requests asked for happened.
    assert_eq!(d.all_job_ids(), before);
    assert_eq!(d.state(&job.id), "succeeded");
    assert_eq!(d.queue("default")["paused"], false);
    assert_eq!(d.get_json("/v1/schedules").1, json!({"schedules": []}));
}

#[test]
fn a_refused_request_says_how_to_authenticate() {
    let d = tokens().start();
    let reply = d.send("GET", "/v1/jobs", &[("Authorization", "")], None);
    assert_error(reply.status, &reply.json(), 401, "unauthorized", None);
    let reply = d.send(
        "GET",
        "/v1/jobs",
        &[("Authorization", "Basic YWxhZGRpbjpvcGVu")],
        None,
    );
    assert_error(reply.status, &reply.json(), 401, "unauthorized", None);
    let reply = d.send("GET", "/v1/jobs", &[("Authorization", "Bearer")], None);
    assert_error(reply.status, &reply.json(), 401, "unauthorized", None);

    let out = d.cli(&["list"]);
    // d.cli passes no token: the daemon wants one.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "{stderr}");
    assert!(stderr.contains("needs a token"), "{stderr}");
    assert!(
        stderr.contains("--token") && stderr.contains("JOBQ_TOKEN"),
        "{stderr}"
    );

    let out = d.cli(&["queue", "pause", "default", "--token", CI]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "{stderr}");
    assert!(
        stderr.contains("needs the admin role; token:ci has the submit role"),
        "{stderr}"
    );
}

#[test]
fn the_cli_takes_its_token_from_a_flag_the_environment_or_a_file() {
    let d = tokens().start();
    let file = d.path("token");
    std::fs::write(&file, format!("{CI}\nsecond line ignored\n")).unwrap();
    let out = d.cli(&[
        "submit",
        "--token-file",
        file.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_eq!(
        exit_code(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(d.job(&id).owner, "token:ci");

    let mut cmd = d.cli_command(&["submit", "--", "true"]);
    cmd.env("JOBQ_TOKEN_FILE", &file);
    let out = crate::support::run_bounded(cmd, "jobq submit with JOBQ_TOKEN_FILE");
    assert_eq!(
        exit_code(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut cmd = d.cli_command(&["submit", "--", "true"]);
    cmd.env("JOBQ_TOKEN", OTHER);
    let out = crate::support::run_bounded(cmd, "jobq submit with JOBQ_TOKEN");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_eq!(d.job(&id).owner, "token:other");

    let before = d.job_count();
    let missing = d.path("no-such-token-file");
    let empty = d.path("empty-token-file");
    std::fs::write(&empty, "\n").unwrap();
    for (file, says) in [
        (&missing, "cannot read the token file"),
        (&empty, "is empty"),
    ] {
        let out = d.cli(&[
            "submit",
            "--token-file",
            file.to_str().unwrap(),
            "--",
            "true",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(exit_code(&out), 2, "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert_eq!(d.job_count(), before);
}

#[test]
fn a_submit_token_acts_only_on_its_own_jobs() {
    let d = tokens().start();
    let auth = |t: &str| bearer(t);
    let submit_as = |token: &str, spec: Value| {
        let body = serde_json::to_vec(&spec).unwrap();
        let reply = d.send(
            "POST",
            "/v1/jobs",
            &[("Authorization", &auth(token))],
            Some(("application/json", &body)),
        );
        assert_eq!(reply.status, 201, "{}", reply.json());
        job_from(&reply.json())
    };
    let gate = d.gate();
    let theirs = submit_as(CI, json!({"shell": gate.shell()}));
    assert_eq!(theirs.owner, "token:ci");
    d.wait_running(&theirs.id);

    let act = |token: &str, method: &str, path: String| {
        let reply = d.send(method, &path, &[("Authorization", &auth(token))], None);
        (reply.status, reply.json())
    };
    let (status, body) = act(OTHER, "POST", format!("/v1/jobs/{}/cancel", theirs.id));
    assert_error(status, &body, 403, "forbidden", None);
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("owned by token:ci")),
        "{body}"
    );
    assert_eq!(
        d.state(&theirs.id),
        "running",
        "a refused cancel stopped the job"
    );
    gate.open();
    d.wait_terminal(&theirs.id);
    let (status, body) = act(OTHER, "POST", format!("/v1/jobs/{}/retry", theirs.id));
    assert_error(status, &body, 403, "forbidden", None);
    let (status, body) = act(OTHER, "DELETE", format!("/v1/jobs/{}", theirs.id));
    assert_error(status, &body, 403, "forbidden", None);
    assert_eq!(d.job(&theirs.id).attempt, 1, "a refused retry ran the job");

    // The owner may, and so may an admin.
    let (status, body) = act(CI, "POST", format!("/v1/jobs/{}/retry", theirs.id));
    assert_eq!(status, 200, "{body}");
    d.wait_job(&theirs.id, "the retry to end", |j| {
        j.attempt == 2 && j.is_terminal()
    });
    let (status, _) = act(ADMIN, "DELETE", format!("/v1/jobs/{}", theirs.id));
    assert_eq!(status, 204);

    // The CLI says the same.
    let mine = submit_as(OTHER, json!({"shell": "sleep 30"}));
    let out = d.cli(&["cancel", "--token", CI, &mine.id]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "{stderr}");
    assert!(stderr.contains("owned by token:other"), "{stderr}");
    let (status, _) = act(OTHER, "POST", format!("/v1/jobs/{}/cancel", mine.id));
    assert_eq!(status, 200);
}

#[test]
fn env_values_are_shown_only_to_the_owner_and_admins() {
    let d = tokens().start();
    let body =
        serde_json::to_vec(&json!({"command": ["true"], "env": {"API_KEY": "s3cr3t-value"}}))
            .unwrap();
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Authorization", &bearer(CI))],
        Some(("application/json", &body)),
    );
    let job = job_from(&reply.json());
    assert_eq!(job.env["API_KEY"], "s3cr3t-value", "the owner sees it");
    let path = format!("/v1/jobs/{}", job.id);
    for (token, shown) in [(CI, true), (ADMIN, true), (OTHER, false), (VIEWER, false)] {
        let reply = d.send("GET", &path, &[("Authorization", &bearer(token))], None);
        let seen = job_from(&reply.json());
        let list = d.send(
            "GET",
            "/v1/jobs",
            &[("Authorization", &bearer(token))],
            None,
        );
        let listed = list.json()["jobs"][0].clone();
        assert!(seen.env.contains_key("API_KEY"), "the name is always shown");
        if shown {
            assert_eq!(seen.env["API_KEY"], "s3cr3t-value");
            assert!(!seen.env_hidden);
        } else {
            assert_eq!(seen.env["API_KEY"], "<hidden>");
            assert!(seen.env_hidden);
            assert_eq!(listed["env"]["API_KEY"], "<hidden>", "{listed}");
            assert!(!list.json().to_string().contains("s3cr3t-value"));
        }
    }
}

#[test]
fn jobs_are_listed_by_owner() {
    let d = tokens().start();
    for token in [CI, OTHER, CI] {
        let body = serde_json::to_vec(&json!({"command": ["true"]})).unwrap();
        let reply = d.send(
            "POST",
            "/v1/jobs",
            &[("Authorization", &bearer(token))],
            Some(("application/json", &body)),
        );
        assert_eq!(reply.status, 201);
    }
    let (_, list) = d.get_json("/v1/jobs?owner=token:ci");
    let owners: Vec<&str> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["owner"].as_str().unwrap())
        .collect();
    assert_eq!(owners, ["token:ci", "token:ci"]);
    let (_, none) = d.get_json("/v1/jobs?owner=unix:nobody");
    assert_eq!(none["jobs"], json!([]));
    let (status, body) = d.get_json("/v1/jobs?owner=");
    assert_error(status, &body, 400, "invalid_field", Some("owner"));

    let out = d.cli(&["list", "--token", ADMIN, "--owner", "token:other", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 1, "{listed}");
}

#[test]
fn a_token_never_reaches_the_daemons_log() {
    let d = tokens().start();
    // Each token in use, and a wrong one, at a verbose log level.
    for token in [ADMIN, CI, OTHER, VIEWER, WRONG] {
        let body = serde_json::to_vec(
            &json!({"shell": "echo hi", "env": {"SECRET_ENV": "env-secret-xyz"}}),
        )
        .unwrap();
        d.send(
            "POST",
            "/v1/jobs",
            &[("Authorization", &bearer(token))],
            Some(("application/json", &body)),
        );
        d.send(
            "GET",
            "/v1/jobs",
            &[("Authorization", &bearer(token))],
            None,
        );
    }
    let out = d.cli(&["list", "--token", WRONG]);
    assert_eq!(exit_code(&out), 2);
    // The jobs' ends are logged once they ran (on PostgreSQL a moment
    // after the answers).
    crate::support::wait_for("a job's end in the daemon's log", || {
        d.stderr_all().contains("state=succeeded")
    });
    let log = d.stderr_all();
    assert!(
        log.contains("jobq::jobs: job 1 queued") && log.contains("state=succeeded"),
        "the log is verbose enough to mean something: {log}"
    );
    for secret in [ADMIN, CI, OTHER, VIEWER, WRONG, "env-secret-xyz"] {
        assert!(!log.contains(secret), "{secret:?} is in the daemon's log");
    }
}

#[test]
fn a_daemon_without_tokens_is_anonymous_on_loopback() {
    let d = TestDaemon::start();
    let job = d.submit(json!({"command": ["true"], "env": {"K": "v"}}));
    assert_eq!(job.owner, "anonymous");
    assert_eq!(job.env["K"], "v", "anonymous is admin and sees env");
    // A token sent to a daemon that has none is ignored.
    let reply = d.send(
        "GET",
        "/v1/jobs",
        &[("Authorization", &bearer(WRONG))],
        None,
    );
    assert_eq!(reply.status, 200);
    let me = jobq::auth::Account::current().unwrap();
    assert_eq!(job.user.as_deref(), Some(me.name.as_str()));
    assert_eq!(job.uid, Some(me.uid));
}
