//! `jobq list` as a person and a script use it: every page, the filters,
//! and the columns that say where each job is.

use serde_json::json;

use crate::support::{assert_ok, exit_code, stderr, stdout, TestDaemon};

/// The rows of a `jobq list` table (the header line dropped).
fn rows(text: &str) -> Vec<&str> {
    text.lines().skip(1).collect()
}

#[test]
fn list_pages_past_a_thousand_with_all_or_a_cursor() {
    let d = TestDaemon::start();
    let jobs: Vec<_> = (0..1005)
        .map(|i| json!({ "command": ["true"], "delay": "1h", "name": format!("j{i}") }))
        .collect();
    for chunk in jobs.chunks(500) {
        let (status, body) = d.post_json("/v1/jobs/batch", &json!({ "jobs": chunk }));
        assert_eq!(status, 201, "{body}");
    }

    // One page by default, and a hint on stderr (stdout stays the table).
    let out = d.cli(&["list"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(rows(&text).len(), 100, "{text}");
    assert!(text.starts_with("#"), "{text}");
    let hint = stderr(&out);
    assert!(hint.contains("--all"), "{hint}");
    let cursor = hint
        .split("--cursor ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no cursor in the hint: {hint}"));

    // --cursor goes on where the page stopped.
    let out = d.cli(&["list", "--cursor", cursor, "--limit", "5"]);
    assert_ok(&out);
    let next = stdout(&out);
    assert_eq!(rows(&next).len(), 5, "{next}");
    assert!(next.contains(" j904"), "the page after j905: {next}");

    // --all: every job, one header.
    let out = d.cli(&["list", "--all"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1 + 1005, "header and 1005 rows");
    assert_eq!(text.lines().filter(|l| l.starts_with("# ")).count(), 1);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    assert!(
        rows(&text).iter().all(|r| r.contains("runs in ")),
        "a scheduled job says when it runs: {}",
        &text[..400]
    );

    // --json --all: one object per page.
    let out = d.cli(&["list", "--all", "--json", "--state", "scheduled"]);
    assert_ok(&out);
    let pages: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout(&out))
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("JSON pages");
    assert_eq!(pages.len(), 2, "1005 jobs are two pages of 1000");
    let total: usize = pages
        .iter()
        .map(|p| p["jobs"].as_array().unwrap().len())
        .sum();
    assert_eq!(total, 1005);
}

#[test]
fn list_filters_by_name_label_and_owner() {
    let d = TestDaemon::start();
    let a = d.submit(json!({ "command": ["true"], "name": "build", "labels": { "team": "a" } }));
    let b = d.submit(json!({ "command": ["true"], "name": "test", "labels": { "team": "b" } }));
    let c = d.submit(
        json!({ "command": ["true"], "name": "build", "labels": { "team": "b", "os": "linux" } }),
    );
    let list = |args: &[&str]| -> String {
        let mut all = vec!["list", "--wide"];
        all.extend_from_slice(args);
        let out = d.cli(&all);
        assert_ok(&out);
        stdout(&out)
    };
    let has = |text: &str, want: &[&str], not: &[&str]| {
        for id in want {
            assert!(text.contains(id), "{id} missing: {text}");
        }
        for id in not {
            assert!(!text.contains(id), "{id} listed: {text}");
        }
    };
    has(&list(&["--name", "build"]), &[&a.id, &c.id], &[&b.id]);
    has(&list(&["--label", "team=b"]), &[&b.id, &c.id], &[&a.id]);
    has(
        &list(&["--label", "team=b", "--label", "os=linux"]),
        &[&c.id],
        &[&a.id, &b.id],
    );
    has(
        &list(&["--name", "build", "--label", "team=a"]),
        &[&a.id],
        &[&b.id, &c.id],
    );
    has(
        &list(&["--owner", "anonymous"]),
        &[&a.id, &b.id, &c.id],
        &[],
    );
    has(
        &list(&["--owner", "token:nobody"]),
        &[],
        &[&a.id, &b.id, &c.id],
    );
    let wide = list(&[]);
    assert!(wide.lines().next().unwrap().contains("OWNER"), "{wide}");
    assert!(wide.contains("anonymous"), "{wide}");
}

#[test]
fn attempts_show_out_of_how_many_only_with_retries() {
    let d = TestDaemon::start();
    let retried = d.submit(json!({ "command": ["false"], "retries": 2, "backoff": "10ms" }));
    let plain = d.submit(json!({ "command": ["false"], "name": "plain" }));
    d.wait_terminal(&retried.id);
    d.wait_terminal(&plain.id);
    let (status, body) = d.post_empty(&format!("/v1/jobs/{}/retry", plain.id));
    assert_eq!(status, 200, "{body}");
    d.wait_terminal(&plain.id);
    let out = d.cli(&["list", "--wide"]);
    assert_ok(&out);
    let text = stdout(&out);
    let row = |id: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.contains(id))
            .unwrap_or_else(|| panic!("{id}: {text}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    // # ID OWNER STATE QUEUE ATTEMPT EXIT WHEN…
    assert_eq!(row(&retried.id)[5], "3/3", "{text}");
    assert_eq!(row(&plain.id)[5], "2", "{text}");
    assert!(!text.contains(" of "), "{text}");
}

#[test]
fn bad_list_flags_say_what_is_expected() {
    let d = TestDaemon::start();
    d.submit(json!({ "command": ["true"] }));
    for (args, want) in [
        (&["list", "--limit", "0"][..], "must be ≥ 1"),
        (&["list", "--limit", "-1"][..], "must be ≥ 1"),
        (&["list", "--limit", "1001"][..], "at most 1000"),
        (&["list", "--limit", "ten"][..], "not a whole number"),
        (&["list", "--label", "team"][..], "K=V"),
        (&["list", "--state", "runing"][..], "unknown state"),
        (
            &["list", "--queue", "no such queue"][..],
            "not a queue name",
        ),
        (
            &["list", "--all", "--limit", "5"][..],
            "cannot be used with",
        ),
    ] {
        let out = d.cli(args);
        let err = stderr(&out);
        assert_eq!(exit_code(&out), 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("-- -1") && !err.contains("i32") && !err.contains("u32"),
            "{args:?}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{args:?}: {}", stdout(&out));
    }
}
