//! Socket activation: the listening sockets systemd (or
//! `systemd-socket-activate`) bound and passed as fds 3, 4, … with
//! `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`. With them the daemon
//! serves on those and ignores `listen`: the socket unit decides the
//! addresses, the socket's mode and owner, and keeps the sockets across a
//! restart of the service, so no connection is refused meanwhile.
//!
//! Each fd is told apart by what the kernel says of it (its address
//! family), not by its name: a TCP socket is served as TCP (tokens or
//! anonymous), a unix socket with its peer's credentials.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use rustix::net::{sockopt, AddressFamily, SocketAddrAny, SocketAddrUnix, SocketType};

use super::listen::{Listener, SocketFile};

/// Why the passed sockets cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve the sockets systemd passed (LISTEN_FDS): {0}")]
pub struct ActivationError(String);

/// The listeners systemd passed to this process, or `None` when it passed
/// none (`LISTEN_PID` is not ours, or unset): then `listen` applies.
pub fn passed() -> Result<Option<Vec<Listener>>, ActivationError> {
    let fds: Vec<(RawFd, String)> = sd_notify::listen_fds_with_names(false)
        .map_err(|e| ActivationError(e.to_string()))?
        .collect();
    if fds.is_empty() {
        return Ok(None);
    }
    fds.into_iter()
        .map(|(fd, name)| listener(own(fd), &name))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Takes ownership of a passed fd.
#[allow(unsafe_code)]
fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: systemd's protocol hands fds 3..3+LISTEN_FDS to the process
    // named by LISTEN_PID, which sd_notify checked is us; nothing else in
    // the daemon opens or closes them, and this runs once per fd.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A passed fd as the listener its kind of socket calls for.
fn listener(fd: OwnedFd, name: &str) -> Result<Listener, ActivationError> {
    let what = |e: io::Error| ActivationError(format!("fd {name:?}: {e}"));
    let kind = sockopt::socket_type(&fd).map_err(|e| what(e.into()))?;
    let listening = sockopt::socket_acceptconn(&fd).map_err(|e| what(e.into()))?;
    if kind != SocketType::STREAM || !listening {
        return Err(ActivationError(format!(
            "fd {name:?} is not a listening stream socket (give the socket unit ListenStream=)"
        )));
    }
    let addr: SocketAddrAny = rustix::net::getsockname(&fd).map_err(|e| what(e.into()))?;
    match addr.address_family() {
        AddressFamily::INET | AddressFamily::INET6 => {
            let listener = std::net::TcpListener::from(fd);
            let addr = listener.local_addr().map_err(what)?;
            Ok(Listener::Tcp(listener, addr))
        }
        AddressFamily::UNIX => {
            let path = SocketAddrUnix::try_from(addr)
                .ok()
                .and_then(|unix| unix.path().map(|p| p.to_string_lossy().into_owned()))
                .ok_or_else(|| {
                    ActivationError(format!(
                        "fd {name:?} is an abstract or unnamed unix socket; give it a path"
                    ))
                })?;
            let listener = std::os::unix::net::UnixListener::from(fd);
            Ok(Listener::Unix(listener, path.into(), SocketFile::Passed))
        }
        _ => Err(ActivationError(format!(
            "fd {name:?} is neither a TCP nor a unix socket"
        ))),
    }
}
