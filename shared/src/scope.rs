//! Write scopes (SPEC §12): globs relative to a repository's root that say where a task may
//! write. `*` matches within one path segment, `**` any number of whole segments, `?` one
//! character; everything else is literal. The control plane uses [`may_overlap`] to keep two
//! tasks whose scopes may touch the same file from running at once; the runner uses
//! [`outside`] to find what an agent step changed beyond its scope.

/// Why a glob is not a valid write scope entry.
pub fn check(glob: &str) -> Result<(), String> {
    if glob.is_empty() || glob.len() > 512 {
        return Err("must be 1-512 characters".into());
    }
    if glob.starts_with('/') || glob.contains('\\') {
        return Err(format!("must be relative to the repository's root with / separators, got {glob:?}"));
    }
    if glob.split('/').any(|segment| segment.is_empty() || segment == "." || segment == "..") {
        return Err(format!("must not have empty, . or .. segments, got {glob:?}"));
    }
    if glob.split('/').any(|segment| segment.contains("**") && segment != "**") {
        return Err(format!("** must be a whole segment (src/**/x.rs), got {glob:?}"));
    }
    if glob.chars().any(|c| c.is_control() || matches!(c, '[' | ']' | '{' | '}')) {
        return Err(format!("may use only * ** and ? as wildcards, got {glob:?}"));
    }
    Ok(())
}

/// Whether `path` (relative, `/`-separated) matches `glob`.
pub fn matches(glob: &str, path: &str) -> bool {
    let globs: Vec<&str> = glob.split('/').collect();
    let parts: Vec<&str> = path.split('/').collect();
    match_segments(&globs, &parts)
}

fn match_segments(globs: &[&str], parts: &[&str]) -> bool {
    match globs.split_first() {
        None => parts.is_empty(),
        Some((&"**", rest)) => (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..])),
        Some((glob, rest)) => match parts.split_first() {
            Some((part, tail)) => match_segment(glob.as_bytes(), part.as_bytes()) && match_segments(rest, tail),
            None => false,
        },
    }
}

fn match_segment(glob: &[u8], text: &[u8]) -> bool {
    match glob.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_segment(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_segment(rest, &text[1..]),
        Some((byte, rest)) => text.first() == Some(byte) && match_segment(rest, &text[1..]),
    }
}

/// Whether a path matches any glob of `scope`.
pub fn allows(scope: &[String], path: &str) -> bool {
    scope.iter().any(|glob| matches(glob, path))
}

/// The paths of `changed` outside `scope` (an empty scope allows everything).
pub fn outside<'a>(scope: &[String], changed: &'a [String]) -> Vec<&'a str> {
    if scope.is_empty() {
        return Vec::new();
    }
    changed.iter().map(String::as_str).filter(|path| !allows(scope, path)).collect()
}

fn has_wildcard(text: &str) -> bool {
    text.contains(['*', '?'])
}

/// Whether two globs may match a common path. Exact when either is a plain path; otherwise
/// conservative: two patterns whose literal heads (up to the first segment with a wildcard)
/// agree as far as both go may overlap.
pub fn globs_may_overlap(a: &str, b: &str) -> bool {
    if !has_wildcard(a) {
        return matches(b, a);
    }
    if !has_wildcard(b) {
        return matches(a, b);
    }
    let head = |glob: &str| glob.split('/').take_while(|segment| !has_wildcard(segment)).map(str::to_string).collect::<Vec<_>>();
    let (head_a, head_b) = (head(a), head(b));
    head_a.iter().zip(&head_b).all(|(x, y)| x == y)
}

/// Whether two write scopes may touch a common file. A task without a write scope declares
/// none and conflicts with nothing.
pub fn may_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.iter().any(|y| globs_may_overlap(x, y)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(globs: &[&str]) -> Vec<String> {
        globs.iter().map(|glob| glob.to_string()).collect()
    }

    #[test]
    fn globs_match_within_segments_and_double_stars_across_them() {
        assert!(matches("src/*.rs", "src/main.rs"));
        assert!(!matches("src/*.rs", "src/runner/run.rs"));
        assert!(matches("src/**", "src/runner/run.rs"));
        assert!(matches("src/**/*.rs", "src/main.rs"));
        assert!(matches("src/**/*.rs", "src/a/b/c.rs"));
        assert!(matches("docs/?.md", "docs/a.md"));
        assert!(!matches("docs/?.md", "docs/ab.md"));
        assert!(matches("Cargo.toml", "Cargo.toml"));
        assert!(!matches("Cargo.toml", "node-agent/Cargo.toml"));
        assert!(matches("**/Cargo.toml", "node-agent/Cargo.toml"));
    }

    #[test]
    fn bad_globs_say_why() {
        for bad in ["", "/etc/passwd", "a//b", "../x", "src/./a", "a**/b", "src/[ab].rs", "a\\b"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        for good in ["src/**", "docs/*.md", "Cargo.toml", "**/*.rs", "a/?/b"] {
            assert_eq!(check(good), Ok(()), "{good:?}");
        }
    }

    #[test]
    fn overlap_is_exact_for_paths_and_conservative_for_patterns() {
        assert!(may_overlap(&scope(&["src/**"]), &scope(&["src/main.rs"])));
        assert!(!may_overlap(&scope(&["src/a/**"]), &scope(&["src/b/**"])));
        assert!(!may_overlap(&scope(&["docs/*.md"]), &scope(&["docs/x.txt"])));
        assert!(may_overlap(&scope(&["docs/*.md"]), &scope(&["docs/**"])));
        assert!(may_overlap(&scope(&["**/*.rs"]), &scope(&["src/**"])));
        assert!(!may_overlap(&scope(&["a.txt"]), &scope(&["b.txt"])));
        assert!(!may_overlap(&[], &scope(&["src/**"])), "no scope declared: no conflict");
    }

    #[test]
    fn outside_lists_what_a_scope_does_not_allow() {
        let changed = scope(&["src/a.rs", "README.md", "src/b/c.rs"]);
        assert_eq!(outside(&scope(&["src/**"]), &changed), ["README.md"]);
        assert!(outside(&[], &changed).is_empty());
    }
}
