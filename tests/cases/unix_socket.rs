//! The unix socket (docs/api.md, "Who may do what"): the kernel tells the
//! daemon who connected, so a local user needs no token; its jobs are
//! owned by `unix:<user>` and run as that user; root and the admin group
//! are admins, everyone else `submit`. The socket's mode and group decide
//! who may connect; a stale socket is replaced, a live one is not.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use serde_json::Value;

use crate::support::{exit_code, jobq_command, require_root, run_bounded, TestDaemon};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Submits `line` over the socket as `user` and waits for it; returns the
/// job as the daemon shows it.
fn run_as(d: &TestDaemon, user: Option<&str>, line: &str) -> Value {
    let out = d.cli_unix(user, &["submit", "--wait", "--shell", line]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    let id = stdout(&out);
    let out = d.cli_unix(user, &["show", "--json", &id]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("show --json prints a job")
}

#[test]
fn the_socket_knows_its_peer_root_and_nobody() {
    require_root("connect to the socket as root and as nobody");
    let d = TestDaemon::builder()
        .unix_socket()
        .config_toml("socket_mode = \"0666\"\n")
        .start();
    let meta = std::fs::symlink_metadata(d.socket()).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);

    let root = run_as(&d, None, "id -u");
    assert_eq!(root["owner"], "unix:root", "{root}");
    assert_eq!(root["user"], "root");
    assert_eq!(root["uid"], 0);
    assert_eq!(d.output(root["id"].as_str().unwrap(), "stdout"), b"0\n");

    let nobody = run_as(
        &d,
        Some("nobody"),
        "id -u; id -g; echo $HOME $USER $LOGNAME; pwd",
    );
    assert_eq!(nobody["owner"], "unix:nobody", "{nobody}");
    assert_eq!(nobody["user"], "nobody");
    assert_eq!(nobody["uid"], 65534);
    let home = jobq::auth::Account::by_name("nobody").unwrap().home;
    let home = home.display().to_string();
    // The CLI sends its current directory: the job runs where it was
    // submitted from, like at(1).
    let cwd = std::env::current_dir().unwrap();
    let cwd = cwd.display();
    assert_eq!(
        String::from_utf8_lossy(&d.output(nobody["id"].as_str().unwrap(), "stdout")),
        format!("65534\n65534\n{home} nobody nobody\n{cwd}\n")
    );

    // Root is an admin; nobody may submit, and act on its own jobs only.
    let out = d.cli_unix(None, &["queue", "set", "default", "--concurrency", "3"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    let out = d.cli_unix(Some("nobody"), &["queue", "pause", "default"]);
    assert_eq!(exit_code(&out), 2);
    assert!(
        stderr(&out).contains("needs the admin role; unix:nobody has the submit role"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.queue("default")["paused"], false);
    let out = d.cli_unix(Some("nobody"), &["retry", root["id"].as_str().unwrap()]);
    assert_eq!(exit_code(&out), 2);
    assert!(
        stderr(&out).contains("owned by unix:root"),
        "{}",
        stderr(&out)
    );
    let out = d.cli_unix(Some("nobody"), &["rm", nobody["id"].as_str().unwrap()]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));

    // The TCP listener serves the same jobs.
    assert_eq!(d.job(root["id"].as_str().unwrap()).owner, "unix:root");
}

#[test]
fn the_socket_mode_and_group_decide_who_may_connect() {
    require_root("connect to the socket as nobody");
    let d = TestDaemon::builder()
        .unix_socket()
        .config_toml("socket_mode = \"0660\"\n")
        .start();
    let out = d.cli_unix(Some("nobody"), &["queues"]);
    assert_eq!(exit_code(&out), 3, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );

    let nogroup = jobq::auth::account::group_id("nogroup").unwrap();
    let d = TestDaemon::builder()
        .unix_socket()
        .config_toml("socket_mode = \"0660\"\nsocket_group = \"nogroup\"\n")
        .start();
    let meta = std::fs::metadata(d.socket()).unwrap();
    assert_eq!(meta.gid(), nogroup);
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    let out = d.cli_unix(Some("nobody"), &["queues"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
}

#[test]
fn members_of_the_admin_group_are_admins() {
    require_root("connect to the socket as nobody");
    let d = TestDaemon::builder()
        .unix_socket()
        .config_toml("socket_mode = \"0666\"\n[auth]\nadmin_group = \"nogroup\"\n")
        .start();
    let out = d.cli_unix(Some("nobody"), &["queue", "pause", "default"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));
    assert_eq!(d.queue("default")["paused"], true);
}

#[test]
fn with_tokens_the_socket_still_needs_none_and_a_token_on_it_counts() {
    require_root("connect to the socket as nobody");
    let token = "socket-test-token-0123";
    let d = TestDaemon::builder()
        .unix_socket()
        .config_toml(&format!(
            "socket_mode = \"0666\"\n[[auth.tokens]]\nname = \"viewer\"\nrole = \"read\"\ntoken = \"{token}\"\n"
        ))
        .token(token)
        .start();
    let nobody = run_as(&d, Some("nobody"), "true");
    assert_eq!(nobody["owner"], "unix:nobody");
    // A token sent over the socket is checked, and wins: here a read one.
    let out = d.cli_unix(Some("nobody"), &["submit", "--token", token, "--", "true"]);
    assert_eq!(exit_code(&out), 2);
    assert!(
        stderr(&out).contains("token:viewer has the read role"),
        "{}",
        stderr(&out)
    );
    let out = d.cli_unix(
        Some("nobody"),
        &["submit", "--token", "not-the-token-0123456", "--", "true"],
    );
    assert_eq!(exit_code(&out), 2);
    assert!(
        stderr(&out).contains("not one of this daemon's tokens"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let mut d = TestDaemon::builder().unix_socket().start();
    let socket = d.socket().to_owned();
    // A crash leaves the file behind; the next start takes its place.
    d.kill9();
    assert!(socket.exists(), "kill -9 leaves the socket file");
    d.restart();
    let out = d.cli_unix(None, &["queues"]);
    assert_eq!(exit_code(&out), 0, "{}", stderr(&out));

    // While it runs, a second daemon may not take the socket.
    let other = tempfile::tempdir().unwrap();
    let listen = format!("unix:{}", socket.display());
    let mut cmd = jobq_command(&["serve", "--listen", &listen, "--data-dir"]);
    cmd.arg(other.path().join("data"));
    let out = run_bounded(cmd, "a second jobq serve on a live socket");
    assert_eq!(exit_code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("another process is listening"),
        "{}",
        stderr(&out)
    );
    assert!(
        !other.path().join("data").exists(),
        "a refused start made its data dir"
    );
    assert_eq!(
        exit_code(&d.cli_unix(None, &["queues"])),
        0,
        "the first daemon still serves"
    );

    // Something that is not a socket is not replaced.
    let file = other.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let listen = format!("unix:{}", file.display());
    let mut cmd = jobq_command(&["serve", "--listen", &listen, "--data-dir"]);
    cmd.arg(other.path().join("data"));
    let out = run_bounded(cmd, "jobq serve on a file that is not a socket");
    assert_eq!(exit_code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a socket"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");

    // A clean stop removes the socket.
    assert!(d.terminate().success());
    assert!(!socket.exists(), "a clean stop leaves no socket behind");
}
