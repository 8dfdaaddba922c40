//! The local status server of SPEC §9, on `--local-api` (default 127.0.0.1:4317):
//! `GET /healthz` → `ok`; `GET /v1/status` → `{ok: true, data: snapshot}`; `GET /v1/status/ui`
//! (and `/`, `/ui`) → a page a person reads at a glance; `GET /metrics` → Prometheus text;
//! anything else → a 404 JSON envelope. Read-only, no auth: it binds loopback by default and
//! says nothing secret (a token appears only as whether it is set).
//!
//! - [`snapshot`]: the one typed snapshot behind `/v1/status`, the page and `/metrics`.
//! - [`page`]: the HTML page, rendered on the server from the snapshot; it reloads itself.
//! - [`metrics`]: the snapshot as Prometheus gauges and counters.

pub mod metrics;
pub mod page;
pub mod snapshot;

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use control_worker::core::error::ApiError;
use control_worker::core::http::{ApiRequest, ApiResponse};
use shared::ErrorCode;
use tokio::net::TcpListener;

use crate::runner::{wall_ms, Runner};
use snapshot::{ConductorStatus, EmbeddedStatus, StatusSnapshot};

/// What the status server shows: the conductor's last published part and the runner's live
/// one.
pub struct StatusBoard {
    pub conductor: RefCell<ConductorStatus>,
    pub runner: Runner,
    /// Facts fixed at start (the embedded control plane, its URLs).
    pub embedded: EmbeddedStatus,
}

impl StatusBoard {
    pub fn snapshot(&self) -> StatusSnapshot {
        let mut conductor = self.conductor.borrow().clone();
        let runner = self.runner.snapshot();
        // The runner's warnings (a full disk) join the configuration's.
        conductor.warnings.extend(runner.warnings.iter().cloned());
        StatusSnapshot { conductor, runner, now_ms: wall_ms(), embedded: self.embedded.clone() }
    }
}

pub fn handle(board: &StatusBoard, request: &ApiRequest) -> ApiResponse {
    let request_id = format!("status-{}", wall_ms());
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    match (get, request.path.as_str()) {
        (true, "/healthz") => ApiResponse::text(200, "ok", &request_id),
        (true, "/v1/status") => ApiResponse::success(200, &request_id, &board.snapshot()),
        (true, "/v1/status/ui" | "/ui" | "/") => {
            ApiResponse::content(200, "text/html; charset=utf-8", page::render(&board.snapshot()).into_bytes(), &request_id)
        }
        (true, "/metrics") => ApiResponse::content(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(&board.snapshot()).into_bytes(),
            &request_id,
        ),
        _ => ApiResponse::failure(
            &request_id,
            ApiError::new(ErrorCode::RouteNotFound, format!("no route {} {} on the status server", request.method, request.path)),
        ),
    }
}

/// Serves the board until `shutdown` resolves. Must run inside a `LocalSet`.
pub async fn serve(listener: TcpListener, board: Rc<StatusBoard>, shutdown: impl Future<Output = ()>) {
    let handler = move |request: ApiRequest| {
        let board = board.clone();
        async move { handle(&board, &request) }
    };
    // The status server answers GETs only: no body is worth reading.
    let screen = |_head: ApiRequest, _declared_length: Option<u64>| async { Ok(0) };
    control_worker::native::serve_with(listener, handler, screen, control_worker::native::ServerLimits::default(), false, shutdown).await
}
