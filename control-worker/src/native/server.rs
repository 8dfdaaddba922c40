//! The native HTTP/1.1 server: hyper on a single-threaded tokio runtime. The core's futures are
//! not `Send` (D1's are not either), so connections run as local tasks; SQLite serialises writes
//! anyway, and each statement takes microseconds. The accept loop here caps the connections and
//! backs off when the process runs out of file descriptors; [`super::connection`] serves each
//! connection within [`ServerLimits`].
//!
//! At the cap, a new connection is not refused while another sits idle: the accept loop closes
//! the connection that has sent nothing for longest (then the longest-idle keep-alive one) and
//! takes the new one, as Envoy's overload manager shrinks idle timeouts near its limit. Sockets
//! opened and left silent can no longer hold the server's places until their idle timeout.

use std::cell::Cell;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use shared::ErrorCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::connection::{refusal, serve_connection, Activity};
use super::limits::ServerLimits;
use crate::core::clock::{Clock, Random};
use crate::core::config::Config;
use crate::core::http::{ApiRequest, ApiResponse};
use crate::core::Core;
use crate::native::{FileBlobs, SqliteDb};

pub struct ServerOptions {
    pub listen: SocketAddr,
    pub db_path: PathBuf,
    pub config: Config,
    pub limits: ServerLimits,
    /// Write one access log line per request to stderr.
    pub access_log: bool,
    /// Count requests and rows written (the budget benchmark).
    pub meter: Option<std::sync::Arc<super::Meter>>,
}

impl ServerOptions {
    /// A server on a free loopback port, default limits, without access log: what tests and
    /// benchmarks run.
    pub fn loopback(db_path: PathBuf, config: Config) -> ServerOptions {
        ServerOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path,
            config,
            limits: ServerLimits::default(),
            access_log: false,
            meter: None,
        }
    }
}

/// Serves `core` on `listener` until `shutdown` resolves; then stops accepting and gives
/// requests in flight up to two seconds. Every request is screened by the core from its head
/// before its body is read. Must run inside a `LocalSet`.
pub async fn serve<C, R>(
    listener: TcpListener,
    core: Rc<Core<SqliteDb, C, R, FileBlobs>>,
    limits: ServerLimits,
    access_log: bool,
    shutdown: impl Future<Output = ()>,
) where
    C: Clock + 'static,
    R: Random + 'static,
{
    serve_counted(listener, core, limits, access_log, None, shutdown).await
}

/// [`serve`], counting each request by route and the rows its database wrote when a meter is
/// given.
async fn serve_counted<C, R>(
    listener: TcpListener,
    core: Rc<Core<SqliteDb, C, R, FileBlobs>>,
    limits: ServerLimits,
    access_log: bool,
    meter: Option<std::sync::Arc<super::Meter>>,
    shutdown: impl Future<Output = ()>,
) where
    C: Clock + 'static,
    R: Random + 'static,
{
    let handler = {
        let core = core.clone();
        move |request: ApiRequest| {
            let (core, meter) = (core.clone(), meter.clone());
            async move {
                let Some(meter) = meter else { return core.handle(request).await };
                meter.count_request(&request.method, &request.path);
                let before = core.db.total_changes();
                let response = core.handle(request).await;
                meter.count_rows_written(core.db.total_changes().saturating_sub(before));
                response
            }
        }
    };
    let upkeep =
        limits.maintenance_interval.map(|interval| tokio::task::spawn_local(super::upkeep::run_timer(core.clone(), interval, true)));
    let screen = move |head: ApiRequest, declared_length: Option<u64>| {
        let core = core.clone();
        async move { core.screen(&head, declared_length).await }
    };
    serve_with(listener, handler, screen, limits, access_log, shutdown).await;
    if let Some(upkeep) = upkeep {
        upkeep.abort();
    }
}

/// How long the accept loop waits after the `failures`-th accept error in a row (out of file
/// descriptors, most likely): from 10 ms, doubling, at most a second.
fn accept_backoff(failures: u32) -> Duration {
    (Duration::from_millis(10) * 2u32.saturating_pow(failures.saturating_sub(1).min(7))).min(Duration::from_secs(1))
}

/// Answers a connection beyond the cap with a 503 envelope, if the socket takes it at once,
/// and closes it.
fn refuse(stream: TcpStream, max_connections: usize) {
    let response =
        refusal(None, ErrorCode::ServerBusy, &format!("the server is at its limit of {max_connections} connections; retry shortly"));
    let mut bytes = format!("HTTP/1.1 {} Service Unavailable\r\n", response.status).into_bytes();
    for (name, value) in &response.headers {
        let _ = write!(bytes, "{name}: {value}\r\n");
    }
    let _ = write!(bytes, "content-length: {}\r\n\r\n", response.body.len());
    bytes.extend_from_slice(&response.body);
    let _ = stream.try_write(&bytes);
}

/// The open connections, for eviction at the cap.
#[derive(Default)]
struct Connections {
    open: std::cell::RefCell<Vec<Rc<Activity>>>,
    /// Evictions not yet logged, and when the last log line was written (one per 10 s at most).
    unreported: Cell<u64>,
    reported_at: Cell<Option<Instant>>,
}

impl Connections {
    fn count(&self) -> usize {
        self.open.borrow().len()
    }

    fn add(&self) -> Rc<Activity> {
        let activity = Rc::new(Activity::new());
        self.open.borrow_mut().push(activity.clone());
        activity
    }

    fn remove(&self, activity: &Rc<Activity>) {
        self.open.borrow_mut().retain(|open| !Rc::ptr_eq(open, activity));
    }

    /// Evicts the connection most ready to go (see `Activity::eviction_rank`); false when every
    /// one is in the middle of a request.
    fn make_room(&self, max_connections: usize) -> bool {
        let open = self.open.borrow();
        let Some(chosen) =
            open.iter().filter_map(|activity| activity.eviction_rank().map(|rank| (rank, activity))).min_by_key(|(rank, _)| *rank)
        else {
            return false;
        };
        chosen.1.evict();
        self.unreported.set(self.unreported.get() + 1);
        let now = Instant::now();
        if self.reported_at.get().is_none_or(|at| now.duration_since(at) >= Duration::from_secs(10)) {
            eprintln!("at the limit of {max_connections} connections: closed {} idle connection(s) to make room", self.unreported.get());
            self.unreported.set(0);
            self.reported_at.set(Some(now));
        }
        true
    }
}

/// Serves any `handler` from `ApiRequest` to `ApiResponse` over HTTP/1.1 with keep-alive, the
/// same way: the control plane here, the node agent's status server too. `screen` sees each
/// request's head first: `Ok(limit)` reads the body (up to `limit` bytes) for the handler,
/// `Err(answer)` answers without reading it. Must run inside a `LocalSet`.
pub async fn serve_with<H, F, S, G>(
    listener: TcpListener,
    handler: H,
    screen: S,
    limits: ServerLimits,
    access_log: bool,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(ApiRequest) -> F + 'static,
    F: Future<Output = ApiResponse> + 'static,
    S: Fn(ApiRequest, Option<u64>) -> G + 'static,
    G: Future<Output = Result<usize, ApiResponse>> + 'static,
{
    let (handler, screen, limits) = (Rc::new(handler), Rc::new(screen), Rc::new(limits));
    let in_flight = Rc::new(Cell::new(0usize));
    let connections = Rc::new(Connections::default());
    let mut accept_failures = 0u32;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => {
                        accept_failures = 0;
                        stream
                    }
                    Err(error) => {
                        // Retrying at once would spin while the descriptors are gone; each
                        // connection that ends frees one.
                        accept_failures += 1;
                        if accept_failures == 1 || accept_failures.is_multiple_of(100) {
                            eprintln!("accepting a connection failed ({accept_failures} in a row), backing off: {error}");
                        }
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(accept_backoff(accept_failures)) => {}
                        }
                        continue;
                    }
                };
                // An evicted connection leaves the list when its task ends, a moment later.
                if connections.count() >= limits.max_connections && !connections.make_room(limits.max_connections) {
                    refuse(stream, limits.max_connections);
                    continue;
                }
                let activity = connections.add();
                let (handler, screen, limits, in_flight, connections) = (handler.clone(), screen.clone(), limits.clone(), in_flight.clone(), connections.clone());
                tokio::task::spawn_local(async move {
                    serve_connection(stream, activity.clone(), handler, screen, limits, access_log, in_flight).await;
                    connections.remove(&activity);
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

/// Opens the database (migrating it) and the object files beside it, binds `options.listen` and serves on a new thread.
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
                let blobs = FileBlobs::beside(&options.db_path);
                let core = Rc::new(Core::new(db, blobs, clock, random, options.config));
                let shutdown = async {
                    let _ = shutdown_rx.await;
                };
                serve_counted(listener, core, options.limits, options.access_log, options.meter, shutdown).await;
            });
        })
        .map_err(|error| format!("spawning the server thread: {error}"))?;
    let addr = ready_rx.recv().map_err(|_| "the server thread ended before it was ready".to_string())??;
    Ok(RunningServer { addr, shutdown: Some(shutdown_tx), thread: Some(thread) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backs_off_from_ten_milliseconds_to_a_second() {
        assert_eq!(accept_backoff(1), Duration::from_millis(10));
        assert_eq!(accept_backoff(2), Duration::from_millis(20));
        assert_eq!(accept_backoff(50), Duration::from_secs(1));
    }
}
