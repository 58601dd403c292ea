//! jobq: a job queue and subprocess orchestrator daemon, and its client.
//!
//! The binary (`src/main.rs`) is thin: it parses the command line and hands
//! off to [`cli`] for client commands or [`daemon`] for `jobq serve`.
//! See docs/architecture.md for how the modules fit together.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod daemon;
pub(crate) mod engine;
pub(crate) mod events;
pub mod exit_code;
pub mod http;
pub mod job;
pub(crate) mod metrics;
pub(crate) mod output;
pub mod resources;
pub(crate) mod rt;
pub(crate) mod runner;
pub mod schedule;
pub(crate) mod store;

/// The PostgreSQL store (docs/cluster.md), public so that the cluster
/// tests and benchmarks can drive its statements on a real server.
pub use store::postgres;
