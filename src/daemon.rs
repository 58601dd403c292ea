//! Lifecycle of `jobq serve` (placeholder while the engine is written).

use crate::config::Overrides;

/// Runs the daemon until it is told to stop; returns the process exit code.
pub fn main(overrides: Overrides) -> i32 {
    let _ = overrides;
    eprintln!("jobq: serve is not built yet");
    1
}
