//! The admin console (SPEC §18): one page and its scripts (JavaScript modules: the board, the
//! wave graph, the fleet timeline, the fleet, a task with its log and diff), served by the
//! control plane itself at `/` on both runtimes (compiled in, no file access). The page holds no
//! data; the scripts call the JSON API of the same origin with the token a person pastes, so the
//! console needs no route, role or secret of its own. A strict content security policy allows
//! only this origin.

use super::http::ApiResponse;

pub const PAGE: &str = include_str!("console/console.html");
/// The tab's icon: a small conductor's baton.
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#1d2b3a\"/><path d=\"M3 13 L13 3\" stroke=\"#fff\" stroke-width=\"2\"/></svg>";

/// The scripts by path: the entry module, then the modules it imports.
pub const SCRIPTS: [(&str, &str); 9] = [
    ("/console.js", include_str!("console/main.js")),
    ("/console/core.js", include_str!("console/core.js")),
    ("/console/board.js", include_str!("console/board.js")),
    ("/console/wave.js", include_str!("console/wave.js")),
    ("/console/timeline.js", include_str!("console/timeline.js")),
    ("/console/fleet.js", include_str!("console/fleet.js")),
    ("/console/task.js", include_str!("console/task.js")),
    ("/console/logs.js", include_str!("console/logs.js")),
    ("/console/diff.js", include_str!("console/diff.js")),
];

/// Scripts and connections only from this origin; inline styles only; never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's answer for `path`, when the path is one of its own.
pub fn answer(method: &str, path: &str, request_id: &str) -> Option<ApiResponse> {
    let (content_type, body) = match path {
        "/" | "/console" => ("text/html; charset=utf-8", PAGE),
        "/favicon.svg" => ("image/svg+xml", ICON),
        _ => ("text/javascript; charset=utf-8", SCRIPTS.iter().find(|(script, _)| *script == path)?.1),
    };
    if !matches!(method, "GET" | "HEAD") {
        return None;
    }
    let mut response = ApiResponse::content(200, content_type, body.as_bytes().to_vec(), request_id);
    response.headers.extend([
        ("content-security-policy".to_string(), POLICY.to_string()),
        ("x-content-type-options".to_string(), "nosniff".to_string()),
        ("referrer-policy".to_string(), "no-referrer".to_string()),
    ]);
    Some(response)
}
