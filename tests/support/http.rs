//! HTTP to the daemon under test: every request through one client that
//! takes any status as an answer, the [`Reply`] and [`Streamed`] answers,
//! and [`assert_error`] for docs/api.md's error bodies.

use super::*;

/// A request's answer: the status and the raw body, whatever the status.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, if any.
    pub location: Option<String>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// Every header, names lowercase, in the order they came.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first value of header `name` (any case), if it came.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON: `null` for an empty body, and a string saying what
    /// came instead for a body that is not JSON, so an assertion on a field
    /// fails showing the body.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            Value::String(format!(
                "<not JSON ({e}): {}>",
                String::from_utf8_lossy(&self.body)
            ))
        })
    }
}

/// Parses a job from JSON, failing the test with the JSON when it is not one.
pub fn job_from(value: &Value) -> JobView {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a job as docs/api.md describes it ({e}): {value}"))
}

/// Percent-encodes a query value (cursors are opaque and may hold any
/// byte), as the client does.
pub fn encode(s: &str) -> String {
    jobq::client::percent_encode(s)
}

/// Asserts that a reply is an docs/api.md error: `status`, `error.code` and, when
/// given, `error.field`; also that `error.message` is a non-empty sentence.
#[track_caller]
pub fn assert_error(
    status: u16,
    body: &Value,
    want_status: u16,
    want_code: &str,
    want_field: Option<&str>,
) {
    assert_eq!(status, want_status, "status; body: {body}");
    assert_eq!(body["error"]["code"], want_code, "error.code; body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message should be a sentence; body: {body}"
    );
    if let Some(field) = want_field {
        assert_eq!(body["error"]["field"], field, "error.field; body: {body}");
    }
}

/// An HTTP client for tests: answers of any status are answers, not
/// errors; `timeout` bounds a whole request, body included; `keep_alive`
/// off gives every request a connection of its own.
pub fn agent(timeout: Duration, keep_alive: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout));
    if !keep_alive {
        config = config.max_idle_connections(0);
    }
    config.build().new_agent()
}

/// A response header as text.
fn header(resp: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A [`Reply`] from what ureq returned (4xx/5xx answers included), or why
/// there was no answer.
fn reply_of(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> Result<Reply, String> {
    let resp = result.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let location = header(&resp, "Location");
    let content_type = header(&resp, "Content-Type");
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("{what}: reading the body: {e}"))?;
    Ok(Reply {
        status,
        location,
        content_type,
        headers,
        body,
    })
}

/// A streamed answer ([`TestDaemon::open_stream`]): the head, and the body
/// still to be read as it arrives.
pub struct Streamed {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Transfer-Encoding` header, if any.
    pub transfer_encoding: Option<String>,
    /// The body, decoded from chunked transfer encoding; each read is bounded
    /// by what is left of [`STREAM_TIMEOUT`].
    pub body: Box<dyn Read + Send + 'static>,
    /// The request, for messages.
    pub what: String,
}

impl Streamed {
    /// Fails the test unless the answer is 200 with `content_type` (showing
    /// the body of an error), and returns it.
    #[track_caller]
    pub fn expect_ok(self, content_type: &str) -> Streamed {
        if self.status != 200 {
            let what = self.what.clone();
            let status = self.status;
            panic!("{what} answered {status}: {}", self.json());
        }
        assert!(
            self.content_type
                .as_deref()
                .is_some_and(|t| t.starts_with(content_type)),
            "{}: Content-Type {:?}, expected {content_type}",
            self.what,
            self.content_type
        );
        self
    }

    /// The body read to its end (the stream closed), failing the test if it
    /// does not end within [`STREAM_TIMEOUT`].
    #[track_caller]
    pub fn read_all(mut self) -> Vec<u8> {
        let mut buf = Vec::new();
        if let Err(e) = self.body.read_to_end(&mut buf) {
            panic!(
                "{}: reading the body to its end failed after {} bytes: {e}",
                self.what,
                buf.len()
            );
        }
        buf
    }

    /// The body as JSON (an error answer), or a string saying what it was.
    pub fn json(mut self) -> Value {
        let mut body = Vec::new();
        if let Err(e) = self.body.read_to_end(&mut body) {
            let what = &self.what;
            body.extend_from_slice(format!("<{what}: reading the body failed: {e}>").as_bytes());
        }
        Reply {
            status: self.status,
            location: None,
            content_type: self.content_type,
            headers: Vec::new(),
            body,
        }
        .json()
    }

    /// The body as Server-Sent Events.
    pub fn sse(self) -> SseReader {
        SseReader::new(self.what, self.body)
    }
}

impl TestDaemon {
    fn call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        self.try_call(agent, method, path, headers, body)
            .unwrap_or_else(|e| panic!("{method} {path}: no HTTP answer: {e}"))
    }

    /// Sends a request (with this daemon's token, unless `headers` name
    /// `Authorization`); `Err` only when no HTTP answer came at all.
    pub(super) fn try_call(
        &self,
        agent: &ureq::Agent,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Result<Reply, String> {
        let req = self.request(method, path, headers);
        let what = format!("{method} {path}");
        let result = match body {
            Some((content_type, bytes)) => {
                let req = req
                    .header("Content-Type", content_type)
                    .body(bytes.to_vec())
                    .map_err(|e| e.to_string())?;
                agent.run(req)
            }
            None => agent.run(req.body(()).map_err(|e| e.to_string())?),
        };
        reply_of(result, &what)
    }

    /// A request to this daemon with its token and `headers`, body still to
    /// be given.
    fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> ureq::http::request::Builder {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.at(path));
        let own_auth = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if let (Some(token), false) = (&self.token, own_auth) {
            req = req.header("Authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            // An empty `Authorization` sends none: a request without
            // credentials from a test whose daemon has a token.
            if !(value.is_empty() && name.eq_ignore_ascii_case("authorization")) {
                req = req.header(*name, *value);
            }
        }
        req
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url())
    }

    /// Any request, with extra headers (an `Authorization` header replaces
    /// the daemon's token; an empty one sends none), any status, read in
    /// full.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Reply {
        self.call(&self.agent, method, path, headers, body)
    }

    /// `GET path`, any status.
    pub fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], None)
    }

    /// `GET path` → (status, JSON body).
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let reply = self.get(path);
        (reply.status, reply.json())
    }

    /// `GET path` → (status, body bytes).
    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let reply = self.get(path);
        (reply.status, reply.body)
    }

    /// `POST path` with a JSON body, any status.
    pub fn post(&self, path: &str, body: &Value) -> Reply {
        let bytes = serde_json::to_vec(body).expect("serialize");
        self.post_raw(path, "application/json", &bytes)
    }

    /// `POST path` with a JSON body → (status, JSON body).
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let reply = self.post(path, body);
        (reply.status, reply.json())
    }

    /// `POST path` without a body, as the actions (`cancel`, `retry`) take.
    pub fn post_empty(&self, path: &str) -> (u16, Value) {
        let reply = self.send("POST", path, &[], None);
        (reply.status, reply.json())
    }

    /// `POST path` with any bytes on a connection of its own, closed after
    /// the answer: for requests the daemon may answer before reading the
    /// body (413), after which the connection's state is not this test's
    /// concern (see `http::keep_alive_*` for that).
    pub fn post_raw_alone(&self, path: &str, content_type: &str, bytes: &[u8]) -> Reply {
        let agent = agent(HTTP_TIMEOUT, false);
        self.call(&agent, "POST", path, &[], Some((content_type, bytes)))
    }

    /// `POST path` with any bytes, for bodies that are not valid requests.
    pub fn post_raw(&self, path: &str, content_type: &str, bytes: &[u8]) -> Reply {
        self.send("POST", path, &[], Some((content_type, bytes)))
    }

    /// `POST /v1/uploads` with the bytes of `file` as the body, streamed
    /// from the file (with its `Content-Length`), on a connection of its own.
    pub fn upload_file(&self, file: &Path) -> Reply {
        let len = fs::metadata(file).expect("stat upload file").len();
        let body = File::open(file).expect("open upload file");
        let agent = agent(HTTP_TIMEOUT, false);
        let req = self
            .request("POST", "/v1/uploads", &[])
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", len.to_string())
            .body(ureq::SendBody::from_owned_reader(body))
            .expect("a request");
        let what = format!("POST /v1/uploads ({len} bytes)");
        reply_of(agent.run(req), &what).unwrap_or_else(|e| panic!("{what}: no HTTP answer: {e}"))
    }

    /// `PATCH path` with a JSON body → (status, JSON body).
    pub fn patch_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).expect("serialize");
        let reply = self.send("PATCH", path, &[], Some(("application/json", &bytes)));
        (reply.status, reply.json())
    }

    /// `DELETE path` → (status, JSON body, `null` when empty).
    pub fn delete(&self, path: &str) -> (u16, Value) {
        let reply = self.send("DELETE", path, &[], None);
        (reply.status, reply.json())
    }

    /// The response headers of `GET path` with extra request `headers`,
    /// names lowercase.
    pub fn head(&self, path: &str, headers: &[(&str, &str)]) -> BTreeMap<String, String> {
        let req = self
            .request("GET", path, headers)
            .body(())
            .expect("a request");
        let resp = self
            .agent
            .run(req)
            .unwrap_or_else(|e| panic!("GET {path}: no HTTP answer: {e}"));
        resp.headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// `GET path` with extra request headers, any status, read in full.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.send("GET", path, headers, None)
    }

    /// Opens `GET path` with extra request headers and hands back the body
    /// as it arrives, unread: for followed output, SSE and `/v1/events`,
    /// which stay open while the job runs (or for ever). The whole request,
    /// body included, is bounded by [`STREAM_TIMEOUT`], so a stream that
    /// never ends fails the test instead of hanging it.
    pub fn open_stream(&self, path: &str, headers: &[(&str, &str)]) -> Streamed {
        let agent = agent(STREAM_TIMEOUT, false);
        let what = format!("GET {path}");
        let req = self
            .request("GET", path, headers)
            .body(())
            .expect("a request");
        let resp = agent
            .run(req)
            .unwrap_or_else(|e| panic!("{what}: no HTTP answer: {e}"));
        Streamed {
            status: resp.status().as_u16(),
            content_type: header(&resp, "Content-Type"),
            transfer_encoding: header(&resp, "Transfer-Encoding"),
            body: Box::new(resp.into_body().into_reader()),
            what,
        }
    }

    /// `GET /v1/jobs/{id}/output?follow=true&{query}` read to its end,
    /// failing unless it is 200: the followed output, raw.
    pub fn follow_raw(&self, id: &str, query: &str) -> Vec<u8> {
        let s = self.open_stream(&format!("/v1/jobs/{id}/output?follow=true&{query}"), &[]);
        s.expect_ok("application/octet-stream").read_all()
    }

    /// `GET /v1/jobs/{id}/output?{query}` as SSE, failing unless it is 200.
    pub fn follow_sse(&self, id: &str, query: &str, last_event_id: Option<&str>) -> SseReader {
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(last) = last_event_id {
            headers.push(("Last-Event-ID", last));
        }
        self.open_stream(&format!("/v1/jobs/{id}/output?{query}"), &headers)
            .expect_ok("text/event-stream")
            .sse()
    }

    /// `GET /v1/events?{query}`, failing unless it is 200.
    pub fn events(&self, query: &str) -> SseReader {
        self.open_stream(&format!("/v1/events?{query}"), &[])
            .expect_ok("text/event-stream")
            .sse()
    }
}
