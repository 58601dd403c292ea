//! API tokens: the secret itself (never shown, never logged), reading it
//! from a file (systemd's `LoadCredential=`), and finding the token a
//! request presents in constant time.

use std::fmt;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Shortest token accepted: 16 characters of a random string are beyond
/// guessing over HTTP; `openssl rand -hex 32` gives 64.
pub const MIN_TOKEN_LEN: usize = 16;

/// A token's secret. Its `Debug` hides it, and it has no `Display`, so it
/// cannot end up in a log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

impl Secret {
    /// Checks a token as written in the config (or read from its file).
    pub fn new(token: String) -> Result<Secret, String> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "a token must be at least {MIN_TOKEN_LEN} characters (make one with `openssl rand -hex 32`)"
            ));
        }
        if token
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err("a token must not contain spaces or control characters".to_owned());
        }
        Ok(Secret(token))
    }

    /// True when `presented` is this token, in time that does not depend
    /// on where the two first differ.
    fn matches(&self, presented: &[u8]) -> subtle::Choice {
        self.0.as_bytes().ct_eq(presented)
    }
}

/// Where a relative `token_file` is looked for: systemd's credentials
/// directory of the unit (`LoadCredential=`), which it names in
/// `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Reads a token from `path`: its first line, without the line end. A
/// relative path is taken in `$CREDENTIALS_DIRECTORY`.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let full: PathBuf = if path.is_absolute() {
        path.to_owned()
    } else {
        match std::env::var_os(CREDENTIALS_DIRECTORY) {
            Some(dir) => Path::new(&dir).join(path),
            None => {
                return Err(format!(
                    "{} is a relative path, which is looked for in $CREDENTIALS_DIRECTORY (systemd's LoadCredential=), and that is not set; give an absolute path",
                    path.display()
                ))
            }
        }
    };
    let first = first_line(&full).map_err(|e| match e {
        TokenFileError::Unreadable(reason) => format!("cannot read {}: {reason}", full.display()),
        TokenFileError::Empty => format!(
            "{} is empty; its first line must be the token",
            full.display()
        ),
    })?;
    Secret::new(first).map_err(|e| format!("{}: {e}", full.display()))
}

/// Why a token file gave no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFileError {
    /// It cannot be read; the reason in a few words.
    Unreadable(String),
    /// Its first line is blank.
    Empty,
}

/// The first line of `path`, trimmed: the token in a token file, for the
/// daemon's `token_file` and the CLI's `--token-file` alike.
pub fn first_line(path: &Path) -> Result<String, TokenFileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TokenFileError::Unreadable(crate::client::io_reason(&e)))?;
    let first = text.lines().next().unwrap_or_default().trim();
    if first.is_empty() {
        return Err(TokenFileError::Empty);
    }
    Ok(first.to_owned())
}

/// What an `Authorization` header carries.
#[derive(Debug, PartialEq, Eq)]
pub enum Presented<'a> {
    /// No header.
    Nothing,
    /// `Bearer <token>`.
    Bearer(&'a str),
    /// Something else (another scheme, no token).
    Malformed,
}

impl<'a> Presented<'a> {
    /// Parses the header's value, if there is one.
    pub fn parse(header: Option<&'a str>) -> Presented<'a> {
        let Some(value) = header else {
            return Presented::Nothing;
        };
        let value = value.trim();
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                let token = token.trim();
                if token.is_empty() || token.contains(' ') {
                    Presented::Malformed
                } else {
                    Presented::Bearer(token)
                }
            }
            _ => Presented::Malformed,
        }
    }
}

/// The index of the secret in `secrets` equal to `presented`, comparing
/// against every one of them whatever matches, so the time taken does not
/// tell which token (or which prefix) is right.
pub fn find<'s>(secrets: impl IntoIterator<Item = &'s Secret>, presented: &str) -> Option<usize> {
    let mut found = None;
    for (i, secret) in secrets.into_iter().enumerate() {
        if bool::from(secret.matches(presented.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show() {
        let s = Secret::new("0123456789abcdef-very-secret".into()).unwrap();
        assert_eq!(format!("{s:?}"), "<hidden>");
    }

    #[test]
    fn short_or_spaced_tokens_are_refused() {
        assert!(Secret::new("short".into()).is_err());
        assert!(Secret::new("0123456789 abcdef".into()).is_err());
    }

    #[test]
    fn bearer_headers_parse() {
        assert_eq!(Presented::parse(None), Presented::Nothing);
        assert_eq!(
            Presented::parse(Some("Bearer abc")),
            Presented::Bearer("abc")
        );
        assert_eq!(
            Presented::parse(Some("bearer  abc ")),
            Presented::Bearer("abc")
        );
        assert_eq!(Presented::parse(Some("Basic YWJj")), Presented::Malformed);
        assert_eq!(Presented::parse(Some("Bearer")), Presented::Malformed);
        assert_eq!(Presented::parse(Some("Bearer a b")), Presented::Malformed);
    }

    #[test]
    fn the_presented_token_is_found_among_all() {
        let a = Secret::new("aaaaaaaaaaaaaaaa".into()).unwrap();
        let b = Secret::new("bbbbbbbbbbbbbbbb".into()).unwrap();
        assert_eq!(find([&a, &b], "bbbbbbbbbbbbbbbb"), Some(1));
        assert_eq!(find([&a, &b], "bbbbbbbbbbbbbbb"), None);
        assert_eq!(find([&a, &b], ""), None);
    }

    #[test]
    fn a_token_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ci");
        std::fs::write(&path, "0123456789abcdef0123\nignored\n").unwrap();
        let secret = read_token_file(&path).unwrap();
        assert_eq!(secret, Secret::new("0123456789abcdef0123".into()).unwrap());
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path).unwrap_err().contains("empty"));
        let missing = read_token_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.starts_with("cannot read "), "{missing}");
    }
}
