//! jobq: a job queue and subprocess orchestrator daemon, and its client.
//!
//! The binary (`src/main.rs`) is thin: it parses the command line and hands
//! off to [`cli`] for client commands or [`daemon`] for `jobq serve`.
//! See docs/architecture.md for how the modules fit together.

pub mod api;
pub mod config;
pub mod job;
pub mod daemon;
