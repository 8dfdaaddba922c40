//! The platform-free control plane: `Core::handle(ApiRequest) -> ApiResponse`.
//!
//! - [`db`]: the SQL-level storage trait (query / batch) and its values and rows.
//! - [`blobs`]: the object-storage port beside it (put / ranged get / delete / list).
//! - [`clock`]: the `Clock` and `Random` traits, a manual clock, id generation.
//! - [`config`]: configuration read from env-style names (Worker env or process env).
//! - [`auth`]: bearer token → principal; node-bound tokens; constant-time comparison.
//! - [`http`]: request/response values, envelope, request ids, CORS.
//! - [`input`]: validating field reader (errors name the field and the rule).
//! - [`error`]: `ApiError`, the one error type.
//! - [`records`]: column lists and row decoders.
//! - [`controllers`], [`lease`], [`tasks`], [`steps`], [`reap`], [`system`]: the handlers and
//!   their SQL.
//! - [`planning`]: the leader's claim and plan of tasks, fenced by term.
//! - [`cards`]: a task's card fields (key, dependencies, write scope, review) at creation.
//! - [`review`]: approve and reject of a task in review, audited.
//! - [`report`]: a task's report in the card's sections, and as markdown.
//! - [`diff`]: a task's branch as a diff against its base (the runner's `branch_diff`).
//! - [`timeline`]: the runs of a time window on every host (`runs.list`), for the console.
//! - [`sync`]: `agents.sync`, one batch carrying what those handlers do for one agent tick.
//! - [`run_reports`]: what a runner reports about its runs: validation and statements shared
//!   by the step routes and `agents.sync`; [`run_uploads`]: its checkpoints and log chunks.
//! - [`grants`]: a host's claim of ready steps (`steps.claim`, and the grant of a sync).
//! - [`retry`]: the pure retry policy for failed and lost step attempts.
//! - [`settle`]: the statements that settle failed and lost attempts by that policy, in one batch.
//! - [`events`]: the event feed (written by triggers), and the leader notifier's part in a sync.
//! - [`quota`]: usage limits: accounts parked until their reset, steps waiting for them.
//! - [`waiting`]: why a queued task or a ready step is not moving, from the scheduler's facts.
//! - [`rounds`]: agent rounds: the next round's steps after a failed acceptance step or a
//!   reviewer's reject with retry.
//! - [`console`]: the admin console page and script, served at `/`.
//! - [`log_object`]: the format of a compacted stream (gzip members, a block index).
//! - [`log_pages`]: `tasks.logs`: one page across live rows and compacted objects.
//! - [`compaction`]: one finished run's output into objects, verified before its rows go.
//! - [`maintenance`]: storage upkeep in bounded slices: compaction, retention (SPEC §17).
//!
//! The core knows neither `worker` nor `rusqlite`, reads no clock and does no I/O except
//! through the `Db` and `Blobs` traits: that is what lets it run unchanged in the Worker and natively.

pub mod auth;
pub mod blobs;
pub mod cards;
pub mod clock;
pub mod compaction;
pub mod config;
pub mod console;
pub mod controllers;
pub mod db;
pub mod diff;
pub mod error;
pub mod events;
pub mod grants;
pub mod http;
pub mod input;
pub mod lease;
pub mod log_object;
pub mod log_pages;
pub mod maintenance;
pub mod planning;
pub mod quota;
pub mod reap;
pub mod records;
pub mod report;
pub mod retry;
pub mod review;
pub mod rounds;
pub mod run_reports;
pub mod run_uploads;
pub mod settle;
pub mod steps;
pub mod sync;
pub mod system;
pub mod tasks;
pub mod timeline;
pub mod waiting;

use serde::Serialize;
use serde_json::{Map, Value};
use shared::routes::{resolve, PathParams, Resolution, Route};
use shared::{Action, ErrorCode};

use self::auth::{authenticate, Principal};
use self::blobs::Blobs;
use self::clock::{new_id, Clock, Random};
use self::config::Config;
use self::db::Db;
use self::error::{ApiError, ApiResult};
use self::http::{cors_headers, preflight_headers, sanitize_request_id, ApiRequest, ApiResponse};

/// The control plane over one database, object store, clock and source of randomness.
pub struct Core<D, C, R, B> {
    pub db: D,
    pub blobs: B,
    pub clock: C,
    pub random: R,
    pub config: Config,
}

/// One authenticated call of a route, as handlers see it.
pub struct Call<'r> {
    pub request: &'r ApiRequest,
    pub route: &'static Route,
    pub params: PathParams,
    pub principal: Principal,
    pub request_id: String,
    pub now: i64,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_str()).unwrap_or("")
    }

    /// The JSON object body. Routes whose every field is optional accept an empty body.
    /// A field the route does not know (SPEC §18) is refused before the handler reads any.
    pub fn body(&self, empty_allowed: bool) -> ApiResult<Map<String, Value>> {
        let body = input::parse_object(&self.request.body, empty_allowed)?;
        shared::body_fields::check(self.route.action, &body).map_err(|unknown| ApiError::unknown_field(&unknown.field, &unknown.rule))?;
        Ok(body)
    }
}

/// A handler's successful answer.
pub struct Reply {
    pub status: u16,
    pub data: Value,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn with_status(status: u16, data: &impl Serialize) -> ApiResult<Reply> {
        let data = serde_json::to_value(data).map_err(|error| ApiError::internal(format!("serialising reply: {error}")))?;
        Ok(Reply { status, data, headers: Vec::new() })
    }

    pub fn ok(data: &impl Serialize) -> ApiResult<Reply> {
        Self::with_status(200, data)
    }
}

impl<D: Db, C: Clock, R: Random, B: Blobs> Core<D, C, R, B> {
    pub fn new(db: D, blobs: B, clock: C, random: R, config: Config) -> Self {
        Core { db, blobs, clock, random, config }
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn new_id(&self, prefix: &str) -> String {
        new_id(prefix, self.clock.now(), &self.random)
    }

    /// Answers one request. Never fails: every fault becomes an error envelope.
    pub async fn handle(&self, request: ApiRequest) -> ApiResponse {
        let request_id = self.request_id(&request);
        let cors = cors_headers(&self.config, request.header("origin"));
        let cors_allowed = !cors.is_empty();
        let mut response = self.answer(&request, &request_id, cors_allowed).await;
        response.headers.extend(cors);
        response
    }

    /// The caller's sanitised `x-request-id`, or a new one.
    pub fn request_id(&self, request: &ApiRequest) -> String {
        request.header("x-request-id").and_then(sanitize_request_id).unwrap_or_else(|| self.new_id("req"))
    }

    /// What can be decided from the head of a request (its body not yet read, `declared_length`
    /// from `content-length`): `Ok(limit)` to read the body, up to `limit` bytes, then call
    /// [`Core::handle`]; `Err(answer)` to answer at once without reading it — a request that
    /// needs no body (health, the console, preflight, an unknown route or method), or one
    /// refused by its token, role or declared size. Nobody's body is buffered before their
    /// token is checked.
    pub async fn screen(&self, head: &ApiRequest, declared_length: Option<u64>) -> Result<usize, ApiResponse> {
        let route = match resolve(&head.method, &head.path) {
            Resolution::Found(route, _) if head.path != "/healthz" => route,
            _ => return Err(self.handle(head.clone()).await),
        };
        let refusal = match self.admit_head(head, route) {
            Err(error) => Some(error),
            Ok(_) if declared_length.is_some_and(|length| length > route.body_limit as u64) => Some(too_large(route)),
            Ok(_) => None,
        };
        match refusal {
            None => Ok(route.body_limit),
            Some(error) => {
                let request_id = self.request_id(head);
                let mut response = ApiResponse::failure(&request_id, error.with_detail("route_id", route.id));
                response.headers.extend(cors_headers(&self.config, head.header("origin")));
                Err(response)
            }
        }
    }

    async fn answer(&self, request: &ApiRequest, request_id: &str, cors_allowed: bool) -> ApiResponse {
        // Methods are case-sensitive (RFC 9110): `get` is no GET.
        let method = request.method.clone();
        if request.path == "/healthz" {
            return match method.as_str() {
                "GET" | "HEAD" => ApiResponse::text(200, "ok", request_id),
                "OPTIONS" => self.preflight(request_id, "GET", cors_allowed),
                _ => ApiResponse::failure(request_id, method_not_allowed("GET")),
            };
        }
        if let Some(page) = console::answer(&method, &request.path, request_id) {
            return page;
        }
        if method == "OPTIONS" {
            return match resolve("OPTIONS", &request.path) {
                Resolution::MethodNotAllowed(methods) => {
                    let allow: Vec<&str> = methods.iter().map(|method| method.as_str()).collect();
                    self.preflight(request_id, &allow.join(", "), cors_allowed)
                }
                _ => ApiResponse::failure(request_id, route_not_found(&request.path)),
            };
        }
        match resolve(&method, &request.path) {
            Resolution::NotFound => ApiResponse::failure(request_id, route_not_found(&request.path)),
            Resolution::MethodNotAllowed(methods) => {
                let allow: Vec<&str> = methods.iter().map(|method| method.as_str()).collect();
                ApiResponse::failure(request_id, method_not_allowed(&allow.join(", ")))
            }
            Resolution::Found(route, params) => {
                let outcome = match self.admit(request, route) {
                    Ok(principal) => {
                        let call = Call { request, route, params, principal, request_id: request_id.to_string(), now: self.clock.now() };
                        self.dispatch(&call).await
                    }
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(reply) => {
                        let mut response = ApiResponse::success(reply.status, request_id, &reply.data);
                        response.headers.extend(reply.headers);
                        response
                    }
                    Err(error) => ApiResponse::failure(request_id, error.with_detail("route_id", route.id)),
                }
            }
        }
    }

    fn preflight(&self, request_id: &str, methods: &str, cors_allowed: bool) -> ApiResponse {
        let mut response = ApiResponse { status: 204, request_id: request_id.to_string(), ..ApiResponse::default() };
        response.headers.push(("x-request-id".into(), request_id.to_string()));
        response.headers.push(("allow".into(), format!("{methods}, OPTIONS")));
        if cors_allowed {
            response.headers.extend(preflight_headers(&format!("{methods}, OPTIONS")));
        }
        response
    }

    /// Auth and role: what the head of a request decides.
    fn admit_head(&self, request: &ApiRequest, route: &'static Route) -> ApiResult<Principal> {
        let authorization_headers = request.headers.iter().filter(|(name, _)| name.eq_ignore_ascii_case("authorization")).count();
        if authorization_headers > 1 {
            return Err(ApiError::new(ErrorCode::InvalidAuthorizationHeader, "send one Authorization header, not several")
                .with_status(400)
                .with_field("Authorization"));
        }
        let principal = authenticate(&self.config, request.header("authorization"))?;
        if !principal.may_call_route(route) {
            let allowed: Vec<&str> = route.roles.iter().map(|role| role.as_str()).collect();
            let joiner = if route.every_role { " and " } else { ", " };
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!("this token may not call {}; roles needed: {}", route.id, allowed.join(joiner)),
            ));
        }
        Ok(principal)
    }

    /// Auth, role, body size and media type: everything checked before a handler runs.
    fn admit(&self, request: &ApiRequest, route: &'static Route) -> ApiResult<Principal> {
        let principal = self.admit_head(request, route)?;
        if request.body.len() > route.body_limit {
            return Err(too_large(route));
        }
        if !request.body.iter().all(u8::is_ascii_whitespace) {
            let content_type = request.header("content-type").unwrap_or("");
            let media_type = content_type.split(';').next().unwrap_or("").trim();
            if !media_type.eq_ignore_ascii_case("application/json") {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "request bodies must be sent as content-type: application/json",
                ));
            }
        }
        Ok(principal)
    }

    async fn dispatch(&self, call: &Call<'_>) -> ApiResult<Reply> {
        match call.route.action {
            Action::ControllersHeartbeat => controllers::heartbeat(self, call).await,
            Action::ControllersList => controllers::list(self, call).await,
            Action::LeaderAcquire => lease::acquire(self, call).await,
            Action::LeaderRelease => lease::release(self, call).await,
            Action::TasksCreate => tasks::create(self, call).await,
            Action::TasksList => tasks::list(self, call).await,
            Action::TasksRead => tasks::read(self, call).await,
            Action::TasksCancel => tasks::cancel(self, call).await,
            Action::TasksApprove => review::approve(self, call).await,
            Action::TasksReject => review::reject(self, call).await,
            Action::TasksReport => report::read(self, call).await,
            Action::TasksDiff => diff::read(self, call).await,
            Action::TasksClaim => planning::claim(self, call).await,
            Action::TasksPlan => planning::plan(self, call).await,
            Action::TasksLogsRead => log_pages::read(self, call).await,
            Action::StepsClaim => steps::claim(self, call).await,
            Action::StepsHeartbeat => steps::heartbeat(self, call).await,
            Action::StepsCheckpoint => steps::checkpoint(self, call).await,
            Action::StepsLogs => steps::logs(self, call).await,
            Action::StepsComplete => steps::complete(self, call).await,
            Action::StepsFail => steps::fail(self, call).await,
            Action::StepsReap => reap::reap(self, call).await,
            Action::RunsRead => steps::read_run(self, call).await,
            Action::RunsList => timeline::list(self, call).await,
            Action::SystemPause => system::change_mode(self, call, shared::status::SystemMode::Paused).await,
            Action::SystemResume => system::change_mode(self, call, shared::status::SystemMode::Running).await,
            Action::SystemDrain => system::change_mode(self, call, shared::status::SystemMode::Draining).await,
            Action::SystemState => system::state(self, call).await,
            Action::SystemMaintain => maintenance::maintain_now(self, call).await,
            Action::AccountsResume => quota::resume(self, call).await,
            Action::EventsList => events::list(self, call).await,
            Action::AgentsSync => sync::sync(self, call).await,
        }
    }
}

fn too_large(route: &Route) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, format!("the request body exceeds the {} byte limit of {}", route.body_limit, route.id))
        .with_detail("limit_bytes", route.body_limit as u64)
}

fn route_not_found(path: &str) -> ApiError {
    let shown = auth::shown(path);
    ApiError::new(ErrorCode::RouteNotFound, format!("no route matches {shown}")).with_detail("path", shown)
}

fn method_not_allowed(allow: &str) -> ApiError {
    let mut error = ApiError::new(ErrorCode::MethodNotAllowed, format!("this path answers only: {allow}"));
    error.allow = Some(allow.to_string());
    error
}
