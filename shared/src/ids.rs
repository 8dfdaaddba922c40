//! Identifier rules shared by both sides.

/// Longest identifier (node, controller, worker, task, step, run id) accepted on the wire.
pub const MAX_ID_LEN: usize = 128;

/// Whether `value` may name a node, controller or worker: 1..=128 characters of
/// `[A-Za-z0-9._-]`, starting with a letter or digit. Node ids travel inside node-bound
/// tokens and run directory names, so they must stay filesystem- and header-safe.
pub fn is_valid_node_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The git branch a task's worktree uses.
pub fn branch_name_for(task_id: &str) -> String {
    format!("baa/{task_id}")
}

/// Where a task's repository lives, as `tasks.create` accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoLocation {
    /// An absolute path on the hosts.
    Path,
    /// A git URL: each host keeps a mirror clone of it.
    Url,
}

/// `https://…`, `ssh://…`, `file://…`, or scp-like `user@host:path`.
pub fn repo_location(repo: &str) -> Option<RepoLocation> {
    if repo.chars().any(|c| c.is_control()) {
        return None;
    }
    if repo.starts_with('/') {
        return Some(RepoLocation::Path);
    }
    for scheme in ["https://", "ssh://", "file://"] {
        if let Some(rest) = repo.strip_prefix(scheme) {
            return (rest.len() > 1 && !rest.contains(char::is_whitespace)).then_some(RepoLocation::Url);
        }
    }
    let (user_host, path) = repo.split_once(':')?;
    let (user, host) = user_host.split_once('@')?;
    let plain = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (plain(user) && plain(host) && !path.is_empty() && !path.contains(char::is_whitespace)).then_some(RepoLocation::Url)
}

/// Whether `value` is a full git commit id (40 lowercase hex digits).
pub fn is_commit_id(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_locations() {
        assert_eq!(repo_location("/Users/me/src/app"), Some(RepoLocation::Path));
        for url in ["https://github.com/me/app.git", "ssh://git@host/app", "file:///srv/app.git", "git@github.com:me/app.git"] {
            assert_eq!(repo_location(url), Some(RepoLocation::Url), "{url}");
        }
        for refused in ["relative/path", "app", "", "http://host/app", "git@:x", "@host:x", "file://", "C:\\app", "/tmp/a\nb"] {
            assert_eq!(repo_location(refused), None, "{refused}");
        }
    }

    #[test]
    fn node_ids() {
        assert!(is_valid_node_id("mini-main"));
        assert!(is_valid_node_id("mac.standby_2"));
        assert!(!is_valid_node_id(""));
        assert!(!is_valid_node_id("-lead"));
        assert!(!is_valid_node_id("a b"));
        assert!(!is_valid_node_id(&"x".repeat(129)));
    }
}
