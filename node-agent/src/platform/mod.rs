//! Everything that differs between the hosts' platforms, behind one small interface, with a
//! Linux implementation (`/proc`) and a macOS one (`ps`); both are compiled by
//! `scripts/check-macos`, and nothing outside this module reads `/proc` (a tidy test says so).
//!
//! - [`is_zombie`]: a process that has exited but not been reaped (it still answers signal 0).
//! - [`process_start`]: how the system describes a process's start, to tell it from a later
//!   process that reuses its pid (`ps -o lstart=` on both).
//! - [`group_cpu_ms`]: the CPU time (user + system, waited children included) of every live
//!   process of a process group.
//! - [`group_has_live_process`]: whether a process group still has a running (not zombie)
//!   process: zombies linger where PID 1 reaps orphans late (some containers).
//! - [`free_disk_bytes`]: bytes available to this user on the file system holding a path
//!   (`statvfs(3)` on both).
//! - [`desktop_notification`]: a notification on the desktop (`osascript` on macOS; Linux
//!   hosts have none: false).
//! - [`restrict_to_policy`]: a sandboxed step's policy enforced on this process (Landlock on
//!   Linux; on macOS steps start under `/usr/bin/sandbox-exec` instead, so it refuses).

#[cfg(target_os = "linux")]
mod landlock;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;

#[cfg(target_os = "linux")]
pub use landlock::restrict_to_policy;
#[cfg(target_os = "linux")]
pub use linux::{desktop_notification, group_cpu_ms, group_has_live_process, is_zombie};
#[cfg(target_os = "macos")]
pub use macos::{desktop_notification, group_cpu_ms, group_has_live_process, is_zombie, restrict_to_policy};

use std::path::Path;
use std::process::{Command, Stdio};

/// `ps -o lstart= -p <pid>`: the same on Linux (procps) and macOS (BSD ps).
pub fn process_start(pid: i32) -> Option<String> {
    let output = Command::new("ps").args(["-o", "lstart=", "-p", &pid.to_string()]).stderr(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !text.is_empty()).then_some(text)
}

/// Bytes available to this user on the file system holding `path` (created if missing).
pub fn free_disk_bytes(path: &Path) -> Option<u64> {
    let _ = std::fs::create_dir_all(path);
    let text = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `text` is a NUL-terminated path and `stats` a statvfs the call fills in.
    if unsafe { libc::statvfs(text.as_ptr(), &mut stats) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

/// A CPU time as `ps -o time=` prints it: `[[dd-]hh:]mm:ss[.cc]` → milliseconds. Used by the
/// macOS implementation; kept here so its tests run on every platform.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn parse_ps_time(text: &str) -> Option<u64> {
    let text = text.trim();
    let (days, clock) = match text.split_once('-') {
        Some((days, clock)) => (days.parse::<u64>().ok()?, clock),
        None => (0, text),
    };
    let mut parts: Vec<&str> = clock.split(':').collect();
    let seconds: f64 = parts.pop()?.parse().ok()?;
    let minutes: u64 = parts.pop().map_or(Some(0), |minutes| minutes.parse().ok())?;
    let hours: u64 = parts.pop().map_or(Some(0), |hours| hours.parse().ok())?;
    if !parts.is_empty() || !(0.0..60.0).contains(&seconds) {
        return None;
    }
    Some((((days * 24 + hours) * 60 + minutes) * 60) * 1_000 + (seconds * 1_000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_times_as_both_platforms_print_them() {
        assert_eq!(parse_ps_time("0:00.01"), Some(10)); // macOS
        assert_eq!(parse_ps_time("00:01:05"), Some(65_000)); // procps
        assert_eq!(parse_ps_time("2-03:04:05"), Some(((2 * 24 + 3) * 3600 + 4 * 60 + 5) * 1_000));
        assert_eq!(parse_ps_time("soon"), None);
        assert_eq!(parse_ps_time("1:2:3:4"), None);
    }

    #[test]
    fn this_process_and_this_disk() {
        let me = std::process::id() as i32;
        assert!(!is_zombie(me));
        assert!(process_start(me).is_some());
        let dir = tempfile::tempdir().unwrap();
        assert!(free_disk_bytes(dir.path()).is_some_and(|free| free > 0));
    }

    #[test]
    fn a_busy_group_spends_cpu() {
        use std::os::unix::process::CommandExt;
        let mut child =
            Command::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 5"]).process_group(0).spawn().unwrap();
        let pgid = child.id() as i32;
        let started = std::time::Instant::now();
        let mut spent = 0;
        while started.elapsed() < std::time::Duration::from_secs(5) {
            spent = group_cpu_ms(pgid).unwrap_or(0);
            if spent >= 50 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(spent >= 50, "{spent} ms");
        assert_eq!(group_cpu_ms(i32::MAX), None, "no such group");
    }
}
