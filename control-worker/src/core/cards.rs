//! Task cards (SPEC §12) as `tasks.create` reads them: a task's `key`, `branch`, `depends_on`,
//! `write_scope` and `review`, checked; its dependencies resolved to task ids and its
//! write-scope conflicts found, in one read before the insert; and the statements that record
//! both with the task.
//!
//! Dependencies name tasks that exist already, so a cycle can only be a task naming itself
//! (its own key); a file of cards is put in dependency order, and checked for cycles, by
//! whoever creates them (`node-agent tasks import`).

use super::blobs::Blobs;
use serde_json::json;
use shared::scope;
use shared::wire::Task;

use super::clock::{Clock, Random};
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::input::Fields;
use super::records::{self, task_columns};
use super::Core;

pub const MAX_DEPENDENCIES: usize = 100;
pub const MAX_SCOPE_GLOBS: usize = 100;
/// The prefix of a `base_ref` that starts a task from a dependency's result.
pub const TASK_BASE_PREFIX: &str = "task:";

const TASK_BY_KEY_SQL: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE repo = ?1 AND task_key = ?2");
// ?1 JSON array of the names given (task ids or keys), ?2 repo.
const DEPENDENCIES_SQL: &str = "SELECT task_id, task_key, repo, status FROM tasks \
     WHERE task_id IN (SELECT value FROM json_each(?1)) OR (repo = ?2 AND task_key IN (SELECT value FROM json_each(?1)))";
const SCOPED_TASKS_SQL: &str = "SELECT task_id, write_scope_json FROM tasks \
     WHERE repo = ?1 AND status IN ('queued', 'planning', 'running') AND write_scope_json <> '[]'";
// ?1 task, ?2 JSON array of task ids. Only when the task was inserted (not a replay).
const INSERT_DEPENDENCIES_SQL: &str = "INSERT OR IGNORE INTO task_dependencies (task_id, depends_on, position) \
     SELECT ?1, value, key FROM json_each(?2) WHERE EXISTS (SELECT 1 FROM tasks WHERE task_id = ?1)";
const INSERT_CONFLICTS_SQL: &str = "INSERT OR IGNORE INTO task_conflicts (task_id, other_id) \
     SELECT ?1, value FROM json_each(?2) WHERE EXISTS (SELECT 1 FROM tasks WHERE task_id = ?1) \
     UNION ALL SELECT value, ?1 FROM json_each(?2) WHERE EXISTS (SELECT 1 FROM tasks WHERE task_id = ?1)";

/// The card fields of a `tasks.create` body.
#[derive(Debug, Clone, Default)]
pub struct CardInput {
    pub key: Option<String>,
    pub branch: Option<String>,
    /// As given: task ids or keys.
    pub depends_on: Vec<String>,
    pub write_scope: Vec<String>,
    pub review: bool,
}

fn is_key(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn is_branch(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 200
        && !text.starts_with(['/', '-', '.'])
        && !text.ends_with(['/', '.'])
        && !text.ends_with(".lock")
        && !text.contains("..")
        && !text.contains("//")
        && !text.contains("/.")
        && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
}

pub fn read(fields: &Fields<'_>) -> ApiResult<CardInput> {
    let key = fields.opt_str("key", 64)?;
    if let Some(key) = &key {
        if !is_key(key) {
            return Err(ApiError::invalid_field("key", "must be 1-64 characters of A-Z a-z 0-9 . _ - starting with a letter or digit"));
        }
    }
    let branch = fields.opt_str("branch", 200)?;
    if let Some(branch) = &branch {
        if !is_branch(branch) {
            return Err(ApiError::invalid_field(
                "branch",
                "must be a git branch name: A-Z a-z 0-9 . _ - / without .., //, a leading - . / or a trailing / . .lock",
            ));
        }
    }
    let depends_on = fields.opt_string_list("depends_on", MAX_DEPENDENCIES, 128)?.unwrap_or_default();
    for (index, name) in depends_on.iter().enumerate() {
        if depends_on[..index].contains(name) {
            return Err(ApiError::invalid_field("depends_on", &format!("names {name} twice")));
        }
        if key.as_deref() == Some(name.as_str()) {
            return Err(ApiError::invalid_field("depends_on", &format!("names the task itself ({name}): a cycle")));
        }
    }
    let write_scope = fields.opt_string_list("write_scope", MAX_SCOPE_GLOBS, 512)?.unwrap_or_default();
    for (index, glob) in write_scope.iter().enumerate() {
        scope::check(glob).map_err(|rule| ApiError::invalid_field(&format!("write_scope[{index}]"), &rule))?;
    }
    let review = fields.bool_or_false("review")?;
    Ok(CardInput { key, branch, depends_on, write_scope, review })
}

/// What the read before the insert found.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// The task this key already names: the answer, nothing is created.
    pub existing: Option<Task>,
    /// The dependencies as task ids, in the order given.
    pub depends_on: Vec<String>,
    /// Tasks of the repo still to run or running whose write scopes may overlap this one's.
    pub conflicts: Vec<String>,
    /// `base_ref` with a `task:` reference resolved to the dependency's task id.
    pub base_ref: String,
}

fn string_list(row: &Row, column: &str) -> ApiResult<Vec<String>> {
    let text = row.text(column)?;
    Ok(serde_json::from_str::<Vec<String>>(&text).unwrap_or_default())
}

/// Resolves the card's dependencies and finds its write-scope conflicts (one batch of reads).
pub async fn resolve<D: Db, C: Clock, R: Random, B: Blobs>(
    core: &Core<D, C, R, B>,
    repo: &str,
    card: &CardInput,
    base_ref: &str,
) -> ApiResult<Resolved> {
    let results = core
        .db
        .batch(vec![
            Statement::new(TASK_BY_KEY_SQL, vec![repo.into(), card.key.clone().into()]),
            Statement::new(DEPENDENCIES_SQL, vec![json!(card.depends_on).to_string().into(), repo.into()]),
            Statement::new(SCOPED_TASKS_SQL, vec![repo.into()]),
        ])
        .await?;
    if let Some(existing) = records::first(&results[0], records::task)? {
        return Ok(Resolved { existing: Some(existing), ..Resolved::default() });
    }
    let mut depends_on = Vec::new();
    for name in &card.depends_on {
        let found = results[1].iter().find(|row| {
            row.text("task_id").ok().as_deref() == Some(name.as_str())
                || (row.opt_text("task_key").ok().flatten().as_deref() == Some(name.as_str())
                    && row.text("repo").ok().as_deref() == Some(repo))
        });
        let Some(row) = found else {
            return Err(ApiError::invalid_field("depends_on", &format!("names no task of this repo: {name}")));
        };
        if row.text("repo")? != repo {
            return Err(ApiError::invalid_field("depends_on", &format!("{name} is a task of another repo")));
        }
        let task_id = row.text("task_id")?;
        if depends_on.contains(&task_id) {
            return Err(ApiError::invalid_field("depends_on", &format!("names task {task_id} twice (by id and by key)")));
        }
        depends_on.push(task_id);
    }
    let mut conflicts = Vec::new();
    if !card.write_scope.is_empty() {
        for row in &results[2] {
            if scope::may_overlap(&card.write_scope, &string_list(row, "write_scope_json")?) {
                conflicts.push(row.text("task_id")?);
            }
        }
    }
    let base_ref = match base_ref.strip_prefix(TASK_BASE_PREFIX) {
        None => base_ref.to_string(),
        Some(name) => {
            let index = card.depends_on.iter().position(|given| given == name).or_else(|| depends_on.iter().position(|id| id == name));
            match index {
                Some(index) => format!("{TASK_BASE_PREFIX}{}", depends_on[index]),
                None => {
                    return Err(ApiError::invalid_field("constraints.base_ref", &format!("task:{name} must name one of depends_on")));
                }
            }
        }
    };
    Ok(Resolved { existing: None, depends_on, conflicts, base_ref })
}

/// The statements that record a new task's dependencies and conflicts (after its insert, in
/// the same batch; they write nothing when the insert did not happen).
pub fn record_statements(task_id: &str, resolved: &Resolved) -> Vec<Statement> {
    vec![
        Statement::new(INSERT_DEPENDENCIES_SQL, vec![task_id.into(), json!(resolved.depends_on).to_string().into()]),
        Statement::new(INSERT_CONFLICTS_SQL, vec![task_id.into(), json!(resolved.conflicts).to_string().into()]),
    ]
}

/// The statement that answers the task of a key after an insert that lost a race for it.
pub fn by_key_statement(repo: &str, key: Option<&str>) -> Statement {
    Statement::new(TASK_BY_KEY_SQL, vec![repo.into(), key.map(str::to_string).into()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_branches_follow_their_rules() {
        for good in ["T-013", "t1", "wave.3_a"] {
            assert!(is_key(good), "{good}");
        }
        for bad in ["", "-x", "a b", "T/1", &"x".repeat(65)] {
            assert!(!is_key(bad), "{bad}");
        }
        for good in ["baa/task_1", "integration/third-wave-20260322", "feature.x"] {
            assert!(is_branch(good), "{good}");
        }
        for bad in ["", "/x", "-x", "a..b", "a//b", "x/", "x.lock", "a b", "x/.y"] {
            assert!(!is_branch(bad), "{bad}");
        }
    }
}
