//! `tasks wave`: the cards of a wave (an integrate task and what it merges, or the tasks whose
//! key starts with a prefix) as a dependency graph in text: cards by layer (a card is one layer
//! below the deepest card it needs), each with status and host, and the cards it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::Value;

use super::print::{status_of, table, text};

/// The wave's members among `tasks` (newest first, as listed): `target` is a task id or key of
/// an integrate task (it and the tasks it depends on, transitively), else a key prefix.
pub fn members(tasks: &[Value], target: &str) -> Vec<Value> {
    let by_id: BTreeMap<&str, &Value> = tasks.iter().map(|task| (text(&task["task_id"]), task)).collect();
    let root = tasks.iter().find(|task| task["task_id"] == target || task["key"] == target);
    let mut chosen: BTreeSet<&str> = BTreeSet::new();
    match root {
        Some(root) if !root["depends_on"].as_array().is_none_or(Vec::is_empty) => {
            let mut pending = vec![text(&root["task_id"])];
            while let Some(id) = pending.pop() {
                if chosen.insert(id) {
                    if let Some(task) = by_id.get(id) {
                        pending.extend(task["depends_on"].as_array().into_iter().flatten().map(text));
                    }
                }
            }
        }
        _ => {
            for task in tasks.iter().filter(|task| task["key"].as_str().is_some_and(|key| key.starts_with(target))) {
                chosen.insert(text(&task["task_id"]));
            }
        }
    }
    tasks.iter().filter(|task| chosen.contains(text(&task["task_id"]))).cloned().collect()
}

/// Each member's layer: 0 for a card that needs no other member, else one more than the
/// deepest member it needs. A cycle (which creation refuses) cannot loop: depth is bounded.
pub fn layers(members: &[Value]) -> BTreeMap<String, usize> {
    let ids: BTreeSet<&str> = members.iter().map(|task| text(&task["task_id"])).collect();
    let needs: BTreeMap<&str, Vec<&str>> = members
        .iter()
        .map(|task| {
            (text(&task["task_id"]), task["depends_on"].as_array().into_iter().flatten().map(text).filter(|id| ids.contains(id)).collect())
        })
        .collect();
    let mut layer: BTreeMap<String, usize> = ids.iter().map(|id| (id.to_string(), 0)).collect();
    for _ in 0..members.len() {
        let mut changed = false;
        for (id, needed) in &needs {
            let deepest = needed.iter().map(|need| layer[*need] + 1).max().unwrap_or(0);
            if deepest > layer[*id] {
                layer.insert(id.to_string(), deepest);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    layer
}

/// A card's name: its key, else its task id.
pub fn name(task: &Value) -> &str {
    task["key"].as_str().unwrap_or_else(|| text(&task["task_id"]))
}

/// The wave as text: a line per layer, then its cards with what they need.
pub fn draw(target: &str, members: &[Value]) -> String {
    if members.is_empty() {
        return format!("no wave {target}: no integrate task by that id or key, and no task whose key starts with it\n");
    }
    let layer = layers(members);
    let names: BTreeMap<&str, String> = members.iter().map(|task| (text(&task["task_id"]), name(task).to_string())).collect();
    let mut done = 0;
    let mut out = String::new();
    let deepest = layer.values().copied().max().unwrap_or(0);
    for depth in 0..=deepest {
        let mut cards: Vec<&Value> = members.iter().filter(|task| layer[text(&task["task_id"])] == depth).collect();
        cards.sort_by_key(|task| name(task));
        let rows: Vec<Vec<String>> = cards
            .iter()
            .map(|task| {
                done += usize::from(task["status"] == "succeeded");
                let needs: Vec<String> = task["depends_on"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|id| names.get(text(id)).cloned().unwrap_or_else(|| text(id).to_string()))
                    .collect();
                vec![
                    format!("{} {}", if depth == 0 { "●" } else { "└▶" }, name(task)),
                    status_of(task),
                    task["assigned_host"].as_str().unwrap_or("-").to_string(),
                    if needs.is_empty() { String::new() } else { format!("needs {}", needs.join(", ")) },
                    text(&task["title"]).to_string(),
                ]
            })
            .collect();
        let _ = writeln!(out, "layer {}", depth + 1);
        for line in table(&["", "", "", "", ""], &rows).lines().skip(1) {
            let _ = writeln!(out, "  {line}");
        }
    }
    format!("wave {target}: {} cards, {done} succeeded\n{out}", members.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn card(id: &str, key: &str, status: &str, needs: &[&str]) -> Value {
        json!({"task_id": id, "key": key, "status": status, "depends_on": needs, "title": format!("card {key}"), "assigned_host": "mini"})
    }

    #[test]
    fn an_integrate_task_draws_its_dependencies_by_layer() {
        let tasks = vec![
            card("t4", "W-4", "queued", &["t2", "t3"]),
            card("t3", "W-3", "running", &["t1"]),
            card("t2", "W-2", "succeeded", &["t1"]),
            card("t1", "W-1", "succeeded", &[]),
            card("t9", "X-9", "queued", &[]),
        ];
        let wave = members(&tasks, "W-4");
        assert_eq!(wave.len(), 4);
        let layer = layers(&wave);
        assert_eq!((layer["t1"], layer["t2"], layer["t3"], layer["t4"]), (0, 1, 1, 2));
        let drawn = draw("W-4", &wave);
        assert!(drawn.starts_with("wave W-4: 4 cards, 2 succeeded\nlayer 1\n  ● W-1"), "{drawn}");
        assert!(drawn.contains("layer 3\n  └▶ W-4  queued"), "{drawn}");
        assert!(drawn.contains("needs W-2, W-3"), "{drawn}");
        assert_eq!(members(&tasks, "W-").len(), 4, "a key prefix");
        assert!(draw("Z-", &members(&tasks, "Z-")).starts_with("no wave Z-"));
    }
}
