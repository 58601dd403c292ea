//! Lifecycle of `jobq serve`: load the config, open the store, bind the
//! listener, recover, run the dispatcher and the HTTP API, and drain on
//! SIGTERM/SIGINT.
//!
//! [`serve`] takes the shutdown as a future and returns only when the drain
//! is done; [`main`] turns signals into that future and errors into exit
//! codes. What systemd is told is [`notify`]'s; the sockets it may pass
//! are [`crate::http::activated`]'s.

pub mod notify;

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_lite::{future, StreamExt};

use crate::auth::{Account, Authority};
use crate::config::{Config, ConfigError, ListenAddr, Overrides};
use crate::engine::{Engine, EngineError};
use crate::http::capacity::Capacity;
use crate::http::{self, AppState, BindError, BrowserPolicy, Listener, SocketFile};
use crate::store::{Store, StoreError};

/// Why the daemon could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be prepared.
    #[error("cannot prepare {path}: {source}")]
    DataDir {
        /// The directory or file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A listen address cannot be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The user the daemon runs as cannot be looked up.
    #[error("cannot tell which user jobq runs as: {0}")]
    Account(crate::auth::AccountError),
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The PostgreSQL store cannot be opened or joined.
    #[error(transparent)]
    Cluster(#[from] crate::store::postgres::PgError),
    /// Recovery failed.
    #[error("recovery failed: {0}")]
    Recover(#[from] EngineError),
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The sockets systemd passed cannot be served.
    #[error(transparent)]
    Activation(#[from] crate::http::activated::ActivationError),
}

impl DaemonError {
    /// The process exit code: 2 for what the user must fix (config, a data
    /// dir that cannot be made or is not ours or in use, an address in
    /// use), 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Config(_)
            | DaemonError::DataDir { .. }
            | DaemonError::Activation(_)
            | DaemonError::Store(
                StoreError::Foreign { .. } | StoreError::Locked { .. } | StoreError::Open { .. },
            )
            | DaemonError::Cluster(
                crate::store::postgres::PgError::Schema(_)
                | crate::store::postgres::PgError::Url(_),
            )
            | DaemonError::Bind(_) => 2,
            _ => 1,
        }
    }
}

/// Runs `jobq serve`; returns the process exit code.
pub fn main(overrides: Overrides) -> i32 {
    let config = match Config::load(&overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jobq: {e}");
            return 2;
        }
    };
    if let Err(e) = init_tracing(&config.log, config.log_format) {
        eprintln!("jobq: {e}");
        return 2;
    }
    let result = crate::rt::block_on(async {
        let shutdown = shutdown_signal()?;
        serve(config, shutdown).await
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            // One line, the same under a terminal and in the journal.
            eprintln!("jobq: {e}");
            e.exit_code()
        }
    }
}

/// Logs to stderr with `RUST_LOG` if set (and not empty), else the
/// config's `log` (checked when the config was loaded). A bad `RUST_LOG` is
/// refused rather than silently replaced.
fn init_tracing(default: &str, format: crate::config::LogFormat) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => EnvFilter::try_new(&env).map_err(|e| {
            format!(
                "RUST_LOG={env:?} is not a log filter such as \"info\" or \"jobq=debug,warn\": {e}"
            )
        })?,
        _ => EnvFilter::try_new(default).map_err(|e| format!("log: {e}"))?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        crate::config::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    Ok(())
}

/// Resolves on the first SIGTERM or SIGINT; a second one ends the process at
/// once (exit 1), for an operator who does not want to wait for the drain.
fn shutdown_signal() -> Result<impl Future<Output = ()>, DaemonError> {
    use async_signal::{Signal, Signals};
    let mut signals = Signals::new([Signal::Term, Signal::Int]).map_err(DaemonError::Signals)?;
    Ok(async move {
        if let Some(Ok(sig)) = signals.next().await {
            tracing::info!(signal = ?sig, "shutting down: no new jobs; running ones may finish within shutdown_grace");
        }
        crate::rt::spawn(async move {
            if let Some(Ok(sig)) = signals.next().await {
                tracing::warn!(signal = ?sig, "second signal: exiting at once");
                std::process::exit(1);
            }
        });
    })
}

/// Runs the daemon until `shutdown` resolves, then drains: no new jobs start,
/// running ones may finish within `shutdown_grace`, the rest are stopped and
/// recorded as interrupted, the store is flushed. Returns when all of that is done.
///
/// The listeners are bound first, before the data directory is touched: an
/// address in use leaves everything on disk as it was. Unix socket files
/// are removed again whenever this returns.
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    // Everything the daemon creates (store, socket before its chmod, the
    // address file) is its own alone; jobs get the umask it found.
    let job_umask = private_umask();
    let config = Arc::new(config);
    let daemon = Account::current().map_err(DaemonError::Account)?;
    let listeners = listeners(&config)?;
    // The socket files to remove afterwards (ours, not systemd's), while
    // `run` owns the listeners.
    let ours: Vec<std::path::PathBuf> = listeners
        .iter()
        .filter_map(|l| match l {
            Listener::Unix(_, path, SocketFile::Ours) => Some(path.clone()),
            _ => None,
        })
        .collect();
    let result = run(config, daemon, job_umask, listeners, shutdown).await;
    for path in &ours {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// The sockets to serve: those systemd passed (socket activation), else
/// every address of `listen`, bound now. On an error none is left bound.
fn listeners(config: &Config) -> Result<Vec<Listener>, DaemonError> {
    if let Some(passed) = http::activated::passed()? {
        let shown: Vec<String> = passed.iter().map(|l| l.addr().to_string()).collect();
        tracing::info!(sockets = %shown.join(", "), "serving on the sockets systemd passed; `listen` is not used");
        return Ok(passed);
    }
    let mut listeners = Vec::with_capacity(config.listen.len());
    let gid = config.socket_group.as_ref().map(|g| g.gid);
    for addr in &config.listen {
        match http::bind(addr, config.socket_mode, gid) {
            Ok(listener) => listeners.push(listener),
            Err(e) => {
                listeners.iter().for_each(Listener::remove_socket_file);
                return Err(e.into());
            }
        }
    }
    Ok(listeners)
}

/// [`serve`] once the listeners are bound.
async fn run(
    config: Arc<Config>,
    daemon: Account,
    job_umask: u32,
    listeners: Vec<Listener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let make_dir = |dir: &Path| {
        std::fs::create_dir_all(dir)
            .and_then(|()| private_dir(dir))
            .map_err(|source| DaemonError::DataDir {
                path: dir.to_owned(),
                source,
            })
    };
    make_dir(&config.data_dir)?;
    // The store is checked before anything else in the data dir is touched:
    // a foreign or newer store, or one in use, leaves everything as it was.
    let store = Store::open(
        &config.store_dir(),
        config.durability,
        config.flush_interval,
    )?;
    make_dir(&config.store_dir())?;
    make_dir(&config.work_dir())?;
    // A stale address from an earlier run must not send clients astray.
    let _ = std::fs::remove_file(config.addr_file());
    let addrs: Vec<ListenAddr> = listeners.iter().map(Listener::addr).collect();
    write_addr_file(&config.addr_file(), &addrs)?;
    let shown: Vec<String> = addrs.iter().map(ListenAddr::to_string).collect();
    let shown = shown.join(", ");
    tracing::info!(listen = %shown, data_dir = %config.data_dir.display(), workers = config.workers, user = %daemon.name, "jobq listening on {shown}");

    let authority = Arc::new(Authority::new(&config, daemon.clone()));
    if daemon.is_root() && !authority.requires_tokens() {
        if let Some(tcp) = addrs.iter().find(|a| matches!(a, ListenAddr::Tcp(_))) {
            tracing::warn!(
                "jobq runs as root and takes requests without a token on {tcp}: any local user can run commands as {} through it; configure [[auth.tokens]], or listen only on a unix socket",
                config.jobs.user.as_ref().unwrap_or(&daemon).name
            );
        }
    }
    let open_files = crate::runner::limits::raise_open_files();
    let inherited = crate::runner::limits::Inherited {
        umask: job_umask,
        limits: vec![open_files],
    };
    let connections = config.connection_limit(crate::runner::limits::open_files_now());
    let connections_held = Capacity::new("connections", "max_connections", connections);
    let cluster = match &config.store {
        crate::config::StoreSettings::Sled => None,
        crate::config::StoreSettings::Postgres(pg) => {
            Some(crate::engine::Cluster::open(pg, &config).await?)
        }
    };
    let clustered = cluster.is_some();
    let engine = Engine::new(store, config.clone(), daemon, inherited, cluster);
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        engine: engine.clone(),
        max_body: config.max_body,
        max_upload: config.max_upload,
        ready: ready.clone(),
        browser: Arc::new(BrowserPolicy::new(&config, authority.requires_tokens())),
        authority,
        streams: Capacity::new("streams", "max_streams", config.stream_limit(connections)),
        uploads: Capacity::new("uploads in progress", "max_uploads", config.max_uploads),
    };
    let app = http::app(state);
    for listener in listeners {
        let app = app.clone();
        let connections = connections_held.clone();
        crate::rt::spawn(async move {
            let addr = listener.addr();
            if let Err(e) = http::serve(app, listener, connections).await {
                tracing::error!(%addr, error = %e, "the HTTP server stopped");
            }
        });
    }

    let notifier = notify::Notifier::from_env();
    notifier.status("recovering: reading the store");
    engine.recover().await?;
    ready.store(true, Ordering::SeqCst);
    let pulse = engine.pulse().await?;
    notifier.ready(&pulse.to_string());
    // For the rest of the process, the drain included.
    crate::rt::spawn(notifier.run(engine.clone()));

    future::or(
        async {
            if clustered {
                future::zip(
                    engine.run_cluster(),
                    future::zip(engine.run_stray_sweeper(), engine.run_output_sync()),
                )
                .await;
                return;
            }
            future::zip(
                engine.run_dispatcher(),
                future::zip(
                    engine.run_timers(),
                    future::zip(
                        engine.run_retention(),
                        future::zip(
                            engine.run_repair(),
                            future::zip(engine.run_stray_sweeper(), engine.run_output_sync()),
                        ),
                    ),
                ),
            )
            .await;
        },
        shutdown,
    )
    .await;
    notifier.stopping();
    engine.shutdown().await;
    tracing::info!("drained; exiting");
    Ok(())
}

/// Sets the daemon's umask to 077 and returns the one it had, which jobs
/// get back: the daemon's files are its own, the jobs' files are as their
/// user expects.
fn private_umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    old.as_raw_mode()
}

/// Makes `dir` readable by the daemon's user alone: the store holds every
/// job's command, environment, stdin and output. A directory the daemon
/// does not own (a shared mount point, say) is left as it is, with a
/// warning.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    if meta.uid() != rustix::process::geteuid().as_raw() {
        tracing::warn!(dir = %dir.display(), "the directory is not jobq's own and others may read it; make it mode 0700");
        return Ok(());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes the bound addresses for scripts and tests, one a line in the
/// order of `listen` (`127.0.0.1:43117`, `unix:/run/jobq/jobq.sock`),
/// atomically (a reader never sees half a file).
fn write_addr_file(path: &Path, addrs: &[ListenAddr]) -> Result<(), DaemonError> {
    let tmp = path.with_extension("addr.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        for addr in addrs {
            writeln!(f, "{addr}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| DaemonError::DataDir {
        path: path.to_owned(),
        source,
    })
}
