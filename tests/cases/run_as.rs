//! The user a job runs as and what it gets from the daemon (docs/api.md, "Who
//! may do what, and as whom"): a root daemon starts each job as the user
//! the contract's rules pick, with that user's groups, HOME, USER,
//! LOGNAME and SHELL; every job gets only `[jobs] inherit_env` of the
//! daemon's environment; the daemon's files are its own; a config that
//! names a user the daemon cannot be refuses to start.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::{exit_code, jobq_command, require_root, run_bounded, TestDaemon};

/// The stdout of a job of `spec` once it ended, and the job.
fn run(d: &TestDaemon, spec: Value) -> (String, jobq::api::JobView) {
    let job = d.submit(spec);
    let job = d.wait_terminal(&job.id);
    assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
    let out = String::from_utf8_lossy(&d.output(&job.id, "stdout")).into_owned();
    (out, job)
}

/// A variable only the daemon's environment holds.
const DAEMON_ONLY: &str = "JOBQ_TEST_DAEMON_ONLY_SECRET";

#[test]
fn a_job_sees_only_the_inherited_variables_of_the_daemon() {
    let d = TestDaemon::builder()
        .env(DAEMON_ONLY, "daemon-only-value")
        .env("TZ", "Europe/Berlin")
        .start();
    let (env, job) = run(
        &d,
        json!({"command": ["env"], "env": {"FROM_SPEC": "spec-value"}}),
    );
    let vars: Vec<&str> = env.lines().collect();
    assert!(!env.contains(DAEMON_ONLY), "{env}");
    assert!(!env.contains("daemon-only-value"), "{env}");
    assert!(
        vars.contains(&"TZ=Europe/Berlin"),
        "inherit_env passes TZ: {env}"
    );
    assert!(vars.iter().any(|v| v.starts_with("PATH=")), "{env}");
    assert!(vars.contains(&"FROM_SPEC=spec-value"), "{env}");
    assert!(
        vars.contains(&format!("JOBQ_JOB_ID={}", job.id).as_str()),
        "{env}"
    );
    let me = jobq::auth::Account::current().unwrap();
    assert!(
        vars.contains(&format!("USER={}", me.name).as_str()),
        "{env}"
    );
    assert!(
        vars.contains(&format!("LOGNAME={}", me.name).as_str()),
        "{env}"
    );
    assert!(
        vars.contains(&format!("HOME={}", me.home.display()).as_str()),
        "{env}"
    );
    assert!(
        vars.contains(&format!("SHELL={}", me.shell.display()).as_str()),
        "{env}"
    );
    // Nothing else: the test harness's own tag is the one addition, by
    // its config (tests/support).
    let names: std::collections::BTreeSet<&str> = vars
        .iter()
        .filter_map(|v| v.split_once('=').map(|p| p.0))
        .collect();
    let allowed = [
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "JOBQ_JOB_ID",
        "FROM_SPEC",
        crate::support::TAG_VAR,
    ];
    for name in &names {
        assert!(allowed.contains(name), "{name} reached the job: {env}");
    }
}

#[test]
fn inherit_env_names_what_passes() {
    let d = TestDaemon::builder()
        .env(DAEMON_ONLY, "passed-on")
        .config_toml(&format!("[jobs]\ninherit_env = [\"{DAEMON_ONLY}\"]\n"))
        .start();
    let (env, _) = run(&d, json!({"command": ["env"]}));
    assert!(env.contains(&format!("{DAEMON_ONLY}=passed-on")), "{env}");
    assert!(
        !env.lines().any(|l| l.starts_with("PATH=")),
        "PATH was not listed: {env}"
    );
}

#[test]
fn a_token_with_run_as_runs_its_jobs_as_that_user() {
    require_root("start jobs as nobody");
    let token = "run-as-test-token-0123";
    let d = TestDaemon::builder()
        .config_toml(&format!(
            "[[auth.tokens]]\nname = \"ci\"\nrole = \"submit\"\ntoken = \"{token}\"\nrun_as = \"nobody\"\n"
        ))
        .token(token)
        // Groups of the daemon's that the job must not keep.
        .groups(&[1, 2])
        .start();
    let data = d.data_dir().display().to_string();
    let (out, job) = run(
        &d,
        json!({"shell": format!("id -u; id -g; id -G; echo $USER $LOGNAME $HOME; pwd; ls '{data}' 2>/dev/null || echo no-access; umask")}),
    );
    assert_eq!(job.owner, "token:ci");
    assert_eq!(job.user.as_deref(), Some("nobody"));
    assert_eq!(job.uid, Some(65534));
    let nobody = jobq::auth::Account::by_name("nobody").unwrap();
    let cwd = if nobody.home.is_dir() {
        nobody.home.display().to_string()
    } else {
        "/".into()
    };
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "65534", "{out}");
    assert_eq!(lines[1], nobody.gid.to_string(), "{out}");
    assert_eq!(
        lines[2],
        nobody.gid.to_string(),
        "root's groups were dropped: {out}"
    );
    assert_eq!(
        lines[3],
        format!("nobody nobody {}", nobody.home.display()),
        "{out}"
    );
    assert_eq!(lines[4], cwd, "{out}");
    assert_eq!(
        lines[5], "no-access",
        "a job as nobody read the daemon's data dir: {out}"
    );
    assert_eq!(
        lines[6],
        test_umask(),
        "the job got the daemon's private umask: {out}"
    );
}

#[test]
fn jobs_user_is_the_default_and_root_needs_allow_root() {
    require_root("start jobs as nobody and as root");
    let d = TestDaemon::builder()
        .config_toml("[jobs]\nuser = \"nobody\"\n")
        .start();
    let (out, job) = run(&d, json!({"command": ["id", "-u"]}));
    assert_eq!(out, "65534\n");
    assert_eq!(job.owner, "anonymous");
    assert_eq!(job.uid, Some(65534));

    let d = TestDaemon::builder()
        .config_toml("[jobs]\nuser = \"root\"\nallow_root = true\n")
        .start();
    let (out, job) = run(&d, json!({"command": ["id", "-u"]}));
    assert_eq!(out, "0\n");
    assert_eq!(job.user.as_deref(), Some("root"));
}

/// `jobq serve` with `toml` refuses to start with exit 2, naming `key`
/// and saying `words`; `user`, when given, runs it.
#[track_caller]
fn refused(toml: &str, user: Option<&str>, key: &str, words: &str) {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = root.path().join("jobq.toml");
    std::fs::write(&config, toml).unwrap();
    let data = root.path().join("data");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let cmd = match user {
        Some(user) => crate::support::as_user(user, crate::support::jobq_bin(), &args),
        None => jobq_command(&args),
    };
    let out = run_bounded(cmd, "jobq serve with a config it must refuse");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(exit_code(&out), 2, "{toml}: {stderr}");
    assert!(
        stderr.contains(key),
        "{toml}: stderr should name {key}: {stderr}"
    );
    assert!(
        stderr.contains(words),
        "{toml}: stderr should say {words:?}: {stderr}"
    );
    assert!(
        !Path::new(&data).exists(),
        "a refused start made the data dir"
    );
}

#[test]
fn a_config_naming_a_user_the_daemon_cannot_be_is_refused() {
    require_root("start the daemon as root and as nobody");
    refused("[jobs]\nuser = \"root\"\n", None, "jobs.user", "allow_root");
    refused(
        "[[auth.tokens]]\nname = \"a\"\nrole = \"submit\"\ntoken = \"0123456789abcdef0\"\nrun_as = \"root\"\n",
        None,
        "auth.tokens",
        "allow_root",
    );
    refused(
        "[jobs]\nuser = \"no-such-user-jobq\"\n",
        None,
        "jobs.user",
        "no user",
    );
    refused(
        "[[auth.tokens]]\nname = \"a\"\nrole = \"submit\"\ntoken = \"0123456789abcdef0\"\nrun_as = \"no-such-user-jobq\"\n",
        None,
        "auth.tokens",
        "no user",
    );
    // A daemon that is not root can start jobs only as itself.
    refused(
        "[jobs]\nuser = \"daemon\"\n",
        Some("nobody"),
        "jobs.user",
        "only as itself",
    );
    refused(
        "[[auth.tokens]]\nname = \"a\"\nrole = \"submit\"\ntoken = \"0123456789abcdef0\"\nrun_as = \"daemon\"\n",
        Some("nobody"),
        "auth.tokens",
        "only as itself",
    );
}

#[test]
fn a_daemon_that_is_not_root_runs_every_job_as_itself() {
    require_root("start the daemon as nobody");
    let d = TestDaemon::builder()
        .daemon_user("nobody")
        .unix_socket()
        .config_toml("socket_mode = \"0666\"\n")
        .start();
    // Root on the socket is an admin, but its job runs as the daemon.
    let out = d.cli_unix(None, &["submit", "--wait", "--", "id", "-u"]);
    assert_eq!(
        exit_code(&out),
        0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let job = d.job(&id);
    assert_eq!(job.owner, "unix:root");
    assert_eq!(job.uid, Some(65534));
    assert_eq!(d.output(&id, "stdout"), b"65534\n");
    assert_eq!(d.queue("default")["paused"], false);
    let out = d.cli_unix(None, &["queue", "pause", "default"]);
    assert_eq!(
        exit_code(&out),
        0,
        "root is an admin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_daemons_files_are_its_own() {
    let d = TestDaemon::start();
    run(&d, json!({"shell": "echo output"}));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(d.data_dir()), 0o700);
    assert_eq!(mode(&d.data_dir().join("store")), 0o700);
    assert_eq!(mode(&d.data_dir().join("work")), 0o700);
    assert_eq!(mode(&d.data_dir().join("jobq.addr")), 0o600);
    for entry in walk(&d.data_dir().join("store")) {
        let m = mode(&entry);
        assert_eq!(m & 0o077, 0, "{} is mode {m:o}", entry.display());
    }
    // A job's own files follow the umask the daemon was started with.
    let (out, _) = run(&d, json!({"shell": "umask"}));
    assert_eq!(out.trim(), test_umask());
}

/// The umask of this test process (and so of the daemons it starts), as
/// `umask` prints it; read from /proc, since setting it to read it would
/// race other tests' threads.
fn test_umask() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Umask:"))
        .expect("a Umask line")
        .trim()
        .to_owned()
}

/// Every file and directory under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out
}

#[test]
fn a_root_daemon_taking_anonymous_tcp_warns_at_start() {
    require_root("start a root daemon");
    let d = TestDaemon::start();
    let log = d.stderr_all();
    assert!(
        log.contains("any local user can run commands as root through it"),
        "{log}"
    );
    let token = "no-warning-token-012345";
    let d = TestDaemon::builder()
        .config_toml(&format!(
            "[[auth.tokens]]\nname = \"me\"\nrole = \"admin\"\ntoken = \"{token}\"\n"
        ))
        .token(token)
        .start();
    assert!(
        !d.stderr_all().contains("any local user"),
        "{}",
        d.stderr_all()
    );
}
