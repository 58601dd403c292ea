//! The listeners the API is served on: TCP addresses and unix sockets,
//! bound before anything else starts, and the accept loops that hand each
//! connection to the app with what is known of its peer.
//!
//! A unix socket's peer is told by the kernel (SO_PEERCRED): the request
//! carries [`Peer::Unix`] with its uid and gid, which
//! [`crate::auth::Authority`] turns into a `unix:<user>` principal. A TCP
//! peer is [`Peer::Tcp`]: a token or anonymous.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_io::{Async, Timer};

use crate::auth::Peer;
use crate::config::ListenAddr;

use super::capacity::{Capacity, Slot};
use super::conn::{Conn, HEAD_TOO_SLOW};
use super::AppState;

/// A bound listener, not yet serving.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener and the address it got (port 0 resolved).
    Tcp(std::net::TcpListener, SocketAddr),
    /// A unix socket listener, its path, and who owns its file.
    Unix(std::os::unix::net::UnixListener, PathBuf, SocketFile),
}

/// Whose a unix socket's file is, which says who removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketFile {
    /// The daemon bound it: removed when the daemon stops.
    Ours,
    /// systemd bound it and passed it (socket activation): it stays, for
    /// the next start.
    Passed,
}

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address is in use, not ours to take, or the system refused.
    #[error("cannot listen on {addr}: {source}")]
    Io {
        /// The address as configured.
        addr: ListenAddr,
        /// Why.
        source: io::Error,
    },
    /// Something is in the way of the socket file.
    #[error("cannot listen on unix:{}: {problem}", path.display())]
    Socket {
        /// The socket's path.
        path: PathBuf,
        /// What is there and what to do.
        problem: String,
    },
}

impl Listener {
    /// The address it listens on, as `jobq.addr` and the log show it.
    pub fn addr(&self) -> ListenAddr {
        match self {
            Listener::Tcp(_, addr) => ListenAddr::Tcp(*addr),
            Listener::Unix(_, path, _) => ListenAddr::Unix(path.clone()),
        }
    }

    /// Removes a unix socket's file once the daemon no longer serves it,
    /// so the next start finds no stale socket; a file systemd passed is
    /// left. TCP needs nothing.
    pub fn remove_socket_file(&self) {
        if let Listener::Unix(_, path, SocketFile::Ours) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Binds `addr`. A unix socket gets `mode` and, when given, group `gid`.
pub fn bind(addr: &ListenAddr, mode: u32, gid: Option<u32>) -> Result<Listener, BindError> {
    let io = |source| BindError::Io {
        addr: addr.clone(),
        source,
    };
    match addr {
        ListenAddr::Tcp(want) => {
            let listener = std::net::TcpListener::bind(want).map_err(io)?;
            let bound = listener.local_addr().map_err(io)?;
            Ok(Listener::Tcp(listener, bound))
        }
        ListenAddr::Unix(path) => {
            clear_stale_socket(path)?;
            if let Some(dir) = path.parent() {
                make_socket_dir(dir).map_err(io)?;
            }
            // The daemon's umask (077) keeps the new socket private until
            // the mode below opens it as configured.
            let listener = std::os::unix::net::UnixListener::bind(path).map_err(io)?;
            let open_up = || -> io::Result<()> {
                if let Some(gid) = gid {
                    std::os::unix::fs::chown(path, None, Some(gid))?;
                }
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            };
            if let Err(e) = open_up() {
                let _ = std::fs::remove_file(path);
                return Err(io(e));
            }
            Ok(Listener::Unix(listener, path.clone(), SocketFile::Ours))
        }
    }
}

/// Makes the socket's directory if it is missing, readable by all (who may
/// connect is the socket's own mode); an existing one is left as it is.
fn make_socket_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// Removes a socket file a crashed daemon left; refuses when a daemon
/// still answers on it, or when the file is not a socket.
fn clear_stale_socket(path: &Path) -> Result<(), BindError> {
    let problem = |problem: String| BindError::Socket {
        path: path.to_owned(),
        problem,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(problem(e.to_string())),
    };
    if !meta.file_type().is_socket() {
        return Err(problem(
            "the path exists and is not a socket; remove it or choose another path".to_owned(),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(problem(
            "another process is listening on it (is another jobq running?)".to_owned(),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing the stale socket of an earlier run");
            std::fs::remove_file(path).map_err(|e| problem(e.to_string()))
        }
        Err(e) => Err(problem(format!(
            "a socket file is there and cannot be checked ({e})"
        ))),
    }
}

/// Serves the app on `listener` until the future is dropped, at most
/// `connections` at once: past it a connection gets a 503 and is closed.
///
/// Our own accept loop rather than tide's `listen`: tide leaves Nagle's
/// algorithm on, and async-h1 writes a response's head and body separately,
/// so every keep-alive request waited ~40 ms for the client's delayed ACK
/// (measured: 23 submissions/s from one client before, see
/// docs/benchmarks.md). Each TCP connection gets `TCP_NODELAY`. Each
/// request carries its connection's [`Peer`] and [`Hangup`](super::conn::Hangup).
pub async fn serve(
    app: tide::Server<AppState>,
    listener: Listener,
    connections: Arc<Capacity>,
) -> io::Result<()> {
    match listener {
        Listener::Tcp(listener, _) => {
            let listener = Async::new(listener)?;
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        back_off(e).await;
                        continue;
                    }
                };
                let Some(slot) = connections.take() else {
                    refuse(Conn::new(stream), &connections);
                    continue;
                };
                let _ = stream.get_ref().set_nodelay(true);
                let local = stream.get_ref().local_addr().ok();
                connection(
                    app.clone(),
                    Conn::new(stream),
                    Peer::Tcp,
                    local,
                    Some(peer),
                    slot,
                );
            }
        }
        Listener::Unix(listener, _, _) => {
            let listener = Async::new(listener)?;
            loop {
                let (stream, _) = match listener.accept().await {
                    Ok(conn) => conn,
                    Err(e) => {
                        back_off(e).await;
                        continue;
                    }
                };
                let Some(slot) = connections.take() else {
                    refuse(Conn::new(stream), &connections);
                    continue;
                };
                let peer = match rustix::net::sockopt::socket_peercred(stream.get_ref()) {
                    Ok(cred) => Peer::Unix {
                        uid: cred.uid.as_raw(),
                        gid: cred.gid.as_raw(),
                    },
                    Err(e) => {
                        // Without the peer's identity the request has no
                        // principal: drop the connection.
                        tracing::warn!(error = %e, "cannot read the unix peer's credentials");
                        continue;
                    }
                };
                connection(app.clone(), Conn::new(stream), peer, None, None, slot);
            }
        }
    }
}

/// Answers a connection past the limit with a 503 and closes it. What the
/// client sent is read first (briefly), so it gets the answer rather than a
/// reset.
fn refuse<T>(conn: Conn<T>, connections: &Capacity)
where
    T: std::os::fd::AsFd + Send + Sync + 'static,
    for<'a> &'a T: std::io::Read + std::io::Write,
{
    static REFUSED: AtomicU64 = AtomicU64::new(0);
    if REFUSED.fetch_add(1, Ordering::Relaxed).is_multiple_of(1000) {
        tracing::warn!(limit = %connections.refusal(), "refusing connections");
    }
    let answer = raw_answer(
        "503 Service Unavailable",
        "retry-after: 1\r\n",
        "unavailable",
        &connections.refusal(),
    );
    crate::rt::spawn(async move {
        use futures_lite::{AsyncReadExt, AsyncWriteExt};
        let mut conn = conn;
        let mut head = [0u8; 8192];
        let _ = futures_lite::future::or(async { conn.read(&mut head).await.map(drop) }, async {
            Timer::after(std::time::Duration::from_secs(1)).await;
            Ok(())
        })
        .await;
        let _ = conn.write_all(answer.as_bytes()).await;
        let _ = conn.flush().await;
    });
}

/// Out of file descriptors and the like: back off, go on; connections
/// wait in the kernel's backlog meanwhile. Logged once per
/// [`ACCEPT_WARN_EVERY`] with how many failed since, not every 50 ms.
async fn back_off(e: io::Error) {
    use std::sync::Mutex;
    static FAILED: AtomicU64 = AtomicU64::new(0);
    static LAST: Mutex<Option<std::time::Instant>> = Mutex::new(None);
    let failed = FAILED.fetch_add(1, Ordering::Relaxed) + 1;
    let due = {
        let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= ACCEPT_WARN_EVERY);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    };
    if due {
        FAILED.store(0, Ordering::Relaxed);
        tracing::warn!(error = %e, failed, "cannot accept connections (they wait in the backlog); the open-files limit may be reached");
    }
    async_io::Timer::after(std::time::Duration::from_millis(50)).await;
}

/// Least time between two warnings of failed accepts.
const ACCEPT_WARN_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The answer to a request head async-h1 could not read, from its error:
/// 431 for a head too large or with too many fields, 505 for an HTTP
/// version it does not speak, 400 for a malformed head; `None` for an error
/// that is not about a head (the peer went away), which gets no answer.
/// async-h1 drops the connection without a word in each case. A method
/// http-types does not know (`QUERY`) gets the 405 any method a route lacks
/// gets, with its `Allow`, or a 404 for a path no route has; `line` is the
/// head's request line.
fn refusal(error: &str, line: Option<&str>) -> Option<String> {
    if error.contains("Invalid HTTP method") {
        return Some(unknown_method(line.unwrap_or_default()));
    }
    let (status, reason, message) = if error.contains(HEAD_TOO_SLOW) {
        (408, "Request Timeout", HEAD_TOO_SLOW)
    } else if error.contains("Head byte length") || error.contains("too many headers") {
        (
            431,
            "Request Header Fields Too Large",
            "the request's head is over 8 KiB or 128 fields",
        )
    } else if error.contains("Unsupported HTTP version") {
        (505, "HTTP Version Not Supported", "speak HTTP/1.1 (or 1.0)")
    } else if error.contains("Malformed HTTP head")
        || error.contains("No method found")
        || error.contains("No version found")
        || error.contains("No uri found")
        || error.contains("invalid")
        || error.contains("Invalid")
    {
        (400, "Bad Request", "the request's head is not HTTP")
    } else {
        return None;
    };
    Some(raw_answer(
        &format!("{status} {reason}"),
        "",
        "invalid_field",
        message,
    ))
}

/// A whole answer, written by hand where no request reached tide: `status`
/// (`"503 Service Unavailable"`), `headers` (each ending in CRLF), and the
/// JSON error body of `code` and `message`; the connection closes after.
fn raw_answer(status: &str, headers: &str, code: &str, message: &str) -> String {
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The answer to a request line whose method http-types cannot represent.
fn unknown_method(line: &str) -> String {
    let mut words = line.split(' ');
    let method: String = words
        .next()
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_graphic)
        .take(32)
        .collect();
    let target = words.next().unwrap_or_default();
    let path = target.split(['?', '#']).next().unwrap_or_default();
    match super::routes::method_refusal(path, &method) {
        None => raw_answer("404 Not Found", "", "not_found", "no such route"),
        Some((allowed, message)) => raw_answer(
            "405 Method Not Allowed",
            &format!("allow: {allowed}\r\n"),
            "method_not_allowed",
            &message,
        ),
    }
}

/// Serves one connection's requests in a task of its own, holding its
/// `slot` of the connection limit until it closes.
fn connection<T>(
    app: tide::Server<AppState>,
    conn: Conn<T>,
    peer: Peer,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    slot: Slot,
) where
    T: std::os::fd::AsFd + Send + Sync + 'static,
    for<'a> &'a T: std::io::Read + std::io::Write,
{
    crate::rt::spawn(async move {
        let _slot = slot;
        let stream = super::http10::FirstHead::new(conn.clone());
        let heads = stream.clone();
        let mut answer_on = conn.clone();
        let served = async_h1::accept(stream, |mut req| {
            let conn = conn.clone();
            let app = app.clone();
            async move {
                conn.enter_handler();
                req.set_local_addr(local);
                req.set_peer_addr(remote);
                req.ext_mut().insert(peer);
                req.ext_mut().insert(conn.hangup());
                let res = app.respond(req).await;
                conn.leave_handler();
                res
            }
        })
        .await;
        if let Err(e) = served {
            tracing::debug!(?remote, error = %e, "connection ended with an error");
            if let Some(answer) = refusal(&e.to_string(), heads.request_line().as_deref()) {
                use futures_lite::AsyncWriteExt;
                let _ = answer_on.write_all(answer.as_bytes()).await;
                let _ = answer_on.flush().await;
            }
        }
    });
}
