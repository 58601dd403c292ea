//! The data directory: a store from an earlier version still opens; a
//! directory that is not ours, is newer, is damaged or is in use is refused
//! with exit 2, a message naming the path, and nothing changed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{copy_dir, exit_code, jobq_command, run_bounded, TestDaemon};

/// The store written by format 1 (tests/fixtures/store-v1): a succeeded
/// job with output, a job scheduled for 2099 in queue `q1`, and `q1`
/// paused with concurrency 3.
fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v1")
}
const FIXTURE_DONE: &str = "01a2128e-a220-712c-85f9-f7c470cf7088";
const FIXTURE_SCHEDULED: &str = "01a2128e-a286-7410-88d7-8bb230964621";

/// Every file under `dir` with its bytes, to show nothing was touched.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Runs `jobq serve` on `data_dir`; expects it to refuse at once.
fn serve_refused(data_dir: &Path) -> (i32, String) {
    let mut cmd = jobq_command(&["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
    cmd.arg(data_dir);
    let out = run_bounded(cmd, "jobq serve on a refused data dir");
    (
        exit_code(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[track_caller]
fn assert_refused_untouched(data_dir: &Path, wanted: &str) {
    let before = snapshot(data_dir);
    let (code, stderr) = serve_refused(data_dir);
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stderr.starts_with("jobq: "), "one jobq: line: {stderr}");
    assert!(
        stderr.contains(wanted),
        "stderr should say {wanted:?}: {stderr}"
    );
    assert!(
        stderr.contains(&data_dir.join("store").display().to_string()),
        "stderr should name the store: {stderr}"
    );
    assert_eq!(snapshot(data_dir), before, "a refused data dir was changed");
}

/// A daemon on a copy of the format-1 fixture, with `config` (TOML after
/// the top-level keys). Retention is set far out: the fixture's finished job
/// ended when the fixture was made, and the default 7 days would prune it.
fn on_fixture(config: &str) -> crate::support::Builder {
    TestDaemon::builder()
        .store_from(&fixture())
        .config_toml(&format!("retention = \"1000y\"\n{config}"))
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused() {
    let d = TestDaemon::start();
    let job = d.submit_shell("echo first");
    d.wait_terminal(&job.id);
    let addr = std::fs::read_to_string(d.data_dir().join("jobq.addr")).unwrap();

    let (code, stderr) = serve_refused(d.data_dir());
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stderr.contains("in use by another jobq daemon"), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("jobq:")).count(),
        1,
        "{stderr}"
    );
    // The first one is untouched and still serves.
    assert_eq!(
        std::fs::read_to_string(d.data_dir().join("jobq.addr")).unwrap(),
        addr
    );
    assert_eq!(d.job(&job.id).state.as_str(), "succeeded");
}

#[test]
fn a_directory_that_is_not_a_store_is_refused() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("store")).unwrap();
    std::fs::write(root.path().join("store/notes.txt"), "mine").unwrap();
    assert_refused_untouched(root.path(), "not a jobq store");
    assert!(!root.path().join("work").exists(), "work/ was created");
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), &root.path().join("store"));
    std::fs::write(root.path().join("store/JOBQ_FORMAT"), "jobq-store 99\n").unwrap();
    assert_refused_untouched(root.path(), "run a newer jobq");
}

#[test]
fn a_damaged_store_is_refused_not_taken_for_empty() {
    // sled drops a log it cannot read and opens empty; the marker file
    // tells such a store from a new one.
    let root = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), &root.path().join("store"));
    let db = root.path().join("store/db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(&db, garbage).unwrap();
    let (code, stderr) = serve_refused(root.path());
    assert_eq!(code, 2, "stderr: {stderr}");
    assert!(stderr.contains("damaged"), "{stderr}");
    assert!(
        stderr.contains("move it aside"),
        "says what to do: {stderr}"
    );
}

const FIXTURE_V4_JOB: &str = "01a23808-e363-7271-bc59-f7cf66e8b2f5";

/// The sled store's own formats: fixtures of older data dirs.
mod sled_only {
    use super::*;

    #[test]
    fn a_format_1_store_still_opens() {
        let d = on_fixture("").start();
        let done = d.job(FIXTURE_DONE);
        assert_eq!(done.state.as_str(), "succeeded", "{done:?}");
        assert_eq!(done.name.as_deref(), Some("fixture"));
        assert_eq!(d.output(FIXTURE_DONE, "stdout"), b"fixture\n");
        assert_eq!(d.output(FIXTURE_DONE, "stderr"), b"err\n");
        let later = d.job(FIXTURE_SCHEDULED);
        assert_eq!(later.state.as_str(), "scheduled", "{later:?}");
        let q1 = d.get_json("/v1/queues").1["queues"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["name"] == "q1")
            .cloned()
            .expect("queue q1");
        assert_eq!(q1["paused"], true, "{q1}");
        assert_eq!(q1["concurrency"], 3, "{q1}");
        // Its idempotency key is still held.
        let (status, body) = d.post_json(
            "/v1/jobs",
            &serde_json::json!({"shell": "echo again", "idempotency_key": "fx"}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], FIXTURE_DONE);
        // The upgrade numbered the old jobs; a new job is numbered after them.
        assert!(done.number > 0 && later.number > 0, "{done:?} {later:?}");
        assert_ne!(done.number, later.number);
        let (status, body) = d.get_json(&format!("/v1/jobs/{}", later.number));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["id"], FIXTURE_SCHEDULED);
        let new = d.submit(serde_json::json!({"command": ["true"]}));
        assert!(new.number > done.number.max(later.number), "{new:?}");
    }

    #[test]
    fn format_1_jobs_read_as_owned_by_anonymous_and_the_store_moves_to_the_current_format() {
        let token = "fixture-test-token-0123";
        let mut d = on_fixture(&format!(
            "[[auth.tokens]]\nname = \"ci\"\nrole = \"submit\"\ntoken = \"{token}\"\n"
        ))
        .token(token)
        .start();
        let marker = d.data_dir().join("store/JOBQ_FORMAT");
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "jobq-store 7\n");
        let done = d.job(FIXTURE_DONE);
        assert_eq!(done.owner, "anonymous", "{done:?}");
        assert_eq!(
            done.user, None,
            "a format-1 job that has not run since names no user"
        );
        // Owned by anonymous, so a submit token may not act on it.
        let (status, body) = d.post_empty(&format!("/v1/jobs/{FIXTURE_DONE}/retry"));
        crate::support::assert_error(status, &body, 403, "forbidden", None);
        // Still the current format, and the same, after a restart.
        d.restart();
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "jobq-store 7\n");
        assert_eq!(d.job(FIXTURE_DONE).owner, "anonymous");
    }

    #[test]
    fn a_format_1_job_runs_as_the_default_user_and_then_names_it() {
        let d = on_fixture("").start();
        let (status, body) = d.post_empty(&format!("/v1/jobs/{FIXTURE_DONE}/retry"));
        assert_eq!(status, 200, "{body}");
        let job = d.wait_job(FIXTURE_DONE, "the retried format-1 job to end", |j| {
            j.attempt == 2 && j.is_terminal()
        });
        let me = jobq::auth::Account::current().unwrap();
        assert_eq!(job.user.as_deref(), Some(me.name.as_str()));
        assert_eq!(job.uid, Some(me.uid));
        assert_eq!(job.owner, "anonymous");
    }

    /// The store written by format 4 (tests/fixtures/store-v4, made by
    /// 45d299c): queue `held` paused, and in it a queued `cat` fed by a
    /// 29-byte upload it claimed. Format 4 kept a claimed upload's bytes in the
    /// job's own stdin record, which format 5 still reads (only unclaimed
    /// uploads move to files).
    fn fixture_v4() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/store-v4")
    }

    #[test]
    fn a_format_4_claimed_upload_still_feeds_its_job() {
        let mut d = TestDaemon::builder().store_from(&fixture_v4()).start();
        let marker = d.data_dir().join("store/JOBQ_FORMAT");
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "jobq-store 7\n");
        let job = d.job(FIXTURE_V4_JOB);
        assert_eq!(job.state.as_str(), "queued", "{job:?}");
        assert_eq!(job.stdin_bytes, Some(29));
        // The same after a restart.
        d.restart();
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "jobq-store 7\n");
        d.patch_queue("held", serde_json::json!({ "paused": false }));
        let job = d.wait_terminal(FIXTURE_V4_JOB);
        assert_eq!(job.state.as_str(), "succeeded", "{job:?}");
        assert_eq!(
            d.output(FIXTURE_V4_JOB, "stdout"),
            b"stdin from a format-4 upload\n"
        );
    }
}
