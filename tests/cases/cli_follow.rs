//! The client's live commands against a real daemon: `submit --follow`,
//! `logs -f`, `wait`, `events` and `submit --stdin` of a large binary file.

use std::process::{Command, Output};

use crate::support::{exit_code, LineReader, TestDaemon};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn submit_follow_prints_the_output_and_exits_with_the_jobs_code() {
    let d = TestDaemon::start();
    let out = d.cli(&[
        "submit",
        "--follow",
        "--shell",
        "echo a; sleep 0.3; echo b; exit 3",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "a\nb\n",
        "stderr: {}",
        stderr(&out)
    );
    assert_eq!(exit_code(&out), 3, "stderr: {}", stderr(&out));
}

#[test]
fn logs_follow_prints_exact_bytes_and_exits_with_the_jobs_code() {
    let d = TestDaemon::start();
    let file = d.path("bytes");
    let every: Vec<u8> = (0..=255u8).cycle().take(64 * 1024 + 7).collect();
    std::fs::write(&file, &every).expect("write bytes file");
    let gate = d.gate();
    let job = d.submit_shell(&format!(
        "head -c 1000 '{0}'; {1}; tail -c +1001 '{0}'; exit 5",
        file.display(),
        gate.shell()
    ));
    d.wait_running(&job.id);
    let out = std::thread::scope(|s| {
        let follower = s.spawn(|| d.cli(&["logs", "-f", "--stdout", &job.id]));
        // Let the job finish while `logs -f` follows it (or before it
        // connects: either way every byte must come out once).
        gate.open();
        follower.join().expect("logs -f")
    });
    assert_eq!(exit_code(&out), 5, "stderr: {}", stderr(&out));
    assert!(
        out.stdout == every,
        "logs -f printed {} bytes, the job wrote {}; first difference at {:?}",
        out.stdout.len(),
        every.len(),
        out.stdout.iter().zip(&every).position(|(a, b)| a != b)
    );
    // After the end, too.
    let again = d.cli(&["logs", "-f", "--stdout", &job.id]);
    assert_eq!(exit_code(&again), 5);
    assert!(again.stdout == every, "logs -f of an ended job");
}

#[test]
fn wait_exits_with_the_jobs_code_or_128_plus_the_signal() {
    let d = TestDaemon::start();
    let code = d.submit_shell("sleep 0.2; exit 4");
    let killed = d.submit_shell("sleep 0.2; kill -9 $$");
    let out = d.cli(&["wait", &code.id]);
    assert_eq!(exit_code(&out), 4, "stderr: {}", stderr(&out));
    let out = d.cli(&["wait", &killed.id]);
    assert_eq!(exit_code(&out), 137, "stderr: {}", stderr(&out));
}

#[test]
fn events_prints_a_jobs_transitions() {
    let d = TestDaemon::builder().workers(1).start();
    let gate = d.gate();
    let blocker = d.submit_shell(&gate.shell());
    d.wait_running(&blocker.id);
    let job = d.submit_shell("exit 6");
    let mut events = LineReader::spawn(
        d.cli_command(&["events", "--job", &job.id]),
        "jobq events --job",
    );
    // `<at> <id> <queue> <state> attempt N [exit X]`
    let mut states = Vec::new();
    let mut last = String::new();
    while !["succeeded", "failed", "cancelled"].contains(&states.last().map_or("", String::as_str))
    {
        let line = events.next_line();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(
            fields.len() >= 6 && fields[1] == job.id && fields[2] == "default",
            "not an event line of job {}: {line:?}",
            job.id
        );
        assert!(
            fields[0].parse::<jiff::Timestamp>().is_ok(),
            "not a time first: {line:?}"
        );
        states.push(fields[3].to_owned());
        if states.len() == 1 {
            gate.open();
        }
        last = line;
    }
    assert_eq!(states, ["queued", "running", "failed"], "events printed");
    assert!(
        last.ends_with("exit 6"),
        "the end line gives the exit code: {last:?}"
    );
    // With --job, the command ends with the job.
    assert_eq!(events.next_line_or_end(), None, "more after the end");
    let (status, rest) = events.finish();
    assert_eq!(status.code(), Some(0), "{rest}");

    // --json: the daemon's events, one JSON object per line.
    let mut json = LineReader::spawn(
        d.cli_command(&["events", "--job", &job.id, "--json"]),
        "jobq events --job --json",
    );
    let line = json.next_line();
    let event: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    assert_eq!(event["id"], job.id.as_str(), "{event}");
    assert_eq!(event["state"], "failed", "{event}");
    assert_eq!(event["exit"], 6, "{event}");
    assert_eq!(json.next_line_or_end(), None, "an ended job has one event");
    assert_eq!(json.finish().0.code(), Some(0));
}

#[test]
fn submit_stdin_sends_a_large_binary_file_exactly() {
    let d = TestDaemon::start();
    let file = d.path("stdin.bin");
    let mut rng = fastrand::Rng::with_seed(7);
    let mut bytes = vec![0u8; 3 << 20];
    rng.fill(&mut bytes);
    bytes[0] = 0xff; // not UTF-8, whatever the generator gave
    std::fs::write(&file, &bytes).expect("write stdin file");
    let want = Command::new("sha256sum")
        .arg(&file)
        .output()
        .expect("sha256sum");
    let want = String::from_utf8_lossy(&want.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned();

    let out = d.cli(&[
        "submit",
        "--stdin",
        file.to_str().expect("UTF-8 path"),
        "--json",
        "--wait",
        "--",
        "sha256sum",
    ]);
    assert_eq!(exit_code(&out), 0, "stderr: {}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let id = job["id"].as_str().expect("job id");
    assert_eq!(job["stdin_bytes"], 3 << 20, "{job}");
    assert_eq!(job["state"], "succeeded", "{job}");
    let hash = String::from_utf8_lossy(&d.output(id, "stdout")).into_owned();
    assert_eq!(
        hash.split_whitespace().next(),
        Some(want.as_str()),
        "the job read exactly the file's bytes"
    );
}
