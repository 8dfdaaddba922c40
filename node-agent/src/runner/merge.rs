//! An `integrate` task's merge step (SPEC §12) as one shell command: each dependency's
//! branch merged into the worktree in `depends_on` order with a merge commit. A branch whose
//! commit this host lacks is fetched from where its delivery pushed it. A conflict aborts the
//! merge and fails the step, naming the conflicted files in `$BAA_FAILURE_FILE` (the step's
//! error). Pure: the sources come from the step's `metadata.merge`.

use serde_json::{Map, Value};
use shared::wire::MergeSource;

use super::branch::Author;
use super::command::{shell_quote, CommandError};

/// Exit code of a merge that conflicted.
pub const CONFLICT_EXIT: i32 = 3;
/// Exit code of a branch this host cannot get.
pub const MISSING_EXIT: i32 = 4;

/// The sources listed in a merge step's metadata.
pub fn sources(metadata: &Map<String, Value>) -> Result<Vec<MergeSource>, CommandError> {
    let listed = metadata.get("merge").cloned().unwrap_or(Value::Null);
    let sources: Vec<MergeSource> = serde_json::from_value(listed).map_err(|_| CommandError::NoMergeSources)?;
    if sources.is_empty() {
        return Err(CommandError::NoMergeSources);
    }
    Ok(sources)
}

// `$1` label, `$2` branch, `$3` commit, `$4` where it was pushed (may be empty), `$5` host.
const MERGE_FUNCTION: &str = r#"baa_fail() { printf '%s\n' "$2" > "${BAA_FAILURE_FILE:-/dev/null}"; printf '%s\n' "$2" >&2; exit "$1"; }
baa_merge() {
  if [ -z "$3" ]; then baa_fail 4 "$1 ($2) has no head commit to merge: it never ran a step"; fi
  if ! git cat-file -e "$3^{commit}" 2>/dev/null && [ -n "$4" ]; then
    echo "fetching $2 from $4"
    git fetch -q "$4" "refs/heads/$2" || true
  fi
  if ! git cat-file -e "$3^{commit}" 2>/dev/null; then
    baa_fail 4 "$1: commit $3 of branch $2 is not on this host (it ran on ${5:-another host}; deliver: push makes it reachable)"
  fi
  echo "merging $2 ($1) at $3"
  if ! git -c commit.gpgsign=false merge --no-ff --no-edit --no-verify -m "Merge branch '$2' ($1)" "$3"; then
    files=$(git diff --name-only --diff-filter=U | tr '\n' ' ' | sed 's/ $//; s/ /, /g')
    git merge --abort 2>/dev/null || git reset -q --hard HEAD
    baa_fail 3 "merging $2 ($1) conflicts in: ${files:-(no file listed)}"
  fi
}
"#;

/// The step's command: the host's git identity, the function above, then one call per source.
pub fn merge_command(sources: &[MergeSource], author: &Author) -> String {
    let (name, email) = (shell_quote(&author.name), shell_quote(&author.email));
    let mut script = format!(
        "set -u\nexport GIT_AUTHOR_NAME={name} GIT_AUTHOR_EMAIL={email} GIT_COMMITTER_NAME={name} GIT_COMMITTER_EMAIL={email}\n{MERGE_FUNCTION}"
    );
    for source in sources {
        let words = [
            source.label(),
            &source.branch,
            source.head_commit.as_deref().unwrap_or(""),
            source.pushed_to.as_deref().unwrap_or(""),
            source.host.as_deref().unwrap_or(""),
        ];
        let quoted: Vec<String> = words.iter().map(|word| shell_quote(word)).collect();
        script.push_str(&format!("baa_merge {}\n", quoted.join(" ")));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn branch_with(repo: &Path, branch: &str, file: &str, text: &str) -> String {
        git(repo, &["checkout", "-q", "-b", branch, "main"]);
        std::fs::write(repo.join(file), text).unwrap();
        git(repo, &["add", "."]);
        git(repo, &["commit", "-q", "-m", branch]);
        let head = git(repo, &["rev-parse", "HEAD"]);
        git(repo, &["checkout", "-q", "main"]);
        head
    }

    fn source(key: &str, branch: &str, head: &str) -> MergeSource {
        MergeSource {
            task_id: format!("task_{key}"),
            key: Some(key.into()),
            branch: branch.into(),
            head_commit: Some(head.into()),
            host: Some("mini".into()),
            pushed_to: None,
        }
    }

    fn run(repo: &Path, script: &str, failure_file: &Path) -> (i32, String) {
        let output = Command::new("sh").arg("-c").arg(script).current_dir(repo).env("BAA_FAILURE_FILE", failure_file).output().unwrap();
        (output.status.code().unwrap_or(-1), std::fs::read_to_string(failure_file).unwrap_or_default())
    }

    #[test]
    fn the_sources_come_from_the_metadata() {
        let metadata = json!({"merge": [{"task_id": "task_a", "key": "T-A", "branch": "baa/a", "head_commit": "abc", "host": "mini", "pushed_to": null}]});
        let sources = sources(metadata.as_object().unwrap()).unwrap();
        assert_eq!((sources[0].label(), sources[0].branch.as_str()), ("T-A", "baa/a"));
        assert_eq!(super::sources(&Map::new()), Err(CommandError::NoMergeSources));
        assert_eq!(super::sources(json!({"merge": []}).as_object().unwrap()), Err(CommandError::NoMergeSources));
    }

    #[test]
    fn branches_are_merged_in_order_and_a_conflict_names_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("shared.txt"), "base\n").unwrap();
        git(&repo, &["add", "."]);
        git(&repo, &["commit", "-q", "-m", "base"]);
        let a = branch_with(&repo, "baa/a", "a.txt", "a\n");
        let b = branch_with(&repo, "baa/b", "b.txt", "b's\n");
        let d = branch_with(&repo, "baa/d", "shared.txt", "d\n");
        let e = branch_with(&repo, "baa/e", "shared.txt", "e\n");
        let author = Author { name: "Mini Agent".into(), email: "agent@mini.example.invalid".into() };
        git(&repo, &["checkout", "-q", "-b", "integration/wave", "main"]);

        let failure = dir.path().join("failure.txt");
        let script = merge_command(&[source("T-A", "baa/a", &a), source("T-B", "baa/b", &b)], &author);
        assert_eq!(run(&repo, &script, &failure), (0, String::new()));
        let subjects = git(&repo, &["log", "--first-parent", "--format=%s|%an", "main..HEAD"]);
        assert_eq!(subjects, "Merge branch 'baa/b' (T-B)|Mini Agent\nMerge branch 'baa/a' (T-A)|Mini Agent");
        assert!(repo.join("a.txt").exists() && repo.join("b.txt").exists());

        let head = git(&repo, &["rev-parse", "HEAD"]);
        let script = merge_command(&[source("T-D", "baa/d", &d), source("T-E", "baa/e", &e)], &author);
        let (code, reason) = run(&repo, &script, &failure);
        assert_eq!(code, CONFLICT_EXIT);
        assert_eq!(reason.trim(), "merging baa/e (T-E) conflicts in: shared.txt");
        assert_eq!(git(&repo, &["status", "--porcelain"]), "", "the merge was aborted");
        assert_eq!(git(&repo, &["rev-parse", "HEAD~1"]), head, "T-D's merge stays, T-E's is gone");

        // A branch made on another host is fetched from where its delivery pushed it.
        let elsewhere = dir.path().join("elsewhere");
        git(dir.path(), &["clone", "-q", "--branch", "main", repo.to_str().unwrap(), elsewhere.to_str().unwrap()]);
        let g = branch_with(&elsewhere, "baa/g", "g.txt", "g\n");
        let pushed = MergeSource { pushed_to: Some(elsewhere.display().to_string()), ..source("T-G", "baa/g", &g) };
        assert_eq!(run(&repo, &merge_command(&[pushed], &author), &failure).0, 0);
        assert!(repo.join("g.txt").exists());

        let missing = source("T-X", "baa/x", "0123456789012345678901234567890123456789");
        let (code, reason) = run(&repo, &merge_command(&[missing], &author), &failure);
        assert_eq!(code, MISSING_EXIT);
        assert!(reason.contains("is not on this host (it ran on mini"), "{reason}");
    }
}
