// The wave graph (SPEC §18): the cards of a wave — an integrate task and what it merges, or the
// tasks whose key starts with a prefix — drawn as a layered graph: a card one layer below the
// deepest card it needs, cards in a layer ordered by where their parents are (barycentres),
// edges from what is needed to what needs it; each card coloured by status, with its host and
// round, and a link to the task. A wave is tens of cards: this layout needs no library.
"use strict";

import { $, el, svg, allPages, nameOf } from "./core.js";

const CARD = { width: 190, height: 62, gapX: 36, gapY: 64, margin: 16 };
let cache = { at: 0, tasks: [] };

export function members(tasks, target) {
  const byId = new Map(tasks.map((task) => [task.task_id, task]));
  const root = tasks.find((task) => task.task_id === target || task.key === target);
  const chosen = new Set();
  if (root && root.depends_on.length) {
    const pending = [root.task_id];
    while (pending.length) {
      const id = pending.pop();
      if (chosen.has(id)) continue;
      chosen.add(id);
      pending.push(...((byId.get(id) || { depends_on: [] }).depends_on));
    }
  } else {
    for (const task of tasks) if (task.key && task.key.startsWith(target)) chosen.add(task.task_id);
  }
  return tasks.filter((task) => chosen.has(task.task_id));
}

// Longest-path layers, then a few sweeps ordering each layer by its parents' mean position.
export function layout(cards) {
  const ids = new Set(cards.map((task) => task.task_id));
  const needs = new Map(cards.map((task) => [task.task_id, task.depends_on.filter((id) => ids.has(id))]));
  const layer = new Map(cards.map((task) => [task.task_id, 0]));
  for (let pass = 0; pass < cards.length; pass++) {
    let changed = false;
    for (const [id, needed] of needs) {
      const depth = Math.max(0, ...needed.map((need) => layer.get(need) + 1));
      if (depth > layer.get(id)) { layer.set(id, depth); changed = true; }
    }
    if (!changed) break;
  }
  const layers = [];
  for (const task of [...cards].sort((a, b) => nameOf(a).localeCompare(nameOf(b)))) {
    (layers[layer.get(task.task_id)] ||= []).push(task.task_id);
  }
  const position = new Map();
  for (let sweep = 0; sweep < 4; sweep++) {
    layers.forEach((ids, depth) => {
      if (depth > 0) {
        const centre = (id) => { const parents = needs.get(id); return parents.length ? parents.reduce((sum, p) => sum + position.get(p), 0) / parents.length : position.get(id) ?? 0; };
        ids.sort((a, b) => centre(a) - centre(b));
      }
      ids.forEach((id, index) => position.set(id, index - (ids.length - 1) / 2));
    });
  }
  return { layers, needs, position, layer };
}

function draw(target, cards) {
  const graph = $("wave-graph");
  if (!cards.length) {
    graph.replaceChildren(el("p", { class: "muted", text: "No wave " + target + ": no integrate task by that id or key, and no task whose key starts with it." }));
    return;
  }
  const { layers, needs, position, layer } = layout(cards);
  const widest = Math.max(...layers.map((ids) => ids.length));
  const width = CARD.margin * 2 + widest * CARD.width + (widest - 1) * CARD.gapX;
  const height = CARD.margin * 2 + layers.length * CARD.height + (layers.length - 1) * CARD.gapY;
  const x = (id) => width / 2 + position.get(id) * (CARD.width + CARD.gapX) - CARD.width / 2;
  const y = (id) => CARD.margin + layer.get(id) * (CARD.height + CARD.gapY);
  const byId = new Map(cards.map((task) => [task.task_id, task]));
  const edges = [];
  for (const [id, needed] of needs) {
    for (const need of needed) {
      const [x1, y1, x2, y2] = [x(need) + CARD.width / 2, y(need) + CARD.height, x(id) + CARD.width / 2, y(id)];
      const middle = (y1 + y2) / 2;
      edges.push(svg("path", { class: "edge edge-" + byId.get(need).status, d: `M${x1},${y1} C${x1},${middle} ${x2},${middle} ${x2},${y2 - 4}`, "marker-end": "url(#arrow)" }));
    }
  }
  const nodes = cards.map((task) => {
    const meta = [task.assigned_host || "no host yet", task.round ? "round " + task.round : null].filter(Boolean).join(" · ");
    const needs = task.depends_on.map((id) => (byId.has(id) ? nameOf(byId.get(id)) : id));
    return svg("a", { href: "#task/" + encodeURIComponent(task.task_id), class: "node", dataset: { taskId: task.task_id } },
      svg("title", { text: nameOf(task) + ": " + task.title + " (" + task.status + ")" + (needs.length ? ", needs " + needs.join(", ") : "") }),
      svg("rect", { class: "node-box status-fill-" + task.status, x: x(task.task_id), y: y(task.task_id), width: CARD.width, height: CARD.height, rx: 8 }),
      svg("text", { x: x(task.task_id) + 10, y: y(task.task_id) + 19, class: "node-key", text: nameOf(task) + "  " + task.status }),
      svg("text", { x: x(task.task_id) + 10, y: y(task.task_id) + 37, class: "node-title", text: task.title.length > 28 ? task.title.slice(0, 27) + "…" : task.title }),
      svg("text", { x: x(task.task_id) + 10, y: y(task.task_id) + 54, class: "node-meta", text: meta }));
  });
  const done = cards.filter((task) => task.status === "succeeded").length;
  graph.replaceChildren(
    el("p", { id: "wave-summary", text: "wave " + target + ": " + cards.length + " cards in " + layers.length + " layers, " + done + " succeeded" }),
    svg("svg", { id: "wave-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "dependency graph of wave " + target },
      svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }))),
      svg("g", { class: "edges" }, edges),
      svg("g", { class: "nodes" }, nodes)));
}

export async function refresh() {
  const target = $("wave-target").value.trim();
  if (!target) {
    $("wave-graph").replaceChildren(el("p", { class: "muted", text: "Name an integrate task (its id or key) or a key prefix such as T-0." }));
    return;
  }
  if (Date.now() - cache.at > 5000) cache = { at: Date.now(), tasks: await allPages("/v1/tasks", "tasks", 1000) };
  draw(target, members(cache.tasks, target));
}

export function mount(argument) {
  if (argument) $("wave-target").value = argument;
  $("wave-form").onsubmit = (event) => {
    event.preventDefault();
    location.hash = "#wave/" + encodeURIComponent($("wave-target").value.trim());
  };
}
