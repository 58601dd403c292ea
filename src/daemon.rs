//! Lifecycle of `jobq serve`: load the config, open the store, bind the
//! listener, recover, run the dispatcher and the HTTP API, and drain on
//! SIGTERM/SIGINT.
//!
//! [`serve`] takes the shutdown as a future and returns only when the drain
//! is done; [`main`] turns signals into that future and errors into exit
//! codes.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_lite::{future, StreamExt};

use crate::config::{Config, ConfigError, Overrides};
use crate::engine::{Engine, EngineError};
use crate::http::{self, AppState};
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
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recovery failed.
    #[error("recovery failed: {0}")]
    Recover(#[from] EngineError),
    /// Signal handlers cannot be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

impl DaemonError {
    /// The process exit code: 2 for what the user must fix (config, a data
    /// dir that is not ours or in use), 1 for the rest.
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Config(_)
            | DaemonError::Store(
                StoreError::Foreign { .. } | StoreError::Locked { .. } | StoreError::Open { .. },
            )
            | DaemonError::Bind { .. } => 2,
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
    init_tracing(&config.log);
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

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
pub async fn serve(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let make_dir = |dir: &Path| {
        std::fs::create_dir_all(dir).map_err(|source| DaemonError::DataDir {
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
    make_dir(&config.work_dir())?;
    // A stale address from an earlier run must not send clients astray.
    let _ = std::fs::remove_file(config.addr_file());
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| DaemonError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = http::bound_addr(&listener).map_err(|source| DaemonError::Bind {
        addr: config.listen,
        source,
    })?;
    write_addr_file(&config.addr_file(), addr)?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), workers = config.workers, "jobq listening on {addr}");

    let engine = Engine::new(store, config.clone());
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        engine: engine.clone(),
        max_body: config.max_body,
        max_upload: config.max_upload,
        ready: ready.clone(),
    };
    crate::rt::spawn(async move {
        if let Err(e) = http::serve(state, listener).await {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    });

    engine.recover().await?;
    ready.store(true, Ordering::SeqCst);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);

    future::or(
        async {
            future::zip(
                engine.run_dispatcher(),
                future::zip(
                    engine.run_timers(),
                    future::zip(engine.run_retention(), engine.run_repair()),
                ),
            )
            .await;
        },
        shutdown,
    )
    .await;
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    engine.shutdown().await;
    tracing::info!("drained; exiting");
    Ok(())
}

/// Writes the bound address for scripts and tests, atomically (a reader
/// never sees half a line).
fn write_addr_file(path: &Path, addr: std::net::SocketAddr) -> Result<(), DaemonError> {
    let tmp = path.with_extension("addr.tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "{addr}")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|source| DaemonError::DataDir {
        path: path.to_owned(),
        source,
    })
}
