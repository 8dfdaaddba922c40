//! Finding unfinished runs in the runs directory (`<runs>/<task_id>/<run_id>/state.json`).

use std::path::{Path, PathBuf};

/// Run directories whose `state.json` says the run has not finished (or cannot be read).
pub fn unfinished_runs(runs_dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(runs_dir) else { return found };
    for task in tasks.flatten().filter(|entry| entry.path().is_dir()) {
        let Ok(runs) = std::fs::read_dir(task.path()) else { continue };
        for run in runs.flatten().filter(|entry| entry.path().is_dir()) {
            let state = std::fs::read(run.path().join("state.json")).ok().and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok());
            let finished = state
                .as_ref()
                .and_then(|state| state["status"].as_str())
                .is_some_and(|status| matches!(status, "succeeded" | "failed" | "blocked" | "timed_out" | "canceled" | "lost"));
            if !finished {
                found.push(run.path());
            }
        }
    }
    found.sort();
    found
}
