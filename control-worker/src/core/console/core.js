// What every view of the console shares: the token, the JSON API of this origin, building
// elements (text is always set as text, never parsed as HTML), times in the viewer's zone.
"use strict";

export const state = { token: sessionStorage.getItem("baa-token") || "", onSignOut: () => {} };

export const $ = (id) => document.getElementById(id);

// el("div", {class: "card", title: "…", onclick: f, dataset: {x: 1}}, "text", child, …)
export const el = (tag, attributes, ...children) => build(document.createElement(tag), attributes, children);
// The same for SVG elements.
export const svg = (tag, attributes, ...children) => build(document.createElementNS("http://www.w3.org/2000/svg", tag), attributes, children);

function build(node, attributes, children) {
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

export async function api(method, path, body) {
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
    if (response.status === 401 || response.status === 403) state.onSignOut();
    const field = envelope.details && envelope.details.field ? " (" + envelope.details.field + ")" : "";
    throw new Error(envelope.error + ": " + envelope.message + field);
  }
  return envelope.data;
}

// Every page of GET `path` (a list with `next_cursor`), up to `most` items.
export async function allPages(path, key, most) {
  const items = [];
  let cursor = "";
  while (items.length < most) {
    const page = await api("GET", path + (path.includes("?") ? "&" : "?") + "limit=200" + cursor);
    items.push(...page[key]);
    if (!page.next_cursor) break;
    cursor = "&cursor=" + encodeURIComponent(page.next_cursor);
  }
  return items.slice(0, most);
}

export const localDateTime = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString() : "—");
export const localTime = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—");

export const nameOf = (task) => task.key || task.task_id;

// The board's columns, and which task statuses each holds.
export const COLUMNS = [
  ["queued", ["queued"]],
  ["running", ["planning", "running"]],
  ["review", ["review"]],
  ["succeeded", ["succeeded"]],
  ["failed", ["failed", "canceled"]],
  ["blocked", ["blocked"]],
];

export const TERMINAL = ["succeeded", "failed", "blocked", "canceled"];
