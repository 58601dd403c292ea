//! One client connection as the server holds it: shared by the clones
//! async-h1 reads and writes through, held to a deadline for each request
//! head, and watched for the client hanging up while a response streams.
//!
//! A slowloris client sends a head a byte at a time to hold a connection
//! for ever: once a head's first byte has come, the whole head must come
//! within [`HEAD_TIMEOUT`]. A connection idle between requests is closed by
//! async-h1 after 60 s. Bodies have limits of their own (`body.rs`).
//!
//! A streamed response (`follow`, `/v1/events`) writes only when there is
//! something to send, so a client that went away would be noticed at the
//! next keep-alive ping at the earliest. [`Hangup`] tells the producer as
//! soon as the kernel sees the client's end close.

use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use futures_lite::{future, AsyncRead, AsyncWrite};

/// Longest time from a request head's first byte to its end.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The message of the error a head past [`HEAD_TIMEOUT`] ends its
/// connection with (answered 408).
pub const HEAD_TOO_SLOW: &str = "the request head did not arrive within 10 s of its first byte";

/// A connection (TCP or unix), cheap to clone.
pub struct Conn<T> {
    io: Arc<Async<T>>,
    phase: Arc<Mutex<Phase>>,
}

impl<T> Clone for Conn<T> {
    fn clone(&self) -> Self {
        Conn {
            io: self.io.clone(),
            phase: self.phase.clone(),
        }
    }
}

/// Where the connection's current request stands.
enum Phase {
    /// Waiting for a head to begin.
    Between,
    /// A head began; it must end before the timer fires.
    Head(Timer),
    /// The head was read; a handler owns the reads (its body has limits
    /// of its own).
    Handler,
}

impl<T: AsFd + Send + Sync + 'static> Conn<T> {
    /// Wraps an accepted connection.
    pub fn new(io: Async<T>) -> Conn<T> {
        Conn {
            io: Arc::new(io),
            phase: Arc::new(Mutex::new(Phase::Between)),
        }
    }

    /// The connection itself.
    pub fn get_ref(&self) -> &T {
        self.io.get_ref()
    }

    /// A handler took the request: its head is complete.
    pub fn enter_handler(&self) {
        *self.lock() = Phase::Handler;
    }

    /// The handler answered: the next bytes begin another head.
    pub fn leave_handler(&self) {
        *self.lock() = Phase::Between;
    }

    /// What tells a streaming response that this client hung up.
    pub fn hangup(&self) -> Hangup {
        Hangup(Some(self.io.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<T> AsyncRead for Conn<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut &*self.io).poll_read(cx, buf);
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let timed_out = match (&mut *phase, &polled) {
            (Phase::Between, Poll::Ready(Ok(n))) if *n > 0 => {
                *phase = Phase::Head(Timer::at(Instant::now() + HEAD_TIMEOUT));
                false
            }
            (Phase::Head(timer), Poll::Pending) => Pin::new(timer).poll(cx).is_ready(),
            _ => false,
        };
        if timed_out {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, HEAD_TOO_SLOW)));
        }
        polled
    }
}

impl<T> AsyncWrite for Conn<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut &*self.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut &*self.io).poll_close(cx)
    }
}

/// Resolves when a connection's client has closed its end; never, for a
/// client that sends more (it is not gone) or for a request that came
/// some other way (tests, `Hangup::never`).
#[derive(Clone)]
pub struct Hangup(Option<Arc<dyn Watched>>);

impl Hangup {
    /// A hang-up that never comes.
    pub fn never() -> Hangup {
        Hangup(None)
    }

    /// Waits for the client to close its end.
    pub async fn wait(&self) {
        match &self.0 {
            Some(watched) => watched.closed().await,
            None => future::pending().await,
        }
    }
}

/// A socket whose peer's end can be watched.
trait Watched: Send + Sync {
    /// Resolves once the peer closed its end.
    fn closed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl<T: AsFd + Send + Sync> Watched for Async<T> {
    fn closed(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            loop {
                if self.readable().await.is_err() {
                    return;
                }
                // Peek: a byte the client sent is the next request's, not ours.
                let mut byte = [0u8; 1];
                let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
                match rustix::net::recv(self.get_ref(), &mut byte[..], flags) {
                    Ok((0, _)) => return,
                    // It sends more: it is there. Readable stays true until
                    // the bytes are read, so stop watching.
                    Ok(_) => return future::pending().await,
                    Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
                    Err(_) => return,
                }
            }
        })
    }
}
