//! Who may get as far as a handler: the two checks every request passes.
//!
//! 1. [`browser_guard`], a middleware over the whole app: a web page must
//!    not be able to drive the daemon (docs/api.md, docs/security.md). A request
//!    with a foreign `Origin`, or `Sec-Fetch-Site: cross-site`, is refused;
//!    so is a `Host` that is neither loopback, a listen address nor a name
//!    in `[server] hosts` (DNS rebinding), on a daemon where a request
//!    needs no token. Clients that send no `Origin` are unaffected.
//! 2. [`authorize`], run by every endpoint of the route table before it
//!    reads the body: the request's principal (`crate::auth`), and whether
//!    its role allows the route.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use tide::{Next, Request, Response, StatusCode};

use super::routes::Access;
use super::{ApiError, AppState};
use crate::api::ErrorCode;
use crate::auth::{AuthError, Peer, Presented, Principal};
use crate::config::{Config, ListenAddr};

/// What the browser guard (`browser_guard`) allows.
#[derive(Clone, Debug)]
pub struct BrowserPolicy {
    /// `[server] origins`, lowercase.
    origins: Vec<String>,
    /// Names a `Host` may give besides loopback addresses: `localhost`,
    /// the listen addresses, `[server] hosts`; lowercase.
    hosts: Vec<String>,
    /// Whether `Host` is checked at all: only where a request may go
    /// without a token. Where every request needs one, a rebinding page has
    /// none to send (docs/security.md).
    check_host: bool,
}

impl BrowserPolicy {
    /// The policy of `config`, for a daemon that does (or does not)
    /// require tokens.
    pub fn new(config: &Config, requires_tokens: bool) -> BrowserPolicy {
        let mut hosts = vec!["localhost".to_owned()];
        for addr in &config.listen {
            if let ListenAddr::Tcp(addr) = addr {
                if !addr.ip().is_unspecified() {
                    hosts.push(addr.ip().to_string());
                }
            }
        }
        hosts.extend(config.server.hosts.iter().cloned());
        BrowserPolicy {
            origins: config.server.origins.clone(),
            hosts,
            check_host: !requires_tokens,
        }
    }

    /// True when `Host` names this daemon. A request without one is not
    /// from a browser, which always sends it.
    fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else {
            return true;
        };
        let name = host_name(host);
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.hosts.iter().any(|h| *h == bare)
    }

    /// Why the request must be refused, if it must: a page of another
    /// origin, or one that rebinds a name to this daemon.
    fn refusal(&self, req: &Request<AppState>) -> Option<String> {
        let unix = matches!(req.ext::<Peer>(), Some(Peer::Unix { .. }));
        let host = single(req, "Host");
        // No browser reaches a unix socket, and its Host means nothing.
        if self.check_host && !unix && !self.host_allowed(host.as_deref()) {
            return Some(format!(
                "the Host {:?} is not this daemon's (a loopback address, a listen address or a name in [server] hosts); a web page may not reach jobq by another name",
                host.unwrap_or_default()
            ));
        }
        let origin = single(req, "Origin").map(|o| o.trim().to_ascii_lowercase());
        let listed = origin.as_ref().is_some_and(|o| self.origins.contains(o));
        let cross_site = single(req, "Sec-Fetch-Site")
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"));
        if cross_site && !listed {
            return Some(
                "a request from another site's web page is refused (Sec-Fetch-Site: cross-site); list its origin in [server] origins to allow it".to_owned(),
            );
        }
        if let Some(origin) = &origin {
            let own = host.map(|h| format!("http://{}", h.trim().to_ascii_lowercase()));
            if !listed && own.as_deref() != Some(origin.as_str()) {
                return Some(format!(
                    "a request from the web page at {origin} is refused; list the origin in [server] origins to allow it"
                ));
            }
        }
        None
    }

    /// True when a response should carry CORS headers for `origin`: one the
    /// operator listed, whose pages read our answers from another origin.
    fn listed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }
}

/// The host part of a `Host` value (`[::1]:7711` → `[::1]`,
/// `example.com.:80` → `example.com`), lowercase.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => host[..=end].to_owned(),
            None => host,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
            _ => host,
        }
    };
    name.trim_end_matches('.').to_owned()
}

/// A header's value when it is given once; a repeated header is as good
/// as a wrong one, and reads as one that cannot match (`"\0"`).
fn single(req: &Request<AppState>, name: &str) -> Option<String> {
    let values = req.header(name)?;
    let mut iter = values.iter();
    let first = iter.next()?.as_str().to_owned();
    if iter.next().is_some() {
        return Some("\0".to_owned());
    }
    Some(first)
}

/// The middleware of [`BrowserPolicy`]: refuses with 403 before any
/// handler runs; answers a listed origin's CORS preflight and marks the
/// answers it may read.
pub fn browser_guard<'a>(
    req: Request<AppState>,
    next: Next<'a, AppState>,
) -> Pin<Box<dyn Future<Output = tide::Result> + Send + 'a>> {
    Box::pin(async move {
        let policy = req.state().browser.clone();
        if let Some(why) = policy.refusal(&req) {
            tracing::info!(method = %req.method(), path = req.url().path(), "refused a browser request: {why}");
            let mut res =
                ApiError::new(StatusCode::Forbidden, ErrorCode::Forbidden, why).into_response();
            res.insert_header("Connection", "close");
            return Ok(res);
        }
        let origin = single(&req, "Origin")
            .map(|o| o.trim().to_ascii_lowercase())
            .filter(|o| policy.listed(o));
        let preflight = req.method() == tide::http::Method::Options
            && req.header("Access-Control-Request-Method").is_some();
        let mut res = match (&origin, preflight) {
            (Some(_), true) => {
                let mut res = Response::new(StatusCode::NoContent);
                res.insert_header(
                    "Access-Control-Allow-Methods",
                    "GET, POST, PUT, PATCH, DELETE",
                );
                res.insert_header(
                    "Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Last-Event-ID",
                );
                res.insert_header("Access-Control-Max-Age", "600");
                res
            }
            _ => next.run(req).await,
        };
        if let Some(origin) = origin {
            res.insert_header("Access-Control-Allow-Origin", origin);
            res.insert_header("Vary", "Origin");
        }
        Ok(res)
    })
}

/// The principal of `req`, if its role allows a route that needs `access`
/// (`Access::Public` routes are not authorized at all).
pub fn authorize(req: &Request<AppState>, access: Access) -> Result<Principal, ApiError> {
    let peer = req.ext::<Peer>().copied().unwrap_or(Peer::Tcp);
    let header = single(req, "Authorization");
    let presented = Presented::parse(header.as_deref());
    let principal = req
        .state()
        .authority
        .authenticate(peer, presented)
        .map_err(ApiError::from)?;
    let needed = match access {
        Access::Public => return Ok(principal),
        Access::Read => crate::auth::Role::Read,
        Access::Submit => crate::auth::Role::Submit,
        Access::Admin => crate::auth::Role::Admin,
    };
    if principal.role < needed {
        return Err(ApiError::new(
            StatusCode::Forbidden,
            ErrorCode::Forbidden,
            format!(
                "{} {} needs the {needed} role; {} has the {} role",
                req.method(),
                req.url().path(),
                principal.owner(),
                principal.role
            ),
        ));
    }
    Ok(principal)
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        match e {
            AuthError::Unauthorized(message) => {
                ApiError::new(StatusCode::Unauthorized, ErrorCode::Unauthorized, message)
            }
            AuthError::Forbidden(message) => {
                ApiError::new(StatusCode::Forbidden, ErrorCode::Forbidden, message)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(check_host: bool) -> BrowserPolicy {
        BrowserPolicy {
            origins: vec!["https://dash.example.com".into()],
            hosts: vec![
                "localhost".into(),
                "10.0.0.5".into(),
                "jobs.internal".into(),
            ],
            check_host,
        }
    }

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("127.0.0.1:7711"), "127.0.0.1");
        assert_eq!(host_name("[::1]:7711"), "[::1]");
        assert_eq!(host_name("Jobs.Internal.:80"), "jobs.internal");
        assert_eq!(host_name("localhost"), "localhost");
    }

    #[test]
    fn loopback_listen_addresses_and_listed_names_are_hosts() {
        let p = policy(true);
        for ok in [
            "127.0.0.1:7711",
            "127.8.9.10",
            "[::1]:1",
            "localhost:7711",
            "10.0.0.5:7711",
            "jobs.internal",
        ] {
            assert!(p.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "rebind.attacker.example",
            "10.0.0.6:7711",
            "[::2]:1",
            "localhost.attacker.example",
        ] {
            assert!(!p.host_allowed(Some(bad)), "{bad}");
        }
        assert!(p.host_allowed(None));
    }
}
