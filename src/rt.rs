//! The one place that names the executor. Our own async code is written
//! against the smol-rs crates (async-io, async-lock, event-listener,
//! futures-lite); only spawning and blocking-on need an executor, and today
//! that is async-std's (tide runs on it). Moving to `smol` means changing
//! this file.

use std::future::Future;

/// Runs `future` in the background on the executor.
pub fn spawn<F>(future: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    async_std::task::spawn(future);
}

/// Runs `future` to completion on the current thread, driving the executor.
pub fn block_on<F: Future>(future: F) -> F::Output {
    async_std::task::block_on(future)
}
