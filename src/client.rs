//! A typed, blocking HTTP client for the daemon's API (API.md), used by the
//! CLI's client commands and usable by tests.
//!
//! This module is the only code that names ureq. It turns every answer into
//! either a value of the shared wire types of [`crate::api`] or a
//! [`ClientError`] that says whether the daemon could not be reached, refused
//! the request, or said something this client does not understand; the CLI
//! maps those to exit codes and one-line messages. It prints nothing itself.

use std::io::{self, Read};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{
    BatchRequest, BatchResponse, ErrorBody, ErrorCode, ErrorDetail, JobList, JobRequest, JobView,
    QueueList,
};
use crate::engine::{QueuePatch, QueueView};

/// API.md's default address, as a URL.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7711";

/// How long to wait for a TCP connection: the daemon is usually on the same
/// host, so a connection that takes longer than this is not going to happen.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest single long-poll the client asks for in [`Client::wait_poll`]
/// loops; the daemon may cap it lower. Long enough to keep the request rate
/// negligible, short enough that a proxy's idle timeout does not cut it.
pub const WAIT_POLL: Duration = Duration::from_secs(30);

/// How long one read may stall before the daemon is taken as hung. It must be
/// longer than [`WAIT_POLL`], during which the daemon legitimately says
/// nothing.
pub const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a request did not give the answer the caller wanted.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server` is not a URL this client can use.
    #[error("--server {url}: {reason}")]
    InvalidServer {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No daemon answered at the URL (refused, timed out, name not
    /// resolved, connection lost mid-answer).
    #[error("cannot reach jobq at {url}: {reason}")]
    Unreachable {
        /// The server URL rather than the request's: it is what the user
        /// gave and can fix.
        url: String,
        /// The cause, in a few lowercase words (`connection refused`).
        reason: String,
    },
    /// The daemon answered with a 4xx or 5xx status and an error body.
    #[error("{}", api_message(*status, body))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The daemon's error, or one made up from the status when the body
        /// was not an API error (a proxy's page, say).
        body: ErrorBody,
    },
    /// The daemon answered, but not as API.md says (an unexpected status, a
    /// body that is not the expected JSON): a version mismatch or a bug.
    #[error("unexpected answer from jobq at {url}: {detail}")]
    Protocol {
        /// The server URL.
        url: String,
        /// What was wrong, naming the field when JSON did not fit.
        detail: String,
    },
}

impl ClientError {
    /// The process exit code the CLI gives for this error: 3 when the daemon
    /// cannot be reached (a retry later may work), 2 for everything the user
    /// or the daemon refused.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Unreachable { .. } => 3,
            ClientError::InvalidServer { .. }
            | ClientError::Api { .. }
            | ClientError::Protocol { .. } => 2,
        }
    }

    /// The API error code, when the daemon sent one.
    pub fn api_code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { body, .. } => Some(body.error.code),
            _ => None,
        }
    }
}

/// The one line shown for an API error: the daemon's message, the field at
/// fault when it is not already named, and how to fix it where the client
/// knows.
fn api_message(status: u16, body: &ErrorBody) -> String {
    let ErrorDetail {
        code,
        message,
        field,
    } = &body.error;
    let mut line = match field {
        Some(f) if !message.contains(f.as_str()) => format!("{f}: {message}"),
        _ => message.clone(),
    };
    match code {
        ErrorCode::QueueFull => {
            // The daemon's own message may already say both halves.
            if !line.contains("queue is full") {
                line = format!("the queue is full: {line}");
            }
            if !line.contains("retry") && !line.contains("try again") {
                line.push_str("; try again later");
            }
        }
        ErrorCode::Unavailable => {
            line = format!("the daemon is unavailable (shutting down or disk trouble): {line}");
            if !line.contains("retry") && !line.contains("try again") {
                line.push_str("; try again later");
            }
        }
        ErrorCode::Unauthorized => line.push_str(" (pass --token or set JOBQ_TOKEN)"),
        ErrorCode::Internal => line = format!("daemon error ({status}): {line}"),
        _ => {}
    }
    line
}

/// Which output of a job to read (`stream=` of `GET /v1/jobs/{id}/output`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputStream {
    /// stdout and stderr interleaved in the order produced.
    #[default]
    All,
    /// Only stdout.
    Stdout,
    /// Only stderr.
    Stderr,
}

impl OutputStream {
    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::All => "all",
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

/// Filters of `GET /v1/jobs`; `None` leaves the daemon's default.
#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    /// Comma-separated state names.
    pub state: Option<String>,
    /// One queue.
    pub queue: Option<String>,
    /// Most jobs in the page.
    pub limit: Option<u32>,
    /// Where the previous page stopped (its `next_cursor`).
    pub cursor: Option<String>,
}

/// A decoded answer together with the JSON it was decoded from, so `--json`
/// can print exactly what the daemon said, including fields this client
/// does not know yet (API.md allows adding fields).
#[derive(Clone, Debug)]
pub struct Reply<T> {
    /// The typed answer.
    pub value: T,
    /// The body as the daemon sent it.
    pub json: serde_json::Value,
}

/// A connection to one daemon. Cheap to clone; reuses connections.
#[derive(Clone)]
pub struct Client {
    /// Carries the timeouts and the connection pool.
    agent: ureq::Agent,
    /// `http://host:port[/prefix]` without a trailing slash; every path is
    /// appended to it.
    base: String,
    /// Sent as `Authorization: Bearer` when set.
    token: Option<String>,
}

/// Hides the token, which is a credential.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl Client {
    /// A client for the daemon at `server` (`http://host:port`; a bare
    /// `host:port` is taken as http, an empty one as [`DEFAULT_SERVER`]).
    /// This build speaks plain HTTP only.
    pub fn new(server: &str, token: Option<String>) -> Result<Client, ClientError> {
        let base = normalize_server(server)?;
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .timeout_write(READ_TIMEOUT)
            .user_agent(concat!("jobq/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent,
            base,
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// The server URL requests go to, as shown in messages.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// `POST /v1/jobs`: the new job (201), or the existing one for a repeated
    /// idempotency key (200).
    pub fn submit(&self, request: &JobRequest) -> Result<Reply<JobView>, ClientError> {
        let req = self.request("POST", "/v1/jobs");
        let resp = self.send(req, Some(request))?;
        self.expect_json(resp, &[200, 201])
    }

    /// `POST /v1/jobs/batch`: every job of `request`, created all or none,
    /// in request order (a repeated idempotency key gives the existing job).
    pub fn submit_batch(
        &self,
        request: &BatchRequest,
    ) -> Result<Reply<BatchResponse>, ClientError> {
        let req = self.request("POST", "/v1/jobs/batch");
        let resp = self.send(req, Some(request))?;
        self.expect_json(resp, &[200, 201])
    }

    /// `GET /v1/queues`: every queue with its limit, pause flag and counts.
    pub fn queues(&self) -> Result<Reply<QueueList>, ClientError> {
        let req = self.request("GET", "/v1/queues");
        let resp = self.send(req, None::<&()>)?;
        self.expect_json(resp, &[200])
    }

    /// `PATCH /v1/queues/{name}`: the queue as it is after the change.
    /// Only the fields `patch` sets are sent: an absent `concurrency` must
    /// not become `null`, which would reset the limit.
    pub fn patch_queue(
        &self,
        name: &str,
        patch: &QueuePatch,
    ) -> Result<Reply<QueueView>, ClientError> {
        let path = format!("/v1/queues/{}", path_segment(name));
        let req = self.request("PATCH", &path);
        let resp = self.send(req, Some(&patch_body(patch)))?;
        self.expect_json(resp, &[200])
    }

    /// `GET /v1/jobs`: one page of jobs, newest first.
    pub fn list(&self, filter: &ListFilter) -> Result<Reply<JobList>, ClientError> {
        let mut req = self.request("GET", "/v1/jobs");
        if let Some(state) = &filter.state {
            req = req.query("state", state);
        }
        if let Some(queue) = &filter.queue {
            req = req.query("queue", queue);
        }
        if let Some(limit) = filter.limit {
            req = req.query("limit", &limit.to_string());
        }
        if let Some(cursor) = &filter.cursor {
            req = req.query("cursor", cursor);
        }
        let resp = self.send(req, None::<&()>)?;
        self.expect_json(resp, &[200])
    }

    /// `GET /v1/jobs/{id}`: the job now.
    pub fn get(&self, id: &str) -> Result<Reply<JobView>, ClientError> {
        let req = self.request("GET", &job_path(id, ""));
        let resp = self.send(req, None::<&()>)?;
        self.expect_json(resp, &[200])
    }

    /// `GET /v1/jobs/{id}?wait=D`: the job as soon as it is terminal, or as it
    /// is after at most `max` (the daemon may answer sooner). Callers loop.
    pub fn wait_poll(&self, id: &str, max: Duration) -> Result<Reply<JobView>, ClientError> {
        // Milliseconds: `parse_duration` reads them, and the value has no
        // spaces (humantime's own format writes "1s 500ms").
        let wait = format!("{}ms", max.as_millis());
        let req = self.request("GET", &job_path(id, "")).query("wait", &wait);
        let resp = self.send(req, None::<&()>)?;
        self.expect_json(resp, &[200])
    }

    /// `POST /v1/jobs/{id}/cancel`: the job, now cancelled or being stopped.
    pub fn cancel(&self, id: &str) -> Result<Reply<JobView>, ClientError> {
        let req = self.request("POST", &job_path(id, "/cancel"));
        let resp = self.send(req, None::<&()>)?;
        self.expect_json(resp, &[200])
    }

    /// `POST /v1/jobs/{id}/retry`: the job, queued again with `attempt` + 1.
    pub fn retry(&self, id: &str) -> Result<Reply<JobView>, ClientError> {
        let req = self.request("POST", &job_path(id, "/retry"));
        let resp = self.send(req, None::<&()>)?;
        self.expect_json(resp, &[200])
    }

    /// `DELETE /v1/jobs/{id}`: forgets a terminal job and its output.
    pub fn remove(&self, id: &str) -> Result<(), ClientError> {
        let req = self.request("DELETE", &job_path(id, ""));
        let resp = self.send(req, None::<&()>)?;
        match resp.status() {
            200 | 204 => Ok(()),
            other => Err(self.protocol(format!("status {other}, expected 204"))),
        }
    }

    /// `GET /v1/jobs/{id}/output`: the output so far, skipping `offset` bytes
    /// of that stream, as a reader so large outputs are streamed, not held.
    /// Read errors from it mean the connection was lost.
    pub fn output(
        &self,
        id: &str,
        stream: OutputStream,
        offset: u64,
    ) -> Result<Box<dyn Read + Send + Sync>, ClientError> {
        let mut req = self
            .request("GET", &job_path(id, "/output"))
            .query("stream", stream.as_str());
        if offset > 0 {
            req = req.query("offset", &offset.to_string());
        }
        let resp = self.send(req, None::<&()>)?;
        if resp.status() != 200 {
            return Err(self.protocol(format!("status {}, expected 200", resp.status())));
        }
        Ok(resp.into_reader())
    }

    /// Turns an error while reading a streamed body (see [`Client::output`])
    /// into the error the CLI reports.
    pub fn read_error(&self, err: &io::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: format!("connection lost: {}", io_reason(err)),
        }
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let req = self.agent.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(token) => req.set("Authorization", &format!("Bearer {token}")),
            None => req,
        }
    }

    /// Sends the request; turns transport failures and error statuses into
    /// [`ClientError`]s, so callers only see 2xx/3xx answers.
    fn send<B: Serialize>(
        &self,
        req: ureq::Request,
        body: Option<&B>,
    ) -> Result<ureq::Response, ClientError> {
        let result = match body {
            Some(body) => req.send_json(body),
            None => req.call(),
        };
        match result {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(status, resp)) => Err(self.api_error(status, resp)),
            Err(ureq::Error::Transport(t)) => Err(self.transport_error(&t)),
        }
    }

    fn api_error(&self, status: u16, resp: ureq::Response) -> ClientError {
        let status_text = resp.status_text().to_owned();
        let mut bytes = Vec::new();
        // An error body is small; cap it so a misbehaving server cannot make
        // the client hold a huge one.
        let _ = resp.into_reader().take(64 * 1024).read_to_end(&mut bytes);
        let body = serde_json::from_slice::<ErrorBody>(&bytes)
            .unwrap_or_else(|_| self.unknown_error_body(status, &status_text, &bytes));
        ClientError::Api { status, body }
    }

    /// An [`ErrorBody`] for an error answer that is not one: a newer
    /// daemon's unknown error code (its message is kept), or not jobq at
    /// all (a proxy's page, another service on the port).
    fn unknown_error_body(&self, status: u16, status_text: &str, bytes: &[u8]) -> ErrorBody {
        let detail = |message: String, field: Option<String>| ErrorBody {
            error: ErrorDetail {
                code: code_for_status(status),
                message,
                field,
            },
        };
        if let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) {
            if let Some(message) = json["error"]["message"].as_str() {
                let field = json["error"]["field"].as_str().map(str::to_owned);
                return detail(message.to_owned(), field);
            }
        }
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        let mut message = format!("HTTP {status} {status_text}");
        if !text.is_empty() && text.len() <= 200 && !text.contains('\n') {
            message = format!("{message}: {text}");
        }
        detail(
            format!(
                "{message} from {} (not a jobq answer; is --server right?)",
                self.base
            ),
            None,
        )
    }

    fn transport_error(&self, t: &ureq::Transport) -> ClientError {
        use ureq::ErrorKind as K;
        match t.kind() {
            K::InvalidUrl | K::UnknownScheme => ClientError::InvalidServer {
                url: self.base.clone(),
                reason: t.message().unwrap_or("not a usable URL").to_lowercase(),
            },
            K::BadStatus | K::BadHeader | K::TooManyRedirects => self.protocol(transport_reason(t)),
            _ => ClientError::Unreachable {
                url: self.base.clone(),
                reason: transport_reason(t),
            },
        }
    }

    fn protocol(&self, detail: String) -> ClientError {
        ClientError::Protocol {
            url: self.base.clone(),
            detail,
        }
    }

    /// Checks the status and decodes the JSON body as `T`, keeping the JSON.
    fn expect_json<T: DeserializeOwned>(
        &self,
        resp: ureq::Response,
        ok: &[u16],
    ) -> Result<Reply<T>, ClientError> {
        let status = resp.status();
        if !ok.contains(&status) {
            return Err(self.protocol(format!("status {status}, expected {ok:?}")));
        }
        let mut bytes = Vec::new();
        resp.into_reader()
            .read_to_end(&mut bytes)
            .map_err(|e| self.read_error(&e))?;
        let json: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| self.protocol(format!("the body is not JSON ({e})")))?;
        let value = serde_path_to_error::deserialize(&json)
            .map_err(|e| self.protocol(format!("at `{}`: {}", e.path(), e.inner())))?;
        Ok(Reply { value, json })
    }
}

/// `/v1/jobs/{id}{rest}`. Ids are UUIDs (the CLI checks them), so they need
/// no escaping; anything else is escaped so it cannot change the path.
fn job_path(id: &str, rest: &str) -> String {
    format!("/v1/jobs/{}{rest}", path_segment(id))
}

/// `s` percent-encoded so it stays one path segment: everything but
/// unreserved characters is escaped.
fn path_segment(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            escaped.push(b as char);
        } else {
            escaped.push_str(&format!("%{b:02X}"));
        }
    }
    escaped
}

/// The JSON of a queue patch with only the fields it sets. `QueuePatch`'s
/// own serialization writes an absent `concurrency` as `null`, which the
/// daemon reads as "back to the configured limit"; pausing a queue must not
/// do that.
fn patch_body(patch: &QueuePatch) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    if let Some(concurrency) = patch.concurrency {
        body.insert("concurrency".into(), serde_json::json!(concurrency));
    }
    if let Some(paused) = patch.paused {
        body.insert("paused".into(), serde_json::json!(paused));
    }
    serde_json::Value::Object(body)
}

/// Checks `--server` and strips the trailing slash.
fn normalize_server(server: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidServer {
        url: server.to_owned(),
        reason: reason.to_owned(),
    };
    let trimmed = server.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        // `JOBQ_SERVER=` is how people unset it in a shell line.
        return Ok(DEFAULT_SERVER.to_owned());
    }
    let url = match trimmed.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() => trimmed.to_owned(),
        Some(("https", _)) => {
            return Err(invalid(
                "this jobq speaks plain http only; use an http:// URL (a TLS proxy in front of the daemon can add https)",
            ))
        }
        Some(_) => return Err(invalid("not an http URL such as http://127.0.0.1:7711")),
        None => format!("http://{trimmed}"),
    };
    if url.contains(char::is_whitespace) {
        return Err(invalid("a URL cannot contain spaces"));
    }
    Ok(url)
}

/// The API code a status implies, for error answers without an API body.
fn code_for_status(status: u16) -> ErrorCode {
    match status {
        400 => ErrorCode::InvalidField,
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::Forbidden,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::Conflict,
        413 => ErrorCode::PayloadTooLarge,
        429 => ErrorCode::QueueFull,
        503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// A transport failure in a few lowercase words, from the underlying I/O
/// error where there is one (`connection refused`), not ureq's wording.
fn transport_reason(t: &ureq::Transport) -> String {
    if t.kind() == ureq::ErrorKind::Dns {
        return "cannot resolve the host name".to_owned();
    }
    let mut source = std::error::Error::source(t);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        source = err.source();
    }
    match t.kind() {
        ureq::ErrorKind::ConnectionFailed => "connection failed".to_owned(),
        _ => match t.message() {
            Some(m) => m.to_lowercase(),
            None => t.kind().to_string().to_lowercase(),
        },
    }
}

/// An I/O error in a few lowercase words, without the `(os error N)` tail;
/// also used by the CLI for its own file errors.
pub(crate) fn io_reason(err: &io::Error) -> String {
    use io::ErrorKind as K;
    match err.kind() {
        K::ConnectionRefused => "connection refused".to_owned(),
        K::ConnectionReset => "connection reset".to_owned(),
        K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe => "connection closed".to_owned(),
        K::TimedOut | K::WouldBlock => "timed out".to_owned(),
        _ => {
            let text = err.to_string();
            let text = match text.find(" (os error") {
                Some(i) => &text[..i],
                None => &text,
            };
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => "i/o error".to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Answers one request with `status` and `body` and hands back the
    /// request line and headers.
    fn one_shot(
        status: &'static str,
        body: &'static str,
    ) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            reader.read_line(&mut first).unwrap();
            let mut headers = String::new();
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
                headers.push_str(&line);
            }
            let mut request_body = vec![0; len];
            reader.read_exact(&mut request_body).unwrap();
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            (&stream).write_all(response.as_bytes()).unwrap();
            format!("{first}{headers}")
        });
        (url, handle)
    }

    #[test]
    fn refused_connection_is_unreachable_with_exit_3() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let err = client.get("x").unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert_eq!(
            err.to_string(),
            format!("cannot reach jobq at http://127.0.0.1:{port}: connection refused")
        );
    }

    #[test]
    fn api_errors_carry_the_daemons_message() {
        let (url, server) = one_shot(
            "409 Conflict",
            r#"{"error":{"code":"conflict","message":"job is running; cannot delete"}}"#,
        );
        let client = Client::new(&url, Some("s3cret".into())).unwrap();
        let err = client.remove("abc").unwrap_err();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("DELETE /v1/jobs/abc HTTP/1.1"),
            "{request}"
        );
        assert!(
            request.contains("Authorization: Bearer s3cret"),
            "{request}"
        );
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.api_code(), Some(ErrorCode::Conflict));
        assert_eq!(err.to_string(), "job is running; cannot delete");
    }

    #[test]
    fn queue_full_says_so() {
        let (url, server) = one_shot(
            "429 Too Many Requests",
            r#"{"error":{"code":"queue_full","message":"10000 jobs are waiting"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.submit(&JobRequest::default()).unwrap_err();
        server.join().unwrap();
        assert!(err.to_string().starts_with("the queue is full: "), "{err}");
    }

    #[test]
    fn queue_full_is_not_said_twice() {
        let (url, server) = one_shot(
            "429 Too Many Requests",
            r#"{"error":{"code":"queue_full","message":"the queue is full: 5 jobs wait to start (config max_queued = 5); retry later"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.submit(&JobRequest::default()).unwrap_err();
        server.join().unwrap();
        assert_eq!(
            err.to_string(),
            "the queue is full: 5 jobs wait to start (config max_queued = 5); retry later"
        );
    }

    #[test]
    fn unavailable_says_why_and_keeps_the_message() {
        let (url, server) = one_shot(
            "503 Service Unavailable",
            r#"{"error":{"code":"unavailable","message":"jobq is shutting down and accepts no new work"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.queues().unwrap_err();
        server.join().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(
            err.to_string(),
            "the daemon is unavailable (shutting down or disk trouble): \
             jobq is shutting down and accepts no new work; try again later"
        );
    }

    #[test]
    fn a_queue_patch_sends_only_what_it_sets() {
        let pause = QueuePatch {
            paused: Some(true),
            ..QueuePatch::default()
        };
        assert_eq!(patch_body(&pause), serde_json::json!({"paused": true}));
        let reset = QueuePatch {
            concurrency: Some(None),
            ..QueuePatch::default()
        };
        assert_eq!(patch_body(&reset), serde_json::json!({"concurrency": null}));
        let set = QueuePatch {
            concurrency: Some(Some(4)),
            ..QueuePatch::default()
        };
        assert_eq!(patch_body(&set), serde_json::json!({"concurrency": 4}));
    }

    #[test]
    fn queue_names_are_one_path_segment() {
        let (url, server) = one_shot("400 Bad Request", "");
        let client = Client::new(&url, None).unwrap();
        let _ = client.patch_queue("a/b c", &QueuePatch::default());
        let request = server.join().unwrap();
        assert!(
            request.starts_with("PATCH /v1/queues/a%2Fb%20c HTTP/1.1"),
            "{request}"
        );
    }

    #[test]
    fn an_error_without_an_api_body_still_has_a_message() {
        let (url, server) = one_shot("404 Not Found", "");
        let client = Client::new(&url, None).unwrap();
        let err = client.get("abc").unwrap_err();
        server.join().unwrap();
        assert_eq!(err.api_code(), Some(ErrorCode::NotFound));
        assert!(
            err.to_string()
                .starts_with("HTTP 404 Not Found from http://"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_error_code_keeps_the_message() {
        let (url, server) = one_shot(
            "400 Bad Request",
            r#"{"error":{"code":"brand_new","message":"at most 3","field":"widgets"}}"#,
        );
        let client = Client::new(&url, None).unwrap();
        let err = client.get("abc").unwrap_err();
        server.join().unwrap();
        assert_eq!(err.to_string(), "widgets: at most 3");
    }

    #[test]
    fn wait_poll_asks_for_a_long_poll_in_milliseconds() {
        let (url, server) = one_shot("200 OK", "{}");
        let client = Client::new(&url, None).unwrap();
        let err = client
            .wait_poll("abc", Duration::from_millis(1500))
            .unwrap_err();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v1/jobs/abc?wait=1500ms "),
            "{request}"
        );
        // `{}` is not a job: a protocol error naming what is missing.
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("missing field"), "{err}");
    }

    #[test]
    fn server_urls_are_normalized() {
        assert_eq!(normalize_server("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(
            normalize_server("127.0.0.1:7711").unwrap(),
            "http://127.0.0.1:7711"
        );
        assert!(normalize_server("https://h").is_err());
        assert!(normalize_server("ftp://h").is_err());
        assert_eq!(normalize_server("").unwrap(), DEFAULT_SERVER);
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(job_path("a/../b", "/cancel"), "/v1/jobs/a%2F..%2Fb/cancel");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new(DEFAULT_SERVER, Some("s3cret".into())).unwrap();
        assert!(!format!("{client:?}").contains("s3cret"));
    }
}
