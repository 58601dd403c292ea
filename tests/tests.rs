//! The black-box suite: every test starts the real `jobq` binary on its own
//! temp dir and a free loopback port, and checks what docs/api.md promises over
//! HTTP and through the CLI.
//!
//! One test binary with modules, so cargo links the suite once; the modules
//! live in `cases/`, which cargo does not take for test targets of their own.
//! Run it with `cargo test --test tests`.

mod support;

#[path = "cases/attempts.rs"]
mod attempts;
#[path = "cases/auth.rs"]
mod auth;
#[path = "cases/backpressure.rs"]
mod backpressure;
#[path = "cases/batch.rs"]
mod batch;
#[path = "cases/browser.rs"]
mod browser;
#[path = "cases/bulk.rs"]
mod bulk;
#[path = "cases/cancel.rs"]
mod cancel;
#[path = "cases/capacity.rs"]
mod capacity;
#[path = "cases/cli.rs"]
mod cli;
#[path = "cases/cli_follow.rs"]
mod cli_follow;
#[path = "cases/cli_list.rs"]
mod cli_list;
#[path = "cases/cluster.rs"]
mod cluster;
#[path = "cases/cluster_store.rs"]
mod cluster_store;
#[path = "cases/commands.rs"]
mod commands;
#[path = "cases/config.rs"]
mod config;
#[path = "cases/crash_loop.rs"]
mod crash_loop;
#[path = "cases/dashboard.rs"]
mod dashboard;
#[path = "cases/datadir.rs"]
mod datadir;
#[path = "cases/delays.rs"]
mod delays;
#[path = "cases/dependencies.rs"]
mod dependencies;
/// What only the embedded sled store has (its files, its disk), which the
/// run on PostgreSQL leaves out with `--skip sled_only::` (see
/// `support/store.rs`).
#[path = "cases"]
mod sled_only {
    mod disk_full;
}
#[path = "cases/endings.rs"]
mod endings;
#[path = "cases/events.rs"]
mod events;
#[path = "cases/flood.rs"]
mod flood;
#[path = "cases/follow.rs"]
mod follow;
#[path = "cases/health.rs"]
mod health;
#[path = "cases/hostile.rs"]
mod hostile;
#[path = "cases/http.rs"]
mod http;
#[path = "cases/idempotency.rs"]
mod idempotency;
#[path = "cases/lifecycle.rs"]
mod lifecycle;
#[path = "cases/limits.rs"]
mod limits;
#[path = "cases/listing.rs"]
mod listing;
#[path = "cases/logging.rs"]
mod logging;
#[path = "cases/metrics.rs"]
mod metrics;
#[path = "cases/numbers.rs"]
mod numbers;
#[path = "cases/openapi.rs"]
mod openapi;
#[path = "cases/output.rs"]
mod output;
#[path = "cases/queues.rs"]
mod queues;
#[path = "cases/races.rs"]
mod races;
#[path = "cases/readme.rs"]
mod readme;
#[path = "cases/recovery.rs"]
mod recovery;
#[path = "cases/retention.rs"]
mod retention;
#[path = "cases/retries.rs"]
mod retries;
#[path = "cases/run_as.rs"]
mod run_as;
#[path = "cases/schedules.rs"]
mod schedules;
#[path = "cases/scheduling.rs"]
mod scheduling;
#[path = "cases/spawn.rs"]
mod spawn;
#[path = "cases/strays.rs"]
mod strays;
#[path = "cases/submit.rs"]
mod submit;
#[path = "cases/systemd.rs"]
mod systemd;
#[path = "cases/timeouts.rs"]
mod timeouts;
#[path = "cases/unix_socket.rs"]
mod unix_socket;
#[path = "cases/uploads.rs"]
mod uploads;
#[path = "cases/validation.rs"]
mod validation;
