//! The native HTTP/1.1 server: hyper on a single-threaded tokio runtime. The core's futures are
//! not `Send` (D1's are not either), so connections run as local tasks; SQLite serialises writes
//! anyway, and each statement takes microseconds.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::core::clock::{Clock, Random};
use crate::core::config::Config;
use crate::core::http::{ApiRequest, ApiResponse};
use crate::core::Core;
use crate::native::SqliteDb;

/// Bodies larger than every route's limit are not read to the end.
const READ_LIMIT: usize = shared::routes::UPLOAD_BODY_LIMIT;

pub struct ServerOptions {
    pub listen: SocketAddr,
    pub db_path: PathBuf,
    pub config: Config,
    /// Write one access log line per request to stderr.
    pub access_log: bool,
}

impl ServerOptions {
    /// A server on a free loopback port, without access log: what tests and benchmarks run.
    pub fn loopback(db_path: PathBuf, config: Config) -> ServerOptions {
        ServerOptions { listen: SocketAddr::from(([127, 0, 0, 1], 0)), db_path, config, access_log: false }
    }
}

async fn read_request(request: hyper::Request<Incoming>) -> Result<ApiRequest, hyper::Error> {
    let (parts, mut body) = request.into_parts();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            bytes.extend_from_slice(&data);
            if bytes.len() > READ_LIMIT {
                break;
            }
        }
    }
    Ok(ApiRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: bytes,
    })
}

fn to_hyper(response: ApiResponse) -> hyper::Response<Full<Bytes>> {
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

/// Serves `core` on `listener` until `shutdown` resolves; then stops accepting and gives
/// requests in flight up to two seconds. Must run inside a `LocalSet`.
pub async fn serve<C, R>(listener: TcpListener, core: Rc<Core<SqliteDb, C, R>>, access_log: bool, shutdown: impl Future<Output = ()>)
where
    C: Clock + 'static,
    R: Random + 'static,
{
    let handler = move |request: ApiRequest| {
        let core = core.clone();
        async move { core.handle(request).await }
    };
    serve_with(listener, handler, access_log, shutdown).await
}

/// Serves any `handler` from `ApiRequest` to `ApiResponse` over HTTP/1.1 with keep-alive, the
/// same way: the control plane here, the node agent's status server too. Must run inside a
/// `LocalSet`.
pub async fn serve_with<H, F>(listener: TcpListener, handler: H, access_log: bool, shutdown: impl Future<Output = ()>)
where
    H: Fn(ApiRequest) -> F + 'static,
    F: Future<Output = ApiResponse> + 'static,
{
    let handler = Rc::new(handler);
    let in_flight = Rc::new(std::cell::Cell::new(0usize));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let in_flight = in_flight.clone();
                tokio::task::spawn_local(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let handler = handler.clone();
                        let in_flight = in_flight.clone();
                        async move {
                            in_flight.set(in_flight.get() + 1);
                            let started = Instant::now();
                            let method = request.method().as_str().to_string();
                            let path = request.uri().path().to_string();
                            let response = match read_request(request).await {
                                Ok(request) => handler(request).await,
                                Err(_) => ApiResponse::text(400, "could not read the request body", "none"),
                            };
                            if access_log {
                                log_line(&method, &path, &response, started);
                            }
                            in_flight.set(in_flight.get() - 1);
                            Ok::<_, Infallible>(to_hyper(response))
                        }
                    });
                    let _ = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
                });
            }
        }
    }
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(2);
    while in_flight.get() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server running on its own thread; stops when [`RunningServer::stop`] is called or it is
/// dropped.
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl RunningServer {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Opens the database (migrating it), binds `options.listen` and serves on a new thread.
pub fn start_in_thread<C, R>(options: ServerOptions, clock: C, random: R) -> Result<RunningServer, String>
where
    C: Clock + Send + 'static,
    R: Random + Send + 'static,
{
    let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("control-local".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = ready_tx.send(Err(format!("starting the runtime: {error}")));
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, async move {
                let db = match SqliteDb::open(&options.db_path) {
                    Ok(db) => db,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("opening {}: {error}", options.db_path.display())));
                        return;
                    }
                };
                let listener = match TcpListener::bind(options.listen).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("binding {}: {error}", options.listen)));
                        return;
                    }
                };
                let addr = listener.local_addr().unwrap_or(options.listen);
                let _ = ready_tx.send(Ok(addr));
                let core = Rc::new(Core::new(db, clock, random, options.config));
                serve(listener, core, options.access_log, async {
                    let _ = shutdown_rx.await;
                })
                .await;
            });
        })
        .map_err(|error| format!("spawning the server thread: {error}"))?;
    let addr = ready_rx.recv().map_err(|_| "the server thread ended before it was ready".to_string())??;
    Ok(RunningServer { addr, shutdown: Some(shutdown_tx), thread: Some(thread) })
}
