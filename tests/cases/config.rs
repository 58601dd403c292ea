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
        ("default_concurrency = 4097\n", "at most 4096"),
        ("[queues.a]\nconcurrency = 100000\n", "at most 4096"),
        ("[queues.a]\nlimit = 2\n", "limit"),
        ("listen = \"nowhere\"\n", "listen"),
        ("on_interrupted = \"retry\"\n", "on_interrupted"),
        ("max_body = \"1B\"\n", "max_body"),
        ("max_output = \"lots\"\n", "max_output"),
        ("shell = \"sh\"\n", "shell"),
        ("shell = \"/bin/no-such-shell\"\n", "does not exist"),
        ("shell = \"/etc/passwd\"\n", "not executable"),
        ("shell = \"/etc\"\n", "not a file"),
        ("log = 3\n", "log"),
        ("log = \"jobq=loud\"\n", "not a log filter"),
        ("log = \"[x\"\n", "not a log filter"),
        ("log_format = \"xml\"\n", "log_format"),
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

#[test]
fn every_access_setting_refuses_its_bad_values_by_name() {
    let token =
        |extra: &str| format!("[[auth.tokens]]\nname = \"ci\"\nrole = \"submit\"\n{extra}\n");
    let ok = "token = \"0123456789abcdef0123\"";
    let cases: Vec<(String, &str)> = vec![
        ("listen = []\n".into(), "listen"),
        (
            "listen = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n".into(),
            "listen",
        ),
        ("listen = [\"unix:relative.sock\"]\n".into(), "listen"),
        ("listen = 5\n".into(), "listen"),
        ("socket_mode = \"0999\"\n".into(), "socket_mode"),
        ("socket_mode = 660\n".into(), "socket_mode"),
        ("socket_mode = \"rw-rw----\"\n".into(), "socket_mode"),
        (
            "socket_group = \"no-such-group-jobq\"\n".into(),
            "socket_group",
        ),
        (
            "[auth]\nadmin_group = \"no-such-group-jobq\"\n".into(),
            "auth.admin_group",
        ),
        ("[auth]\nusers = []\n".into(), "users"),
        (token(ok).replace("\"ci\"", "\"CI\""), "auth.tokens"),
        (token(ok).replace("\"submit\"", "\"root\""), "role"),
        (token("token = \"short\""), "auth.tokens"),
        (token("token = \"0123456789 abcdef0123\""), "auth.tokens"),
        (
            token(&format!("{ok}\ntoken_file = \"/etc/hostname\"")),
            "auth.tokens",
        ),
        (token(""), "auth.tokens"),
        (
            token("token_file = \"/nonexistent/jobq-token\""),
            "auth.tokens",
        ),
        (
            token("token_file = \"relative-token\""),
            "CREDENTIALS_DIRECTORY",
        ),
        (
            format!(
                "{}{}",
                token(ok),
                token("token = \"another-token-0123456\"")
            ),
            "used twice",
        ),
        (
            format!("{}{}", token(ok), token(ok).replace("\"ci\"", "\"cd\"")),
            "same token",
        ),
        (token(&format!("{ok}\nscope = \"all\"")), "scope"),
        (
            "[server]\norigins = [\"dash.example.com\"]\n".into(),
            "server.origins",
        ),
        (
            "[server]\norigins = [\"https://dash.example.com/app\"]\n".into(),
            "server.origins",
        ),
        ("[server]\norigins = [\"*\"]\n".into(), "server.origins"),
        (
            "[server]\nhosts = [\"http://jobs.internal\"]\n".into(),
            "server.hosts",
        ),
        (
            "[server]\nhosts = [\"jobs.internal:7711\"]\n".into(),
            "server.hosts",
        ),
        ("[server]\ncors = true\n".into(), "cors"),
        (
            "[jobs]\ninherit_env = [\"A=B\"]\n".into(),
            "jobs.inherit_env",
        ),
        ("[jobs]\ninherit_env = [\"\"]\n".into(), "jobs.inherit_env"),
        ("[jobs]\nallow_root = \"yes\"\n".into(), "allow_root"),
        ("[jobs]\nlimits = 1\n".into(), "limits"),
    ];
    for (toml, key) in cases {
        assert_refused(&toml, key);
    }
}

#[test]
fn a_token_never_shows_in_a_config_error() {
    let secret = "0123456789abcdef-secret";
    let root = tempfile::tempdir().unwrap();
    let toml = format!(
        "[[auth.tokens]]\nname = \"a\"\nrole = \"admin\"\ntoken = \"{secret}\"\n\
         [[auth.tokens]]\nname = \"b\"\nrole = \"admin\"\ntoken = \"{secret}\"\n"
    );
    let (code, stderr) = serve_with(root.path(), &toml, &root.path().join("data"));
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}

/// Starts `jobq serve --config config --listen listen` on a fresh data dir
/// under `root`, waits until it has bound, stops it, and returns what it
/// wrote to `jobq.addr`.
fn bound_with(root: &Path, config: &Path, listen: &str) -> String {
    let data = root.join("data");
    let mut cmd = jobq_command(&["serve", "--listen", listen, "--config"]);
    cmd.arg(config).arg("--data-dir").arg(&data);
    let mut child = cmd
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start jobq serve");
    let addr_file = data.join("jobq.addr");
    let mut exited = None;
    crate::support::wait_for("the daemon to write jobq.addr", || {
        exited = child.try_wait().ok().flatten();
        exited.is_some() || std::fs::read_to_string(&addr_file).is_ok_and(|t| t.ends_with('\n'))
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        exited,
        None,
        "jobq serve --config {} exited",
        config.display()
    );
    std::fs::read_to_string(&addr_file).unwrap()
}

#[test]
fn a_non_loopback_listen_address_starts_with_tokens() {
    let token = "public-listen-token-0123";
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("jobq.toml");
    std::fs::write(
        &config,
        format!("[[auth.tokens]]\nname = \"me\"\nrole = \"admin\"\ntoken = \"{token}\"\n"),
    )
    .unwrap();
    let bound = bound_with(root.path(), &config, "0.0.0.0:0");
    assert!(bound.starts_with("0.0.0.0:"), "{bound}");
}

#[test]
fn the_shipped_config_file_is_accepted() {
    let root = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/jobq.toml");
    let bound = bound_with(root.path(), &shipped, "127.0.0.1:0");
    assert!(bound.starts_with("127.0.0.1:"), "{bound}");
}

#[test]
fn a_relative_token_file_is_read_from_the_credentials_directory() {
    let creds = tempfile::tempdir().unwrap();
    let token = "credential-token-0123456";
    std::fs::write(creds.path().join("token_ci"), format!("{token}\n")).unwrap();
    let d = crate::support::TestDaemon::builder()
        .env("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap())
        .config_toml(
            "[[auth.tokens]]\nname = \"ci\"\nrole = \"submit\"\ntoken_file = \"token_ci\"\n",
        )
        .token(token)
        .start();
    let job = d.submit(serde_json::json!({"command": ["true"]}));
    assert_eq!(job.owner, "token:ci");
}

/// `jobq serve ARGS` in `cwd` with `env`, its exit code and stderr.
fn serve_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let mut cmd = jobq_command(&all);
    cmd.current_dir(cwd).envs(env.iter().copied());
    let out = run_bounded(cmd, "jobq serve");
    (
        exit_code(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_data_dir_that_is_relative_in_the_file_or_a_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("jobq.toml");
    std::fs::write(&config, "data_dir = \"state\"\n").unwrap();
    let (code, stderr) = serve_in(root.path(), &["--config", config.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("data_dir") && stderr.contains("relative"),
        "{stderr}"
    );
    assert!(!root.path().join("state").exists());

    let file = root.path().join("a-file");
    std::fs::write(&file, "mine").unwrap();
    let (code, stderr) = serve_in(root.path(), &["--data-dir", file.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a directory"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
}

#[test]
fn a_relative_data_dir_flag_is_taken_from_where_it_was_typed() {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = jobq_command(&["serve", "--listen", "127.0.0.1:0", "--data-dir", "state"]);
    cmd.current_dir(root.path());
    // Killed when dropped.
    let daemon = crate::support::LineReader::spawn(cmd, "jobq serve --data-dir state");
    let addr = root.path().join("state/jobq.addr");
    crate::support::wait_for("jobq.addr under the relative data dir", || addr.exists());
    drop(daemon);
}

#[test]
fn a_bad_rust_log_is_refused_before_anything_is_made() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let (code, stderr) = serve_in(
        root.path(),
        &["--data-dir", data.to_str().unwrap()],
        &[("RUST_LOG", "jobq=loud")],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("RUST_LOG"), "{stderr}");
    assert!(!data.exists());
}

#[test]
fn a_port_in_use_is_refused_before_the_data_dir_is_made() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let mut cmd = jobq_command(&["serve", "--listen", &port, "--data-dir"]);
    cmd.arg(&data);
    let out = run_bounded(cmd, "jobq serve on a port in use");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "{stderr}");
    assert!(stderr.contains(&port), "{stderr}");
    assert!(!data.exists(), "the data dir was made: {stderr}");
}
