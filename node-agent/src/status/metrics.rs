//! The snapshot in the Prometheus text format (version 0.0.4): gauges for state, counters for
//! totals, one series per run in flight.

use std::fmt::Write;

use shared::status::SystemMode;

use super::snapshot::StatusSnapshot;
use crate::conductor::lease::LeaseStatus;

/// A label value with `\`, `"` and newlines escaped.
fn label(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn flag(on: bool) -> f64 {
    f64::from(u8::from(on))
}

pub fn render(snapshot: &StatusSnapshot) -> String {
    let conductor = &snapshot.conductor;
    let node = label(&conductor.node_id);
    let lease = &conductor.lease;
    let loops = &conductor.loops;
    let runner = &snapshot.runner;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node_id=\"{node}\"}} {value}");
    };
    metric("baa_agent_up", "gauge", "1 while the agent runs.", 1.0);
    metric("baa_lease_is_leader", "gauge", "1 while this node leads.", flag(lease.state == LeaseStatus::Leader));
    metric(
        "baa_lease_degraded",
        "gauge",
        "1 while this node cannot reach the control plane for the lease.",
        flag(lease.state == LeaseStatus::Degraded),
    );
    metric("baa_lease_term", "gauge", "The lease term this node last saw.", lease.term as f64);
    metric("baa_lease_consecutive_failures", "gauge", "Failed lease calls in a row.", f64::from(lease.consecutive_failures));
    metric("baa_fleet_paused", "gauge", "1 while the fleet is paused.", flag(conductor.mode == Some(SystemMode::Paused)));
    metric("baa_fleet_draining", "gauge", "1 while the fleet drains.", flag(conductor.mode == Some(SystemMode::Draining)));
    metric("baa_syncs_total", "counter", "agents.sync calls this agent made.", loops.sync.syncs as f64);
    metric("baa_sync_consecutive_failures", "gauge", "Failed agents.sync calls in a row.", f64::from(loops.sync.consecutive_failures));
    metric(
        "baa_sync_next_ms",
        "gauge",
        "The pace the control plane asked for last (next_sync_ms).",
        loops.sync.next_sync_ms.unwrap_or(0) as f64,
    );
    metric("baa_scheduler_claimed_total", "counter", "Tasks claimed by this node's scheduler.", loops.scheduler.claimed as f64);
    metric("baa_scheduler_planned_total", "counter", "Tasks planned by this node's scheduler.", loops.scheduler.planned as f64);
    metric("baa_scheduler_reaped_total", "counter", "Lost step attempts reaped by this node's scheduler.", loops.scheduler.reaped as f64);
    metric("baa_runner_capacity", "gauge", "Steps this host runs at once.", runner.capacity as f64);
    metric("baa_runner_active_runs", "gauge", "Runs this host is running or settling.", runner.active as f64);
    metric("baa_runner_claimed_total", "counter", "Steps granted to this host's runner.", runner.claimed_total as f64);
    let _ = writeln!(text, "# HELP baa_run_output_bytes Bytes a run in flight has written, by stream.\n# TYPE baa_run_output_bytes gauge");
    for run in &runner.runs {
        let run_id = label(&run.view.run_id);
        for (stream, bytes) in [("stdout", run.view.stdout_bytes), ("stderr", run.view.stderr_bytes)] {
            let _ = writeln!(text, "baa_run_output_bytes{{node_id=\"{node}\",run_id=\"{run_id}\",stream=\"{stream}\"}} {bytes}");
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_typed_and_labelled() {
        let mut snapshot = crate::status::snapshot::sample::snapshot();
        snapshot.conductor.node_id = "mini-\"main\"".into();
        snapshot.conductor.lease.term = 4;
        snapshot.runner.active = 1;
        snapshot.runner.claimed_total = 3;
        let text = render(&snapshot);
        assert!(text.contains("baa_lease_is_leader{node_id=\"mini-\\\"main\\\"\"} 1"));
        assert!(text.contains("baa_lease_term{node_id=\"mini-\\\"main\\\"\"} 4"));
        assert!(text.contains("baa_runner_claimed_total{node_id=\"mini-\\\"main\\\"\"} 3"));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} has no TYPE");
        }
    }
}
