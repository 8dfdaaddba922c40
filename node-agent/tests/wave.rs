//! SPEC §12, a whole wave with real agents, real git and real processes on two hosts, each
//! with its own copy of the repository (a mirror of one bare `file://` origin): dependencies,
//! `base_ref: task:<id>`, overlapping write scopes, the report, a card that strays outside its
//! scope, and `integrate` tasks — one that merges the wave, one that meets a conflict.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A stand-in coding agent: what it writes depends on the card named in its goal; it always
/// writes its report under the card's headings.
const STAND_IN_AGENT: &str = r#"#!/bin/sh
card=$(sed -n 's/^card \([A-Z]\).*/\1/p' "$1" | head -n 1)
case "$card" in
  A) mkdir -p lib && echo "A was here" > lib/a.txt ;;
  B) test -f lib/a.txt || { echo "card B: lib/a.txt is missing" >&2; exit 1; }
     mkdir -p docs && { echo "B builds on:"; cat lib/a.txt; } > docs/b.txt ;;
  C) mkdir -p lib && echo "C was here" > lib/c.txt ;;
  D) mkdir -p docs/d && echo "D was here" > docs/d/x.txt && echo "D strays" >> README.md ;;
  E) echo "E's version" > conflict.txt ;;
  F) echo "F's version" > conflict.txt ;;
  *) echo "no card in the goal" >&2; exit 2 ;;
esac
printf '## result\ncard %s done\n\n## risks\nnone known\n\n## next_handoff\nintegrate the wave\n' "$card" > "$2"
echo "stand-in agent: card $card"
"#;

fn card(url: &str, key: &str, extra: Value) -> Value {
    let mut body = json!({
        "repo": url, "task_type": "codex", "title": format!("card {key}"), "goal": format!("card {}: do your part", &key[2..]),
        "key": key, "branch": format!("cards/{}", key.to_lowercase()), "constraints": {"deliver": "push"},
    });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

fn span(task: &Value) -> (u64, u64) {
    (task["started_at"].as_u64().unwrap(), task["finished_at"].as_u64().unwrap())
}

#[test]
fn a_wave_of_cards_on_two_hosts_ends_in_an_integration_branch() {
    let dir = tempfile::tempdir().unwrap();
    let project = git_repo(dir.path());
    let (origin, url) = bare_clone(&project, dir.path(), "origin");
    let base = git_output(&origin, &["rev-parse", "main"]).unwrap();
    let plane = ControlPlane::start(dir.path());
    let script = dir.path().join("stand-in-agent.sh");
    std::fs::write(&script, STAND_IN_AGENT).unwrap();
    let agent_command = format!("sh {} {{goal_file}} {{report_file}}", script.display());
    let mut mini = Agent::new(&plane.base(), "mini-main", dir.path()).env("BAA_AGENT_COMMAND", &agent_command);
    let mut mac = Agent::new(&plane.base(), "mac-standby", dir.path())
        .arg("--host", "mac")
        .arg("--role", "standby")
        .env("BAA_AGENT_COMMAND", &agent_command);
    mini.spawn();
    mac.spawn();

    // A runs on mini, C and the wave's integration on mac: the wave merges branches made on
    // both hosts (each pushed by its delivery, so mac's mirror fetches them).
    let on = |host: &str| json!({"deliver": "push", "target_host": host});
    let a = plane.create_task(card(
        &url,
        "T-A",
        json!({"write_scope": ["lib/**"], "acceptance": ["test -f lib/a.txt"], "constraints": on("mini")}),
    ));
    let b = plane.create_task(card(
        &url,
        "T-B",
        json!({"depends_on": ["T-A"], "write_scope": ["docs/**"], "constraints": {"base_ref": "task:T-A", "deliver": "push"},
               "acceptance": ["grep -q 'A was here' docs/b.txt"]}),
    ));
    let c = plane.create_task(card(
        &url,
        "T-C",
        json!({"write_scope": ["lib/c.txt"], "acceptance": ["test -f lib/c.txt"], "constraints": on("mac")}),
    ));
    let d = plane.create_task(card(&url, "T-D", json!({"write_scope": ["docs/d/**"]})));
    let e = plane.create_task(card(&url, "T-E", json!({})));
    let f = plane.create_task(card(&url, "T-F", json!({})));
    let all_three = "test -f lib/a.txt && test -f docs/b.txt && test -f lib/c.txt";
    let wave = plane.create_task(json!({
        "repo": url, "task_type": "integrate", "title": "third wave", "goal": "merge the wave", "key": "W-3",
        "depends_on": ["T-A", "T-B", "T-C"], "branch": "integration/third-wave", "acceptance": [all_three],
        "constraints": on("mac"),
    }));
    let clash = plane.create_task(json!({
        "repo": url, "task_type": "integrate", "title": "clashing pair", "goal": "merge E and F", "key": "W-EF",
        "depends_on": ["T-E", "T-F"], "branch": "integration/clash",
    }));

    let end = ["succeeded", "failed", "blocked", "canceled"];
    let logs = || format!("{}\n{}", mini.log_text(), mac.log_text());
    let wave_done = plane.wait_task(&wave, &end, Duration::from_secs(240));
    assert_eq!(wave_done["status"], "succeeded", "{wave_done:#}\n{}", logs());
    let [a_done, b_done, c_done] = [&a, &b, &c].map(|task_id| plane.task(task_id));

    // B started only after A succeeded, on A's host, from A's head, and saw A's change.
    assert!(span(&b_done).0 >= span(&a_done).1, "B started after A ended: {:?} {:?}", span(&a_done), span(&b_done));
    assert_eq!((a_done["assigned_host"].as_str(), b_done["assigned_host"].as_str()), (Some("mini"), Some("mini")));
    assert_eq!((c_done["assigned_host"].as_str(), wave_done["assigned_host"].as_str()), (Some("mac"), Some("mac")));
    assert_eq!(b_done["base_commit"], a_done["result"]["head_commit"]);
    let b_text = git_output(&origin, &["show", "cards/t-b:docs/b.txt"]).unwrap();
    assert!(b_text.contains("A was here"), "{b_text}");
    // C's scope overlaps A's: never at the same time.
    let (a_span, c_span) = (span(&a_done), span(&c_done));
    assert!(c_span.0 >= a_span.1 || a_span.0 >= c_span.1, "A {a_span:?} and C {c_span:?} overlap");

    // Every card's report: the five sections, with the files from the branch and the
    // commands from the steps.
    for (task_id, key, file, acceptance) in [
        (&a, "T-A", "lib/a.txt", "test -f lib/a.txt"),
        (&b, "T-B", "docs/b.txt", "grep -q 'A was here' docs/b.txt"),
        (&c, "T-C", "lib/c.txt", "test -f lib/c.txt"),
    ] {
        let page = http(&plane.base(), "GET", &format!("/v1/tasks/{task_id}/report"), ADMIN, None)["data"].clone();
        let report = &page["report"];
        assert_eq!(report["files_changed"], json!([file]), "{key}: {page:#}");
        assert_eq!(
            report["commands_run"],
            json!(["coding agent (codex): coding agent", acceptance, "deliver: push the branch"]),
            "{key}: {page:#}"
        );
        let letter = &key[2..];
        assert_eq!(report["result"], format!("card {letter} done"));
        assert_eq!((report["risks"].as_str(), report["next_handoff"].as_str()), (Some("none known"), Some("integrate the wave")));
        let markdown = page["markdown"].as_str().unwrap();
        for heading in ["## files_changed", "## commands_run", "## result", "## risks", "## next_handoff"] {
            assert!(markdown.contains(heading), "{key}: {markdown}");
        }
    }

    // The integration branch (pushed to the origin) holds a merge of each, in depends_on order.
    let merges = git_output(&origin, &["log", "--merges", "--reverse", "--format=%s", "integration/third-wave"]).unwrap();
    assert_eq!(
        merges.lines().collect::<Vec<_>>(),
        ["Merge branch 'cards/t-a' (T-A)", "Merge branch 'cards/t-b' (T-B)", "Merge branch 'cards/t-c' (T-C)"],
        "{merges}"
    );
    let tree = git_output(&origin, &["ls-tree", "-r", "--name-only", "integration/third-wave"]).unwrap();
    for file in ["lib/a.txt", "docs/b.txt", "lib/c.txt", "README.md"] {
        assert!(tree.lines().any(|line| line == file), "{file} in:\n{tree}");
    }
    assert_eq!(wave_done["base_commit"], base.as_str());
    let kinds: Vec<&str> = wave_done["steps"].as_array().unwrap().iter().map(|step| step["step_kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["setup", "merge", "test", "deliver"]);
    assert_eq!(step_of(&wave_done, "test")["command"], all_three);
    assert_eq!(wave_done["result"]["commits"], 6, "three cards' commits and three merges: {wave_done:#}");

    // A card that writes outside its scope: blocked, naming the path, nothing committed or pushed.
    let d_done = plane.wait_task(&d, &end, Duration::from_secs(60));
    assert_eq!(d_done["status"], "blocked", "{d_done:#}");
    let reason = d_done["status_reason"].as_str().unwrap();
    assert!(reason.contains("README.md") && !reason.contains("docs/d/x.txt"), "{reason}");
    assert_eq!(d_done["result"]["head_commit"], base.as_str(), "nothing committed: {d_done:#}");
    assert!(git_output(&origin, &["rev-parse", "--verify", "--quiet", "cards/t-d"]).is_err(), "nothing delivered");

    // The clashing pair: each succeeded alone; their integration fails naming the file.
    for task_id in [&e, &f] {
        assert_eq!(plane.wait_task(task_id, &end, Duration::from_secs(60))["status"], "succeeded");
    }
    let clashed = plane.wait_task(&clash, &end, Duration::from_secs(120));
    assert_eq!(clashed["status"], "failed", "{clashed:#}");
    let error = step_of(&clashed, "merge")["error"].as_str().unwrap_or_default();
    assert!(error.contains("merging cards/t-f (T-F) conflicts in: conflict.txt"), "{clashed:#}");
    assert!(clashed["status_reason"].as_str().unwrap().contains("conflict.txt"), "{clashed:#}");
    mini.terminate();
    mac.terminate();
}
