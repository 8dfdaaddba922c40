//! Checks that only make sense with the Worker present (`BAA_API_TARGET=worker`).

use control_worker::native::SqliteDb;
use rusqlite::{Connection, OpenFlags};

use crate::support::{test_env, worker_target};
use crate::worker::WorkerProcess;

type SchemaRow = (String, String, String, Option<String>);

fn schema_of(connection: &Connection) -> Vec<SchemaRow> {
    let mut statement = connection
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE '\\_cf\\_%' ESCAPE '\\' ORDER BY type, name")
        .unwrap();
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))).unwrap().map(Result::unwrap).collect()
}

fn sqlite_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(sqlite_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "sqlite") {
            found.push(path);
        }
    }
    found
}

#[test]
fn wrangler_and_the_native_runner_create_the_same_schema() {
    if !worker_target() {
        eprintln!("skipped: runs with BAA_API_TARGET=worker (scripts/test does)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // worker-dev applies the migrations with `wrangler d1 migrations apply --local` first.
    let worker = WorkerProcess::start(&test_env(), dir.path());
    let databases: Vec<Vec<SchemaRow>> = sqlite_files(&worker.state_dir)
        .iter()
        .map(|path| schema_of(&Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()))
        .filter(|schema| schema.iter().any(|(_, name, _, _)| name == "tasks"))
        .collect();
    assert_eq!(databases.len(), 1, "one local D1 database with the schema:\n{}", worker.log_text());
    let native = SqliteDb::open_in_memory().unwrap().with_connection(|connection| schema_of(connection));
    assert!(native.len() > 10, "{native:?}");
    assert_eq!(databases[0], native, "wrangler's schema differs from the native runner's");
    drop(worker);
}
