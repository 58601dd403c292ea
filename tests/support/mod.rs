//! What every black-box test needs: a real `jobq serve` on its own temp dir
//! and a free port ([`TestDaemon`]), HTTP and CLI helpers that talk to it,
//! and the one way to wait for something ([`wait_for`]).
//!
//! Tests talk to jobq only through the binary and HTTP, as users do; the
//! only crate types they borrow are the wire types of `jobq::api`, so a test
//! reads like a request and the answer API.md promises for it.

#![allow(dead_code)] // Not every test module uses every helper.

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

/// The path of the `jobq` binary cargo built for this test run.
pub fn jobq_bin() -> &'static str {
    env!("CARGO_BIN_EXE_jobq")
}

/// A `jobq` command with no inherited server or token settings, so the
/// developer's own environment cannot steer a test.
pub fn jobq_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(jobq_bin());
    cmd.args(args)
        .env_remove("JOBQ_SERVER")
        .env_remove("JOBQ_TOKEN")
        .env_remove("JOBQ_TOKEN_FILE")
        .env_remove("RUST_LOG");
    cmd
}

/// `program args…` run as `user` through `runuser` (root only, see
/// [`require_root`]), with the jobq client variables cleared.
pub fn as_user(user: &str, program: &str, args: &[&str]) -> Command {
    require_root("run a command as another user");
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", user, "--", program])
        .args(args)
        .env_remove("JOBQ_SERVER")
        .env_remove("JOBQ_TOKEN")
        .env_remove("JOBQ_TOKEN_FILE")
        .env_remove("RUST_LOG");
    cmd
}

/// Fails the test, saying why, unless it runs as root: what it checks
/// (jobs started as other users, peers of other users on the socket)
/// cannot be done otherwise. CI runs the suite as root; such a test must
/// not pass by skipping its point.
#[track_caller]
pub fn require_root(to: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root to {to}; run the suite as root (CI does), it cannot pass without"
    );
}

/// Runs `cmd` to completion with output captured, failing the test if it
/// runs longer than [`WAIT_TIMEOUT`] (and killing it then).
pub fn run_bounded(mut cmd: Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut guard = KillOnDrop(child);
    let mut stdout = guard.0.stdout.take().expect("stdout is piped");
    let mut stderr = guard.0.stderr.take().expect("stderr is piped");
    // Both pipes drain at once, so a chatty child cannot block on a full pipe.
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let mut status = None;
    wait_for(&format!("{what} to exit"), || {
        status = guard.0.try_wait().expect("try_wait");
        status.is_some()
    });
    Output {
        status: status.expect("exited"),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// A command that runs until it is stopped (`jobq events`), its stdout
/// read line by line as it comes (its stderr kept); killed when dropped.
pub struct LineReader {
    /// The process.
    child: KillOnDrop,
    /// Its stdout lines, from a reader thread.
    lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr so far, from another.
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// The command, for messages.
    what: String,
}

impl LineReader {
    /// Starts `cmd` with stdout and stderr piped.
    pub fn spawn(mut cmd: Command, what: &str) -> LineReader {
        use std::io::BufRead;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut err_pipe = child.stderr.take().expect("stderr is piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        LineReader {
            child: KillOnDrop(child),
            lines,
            stderr,
            what: what.to_owned(),
        }
    }

    /// The next line, or `None` once stdout ended; fails the test if
    /// neither comes within [`WAIT_TIMEOUT`].
    #[track_caller]
    pub fn next_line_or_end(&mut self) -> Option<String> {
        match self.lines.recv_timeout(WAIT_TIMEOUT) {
            Ok(line) => Some(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "{}: no line within {WAIT_TIMEOUT:?} (WAIT_TIMEOUT); stderr: {}",
                self.what,
                self.stderr_text()
            ),
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits for it to exit (within [`WAIT_TIMEOUT`]); its status and all
    /// it wrote to stderr.
    #[track_caller]
    pub fn finish(mut self) -> (std::process::ExitStatus, String) {
        let mut status = None;
        wait_for(&format!("{} to exit", self.what), || {
            status = self.child.0.try_wait().expect("try_wait");
            status.is_some()
        });
        // The stderr reader sees the end of the pipe right after the exit.
        std::thread::sleep(Duration::from_millis(50));
        (status.expect("exited"), self.stderr_text())
    }

    /// The next line, failing the test if none comes within
    /// [`WAIT_TIMEOUT`] or the output ends.
    #[track_caller]
    pub fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT_TIMEOUT) {
            Ok(line) => line,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!(
                "{}: no line within {WAIT_TIMEOUT:?} (WAIT_TIMEOUT)",
                self.what
            ),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!(
                "{}: stdout ended (exit {:?})",
                self.what,
                self.child.0.try_wait()
            ),
        }
    }
}

/// Kills a child process when a test panics before it was waited for.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `toml` (a test's config, or none) with [`TAG_VAR`] added to `[jobs]
/// inherit_env, keeping the names the test gave (or the default ones).
/// A test that means to write broken TOML gets it unchanged.
fn with_tag_inherited(toml: Option<&str>) -> String {
    let text = toml.unwrap_or_default();
    let Ok(mut table) = text.parse::<toml::Table>() else {
        return text.to_owned();
    };
    let jobs = table
        .entry("jobs")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let Some(jobs) = jobs.as_table_mut() else {
        return text.to_owned();
    };
    let names = jobs.entry("inherit_env").or_insert_with(|| {
        toml::Value::Array(
            ["PATH", "LANG", "LC_ALL", "TZ"]
                .iter()
                .map(|n| toml::Value::String((*n).to_owned()))
                .collect(),
        )
    });
    if let Some(names) = names.as_array_mut() {
        names.push(toml::Value::String(TAG_VAR.to_owned()));
    }
    table.to_string()
}

/// A request's answer: the status and the raw body, whatever the status.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON: `null` for an empty body, and a string saying what
    /// came instead for a body that is not JSON, so an assertion on a field
    /// fails showing the body.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            Value::String(format!(
                "<not JSON ({e}): {}>",
                String::from_utf8_lossy(&self.body)
            ))
        })
    }
}

/// Parses a job from JSON, failing the test with the JSON when it is not one.
pub fn job_from(value: &Value) -> JobView {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a job as API.md describes it ({e}): {value}"))
}

/// A file a job waits for before it exits: the way tests hold a worker busy
/// without guessing how long to sleep. Dropping the gate opens it, so a
/// panicking test does not leave its blocker running.
pub struct Gate {
    /// The file whose existence opens the gate.
    path: PathBuf,
}

impl Gate {
    /// A closed gate at `path` (which must not exist yet).
    pub fn new(path: PathBuf) -> Gate {
        assert!(!path.exists(), "gate {} already open", path.display());
        Gate { path }
    }

    /// A shell line that waits until the gate opens, then exits 0; it gives
    /// up with exit 1 after about [`WAIT_TIMEOUT`], so a job whose daemon was
    /// killed (and whose test forgot the gate) cannot outlive the suite.
    pub fn shell(&self) -> String {
        let polls = WAIT_TIMEOUT.as_millis() / 20;
        format!(
            "i=0; while [ ! -e '{}' ]; do i=$((i+1)); if [ $i -gt {polls} ]; then exit 1; fi; sleep 0.02; done",
            self.path.display()
        )
    }

    /// The file whose existence opens the gate.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lets every job waiting on the gate go on.
    pub fn open(&self) {
        fs::write(&self.path, b"open").expect("open gate");
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = fs::write(&self.path, b"open");
    }
}

/// Builds a [`TestDaemon`] with settings.
#[derive(Default)]
pub struct Builder {
    /// `--workers N`, when given.
    workers: Option<usize>,
    /// The config file's text, written to the temp dir and passed as
    /// `--config`, when given.
    config_toml: Option<String>,
    /// A store to copy into the data dir before the start (a fixture).
    store_from: Option<PathBuf>,
    /// Where the temp dir (and so the data dir) is made, when not the
    /// system's temp dir (a small file system, say).
    root_in: Option<PathBuf>,
    /// The token the test's requests carry, when the config needs one.
    token: Option<String>,
    /// Whether the daemon also listens on a unix socket in its temp dir.
    unix_socket: bool,
    /// Extra variables in the daemon's environment.
    envs: Vec<(String, String)>,
    /// Run the daemon as this user (and its primary group) instead of the
    /// test's own.
    user: Option<String>,
    /// Run the daemon with these supplementary groups.
    groups: Option<Vec<u32>>,
}

impl Builder {
    /// Runs at most `n` jobs at once.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Starts the daemon with this config file.
    pub fn config_toml(mut self, toml: &str) -> Builder {
        self.config_toml = Some(toml.to_owned());
        self
    }

    /// Makes the daemon's temp dir (and data dir) inside `dir`.
    pub fn root_in(mut self, dir: &Path) -> Builder {
        self.root_in = Some(dir.to_owned());
        self
    }

    /// Sends `token` with every request of the test's own helpers (the
    /// config must declare it).
    pub fn token(mut self, token: &str) -> Builder {
        self.token = Some(token.to_owned());
        self
    }

    /// Also listens on a unix socket (`--listen unix:<temp dir>/run/jobq.sock`),
    /// see [`TestDaemon::socket`].
    pub fn unix_socket(mut self) -> Builder {
        self.unix_socket = true;
        self
    }

    /// Runs the daemon as `user` (root only): through `setpriv`, which execs
    /// it in place, so the daemon is still the test's child.
    pub fn daemon_user(mut self, user: &str) -> Builder {
        require_root("start the daemon as another user");
        self.user = Some(user.to_owned());
        self
    }

    /// Runs the daemon (as the test's user) with these supplementary groups
    /// (root only), so a test can see a job lose them.
    pub fn groups(mut self, groups: &[u32]) -> Builder {
        require_root("start the daemon with other groups");
        self.groups = Some(groups.to_vec());
        self
    }

    /// Starts the daemon with `key=value` in its environment.
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the daemon on a copy of the store in `dir`.
    pub fn store_from(mut self, dir: &Path) -> Builder {
        self.store_from = Some(dir.to_owned());
        self
    }

    /// Starts the daemon and waits until it is ready.
    pub fn start(self) -> TestDaemon {
        let mut root = tempfile::Builder::new();
        root.prefix("jobq-test-");
        let root = match &self.root_in {
            Some(dir) => root.tempdir_in(dir),
            None => root.tempdir(),
        }
        .expect("create temp dir");
        // Others may pass through (not list): a job or client run as
        // another user reaches its socket and files here. The daemon makes
        // its data dir inside 0700 itself.
        fs::set_permissions(
            root.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("open the temp dir to other users");
        let data_dir = root.path().join("data");
        fs::create_dir(&data_dir).expect("create data dir");
        // The socket's directory, where the daemon's user may make it and
        // anyone may reach it.
        let run_dir = root.path().join("run");
        fs::create_dir(&run_dir).expect("create the socket's dir");
        fs::set_permissions(
            &run_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("open the socket's dir");
        if let Some(user) = &self.user {
            let account = jobq::auth::Account::by_name(user).expect("the daemon's user");
            for dir in [&data_dir, &run_dir] {
                std::os::unix::fs::chown(dir, Some(account.uid), Some(account.gid))
                    .expect("give the daemon's user its dirs");
            }
        }
        if let Some(from) = &self.store_from {
            copy_dir(from, &data_dir.join("store"));
        }
        let path = root.path().join("jobq.toml");
        fs::write(&path, with_tag_inherited(self.config_toml.as_deref()))
            .expect("write config file");
        let config_file = Some(path);
        let stderr_path = root.path().join("daemon.stderr");
        let tag = format!("{}", root.path().display());
        let mut daemon = TestDaemon {
            data_dir,
            config_file,
            workers: self.workers,
            stderr_path,
            tag,
            child: None,
            addr: None,
            agent: agent(HTTP_TIMEOUT, true),
            token: self.token,
            socket: self.unix_socket.then(|| run_dir.join("jobq.sock")),
            envs: self.envs,
            user: self.user,
            groups: self.groups,
            started: 0,
            root,
        };
        daemon.spawn();
        daemon
    }
}

/// A running `jobq serve` on its own temp data dir and a free loopback port.
/// Dropping it SIGKILLs the daemon (and any job it left behind) and removes
/// the temp dir; when the test is failing, the daemon's stderr is printed.
pub struct TestDaemon {
    /// Holds the data dir, the config file and the daemon's stderr; removed
    /// on drop.
    root: TempDir,
    /// `--data-dir`: kept across [`TestDaemon::restart`].
    data_dir: PathBuf,
    /// `--config`, when the test gave one.
    config_file: Option<PathBuf>,
    /// `--workers`, when the test gave one.
    workers: Option<usize>,
    /// Every daemon process of this test appends its stderr here.
    stderr_path: PathBuf,
    /// The value of [`TAG_VAR`] for this daemon's processes.
    tag: String,
    /// The daemon process, `None` after [`TestDaemon::kill9`].
    child: Option<Child>,
    /// Where the current daemon listens.
    addr: Option<SocketAddr>,
    /// One HTTP client, reusing connections.
    agent: ureq::Agent,
    /// Sent as `Authorization: Bearer` with every request, when set.
    token: Option<String>,
    /// The unix socket the daemon also listens on, when asked for.
    socket: Option<PathBuf>,
    /// Extra variables in the daemon's environment.
    envs: Vec<(String, String)>,
    /// The user the daemon runs as, when not the test's own.
    user: Option<String>,
    /// The daemon's supplementary groups, when not the test's own.
    groups: Option<Vec<u32>>,
    /// How many daemon processes were started (for the stderr log).
    started: u32,
}

/// Unique-enough counter for files a test asks for under the temp dir.
static NEXT_FILE: AtomicU64 = AtomicU64::new(0);

impl TestDaemon {
    /// A daemon with default settings.
    pub fn start() -> TestDaemon {
        Builder::default().start()
    }

    /// A daemon with settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "a daemon is already running");
        let addr_file = self.data_dir.join("jobq.addr");
        // A stale file from a killed daemon would name a port another test's
        // daemon may have taken since.
        let _ = fs::remove_file(&addr_file);
        self.started += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("open daemon stderr file");
        use std::io::Write;
        let _ = writeln!(log, "=== daemon start #{} ===", self.started);
        let mut cmd = if self.user.is_some() || self.groups.is_some() {
            // setpriv execs the daemon in place: it stays the test's child.
            let mut cmd = Command::new("setpriv");
            if let Some(user) = &self.user {
                let account = jobq::auth::Account::by_name(user).expect("the daemon's user");
                cmd.arg("--reuid")
                    .arg(account.uid.to_string())
                    .arg("--regid")
                    .arg(account.gid.to_string());
            }
            match &self.groups {
                Some(groups) => {
                    let list: Vec<String> = groups.iter().map(u32::to_string).collect();
                    cmd.arg("--groups").arg(list.join(","))
                }
                None => cmd.arg("--clear-groups"),
            };
            cmd.arg("--")
                .arg(jobq_bin())
                .args(["serve", "--listen", "127.0.0.1:0"])
                .env_remove("JOBQ_SERVER")
                .env_remove("JOBQ_TOKEN")
                .env_remove("RUST_LOG");
            cmd
        } else {
            jobq_command(&["serve", "--listen", "127.0.0.1:0"])
        };
        if let Some(socket) = &self.socket {
            cmd.arg("--listen")
                .arg(format!("unix:{}", socket.display()));
        }
        cmd.arg("--data-dir").arg(&self.data_dir);
        cmd.envs(self.envs.iter().map(|(k, v)| (k, v)));
        if let Some(n) = self.workers {
            cmd.arg("--workers").arg(n.to_string());
        }
        if let Some(path) = &self.config_file {
            cmd.arg("--config").arg(path);
        }
        cmd.env(TAG_VAR, &self.tag)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log")))
            .stderr(Stdio::from(log));
        let child = cmd.spawn().expect("spawn jobq serve");
        self.child = Some(child);
        self.addr = None;

        let mut exited = None;
        wait_for(
            "the daemon to write jobq.addr and answer GET /readyz with 200",
            || {
                if let Some(status) = self
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten())
                {
                    exited = Some(status);
                    return true;
                }
                let Ok(text) = fs::read_to_string(&addr_file) else {
                    return false;
                };
                // The first TCP address: unix sockets come as `unix:/…`.
                let Some(addr) = text.lines().find_map(|l| l.parse::<SocketAddr>().ok()) else {
                    return false;
                };
                self.addr = Some(addr);
                self.try_call(&self.agent, "GET", "/readyz", &[], None)
                    .is_ok_and(|reply| reply.status == 200)
            },
        );
        if let Some(status) = exited {
            self.child = None;
            // Drop prints the daemon's stderr.
            panic!("jobq serve exited ({status}) before it was ready");
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:43117`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr.expect("daemon is running"))
    }

    /// The address the daemon wrote to `jobq.addr`.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("daemon is running")
    }

    /// `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A fresh path under the test's temp dir (outside the data dir) for
    /// files that jobs write and tests read.
    pub fn path(&self, name: &str) -> PathBuf {
        let n = NEXT_FILE.fetch_add(1, Ordering::Relaxed);
        self.root.path().join(format!("{name}.{n}"))
    }

    /// A new closed [`Gate`] under the temp dir.
    pub fn gate(&self) -> Gate {
        Gate::new(self.path("gate"))
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon is running").id()
    }

    /// SIGKILLs the daemon and reaps it; jobs it ran keep running, as after
    /// a real crash.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.addr = None;
    }

    /// Sends the daemon SIGTERM without waiting for it to exit.
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().expect("daemon is running");
        let pid = i32::try_from(child.id()).expect("pid fits");
        // SAFETY: kill(2) has no memory effects; the pid is our own child,
        // not yet reaped, so it cannot have been reused.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }

    /// Waits until the daemon has exited by itself and returns how.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon is running");
        self.addr = None;
        let mut status = None;
        wait_for("the daemon to exit", || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        status.expect("exited")
    }

    /// Asks the daemon to stop (SIGTERM), waits until it has exited and
    /// returns how it exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// Starts a new daemon on the same data dir and config (killing the
    /// current one first, if it runs) and waits until it is ready.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// The unix socket the daemon listens on ([`Builder::unix_socket`]).
    pub fn socket(&self) -> &Path {
        self.socket
            .as_deref()
            .expect("the daemon was built with unix_socket()")
    }

    /// Everything every daemon process of this test wrote to stderr.
    pub fn stderr_all(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// `jobq <args>` against this daemon's unix socket (which keeps its
    /// path across [`TestDaemon::restart`], unlike the TCP port), as the
    /// test itself, not waited for.
    pub fn cli_unix_command(&self, args: &[&str]) -> Command {
        let server = format!("unix:{}", self.socket().display());
        let mut cmd = jobq_command(&["--server", &server]);
        cmd.args(args);
        cmd
    }

    /// Runs `jobq <args>` against this daemon's unix socket, as `user`
    /// (through `runuser`) or, with `None`, as the test itself.
    pub fn cli_unix(&self, user: Option<&str>, args: &[&str]) -> Output {
        let server = format!("unix:{}", self.socket().display());
        let mut all = vec!["--server", server.as_str()];
        all.extend_from_slice(args);
        let cmd = match user {
            Some(user) => as_user(user, jobq_bin(), &all),
            None => jobq_command(&all),
        };
        run_bounded(cmd, &format!("jobq {} (as {user:?})", args.join(" ")))
    }

    /// The last lines the daemon wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        let text = fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(STDERR_TAIL_LINES);
        lines[from..].join("\n")
    }

    // ---- HTTP ----

    fn call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        self.try_call(agent, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: no HTTP answer: {e}"))
    }

    /// Sends a request (with this daemon's token, unless `headers` name
    /// `Authorization`); `Err` only when no HTTP answer came at all.
    fn try_call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, String> {
        let req = self.request(method, path, headers);
        let what = format!("{method} {path}");
        let result = match body {
            Some((content_type, bytes)) => {
                let req = req
                    .header("Content-Type", content_type)
                    .body(bytes.to_vec())
                    .map_err(|e| e.to_string())?;
                agent.run(req)
            }
            None => agent.run(req.body(()).map_err(|e| e.to_string())?),
        };
        reply_of(result, &what)
    }

    /// A request to this daemon with its token and `headers`, body still to
    /// be given.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> ureq::http::request::Builder {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.at(path));
        let own_auth = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if let (Some(token), false) = (&self.token, own_auth) {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            // An empty `Authorization` sends none: a request without
            // credentials from a test whose daemon has a token.
            if !(value.is_empty() && name.eq_ignore_ascii_case("authorization")) {
                req = req.header(*name, *value);
            }
        }
        req
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Any request, with extra headers (an `Authorization` header replaces
    /// the daemon's token; an empty one sends none), any status, read in
    /// full.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        self.call(&self.agent, method, path, headers, body)
    }

    /// `GET path`, any status.
    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], None)
    }

    /// `GET path` → (status, JSON body).
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let reply = self.get(path);
        (reply.status, reply.json())
    }

    /// `GET path` → (status, body bytes).
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let reply = self.get(path);
        (reply.status, reply.body)
    }

    /// `POST path` with a JSON body, any status.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serialize");
        self.post_raw(path, "application/json", &bytes)
    }

    /// `POST path` with a JSON body → (status, JSON body).
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let reply = self.post(path, body);
        (reply.status, reply.json())
    }

    /// `POST path` without a body, as the actions (`cancel`, `retry`) take.
    pub fn post_empty(&self, path: &str) -> (u16, Value) {
        let reply = self.send("POST", path, &[], None);
        (reply.status, reply.json())
    }

    /// `POST path` with any bytes on a connection of its own, closed after
    /// the answer: for requests the daemon may answer before reading the
    /// body (413), after which the connection's state is not this test's
    /// concern (see `http::keep_alive_*` for that).
    pub fn post_raw_alone(&self, path: &str, content_type: &str, bytes: &[u8]) -> Reply {
        let agent = agent(HTTP_TIMEOUT, false);
        self.call(&agent, "POST", path, &[], Some((content_type, bytes)))
    }

    /// `POST path` with any bytes, for bodies that are not valid requests.
    pub fn post_raw(&self, path: &str, content_type: &str, bytes: &[u8]) -> Reply {
        self.send("POST", path, &[], Some((content_type, bytes)))
    }

    /// `POST /v1/uploads` with the bytes of `file` as the body, streamed
    /// from the file (with its `Content-Length`), on a connection of its own.
    pub fn upload_file(&self, file: &Path) -> Reply {
        let len = fs::metadata(file).expect("stat upload file").len();
        let body = File::open(file).expect("open upload file");
        let agent = agent(HTTP_TIMEOUT, false);
        let req = self
            .request("POST", "/v1/uploads", &[])
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len.to_string())
            .body(ureq::SendBody::from_owned_reader(body))
            .expect("a request");
        let what = format!("POST /v1/uploads ({len} bytes)");
        reply_of(agent.run(req), &what).unwrap_or_else(|e| panic!("{what}: no HTTP answer: {e}"))
    }

    /// `PATCH path` with a JSON body → (status, JSON body).
    pub fn patch_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("serialize");
        let reply = self.send("PATCH", path, &[], Some(("application/json", &bytes)));
        (reply.status, reply.json())
    }

    /// `DELETE path` → (status, JSON body, `null` when empty).
    pub fn delete(&self, path: &str) -> (u16, Value) {
        let reply = self.send("DELETE", path, &[], None);
        (reply.status, reply.json())
    }

    /// The response headers of `GET path` with extra request `headers`,
    /// names lowercase.
    pub fn head(&self, path: &str, headers: &[(&str, &str)]) -> BTreeMap<String, String> {
        let req = self
            .request("GET", path, headers)
            .body(())
            .expect("a request");
        let resp = self
            .agent
            .run(req)
            .unwrap_or_else(|e| panic!("GET {path}: no HTTP answer: {e}"));
        resp.headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// `GET path` with extra request headers, any status, read in full.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, None)
    }

    // ---- streams ----

    /// Opens `GET path` with extra request headers and hands back the body
    /// as it arrives, unread: for followed output, SSE and `/v1/events`,
    /// which stay open while the job runs (or for ever). The whole request,
    /// body included, is bounded by [`STREAM_TIMEOUT`], so a stream that
    /// never ends fails the test instead of hanging it.
    pub fn open_stream(&self, path: &str, headers: &[(&str, &str)]) -> Streamed {
        let agent = agent(STREAM_TIMEOUT, false);
        let what = format!("GET {path}");
        let req = self
            .request("GET", path, headers)
            .body(())
            .expect("a request");
        let resp = agent
            .run(req)
            .unwrap_or_else(|e| panic!("{what}: no HTTP answer: {e}"));
        Streamed {
            status: resp.status().as_u16(),
            content_type: header(&resp, "Content-Type"),
            transfer_encoding: header(&resp, "Transfer-Encoding"),
            body: Box::new(resp.into_body().into_reader()),
            what,
        }
    }

    /// `GET /v1/jobs/{id}/output?follow=true&{query}` read to its end,
    /// failing unless it is 200: the followed output, raw.
    pub fn follow_raw(&self, id: &str, query: &str) -> Vec<u8> {
        let s = self.open_stream(&format!("/v1/jobs/{id}/output?follow=true&{query}"), &[]);
        s.expect_ok("application/octet-stream").read_all()
    }

    /// `GET /v1/jobs/{id}/output?{query}` as SSE, failing unless it is 200.
    pub fn follow_sse(&self, id: &str, query: &str, last_event_id: Option<&str>) -> SseReader {
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(last) = last_event_id {
            headers.push(("Last-Event-ID", last));
        }
        self.open_stream(&format!("/v1/jobs/{id}/output?{query}"), &headers)
            .expect_ok("text/event-stream")
            .sse()
    }

    /// `GET /v1/events?{query}`, failing unless it is 200.
    pub fn events(&self, query: &str) -> SseReader {
        self.open_stream(&format!("/v1/events?{query}"), &[])
            .expect_ok("text/event-stream")
            .sse()
    }

    // ---- jobs ----

    /// Submits `spec` and returns the job, failing unless the answer is 201.
    pub fn submit(&self, spec: Value) -> JobView {
        let (status, body) = self.post_json("/v1/jobs", &spec);
        assert_eq!(status, 201, "POST /v1/jobs {spec} answered {body}");
        job_from(&body)
    }

    /// Submits `sh -c line`.
    pub fn submit_shell(&self, line: &str) -> JobView {
        self.submit(json!({ "shell": line }))
    }

    /// `GET /v1/jobs/{id}`, failing unless it is 200.
    pub fn job(&self, id: &str) -> JobView {
        let (status, body) = self.get_json(&format!("/v1/jobs/{id}"));
        assert_eq!(status, 200, "GET /v1/jobs/{id} answered {body}");
        job_from(&body)
    }

    /// Waits until the job is terminal and returns it.
    pub fn wait_terminal(&self, id: &str) -> JobView {
        let mut job = None;
        wait_for(&format!("job {id} to end"), || {
            let j = self.job(id);
            let done = j.is_terminal();
            job = Some(j);
            done
        });
        job.expect("polled")
    }

    /// Waits until the job is running (it then has a pid) and returns it.
    pub fn wait_running(&self, id: &str) -> JobView {
        let mut job = None;
        wait_for(&format!("job {id} to run"), || {
            let j = self.job(id);
            assert!(
                !j.is_terminal(),
                "job {id} ended while a test waited for it to run: {j:?}\nstderr:\n{}",
                String::from_utf8_lossy(&self.output(id, "stderr"))
            );
            let running = j.state.as_str() == "running";
            job = Some(j);
            running
        });
        job.expect("polled")
    }

    /// Polls the job until `done` holds for it (failing after
    /// [`WAIT_TIMEOUT`], naming `what`) and returns it as it then was.
    pub fn wait_job(
        &self,
        id: &str,
        what: &str,
        mut done: impl FnMut(&JobView) -> bool,
    ) -> JobView {
        let mut job = None;
        wait_for(&format!("job {id}: {what}"), || {
            let j = self.job(id);
            let ok = done(&j);
            job = Some(j);
            ok
        });
        job.expect("polled")
    }

    /// The job's state name now.
    pub fn state(&self, id: &str) -> String {
        self.job(id).state.as_str().to_owned()
    }

    /// The job's output bytes of `stream` (`stdout`, `stderr`, `all`).
    pub fn output(&self, id: &str, stream: &str) -> Vec<u8> {
        let (status, body) = self.get_bytes(&format!("/v1/jobs/{id}/output?stream={stream}"));
        assert_eq!(
            status,
            200,
            "GET /v1/jobs/{id}/output answered {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// The ids of every job the daemon lists (all pages).
    pub fn all_job_ids(&self) -> BTreeSet<String> {
        self.list_all("").into_iter().map(|j| j.id).collect()
    }

    /// Every job of a listing with `query` (e.g. `state=failed&`), walking
    /// all pages, in the order the daemon gave them.
    pub fn list_all(&self, query: &str) -> Vec<JobView> {
        let mut jobs = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => format!("/v1/jobs?{query}limit=1000"),
                Some(c) => format!("/v1/jobs?{query}limit=1000&cursor={}", encode(c)),
            };
            let (status, body) = self.get_json(&path);
            assert_eq!(status, 200, "GET {path} answered {body}");
            let page: jobq::api::JobList = serde_json::from_value(body.clone())
                .unwrap_or_else(|e| panic!("GET {path}: not a job list ({e}): {body}"));
            jobs.extend(page.jobs);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return jobs,
            }
        }
    }

    /// How many jobs the daemon knows.
    pub fn job_count(&self) -> usize {
        self.all_job_ids().len()
    }

    // ---- queues ----

    /// Every queue of `GET /v1/queues`, as JSON objects.
    pub fn queues(&self) -> Vec<Value> {
        let (status, body) = self.get_json("/v1/queues");
        assert_eq!(status, 200, "GET /v1/queues answered {body}");
        body["queues"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /v1/queues: no `queues` array in {body}"))
            .clone()
    }

    /// The queue named `name` in `GET /v1/queues`, if listed.
    pub fn find_queue(&self, name: &str) -> Option<Value> {
        self.queues().into_iter().find(|q| q["name"] == name)
    }

    /// The queue named `name`, failing the test when it is not listed.
    pub fn queue(&self, name: &str) -> Value {
        self.find_queue(name).unwrap_or_else(|| {
            panic!(
                "queue {name:?} is not in GET /v1/queues: {:?}",
                self.queues()
            )
        })
    }

    /// `PATCH /v1/queues/{name}` with `body`, failing unless it is 200;
    /// returns the queue it answered.
    pub fn patch_queue(&self, name: &str, body: Value) -> Value {
        let (status, reply) = self.patch_json(&format!("/v1/queues/{name}"), &body);
        assert_eq!(
            status, 200,
            "PATCH /v1/queues/{name} {body} answered {reply}"
        );
        reply
    }

    // ---- CLI ----

    /// Runs `jobq <args>` against this daemon: `--server <url>` goes right
    /// after the subcommand, where it is accepted whether the flag is global
    /// or the subcommand's own.
    pub fn cli(&self, args: &[&str]) -> Output {
        let url = self.url();
        let mut all: Vec<&str> = Vec::with_capacity(args.len() + 2);
        let mut rest = args.iter();
        if let Some(sub) = rest.next() {
            all.push(sub);
        }
        all.push("--server");
        all.push(&url);
        all.extend(rest);
        run_bounded(jobq_command(&all), &format!("jobq {}", args.join(" ")))
    }

    /// `jobq <args>` against this daemon (as [`TestDaemon::cli`]), not
    /// waited for: for commands that run until stopped.
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let url = self.url();
        let mut cmd = jobq_command(&args[..1.min(args.len())]);
        cmd.arg("--server").arg(&url).args(args.iter().skip(1));
        cmd
    }

    /// The live (not zombie) processes of job `job_id` in process group
    /// `pgid` (they carry its `JOBQ_JOB_ID`).
    pub fn job_processes(pgid: u32, job_id: &str) -> Vec<u32> {
        // A pid (and so a process-group id) may be reused by another test's
        // job once the group is empty: only processes of *this* job count.
        let marker = format!("JOBQ_JOB_ID={job_id}");
        Self::group_members(pgid)
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .map(|env| env.split(|b| *b == 0).any(|v| v == marker.as_bytes()))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// Live (not zombie) processes in process group `pgid`, whoever they
    /// belong to; prefer [`TestDaemon::job_processes`].
    pub fn group_members(pgid: u32) -> Vec<u32> {
        live_pids()
            .filter(|pid| {
                let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                    return false;
                };
                // Fields after the command name, which is in parentheses and
                // may itself contain spaces: state, ppid, pgrp, …
                let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                    return false;
                };
                let fields: Vec<&str> = after.split_whitespace().collect();
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .collect()
    }

    /// SIGKILLs every process still carrying this daemon's tag: jobs a
    /// killed daemon left behind.
    fn kill_tagged_processes(&self) {
        let needle = format!("{TAG_VAR}={}", self.tag);
        for pid in live_pids() {
            let mut environ = Vec::new();
            if File::open(format!("/proc/{pid}/environ"))
                .and_then(|mut f| f.read_to_end(&mut environ))
                .is_err()
            {
                continue;
            }
            if environ
                .split(|b| *b == 0)
                .any(|var| var == needle.as_bytes())
            {
                // SAFETY: kill(2) has no memory effects; the pid is one we
                // just saw carrying our tag.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill9();
        self.kill_tagged_processes();
        if std::thread::panicking() {
            eprintln!(
                "---- jobq serve stderr (last {STDERR_TAIL_LINES} lines) ----\n{}\n---- end of stderr ----",
                self.stderr_tail()
            );
        }
    }
}

/// Percent-encodes a query value (cursors are opaque and may hold any byte).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Asserts that a reply is an API.md error: `status`, `error.code` and, when
/// given, `error.field`; also that `error.message` is a non-empty sentence.
#[track_caller]
pub fn assert_error(
    status: u16,
    body: &Value,
    want_status: u16,
    want_code: &str,
    want_field: Option<&str>,
) {
    assert_eq!(status, want_status, "status; body: {body}");
    assert_eq!(body["error"]["code"], want_code, "error.code; body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message should be a sentence; body: {body}"
    );
    if let Some(field) = want_field {
        assert_eq!(body["error"]["field"], field, "error.field; body: {body}");
    }
}

/// The process's exit code, failing the test when a signal ended it.
#[track_caller]
pub fn exit_code(out: &Output) -> i32 {
    out.status.code().unwrap_or_else(|| {
        panic!(
            "jobq was killed by a signal: {:?}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// One line a job wrote into a shared mark log: which group it belongs to
/// (e.g. its queue) and when it started or ended, in nanoseconds.
#[derive(Debug, Clone)]
pub struct Mark {
    /// The tag the job was given.
    pub tag: String,
    /// True for the start line, false for the end line.
    pub start: bool,
    /// `date +%s%N` when it was written.
    pub nanos: u128,
}

/// A shell line that appends `TAG start NANOS` to `log`, sleeps `secs`,
/// then appends `TAG end NANOS`: a job that says itself when it ran, so a
/// test can count overlaps without trusting the daemon's own times.
pub fn marked_sleep(log: &Path, tag: &str, secs: &str) -> String {
    format!(
        "echo \"{tag} start $(date +%s%N)\" >> '{0}'; sleep {secs}; echo \"{tag} end $(date +%s%N)\" >> '{0}'",
        log.display()
    )
}

/// Every mark in `log`, failing the test on a line that is not one.
pub fn read_marks(log: &Path) -> Vec<Mark> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            match parts.as_slice() {
                [tag, kind @ ("start" | "end"), nanos] => Mark {
                    tag: (*tag).to_owned(),
                    start: *kind == "start",
                    nanos: nanos
                        .parse()
                        .unwrap_or_else(|e| panic!("bad time in {l:?} ({e}):\n{text}")),
                },
                _ => panic!("unexpected line {l:?} in {}:\n{text}", log.display()),
            }
        })
        .collect()
}

/// The most jobs running at once among `marks` (of any tag: filter first).
/// At equal times an end counts before a start, so jobs that merely touch
/// do not count as overlapping.
pub fn max_overlap<'a>(marks: impl IntoIterator<Item = &'a Mark>) -> usize {
    let mut events: Vec<(u128, i32)> = marks
        .into_iter()
        .map(|m| (m.nanos, if m.start { 1 } else { -1 }))
        .collect();
    events.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in events {
        now += delta;
        max = max.max(now);
    }
    usize::try_from(max).expect("never negative")
}

/// Copies a directory tree (a store fixture).
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("create dir");
    for entry in fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("read fixture entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy fixture file");
        }
    }
}

/// A streamed answer ([`TestDaemon::open_stream`]): the head, and the body
/// still to be read as it arrives.
pub struct Streamed {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Transfer-Encoding` header, if any.
    pub transfer_encoding: Option<String>,
    /// The body, decoded from chunked transfer encoding; each read is bounded
    /// by what is left of [`STREAM_TIMEOUT`].
    pub body: Box<dyn Read + Send + 'static>,
    /// The request, for messages.
    pub what: String,
}

impl Streamed {
    /// Fails the test unless the answer is 200 with `content_type` (showing
    /// the body of an error), and returns it.
    #[track_caller]
    pub fn expect_ok(self, content_type: &str) -> Streamed {
        if self.status != 200 {
            let what = self.what.clone();
            let status = self.status;
            panic!("{what} answered {status}: {}", self.json());
        }
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with(content_type)),
            "{}: Content-Type {:?}, expected {content_type}",
            self.what,
            self.content_type
        );
        self
    }

    /// The body read to its end (the stream closed), failing the test if it
    /// does not end within [`STREAM_TIMEOUT`].
    #[track_caller]
    pub fn read_all(mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Err(e) = self.body.read_to_end(&mut buf) {
            panic!(
                "{}: reading the body to its end failed after {} bytes: {e}",
                self.what,
                buf.len()
            );
        }
        buf
    }

    /// The body as JSON (an error answer), or a string saying what it was.
    pub fn json(mut self) -> Value {
        let mut body = Vec::new();
        if let Err(e) = self.body.read_to_end(&mut body) {
            let what = &self.what;
            body.extend_from_slice(format!("<{what}: reading the body failed: {e}>").as_bytes());
        }
        Reply {
            status: self.status,
            location: None,
            content_type: self.content_type,
            body,
        }
        .json()
    }

    /// The body as Server-Sent Events.
    pub fn sse(self) -> SseReader {
        SseReader {
            what: self.what,
            lines: std::io::BufReader::new(self.body),
        }
    }
}

/// One Server-Sent Event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
    /// The `event:` field (`message` when absent, as in the SSE spec).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

impl SseEvent {
    /// `data` decoded from standard base64 (output events), failing the test
    /// when it is not base64.
    #[track_caller]
    pub fn bytes(&self) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .unwrap_or_else(|e| panic!("data of {self:?} is not standard base64: {e}"))
    }

    /// `data` as JSON (job events, `end`), failing the test when it is not.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("data of {self:?} is not JSON: {e}"))
    }

    /// The byte position `id` names: the id itself (`N`), or its part after
    /// an attempt number (`A:N`); failing the test when it is neither.
    /// Tests hand ids back (`Last-Event-ID`) exactly as received.
    #[track_caller]
    pub fn position(&self) -> u64 {
        self.id
            .as_deref()
            .and_then(|id| match id.split_once(':') {
                Some((attempt, pos)) => attempt.parse::<u32>().ok().and(pos.parse().ok()),
                None => id.parse().ok(),
            })
            .unwrap_or_else(|| panic!("{self:?} has no id giving a byte position"))
    }
}

/// Reads Server-Sent Events off a streamed body, one at a time.
pub struct SseReader {
    /// The request, for messages.
    what: String,
    /// The body.
    lines: std::io::BufReader<Box<dyn Read + Send + 'static>>,
}

impl SseReader {
    /// The next event, or `None` when the stream has ended between events.
    /// Fails the test when a read fails (as after [`STREAM_TIMEOUT`]) or the
    /// stream ends in the middle of an event.
    #[track_caller]
    pub fn next_event(&mut self) -> Option<SseEvent> {
        use std::io::BufRead;
        let mut event = SseEvent::default();
        let mut seen = false;
        let mut data: Option<String> = None;
        loop {
            let mut line = Vec::new();
            let n = self
                .lines
                .read_until(b'\n', &mut line)
                .unwrap_or_else(|e| panic!("{}: reading the next event failed: {e}", self.what));
            if n == 0 {
                assert!(
                    !seen,
                    "{}: the stream ended in the middle of an event: {event:?} {data:?}",
                    self.what
                );
                return None;
            }
            if line.ends_with(b"\n") {
                line.pop();
                if line.ends_with(b"\r") {
                    line.pop();
                }
            } else {
                panic!(
                    "{}: the stream ended in the middle of a line: {:?}",
                    self.what,
                    String::from_utf8_lossy(&line)
                );
            }
            let line = String::from_utf8(line)
                .unwrap_or_else(|e| panic!("{}: an event line is not UTF-8: {e}", self.what));
            if line.is_empty() {
                if seen {
                    event.data = data.unwrap_or_default();
                    if event.event.is_empty() {
                        event.event = "message".to_owned();
                    }
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue; // a comment (keep-alive)
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            seen = true;
            match field {
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = value.to_owned(),
                "data" => match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                _ => {} // retry: and unknown fields are ignored, as the spec says
            }
        }
    }

    /// Every event up to the end of the stream.
    #[track_caller]
    pub fn collect_all(&mut self) -> Vec<SseEvent> {
        let mut all = Vec::new();
        while let Some(e) = self.next_event() {
            all.push(e);
        }
        all
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), if readable.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Every pid in /proc (processes may be gone by the time they are read).
fn live_pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
}

/// An HTTP client for tests: answers of any status are answers, not
/// errors; `timeout` bounds a whole request, body included; `keep_alive`
/// off gives every request a connection of its own.
pub fn agent(timeout: Duration, keep_alive: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout));
    if !keep_alive {
        config = config.max_idle_connections(0);
    }
    config.build().new_agent()
}

/// A response header as text.
fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A [`Reply`] from what ureq returned (4xx/5xx answers included), or why
/// there was no answer.
fn reply_of(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<Reply, String> {
    let resp = result.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let location = header(&resp, "Location");
    let content_type = header(&resp, "Content-Type");
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("{what}: reading the body: {e}"))?;
    Ok(Reply {
        status,
        location,
        content_type,
        body,
    })
}
