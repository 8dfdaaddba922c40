//! The status page: one HTML document rendered from the snapshot, readable at a glance and
//! without JavaScript; it reloads itself every few seconds. Every value is HTML-escaped.

use serde_json::Value;

/// Seconds between reloads.
pub const REFRESH_SEC: u32 = 3;

pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A JSON value as plain text: strings bare, null as a dash.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(text) => escape(text),
        other => escape(&other.to_string()),
    }
}

fn bytes(value: &Value) -> String {
    let count = value.as_f64().unwrap_or(0.0);
    match count {
        c if c >= 1e9 => format!("{:.1} GB", c / 1e9),
        c if c >= 1e6 => format!("{:.1} MB", c / 1e6),
        c if c >= 1e3 => format!("{:.1} kB", c / 1e3),
        c => format!("{c} B"),
    }
}

fn duration_ms(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    match seconds {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

fn tile(label: &str, value: &str, class: &str) -> String {
    format!("<div class=\"tile {class}\"><div class=\"label\">{label}</div><div class=\"value\" data-field=\"{label}\">{value}</div></div>")
}

pub fn render(snapshot: &Value) -> String {
    let now = snapshot["now_ms"].as_i64().unwrap_or(0);
    let lease = &snapshot["lease"];
    let lease_state = lease["state"].as_str().unwrap_or("unknown");
    let mode = snapshot["mode"].as_str().unwrap_or("unknown");
    let runner = &snapshot["runner"];
    let mut html = String::new();
    html.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_SEC}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — baa-conductor</title><style>{STYLE}</style></head><body>",
        text(&snapshot["node_id"])
    ));
    html.push_str(&format!(
        "<header><h1>{} <span class=\"muted\">on {} · {}</span></h1><p class=\"muted\">control plane {}{}</p></header>",
        text(&snapshot["node_id"]),
        text(&snapshot["host"]),
        text(&snapshot["role"]),
        text(&snapshot["control_api_base"]),
        if snapshot["embedded"]["enabled"] == true { " (embedded in this agent)" } else { "" },
    ));
    html.push_str("<section class=\"tiles\">");
    html.push_str(&tile("mode", &escape(mode), if mode == "running" { "good" } else { "warn" }));
    html.push_str(&tile(
        "leader",
        &format!("{} <span class=\"muted\">term {}</span>", text(&lease["leader_id"]), text(&lease["term"])),
        "",
    ));
    html.push_str(&tile(
        "this node",
        &escape(lease_state),
        match lease_state {
            "leader" => "good",
            "standby" => "",
            _ => "bad",
        },
    ));
    html.push_str(&tile("runs", &format!("{} of {}", text(&runner["active"]), text(&runner["capacity"])), ""));
    html.push_str("</section>");

    html.push_str("<h2>Runs in flight</h2>");
    let runs = runner["runs"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        html.push_str("<p class=\"muted\" id=\"no-runs\">No run in flight.</p>");
    } else {
        html.push_str("<table id=\"runs\"><tr><th>task</th><th>step</th><th>phase</th><th>running for</th><th>stdout</th><th>stderr</th><th>last output</th><th>CPU</th><th>pid</th></tr>");
        for run in &runs {
            let running_for = run["started_at_ms"].as_i64().map(|started| duration_ms(now - started)).unwrap_or_else(|| "—".into());
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{running_for}</td><td>{}</td><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td></tr>",
                text(&run["task_id"]),
                text(&run["title"]),
                text(&run["phase"]),
                bytes(&run["stdout_bytes"]),
                bytes(&run["stderr_bytes"]),
                duration_ms(run["last_output_age_ms"].as_i64().unwrap_or(0)),
                run["cpu_ms"].as_i64().map(duration_ms).unwrap_or_else(|| "—".into()),
                text(&run["pid"]),
            ));
        }
        html.push_str("</table>");
    }

    let recent = runner["recent"].as_array().cloned().unwrap_or_default();
    let failures: Vec<&Value> = recent.iter().filter(|run| run["phase"] != "succeeded").collect();
    finished_runs(&mut html, "Recent failures", "failures", &failures, "why", "bad", "None.");
    finished_runs(&mut html, "Recently finished", "recent", &recent.iter().collect::<Vec<_>>(), "outcome", "", "Nothing yet.");

    let warnings = snapshot["warnings"].as_array().cloned().unwrap_or_default();
    html.push_str("<h2>Warnings</h2>");
    if warnings.is_empty() {
        html.push_str("<p class=\"muted\">None.</p>");
    } else {
        html.push_str("<ul id=\"warnings\">");
        for warning in &warnings {
            html.push_str(&format!("<li>{}</li>", text(warning)));
        }
        html.push_str("</ul>");
    }
    let loops = &snapshot["loops"];
    html.push_str(&format!(
        "<p class=\"muted\">sync: {} made, next in {} ms, {} failure(s) in a row, last error {} · scheduler: {} planned, {} reaped, last error {} · runner: {} steps started · refreshed every {REFRESH_SEC} s · <a href=\"/v1/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>",
        text(&loops["sync"]["syncs"]),
        text(&loops["sync"]["next_sync_ms"]),
        text(&loops["sync"]["consecutive_failures"]),
        text(&loops["sync"]["last_error"]),
        text(&loops["scheduler"]["planned"]),
        text(&loops["scheduler"]["reaped"]),
        text(&loops["scheduler"]["last_error"]),
        text(&runner["claimed_total"]),
    ));
    html.push_str("</body></html>");
    html
}

/// A titled table of finished runs (task, step, how it ended, why), or `empty` when there is none.
fn finished_runs(html: &mut String, title: &str, id: &str, runs: &[&Value], last_column: &str, phase_class: &str, empty: &str) {
    html.push_str(&format!("<h2>{title}</h2>"));
    if runs.is_empty() {
        html.push_str(&format!("<p class=\"muted\">{empty}</p>"));
        return;
    }
    html.push_str(&format!("<table id=\"{id}\"><tr><th>task</th><th>step</th><th>ended</th><th>{last_column}</th></tr>"));
    for run in runs {
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"{phase_class}\">{}</td><td>{}</td></tr>",
            text(&run["task_id"]),
            text(&run["title"]),
            text(&run["phase"]),
            text(&run["outcome"]),
        ));
    }
    html.push_str("</table>");
}

const STYLE: &str = "body{font:15px/1.4 -apple-system,system-ui,sans-serif;margin:1.5rem;color:#222;max-width:70rem}\
h1{font-size:1.4rem;margin:0}h2{font-size:1.05rem;margin-top:1.6rem}.muted{color:#777;font-weight:normal}\
.tiles{display:flex;gap:.8rem;flex-wrap:wrap;margin-top:1rem}.tile{border:1px solid #ddd;border-radius:8px;padding:.6rem .9rem;min-width:9rem}\
.tile .label{font-size:.8rem;color:#777;text-transform:uppercase}.tile .value{font-size:1.2rem}\
.good{border-color:#2a2;color:#161}.warn{border-color:#d90;color:#850}.bad{border-color:#c33;color:#a22}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eee}\
code{font-size:.85em}";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_escaped_and_the_page_reloads_itself() {
        let page = render(&json!({
            "node_id": "mini<script>",
            "mode": "paused",
            "lease": {"state": "leader", "leader_id": "mini-main", "term": 3},
            "runner": {"active": 1, "capacity": 2, "runs": [{"task_id": "t1", "title": "a & b", "phase": "running", "started_at_ms": 0, "stdout_bytes": 2048}], "recent": []},
            "warnings": ["no token"],
            "now_ms": 61_000,
        }));
        assert!(page.contains("mini&lt;script&gt;") && !page.contains("mini<script>"));
        assert!(page.contains("a &amp; b") && page.contains("1m 01s") && page.contains("2.0 kB"));
        assert!(page.contains("http-equiv=\"refresh\"") && page.contains(">paused<") && page.contains("no token"));
    }
}
