//! The daemon's settings: defaults, the TOML file (`config/jobq.toml` documents
//! every key), command-line overrides, and validation with errors that name
//! the key at fault.
//!
//! Loading never touches the data directory: a bad config must leave
//! everything on disk as it was.
//!
//! The file's shape is [`file`]; where the API listens, [`listen`]; who may
//! use it and as whom jobs run, [`access`].

pub mod access;
mod file;
pub mod listen;
mod show;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use access::{AuthSettings, JobSettings, NamedGroup, ServerSettings, TokenSettings};
use file::FileConfig;
pub use listen::ListenAddr;
pub use store::{PostgresSettings, StoreSettings};

use crate::api::MAX_CONCURRENCY;
use crate::auth::Account;

/// Why a concurrency above [`MAX_CONCURRENCY`] is refused.
fn too_concurrent() -> String {
    format!("must be at most {MAX_CONCURRENCY}")
}

/// The file read when `--config` is not given, if it exists.
pub const SYSTEM_CONFIG: &str = "/etc/jobq/jobq.toml";
/// docs/api.md's default listen address: loopback only, so a fresh install is not
/// reachable from the network before tokens are set.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7711";

/// What to do with a job that was running when the daemon stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInterrupted {
    /// Run it again (`attempt` + 1): jobs are at-least-once.
    Requeue,
    /// End it `failed` with reason `interrupted`: jobs are at-most-once.
    Fail,
}

/// When a write counts as done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// A 2xx answer waits for the fsync that covers the change (group
    /// commit). Nothing acknowledged is lost.
    Fsync,
    /// Answers without waiting; the store is flushed every
    /// `flush_interval`. A crash loses up to that much acknowledged work.
    Relaxed,
}

/// How the daemon's log lines are written (on stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One line of text per event (journald adds the time and unit).
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The mode of the unix socket when the config gives none: the daemon's
/// user and group may connect, nobody else.
pub const DEFAULT_SOCKET_MODE: u32 = 0o660;

/// Every setting of the daemon, after defaults and overrides.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the HTTP API listens (TCP addresses and unix sockets); port 0
    /// picks a free port.
    pub listen: Vec<ListenAddr>,
    /// Permission bits of the unix sockets.
    pub socket_mode: u32,
    /// The group the unix sockets are given, so its members may connect.
    pub socket_group: Option<NamedGroup>,
    /// Tokens and the admin group.
    pub auth: AuthSettings,
    /// Origins and host names a browser's request may name.
    pub server: ServerSettings,
    /// The user jobs run as by default, and their environment.
    pub jobs: JobSettings,
    /// Which engine keeps the jobs (`[store]`).
    pub store: StoreSettings,
    /// The store, the `work/` directory and `jobq.addr` live here.
    pub data_dir: PathBuf,
    /// Most jobs running at once, over all queues.
    pub workers: usize,
    /// Time between SIGTERM and SIGKILL when a job is stopped.
    pub kill_grace: Duration,
    /// On shutdown, how long running jobs may go on to finish before they
    /// are stopped and recorded as interrupted.
    pub shutdown_grace: Duration,
    /// Largest request body accepted (413 beyond).
    pub max_body: u64,
    /// Largest stdin upload accepted (`POST /v1/uploads`), streamed to a
    /// file as it arrives.
    pub max_upload: u64,
    /// Most output bytes kept per job attempt; later output is dropped and
    /// the job marked `output_truncated`.
    pub max_output: u64,
    /// Policy for jobs found `running` at start.
    pub on_interrupted: OnInterrupted,
    /// The shell that runs `shell` jobs as `<shell> -c <line>`.
    pub shell: PathBuf,
    /// Default first retry delay.
    pub backoff: Duration,
    /// Tracing filter (`info`, `jobq=debug`…); `RUST_LOG` wins when set.
    pub log: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// Whether answers wait for an fsync.
    pub durability: Durability,
    /// With `relaxed` durability, how often the store is flushed.
    pub flush_interval: Duration,
    /// Concurrency of a queue with no `[queues.NAME]` entry; `None` means
    /// only the global `workers` limit applies.
    pub default_concurrency: Option<usize>,
    /// Per-queue settings from `[queues.NAME]`.
    pub queues: BTreeMap<String, QueueConfig>,
    /// Cap of a retry's backoff delay.
    pub max_backoff: Duration,
    /// Most jobs not yet started (waiting, scheduled, queued); a submission
    /// past it gets 429 `queue_full`.
    pub max_queued: u64,
    /// Most client connections open at once (503 past it); `None` sets it
    /// from the open-files limit at start ([`Config::connection_limit`]).
    pub max_connections: Option<usize>,
    /// Most streamed responses at once (output followers and event
    /// subscribers; 503 past it); `None`: half the connection limit.
    pub max_streams: Option<usize>,
    /// Most uploads (`POST /v1/uploads`) in progress at once (503 past it).
    pub max_uploads: usize,
    /// Terminal jobs are pruned this long after they finished.
    pub retention: Duration,
    /// At most this many terminal jobs are kept; the oldest go first.
    pub keep_finished: u64,
}

/// `[queues.NAME]` in the config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Most jobs of this queue running at once.
    pub concurrency: Option<usize>,
    /// Resource limits of this queue's jobs (over `[jobs] limits`).
    pub limits: Option<crate::resources::LimitsArg>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: vec![ListenAddr::parse(DEFAULT_LISTEN).expect("default listen address parses")],
            socket_mode: DEFAULT_SOCKET_MODE,
            socket_group: None,
            auth: AuthSettings::default(),
            server: ServerSettings::default(),
            store: StoreSettings::default(),
            jobs: JobSettings::default(),
            data_dir: default_data_dir(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kill_grace: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            max_body: ByteSize::mib(1).as_u64(),
            max_upload: ByteSize::gib(1).as_u64(),
            max_output: ByteSize::mib(64).as_u64(),
            on_interrupted: OnInterrupted::Requeue,
            shell: PathBuf::from("/bin/sh"),
            backoff: Duration::from_secs(1),
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            durability: Durability::Fsync,
            flush_interval: Duration::from_millis(10),
            default_concurrency: None,
            queues: BTreeMap::new(),
            max_backoff: Duration::from_secs(3600),
            max_queued: 1_000_000,
            max_connections: None,
            max_streams: None,
            max_uploads: 4,
            retention: Duration::from_secs(7 * 24 * 3600),
            keep_finished: 100_000,
        }
    }
}

/// `$XDG_STATE_HOME/jobq`, else `~/.local/state/jobq`; `/var/lib/jobq` for
/// root (the systemd unit's `StateDirectory`).
pub fn default_data_dir() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/var/lib/jobq");
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(state).join("jobq");
    }
    match std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/jobq"),
        None => PathBuf::from("jobq-data"),
    }
}

/// Whether `path` is a file someone may execute: a `shell` that is not
/// would fail every job at its start.
fn executable(path: &Path) -> Result<(), &'static str> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(_) => Err("does not exist"),
        Ok(m) if !m.is_file() => Err("is not a file"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err("is not executable"),
        Ok(_) => Ok(()),
    }
}

/// Settings given on the command line; each wins over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--config FILE`: must exist when given.
    pub config_file: Option<PathBuf>,
    /// `--listen ADDR`, each time it is given: replaces the file's list.
    pub listen: Vec<String>,
    /// `--data-dir DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--workers N`.
    pub workers: Option<usize>,
}

/// Why the configuration cannot be used. Each names the file or key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` (or the system file) cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong
    /// type (toml's message names the key and line).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, with the key and position.
        message: String,
    },
    /// A key has a value out of range.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The key (or flag) at fault.
        key: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
}

impl Config {
    /// Builds the configuration from the file (if any) and the overrides,
    /// then validates it.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match &overrides.config_file {
            Some(path) => Some(read_file(path)?),
            None if Path::new(SYSTEM_CONFIG).exists() => Some(read_file(Path::new(SYSTEM_CONFIG))?),
            None => None,
        };
        let mut config = Config::default();
        if let Some(f) = file {
            if let Some(v) = f.listen {
                config.listen =
                    listen::parse_all(&v.into_vec()).map_err(|reason| ConfigError::Invalid {
                        key: "listen",
                        reason,
                    })?;
            }
            if let Some(v) = f.socket_mode {
                config.socket_mode = v.bits().map_err(|reason| ConfigError::Invalid {
                    key: "socket_mode",
                    reason,
                })?;
            }
            if let Some(v) = f.socket_group {
                config.socket_group = Some(NamedGroup::resolve("socket_group", &v)?);
            }
            config.auth = access::auth_from(f.auth)?;
            config.server = access::server_from(f.server)?;
            config.jobs = access::jobs_from(f.jobs)?;
            config.store = store::store_from(f.store)?;
            if let Some(v) = f.data_dir {
                config.data_dir = v;
            }
            if let Some(v) = f.workers {
                config.workers = v;
            }
            if let Some(v) = f.kill_grace {
                config.kill_grace = v;
            }
            if let Some(v) = f.shutdown_grace {
                config.shutdown_grace = v;
            }
            if let Some(v) = f.max_body {
                config.max_body = v.as_u64();
            }
            if let Some(v) = f.max_upload {
                config.max_upload = v.as_u64();
            }
            if let Some(v) = f.max_output {
                config.max_output = v.as_u64();
            }
            if let Some(v) = f.on_interrupted {
                config.on_interrupted = v;
            }
            if let Some(v) = f.shell {
                config.shell = v;
            }
            if let Some(v) = f.backoff {
                config.backoff = v;
            }
            if let Some(v) = f.log_format {
                config.log_format = v;
            }
            if let Some(v) = f.log {
                config.log = v;
            }
            if let Some(v) = f.durability {
                config.durability = v;
            }
            if let Some(v) = f.flush_interval {
                config.flush_interval = v;
            }
            config.default_concurrency = f.default_concurrency.or(config.default_concurrency);
            config.queues = f.queues;
            if let Some(v) = f.max_backoff {
                config.max_backoff = v;
            }
            if let Some(v) = f.max_queued {
                config.max_queued = v;
            }
            config.max_connections = f.max_connections.or(config.max_connections);
            config.max_streams = f.max_streams.or(config.max_streams);
            if let Some(v) = f.max_uploads {
                config.max_uploads = v;
            }
            if let Some(v) = f.retention {
                config.retention = v;
            }
            if let Some(v) = f.keep_finished {
                config.keep_finished = v;
            }
        }
        if !overrides.listen.is_empty() {
            config.listen =
                listen::parse_all(&overrides.listen).map_err(|reason| ConfigError::Invalid {
                    key: "--listen",
                    reason,
                })?;
        }
        if let Some(v) = &overrides.data_dir {
            // On the command line, relative to where it was typed, as for
            // any tool; in the file it must be absolute (see `validate`).
            config.data_dir = std::path::absolute(v).map_err(|e| ConfigError::Invalid {
                key: "--data-dir",
                reason: format!("cannot make {} absolute: {e}", v.display()),
            })?;
        }
        if let Some(v) = overrides.workers {
            config.workers = v;
        }
        config.validate()?;
        let daemon = Account::current().map_err(|e| ConfigError::Invalid {
            key: "jobs.user",
            reason: format!("cannot tell which user jobq runs as: {e}"),
        })?;
        access::check(&config.listen, &config.auth, &config.jobs, &daemon)?;
        Ok(config)
    }

    /// Checks ranges that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.workers == 0 || self.workers > 4096 {
            return invalid("workers", "must be between 1 and 4096");
        }
        if self.max_body < 1024 {
            return invalid("max_body", "must be at least 1KiB");
        }
        if self.kill_grace > Duration::from_secs(3600) {
            return invalid("kill_grace", "must be at most 1h");
        }
        if self.shutdown_grace > Duration::from_secs(24 * 3600) {
            return invalid("shutdown_grace", "must be at most 24h");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if !self.data_dir.is_absolute() {
            return invalid(
                "data_dir",
                &format!(
                    "{} is relative; give an absolute path such as /var/lib/jobq",
                    self.data_dir.display()
                ),
            );
        }
        if self.data_dir.exists() && !self.data_dir.is_dir() {
            return invalid(
                "data_dir",
                &format!("{} exists and is not a directory", self.data_dir.display()),
            );
        }
        if !self.shell.is_absolute() {
            return invalid("shell", "must be an absolute path such as /bin/sh");
        }
        if let Err(why) = executable(&self.shell) {
            return invalid("shell", &format!("{}: {why}", self.shell.display()));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            return invalid(
                "log",
                &format!(
                    "{:?} is not a log filter such as \"info\" or \"jobq=debug,warn\": {e}",
                    self.log
                ),
            );
        }
        if self.default_concurrency == Some(0) {
            return invalid(
                "default_concurrency",
                "must be at least 1 (pause a queue to stop it)",
            );
        }
        if self.default_concurrency > Some(MAX_CONCURRENCY) {
            return invalid("default_concurrency", &too_concurrent());
        }
        for (name, queue) in &self.queues {
            if !crate::api::is_valid_queue_name(name) {
                return Err(ConfigError::Invalid {
                    key: "queues",
                    reason: format!("{name:?} is not a queue name: use 1 to 64 of a-z 0-9 _ . -"),
                });
            }
            if queue.concurrency == Some(0) {
                return Err(ConfigError::Invalid {
                    key: "queues",
                    reason: format!(
                        "queues.{name}.concurrency must be at least 1 (pause a queue to stop it)"
                    ),
                });
            }
            if queue.concurrency > Some(MAX_CONCURRENCY) {
                return Err(ConfigError::Invalid {
                    key: "queues",
                    reason: format!("queues.{name}.concurrency {}", too_concurrent()),
                });
            }
            if let Some(limits) = &queue.limits {
                limits
                    .check(&format!("queues.{name}.limits"))
                    .map_err(|e| ConfigError::Invalid {
                        key: "queues",
                        reason: e.to_string(),
                    })?;
            }
        }
        if self.flush_interval < Duration::from_millis(1)
            || self.flush_interval > Duration::from_secs(60)
        {
            return invalid("flush_interval", "must be between 1ms and 60s");
        }
        for (key, value) in [
            ("max_connections", self.max_connections),
            ("max_streams", self.max_streams),
            ("max_uploads", Some(self.max_uploads)),
        ] {
            if value == Some(0) {
                return invalid(key, "must be at least 1");
            }
        }
        if self.max_queued == 0 {
            return invalid("max_queued", "must be at least 1");
        }
        if self.retention.is_zero() {
            return invalid("retention", "must be longer than 0");
        }
        Ok(())
    }

    /// The connection limit: `max_connections`, or when unset half the
    /// open-files limit `open_files` past a reserve (the other half is for
    /// jobs' pipes, followers' reads and the store), within 64..=16384.
    pub fn connection_limit(&self, open_files: u64) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let spare = open_files.saturating_sub(128) / 2;
            spare.clamp(64, 16_384) as usize
        })
    }

    /// The stream limit: `max_streams`, or half the connection limit.
    pub fn stream_limit(&self, connections: usize) -> usize {
        self.max_streams.unwrap_or((connections / 2).max(1))
    }

    /// Where the store's files live.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// Default working directory of jobs.
    pub fn work_dir(&self) -> PathBuf {
        self.data_dir.join("work")
    }

    /// The resource limits of `queue`'s jobs: its `[queues.NAME] limits`
    /// key by key, else `[jobs] limits`. A job may only lower them.
    pub fn queue_limits(&self, queue: &str) -> crate::resources::Limits {
        let own = self
            .queues
            .get(queue)
            .and_then(|q| q.limits.as_ref())
            .and_then(|l| l.check("limits").ok())
            .unwrap_or_default();
        own.or(self.jobs.limits)
    }

    /// The concurrency limit a queue starts with (before any `PATCH`).
    pub fn queue_concurrency(&self, queue: &str) -> Option<usize> {
        self.queues
            .get(queue)
            .and_then(|q| q.concurrency)
            .or(self.default_concurrency)
    }

    /// Where the bound address is written for scripts and tests.
    pub fn addr_file(&self) -> PathBuf {
        self.data_dir.join("jobq.addr")
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}
