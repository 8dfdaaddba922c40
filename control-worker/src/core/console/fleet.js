// The fleet: its mode (pause, resume, drain), parked accounts, the hosts, and a new task.
"use strict";

import { $, el, api, localTime, localDateTime, showError } from "./core.js";

function rows(tableId, items, cells) {
  $(tableId).tBodies[0].replaceChildren(...items.map((item) => el("tr", {}, cells(item).map((cell) =>
    cell instanceof Node ? el("td", {}, cell) : Array.isArray(cell) ? el("td", { class: cell[1], text: cell[0] ?? "—" }) : el("td", { text: cell ?? "—" })))));
}

export async function refresh() {
  const system = await api("GET", "/v1/system/state");
  $("mode").textContent = system.mode;
  $("mode").className = "value status-" + (system.mode === "running" ? "succeeded" : "failed");
  $("nav-mode").textContent = system.mode;
  $("nav-mode").className = "mode-badge mode-" + system.mode;
  $("leader").textContent = system.holder_id ? system.holder_id + " (term " + system.term + (system.leader_live ? "" : ", expired") + ")" : "none";
  $("live").textContent = system.live_controllers.join(", ") || "none";
  $("counts").textContent = Object.entries(system.task_counts).map(([status, count]) => status + " " + count).join(" · ") || "none";
  $("drained").textContent = system.drained ? "yes" : "no";
  const change = system.recent_mode_changes[0];
  $("last-change").textContent = change ? "last: " + change.mode + " by " + (change.requested_by || change.principal) + (change.reason ? " (" + change.reason + ")" : "") : "";
  $("accounts-section").hidden = system.parked_accounts.length === 0;
  rows("accounts", system.parked_accounts, (parked) => [parked.account, localDateTime(parked.parked_until), localTime(parked.parked_at), parked.parked_by, parked.message,
    el("button", { type: "button", class: "resume-account", text: "Resume now", onclick: async () => {
      try { await api("POST", "/v1/accounts/" + encodeURIComponent(parked.account) + "/resume", {}); await refresh(); } catch (error) { showError(error.message); }
    } })]);
  rows("controllers", system.controllers, (controller) => [controller.controller_id, controller.host, controller.role, controller.status, controller.version || "unknown",
    (controller.metadata && controller.metadata.agent_cli) || "none", controller.started_at ? localTime(controller.started_at) : "unknown",
    [controller.alive ? "yes" : "no", controller.alive ? "status-succeeded" : "status-failed"], localTime(controller.last_heartbeat_at)]);
}

async function changeMode(action) {
  try {
    const reason = $("reason").value.trim();
    await api("POST", "/v1/system/" + action, reason ? { reason, requested_by: "console" } : { requested_by: "console" });
    await refresh();
  } catch (error) {
    showError(error.message);
  }
}

export function wire() {
  for (const action of ["pause", "resume", "drain"]) $(action).onclick = () => changeMode(action);
  $("create-form").onsubmit = async (event) => {
    event.preventDefault();
    const body = { repo: $("new-repo").value.trim(), task_type: $("new-type").value, title: $("new-title").value.trim(), goal: $("new-goal").value };
    const acceptance = $("new-acceptance").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (acceptance.length) body.acceptance = acceptance;
    if ($("new-priority").value) body.priority = Number($("new-priority").value);
    if ($("new-key").value.trim()) body.key = $("new-key").value.trim();
    const needs = $("new-needs").value.split(/[\s,]+/).filter(Boolean);
    if (needs.length) body.depends_on = needs;
    if ($("new-host").value.trim()) body.constraints = { target_host: $("new-host").value.trim() };
    if ($("new-review").checked) body.review = true;
    body.metadata = { requested_by: "console" };
    try {
      const created = await api("POST", "/v1/tasks", body);
      $("created").textContent = "created " + created.task_id;
      location.hash = "#task/" + encodeURIComponent(created.task_id);
    } catch (error) {
      showError(error.message);
    }
  };
}
