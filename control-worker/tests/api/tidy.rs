//! Invariants of the source tree that no compiler checks.

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code part of a file: comments and unit tests (`#[cfg(test)]` to the end) are left out.
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap();
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The text of every `const …_SQL: &str = …;` item.
fn sql_constants(code: &str) -> Vec<String> {
    code.split("_SQL: &str =").skip(1).map(|rest| rest.split(";\n").next().unwrap().to_string()).collect()
}

#[test]
fn core_and_shared_do_no_io_and_read_no_clock() {
    let root = repo_root();
    let mut files = rust_files(&root.join("control-worker/src/core"));
    files.extend(rust_files(&root.join("shared/src")));
    assert!(files.len() > 10);
    for file in files {
        let code = code_of(&file);
        for forbidden in
            ["SystemTime", "Instant::now", "std::fs", "std::net", "tokio", "rusqlite", "worker::", "std::env", "println!", "eprintln!"]
        {
            assert!(!code.contains(forbidden), "{} uses {forbidden}", file.display());
        }
    }
}

#[test]
fn sql_never_opens_transactions_and_uses_numbered_parameters() {
    let root = repo_root();
    let mut statements = 0;
    for file in rust_files(&root.join("control-worker/src/core")) {
        let code = code_of(&file);
        for forbidden in ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT"] {
            assert!(!code.contains(forbidden), "{} contains {forbidden}: D1 rejects it; use a batch", file.display());
        }
        for sql in sql_constants(&code) {
            statements += 1;
            for (index, _) in sql.match_indices('?') {
                let next = sql[index + 1..].chars().next().unwrap_or(' ');
                assert!(next.is_ascii_digit(), "{}: unnumbered SQL parameter in {sql}", file.display());
            }
        }
    }
    assert!(statements > 40, "found the SQL constants ({statements})");
}

#[test]
fn the_migration_list_matches_the_migrations_folder() {
    let mut on_disk: Vec<String> = std::fs::read_dir(repo_root().join("migrations"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    on_disk.sort();
    let listed: Vec<String> = control_worker::native::migrate::MIGRATIONS.iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(listed, on_disk);
    for name in &listed {
        let (number, rest) = name.split_once('_').unwrap();
        assert!(number.len() == 4 && number.chars().all(|c| c.is_ascii_digit()), "{name}: NNNN_snake_name.sql");
        assert!(rest.trim_end_matches(".sql").chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()), "{name}");
    }
}

#[test]
fn the_api_docs_cover_every_route_of_the_table() {
    let docs = std::fs::read_to_string(repo_root().join("docs/api.md")).unwrap();
    for route in shared::ROUTES {
        let heading = format!("`{}` — `{} {}`", route.id, route.method.as_str(), route.path);
        assert!(docs.contains(&heading), "docs/api.md lacks the route heading {heading}");
    }
}

/// The hosts are Macs: Linux-only interfaces (`/proc`, `std::os::linux`, `target_os = "linux"`)
/// appear in the agent and the control plane only inside `node-agent/src/platform/`, which has a
/// macOS implementation beside each (compiled by `scripts/check-macos`).
#[test]
fn linux_only_interfaces_stay_in_the_platform_module() {
    let root = repo_root();
    let platform = root.join("node-agent/src/platform");
    let mut files = rust_files(&root.join("node-agent/src"));
    files.extend(rust_files(&root.join("control-worker/src")));
    assert!(files.len() > 20);
    for file in files.iter().filter(|file| !file.starts_with(&platform)) {
        let code = code_of(file);
        for needle in ["\"/proc", "std::os::linux", "target_os = \"linux\""] {
            assert!(!code.contains(needle), "{} uses {needle} outside node-agent/src/platform/", file.display());
        }
    }
}

/// The runner and the conductor read no clock of their own: instants come from tokio's clock
/// and wall time from one function, both in `node-agent/src/clock.rs`, so the loops follow a
/// paused test clock; the state machines (a run's, the lease's) read no clock at all: time
/// comes in with their inputs. (Test-only files, which drive that clock, are not looked at.)
#[test]
fn the_runner_and_the_conductor_read_time_only_through_the_agent_clock() {
    let root = repo_root();
    let mut files = rust_files(&root.join("node-agent/src/runner"));
    files.extend(rust_files(&root.join("node-agent/src/conductor")));
    let test_only = ["driver_tests.rs", "memory_plane.rs", "sim_host.rs", "tests.rs"];
    let files: Vec<PathBuf> =
        files.into_iter().filter(|file| !test_only.iter().any(|name| file.file_name().is_some_and(|own| own == *name))).collect();
    assert!(files.len() > 15, "{} files", files.len());
    for file in &files {
        let code = code_of(file);
        for needle in ["Instant::now(", "SystemTime::now("] {
            assert!(!code.contains(needle), "{} reads a clock ({needle}) outside node-agent/src/clock.rs", file.display());
        }
    }
    let machines =
        files.iter().filter(|file| file.components().any(|part| part.as_os_str() == "machine") || file.ends_with("conductor/lease.rs"));
    let mut count = 0;
    for file in machines {
        count += 1;
        let code = code_of(file);
        for needle in ["clock::now", "clock_now", "wall_ms()", "Now::read", "tokio::"] {
            assert!(!code.contains(needle), "{} is a state machine but reads a clock or awaits ({needle})", file.display());
        }
    }
    assert!(count >= 4, "{count} machine files");
}
