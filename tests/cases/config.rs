//! `jobq serve` with a bad config file exits 2 naming the key at fault and
//! leaves the data dir as it was.

use std::path::Path;

use crate::support::{exit_code, jobq_command, run_bounded};

/// Runs `jobq serve` with `toml` as its config file and `data_dir`, and
/// returns its exit code and stderr.
fn serve_with(root: &Path, toml: &str, data_dir: &Path) -> (i32, String) {
    let config = root.join("jobq.toml");
    std::fs::write(&config, toml).unwrap();
    let mut cmd = jobq_command(&["serve", "--listen", "127.0.0.1:0", "--config"]);
    cmd.arg(&config).arg("--data-dir").arg(data_dir);
    let out = run_bounded(cmd, "jobq serve with a bad config");
    (
        exit_code(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn assert_refused(toml: &str, key: &str) {
    let root = tempfile::tempdir().unwrap();

    let fresh = root.path().join("fresh");
    let (code, stderr) = serve_with(root.path(), toml, &fresh);
    assert_eq!(code, 2, "config {toml:?}: stderr {stderr}");
    assert!(stderr.contains(key), "stderr should name `{key}`: {stderr}");
    assert!(stderr.starts_with("jobq:"), "stderr: {stderr}");
    assert!(!fresh.exists(), "a refused config created the data dir");

    let existing = root.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let (code, stderr) = serve_with(root.path(), toml, &existing);
    assert_eq!(code, 2, "config {toml:?}: stderr {stderr}");
    let left: Vec<_> = std::fs::read_dir(&existing).unwrap().collect();
    assert!(
        left.is_empty(),
        "a refused config wrote into the data dir: {left:?}"
    );
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    assert_refused("unknown_key = 1\n", "unknown_key");
}

#[test]
fn zero_workers_is_refused_by_name() {
    assert_refused("workers = 0\n", "workers");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_by_name() {
    assert_refused("kill_grace = \"soon\"\n", "kill_grace");
}

#[test]
fn a_missing_config_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let missing = root.path().join("missing.toml");
    let mut cmd = jobq_command(&["serve", "--listen", "127.0.0.1:0", "--config"]);
    cmd.arg(&missing).arg("--data-dir").arg(&data);
    let out = run_bounded(cmd, "jobq serve with a missing config");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "stderr: {stderr}");
    assert!(
        stderr.contains("missing.toml"),
        "stderr should name the file: {stderr}"
    );
    assert!(!data.exists());
}

#[test]
fn every_setting_refuses_its_bad_values_by_name() {
    for (toml, key) in [
        ("durability = \"maybe\"\n", "durability"),
        ("flush_interval = \"0ms\"\n", "flush_interval"),
        ("shutdown_grace = \"later\"\n", "shutdown_grace"),
        ("max_backoff = -1\n", "max_backoff"),
        ("max_queued = 0\n", "max_queued"),
        ("retention = \"0s\"\n", "retention"),
        ("keep_finished = -5\n", "keep_finished"),
        ("default_concurrency = 0\n", "default_concurrency"),
        ("[queues.BAD]\nconcurrency = 1\n", "BAD"),
        ("[queues.a]\nconcurrency = 0\n", "queues.a.concurrency"),
        ("[queues.a]\nlimit = 2\n", "limit"),
        ("listen = \"nowhere\"\n", "listen"),
        ("on_interrupted = \"retry\"\n", "on_interrupted"),
        ("max_body = \"1B\"\n", "max_body"),
        ("max_output = \"lots\"\n", "max_output"),
        ("shell = \"sh\"\n", "shell"),
        ("log = 3\n", "log"),
    ] {
        assert_refused(toml, key);
    }
}

#[test]
fn a_non_loopback_listen_address_is_refused_without_tokens() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let mut cmd = jobq_command(&["serve", "--listen", "0.0.0.0:0", "--data-dir"]);
    cmd.arg(&data);
    let out = run_bounded(cmd, "jobq serve on 0.0.0.0");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "stderr: {stderr}");
    assert!(
        stderr.contains("listen"),
        "stderr should name the setting: {stderr}"
    );
    assert!(!data.exists());
}
