//! The status page: one HTML document rendered from the snapshot, readable at a glance and
//! without JavaScript; it reloads itself every few seconds. Every value is HTML-escaped.

use super::snapshot::StatusSnapshot;
use crate::runner::RunView;

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

/// A value as escaped text.
fn text(value: impl std::fmt::Display) -> String {
    escape(&value.to_string())
}

/// An optional value as escaped text, a dash when there is none.
fn maybe(value: Option<impl std::fmt::Display>) -> String {
    value.map(text).unwrap_or_else(|| "—".into())
}

fn bytes(count: u64) -> String {
    let count = count as f64;
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

pub fn render(snapshot: &StatusSnapshot) -> String {
    let now = snapshot.now_ms;
    let conductor = &snapshot.conductor;
    let lease = &conductor.lease;
    let lease_state = lease.state.as_str();
    let mode = conductor.mode.map(|mode| mode.as_str()).unwrap_or("unknown");
    let runner = &snapshot.runner;
    let mut html = String::new();
    html.push_str(&format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_SEC}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} — baa-conductor</title><style>{STYLE}</style></head><body>",
        text(&conductor.node_id)
    ));
    html.push_str(&format!(
        "<header><h1>{} <span class=\"muted\">on {} · {}</span></h1><p class=\"muted\">control plane {}{}</p></header>",
        text(&conductor.node_id),
        text(&conductor.host),
        text(conductor.role),
        maybe(conductor.control_api_base.as_deref()),
        if snapshot.embedded.enabled { " (embedded in this agent)" } else { "" },
    ));
    html.push_str("<section class=\"tiles\">");
    html.push_str(&tile("mode", &escape(mode), if mode == "running" { "good" } else { "warn" }));
    html.push_str(&tile(
        "leader",
        &format!("{} <span class=\"muted\">term {}</span>", maybe(lease.leader_id.as_deref()), text(lease.term)),
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
    html.push_str(&tile("runs", &format!("{} of {}", text(runner.active), text(runner.capacity)), ""));
    if let Some(agent_cli) = &runner.agent_cli {
        html.push_str(&tile("coding agent", &escape(agent_cli), if agent_cli.ends_with("not available") { "bad" } else { "" }));
    }
    html.push_str(&tile(
        "sandbox",
        &escape(&runner.sandbox),
        if runner.sandbox.contains(" proven") && !runner.sandbox.contains("NOT") { "good" } else { "bad" },
    ));
    html.push_str("</section>");

    if !conductor.parked_accounts.is_empty() {
        html.push_str(
            "<h2>Parked accounts</h2><table id=\"parked-accounts\"><tr><th>account</th><th>until</th><th>by</th><th>message</th></tr>",
        );
        for parked in &conductor.parked_accounts {
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                text(&parked.account),
                text(crate::people::local_time(parked.parked_until)),
                text(&parked.parked_by),
                text(&parked.message)
            ));
        }
        html.push_str("</table>");
    }
    html.push_str("<h2>Runs in flight</h2>");
    if runner.runs.is_empty() {
        html.push_str("<p class=\"muted\" id=\"no-runs\">No run in flight.</p>");
    } else {
        html.push_str("<table id=\"runs\"><tr><th>task</th><th>step</th><th>phase</th><th>running for</th><th>stdout</th><th>stderr</th><th>last output</th><th>CPU</th><th>pid</th></tr>");
        for run in &runner.runs {
            let view = &run.view;
            let running_for = view.started_at_ms.map(|started| duration_ms(now - started)).unwrap_or_else(|| "—".into());
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{running_for}</td><td>{}</td><td>{}</td><td>{} ago</td><td>{}</td><td>{}</td></tr>",
                text(&view.task_id),
                text(&view.title),
                text(view.phase.as_str()),
                bytes(view.stdout_bytes),
                bytes(view.stderr_bytes),
                duration_ms(view.last_output_age_ms),
                run.cpu_ms.map(|ms| duration_ms(ms as i64)).unwrap_or_else(|| "—".into()),
                maybe(view.pid),
            ));
        }
        html.push_str("</table>");
    }

    let failures: Vec<&RunView> = runner.recent.iter().filter(|run| run.phase.as_str() != "succeeded").collect();
    finished_runs(&mut html, "Recent failures", "failures", &failures, "why", "bad", "None.");
    finished_runs(&mut html, "Recently finished", "recent", &runner.recent.iter().collect::<Vec<_>>(), "outcome", "", "Nothing yet.");

    html.push_str("<h2>Warnings</h2>");
    if conductor.warnings.is_empty() {
        html.push_str("<p class=\"muted\">None.</p>");
    } else {
        html.push_str("<ul id=\"warnings\">");
        for warning in &conductor.warnings {
            html.push_str(&format!("<li>{}</li>", text(warning)));
        }
        html.push_str("</ul>");
    }
    let loops = &conductor.loops;
    html.push_str(&format!(
        "<p class=\"muted\">sync: {} made, next in {} ms, {} failure(s) in a row, last error {} · scheduler: {} planned, {} reaped, last error {} · runner: {} steps started · refreshed every {REFRESH_SEC} s · <a href=\"/v1/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>",
        text(loops.sync.syncs),
        maybe(loops.sync.next_sync_ms),
        text(loops.sync.consecutive_failures),
        maybe(loops.sync.last_error.as_deref()),
        text(loops.scheduler.planned),
        text(loops.scheduler.reaped),
        maybe(loops.scheduler.last_error.as_deref()),
        text(runner.claimed_total),
    ));
    html.push_str("</body></html>");
    html
}

/// A titled table of finished runs (task, step, how it ended, why), or `empty` when there is none.
fn finished_runs(html: &mut String, title: &str, id: &str, runs: &[&RunView], last_column: &str, phase_class: &str, empty: &str) {
    html.push_str(&format!("<h2>{title}</h2>"));
    if runs.is_empty() {
        html.push_str(&format!("<p class=\"muted\">{empty}</p>"));
        return;
    }
    html.push_str(&format!("<table id=\"{id}\"><tr><th>task</th><th>step</th><th>ended</th><th>{last_column}</th></tr>"));
    for run in runs {
        html.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td class=\"{phase_class}\">{}</td><td>{}</td></tr>",
            text(&run.task_id),
            text(&run.title),
            text(run.phase.as_str()),
            maybe(run.outcome.as_deref()),
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

    #[test]
    fn values_are_escaped_and_the_page_reloads_itself() {
        let mut snapshot = crate::status::snapshot::sample::snapshot();
        snapshot.conductor.node_id = "mini<script>".into();
        snapshot.conductor.mode = Some(shared::status::SystemMode::Paused);
        snapshot.conductor.warnings = vec!["no token".into()];
        snapshot.now_ms = 61_000;
        snapshot.runner.active = 1;
        snapshot.runner.capacity = 2;
        snapshot.runner.runs = vec![crate::status::snapshot::RunInFlight {
            view: RunView {
                run_id: "t1.s0.a1".into(),
                task_id: "t1".into(),
                step_id: "t1.s0".into(),
                title: "a & b".into(),
                step_kind: shared::status::StepKind::Shell,
                phase: crate::runner::run_dir::RunPhase::Running,
                pid: Some(42),
                started_at_ms: Some(0),
                stdout_bytes: 2048,
                stderr_bytes: 0,
                last_output_age_ms: 0,
                shipped_chunks: 0,
                outcome: None,
                finished_at_ms: None,
            },
            cpu_ms: None,
        }];
        assert!(!render(&snapshot).contains("Parked accounts"), "shown only when there are some");
        snapshot.conductor.parked_accounts = vec![shared::wire::ParkedAccount {
            account: "team".into(),
            parked_until: 1_800_000_000,
            message: "usage limit <reached>".into(),
            parked_at: 1_799_999_000,
            parked_by: "mini-main".into(),
        }];
        let page = render(&snapshot);
        assert!(page.contains("id=\"parked-accounts\"") && page.contains("usage limit &lt;reached&gt;"), "{page}");
        assert!(page.contains(&crate::people::local_time(1_800_000_000)), "the reset in local time");
        assert!(page.contains("mini&lt;script&gt;") && !page.contains("mini<script>"));
        assert!(page.contains("a &amp; b") && page.contains("1m 01s") && page.contains("2.0 kB"));
        assert!(page.contains("http-equiv=\"refresh\"") && page.contains(">paused<") && page.contains("no token"));
    }
}
