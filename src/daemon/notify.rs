//! systemd's notify protocol (`Type=notify`, `WatchdogSec=`): `READY=1`
//! once requests are served in full, `STATUS=` with what runs and waits,
//! `STOPPING=1` when the drain begins, and `WATCHDOG=1` at half of
//! `WATCHDOG_USEC` — each ping sent only after the engine's pulse (`Engine::pulse`) came back,
//! so a daemon whose engine is stuck (a deadlock, a store that no longer
//! answers) is restarted by systemd instead of looking alive.
//!
//! Without `NOTIFY_SOCKET` every call does nothing. The environment is read
//! and never changed (the daemon has threads by then).

use std::time::Duration;

use async_io::Timer;
use futures_lite::future;
use sd_notify::NotifyState;

use crate::engine::Engine;

/// Least time between two `STATUS=` messages: systemd keeps only the
/// last, and a busy daemon changes its counts many times a second.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Sends the daemon's state to systemd, when systemd listens.
#[derive(Clone, Copy, Debug)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` is set.
    enabled: bool,
}

impl Notifier {
    /// A notifier for this process's environment.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()),
        }
    }

    /// Sends `states`; a failure is logged once per call, never fatal (the
    /// daemon serves whether or not systemd hears it).
    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(false, states) {
            tracing::warn!(error = %e, "cannot tell systemd how jobq is (NOTIFY_SOCKET)");
        }
    }

    /// `STATUS=` alone.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `READY=1` with a first status: the store is open, recovery is done
    /// and every listener is bound, so `/readyz` answers 200.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STOPPING=1`: the drain began.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
    }

    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, when it is
    /// set for this process (`WATCHDOG_PID`).
    fn watchdog_period(&self) -> Option<Duration> {
        let mut usec = 0;
        (self.enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec / 2))
    }

    /// Runs for the rest of the process: `STATUS=` when the counts changed
    /// (at most once a second) and `WATCHDOG=1` every half period, each
    /// after a pulse of the engine. Returns at once without systemd.
    pub async fn run(self, engine: Engine) {
        if !self.enabled {
            return;
        }
        let status = async {
            let mut last = String::new();
            loop {
                Timer::after(STATUS_EVERY).await;
                let now = match engine.pulse().await {
                    Ok(pulse) if engine.is_stopping() => format!("draining: {pulse}"),
                    Ok(pulse) => pulse.to_string(),
                    Err(e) => format!("the store cannot be read: {e}"),
                };
                if now != last {
                    self.status(&now);
                    last = now;
                }
            }
        };
        let watchdog = async {
            let Some(period) = self.watchdog_period() else {
                return future::pending::<()>().await;
            };
            tracing::info!(every = ?period, "pinging systemd's watchdog");
            loop {
                Timer::after(period).await;
                match engine.pulse().await {
                    Ok(_) => self.send(&[NotifyState::Watchdog]),
                    // No ping: systemd restarts a daemon whose store stays
                    // unreadable for WatchdogSec.
                    Err(e) => {
                        tracing::warn!(error = %e, "no watchdog ping: the store cannot be read")
                    }
                }
            }
        };
        future::zip(status, watchdog).await;
    }
}
