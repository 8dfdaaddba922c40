//! The Worker under `wrangler dev` as a test target: `scripts/worker-dev PORT` with a fresh
//! local D1, the given environment, the prebuilt Worker and the opt-in manual clock.

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct WorkerProcess {
    pub base: String,
    /// The local D1 and wrangler's other state of this Worker (and of no earlier attempt).
    pub state_dir: std::path::PathBuf,
    child: Child,
    log: std::path::PathBuf,
}

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A free port below the kernel's ephemeral range, so no workerd started meanwhile takes it for
/// one of its internal sockets before wrangler binds it.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    loop {
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = 20_000 + (seed % 10_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl WorkerProcess {
    /// Starts a Worker, retrying on another port (and a fresh state directory: the failed
    /// attempt's, with its migrated database, is removed) if the chosen one was taken meanwhile.
    pub fn start(env: &HashMap<String, String>, dir: &Path) -> WorkerProcess {
        for _ in 0..3 {
            match Self::try_start(env, dir) {
                Ok(worker) => return worker,
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("scripts/worker-dev exited:\n{log}"),
            }
        }
        panic!("no free port for wrangler dev after three tries")
    }

    fn try_start(env: &HashMap<String, String>, dir: &Path) -> Result<WorkerProcess, String> {
        let port = free_port();
        let log = dir.join("worker-dev.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let state_dir = dir.join(format!("state-{port}"));
        let mut command = Command::new(repo_root().join("scripts/worker-dev"));
        command.arg(port.to_string());
        for (name, _) in std::env::vars() {
            if name.starts_with("CONTROL_API_") || name == "BAA_SHARED_TOKEN" {
                command.env_remove(name);
            }
        }
        command
            .envs(env)
            .env("CONTROL_API_TEST_ONLY_MANUAL_CLOCK", "true")
            .env("BAA_WORKER_STATE_DIR", &state_dir)
            .env("BAA_WORKER_PREBUILT", "1")
            .env("BAA_WORKER_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0);
        let child = command.spawn().expect("scripts/worker-dev starts");
        let mut worker = WorkerProcess { base: format!("http://127.0.0.1:{port}"), state_dir, child, log };
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = worker.child.try_wait() {
                let _ = std::fs::remove_dir_all(&worker.state_dir);
                return Err(format!("({status})\n{}", worker.log_text()));
            }
            if let Ok(mut connection) = crate::client::Connection::open(&worker.base) {
                if connection.send("GET", "/healthz", &[], b"", false).is_ok_and(|response| response.status == 200) {
                    return Ok(worker);
                }
            }
            assert!(Instant::now() < deadline, "wrangler dev did not come up:\n{}", worker.log_text());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.wait();
    }
}
