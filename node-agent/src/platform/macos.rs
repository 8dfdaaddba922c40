//! macOS: BSD `ps` (there is no `/proc`): `ps -o stat=` for the state, `ps -A -o pgid=,time=`
//! for the CPU time of a process group.

use std::process::{Command, Stdio};

use super::parse_ps_time;

fn ps(args: &[&str]) -> Option<String> {
    let output = Command::new("ps").args(args).stderr(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn is_zombie(pid: i32) -> bool {
    ps(&["-o", "stat=", "-p", &pid.to_string()]).is_some_and(|state| state.trim_start().starts_with('Z'))
}

/// Whether a process of group `pgid` is still running (zombies waiting to be reaped are not).
pub fn group_has_live_process(pgid: i32) -> bool {
    let group = pgid.to_string();
    ps(&["-A", "-o", "pgid=,stat="]).is_some_and(|listing| {
        listing
            .lines()
            .filter_map(|line| line.trim().split_once(char::is_whitespace))
            .any(|(id, stat)| id == group && !stat.trim().starts_with('Z'))
    })
}

/// Sums `ps`'s CPU time over every process whose group is `pgid`, exited and waited-for
/// children included (`-S`); `None` when there is none.
pub fn group_cpu_ms(pgid: i32) -> Option<u64> {
    let listing = ps(&["-A", "-S", "-o", "pgid=,time="])?;
    let group = pgid.to_string();
    let times: Vec<u64> = listing
        .lines()
        .filter_map(|line| line.trim().split_once(char::is_whitespace))
        .filter(|(id, _)| *id == group)
        .filter_map(|(_, time)| parse_ps_time(time))
        .collect();
    (!times.is_empty()).then(|| times.iter().sum())
}

/// A notification in the macOS Notification Center (`osascript`); whether it was raised.
pub fn desktop_notification(title: &str, text: &str) -> bool {
    // AppleScript string literals: backslashes and double quotes escaped.
    let quote = |text: &str| format!("\"{}\"", text.chars().take(200).collect::<String>().replace('\\', "\\\\").replace('"', "\\\""));
    let script = format!("display notification {} with title {}", quote(text), quote(title));
    Command::new("osascript")
        .args(["-e", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// On macOS a step's policy is a Seatbelt profile that `/usr/bin/sandbox-exec` applies before the
/// step starts; `node-agent sandbox-exec` is not used there.
pub fn restrict_to_policy(_policy: &crate::sandbox::policy::Policy) -> Result<(), String> {
    Err("on macOS steps start under /usr/bin/sandbox-exec with a Seatbelt profile, not node-agent sandbox-exec".into())
}
