//! A Worker under `wrangler dev` for the benchmarks: started in its own process group, ready
//! once `/healthz` answers, stopped with everything it started.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::client;

pub struct Server {
    pub base: String,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
    }
}

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A free port below the kernel's ephemeral range, which workerd's internal sockets use.
pub fn free_port() -> u16 {
    (20_000..30_000).find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok()).unwrap()
}

/// `scripts/worker-dev` on `port` with the last built Worker, its local D1 in `state`.
pub fn worker_dev(port: u16, state: &Path) -> Command {
    let mut command = Command::new(root().join("scripts/worker-dev"));
    command.arg(port.to_string()).env("BAA_WORKER_STATE_DIR", state).env("BAA_WORKER_PREBUILT", "1").env("BAA_WORKER_LOG_LEVEL", "warn");
    command
}

/// Starts `command` (serving on `port`), its output into `log`; returns once it answers.
pub fn start(mut command: Command, port: u16, log: &Path) -> Server {
    let log = std::fs::File::create(log).unwrap();
    command.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log).process_group(0);
    let server = Server { base: format!("http://127.0.0.1:{port}"), child: command.spawn().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(mut connection) = client::Connection::open(&server.base) {
            if connection.send("GET", "/healthz", &[], b"", false).is_ok_and(|response| response.status == 200) {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "a worker did not start; see its log");
        std::thread::sleep(Duration::from_millis(100));
    }
}
