// The board (SPEC §18): tasks in columns by status, each card with its key, title, host, round
// and why it waits; filtered by repository, key prefix or text. Each column loads the newest
// 100 tasks of its statuses (one request each, in parallel); its header counts them all.
"use strict";

import { $, el, api, COLUMNS, nameOf } from "./core.js";

const PER_STATUS = 100;
let loaded = { tasks: [], counts: {} };

function card(task) {
  const waiting = task.waiting_reason;
  return el("li", {},
    el("a", { class: "card status-" + task.status, href: "#task/" + encodeURIComponent(task.task_id), dataset: { taskId: task.task_id } },
      el("div", { class: "card-head" }, el("strong", { text: nameOf(task) }), task.status !== "succeeded" && task.status !== "queued" ? el("span", { class: "tag", text: task.status }) : null),
      el("div", { class: "card-title", text: task.title }),
      el("div", { class: "card-meta" },
        el("span", { text: task.assigned_host || task.target_host || "no host yet" }),
        task.round ? el("span", { text: "round " + task.round }) : null,
        task.task_type === "integrate" ? el("span", { text: "integrate" }) : null),
      waiting ? el("div", { class: "card-wait", title: waiting.message, text: waiting.code + ": " + waiting.message }) : null));
}

function matches(task, filter) {
  if (filter.repo && task.repo !== filter.repo) return false;
  if (filter.prefix && !(task.key || "").startsWith(filter.prefix)) return false;
  if (filter.text) {
    const haystack = [task.key, task.task_id, task.title, task.goal, task.assigned_host].join(" ").toLowerCase();
    if (!haystack.includes(filter.text.toLowerCase())) return false;
  }
  return true;
}

function draw() {
  const filter = { repo: $("filter-repo").value, prefix: $("filter-prefix").value.trim(), text: $("filter-text").value.trim() };
  const repos = [...new Set(loaded.tasks.map((task) => task.repo))].sort();
  const select = $("filter-repo");
  if (select.options.length !== repos.length + 1) {
    const chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: "every repository" }), ...repos.map((repo) => el("option", { value: repo, text: repo })));
    select.value = chosen;
  }
  const shown = loaded.tasks.filter((task) => matches(task, filter));
  const board = $("board");
  board.replaceChildren(...COLUMNS.map(([name, statuses]) => {
    const tasks = shown.filter((task) => statuses.includes(task.status));
    const total = statuses.reduce((sum, status) => sum + (loaded.counts[status] || 0), 0);
    const heading = name + " · " + total + (total > tasks.length && !filter.repo && !filter.prefix && !filter.text ? " (newest " + tasks.length + ")" : "");
    return el("section", { class: "column column-" + name, "aria-label": name },
      el("h2", { text: heading }),
      el("ul", { class: "cards" }, tasks.map(card)));
  }));
}

export async function refresh() {
  const statuses = COLUMNS.flatMap(([, statuses]) => statuses);
  const [system, ...pages] = await Promise.all([
    api("GET", "/v1/system/state"),
    ...statuses.map((status) => api("GET", "/v1/tasks?status=" + status + "&limit=" + PER_STATUS)),
  ]);
  loaded = { tasks: pages.flatMap((page) => page.tasks), counts: system.task_counts };
  draw();
}

export function mount() {
  for (const id of ["filter-repo", "filter-prefix", "filter-text"]) $(id).oninput = draw;
}
