//! The same policy for macOS's `sandbox-exec` (Seatbelt): a profile that allows by default,
//! then refuses writes but beneath the writable places, refuses reads and writes of the denied
//! places, and gives the step its own places back — later rules win — and lets it signal only
//! processes of its own sandbox. It cannot run on Linux: its text is unit-tested.

use std::path::Path;

use super::policy::Policy;

fn quoted(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn subpaths(paths: &[std::path::PathBuf]) -> String {
    paths.iter().map(|path| format!(" (subpath {})", quoted(path))).collect()
}

/// The profile of `policy`; `own` are the step's own places (its worktree, run directory and
/// git worktree directory), allowed again after the denials that contain them.
pub fn profile(policy: &Policy, own: &[std::path::PathBuf]) -> String {
    let mut text = String::from("(version 1)\n(allow default)\n(deny file-write*)\n");
    if !policy.write.is_empty() {
        text.push_str(&format!("(allow file-write*{})\n", subpaths(&policy.write)));
    }
    if !policy.deny.is_empty() {
        text.push_str(&format!("(deny file-read* file-write*{})\n", subpaths(&policy.deny)));
    }
    if !own.is_empty() {
        text.push_str(&format!("(allow file-read* file-write*{})\n", subpaths(own)));
    }
    text.push_str("(deny signal)\n(allow signal (target same-sandbox))\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn denials_come_after_allows_and_the_steps_own_places_last() {
        let policy = Policy {
            read: vec!["/".into()],
            write: vec!["/tmp".into(), "/Users/ann/.codex".into()],
            deny: vec!["/Users/ann/Library/Application Support/baa-conductor/state".into(), "/Users/ann/.ssh".into()],
        };
        let own = vec![PathBuf::from("/Users/ann/Library/Application Support/baa-conductor/worktrees/t1")];
        let text = profile(&policy, &own);
        assert_eq!(
            text,
            "(version 1)\n(allow default)\n(deny file-write*)\n\
             (allow file-write* (subpath \"/tmp\") (subpath \"/Users/ann/.codex\"))\n\
             (deny file-read* file-write* (subpath \"/Users/ann/Library/Application Support/baa-conductor/state\") (subpath \"/Users/ann/.ssh\"))\n\
             (allow file-read* file-write* (subpath \"/Users/ann/Library/Application Support/baa-conductor/worktrees/t1\"))\n\
             (deny signal)\n(allow signal (target same-sandbox))\n"
        );
        let tricky = profile(&Policy { read: vec![], write: vec![], deny: vec![PathBuf::from("/a \"b\\c")] }, &[]);
        assert!(tricky.contains("(subpath \"/a \\\"b\\\\c\")"), "{tricky}");
    }
}
