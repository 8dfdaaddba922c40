// The admin console: a token pasted once per tab, then the JSON API of this control plane
// (same origin) polled every few seconds. Everything shown is set as text, never as HTML.
"use strict";

const REFRESH_MS = 2000;
const state = { token: sessionStorage.getItem("baa-token") || "", selected: null, logCursor: 0, logTask: null, timer: null, diffs: {}, detailGeneration: 0 };
const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.style.display = message ? "block" : "none";
}

async function api(method, path, body) {
  const options = { method, headers: { authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error("the control plane did not answer: " + error.message);
  }
  const envelope = await response.json().catch(() => null);
  if (!envelope) throw new Error(method + " " + path + ": status " + response.status);
  if (!envelope.ok) {
    if (response.status === 401 || response.status === 403) signOut();
    throw new Error(envelope.error + ": " + envelope.message);
  }
  return envelope.data;
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—";
}

// Replaces a table's rows: one per item, its cells from `columns` (item → text, or
// [text, class]); `decorate` may add to each row.
function fill(tableId, items, columns, decorate) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren();
  for (const item of items) {
    const row = body.insertRow();
    for (const column of columns) {
      const value = column(item);
      const [text, className] = Array.isArray(value) ? value : [value, ""];
      const td = row.insertCell();
      td.textContent = text === null || text === undefined ? "—" : String(text);
      if (className) td.className = className;
    }
    if (decorate) decorate(row, item);
  }
}

async function refreshSystem() {
  const system = await api("GET", "/v1/system/state");
  $("mode").textContent = system.mode;
  $("mode").className = "value status-" + (system.mode === "running" ? "succeeded" : "failed");
  $("leader").textContent = system.holder_id ? system.holder_id + " (term " + system.term + (system.leader_live ? "" : ", expired") + ")" : "none";
  $("live").textContent = system.live_controllers.join(", ") || "none";
  $("counts").textContent = Object.entries(system.task_counts).map(([status, count]) => status + " " + count).join(" · ") || "none";
  $("drained").textContent = system.drained ? "yes" : "no";
  const change = system.recent_mode_changes[0];
  $("last-change").textContent = change ? "last: " + change.mode + " by " + (change.requested_by || change.principal) + (change.reason ? " (" + change.reason + ")" : "") : "";
  $("accounts-section").hidden = system.parked_accounts.length === 0;
  fill("accounts", system.parked_accounts, [
    (parked) => parked.account,
    (parked) => new Date(parked.parked_until * 1000).toLocaleString(),
    (parked) => when(parked.parked_at),
    (parked) => parked.parked_by,
    (parked) => parked.message,
    () => "",
  ], (row, parked) => {
    const button = document.createElement("button");
    button.textContent = "Resume now";
    button.className = "resume-account";
    button.addEventListener("click", async () => {
      await api("POST", "/v1/accounts/" + encodeURIComponent(parked.account) + "/resume", {});
      await refresh();
    });
    row.cells[5].replaceChildren(button);
  });
  fill("controllers", system.controllers, [
    (controller) => controller.controller_id,
    (controller) => controller.host,
    (controller) => controller.role,
    (controller) => controller.status,
    (controller) => controller.version || "unknown",
    (controller) => (controller.metadata && controller.metadata.agent_cli) || "none",
    (controller) => (controller.started_at ? when(controller.started_at) : "unknown"),
    (controller) => [controller.alive ? "yes" : "no", controller.alive ? "status-succeeded" : "status-failed"],
    (controller) => when(controller.last_heartbeat_at),
  ]);
}

async function refreshTasks() {
  const page = await api("GET", "/v1/tasks?limit=50");
  fill("tasks", page.tasks, [
    (task) => task.task_id,
    (task) => task.title,
    (task) => task.task_type,
    (task) => [task.status, "status-" + task.status],
    (task) => (task.waiting_reason ? task.waiting_reason.code + ": " + task.waiting_reason.message : ""),
    (task) => task.priority,
    (task) => when(task.created_at),
  ], (row, task) => {
    row.className = "task" + (task.task_id === state.selected ? " selected" : "");
    row.dataset.taskId = task.task_id;
    row.addEventListener("click", () => select(task.task_id));
  });
}

// The task's changes, step by step: each committing step's last run's git_diff checkpoint
// (fetched once per run: a finished run's checkpoints do not change).
async function showDiff(detail, stale) {
  const parts = [];
  for (const step of detail.steps) {
    if (!["agent", "shell", "merge"].includes(step.step_kind) || !step.current_run_id || step.attempt === 0) continue;
    let diff = state.diffs[step.current_run_id];
    if (diff === undefined) {
      const run = await api("GET", "/v1/runs/" + encodeURIComponent(step.current_run_id));
      const checkpoint = run.checkpoints.find((checkpoint) => checkpoint.checkpoint_type === "git_diff");
      diff = checkpoint ? checkpoint.content : null;
      if (run.run.status !== "claimed" && run.run.status !== "running") state.diffs[step.current_run_id] = diff;
    }
    if (diff && diff.trim()) parts.push("# round " + step.round + ", step " + step.step_index + ": " + step.title + "\n" + diff);
  }
  if (stale()) return;
  $("detail-diff").hidden = parts.length === 0;
  $("diff").textContent = parts.join("\n");
}

async function refreshDetail() {
  if (!state.selected) return;
  // The timer and a click may refresh at once: only the newest call goes on writing (an older
  // one would show the task selected before, or append the same log lines twice).
  const generation = ++state.detailGeneration;
  const stale = () => generation !== state.detailGeneration;
  const detail = await api("GET", "/v1/tasks/" + encodeURIComponent(state.selected));
  if (stale()) return;
  $("detail").hidden = false;
  $("detail-id").textContent = detail.task_id;
  $("detail-status").textContent = detail.status;
  $("detail-status").className = "status-" + detail.status;
  $("detail-goal").textContent = detail.title + ": " + detail.goal;
  const waiting = detail.waiting_reason;
  $("detail-reason").textContent = (waiting ? "waiting (" + waiting.code + ", since " + when(waiting.since) + "): " + waiting.message + " " : "") + (detail.status_reason || "");
  $("cancel-task").disabled = ["succeeded", "failed", "blocked", "canceled"].includes(detail.status);
  $("approve-task").hidden = $("reject-task").hidden = $("reject-retry-label").hidden = detail.status !== "review";
  const usage = detail.usage;
  $("detail-usage").hidden = !usage;
  if (usage) {
    $("detail-usage").textContent = "usage: " + usage.input_tokens + " tokens in, " + usage.output_tokens + " out, $" +
      usage.cost_usd.toFixed(4) + " over " + usage.runs + " run(s)" + (usage.models.length ? " (" + usage.models.join(", ") + ")" : "");
  }
  $("detail-report").hidden = !detail.report;
  if (detail.report) {
    const report = await api("GET", "/v1/tasks/" + encodeURIComponent(detail.task_id) + "/report");
    if (stale()) return;
    $("report").textContent = report.markdown;
  }
  const result = detail.result;
  $("detail-result").hidden = !result;
  if (result) {
    $("result-branch").textContent = result.branch;
    $("result-host").textContent = result.host;
    $("result-head").textContent = result.head_commit;
    $("result-base").textContent = result.base_commit;
    $("result-commits").textContent = String(result.commits);
    $("result-lines").textContent = "+" + result.insertions + " -" + result.deletions;
    $("result-files").textContent = result.files_changed.join("\n");
    const delivered = [result.pushed_to ? "pushed to " + result.pushed_to : "", result.pr_url || ""].filter(Boolean).join(" · ");
    $("result-delivery").textContent = delivered || "not delivered: the branch stays on " + result.host;
  }
  await showDiff(detail, stale);
  if (stale()) return;
  fill("steps", detail.steps, [
    (step) => step.step_index,
    (step) => step.round,
    (step) => step.step_kind,
    (step) => step.title,
    (step) => [step.status, "status-" + step.status],
    (step) => step.attempt + "/" + step.max_attempts,
    (step) => step.exit_code,
    (step) => step.error || step.summary,
  ]);
  if (state.logTask !== state.selected) {
    state.logTask = state.selected;
    state.logCursor = 0;
    $("logs").replaceChildren();
  }
  for (;;) {
    const logs = await api("GET", "/v1/tasks/" + encodeURIComponent(state.selected) + "/logs?limit=500&after=" + state.logCursor);
    if (stale()) return;
    for (const chunk of logs.chunks) {
      const span = document.createElement("span");
      span.className = chunk.stream;
      span.textContent = chunk.text;
      $("logs").appendChild(span);
    }
    state.logCursor = logs.next_cursor;
    if (logs.chunks.length < 500) break;
  }
}

async function refresh() {
  try {
    await refreshSystem();
    await refreshTasks();
    await refreshDetail();
    showError("");
  } catch (error) {
    showError(error.message);
  }
}

function select(taskId) {
  state.selected = taskId;
  refresh();
}

function signIn() {
  $("signed-out").hidden = true;
  $("console").hidden = false;
  $("token-form").hidden = true;
  $("forget-token").hidden = false;
  clearInterval(state.timer);
  state.timer = setInterval(refresh, REFRESH_MS);
  refresh();
}

function signOut() {
  sessionStorage.removeItem("baa-token");
  state.token = "";
  clearInterval(state.timer);
  $("signed-out").hidden = false;
  $("console").hidden = true;
  $("token-form").hidden = false;
  $("forget-token").hidden = true;
}

async function act(action) {
  try {
    const reason = $("reason").value.trim();
    const body = { requested_by: "console" };
    if (reason) body.reason = reason;
    await api("POST", "/v1/system/" + action, body);
    await refresh();
  } catch (error) {
    showError(error.message);
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  if (!state.token) return;
  sessionStorage.setItem("baa-token", state.token);
  signIn();
});
$("forget-token").addEventListener("click", signOut);
for (const action of ["pause", "resume", "drain"]) $(action).addEventListener("click", () => act(action));
$("cancel-task").addEventListener("click", async () => {
  try {
    const reason = $("reason").value.trim();
    await api("POST", "/v1/tasks/" + encodeURIComponent(state.selected) + "/cancel", reason ? { reason, requested_by: "console" } : { requested_by: "console" });
    await refresh();
  } catch (error) {
    showError(error.message);
  }
});
for (const [button, verb] of [["approve-task", "approve"], ["reject-task", "reject"]]) {
  $(button).addEventListener("click", async () => {
    try {
      const reason = $("reason").value.trim();
      const body = verb === "approve" ? (reason ? { comment: reason } : {})
        : { reason: reason || "rejected in the console", retry: $("reject-retry").checked };
      await api("POST", "/v1/tasks/" + encodeURIComponent(state.selected) + "/" + verb, body);
      await refresh();
    } catch (error) {
      showError(error.message);
    }
  });
}
$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { repo: $("new-repo").value.trim(), task_type: $("new-type").value, title: $("new-title").value.trim(), goal: $("new-goal").value };
  const acceptance = $("new-acceptance").value.split("\n").map((line) => line.trim()).filter(Boolean);
  if (acceptance.length) body.acceptance = acceptance;
  if ($("new-priority").value) body.priority = Number($("new-priority").value);
  if ($("new-host").value.trim()) body.constraints = { target_host: $("new-host").value.trim() };
  if ($("new-review").checked) body.review = true;
  body.metadata = { requested_by: "console" };
  try {
    const created = await api("POST", "/v1/tasks", body);
    $("created").textContent = "created " + created.task_id;
    select(created.task_id);
  } catch (error) {
    showError(error.message);
  }
});

if (state.token) signIn();
