//! A minimal HTTP/1.1 client over a raw TCP stream, so tests control every byte they send
//! (malformed headers, oversized bodies) and see every header they get back. Keep-alive is
//! supported for benchmarks; tests open one connection per request.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("status {} body is not JSON ({error}): {}", self.status, String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One connection; `send` may be called repeatedly when the server keeps it alive.
pub struct Connection {
    reader: BufReader<TcpStream>,
    host: String,
}

impl Connection {
    pub fn open(base_url: &str) -> std::io::Result<Connection> {
        let host = base_url.trim_start_matches("http://").trim_end_matches('/').to_string();
        let stream = TcpStream::connect(&host)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(Connection { reader: BufReader::new(stream), host })
    }

    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        keep_alive: bool,
    ) -> std::io::Result<Response> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {}\r\n", self.host);
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str(if keep_alive { "connection: keep-alive\r\n\r\n" } else { "connection: close\r\n\r\n" });
        let stream = self.reader.get_mut();
        stream.write_all(head.as_bytes())?;
        // A server may answer (413) and close before reading an oversized body.
        let _ = stream.write_all(body);
        self.read_response(method == "HEAD")
    }

    fn read_response(&mut self, head_only: bool) -> std::io::Result<Response> {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let find = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let mut body = Vec::new();
        if head_only || status == 204 || status == 304 {
        } else if let Some(length) = find("content-length") {
            body.resize(length.parse().unwrap_or(0), 0);
            self.reader.read_exact(&mut body)?;
        } else if find("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
            loop {
                let mut size_line = String::new();
                self.reader.read_line(&mut size_line)?;
                let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk)?;
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            self.reader.read_to_end(&mut body)?;
        }
        Ok(Response { status, headers, body })
    }
}

/// One request on a fresh connection.
pub fn request(base_url: &str, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut last_error = None;
    // A fresh server may not accept on the first try under load; retry connecting briefly.
    for _ in 0..50 {
        match Connection::open(base_url) {
            Ok(mut connection) => {
                return connection.send(method, target, headers, body, false).unwrap_or_else(|error| panic!("{method} {target}: {error}"))
            }
            Err(error) => {
                last_error = Some(error);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    panic!("connecting to {base_url}: {last_error:?}")
}
