//! SPEC §19's transport findings, on `control-local` with default settings: an answer given
//! before the body was read (413 from the head) reaches a client that writes its whole body
//! before reading (lingering close); silent connections at the connection cap make room for a
//! new one instead of holding the server until their idle timeout (eviction).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::process::start_with_fd_limit;
use crate::support::*;

/// What a client that writes first and reads after sees: the answer's first line and body.
fn write_all_then_read(address: &str, head: &str, body: &[u8]) -> Result<(String, String), String> {
    let mut stream = TcpStream::connect(address).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(head.as_bytes()).map_err(|error| format!("writing the head: {error}"))?;
    stream.write_all(body).map_err(|error| format!("writing the body: {error}"))?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|error| format!("reading the answer: {error}"))?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or(format!("no answer: {text:?}"))?;
    Ok((head.lines().next().unwrap_or("").to_string(), body.to_string()))
}

#[test]
fn an_early_answer_reaches_a_client_that_writes_its_whole_body_first() {
    if worker_target() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let process = start_with_fd_limit(&dir.path().join("control.db"), &[("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN)], None);
    let address = process.base.trim_start_matches("http://").to_string();
    let body = vec![b' '; 2 << 20];
    let head = |token: &str| {
        format!(
            "POST /v1/tasks HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
    };
    // Too large, from its declared length; and refused for its token: both answered from the head.
    for (token, status, code) in [(BROWSER_ADMIN, "413", "payload_too_large"), ("not-a-token", "401", "unknown_token")] {
        let (line, envelope) = write_all_then_read(&address, &head(token), &body).unwrap_or_else(|error| panic!("{status}: {error}"));
        assert!(line.starts_with(&format!("HTTP/1.1 {status}")), "{line}");
        assert!(envelope.contains(&format!("\"error\":\"{code}\"")), "{envelope}");
    }
    // The server is none the worse.
    let answered = Instant::now();
    let (line, _) = write_all_then_read(&address, "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"").unwrap();
    assert!(line.starts_with("HTTP/1.1 200") && answered.elapsed() < Duration::from_secs(1), "{line}");
    process.terminate();
}

#[test]
fn silent_connections_at_the_cap_make_room_for_a_new_one() {
    if worker_target() || !std::path::Path::new("/proc/self/stat").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The default cap (128) under a descriptor limit of 256, as the probe found it.
    let process = start_with_fd_limit(&dir.path().join("control.db"), &[("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN)], Some(256));
    let address = process.base.trim_start_matches("http://").to_string();
    let silent: Vec<TcpStream> = (0..300).filter_map(|_| TcpStream::connect(&address).ok()).collect();
    assert!(silent.len() >= 250, "{} connections", silent.len());
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (line, _) = write_all_then_read(&address, "GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"").unwrap();
    let took = started.elapsed();
    eprintln!("cap: /healthz answered in {took:?} beside {} silent connections", silent.len());
    assert!(line.starts_with("HTTP/1.1 200") && took < Duration::from_secs(1), "{line} after {took:?}");
    // The silent ones were closed to make room, oldest first: the first opened is gone.
    let mut first = &silent[0];
    first.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(first.read(&mut byte), Ok(0) | Err(_)), "the oldest silent connection was closed");
    drop(silent);
    let (_, log) = process.terminate();
    assert!(log.iter().any(|line| line.contains("closed") && line.contains("idle connection(s) to make room")), "{log:?}");
}
