//! A web page must not be able to drive the daemon (docs/api.md, docs/security.md):
//! a cross-site request and a DNS-rebinding one run nothing; the daemon's
//! own origin, listed origins and listed host names still work, and so do
//! clients that send no `Origin`.

use std::path::Path;

use serde_json::json;

use crate::support::{assert_error, assert_holds, TestDaemon, HOLD_WINDOW};

/// A job spec that leaves a file behind if it ever runs.
fn proof(path: &Path) -> Vec<u8> {
    serde_json::to_vec(&json!({"shell": format!("id > '{}'", path.display())})).unwrap()
}

#[track_caller]
fn assert_nothing_ran(d: &TestDaemon, path: &Path) {
    assert_holds(
        "nothing the refused request asked for runs",
        HOLD_WINDOW,
        || !path.exists(),
    );
    assert_eq!(d.job_count(), 0, "a refused request created a job");
}

#[test]
fn a_cross_site_request_runs_nothing() {
    let d = TestDaemon::start();
    let file = d.path("csrf-proof");
    // What `fetch(url, {method: "POST", mode: "no-cors", body})` sends.
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[
            ("Origin", "https://attacker.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        Some(("text/plain;charset=UTF-8", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    // Either header alone is enough.
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Origin", "https://attacker.example")],
        Some(("text/plain", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Sec-Fetch-Site", "cross-site")],
        Some(("text/plain", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Origin", "null")],
        Some(("text/plain", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    assert_nothing_ran(&d, &file);
}

#[test]
fn a_rebinding_host_runs_nothing() {
    let d = TestDaemon::start();
    let file = d.path("rebind-proof");
    let reply = d.send(
        "GET",
        "/v1/jobs",
        &[("Host", "rebind.attacker.example")],
        None,
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    let port = d.addr().port().to_string();
    let host = format!("rebind.attacker.example:{port}");
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Host", &host), ("Origin", &format!("http://{host}"))],
        Some(("application/json", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("[server] hosts")),
        "the message says how to allow a name"
    );
    assert_nothing_ran(&d, &file);
}

#[test]
fn the_daemons_own_origin_and_loopback_names_are_allowed() {
    let d = TestDaemon::start();
    let port = d.addr().port();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}")] {
        let reply = d.send(
            "POST",
            "/v1/jobs",
            &[
                ("Host", &host),
                ("Origin", &format!("http://{host}")),
                ("Sec-Fetch-Site", "same-origin"),
            ],
            Some(("application/json", br#"{"command": ["true"]}"#)),
        );
        assert_eq!(reply.status, 201, "{host}: {}", reply.json());
    }
    // Another port on localhost is another origin.
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[
            ("Origin", "http://localhost:3000"),
            ("Sec-Fetch-Site", "same-site"),
        ],
        Some(("application/json", br#"{"command": ["true"]}"#)),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
}

#[test]
fn listed_origins_and_hosts_are_allowed() {
    let d = TestDaemon::builder()
        .config_toml(
            r#"
[server]
origins = ["https://Dash.Example.com/"]
hosts = ["jobs.internal"]
"#,
        )
        .start();
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[
            ("Origin", "https://dash.example.com"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        Some(("application/json", br#"{"command": ["true"]}"#)),
    );
    assert_eq!(reply.status, 201, "{}", reply.json());
    // Its page may read the answers, and ask first.
    let reply = d.send(
        "OPTIONS",
        "/v1/jobs",
        &[
            ("Origin", "https://dash.example.com"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        None,
    );
    assert_eq!(reply.status, 204);
    let reply = d.send("GET", "/v1/jobs", &[("Host", "jobs.internal:7711")], None);
    assert_eq!(reply.status, 200, "{}", reply.json());
    let reply = d.send("GET", "/v1/jobs", &[("Host", "other.internal")], None);
    assert_eq!(reply.status, 403);
}

#[test]
fn a_listed_origin_gets_cors_headers_and_others_do_not() {
    let d = TestDaemon::builder()
        .config_toml("[server]\norigins = [\"https://dash.example.com\"]\n")
        .start();
    let headers = d.head("/v1/queues", &[("Origin", "https://dash.example.com")]);
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(String::as_str),
        Some("https://dash.example.com")
    );
    let port = d.addr().port();
    let own = format!("http://127.0.0.1:{port}");
    let headers = d.head("/v1/queues", &[("Origin", &own)]);
    assert_eq!(headers.get("access-control-allow-origin"), None);
}

#[test]
fn with_tokens_a_rebinding_page_has_no_token_to_send() {
    let token = "browser-test-token-0123";
    let d = TestDaemon::builder()
        .config_toml(&format!(
            "[[auth.tokens]]\nname = \"me\"\nrole = \"admin\"\ntoken = \"{token}\"\n"
        ))
        .token(token)
        .start();
    let file = d.path("rebind-proof");
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Host", "rebind.attacker.example"), ("Authorization", "")],
        Some(("application/json", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 401, "unauthorized", None);
    assert_nothing_ran(&d, &file);
    // Where every request needs a token, the Host is not checked: a
    // client may reach the daemon by any name (docs/security.md).
    let reply = d.send("GET", "/v1/jobs", &[("Host", "build-box.example")], None);
    assert_eq!(reply.status, 200, "{}", reply.json());
    // A foreign page is refused all the same, token or not.
    let reply = d.send(
        "POST",
        "/v1/jobs",
        &[("Origin", "https://attacker.example")],
        Some(("application/json", &proof(&file))),
    );
    assert_error(reply.status, &reply.json(), 403, "forbidden", None);
    assert_nothing_ran(&d, &file);
}
