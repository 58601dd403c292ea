//! Streamed responses: `GET /v1/jobs/{id}/output?follow=true` (raw bytes,
//! chunked), the same with `Accept: text/event-stream` (SSE), and
//! `GET /v1/events` (SSE of job state changes).
//!
//! A producer task writes encoded bytes into a small bounded channel; the
//! response body reads from it. When the client goes away the body is
//! dropped, the channel closes and the producer stops at its next send.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_channel::{Receiver, Sender};
use base64::Engine as _;
use futures_lite::{future, AsyncRead, Stream};
use tide::{Body, Response, StatusCode};

use super::capacity::Slot;
use super::conn::Hangup;
use super::{ApiError, AppState};
use crate::api::{ErrorCode, JobEvent};
use crate::engine::Engine;
use crate::events::EventFilter;
use crate::job::JobId;
use crate::output::{self, Followed, Piece, Resume};
use crate::store::{Stream as OutStream, StreamFilter};

/// How often an idle SSE stream gets a `: ping` comment, so clients can
/// use a read timeout to tell a quiet stream from a dead daemon.
pub const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);
/// Encoded pieces in flight per streamed response: small, so a slow client
/// holds little memory; the producer reads on from the store when it drains.
const IN_FLIGHT: usize = 8;

/// The body of a streamed response: bytes from a channel.
struct ChannelBody {
    /// Boxed: the receiver is not `Unpin`, the body must be.
    rx: Pin<Box<Receiver<Vec<u8>>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl AsyncRead for ChannelBody {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.len().min(self.buf.len() - self.pos);
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(n));
            }
            match self.rx.as_mut().poll_next(cx) {
                Poll::Ready(Some(chunk)) => {
                    self.buf = chunk;
                    self.pos = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(0)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A 200 whose body is whatever arrives on `rx`, sent chunked.
fn streamed(rx: Receiver<Vec<u8>>, content_type: &str) -> Response {
    let body = ChannelBody {
        rx: Box::pin(rx),
        buf: Vec::new(),
        pos: 0,
    };
    let mut res = Response::new(StatusCode::Ok);
    res.set_body(Body::from_reader(
        futures_lite::io::BufReader::new(body),
        None,
    ));
    res.set_content_type(content_type);
    res.insert_header("Cache-Control", "no-cache");
    res
}

/// What a streamed response holds while it lasts: its slot of the
/// stream limit, and the watch on its client hanging up (which ends it at
/// once, rather than at the next write).
pub struct Held {
    _slot: Slot,
    hangup: Hangup,
}

impl Held {
    /// Takes a stream slot for `req`, or refuses it with 503 when the
    /// `max_streams` are all open.
    pub fn take(req: &tide::Request<AppState>) -> Result<Held, ApiError> {
        let streams = &req.state().streams;
        let slot = streams.take().ok_or_else(|| {
            ApiError::new(
                StatusCode::ServiceUnavailable,
                ErrorCode::Unavailable,
                streams.refusal(),
            )
        })?;
        Ok(Held {
            _slot: slot,
            hangup: req.ext::<Hangup>().cloned().unwrap_or_else(Hangup::never),
        })
    }

    /// Runs `work` until it ends or the client hangs up; the slot is given
    /// back after.
    async fn run(self, work: impl std::future::Future<Output = ()>) {
        future::or(work, self.hangup.wait()).await;
    }
}

/// How a followed output is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// The bytes as produced.
    Raw,
    /// Server-Sent Events: `event: attempt` (`{"attempt": n}`, id `n:0`)
    /// when an attempt begins; `event: stdout|stderr`, `id:`
    /// `attempt:position` (the byte position after the piece, in that
    /// attempt's output), `data:` the bytes in standard base64 (so any byte
    /// survives); a `: ping` comment every 15 s when idle; a last
    /// `event: end` with the job's end as JSON.
    Sse,
}

/// Streams job `id`'s output from `offset` until the job is terminal and all
/// output is sent.
pub fn follow_output(
    engine: Engine,
    id: JobId,
    filter: StreamFilter,
    from: Resume,
    encoding: Encoding,
    held: Held,
) -> Response {
    let (tx, rx) = async_channel::bounded::<Vec<u8>>(IN_FLIGHT);
    crate::rt::spawn(held.run(async move {
        let (ptx, prx) = async_channel::bounded::<Followed>(IN_FLIGHT);
        let forward = async {
            loop {
                let bytes = match encoding {
                    // Raw bytes have no room for a marker: the attempts'
                    // outputs follow one another (SSE tells them apart).
                    Encoding::Raw => match prx.recv().await {
                        Ok(Followed::Output(piece)) => piece.data,
                        Ok(Followed::Attempt(_)) => continue,
                        Err(_) => break,
                    },
                    Encoding::Sse => match recv_or_ping(&prx).await {
                        Some(Ok(Followed::Output(piece))) => sse_piece(&piece),
                        Some(Ok(Followed::Attempt(n))) => sse_attempt(n),
                        Some(Err(())) => break,
                        None => b": ping\n\n".to_vec(),
                    },
                };
                if tx.send(bytes).await.is_err() {
                    break;
                }
            }
            prx.close();
        };
        let (followed, ()) = future::zip(
            output::follow(
                engine.output_hub(),
                id,
                filter,
                from,
                ptx,
                |id| engine.job_for_follower(id),
                |id, attempt, at| engine.frames_for_follower(id, attempt, at),
            ),
            forward,
        )
        .await;
        if let Err(e) = followed {
            tracing::warn!(job = %id, error = %e, "following output failed");
            return;
        }
        if encoding == Encoding::Sse {
            if let Ok(job) = engine.get(&id).await {
                let view = crate::api::JobView::from(&job);
                let end = serde_json::json!({
                    "state": view.state,
                    "exit_code": view.exit_code,
                    "signal": view.signal,
                    "reason": view.reason,
                    "exit": view.wait_exit_code(),
                });
                let _ = tx
                    .send(format!("event: end\ndata: {end}\n\n").into_bytes())
                    .await;
            }
        }
    }));
    streamed(
        rx,
        match encoding {
            Encoding::Raw => "application/octet-stream",
            Encoding::Sse => "text/event-stream",
        },
    )
}

/// `event: attempt`: attempt `n` began; its id resumes at its start.
fn sse_attempt(n: u32) -> Vec<u8> {
    format!("id: {n}:0\nevent: attempt\ndata: {{\"attempt\":{n}}}\n\n").into_bytes()
}

fn sse_piece(piece: &Piece) -> Vec<u8> {
    let event = match piece.stream {
        OutStream::Stdout => "stdout",
        OutStream::Stderr => "stderr",
    };
    let data = base64::engine::general_purpose::STANDARD.encode(&piece.data);
    format!(
        "id: {}:{}\nevent: {event}\ndata: {data}\n\n",
        piece.attempt, piece.position
    )
    .into_bytes()
}

/// The next item, or `None` after [`KEEPALIVE`] without one (time for a
/// ping); `Some(Err(()))` once the channel is closed.
async fn recv_or_ping<T>(rx: &Receiver<T>) -> Option<Result<T, ()>> {
    future::or(async { Some(rx.recv().await.map_err(drop)) }, async {
        async_io::Timer::after(KEEPALIVE).await;
        None
    })
    .await
}

/// Streams job events as SSE (`event: job`, `data:` the event as JSON).
/// With a `job` filter the first event is that job's current state, so a
/// waiter cannot miss an end that happened before it subscribed.
pub fn events(engine: Engine, filter: EventFilter, held: Held) -> Response {
    let (tx, rx) = async_channel::bounded::<Vec<u8>>(IN_FLIGHT);
    let subscription = engine.subscribe(filter.clone());
    crate::rt::spawn(held.run(async move {
        if let Some(id) = filter.job {
            if let Ok(job) = engine.get(&id).await {
                if send_event(&tx, &crate::events::snapshot(&job))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        loop {
            let sent = match recv_or_ping(&subscription.events).await {
                Some(Ok(event)) => send_event(&tx, &event).await,
                Some(Err(())) => break,
                None => tx.send(b": ping\n\n".to_vec()).await.map_err(drop),
            };
            if sent.is_err() {
                return;
            }
        }
        if subscription
            .lagged
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            let _ = tx
                .send(b"event: lagged\ndata: {\"message\":\"this stream fell too far behind and was cut; reconnect and re-read the jobs you need\"}\n\n".to_vec())
                .await;
        }
    }));
    streamed(rx, "text/event-stream")
}

async fn send_event(tx: &Sender<Vec<u8>>, event: &JobEvent) -> Result<(), ()> {
    let json = serde_json::to_string(event).map_err(drop)?;
    tx.send(format!("event: job\ndata: {json}\n\n").into_bytes())
        .await
        .map_err(drop)
}
