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
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The git branch a task's worktree uses.
pub fn branch_name_for(task_id: &str) -> String {
    format!("baa/{task_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

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
