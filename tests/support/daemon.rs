//! The daemon under test: [`Builder`] and [`TestDaemon`], which starts the
//! real binary on a temp dir and a free port and stops it on drop; the
//! [`Gate`] jobs wait on; and the job, queue and CLI helpers of a test.

use super::*;

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
    if !table.contains_key("store") {
        if let Some(store) = store_table() {
            table.insert("store".to_owned(), toml::Value::Table(store));
        }
    }
    table.to_string()
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
            "gate_polls=0; while [ ! -e '{}' ]; do gate_polls=$((gate_polls+1)); if [ $gate_polls -gt {polls} ]; then exit 1; fi; sleep 0.02; done",
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
    /// Start the daemon with this open-files limit, soft and hard.
    open_files: Option<u64>,
}

impl Builder {
    /// Starts the daemon with an open-files limit of `n`, soft and hard
    /// (through util-linux's `prlimit`), to see what it does at the limit.
    pub fn open_files(mut self, n: u64) -> Builder {
        self.open_files = Some(n);
        self
    }

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
            open_files: self.open_files,
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
    pub(super) root: TempDir,
    /// `--data-dir`: kept across [`TestDaemon::restart`].
    pub(super) data_dir: PathBuf,
    /// `--config`, when the test gave one.
    pub(super) config_file: Option<PathBuf>,
    /// `--workers`, when the test gave one.
    pub(super) workers: Option<usize>,
    /// Every daemon process of this test appends its stderr here.
    pub(super) stderr_path: PathBuf,
    /// The value of [`TAG_VAR`] for this daemon's processes.
    pub(super) tag: String,
    /// The daemon process, `None` after [`TestDaemon::kill9`].
    pub(super) child: Option<Child>,
    /// Where the current daemon listens.
    pub(super) addr: Option<SocketAddr>,
    /// One HTTP client, reusing connections.
    pub(super) agent: ureq::Agent,
    /// Sent as `Authorization: Bearer` with every request, when set.
    pub(super) token: Option<String>,
    /// The unix socket the daemon also listens on, when asked for.
    pub(super) socket: Option<PathBuf>,
    /// Extra variables in the daemon's environment.
    pub(super) envs: Vec<(String, String)>,
    /// The user the daemon runs as, when not the test's own.
    pub(super) user: Option<String>,
    /// The daemon's supplementary groups, when not the test's own.
    pub(super) groups: Option<Vec<u32>>,
    /// The daemon's open-files limit, when set.
    pub(super) open_files: Option<u64>,
    /// How many daemon processes were started (for the stderr log).
    pub(super) started: u32,
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
        if let Some(n) = self.open_files {
            // prlimit execs the daemon in place: it stays the test's child.
            let mut limited = Command::new("prlimit");
            limited
                .arg(format!("--nofile={n}:{n}"))
                .arg("--")
                .arg(cmd.get_program())
                .args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                match v {
                    Some(v) => limited.env(k, v),
                    None => limited.env_remove(k),
                };
            }
            cmd = limited;
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
        // Our own child, not yet reaped: its pid cannot have been reused.
        signal(child.id(), rustix::process::Signal::TERM);
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
            // On a cluster a claimed job is `running` a moment before it
            // has a process (docs/cluster.md): a test waits for both.
            let running = j.state.as_str() == "running" && j.pid.is_some();
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

    /// `PATCH /v1/queues/{name}` with `body` and `"create": true` (tests set
    /// queues up before their first job), failing unless it is 200; returns
    /// the queue it answered.
    pub fn patch_queue(&self, name: &str, mut body: Value) -> Value {
        body["create"] = Value::Bool(true);
        let (status, reply) = self.patch_json(&format!("/v1/queues/{name}"), &body);
        assert_eq!(
            status, 200,
            "PATCH /v1/queues/{name} {body} answered {reply}"
        );
        reply
    }

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
