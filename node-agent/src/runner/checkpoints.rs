//! A finished run's checkpoints — `summary` (JSON), `git_diff` (patch), `log_tail` (text),
//! for test steps `test_output` (text), and after a step that committed `branch_diff` (the
//! task's branch against its base, patch) — written to `checkpoints/NNNN-<type>.<ext>` and
//! uploaded from those files, so an upload retried after a restart sends the same bytes.

use std::io;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shared::routes::MAX_UPLOAD_CONTENT_BYTES;
use shared::status::{CheckpointFormat, CheckpointType};

use super::run_dir::write_atomic;

/// Lines kept by a `log_tail` checkpoint, per stream.
pub const LOG_TAIL_LINES: usize = 100;
/// Room left under the upload cap for the truncation note.
pub const CONTENT_BUDGET: usize = MAX_UPLOAD_CONTENT_BYTES - 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointFile {
    pub seq: i64,
    pub checkpoint_type: CheckpointType,
    pub format: CheckpointFormat,
    pub path: PathBuf,
}

fn name_of(checkpoint_type: CheckpointType) -> &'static str {
    match checkpoint_type {
        CheckpointType::Summary => "summary",
        CheckpointType::GitDiff => "git-diff",
        CheckpointType::LogTail => "log-tail",
        CheckpointType::TestOutput => "test-output",
        CheckpointType::BranchDiff => "branch-diff",
    }
}

fn extension_of(format: CheckpointFormat) -> &'static str {
    match format {
        CheckpointFormat::Json => "json",
        CheckpointFormat::Text => "txt",
        CheckpointFormat::Patch => "patch",
    }
}

/// `0002-git-diff.patch` → its seq, type and format.
pub fn parse_file_name(name: &str) -> Option<(i64, CheckpointType, CheckpointFormat)> {
    let (number, rest) = name.split_once('-')?;
    let (kind, extension) = rest.rsplit_once('.')?;
    let seq = number.parse().ok()?;
    let checkpoint_type =
        [CheckpointType::Summary, CheckpointType::GitDiff, CheckpointType::LogTail, CheckpointType::TestOutput, CheckpointType::BranchDiff]
            .into_iter()
            .find(|candidate| name_of(*candidate) == kind)?;
    let format = [CheckpointFormat::Json, CheckpointFormat::Text, CheckpointFormat::Patch]
        .into_iter()
        .find(|candidate| extension_of(*candidate) == extension)?;
    Some((seq, checkpoint_type, format))
}

/// `text` cut to fit one upload, at a character boundary, with a note saying where the whole
/// of it is.
pub fn fit(text: &str, whole_at: &str) -> String {
    if text.len() <= CONTENT_BUDGET {
        return text.to_string();
    }
    let mut cut = CONTENT_BUDGET;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}\n[truncated: {} of {} bytes shown; the whole is in {whole_at}]\n", &text[..cut], cut, text.len())
}

/// The last `lines` lines of `bytes` (a file's tail), as text.
pub fn last_lines(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub struct SummaryFacts<'a> {
    pub outcome: &'a str,
    pub exit_code: Option<i64>,
    pub message: &'a str,
    pub duration_ms: Option<i64>,
    pub files_changed: &'a [String],
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub step_kind: &'a str,
    pub attempt: i64,
}

pub fn summary(facts: &SummaryFacts<'_>) -> Value {
    json!({
        "outcome": facts.outcome,
        "exit_code": facts.exit_code,
        "message": facts.message,
        "duration_ms": facts.duration_ms,
        "files_changed": facts.files_changed,
        "files_changed_count": facts.files_changed.len(),
        "stdout_bytes": facts.stdout_bytes,
        "stderr_bytes": facts.stderr_bytes,
        "step_kind": facts.step_kind,
        "attempt": facts.attempt,
    })
}

pub fn log_tail(stdout_tail: &[u8], stderr_tail: &[u8]) -> String {
    format!(
        "--- stdout (last {LOG_TAIL_LINES} lines) ---\n{}\n--- stderr (last {LOG_TAIL_LINES} lines) ---\n{}\n",
        last_lines(stdout_tail, LOG_TAIL_LINES),
        last_lines(stderr_tail, LOG_TAIL_LINES)
    )
}

pub fn test_output(command: &str, stdout: &[u8], stderr: &[u8], outcome: &str) -> String {
    format!(
        "$ {command}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- {outcome} ---\n",
        String::from_utf8_lossy(stdout).trim_end(),
        String::from_utf8_lossy(stderr).trim_end()
    )
}

/// Writes the checkpoints in order as `checkpoints/0001-….`; returns their files.
pub fn write_all(dir: &Path, checkpoints: &[(CheckpointType, CheckpointFormat, String)]) -> io::Result<Vec<CheckpointFile>> {
    let mut files = Vec::new();
    for (index, (checkpoint_type, format, content)) in checkpoints.iter().enumerate() {
        let seq = index as i64 + 1;
        let path = dir.join(format!("{seq:04}-{}.{}", name_of(*checkpoint_type), extension_of(*format)));
        write_atomic(&path, content.as_bytes())?;
        files.push(CheckpointFile { seq, checkpoint_type: *checkpoint_type, format: *format, path });
    }
    Ok(files)
}

/// The checkpoint files already written, in seq order.
pub fn list(dir: &Path) -> Vec<CheckpointFile> {
    let mut files: Vec<CheckpointFile> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let (seq, checkpoint_type, format) = parse_file_name(&name)?;
            Some(CheckpointFile { seq, checkpoint_type, format, path: entry.path() })
        })
        .collect();
    files.sort_by_key(|file| file.seq);
    files
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(
            dir.path(),
            &[
                (CheckpointType::Summary, CheckpointFormat::Json, "{}".into()),
                (CheckpointType::GitDiff, CheckpointFormat::Patch, "diff".into()),
                (CheckpointType::TestOutput, CheckpointFormat::Text, "ok".into()),
            ],
        )
        .unwrap();
        assert_eq!(written[1].path.file_name().unwrap(), "0002-git-diff.patch");
        assert_eq!(list(dir.path()), written);
        assert_eq!(parse_file_name("0003-log-tail.txt"), Some((3, CheckpointType::LogTail, CheckpointFormat::Text)));
        assert_eq!(parse_file_name(".0001-summary.json.1.tmp"), None);
    }

    #[test]
    fn big_content_is_cut_to_fit_one_upload() {
        let text = "é".repeat(MAX_UPLOAD_CONTENT_BYTES);
        let fitted = fit(&text, "artifacts/x");
        assert!(fitted.len() <= MAX_UPLOAD_CONTENT_BYTES && fitted.contains("[truncated"));
        assert_eq!(fit("small", "x"), "small");
        assert_eq!(last_lines(b"1\n2\n3\n", 2), "2\n3");
    }
}
