//! A typed, blocking HTTP client for the daemon's API (API.md), used by the
//! CLI's client commands and usable by tests.
//!
//! This module is the only code that names ureq. It turns every answer into
//! either a value of the shared wire types of [`crate::api`] or a
//! [`ClientError`] that says whether the daemon could not be reached, refused
//! the request, or said something this client does not understand; the CLI
//! maps those to exit codes and one-line messages. It prints nothing itself.
//!
//! Streamed answers (followed output, the event stream) are handed out as
//! readers and iterators over one request; reconnecting after a lost
//! connection is the caller's policy, not this module's. Their requests go
//! through a second agent without a read timeout: a followed job or a
//! waited-for one may say nothing for hours. The Server-Sent Events parser
//! is [`sse`], at the end of this file.

use std::io::{self, BufReader, Read};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::{
    BatchRequest, BatchResponse, ErrorBody, ErrorCode, ErrorDetail, JobEvent, JobList, JobRequest,
    JobView, QueueList, Upload,
};
use crate::engine::{QueuePatch, QueueView};

/// API.md's default address, as a URL.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7711";

/// How long to wait for a TCP connection: the daemon is usually on the same
/// host, so a connection that takes longer than this is not going to happen.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one read or write of an ordinary request may stall before the
/// daemon is taken as hung. Generous: an answer may wait for an fsync of a
/// large upload. Streamed answers have no read timeout (see the module
/// doc).
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

/// Filters of `GET /v1/events`; `None` leaves that filter out.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    /// Only this job's events; the stream then starts with its current
    /// state.
    pub job: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
}

/// One event of the job event stream ([`Client::events`]).
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// A job changed state (`event: job`).
    Job {
        /// The event, decoded.
        event: JobEvent,
        /// Its JSON as the daemon sent it (one line), for `--json`.
        data: String,
    },
    /// The stream fell too far behind and the daemon cut it
    /// (`event: lagged`); the daemon's message. Nothing follows.
    Lagged(String),
}

/// An open `GET /v1/events` stream, read one event at a time.
pub struct EventStream {
    /// The SSE body.
    sse: sse::Reader<BufReader<Box<dyn Read + Send + Sync>>>,
    /// The server URL, for errors.
    base: String,
}

impl EventStream {
    /// The next job event, or `None` once the daemon ended the stream
    /// (which it does only when shutting down, or after
    /// [`StreamEvent::Lagged`]). Events this client does not know are
    /// skipped. A lost connection is [`ClientError::Unreachable`]; so is a
    /// read cut by the deadline given to [`Client::events`].
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, ClientError> {
        loop {
            let event = match self.sse.next_event() {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Unreachable {
                        url: self.base.clone(),
                        reason: format!("connection lost: {}", io_reason(&e)),
                    })
                }
            };
            match event.event.as_str() {
                "job" => {
                    let job = serde_json::from_str::<serde_json::Value>(&event.data)
                        .map_err(|e| e.to_string())
                        .and_then(|json| {
                            serde_path_to_error::deserialize::<_, JobEvent>(json)
                                .map_err(|e| format!("at `{}`: {}", e.path(), e.inner()))
                        });
                    return match job {
                        Ok(job) => Ok(Some(StreamEvent::Job {
                            event: job,
                            data: event.data,
                        })),
                        Err(detail) => Err(ClientError::Protocol {
                            url: self.base.clone(),
                            detail: format!("a job event that is not one: {detail}"),
                        }),
                    };
                }
                "lagged" => return Ok(Some(StreamEvent::Lagged(lagged_message(&event.data)))),
                _ => continue,
            }
        }
    }
}

/// The message of an `event: lagged`, whose data is `{"message": "…"}`.
fn lagged_message(data: &str) -> String {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|json| json["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "the event stream fell too far behind and was cut".to_owned())
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
    /// The same without a read timeout, for streamed answers.
    stream_agent: ureq::Agent,
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
        let builder = || {
            ureq::AgentBuilder::new()
                .timeout_connect(CONNECT_TIMEOUT)
                .timeout_write(READ_TIMEOUT)
                .user_agent(concat!("jobq/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Client {
            agent: builder().timeout_read(READ_TIMEOUT).build(),
            stream_agent: builder().build(),
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
        self.read_output(
            self.request("GET", &job_path(id, "/output")),
            stream,
            offset,
        )
    }

    /// `GET /v1/jobs/{id}/output?follow=true`: the output from `offset`
    /// bytes of that stream on, then each new piece as the job writes it;
    /// the reader ends once the job is terminal and everything is sent.
    ///
    /// The reader also ends, without an error, if the connection is lost in
    /// the middle of a chunk: ureq cannot tell that from the end. Callers
    /// check that the job is terminal (and read what may be left with
    /// [`Client::output`]) before they believe an end.
    pub fn follow_output(
        &self,
        id: &str,
        stream: OutputStream,
        offset: u64,
    ) -> Result<Box<dyn Read + Send + Sync>, ClientError> {
        let req = self
            .stream_request("GET", &job_path(id, "/output"))
            .query("follow", "true");
        self.read_output(req, stream, offset)
    }

    /// Sends an output request (`req`, plain or follow) for `stream` from
    /// `offset` and hands back the body.
    fn read_output(
        &self,
        req: ureq::Request,
        stream: OutputStream,
        offset: u64,
    ) -> Result<Box<dyn Read + Send + Sync>, ClientError> {
        let mut req = req.query("stream", stream.as_str());
        if offset > 0 {
            req = req.query("offset", &offset.to_string());
        }
        let resp = self.send(req, None::<&()>)?;
        if resp.status() != 200 {
            return Err(self.protocol(format!("status {}, expected 200", resp.status())));
        }
        Ok(resp.into_reader())
    }

    /// `GET /v1/events`: the stream of job state changes that `query`
    /// selects. With `deadline`, every read fails (as
    /// [`ClientError::Unreachable`], "timed out") once it has passed;
    /// without, the stream may stay quiet for as long as nothing happens.
    pub fn events(
        &self,
        query: &EventQuery,
        deadline: Option<Instant>,
    ) -> Result<EventStream, ClientError> {
        let mut req = self
            .stream_request("GET", "/v1/events")
            .set("Accept", "text/event-stream");
        if let Some(job) = &query.job {
            req = req.query("job", job);
        }
        if let Some(queue) = &query.queue {
            req = req.query("queue", queue);
        }
        if let Some(deadline) = deadline {
            req = req.timeout(deadline.saturating_duration_since(Instant::now()));
        }
        let resp = self.send(req, None::<&()>)?;
        if resp.status() != 200 {
            return Err(self.protocol(format!("status {}, expected 200", resp.status())));
        }
        if resp.content_type() != "text/event-stream" {
            return Err(self.protocol(format!(
                "content type {:?}, expected text/event-stream",
                resp.content_type()
            )));
        }
        Ok(EventStream {
            sse: sse::Reader::new(BufReader::new(resp.into_reader())),
            base: self.base.clone(),
        })
    }

    /// `POST /v1/uploads`: sends `body` as it is read (its `len` when known,
    /// else chunked) and answers the upload's id for a job's
    /// `stdin_upload`. The bytes are never all in memory here.
    pub fn upload(&self, body: impl Read, len: Option<u64>) -> Result<Reply<Upload>, ClientError> {
        let mut req = self
            .request("POST", "/v1/uploads")
            .set("Content-Type", "application/octet-stream");
        if let Some(len) = len {
            req = req.set("Content-Length", &len.to_string());
        }
        let resp = self.answer(req.send(body))?;
        self.expect_json(resp, &[200, 201])
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
        self.authorized(self.agent.request(method, &format!("{}{path}", self.base)))
    }

    /// A request whose answer is streamed: no read timeout.
    fn stream_request(&self, method: &str, path: &str) -> ureq::Request {
        let url = format!("{}{path}", self.base);
        self.authorized(self.stream_agent.request(method, &url))
    }

    fn authorized(&self, req: ureq::Request) -> ureq::Request {
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
        self.answer(match body {
            Some(body) => req.send_json(body),
            None => req.call(),
        })
    }

    /// [`Client::send`]'s mapping of an outcome to a response or an error.
    fn answer(
        &self,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<ureq::Response, ClientError> {
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
        one_shot_with(status, "", body)
    }

    /// [`one_shot`] with extra response `headers` (each ending in CRLF).
    /// A chunked request body is read to its end and not kept.
    fn one_shot_with(
        status: &'static str,
        extra: &'static str,
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
            if headers.contains("Transfer-Encoding: chunked") {
                skip_chunked(&mut reader);
            }
            let response = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            (&stream).write_all(response.as_bytes()).unwrap();
            format!("{first}{headers}")
        });
        (url, handle)
    }

    /// Reads a chunked body to its last chunk.
    fn skip_chunked(reader: &mut impl BufRead) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                return;
            }
        }
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
    fn events_asks_for_one_job_and_decodes_its_events() {
        let (url, server) = one_shot_with(
            "200 OK",
            "Content-Type: text/event-stream\r\n",
            ": hello\n\n\
             event: job\n\
             data: {\"id\":\"abc\",\"state\":\"failed\",\"queue\":\"q\",\"attempt\":2,\
             \"at\":\"2025-01-02T03:04:05Z\",\"exit_code\":3,\"signal\":null,\
             \"reason\":\"exit\",\"exit\":3}\n\n\
             event: brand_new\ndata: {}\n\n\
             event: lagged\ndata: {\"message\":\"too slow\"}\n\n",
        );
        let client = Client::new(&url, None).unwrap();
        let query = EventQuery {
            job: Some("abc".into()),
            queue: None,
        };
        let mut stream = client.events(&query, None).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /v1/events?job=abc "), "{request}");
        assert!(request.contains("Accept: text/event-stream"), "{request}");
        match stream.next_event().unwrap() {
            Some(StreamEvent::Job { event, data }) => {
                assert_eq!(event.id, "abc");
                assert_eq!(event.state, crate::job::StateName::Failed);
                assert_eq!(event.attempt, 2);
                assert_eq!(event.exit, Some(3));
                assert!(data.starts_with("{\"id\":\"abc\""), "{data}");
            }
            other => panic!("expected a job event, got {other:?}"),
        }
        assert_eq!(
            stream.next_event().unwrap(),
            Some(StreamEvent::Lagged("too slow".into()))
        );
        assert_eq!(stream.next_event().unwrap(), None);
    }

    #[test]
    fn events_refuse_an_answer_that_is_not_a_stream() {
        let (url, server) = one_shot("200 OK", "{}");
        let client = Client::new(&url, None).unwrap();
        let err = client.events(&EventQuery::default(), None).err().unwrap();
        server.join().unwrap();
        assert!(matches!(err, ClientError::Protocol { .. }), "{err}");
    }

    #[test]
    fn follow_output_asks_to_follow_from_the_offset() {
        let (url, server) = one_shot("200 OK", "tail");
        let client = Client::new(&url, None).unwrap();
        let mut body = client
            .follow_output("abc", OutputStream::Stderr, 42)
            .unwrap();
        let mut text = String::new();
        body.read_to_string(&mut text).unwrap();
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /v1/jobs/abc/output?follow=true&stream=stderr&offset=42 "),
            "{request}"
        );
        assert_eq!(text, "tail");
    }

    #[test]
    fn an_upload_streams_its_body() {
        let (url, server) = one_shot("201 Created", r#"{"upload":"u1","bytes":3}"#);
        let client = Client::new(&url, None).unwrap();
        let reply = client.upload(&b"\x00\xff\n"[..], None).unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /v1/uploads "), "{request}");
        assert!(request.contains("Transfer-Encoding: chunked"), "{request}");
        assert_eq!(reply.value.upload, "u1");
        assert_eq!(reply.value.bytes, 3);
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

/// A blocking reader of Server-Sent Events (the WHATWG `text/event-stream`
/// format) over any [`BufRead`](std::io::BufRead): `event:`, `data:` (several
/// lines joined with `\n`), `id:` (kept across events, as the last event
/// id), comments (`:`), dispatch on a blank line. `retry:` and unknown
/// fields are ignored; lines end with LF or CRLF (a lone CR, which the
/// format also allows and the daemon never sends, is not a line end here).
pub mod sse {
    use std::io::{self, BufRead};

    /// Longest line accepted, so a broken peer cannot make the reader hold
    /// unbounded memory; the daemon's lines are small JSON.
    pub const MAX_LINE: usize = 4 * 1024 * 1024;

    /// One dispatched event.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Event {
        /// Its type: the `event:` field, `message` when there was none.
        pub event: String,
        /// Its `data:` lines joined with `\n`.
        pub data: String,
        /// The last event id seen so far (`id:`, this event's or an
        /// earlier one's), as a resumption point.
        pub id: Option<String>,
    }

    /// Reads events one at a time from a byte stream.
    #[derive(Debug)]
    pub struct Reader<R> {
        /// The stream.
        inner: R,
        /// The last `id:` seen.
        last_id: Option<String>,
        /// Whether the first line was read (a byte order mark may precede
        /// it).
        started: bool,
    }

    impl<R: BufRead> Reader<R> {
        /// A reader of the events of `inner`.
        pub fn new(inner: R) -> Reader<R> {
            Reader {
                inner,
                last_id: None,
                started: false,
            }
        }

        /// The next event, or `None` at the end of the stream (an event not
        /// ended by a blank line is dropped, as the format says).
        pub fn next_event(&mut self) -> io::Result<Option<Event>> {
            let mut event = String::new();
            let mut data = String::new();
            let mut line = Vec::new();
            loop {
                if !self.read_line(&mut line)? {
                    return Ok(None);
                }
                if line.is_empty() {
                    if data.is_empty() {
                        event.clear();
                        continue;
                    }
                    data.pop(); // the `\n` after the last data line
                    return Ok(Some(Event {
                        event: if event.is_empty() {
                            "message".to_owned()
                        } else {
                            event
                        },
                        data,
                        id: self.last_id.clone(),
                    }));
                }
                if line[0] == b':' {
                    continue;
                }
                let text = String::from_utf8_lossy(&line);
                let (field, value) = match text.split_once(':') {
                    Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                    None => (text.as_ref(), ""),
                };
                match field {
                    "event" => event = value.to_owned(),
                    "data" => {
                        data.push_str(value);
                        data.push('\n');
                    }
                    "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
                    _ => {}
                }
            }
        }

        /// Reads one line into `line` without its end; false at the end of
        /// the stream.
        fn read_line(&mut self, line: &mut Vec<u8>) -> io::Result<bool> {
            line.clear();
            loop {
                let buf = match self.inner.fill_buf() {
                    Ok(buf) => buf,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if buf.is_empty() {
                    // A last line without its end is no line: the event it
                    // belongs to was cut off anyway.
                    return Ok(false);
                }
                let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                line.extend_from_slice(&buf[..take]);
                self.inner.consume(take);
                if line.len() > MAX_LINE + 2 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("an event stream line is longer than {MAX_LINE} bytes"),
                    ));
                }
                if done {
                    break;
                }
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if !self.started {
                self.started = true;
                if line.starts_with("\u{feff}".as_bytes()) {
                    line.drain(..3);
                }
            }
            Ok(true)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn events(text: &str) -> Vec<Event> {
            let mut reader = Reader::new(text.as_bytes());
            let mut all = Vec::new();
            while let Some(event) = reader.next_event().unwrap() {
                all.push(event);
            }
            all
        }

        fn event(event: &str, data: &str, id: Option<&str>) -> Event {
            Event {
                event: event.into(),
                data: data.into(),
                id: id.map(str::to_owned),
            }
        }

        #[test]
        fn fields_comments_and_dispatch() {
            let got = events(
                ": a comment\n\
                 event: stdout\nid: 5\ndata: aGVsbG8=\n\n\
                 data: first\ndata:second\ndata\n\n\
                 retry: 3000\nunknown: x\nevent: end\ndata: {\"exit\":3}\n\n",
            );
            assert_eq!(
                got,
                [
                    event("stdout", "aGVsbG8=", Some("5")),
                    event("message", "first\nsecond\n", Some("5")),
                    event("end", "{\"exit\":3}", Some("5")),
                ]
            );
        }

        #[test]
        fn crlf_bom_and_only_one_leading_space() {
            let got = events("\u{feff}event: job\r\ndata:  two spaces\r\n\r\n");
            assert_eq!(got, [event("job", " two spaces", None)]);
        }

        #[test]
        fn no_data_no_event_and_the_type_does_not_leak() {
            let got = events("event: a\n\ndata: x\n\nevent: b\ndata:\n\n");
            assert_eq!(got, [event("message", "x", None), event("b", "", None)]);
        }

        #[test]
        fn an_unfinished_event_at_the_end_is_dropped() {
            assert_eq!(events("event: job\ndata: {\n"), []);
            assert_eq!(events("data: x\n\ndata: y"), [event("message", "x", None)]);
        }

        #[test]
        fn an_empty_id_resets_and_a_nul_id_is_ignored() {
            let got = events("id: 7\ndata: a\n\nid: 8\0\ndata: b\n\nid\ndata: c\n\n");
            assert_eq!(
                got,
                [
                    event("message", "a", Some("7")),
                    event("message", "b", Some("7")),
                    event("message", "c", Some("")),
                ]
            );
        }

        #[test]
        fn events_split_across_reads() {
            // One byte at a time, as a slow network might deliver them.
            struct Trickle<'a>(&'a [u8]);
            impl io::Read for Trickle<'_> {
                fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                    let n = self.0.len().min(1).min(buf.len());
                    buf[..n].copy_from_slice(&self.0[..n]);
                    self.0 = &self.0[n..];
                    Ok(n)
                }
            }
            let text = b"event: job\ndata: {\"a\":1}\n\n";
            let mut reader = Reader::new(io::BufReader::with_capacity(3, Trickle(text)));
            assert_eq!(
                reader.next_event().unwrap(),
                Some(event("job", "{\"a\":1}", None))
            );
            assert_eq!(reader.next_event().unwrap(), None);
        }

        #[test]
        fn an_endless_line_is_an_error() {
            let long = "d".repeat(MAX_LINE + 10);
            let mut reader = Reader::new(io::BufReader::new(long.as_bytes()));
            let err = reader.next_event().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
    }
}
