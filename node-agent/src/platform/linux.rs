//! Linux: `/proc/<pid>/stat` (state, process group, user and system time in clock ticks).

/// The fields of `/proc/<pid>/stat` after the command name, which may itself hold spaces and
/// parentheses; the state is the first of them.
fn stat_fields(pid: &str) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

pub fn is_zombie(pid: i32) -> bool {
    stat_fields(&pid.to_string()).is_some_and(|fields| fields.first().is_some_and(|state| state == "Z"))
}

/// Whether a process of group `pgid` is still running (zombies waiting to be reaped are not).
pub fn group_has_live_process(pgid: i32) -> bool {
    let group = pgid.to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|name| name.bytes().all(|b| b.is_ascii_digit())) else { return false };
        stat_fields(pid).is_some_and(|fields| fields.get(2) == Some(&group) && fields.first().map(String::as_str) != Some("Z"))
    })
}

/// Sums utime + stime over every process whose group is `pgid`, with the cutime + cstime of
/// the children each has waited for (a shell loop's short commands); `None` when there is none.
pub fn group_cpu_ms(pgid: i32) -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let group = pgid.to_string();
    let mut ticks = 0u64;
    let mut found = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|name| name.bytes().all(|b| b.is_ascii_digit())) else { continue };
        let Some(fields) = stat_fields(pid) else { continue };
        // After the name: state(0) ppid(1) pgrp(2) … utime(11) stime(12) cutime(13) cstime(14).
        if fields.get(2).map(String::as_str) != Some(group.as_str()) {
            continue;
        }
        found = true;
        ticks += fields.iter().skip(11).take(4).filter_map(|time| time.parse::<u64>().ok()).sum::<u64>();
    }
    found.then(|| ticks * 1_000 / ticks_per_second)
}

/// No desktop to notify on the Linux hosts this runs on (servers, CI): false.
pub fn desktop_notification(_title: &str, _text: &str) -> bool {
    false
}
