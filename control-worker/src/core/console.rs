//! The admin console: one page and its script, served by the control plane itself at `/` on
//! both runtimes (compiled in, no file access). The page holds no data; the script calls the
//! JSON API of the same origin with the token a person pastes, so the console needs no route,
//! role or secret of its own. A strict content security policy allows only this origin.

use super::http::ApiResponse;

pub const PAGE: &str = include_str!("console/console.html");
pub const SCRIPT: &str = include_str!("console/console.js");

/// Scripts and connections only from this origin; inline styles only; never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's answer for `path`, when the path is one of its own.
pub fn answer(method: &str, path: &str, request_id: &str) -> Option<ApiResponse> {
    let (content_type, body) = match path {
        "/" | "/console" => ("text/html; charset=utf-8", PAGE),
        "/console.js" => ("text/javascript; charset=utf-8", SCRIPT),
        _ => return None,
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
