// The admin console (SPEC §18): a token pasted once per tab, then the JSON API of this control
// plane (same origin). Views by the address's hash: #board, #wave/<target>, #timeline, #fleet,
// #task/<id>; the one shown is refreshed every 2 seconds (the timeline and the wave every 5).
"use strict";

import { $, state, showError } from "./console/core.js";
import * as board from "./console/board.js";
import * as wave from "./console/wave.js";
import * as timeline from "./console/timeline.js";
import * as fleet from "./console/fleet.js";
import * as task from "./console/task.js";

const VIEWS = { board: [board, 2000], wave: [wave, 5000], timeline: [timeline, 5000], fleet: [fleet, 2000], task: [task, 2000] };
let current = null;
let timer = null;
let running = false;

async function refresh() {
  if (!current || running) return;
  running = true;
  try {
    await current.refresh();
    showError("");
  } catch (error) {
    showError(error.message);
  } finally {
    running = false;
  }
}

function route() {
  if (!state.token) return;
  const [name, ...rest] = (location.hash.slice(1) || "board").split("/");
  const [view, every] = VIEWS[name] || VIEWS.board;
  const argument = decodeURIComponent(rest.join("/"));
  for (const key of Object.keys(VIEWS)) {
    $("view-" + key).hidden = VIEWS[key][0] !== view;
    const link = $("nav-" + key);
    if (link) link.setAttribute("aria-current", VIEWS[key][0] === view ? "page" : "false");
  }
  current = view;
  if (view.mount) view.mount(argument);
  clearInterval(timer);
  timer = setInterval(refresh, every);
  refresh();
}

function signIn() {
  $("signed-out").hidden = true;
  $("console").hidden = false;
  $("token-form").hidden = true;
  $("forget-token").hidden = false;
  route();
}

function signOut() {
  sessionStorage.removeItem("baa-token");
  state.token = "";
  clearInterval(timer);
  current = null;
  $("signed-out").hidden = false;
  $("console").hidden = true;
  $("token-form").hidden = false;
  $("forget-token").hidden = true;
}
state.onSignOut = signOut;

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  $("token").value = "";
  if (!state.token) return;
  sessionStorage.setItem("baa-token", state.token);
  signIn();
});
$("forget-token").addEventListener("click", signOut);
window.addEventListener("hashchange", route);
fleet.wire();
task.wire();
if (state.token) signIn();
