//! The operator's commands: `jobq config check`, `jobq completions`,
//! `jobq --version`.

use std::path::Path;

use crate::support::{exit_code, jobq_command, run_bounded, stderr, stdout};

/// `jobq config check --config FILE` with `toml` in FILE.
fn check(dir: &Path, toml: &str) -> std::process::Output {
    let file = dir.join("jobq.toml");
    std::fs::write(&file, toml).unwrap();
    let mut cmd = jobq_command(&["config", "check", "--config"]);
    cmd.arg(&file).current_dir(dir);
    run_bounded(cmd, "jobq config check")
}

#[test]
fn config_check_prints_the_effective_settings_which_read_back_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = check(
        dir.path(),
        &format!(
            "workers = 3\ndata_dir = \"{}\"\n[queues.nightly]\nconcurrency = 1\n",
            data.display()
        ),
    );
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let effective: toml::Table = toml::from_str(&text).expect("the output is TOML");
    assert_eq!(effective["workers"].as_integer(), Some(3));
    assert_eq!(
        effective["kill_grace"].as_str(),
        Some("10s"),
        "defaults are shown too"
    );
    assert_eq!(
        effective["queues"]["nightly"]["concurrency"].as_integer(),
        Some(1)
    );
    assert!(!data.exists(), "a check makes no data dir");
    // Its output is a config file that checks to the same settings.
    let again = check(dir.path(), &text);
    assert_eq!(exit_code(&again), 0, "{}", stderr(&again));
    assert_eq!(stdout(&again), text);
}

#[test]
fn config_check_hides_tokens_and_names_a_bad_key() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "check-secret-0123456789";
    let out = check(
        dir.path(),
        &format!("[[auth.tokens]]\nname = \"ci\"\nrole = \"submit\"\ntoken = \"{secret}\"\n"),
    );
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("token = \"<hidden>\""),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(secret) && !stderr(&out).contains(secret));

    for (toml, key) in [
        ("workers = 0\n", "workers"),
        ("colour = \"red\"\n", "colour"),
        ("shell = \"/no/such/shell\"\n", "shell"),
    ] {
        let out = check(dir.path(), toml);
        assert_eq!(exit_code(&out), 2, "{toml}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{toml}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{toml}");
    }
    let missing = run_bounded(
        jobq_command(&["config", "check", "--config", "/no/such/jobq.toml"]),
        "jobq config check of a missing file",
    );
    assert_eq!(exit_code(&missing), 2, "{}", stderr(&missing));
    let wrong = run_bounded(jobq_command(&["config", "verify"]), "jobq config verify");
    assert_eq!(exit_code(&wrong), 2);
}

#[test]
fn completions_are_scripts_of_each_shell() {
    for (shell, mark) in [
        ("bash", "_jobq()"),
        ("zsh", "#compdef jobq"),
        ("fish", "complete -c jobq"),
    ] {
        let out = run_bounded(jobq_command(&["completions", shell]), "jobq completions");
        assert_eq!(exit_code(&out), 0, "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(
            script.contains(mark),
            "{shell}: {}",
            &script[..script.len().min(300)]
        );
        assert!(
            script.contains("submit") && script.contains("--queue"),
            "{shell}"
        );
    }
    let bash = run_bounded(
        jobq_command(&["completions", "bash"]),
        "jobq completions bash",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobq.bash");
    std::fs::write(&file, &bash.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        syntax.status.success(),
        "{}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    let out = run_bounded(
        jobq_command(&["completions", "tcsh"]),
        "jobq completions tcsh",
    );
    assert_eq!(exit_code(&out), 2);
}

#[test]
fn version_names_the_build() {
    let out = run_bounded(jobq_command(&["--version"]), "jobq --version");
    assert_eq!(exit_code(&out), 0);
    let version = stdout(&out);
    assert!(
        version.starts_with(&format!("jobq {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    // Built from this git checkout, it names the commit.
    if Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists() {
        assert!(version.contains("(commit "), "{version}");
    }
}
