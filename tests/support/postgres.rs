//! A throw-away PostgreSQL server for the cluster tests: `initdb` in a temp
//! dir, started on a free loopback port, stopped (`-m immediate`) and
//! removed on drop. PostgreSQL refuses to run as root, so when the suite
//! runs as root (CI does) the server runs as the `postgres` user.
//!
//! The server binaries come from `JOBQ_PG_BINDIR`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package), else
//! `PATH`. Without them the test fails and says what to install: a cluster
//! test never skips itself.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// A running server; one per test, so tests share nothing.
pub struct TestPostgres {
    /// Holds the data directory, the socket and the log.
    dir: TempDir,
    /// Where `initdb`, `pg_ctl` and `postgres` are.
    bindir: PathBuf,
    /// The loopback port it listens on.
    port: u16,
    /// The user it runs as (`postgres` when the suite is root).
    run_as: Option<String>,
    /// The server's command-line settings (port, socket dir, durability),
    /// for a restart.
    options: String,
}

/// The role the tests (and jobq) log in as; initdb makes it the superuser.
const ROLE: &str = "jobq";

fn bindir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JOBQ_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let in_path = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match in_path.as_deref().and_then(Path::parent) {
        Some(dir) => dir.to_owned(),
        None => panic!(
            "the cluster tests need a PostgreSQL server and found none: install it \
             (Debian: apt-get install postgresql; .ci/run does) or set JOBQ_PG_BINDIR \
             to the directory with initdb and pg_ctl"
        ),
    }
}

impl TestPostgres {
    /// initdb and start a server that does not fsync (tests need no
    /// durability across a machine crash); panics with PostgreSQL's log if
    /// either fails.
    pub fn start() -> TestPostgres {
        TestPostgres::start_with(false)
    }

    /// A server with PostgreSQL's default durability (fsync, synchronous
    /// commit): what a benchmark compares with other queues.
    #[allow(dead_code)] // the benchmarks' choice
    pub fn start_durable() -> TestPostgres {
        TestPostgres::start_with(true)
    }

    fn start_with(durable: bool) -> TestPostgres {
        let bindir = bindir();
        let dir = tempfile::Builder::new()
            .prefix("jobq-pg-")
            .tempdir()
            .expect("temp dir for PostgreSQL");
        let root = rustix::process::geteuid().is_root();
        let run_as = root.then(|| "postgres".to_owned());
        if let Some(user) = &run_as {
            let user = nix::unistd::User::from_name(user)
                .expect("look up the postgres user")
                .unwrap_or_else(|| {
                    panic!("the suite runs as root and PostgreSQL refuses root, but there is no `postgres` user to run it as (Debian's postgresql package makes one)")
                });
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .expect("give the temp dir to postgres");
        }
        let port = free_port();
        let mut pg = TestPostgres {
            dir,
            bindir,
            port,
            run_as,
            options: String::new(),
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                ROLE,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let sync = if durable {
            ""
        } else {
            " -c fsync=off -c synchronous_commit=off"
        };
        pg.options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400{sync}",
            pg.dir.path().display()
        );
        pg.restart();
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// One of the server's programs, to be run as the server's user.
    fn command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        }
    }

    /// Runs one of the server's programs as the server's user; panics with
    /// its output and the server log when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        if !out.status.success() {
            let log = fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            panic!(
                "{program} failed ({}):\n{}{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Stops the server (fast shutdown: connections are cut), as a
    /// database that became unreachable.
    #[allow(dead_code)] // the tests' choice
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts the server (at first, or again after [`TestPostgres::stop`])
    /// on its port, with its settings.
    pub fn restart(&self) {
        let data = self.data_dir();
        let log = self.dir.path().join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &self.options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// The URL of database `db` (`postgres` always exists).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{db}", self.port)
    }

    /// The port, for tests of a wrong URL.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs SQL as the superuser with `psql` (for setting up and reading
    /// what jobq wrote without jobq); returns what it printed, unaligned.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(self.bindir.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d"])
            .arg(self.url(db))
            .args(["-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl TestPostgres {
    /// Leaves behind a watcher that stops the server (`-m immediate`) and
    /// removes its files once process `pid` has exited, for a server that
    /// is never dropped (the suite's shared one), even when the process is
    /// killed.
    pub fn stop_after(&self, pid: u32) {
        let stop = self.stop_command();
        let mut line = format!(
            "tail --pid={pid} -f /dev/null; '{}'",
            stop.get_program().to_string_lossy()
        );
        for arg in stop.get_args() {
            line.push_str(&format!(" '{}'", arg.to_string_lossy()));
        }
        line.push_str(&format!(
            " >/dev/null 2>&1; rm -rf '{}'",
            self.dir.path().display()
        ));
        // The shell puts the watcher in the background and exits: the
        // watcher outlives this process by design.
        let started = Command::new("sh")
            .args(["-c", &format!("({line}) &")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start the watcher that stops the shared PostgreSQL");
        assert!(started.success(), "the watcher's shell failed: {started}");
    }

    fn stop_command(&self) -> Command {
        let data = self.data_dir();
        let mut c = self.command("pg_ctl");
        c.args([
            "-D",
            data.to_str().unwrap_or_default(),
            "-m",
            "immediate",
            "stop",
        ]);
        c
    }

    fn stop_immediately(&self) {
        let _ = self
            .stop_command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop_immediately();
    }
}

/// A loopback port nobody listens on now (the OS picks it; a race with
/// another process taking it in between is possible and fails loudly).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("pick a free port")
        .port()
}
