//! The snapshot in the Prometheus text format (version 0.0.4): gauges for state, counters for
//! totals, one series per run in flight.

use std::fmt::Write;

use serde_json::Value;

fn number(value: &Value) -> f64 {
    match value {
        Value::Bool(flag) => f64::from(u8::from(*flag)),
        other => other.as_f64().unwrap_or(0.0),
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn label(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(snapshot: &Value) -> String {
    let node = label(snapshot["node_id"].as_str().unwrap_or(""));
    let lease = &snapshot["lease"];
    let loops = &snapshot["loops"];
    let runner = &snapshot["runner"];
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{node_id=\"{node}\"}} {value}");
    };
    metric("baa_agent_up", "gauge", "1 while the agent runs.", 1.0);
    metric("baa_lease_is_leader", "gauge", "1 while this node leads.", f64::from(u8::from(lease["state"] == "leader")));
    metric(
        "baa_lease_degraded",
        "gauge",
        "1 while this node cannot reach the control plane for the lease.",
        f64::from(u8::from(lease["state"] == "degraded")),
    );
    metric("baa_lease_term", "gauge", "The lease term this node last saw.", number(&lease["term"]));
    metric("baa_lease_consecutive_failures", "gauge", "Failed lease calls in a row.", number(&lease["consecutive_failures"]));
    metric("baa_fleet_paused", "gauge", "1 while the fleet is paused.", f64::from(u8::from(snapshot["mode"] == "paused")));
    metric("baa_fleet_draining", "gauge", "1 while the fleet drains.", f64::from(u8::from(snapshot["mode"] == "draining")));
    metric("baa_syncs_total", "counter", "agents.sync calls this agent made.", number(&loops["sync"]["syncs"]));
    metric("baa_sync_consecutive_failures", "gauge", "Failed agents.sync calls in a row.", number(&loops["sync"]["consecutive_failures"]));
    metric(
        "baa_sync_next_ms",
        "gauge",
        "The pace the control plane asked for last (next_sync_ms).",
        number(&loops["sync"]["next_sync_ms"]),
    );
    metric("baa_scheduler_claimed_total", "counter", "Tasks claimed by this node's scheduler.", number(&loops["scheduler"]["claimed"]));
    metric("baa_scheduler_planned_total", "counter", "Tasks planned by this node's scheduler.", number(&loops["scheduler"]["planned"]));
    metric(
        "baa_scheduler_reaped_total",
        "counter",
        "Lost step attempts reaped by this node's scheduler.",
        number(&loops["scheduler"]["reaped"]),
    );
    metric("baa_runner_capacity", "gauge", "Steps this host runs at once.", number(&runner["capacity"]));
    metric("baa_runner_active_runs", "gauge", "Runs this host is running or settling.", number(&runner["active"]));
    metric("baa_runner_claimed_total", "counter", "Steps granted to this host's runner.", number(&runner["claimed_total"]));
    let runs = runner["runs"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(text, "# HELP baa_run_output_bytes Bytes a run in flight has written, by stream.\n# TYPE baa_run_output_bytes gauge");
    for run in &runs {
        let run_id = label(run["run_id"].as_str().unwrap_or(""));
        for stream in ["stdout", "stderr"] {
            let _ = writeln!(
                text,
                "baa_run_output_bytes{{node_id=\"{node}\",run_id=\"{run_id}\",stream=\"{stream}\"}} {}",
                number(&run[format!("{stream}_bytes")])
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_series_is_typed_and_labelled() {
        let text = render(&json!({
            "node_id": "mini-\"main\"",
            "lease": {"state": "leader", "term": 4},
            "mode": "running",
            "runner": {"capacity": 1, "active": 1, "claimed_total": 3, "runs": [{"run_id": "r1", "stdout_bytes": 10, "stderr_bytes": 0}]},
        }));
        assert!(text.contains("baa_lease_is_leader{node_id=\"mini-\\\"main\\\"\"} 1"));
        assert!(text.contains("baa_lease_term{node_id=\"mini-\\\"main\\\"\"} 4"));
        assert!(text.contains("baa_run_output_bytes{node_id=\"mini-\\\"main\\\"\",run_id=\"r1\",stream=\"stdout\"} 10"));
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name = line.split('{').next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} has no TYPE");
        }
    }
}
