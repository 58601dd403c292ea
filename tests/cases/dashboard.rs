//! The web dashboard's HTTP side (docs/dashboard.md): `GET /` and its files
//! come from the binary under a strict Content-Security-Policy, need no
//! token (the page asks for one and sends it to the API), never load
//! anything from elsewhere, and never insert markup; `GET /v1/whoami`
//! tells the page what its token may do. The page itself is driven in
//! Chromium by scripts/browser.sh (tests/browser/dashboard.py).

use serde_json::json;

use crate::auth::{bearer, tokens, ADMIN, CI, VIEWER};
use crate::support::{assert_error, TestDaemon};

/// The dashboard's file names, as the page and its modules name them.
fn files_named_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for quote in ['"', '\''] {
        for piece in text.split(quote) {
            let name = piece
                .strip_prefix("/ui/")
                .or_else(|| piece.strip_prefix("./"));
            if let Some(name) = name {
                if (name.ends_with(".js") || name.ends_with(".css")) && !name.contains('/') {
                    out.push(name.to_owned());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn the_page_and_every_file_it_loads_come_from_the_binary_under_a_strict_csp() {
    let d = TestDaemon::start();
    let page = d.get("/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part:?}");
    }
    assert!(!csp.contains("unsafe"), "CSP {csp:?}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));

    // Walk the page's files and every module they import.
    let mut todo = files_named_in(&page.text());
    assert!(todo.contains(&"main.js".to_owned()), "{todo:?}");
    let mut seen = Vec::new();
    while let Some(name) = todo.pop() {
        if seen.contains(&name) {
            continue;
        }
        let file = d.get(&format!("/ui/{name}"));
        assert_eq!(file.status, 200, "/ui/{name}: {}", file.text());
        let mime = if name.ends_with(".css") {
            "text/css; charset=utf-8"
        } else {
            "text/javascript; charset=utf-8"
        };
        assert_eq!(file.content_type.as_deref(), Some(mime), "/ui/{name}");
        assert_eq!(file.header("content-security-policy"), Some(csp));
        let text = file.text();
        // Values from jobs go in as text: no markup is ever parsed.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text.contains(sink), "/ui/{name} uses {sink}");
        }
        // Nothing from elsewhere (machines may be offline).
        assert!(!text.contains("https://"), "/ui/{name} names a remote URL");
        if name.ends_with(".js") {
            todo.extend(files_named_in(&text));
        }
        seen.push(name);
    }
    assert!(seen.len() >= 8, "the page's files: {seen:?}");
}

#[test]
fn a_file_the_dashboard_does_not_have_is_a_404_and_only_get_is_served() {
    let d = TestDaemon::start();
    for path in [
        "/ui/nope.js",
        "/ui/main.js.map",
        "/ui/..%2FCargo.toml",
        "/ui/",
    ] {
        let reply = d.get(path);
        assert_error(reply.status, &reply.json(), 404, "not_found", None);
    }
    let reply = d.send("POST", "/", &[], Some(("application/json", b"{}")));
    assert_eq!(reply.status, 405, "{}", reply.text());
    let reply = d.send("DELETE", "/ui/main.js", &[], None);
    assert_eq!(reply.status, 405, "{}", reply.text());
    assert_eq!(d.job_count(), 0);
}

#[test]
fn the_files_need_no_token_and_whoami_names_each_principal() {
    let d = tokens().start();
    let none = [("Authorization", "")];
    for path in ["/", "/ui/main.js", "/ui/app.css"] {
        let reply = d.send("GET", path, &none, None);
        assert_eq!(
            reply.status,
            200,
            "{path} without a token: {}",
            reply.text()
        );
    }
    let reply = d.send("GET", "/v1/whoami", &none, None);
    assert_error(reply.status, &reply.json(), 401, "unauthorized", None);
    let reply = d.send(
        "GET",
        "/v1/whoami",
        &[("Authorization", "Bearer not-a-token-0123456789")],
        None,
    );
    assert_error(reply.status, &reply.json(), 401, "unauthorized", None);
    let daemon_user = d.get_json("/v1/whoami").1["user"].clone();
    for (token, principal, role) in [
        (ADMIN, "token:root", "admin"),
        (CI, "token:ci", "submit"),
        (VIEWER, "token:viewer", "read"),
    ] {
        let auth = bearer(token);
        let reply = d.send("GET", "/v1/whoami", &[("Authorization", &auth)], None);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.json(),
            json!({"principal": principal, "role": role, "user": daemon_user}),
            "{principal}"
        );
    }
    let reply = d.send("GET", "/v1/whoami?x=1", &[], None);
    assert_error(reply.status, &reply.json(), 400, "invalid_field", Some("x"));
}

#[test]
fn without_tokens_a_loopback_client_is_anonymous_with_the_admin_role() {
    let d = TestDaemon::start();
    let (status, me) = d.get_json("/v1/whoami");
    assert_eq!(status, 200);
    assert_eq!(me["principal"], "anonymous");
    assert_eq!(me["role"], "admin");
    assert!(me["user"].as_str().is_some_and(|u| !u.is_empty()), "{me}");
}
