//! Hostile clients against the native server (loopback only, every loop bounded): slow
//! headers, slow bodies, idle keep-alive, a connection flood under a low descriptor limit,
//! unauthenticated half-sent bodies, malformed framing. Native only: the Worker's HTTP layer
//! is Cloudflare's.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use control_worker::core::clock::{ManualClock, SeededRandom};
use control_worker::core::config::Config;
use control_worker::native::{start_in_thread, RunningServer, ServerLimits, ServerOptions};
use serde_json::Value;

use crate::process::start_with_fd_limit;
use crate::support::*;

fn server(limits: ServerLimits) -> (RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = test_env();
    let (config, _) = Config::from_lookup(|name| env.get(name).cloned()).unwrap();
    let options = ServerOptions { limits, ..ServerOptions::loopback(dir.path().join("control.db"), config) };
    (start_in_thread(options, ManualClock::new(START_TIME), SeededRandom::new(1)).unwrap(), dir)
}

fn short_limits() -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        body_min_bytes_per_sec: 1024,
        idle_timeout: Duration::from_secs(2),
        max_connections: 64,
        maintenance_interval: None,
    }
}

fn connect(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    stream
}

/// Reads until the server closes the connection (or 15 s pass); what it sent and when it closed.
fn until_closed(stream: &mut TcpStream, since: Instant) -> (Vec<u8>, Duration) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return (received, since.elapsed()),
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// `(status, envelope)` of a raw HTTP response.
fn parse(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[track_caller]
fn assert_envelope(raw: &[u8], status: u16, code: &str) -> Value {
    let (got, envelope) = parse(raw);
    assert_eq!(got, status, "{}", String::from_utf8_lossy(raw));
    assert_eq!(envelope["ok"], false);
    assert_eq!(envelope["error"], code, "{envelope}");
    assert!(envelope["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{envelope}");
    envelope
}

#[test]
fn slow_headers_slow_bodies_and_idle_connections_are_cut() {
    if worker_target() {
        return;
    }
    let (server, _dir) = server(short_limits());
    let base = server.base_url();

    // A request line and then nothing: cut at the header timeout.
    let mut silent = connect(&base);
    let started = Instant::now();
    silent.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").unwrap();
    let (_, closed_after) = until_closed(&mut silent, started);
    assert!(closed_after >= Duration::from_millis(1_500) && closed_after < Duration::from_millis(3_500), "{closed_after:?}");
    eprintln!("slow headers: cut after {closed_after:?} (header timeout 2 s)");

    // Headers byte by byte, one every 300 ms: the header timeout counts from the first byte.
    let mut trickle = connect(&base);
    let started = Instant::now();
    let mut cut = None;
    for byte in b"GET /healthz HTTP/1.1\r\nhost: a-very-long-host-name.example\r\n\r\n" {
        if trickle.write_all(&[*byte]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let (answer, closed_after) = until_closed(&mut trickle, started);
    let closed_after = cut.unwrap_or(closed_after);
    assert!(closed_after < Duration::from_millis(4_000) && !answer.starts_with(b"HTTP/1.1 200"), "{closed_after:?}");

    // A body at 1 byte a second is cut by the body deadline, with an envelope.
    let mut slow_body = connect(&base);
    let started = Instant::now();
    let head = format!(
        "POST /v1/tasks HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {BROWSER_ADMIN}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{"
    );
    slow_body.write_all(head.as_bytes()).unwrap();
    slow_body.set_nonblocking(false).unwrap();
    let writer = slow_body.try_clone().unwrap();
    let feeder = std::thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..8 {
            std::thread::sleep(Duration::from_secs(1));
            if writer.write_all(b" ").is_err() {
                return;
            }
        }
    });
    let (answer, closed_after) = until_closed(&mut slow_body, started);
    feeder.join().unwrap();
    assert!(closed_after < Duration::from_millis(4_000), "{closed_after:?}");
    assert_envelope(&answer, 408, "request_timeout");
    eprintln!("slow body: cut after {closed_after:?} (body timeout 2 s)");

    // An idle keep-alive connection is closed after the idle timeout.
    let mut idle = connect(&base);
    idle.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    let read = idle.read(&mut first).unwrap();
    assert!(first[..read].starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    let (_, closed_after) = until_closed(&mut idle, started);
    assert!(closed_after >= Duration::from_millis(1_500) && closed_after < Duration::from_millis(3_500), "{closed_after:?}");
    server.stop();
}

#[test]
fn malformed_requests_answer_envelopes_with_request_ids() {
    if worker_target() {
        return;
    }
    let (server, _dir) = server(ServerLimits::default());
    let base = server.base_url();
    let exchange = |raw: &[u8]| {
        let mut stream = connect(&base);
        stream.write_all(raw).unwrap();
        until_closed(&mut stream, Instant::now()).0
    };
    let auth = format!("authorization: Bearer {BROWSER_ADMIN}\r\n");

    // A malformed chunked body.
    let chunked = format!("POST /v1/tasks HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\nzz\r\nnot a chunk\r\n0\r\n\r\n");
    assert_envelope(&exchange(chunked.as_bytes()), 400, "invalid_request");
    // Two Authorization headers: neither wins.
    let twice = format!("GET /v1/tasks HTTP/1.1\r\nhost: x\r\n{auth}authorization: Bearer {READONLY}\r\nconnection: close\r\n\r\n");
    let envelope = assert_envelope(&exchange(twice.as_bytes()), 400, "invalid_authorization_header");
    assert_eq!(envelope["details"]["field"], "Authorization");
    // Methods are case-sensitive.
    for path in ["/healthz", "/v1/tasks"] {
        let lower = format!("get {path} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n");
        assert_envelope(&exchange(lower.as_bytes()), 405, "method_not_allowed");
    }
    // More than 100 headers.
    let many: String = (0..150).map(|index| format!("x-extra-{index}: {index}\r\n")).collect();
    let crowded = format!("GET /v1/tasks HTTP/1.1\r\nhost: x\r\nx-request-id: crowded-1\r\n{many}connection: close\r\n\r\n");
    let envelope = assert_envelope(&exchange(crowded.as_bytes()), 431, "request_header_fields_too_large");
    assert_eq!(envelope["request_id"], "crowded-1");
    // A long id is echoed capped, once in the message and once in the details.
    let long_id = "x".repeat(5_000);
    let missing = format!("GET /v1/tasks/{long_id} HTTP/1.1\r\nhost: x\r\n{auth}connection: close\r\n\r\n");
    let answer = exchange(missing.as_bytes());
    let envelope = assert_envelope(&answer, 404, "task_not_found");
    assert!(answer.len() < 1_500, "{} bytes", answer.len());
    assert_eq!(envelope["details"]["task_id"].as_str().unwrap().chars().count(), 129);
    // Framing hyper refuses before any request exists: a bare 400 and a closed connection
    // (docs/operations.md lists these).
    for raw in [
        "POST /v1/tasks HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\n12345".to_string(),
        "GET /v1/ta sks HTTP/1.1\r\nhost: x\r\n\r\n".to_string(),
        "GET /v1/tasks HTTP/1.1\r\nhost: x\r\nidempotency-key: a\u{7f}b\r\n\r\n".to_string(),
    ] {
        let answer = exchange(raw.as_bytes());
        assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"), "{}", String::from_utf8_lossy(&answer));
    }
    // A well-formed request on the same server still works.
    assert!(exchange(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").starts_with(b"HTTP/1.1 200"));
    server.stop();
}

/// The flood tests read the server's memory and CPU from `/proc`: on a Mac they say so and skip.
fn proc_available(test: &str) -> bool {
    let available = std::path::Path::new("/proc/self/stat").exists();
    if !available {
        eprintln!("{test}: skipped: it measures the server through /proc, which this platform (macOS) lacks");
    }
    available
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap()
}

/// utime + stime in clock ticks (10 ms).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn healthz_within(base: &str, limit: Duration) -> bool {
    let started = Instant::now();
    let Ok(mut stream) = TcpStream::connect(base.trim_start_matches("http://")) else { return false };
    stream.set_read_timeout(Some(limit)).unwrap();
    if stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200") && started.elapsed() < limit
}

/// Under `ulimit -n 256`, 300 idle connections: the server neither spins nor stays down;
/// /healthz answers within a second once the timeouts have shed them.
#[test]
fn a_connection_flood_under_a_low_descriptor_limit() {
    if worker_target() || !proc_available("a_connection_flood_under_a_low_descriptor_limit") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN),
        ("CONTROL_API_HEADER_TIMEOUT_SEC", "2"),
        ("CONTROL_API_IDLE_TIMEOUT_SEC", "2"),
        // Above the descriptor limit, so the flood runs the process out of descriptors.
        ("CONTROL_API_MAX_CONNECTIONS", "1000"),
    ];
    let process = start_with_fd_limit(&dir.path().join("control.db"), &env, Some(256));
    let pid = process.child.id();
    let address = process.base.trim_start_matches("http://").to_string();
    let ticks_before = cpu_ticks(pid);
    let started = Instant::now();
    let flood: Vec<TcpStream> = (0..300).filter_map(|_| TcpStream::connect(&address).ok()).collect();
    assert!(flood.len() >= 250, "{} connections", flood.len());
    std::thread::sleep(Duration::from_secs(3));
    let cpu = (cpu_ticks(pid) - ticks_before) as f64 / 100.0 / started.elapsed().as_secs_f64();
    eprintln!("fd flood: {} connections, server CPU {:.1} % of a core over {:?}", flood.len(), cpu * 100.0, started.elapsed());
    assert!(cpu <= 0.10, "the server spun: {:.1} % of a core", cpu * 100.0);
    let recovered = Instant::now();
    let mut answered = false;
    while recovered.elapsed() < Duration::from_secs(10) {
        if healthz_within(&process.base, Duration::from_secs(1)) {
            answered = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(answered, "/healthz never answered within 1 s after the flood");
    eprintln!("fd flood: /healthz answered {:?} after the measurement", recovered.elapsed());
    drop(flood);
    let (_, log) = process.terminate();
    assert!(log.iter().any(|line| line.contains("backing off")), "the accept loop backed off: {log:?}");
}

/// 200 unauthenticated connections with half-sent 2 MiB bodies: each is refused from its head
/// (and lingers, reading and discarding), and the server's memory stays within 2 MB of idle.
#[test]
fn unauthenticated_half_sent_bodies_are_never_buffered() {
    if worker_target() || !proc_available("unauthenticated_half_sent_bodies_are_never_buffered") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let env = [("CONTROL_API_BROWSER_ADMIN_TOKEN", BROWSER_ADMIN), ("BAA_SHARED_TOKEN", SHARED), ("CONTROL_API_MAX_CONNECTIONS", "500")];
    let process = start_with_fd_limit(&dir.path().join("control.db"), &env, None);
    let pid = process.child.id();
    let address = process.base.trim_start_matches("http://").to_string();
    let rss_before = rss_kb(pid);
    let half_body = vec![b' '; 1 << 20];
    let mut connections = Vec::new();
    let mut refused = 0;
    for index in 0..200 {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let token = if index % 2 == 0 { "Bearer not-a-token" } else { "" };
        let head = format!(
            "POST /v1/steps/s1/logs HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
            2 << 20,
            if token.is_empty() { String::new() } else { format!("authorization: {token}\r\n") }
        );
        stream.write_all(head.as_bytes()).unwrap();
        let _ = stream.write_all(&half_body);
        let mut answer = [0u8; 64];
        if let Ok(read) = stream.read(&mut answer) {
            if answer[..read].starts_with(b"HTTP/1.1 401") {
                refused += 1;
            }
        }
        connections.push(stream);
    }
    let rss_after = rss_kb(pid);
    eprintln!(
        "unauthenticated flood: RSS {:.1} MB before, {:.1} MB with 200 half-sent 2 MiB bodies; {refused} answered 401",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    assert_eq!(refused, 200, "each refused from its head");
    assert!(rss_after <= rss_before + 2 * 1024, "RSS {rss_before} kB idle, {rss_after} kB with the bodies: more than 2 MB apart");
    drop(connections);
    process.terminate();
}
