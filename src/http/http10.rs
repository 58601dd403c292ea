//! HTTP/1.0 requests, which async-h1 drops without a word: the first
//! request head of a connection is read before async-h1 sees it, and a
//! `HTTP/1.0` head is handed on as `HTTP/1.1` with `Connection: close` (and
//! a `Host` if it had none, which 1.1 requires). The answer is HTTP/1.1,
//! which a 1.0 client must accept (RFC 9110 §6.2); the connection closes
//! after it, as 1.0 expects. Plain answers carry a `Content-Length`; a
//! streamed one (`follow`, SSE) is chunked, which needs a 1.1 client.
//!
//! Health checkers (HAProxy's `option httpchk`) and `ab` speak 1.0.
//!
//! It also keeps the request line of the head being read (the first line
//! of what arrives after an answer was written), so that a head async-h1
//! refuses can still be answered about its method and path.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// The longest head looked at; async-h1 refuses longer ones itself.
const MAX_HEAD: usize = 8 * 1024;

/// A connection whose first request head may be rewritten. Clones share
/// the state, as async-h1 reads and writes through clones.
#[derive(Clone)]
pub struct FirstHead<S> {
    /// The connection.
    inner: S,
    /// Where reading stands.
    state: Arc<Mutex<Head>>,
    /// The request line of the latest head, and whether the next bytes
    /// read begin a head (nothing read since the last answer).
    line: Arc<Mutex<(Option<String>, bool)>>,
}

/// How far the first head has been read.
enum Head {
    /// Bytes read so far, before the end of the head was seen.
    Reading(Vec<u8>),
    /// The (maybe rewritten) bytes to hand out before reading on.
    Replay(Vec<u8>, usize),
    /// Nothing to hand out: reads go to the connection.
    Through,
}

impl<S> FirstHead<S> {
    /// Wraps a connection no byte of which was read yet.
    pub fn new(inner: S) -> FirstHead<S> {
        FirstHead {
            inner,
            state: Arc::new(Mutex::new(Head::Reading(Vec::new()))),
            line: Arc::new(Mutex::new((None, true))),
        }
    }

    /// The request line (`QUERY /v1/jobs HTTP/1.1`) of the latest head
    /// read, as far as its first 1 KiB.
    pub fn request_line(&self) -> Option<String> {
        self.line
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    /// Notes `bytes`, just read: the start of a head when nothing was
    /// read since the last write.
    fn saw(&self, bytes: &[u8]) {
        let mut line = self.line.lock().unwrap_or_else(|e| e.into_inner());
        if line.1 && !bytes.is_empty() {
            let end = bytes
                .iter()
                .position(|b| *b == b'\r' || *b == b'\n')
                .unwrap_or(bytes.len())
                .min(1024);
            *line = (
                Some(String::from_utf8_lossy(&bytes[..end]).into_owned()),
                false,
            );
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstHead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let read = this.read_on(cx, out);
        if let Poll::Ready(Ok(n)) = read {
            this.saw(&out[..n]);
        }
        read
    }
}

impl<S: AsyncRead + Unpin> FirstHead<S> {
    /// Reads the (maybe rewritten) first head, then the connection.
    fn read_on(&mut self, cx: &mut Context<'_>, out: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self;
        let mut state = this.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &mut *state {
                Head::Through => {
                    drop(state);
                    return Pin::new(&mut this.inner).poll_read(cx, out);
                }
                Head::Replay(bytes, at) => {
                    let n = out.len().min(bytes.len() - *at);
                    out[..n].copy_from_slice(&bytes[*at..*at + n]);
                    *at += n;
                    if *at == bytes.len() {
                        *state = Head::Through;
                    }
                    return Poll::Ready(Ok(n));
                }
                Head::Reading(buf) => {
                    let mut chunk = [0u8; 2048];
                    let n = match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                        Poll::Ready(Ok(n)) => n,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => return Poll::Pending,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    let ended = n == 0 || buf.len() >= MAX_HEAD;
                    match head_end(buf) {
                        Some(end) => {
                            let mut bytes =
                                upgrade(&buf[..end]).unwrap_or_else(|| buf[..end].to_vec());
                            bytes.extend_from_slice(&buf[end..]);
                            *state = Head::Replay(bytes, 0);
                        }
                        // Too long, or the peer stopped: as it came.
                        None if ended => {
                            let bytes = std::mem::take(buf);
                            *state = if bytes.is_empty() {
                                Head::Through
                            } else {
                                Head::Replay(bytes, 0)
                            };
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstHead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.line.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// Where the head in `buf` ends (just past its blank line), if it does.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// A complete `HTTP/1.0` head as HTTP/1.1 with `Connection: close` and a
/// `Host`; `None` for any other head, which goes on unchanged.
fn upgrade(head: &[u8]) -> Option<Vec<u8>> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let request_line = head[..line_end].strip_suffix(b" HTTP/1.0")?;
    let mut out = Vec::with_capacity(head.len() + 64);
    out.extend_from_slice(request_line);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_host = false;
    let fields = &head[line_end + 2..head.len() - 2];
    for field in fields.split(|b| *b == b'\n').filter(|f| !f.is_empty()) {
        let name = field.split(|b| *b == b':').next().unwrap_or_default();
        if name.eq_ignore_ascii_case(b"connection") || name.eq_ignore_ascii_case(b"keep-alive") {
            continue;
        }
        has_host |= name.eq_ignore_ascii_case(b"host");
        out.extend_from_slice(field);
        out.push(b'\n');
    }
    if !has_host {
        out.extend_from_slice(b"Host: localhost\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1_0_head_becomes_1_1_and_closes() {
        let head = b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n";
        let up = String::from_utf8(upgrade(head).unwrap()).unwrap();
        assert_eq!(
            up,
            "GET /healthz HTTP/1.1\r\nAccept: */*\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        let with_host = b"POST /v1/jobs HTTP/1.0\r\nHost: h:1\r\nContent-Length: 2\r\n\r\n";
        let up = String::from_utf8(upgrade(with_host).unwrap()).unwrap();
        assert!(
            up.contains("Host: h:1\r\n") && !up.contains("localhost"),
            "{up}"
        );
        assert_eq!(upgrade(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), None);
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nbody"), Some(18));
    }
}
