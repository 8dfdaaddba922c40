//! The route table: the one list of routes of the Control API.
//!
//! Every route has one action id, a method, a path pattern (`:name` segments are parameters),
//! the roles allowed to call it and the largest request body it accepts.

use crate::auth::Role;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }

    pub fn parse(value: &str) -> Option<Method> {
        match value {
            "GET" => Some(Method::Get),
            "POST" => Some(Method::Post),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    ControllersHeartbeat,
    ControllersList,
    LeaderAcquire,
    LeaderRelease,
    TasksCreate,
    TasksList,
    TasksRead,
    TasksCancel,
    TasksApprove,
    TasksReject,
    TasksReport,
    TasksDiff,
    TasksClaim,
    TasksPlan,
    StepsClaim,
    StepsHeartbeat,
    StepsCheckpoint,
    StepsLogs,
    StepsComplete,
    StepsFail,
    StepsReap,
    TasksLogsRead,
    RunsRead,
    RunsList,
    SystemPause,
    SystemResume,
    SystemDrain,
    SystemState,
    SystemMaintain,
    AccountsResume,
    EventsList,
    AgentsSync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub action: Action,
    pub id: &'static str,
    pub method: Method,
    pub path: &'static str,
    pub roles: &'static [Role],
    /// The caller needs every role of `roles`, not one of them (`agents.sync`: a node's
    /// service or node-bound token, controller and worker at once).
    pub every_role: bool,
    pub body_limit: usize,
    pub summary: &'static str,
}

/// Default request body cap.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// Body cap of the log and checkpoint upload routes. D1 rows hold at most 2,000,000 bytes, so
/// one upload's text content is further capped at [`MAX_UPLOAD_CONTENT_BYTES`].
pub const UPLOAD_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Largest checkpoint `content`, and largest sum of log chunk `text` in one `steps.logs` call.
pub const MAX_UPLOAD_CONTENT_BYTES: usize = 1_000_000;

use Role::{BrowserAdmin as BA, Controller as C, OpsAdmin as OA, Readonly as RO, Worker as W};

const ADMIN: &[Role] = &[BA, OA];
const ADMIN_READ: &[Role] = &[BA, OA, RO];
const CONTROLLER: &[Role] = &[C];
const WORKER: &[Role] = &[W];
const NODE: &[Role] = &[C, W];

const fn route(
    action: Action,
    id: &'static str,
    method: Method,
    path: &'static str,
    roles: &'static [Role],
    summary: &'static str,
) -> Route {
    Route { action, id, method, path, roles, every_role: false, body_limit: DEFAULT_BODY_LIMIT, summary }
}

const fn every_role(route: Route) -> Route {
    Route { every_role: true, ..route }
}

const fn upload(route: Route) -> Route {
    Route { body_limit: UPLOAD_BODY_LIMIT, ..route }
}

use Action::*;
use Method::{Get, Post};

pub const ROUTES: &[Route] = &[
    route(
        ControllersHeartbeat,
        "controllers.heartbeat",
        Post,
        "/v1/controllers/heartbeat",
        CONTROLLER,
        "upsert a controller and record its heartbeat",
    ),
    route(ControllersList, "controllers.list", Get, "/v1/controllers", ADMIN_READ, "controllers with last heartbeat and liveness"),
    route(LeaderAcquire, "leader.acquire", Post, "/v1/leader/acquire", CONTROLLER, "acquire or renew the global leader lease"),
    route(LeaderRelease, "leader.release", Post, "/v1/leader/release", CONTROLLER, "graceful step-down by the lease holder"),
    route(TasksCreate, "tasks.create", Post, "/v1/tasks", ADMIN, "create a queued task (Idempotency-Key honoured)"),
    route(TasksList, "tasks.list", Get, "/v1/tasks", ADMIN_READ, "list tasks, filtered by status, cursor-paginated"),
    route(TasksRead, "tasks.read", Get, "/v1/tasks/:task_id", ADMIN_READ, "a task with its steps and runs"),
    route(TasksCancel, "tasks.cancel", Post, "/v1/tasks/:task_id/cancel", ADMIN, "cancel a task; running steps are told to stop"),
    route(TasksApprove, "tasks.approve", Post, "/v1/tasks/:task_id/approve", ADMIN, "approve a task in review: it succeeds"),
    route(
        TasksReport,
        "tasks.report",
        Get,
        "/v1/tasks/:task_id/report",
        ADMIN_READ,
        "a task's report in the card's sections, and as markdown",
    ),
    route(
        TasksDiff,
        "tasks.diff",
        Get,
        "/v1/tasks/:task_id/diff",
        ADMIN_READ,
        "a task's branch as a diff against its base, as its last step that committed left it",
    ),
    route(TasksReject, "tasks.reject", Post, "/v1/tasks/:task_id/reject", ADMIN, "reject a task in review with a reason: it fails"),
    route(TasksClaim, "tasks.claim", Post, "/v1/tasks/claim", CONTROLLER, "the leader claims queued tasks for planning (fenced by term)"),
    route(
        TasksPlan,
        "tasks.plan",
        Post,
        "/v1/tasks/:task_id/plan",
        CONTROLLER,
        "the leader writes a claimed task's steps (fenced by term)",
    ),
    route(StepsClaim, "steps.claim", Post, "/v1/steps/claim", WORKER, "a host's runner claims ready steps"),
    route(
        StepsHeartbeat,
        "steps.heartbeat",
        Post,
        "/v1/steps/:step_id/heartbeat",
        WORKER,
        "extend a step's heartbeat deadline; learn of cancellation",
    ),
    upload(route(StepsCheckpoint, "steps.checkpoint", Post, "/v1/steps/:step_id/checkpoint", WORKER, "upload one checkpoint of a run")),
    upload(route(
        StepsLogs,
        "steps.logs",
        Post,
        "/v1/steps/:step_id/logs",
        WORKER,
        "upload log chunks of a run, idempotent by (run_id, seq)",
    )),
    route(
        StepsComplete,
        "steps.complete",
        Post,
        "/v1/steps/:step_id/complete",
        WORKER,
        "a run finished successfully (idempotent for the same run)",
    ),
    route(StepsFail, "steps.fail", Post, "/v1/steps/:step_id/fail", WORKER, "a run failed; the retry policy requeues or fails the task"),
    route(
        StepsReap,
        "steps.reap",
        Post,
        "/v1/steps/reap",
        CONTROLLER,
        "the leader reaps steps whose heartbeat deadline passed (fenced by term)",
    ),
    route(TasksLogsRead, "tasks.logs.read", Get, "/v1/tasks/:task_id/logs", ADMIN_READ, "log chunks of a task after a cursor"),
    route(RunsRead, "runs.read", Get, "/v1/runs/:run_id", ADMIN_READ, "a run with its checkpoints"),
    route(RunsList, "runs.list", Get, "/v1/runs", ADMIN_READ, "the runs of a time window on every host: the console's fleet timeline"),
    route(SystemPause, "system.pause", Post, "/v1/system/pause", ADMIN, "mode paused: nothing new starts"),
    route(SystemResume, "system.resume", Post, "/v1/system/resume", ADMIN, "mode running"),
    route(SystemDrain, "system.drain", Post, "/v1/system/drain", ADMIN, "mode draining: started tasks finish, no new task starts"),
    route(
        SystemState,
        "system.state",
        Get,
        "/v1/system/state",
        ADMIN_READ,
        "mode, leader, controllers, queue counts, drained, mode changes, parked accounts",
    ),
    route(
        SystemMaintain,
        "system.maintain",
        Post,
        "/v1/system/maintenance",
        ADMIN,
        "run one bounded slice of storage upkeep now: compact finished runs' output, apply retention",
    ),
    route(EventsList, "events.list", Get, "/v1/events", ADMIN_READ, "the event feed after a cursor, oldest first"),
    route(
        AccountsResume,
        "accounts.resume",
        Post,
        "/v1/accounts/:account/resume",
        ADMIN,
        "end an account's usage-limit wait now: its waiting steps are ready again",
    ),
    upload(every_role(route(
        AgentsSync,
        "agents.sync",
        Post,
        "/v1/agents/sync",
        NODE,
        "one round trip per agent tick: heartbeat, lease, runs, results, output, leader writes; grants steps",
    ))),
];

impl Route {
    /// Whether a principal with `roles` may call this route.
    pub fn admits(&self, roles: &[Role]) -> bool {
        if self.every_role {
            self.roles.iter().all(|role| roles.contains(role))
        } else {
            roles.iter().any(|role| self.roles.contains(role))
        }
    }
}

impl Action {
    pub fn route(self) -> &'static Route {
        ROUTES.iter().find(|route| route.action == self).expect("every action has a route")
    }

    pub fn id(self) -> &'static str {
        self.route().id
    }
}

/// Parameters captured from a path, in pattern order.
pub type PathParams = Vec<(&'static str, String)>;

/// What a path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A route matched both path and method.
    Found(&'static Route, PathParams),
    /// The path exists but not for this method; carries the methods it has.
    MethodNotAllowed(Vec<Method>),
    /// No route has this path.
    NotFound,
}

/// Matches one pattern against a path, segment by segment; `None` when they differ. A
/// parameter is percent-decoded (after the path is split, so `%2F` stays inside it).
pub fn match_pattern(pattern: &'static str, path: &str) -> Option<PathParams> {
    let mut params = Vec::new();
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(expected), Some(actual)) => {
                if let Some(name) = expected.strip_prefix(':') {
                    if actual.is_empty() {
                        return None;
                    }
                    params.push((name, crate::percent::decode(actual, false)));
                } else if expected != actual {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

fn literal_segments(pattern: &str) -> usize {
    pattern.split('/').filter(|segment| !segment.starts_with(':')).count()
}

/// Resolves a method and path against [`ROUTES`]. Literal segments win over parameters, so
/// `GET /v1/tasks/claim` is a 405 on the claim route, not a read of a task named `claim`.
pub fn resolve(method: &str, path: &str) -> Resolution {
    let matches: Vec<(&'static Route, PathParams)> =
        ROUTES.iter().filter_map(|route| match_pattern(route.path, path).map(|params| (route, params))).collect();
    let Some(best) = matches.iter().map(|(route, _)| literal_segments(route.path)).max() else {
        return Resolution::NotFound;
    };
    let mut candidates: Vec<(&'static Route, PathParams)> =
        matches.into_iter().filter(|(route, _)| literal_segments(route.path) == best).collect();
    if let Some(position) = candidates.iter().position(|(route, _)| route.method.as_str() == method) {
        let (route, params) = candidates.swap_remove(position);
        return Resolution::Found(route, params);
    }
    let mut methods: Vec<Method> = candidates.iter().map(|(route, _)| route.method).collect();
    methods.dedup();
    Resolution::MethodNotAllowed(methods)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_ids_are_unique_and_every_action_has_one_route() {
        let mut ids: Vec<&str> = ROUTES.iter().map(|route| route.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), ROUTES.len());
    }

    #[test]
    fn literal_segments_win() {
        match resolve("GET", "/v1/tasks/claim") {
            Resolution::MethodNotAllowed(methods) => assert_eq!(methods, vec![Method::Post]),
            other => panic!("expected 405, got {other:?}"),
        }
        match resolve("GET", "/v1/tasks/task_1") {
            Resolution::Found(route, params) => {
                assert_eq!(route.action, Action::TasksRead);
                assert_eq!(params, vec![("task_id", "task_1".to_string())]);
            }
            other => panic!("expected a route, got {other:?}"),
        }
        assert_eq!(resolve("GET", "/v1/nothing"), Resolution::NotFound);
        assert_eq!(resolve("GET", "/v1/tasks//logs"), Resolution::NotFound);
    }
}
