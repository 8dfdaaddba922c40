//! Stall detection (SPEC §13): a step shows progress when its output grows, its worktree
//! changes, or its process group spends CPU time; one that shows none for `stall_after_sec` is
//! stalled. Pure: the run's machine feeds it what the driver saw, with the time.

/// What the driver saw of a running step beside its output, when the machine asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// CPU time spent by the step's process group (user + system, waited children included).
    pub cpu_ms: Option<u64>,
    /// A fingerprint of the worktree's changed and untracked files (paths, sizes, times).
    pub worktree_stamp: Option<u64>,
}

/// The last progress of a running step, and what it was measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StallWatch {
    pub last_progress_ms: i64,
    last: Activity,
}

impl StallWatch {
    pub fn new(started_ms: i64) -> StallWatch {
        StallWatch { last_progress_ms: started_ms, last: Activity::default() }
    }

    /// The step's output grew.
    pub fn output(&mut self, now_ms: i64) {
        self.last_progress_ms = self.last_progress_ms.max(now_ms);
    }

    /// A sample of the step's activity: any change from the last sample is progress. The
    /// first sample of each kind is only the reference (a sample that could not be taken
    /// changes nothing).
    pub fn sample(&mut self, now_ms: i64, activity: Activity) {
        let changed = |before: Option<u64>, after: Option<u64>| matches!((before, after), (Some(before), Some(after)) if before != after);
        if changed(self.last.cpu_ms, activity.cpu_ms) || changed(self.last.worktree_stamp, activity.worktree_stamp) {
            self.last_progress_ms = self.last_progress_ms.max(now_ms);
        }
        self.last.cpu_ms = activity.cpu_ms.or(self.last.cpu_ms);
        self.last.worktree_stamp = activity.worktree_stamp.or(self.last.worktree_stamp);
    }

    /// When the step counts as stalled if nothing happens before.
    pub fn stalls_at_ms(&self, stall_after_sec: i64) -> i64 {
        self.last_progress_ms + stall_after_sec.max(1) * 1_000
    }
}

/// How often to look at a step's CPU time and worktree: five looks per stall window, at least
/// one a second and at most 30 s apart.
pub fn sample_interval_ms(stall_after_sec: i64) -> i64 {
    (stall_after_sec * 1_000 / 5).clamp(1_000, 30_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu_ms: u64, stamp: u64) -> Activity {
        Activity { cpu_ms: Some(cpu_ms), worktree_stamp: Some(stamp) }
    }

    #[test]
    fn output_cpu_time_or_a_changed_worktree_is_progress() {
        let mut watch = StallWatch::new(0);
        watch.sample(1_000, sample(50, 7));
        assert_eq!(watch.last_progress_ms, 0, "the first sample is the reference");
        watch.sample(2_000, sample(50, 7));
        assert_eq!(watch.stalls_at_ms(5), 5_000, "nothing moved");
        watch.sample(3_000, sample(60, 7));
        assert_eq!(watch.last_progress_ms, 3_000, "CPU time spent");
        watch.sample(4_000, sample(60, 8));
        assert_eq!(watch.last_progress_ms, 4_000, "a file changed");
        watch.sample(5_000, Activity::default());
        watch.sample(6_000, sample(60, 8));
        assert_eq!(watch.last_progress_ms, 4_000, "a failed sample is no change");
        watch.output(7_000);
        assert_eq!(watch.stalls_at_ms(5), 12_000);
    }

    #[test]
    fn five_looks_per_window_within_bounds() {
        assert_eq!(sample_interval_ms(5), 1_000);
        assert_eq!(sample_interval_ms(600), 30_000);
        assert_eq!(sample_interval_ms(60), 12_000);
        assert_eq!(sample_interval_ms(1), 1_000);
    }
}
