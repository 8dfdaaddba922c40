// One task (SPEC §18): where it stands and why it waits, what it delivered, its steps, its log
// following live while it runs, and its branch's diff, on whose lines a reviewer comments before
// asking for changes (a reject with another round) or rejecting.
"use strict";

import { $, el, api, localDateTime, nameOf, TERMINAL, showError } from "./core.js";
import { logView } from "./logs.js";
import * as diff from "./diff.js";

const view = { taskId: null, cursor: 0, log: null, diffHead: undefined, comments: [], detail: null, generation: 0 };

function fact(name, ...value) {
  return [el("dt", { text: name }), el("dd", {}, ...value)];
}

function drawFacts(task, usage) {
  const result = task.result;
  const round = Math.max(0, ...task.steps.map((step) => step.round));
  const facts = [
    ...fact("type", task.task_type + (task.review ? " (review before it succeeds)" : "")),
    ...fact("repository", task.repo),
    ...fact("host", task.assigned_host || task.target_host || "not yet"),
    ...(task.task_type === "codex" && round ? fact("round", round + " of " + (task.constraints.max_rounds || 3)) : []),
    ...fact("branch", el("code", { text: task.branch_name })),
    ...(task.depends_on.length ? fact("needs", task.depends_on.join(", ")) : []),
  ];
  if (result) {
    facts.push(...fact("base", el("code", { text: result.base_commit.slice(0, 12) }), " (" + task.base_ref + ")"),
      ...fact("head", el("code", { id: "task-head", text: result.head_commit })),
      ...fact("commits", result.commits + " (+" + result.insertions + " −" + result.deletions + ", " + result.files_changed.length + " files)"),
      ...fact("delivery", result.pr_url ? "pull request " + result.pr_url : result.pushed_to ? "pushed to " + result.pushed_to : "on " + result.host + " only (deliver: " + (task.constraints.deliver || "none") + ")"));
  }
  if (usage) facts.push(...fact("usage", usage.input_tokens + " tokens in, " + usage.output_tokens + " out, $" + usage.cost_usd.toFixed(4) + " over " + usage.runs + " run(s)" + (usage.models.length ? " (" + usage.models.join(", ") + ")" : "")));
  $("task-facts").replaceChildren(...facts);
}

function drawSteps(steps) {
  $("task-steps").tBodies[0].replaceChildren(...steps.map((step) => el("tr", {},
    el("td", { text: step.step_index }), el("td", { text: step.round }), el("td", { text: step.step_kind }), el("td", { text: step.title }),
    el("td", { class: "status-" + step.status, text: step.status }), el("td", { text: step.attempt + "/" + step.max_attempts }),
    el("td", { text: step.started_at ? localDateTime(step.started_at) : "—" }), el("td", { text: step.error || step.summary || "" }))));
}

function drawComments() {
  $("comment-count").textContent = String(view.comments.length);
  $("comment-list").replaceChildren(...view.comments.map((comment, index) => el("li", {},
    el("code", { text: comment.path + ":" + comment.line }), " " + comment.comment + " ",
    el("button", { type: "button", class: "link", text: "remove", onclick: () => { view.comments.splice(index, 1); drawComments(); redrawDiff(); } }))));
  $("review-comments").hidden = view.comments.length === 0;
}

let lastPatch = null;
function redrawDiff() {
  if (lastPatch !== null) diff.render($("task-diff"), lastPatch, view.comments, () => { drawComments(); redrawDiff(); });
}

async function refreshDiff(task, stale) {
  const head = task.result ? task.result.head_commit : null;
  if (head === view.diffHead) return;
  const answer = await api("GET", "/v1/tasks/" + encodeURIComponent(task.task_id) + "/diff");
  if (stale()) return;
  view.diffHead = head;
  $("diff-note").textContent = answer.available ? "The branch " + answer.branch + " against " + String(answer.base_commit || "").slice(0, 12) + ", as of " + localDateTime(answer.created_at) + ". Click a new line's number to comment on it." : answer.reason;
  lastPatch = answer.available ? answer.patch : null;
  if (lastPatch === null) $("task-diff").replaceChildren();
  redrawDiff();
}

export async function refresh() {
  if (!view.taskId) return;
  const generation = ++view.generation;
  const stale = () => generation !== view.generation;
  const task = await api("GET", "/v1/tasks/" + encodeURIComponent(view.taskId));
  if (stale()) return;
  view.detail = task;
  $("task-name").textContent = nameOf(task) + ": " + task.title;
  $("task-status").textContent = task.status;
  $("task-status").className = "status status-" + task.status;
  $("task-goal").textContent = task.goal;
  const waiting = task.waiting_reason;
  $("task-waiting").textContent = waiting ? "Waiting (" + waiting.code + ", since " + localDateTime(waiting.since) + "): " + waiting.message : task.status_reason || "";
  $("cancel-task").disabled = TERMINAL.includes(task.status);
  for (const id of ["approve-task", "reject-task", "request-changes"]) $(id).hidden = task.status !== "review";
  drawFacts(task, task.usage);
  drawSteps(task.steps);
  $("task-report-box").hidden = !task.report;
  if (task.report) {
    const report = await api("GET", "/v1/tasks/" + encodeURIComponent(task.task_id) + "/report");
    if (stale()) return;
    $("task-report").textContent = report.markdown;
  }
  await refreshDiff(task, stale);
  for (;;) {
    const page = await api("GET", "/v1/tasks/" + encodeURIComponent(task.task_id) + "/logs?limit=500&after=" + view.cursor);
    if (stale()) return;
    view.log.append(page.chunks);
    view.cursor = page.next_cursor;
    if (page.chunks.length < 500) break;
  }
  if (TERMINAL.includes(task.status) || task.status === "review") view.log.flush();
  $("log-state").textContent = TERMINAL.includes(task.status) ? "the task has ended" : "following live";
}

export function mount(taskId) {
  if (taskId !== view.taskId) {
    Object.assign(view, { taskId, cursor: 0, diffHead: undefined, comments: [] });
    lastPatch = null;
    view.log = logView($("task-log"));
    view.log.reset();
    $("task-diff").replaceChildren();
    drawComments();
  }
}

async function act(verb, body) {
  try {
    await api("POST", "/v1/tasks/" + encodeURIComponent(view.taskId) + "/" + verb, body);
    $("task-reason").value = "";
    if (verb === "reject") { view.comments = []; drawComments(); redrawDiff(); }
    await refresh();
  } catch (error) {
    showError(error.message);
  }
}

export function wire() {
  const reason = () => $("task-reason").value.trim();
  $("cancel-task").onclick = () => act("cancel", reason() ? { reason: reason(), requested_by: "console" } : { requested_by: "console" });
  $("approve-task").onclick = () => act("approve", reason() ? { comment: reason() } : {});
  $("reject-task").onclick = () => act("reject", { reason: reason() || "rejected in the console", comments: view.comments });
  $("request-changes").onclick = () => act("reject", { reason: reason() || "changes requested in the console", retry: true, comments: view.comments });
}
