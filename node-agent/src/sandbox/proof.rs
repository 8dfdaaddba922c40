//! The startup proof (SPEC §19): before the runner takes any step, a probe runs under the
//! sandbox exactly as a step would, and must be able to write its worktree, and must fail to
//! read the agent's state directory and to write `$HOME`. What it found is logged, shown on the
//! status page, and decides whether steps are sandboxed (`auto`) or run at all (`required`).

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::exec::wrapper;
use super::policy::{for_step, list_dir, Places};

/// One check of the probe: what was tried, whether it came out as the sandbox requires, and
/// what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub expected: bool,
    pub observed: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Proof {
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl Proof {
    /// One line for the log and the status page.
    pub fn summary(&self) -> String {
        let checks: Vec<String> = self.checks.iter().map(|check| format!("{}: {}", check.check, check.observed)).collect();
        format!("{} ({})", if self.passed { "proven" } else { "NOT proven" }, checks.join(", "))
    }
}

const PROBE: &str = r#"
if echo ok > "$BAA_PROBE_WORKTREE/probe" 2>/dev/null; then echo "write worktree=written"; else echo "write worktree=refused"; fi
if cat "$BAA_PROBE_CANARY" >/dev/null 2>&1; then echo "read state=read"; else echo "read state=refused"; fi
if echo x > "$HOME/.baa-sandbox-probe" 2>/dev/null; then echo "write home=written"; rm -f "$HOME/.baa-sandbox-probe"; else echo "write home=refused"; fi
"#;

/// What each check must come out as.
const EXPECTED: [(&str, &str); 3] = [("write worktree", "written"), ("read state", "refused"), ("write home", "refused")];

/// Runs the probe under the sandbox of `base` (the agent's places), as `agent_binary` runs steps.
pub fn run(agent_binary: &Path, base: &Places) -> Proof {
    let worktree = base.worktrees_dir.join(".sandbox-proof");
    let run_dir = base.runs_dir.join(".sandbox-proof");
    let canary = base.state_dir.join(".sandbox-canary");
    let failed = |why: String| Proof { passed: false, checks: vec![Check { check: "probe".into(), expected: false, observed: why }] };
    for dir in [&worktree, &run_dir, &base.state_dir] {
        if let Err(error) = std::fs::create_dir_all(dir) {
            return failed(format!("{}: {error}", dir.display()));
        }
    }
    if let Err(error) = std::fs::write(&canary, "the sandbox proof's canary: a step must not read this\n") {
        return failed(format!("{}: {error}", canary.display()));
    }
    let places = Places { worktree: worktree.clone(), run_dir: run_dir.clone(), ..base.clone() };
    let policy = for_step(&places, &list_dir);
    let proof = match wrapper(agent_binary, &run_dir, &policy, &[worktree.clone(), run_dir.clone()]) {
        Err(error) => failed(format!("writing the policy: {error}")),
        Ok(prefix) => {
            let output = Command::new(&prefix[0])
                .args(&prefix[1..])
                .args(["/bin/sh", "-c", PROBE])
                .current_dir(&worktree)
                .env("BAA_PROBE_WORKTREE", &worktree)
                .env("BAA_PROBE_CANARY", &canary)
                .env("HOME", &base.home)
                .output();
            match output {
                Err(error) => failed(format!("starting the probe: {error}")),
                Ok(output) => judge(&String::from_utf8_lossy(&output.stdout), &String::from_utf8_lossy(&output.stderr)),
            }
        }
    };
    let _ = std::fs::remove_dir_all(&worktree);
    let _ = std::fs::remove_dir_all(&run_dir);
    let _ = std::fs::remove_file(&canary);
    proof
}

/// The probe's output (`check=outcome` lines) against what the sandbox requires.
pub fn judge(stdout: &str, stderr: &str) -> Proof {
    let checks: Vec<Check> = EXPECTED
        .iter()
        .map(|(check, wanted)| {
            let observed = stdout
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{check}=")))
                .map(str::to_string)
                .unwrap_or_else(|| format!("no answer ({})", stderr.trim().lines().last().unwrap_or("the probe said nothing")));
            Check { check: check.to_string(), expected: observed == *wanted, observed }
        })
        .collect();
    Proof { passed: checks.iter().all(|check| check.expected), checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_passes_only_when_every_check_comes_out_as_required() {
        let good = judge("write worktree=written\nread state=refused\nwrite home=refused\n", "");
        assert!(good.passed, "{good:?}");
        assert_eq!(good.summary(), "proven (write worktree: written, read state: refused, write home: refused)");
        let open = judge("write worktree=written\nread state=read\nwrite home=written\n", "");
        assert!(!open.passed);
        assert_eq!(open.checks.iter().filter(|check| !check.expected).count(), 2);
        let broken = judge("", "sandbox: landlock: not supported\n");
        assert!(!broken.passed && broken.summary().contains("no answer (sandbox: landlock: not supported)"), "{}", broken.summary());
    }
}
