//! One connection of the native server: hyper's HTTP/1.1 over a watched stream, with the
//! limits of [`ServerLimits`] enforced around it. A connection is closed when its headers take
//! longer than the header timeout, when it has sat idle past the idle timeout, when a body
//! falls behind the minimum rate, or when the server at its connection cap evicts it (it has
//! no request in progress); a request is screened from its head (route, token, declared size)
//! before any of its body is read, and a connection whose body was left unread lingers
//! ([`super::linger`]) so the client reads its answer.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use shared::ErrorCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::limits::{ServerLimits, MAX_HEADERS, MAX_HEAD_BYTES, PARSED_HEADERS};
use crate::core::error::ApiError;
use crate::core::http::{sanitize_request_id, ApiRequest, ApiResponse};

/// What the watchdog, and the accept loop at the connection cap, need to know of a connection.
pub(super) struct Activity {
    /// A request is being answered.
    busy: Cell<bool>,
    /// Since when nothing has been asked (the connection opened, or its last answer was made).
    idle_since: Cell<Instant>,
    /// When the first byte of the next request's head arrived, while the head is being read.
    head_started: Cell<Option<Instant>>,
    /// Requests answered so far: 0 for a connection that has sent nothing.
    served: Cell<u64>,
    /// The last answer left its request's body unread: close by lingering.
    body_unread: Cell<bool>,
    /// Closed by the accept loop to make room at the cap.
    evicted: Cell<bool>,
    changed: Notify,
}

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            busy: Cell::new(false),
            idle_since: Cell::new(Instant::now()),
            head_started: Cell::new(None),
            served: Cell::new(0),
            body_unread: Cell::new(false),
            evicted: Cell::new(false),
            changed: Notify::new(),
        }
    }

    /// How readily the connection gives up its place at the cap, lowest first: one that has
    /// sent nothing since it opened, then one idle between requests, the longest idle first;
    /// `None` while a request is read or answered.
    pub(super) fn eviction_rank(&self) -> Option<(bool, Instant)> {
        (!self.busy.get() && self.head_started.get().is_none() && !self.evicted.get())
            .then(|| (self.served.get() > 0, self.idle_since.get()))
    }

    /// Closes the connection at its next look (at once: it is waiting for a request).
    pub(super) fn evict(&self) {
        self.evicted.set(true);
        self.changed.notify_one();
    }

    /// When the connection is to be closed if nothing changes; `None` while a request is being
    /// answered (its body has its own deadline).
    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        if self.busy.get() {
            return None;
        }
        Some(match self.head_started.get() {
            Some(started) => started + limits.header_timeout,
            None => self.idle_since.get() + limits.idle_timeout,
        })
    }

    fn begin_request(&self) {
        self.busy.set(true);
        self.head_started.set(None);
    }

    fn end_request(&self) {
        self.busy.set(false);
        self.served.set(self.served.get() + 1);
        self.idle_since.set(Instant::now());
        self.changed.notify_one();
    }
}

/// The TCP stream, noting when a new request's first bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Rc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        let activity = &self.activity;
        if buf.filled().len() > before && !activity.busy.get() && activity.head_started.get().is_none() {
            activity.head_started.set(Some(Instant::now()));
            activity.changed.notify_one();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A request id for the server's own answers, when the caller sent none.
pub(super) fn server_request_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis());
    format!("srv-{millis:x}-{:x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The server's own refusal as an envelope, closing the connection.
pub(super) fn refusal(request_id: Option<&str>, code: ErrorCode, message: &str) -> ApiResponse {
    let request_id = request_id.and_then(sanitize_request_id).unwrap_or_else(server_request_id);
    let mut response = ApiResponse::failure(&request_id, ApiError::new(code, message));
    response.headers.push(("connection".into(), "close".into()));
    response
}

pub(super) fn to_hyper(response: ApiResponse) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(response.status);
    for (name, value) in &response.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Full::new(Bytes::from(response.body))).unwrap_or_else(|_| {
        let mut fallback = hyper::Response::new(Full::new(Bytes::from_static(b"internal error")));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

enum BodyError {
    Malformed(String),
    TooSlow,
}

/// The body, up to `limit + 1` bytes (one more than allowed, so the handler can tell it was
/// too large), within the body deadline.
async fn read_body(mut body: Incoming, limit: usize, limits: &ServerLimits) -> Result<Vec<u8>, BodyError> {
    let started = Instant::now();
    let mut bytes = Vec::new();
    loop {
        let deadline = limits.body_deadline(started, bytes.len() as u64);
        match tokio::time::timeout_at(deadline.into(), body.frame()).await {
            Err(_) => return Err(BodyError::TooSlow),
            Ok(None) => return Ok(bytes),
            Ok(Some(Err(error))) => return Err(BodyError::Malformed(error.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() > limit {
                        return Ok(bytes);
                    }
                }
            }
        }
    }
}

fn head_of(parts: &hyper::http::request::Parts) -> ApiRequest {
    ApiRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: Vec::new(),
    }
}

/// Answers one request: screened from its head, then its body read and the handler called.
async fn answer<H, F, S, G>(
    request: hyper::Request<Incoming>,
    handler: &H,
    screen: &S,
    limits: &ServerLimits,
    activity: &Activity,
) -> ApiResponse
where
    H: Fn(ApiRequest) -> F,
    F: Future<Output = ApiResponse>,
    S: Fn(ApiRequest, Option<u64>) -> G,
    G: Future<Output = Result<usize, ApiResponse>>,
{
    let (parts, body) = request.into_parts();
    let mut head = head_of(&parts);
    let request_id = head.header("x-request-id").map(str::to_string);
    if head.headers.len() > MAX_HEADERS {
        let message = format!("a request may carry at most {MAX_HEADERS} headers");
        return refusal(request_id.as_deref(), ErrorCode::RequestHeaderFieldsTooLarge, &message);
    }
    let declared = head.header("content-length").and_then(|length| length.trim().parse::<u64>().ok());
    let has_body = declared.is_some_and(|length| length > 0) || head.header("transfer-encoding").is_some();
    let limit = match screen(head.clone(), declared).await {
        Ok(limit) => limit,
        Err(mut response) => {
            // The body was never read: the connection cannot carry another request.
            if has_body {
                response.headers.push(("connection".into(), "close".into()));
                activity.body_unread.set(true);
            }
            return response;
        }
    };
    match read_body(body, limit, limits).await {
        Ok(bytes) => {
            let too_large = bytes.len() > limit;
            head.body = bytes;
            let mut response = handler(head).await;
            if too_large {
                response.headers.push(("connection".into(), "close".into()));
                activity.body_unread.set(true);
            }
            response
        }
        Err(BodyError::Malformed(reason)) => {
            refusal(request_id.as_deref(), ErrorCode::InvalidRequest, &format!("the request body could not be read: {reason}"))
        }
        Err(BodyError::TooSlow) => refusal(
            request_id.as_deref(),
            ErrorCode::RequestTimeout,
            &format!(
                "the request body arrived too slowly: allowed {} s plus a second per {} bytes",
                limits.body_timeout.as_secs(),
                limits.body_min_bytes_per_sec
            ),
        ),
    }
}

/// One access log line per request.
fn log_line(method: &str, path: &str, response: &ApiResponse, started: Instant) {
    let shown_path: String = path.chars().take(200).collect();
    eprintln!(
        "{} {} {} {:.1}ms request_id={}{}",
        method,
        shown_path,
        response.status,
        started.elapsed().as_secs_f64() * 1000.0,
        response.request_id,
        response.log_note.as_deref().map(|note| format!(" fault={note:?}")).unwrap_or_default(),
    );
}

/// Serves one connection until the client closes it or a limit does. `in_flight` counts the
/// requests being answered (for a graceful stop).
pub(super) async fn serve_connection<H, F, S, G>(
    stream: TcpStream,
    activity: Rc<Activity>,
    handler: Rc<H>,
    screen: Rc<S>,
    limits: Rc<ServerLimits>,
    access_log: bool,
    in_flight: Rc<Cell<usize>>,
) where
    H: Fn(ApiRequest) -> F + 'static,
    F: Future<Output = ApiResponse> + 'static,
    S: Fn(ApiRequest, Option<u64>) -> G + 'static,
    G: Future<Output = Result<usize, ApiResponse>> + 'static,
{
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(Watched { stream, activity: activity.clone() });
    let service_activity = activity.clone();
    let service_limits = limits.clone();
    let service = service_fn(move |request: hyper::Request<Incoming>| {
        let (handler, screen, limits, activity, in_flight) =
            (handler.clone(), screen.clone(), service_limits.clone(), service_activity.clone(), in_flight.clone());
        async move {
            activity.begin_request();
            in_flight.set(in_flight.get() + 1);
            let started = Instant::now();
            let (method, path) = (request.method().as_str().to_string(), request.uri().path().to_string());
            let response = answer(request, &*handler, &*screen, &limits, &activity).await;
            if access_log {
                log_line(&method, &path, &response, started);
            }
            in_flight.set(in_flight.get() - 1);
            activity.end_request();
            Ok::<_, Infallible>(to_hyper(response))
        }
    });
    let connection = http1::Builder::new()
        .keep_alive(true)
        .max_headers(PARSED_HEADERS)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(io, service)
        .without_shutdown();
    tokio::pin!(connection);
    loop {
        let deadline = activity.deadline(&limits).unwrap_or_else(|| Instant::now() + Duration::from_secs(3_600));
        tokio::select! {
            ended = &mut connection => {
                // Only the socket lingers: hyper's buffers and the service go here.
                let unread = match ended {
                    Ok(parts) if activity.body_unread.get() => Some(parts.io.into_inner().stream),
                    _ => None,
                };
                if let Some(stream) = unread {
                    super::linger::linger(stream, || activity.evicted.get()).await;
                }
                return;
            }
            _ = activity.changed.notified() => {
                if activity.evicted.get() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => {
                // Dropping the connection closes it: no request is being answered.
                if activity.deadline(&limits).is_some_and(|deadline| deadline <= Instant::now()) {
                    return;
                }
            }
        }
    }
}
