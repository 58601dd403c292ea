//! What every black-box test needs: a real `jobq serve` on its own temp dir
//! and a free port ([`TestDaemon`]), HTTP and CLI helpers that talk to it,
//! and the one way to wait for something ([`wait_for`]).
//!
//! Tests talk to jobq only through the binary and HTTP, as users do; the
//! only crate types they borrow are the wire types of `jobq::api`, so a test
//! reads like a request and the answer docs/api.md promises for it.

#![allow(dead_code)] // Not every test module uses every helper.

mod daemon;
mod http;
mod postgres;
mod process;
mod sse;
mod store;

pub use daemon::*;
pub use http::*;
pub use postgres::*;
pub use process::*;
pub use sse::*;
pub use store::*;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobq::api::JobView;
use serde_json::{json, Value};
use tempfile::TempDir;

/// How long any wait in the suite may take before the test fails. Every
/// wait is for something that takes milliseconds on a quiet machine; 30s
/// leaves room for a loaded CI runner with the whole suite in parallel,
/// while a hang still fails well inside the suite's budget.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest one HTTP request may take (connect plus answer). Requests are
/// local and answered at once; a daemon that hangs on one fails the test
/// instead of hanging it.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Longest one streamed request may take, body included (see
/// [`TestDaemon::open_stream`]): every stream a test reads to its end is of
/// a job that ends within seconds, and a test stops reading an endless one
/// (`/v1/events`) once it has what it needs.
pub const STREAM_TIMEOUT: Duration = WAIT_TIMEOUT;

/// Lines of the daemon's stderr shown when a test fails: enough to see the
/// last requests and the error, not a whole 200-job log.
const STDERR_TAIL_LINES: usize = 80;

/// The environment variable that marks every process a test daemon starts.
/// Every test daemon passes it on to its jobs (its config's `[jobs]
/// inherit_env` gets it added), so `Drop` can find and kill jobs orphaned
/// by a SIGKILLed daemon.
pub const TAG_VAR: &str = "JOBQ_TEST_DAEMON_TAG";

/// How long a test watches for something that must *not* happen (a paused
/// queue starting a job, a cancelled job being retried). A negative cannot
/// be waited for, only watched for a while: 1s is many dispatcher turns (a
/// start takes milliseconds) yet keeps the suite fast. Used only where a
/// negative is the point of the test.
pub const HOLD_WINDOW: Duration = Duration::from_secs(1);

/// Checks `f` again and again for `window`, failing the test (naming `what`)
/// the first time it returns false: the bounded observation of a negative.
#[track_caller]
pub fn assert_holds(what: &str, window: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        assert!(
            f(),
            "{what}: stopped holding after {:?} of the {window:?} watched",
            start.elapsed()
        );
        if start.elapsed() >= window {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` until it returns true; panics after [`WAIT_TIMEOUT`] naming
/// `what`. Polls often at first (most waits end within milliseconds), then
/// back off to 50ms so a slow wait does not steal CPU from the daemon.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {WAIT_TIMEOUT:?} (WAIT_TIMEOUT) waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
