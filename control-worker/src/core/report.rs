//! A task's report in the card's sections (SPEC §12): `files_changed` from its branch,
//! `commands_run` from its steps, and `result`, `risks`, `next_handoff` from what its coding
//! agent wrote in its report file (kept in `report_json` when a run reports), else the result
//! is the last agent step's summary (or the last step's, without an agent step). `tasks.read`
//! carries it; `tasks.report` answers it with the same as markdown.

use super::blobs::Blobs;
use shared::status::{StepKind, StepStatus};
use shared::wire::{AgentReport, Step, Task, TaskReport, TaskReportPage};

use super::clock::{Clock, Random};
use super::db::{Db, Row, Statement};
use super::error::{ApiError, ApiResult};
use super::input::{Fields, MAX_TEXT_LEN};
use super::records;
use super::tasks::{task_not_found, SELECT_TASK_SQL, SELECT_TASK_STEPS_SQL};
use super::{Call, Core, Reply};

/// The optional `report` of a completion or failure: the agent's sections, as JSON text.
pub(super) fn agent_report(fields: &Fields<'_>) -> ApiResult<Option<String>> {
    let Some(map) = fields.opt_object("report")? else { return Ok(None) };
    let nested = Fields::nested(&map, fields.name("report"));
    let report = AgentReport {
        result: nested.opt_str("result", MAX_TEXT_LEN)?,
        risks: nested.opt_str("risks", MAX_TEXT_LEN)?,
        next_handoff: nested.opt_str("next_handoff", MAX_TEXT_LEN)?,
    };
    serde_json::to_string(&report).map(Some).map_err(|error| ApiError::internal(error.to_string()))
}

/// The agent's sections kept with the task.
pub(super) fn stored_agent_report(row: &Row) -> ApiResult<Option<AgentReport>> {
    let Some(text) = row.opt_text("report_json")? else { return Ok(None) };
    Ok(serde_json::from_str(&text).ok())
}

/// The report, once a step of the task has run.
pub fn task_report(task: &Task, steps: &[Step], agent: Option<AgentReport>) -> Option<TaskReport> {
    // A setup step that found nothing to run is no command of the task's.
    let nothing_set_up = |step: &Step| {
        step.step_kind == StepKind::Setup && step.summary.as_deref().is_some_and(|summary| summary.starts_with("nothing to set up"))
    };
    let ran: Vec<&Step> = steps
        .iter()
        .filter(|step| step.attempt > 0 && !matches!(step.status, StepStatus::Pending | StepStatus::Ready) && !nothing_set_up(step))
        .collect();
    if ran.is_empty() {
        return None;
    }
    let commands_run = ran
        .iter()
        .map(|step| match (step.step_kind, step.command.as_deref()) {
            (StepKind::Agent, _) => format!("coding agent ({}): {}", step.worker_kind, step.title),
            (_, Some(command)) => command.to_string(),
            (_, None) => step.title.clone(),
        })
        .collect();
    let agent = agent.unwrap_or_default();
    let last_agent_summary = ran.iter().rev().find(|step| step.step_kind == StepKind::Agent).and_then(|step| step.summary.clone());
    let last_summary = ran.iter().rev().find_map(|step| step.summary.clone().or_else(|| step.error.clone()));
    let result = agent
        .result
        .or(last_agent_summary)
        .or(last_summary)
        .or_else(|| task.status_reason.clone())
        .unwrap_or_else(|| format!("the task is {}", task.status));
    Some(TaskReport {
        files_changed: task.result.as_ref().map(|result| result.files_changed.clone()).unwrap_or_default(),
        commands_run,
        result,
        risks: agent.risks.unwrap_or_default(),
        next_handoff: agent.next_handoff.unwrap_or_default(),
    })
}

fn bullets(items: &[String]) -> String {
    if items.is_empty() {
        return "- (none)\n".into();
    }
    items.iter().map(|item| format!("- `{item}`\n")).collect()
}

fn paragraph(text: &str) -> String {
    if text.trim().is_empty() {
        "(none)\n".into()
    } else {
        format!("{}\n", text.trim_end())
    }
}

/// The report in the card's section format.
pub fn markdown(task: &Task, report: &TaskReport) -> String {
    let name = task.key.as_deref().unwrap_or(&task.task_id);
    format!(
        "# {name}: {}\n\nstatus: {}\nbranch: {}\n\n## files_changed\n\n{}\n## commands_run\n\n{}\n## result\n\n{}\n## risks\n\n{}\n## next_handoff\n\n{}",
        task.title,
        task.status,
        task.branch_name,
        bullets(&report.files_changed),
        bullets(&report.commands_run),
        paragraph(&report.result),
        paragraph(&report.risks),
        paragraph(&report.next_handoff),
    )
}

pub async fn read<D: Db, C: Clock, R: Random, B: Blobs>(core: &Core<D, C, R, B>, call: &Call<'_>) -> ApiResult<Reply> {
    let task_id = call.param("task_id");
    let results = core
        .db
        .batch(vec![Statement::new(SELECT_TASK_SQL, vec![task_id.into()]), Statement::new(SELECT_TASK_STEPS_SQL, vec![task_id.into()])])
        .await?;
    let row = results[0].first().ok_or_else(|| task_not_found(task_id))?;
    let task = records::task(row)?;
    let steps = records::all(&results[1], records::step)?;
    let report = task_report(&task, &steps, stored_agent_report(row)?).ok_or_else(|| {
        ApiError::invalid_transition(format!("task {task_id} is {} and has run no step yet: there is nothing to report", task.status))
            .with_detail("status", task.status.as_str())
    })?;
    Reply::ok(&TaskReportPage {
        task_id: task.task_id.clone(),
        key: task.key.clone(),
        status: task.status,
        markdown: markdown(&task, &report),
        report,
    })
}
