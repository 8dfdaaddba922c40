//! The policy enforced on this process and what it starts, by Landlock (Linux 5.13+; signal
//! scoping from ABI 6): every filesystem access is handled, so what no rule allows is refused,
//! and signals to processes outside the sandbox (the agent) are refused too.

use landlock::{path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI};

use crate::sandbox::policy::Policy;

/// The newest ABI this code asks for; an older kernel enforces what it can (best effort), and
/// says so in the status.
const ABI_WANTED: ABI = ABI::V6;

/// How far the kernel enforced the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforced {
    Fully,
    Partly,
    Not,
}

/// Restricts this thread (and every process it then starts) to `policy`.
pub fn restrict_self(policy: &Policy) -> Result<Enforced, String> {
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_WANTED))
        .and_then(|ruleset| ruleset.scope(Scope::Signal))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(&policy.read, AccessFs::from_read(ABI_WANTED))))
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(&policy.write, AccessFs::from_all(ABI_WANTED))))
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(|error| format!("landlock: {error}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Enforced::Fully,
        RulesetStatus::PartiallyEnforced => Enforced::Partly,
        RulesetStatus::NotEnforced => Enforced::Not,
    })
}

/// What `sandbox-exec` needs: the policy in force, or why not (a kernel without Landlock is a
/// refusal, never an unconfined step).
pub fn restrict_to_policy(policy: &Policy) -> Result<(), String> {
    match restrict_self(policy)? {
        Enforced::Not => Err("this kernel does not enforce Landlock".into()),
        Enforced::Fully | Enforced::Partly => Ok(()),
    }
}
