//! A step that hits the sandbox's wall says so in its failure (SPEC §19): the first line of its
//! output where a tool reports a refused path (`cat: /x: Permission denied`, Python's
//! `PermissionError: [Errno 13] Permission denied: '/x'`, node's `EACCES: permission denied,
//! open '/x'`) names the path in the step's error, so the person reading the task sees what was
//! out of reach rather than a bare exit code.

const SIGNS: [&str; 3] = ["permission denied", "operation not permitted", "eacces"];

/// The path of the first refusal in `output`, if any line reports one.
pub fn first_refused_path(output: &str) -> Option<String> {
    output.lines().filter(|line| SIGNS.iter().any(|sign| line.to_ascii_lowercase().contains(sign))).find_map(path_in)
}

/// The first absolute path in a line, without the quotes and punctuation around it.
fn path_in(line: &str) -> Option<String> {
    line.split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '`')
        .map(|word| word.trim_end_matches([':', ',', ')', ';']))
        .find(|word| word.starts_with('/') && word.len() > 1)
        .map(str::to_string)
}

/// The note added to a sandboxed step's error.
pub fn note(path: &str) -> String {
    format!("the sandbox refused {path} (outside what a step may reach; --sandbox-read and --sandbox-write add places)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_path_of_each_tools_message() {
        for (line, path) in [
            ("cat: /home/ann/.ssh/id_ed25519: Permission denied", "/home/ann/.ssh/id_ed25519"),
            ("sh: 1: cannot create /home/ann/x: Permission denied", "/home/ann/x"),
            ("PermissionError: [Errno 13] Permission denied: '/srv/repo/.git/config.lock'", "/srv/repo/.git/config.lock"),
            ("Error: EACCES: permission denied, open '/etc/baa/secret'", "/etc/baa/secret"),
            ("touch: cannot touch '/root/y': Permission denied", "/root/y"),
            ("kill: (4242) - Operation not permitted", ""),
        ] {
            let found = first_refused_path(&format!("some output\n{line}\nmore"));
            assert_eq!(found.as_deref().unwrap_or(""), path, "{line}");
        }
        assert_eq!(first_refused_path("all good\n/usr/bin/true ran"), None);
    }
}
