//! Where the API listens: `listen` (one address or a list, TCP or
//! `unix:/path`) and the unix socket's `socket_mode` and `socket_group`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// Longest socket path the kernel takes (`sun_path` holds 108 bytes with
/// the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// One address the API listens on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListenAddr {
    /// A TCP address; port 0 picks a free one.
    Tcp(SocketAddr),
    /// A unix socket at this absolute path.
    Unix(PathBuf),
}

impl ListenAddr {
    /// Parses `127.0.0.1:7711`, `[::1]:7711` or `unix:/run/jobq/jobq.sock`.
    pub fn parse(value: &str) -> Result<ListenAddr, String> {
        if let Some(path) = value.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!(
                    "{value:?} is not an absolute socket path such as unix:/run/jobq/jobq.sock"
                ));
            }
            if path.as_os_str().len() > MAX_SOCKET_PATH {
                return Err(format!(
                    "{value:?} is longer than the {MAX_SOCKET_PATH} bytes a unix socket path may have"
                ));
            }
            return Ok(ListenAddr::Unix(path));
        }
        value.parse().map(ListenAddr::Tcp).map_err(|_| {
            format!(
                "{value:?} is not an address such as 127.0.0.1:7711 or unix:/run/jobq/jobq.sock"
            )
        })
    }

    /// True for a TCP address anyone beyond this machine might reach: one
    /// that is not loopback (`0.0.0.0` and `::` included).
    pub fn is_remote(&self) -> bool {
        matches!(self, ListenAddr::Tcp(addr) if !addr.ip().is_loopback())
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(addr) => write!(f, "{addr}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// `listen` as the file may give it: one string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    /// `listen = "127.0.0.1:7711"`.
    One(String),
    /// `listen = ["127.0.0.1:7711", "unix:/run/jobq/jobq.sock"]`.
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// Parses every entry of `listen`, refusing an empty list and duplicates.
pub fn parse_all(values: &[String]) -> Result<Vec<ListenAddr>, String> {
    if values.is_empty() {
        return Err("must name at least one address".to_owned());
    }
    let mut out: Vec<ListenAddr> = Vec::with_capacity(values.len());
    for value in values {
        let addr = ListenAddr::parse(value)?;
        if out.contains(&addr) {
            return Err(format!("{value:?} is listed twice"));
        }
        out.push(addr);
    }
    Ok(out)
}

/// `socket_mode` as the file may give it: `"0660"`, or a TOML octal
/// integer such as `0o660`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Mode {
    /// Octal digits in a string.
    Text(String),
    /// A number (write it as `0o660` in TOML).
    Number(i64),
}

impl Mode {
    /// The permission bits.
    pub(super) fn bits(&self) -> Result<u32, String> {
        let bits = match self {
            Mode::Text(text) => {
                let digits = text.trim();
                if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(format!(
                        "{text:?} is not an octal file mode such as \"0660\""
                    ));
                }
                u32::from_str_radix(digits, 8).map_err(|_| format!("{text:?} is too large"))?
            }
            Mode::Number(n) => u32::try_from(*n).map_err(|_| format!("{n} is not a file mode"))?,
        };
        if bits > 0o777 {
            return Err(format!(
                "{:#o} is not a mode of rwx bits; write it as a string such as \"0660\" or as 0o660",
                bits
            ));
        }
        Ok(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print_back() {
        for text in ["127.0.0.1:7711", "[::1]:0", "unix:/run/jobq/jobq.sock"] {
            assert_eq!(ListenAddr::parse(text).unwrap().to_string(), text);
        }
        assert!(ListenAddr::parse("unix:jobq.sock").is_err());
        assert!(ListenAddr::parse("localhost:7711").is_err());
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(ListenAddr::parse(&long)
            .unwrap_err()
            .contains("longer than"));
    }

    #[test]
    fn only_non_loopback_tcp_is_remote() {
        assert!(ListenAddr::parse("0.0.0.0:7711").unwrap().is_remote());
        assert!(ListenAddr::parse("[::]:7711").unwrap().is_remote());
        assert!(!ListenAddr::parse("127.0.0.2:7711").unwrap().is_remote());
        assert!(!ListenAddr::parse("unix:/x.sock").unwrap().is_remote());
    }

    #[test]
    fn lists_must_be_non_empty_without_repeats() {
        assert!(parse_all(&[]).is_err());
        let twice = ["127.0.0.1:1".to_owned(), "127.0.0.1:1".to_owned()];
        assert!(parse_all(&twice).unwrap_err().contains("twice"));
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(Mode::Text("0660".into()).bits().unwrap(), 0o660);
        assert_eq!(Mode::Text("600".into()).bits().unwrap(), 0o600);
        assert_eq!(Mode::Number(0o666).bits().unwrap(), 0o666);
        assert!(Mode::Text("0999".into()).bits().is_err());
        assert!(Mode::Text("rw".into()).bits().is_err());
        assert!(Mode::Number(660).bits().unwrap_err().contains("0o660"));
        assert!(Mode::Text("01777".into()).bits().is_err());
    }
}
