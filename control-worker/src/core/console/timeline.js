// The fleet timeline (SPEC §18): each host a lane, each run a bar from its start (or claim) to
// its end, coloured by outcome, over a window that zooms (1 hour to 3 days) and follows now.
// Runs at once on one host stack into rows (parallelism); a lane with no bar is an idle host;
// stalled runs are marked; a parked account is a hatched band until its reset.
"use strict";

import { $, el, svg, api, localDateTime } from "./core.js";

const WINDOWS = [600, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600];
// `window: null` fits the last 6 hours' runs (at least a minute); the zoom picks a window.
const view = { window: null, end: null };
const FIT = { most: 6 * 3600, least: 60 };
const LANE = { row: 18, gap: 10, label: 130, axis: 26 };

function ticks(since, until, width) {
  const steps = [30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 3 * 3600, 6 * 3600, 12 * 3600, 24 * 3600];
  const step = steps.find((candidate) => (until - since) / candidate <= Math.max(2, width / 90)) || 24 * 3600;
  const marks = [];
  for (let at = Math.ceil(since / step) * step; at <= until; at += step) marks.push(at);
  return marks;
}

// Greedy rows: each run in the first row whose last bar ended before it starts.
function stack(runs, now) {
  const rows = [];
  for (const run of runs) {
    const start = run.started_at || run.claimed_at;
    const row = rows.findIndex((end) => end <= start);
    const end = run.finished_at || now;
    if (row === -1) { rows.push(end); run.row = rows.length - 1; } else { rows[row] = end; run.row = row; }
  }
  return Math.max(1, rows.length);
}

function outcome(run) {
  if (run.status === "failed" && /stall/i.test(run.error || "")) return "stalled";
  if (run.status === "failed" && /usage limit|quota/i.test(run.error || "")) return "limited";
  return run.status;
}

export async function refresh() {
  const now = Math.floor(Date.now() / 1000);
  const until = view.end ?? now;
  let since = until - (view.window ?? FIT.most);
  const [page, system] = await Promise.all([api("GET", `/v1/runs?since=${since}&until=${until}&limit=5000`), api("GET", "/v1/system/state")]);
  if (view.window === null) {
    const first = Math.min(until - FIT.least, ...page.runs.map((run) => run.started_at || run.claimed_at));
    since = Math.max(since, first - Math.ceil((until - first) / 20));
  }
  const hosts = [...new Set([...system.controllers.map((controller) => controller.host), ...page.runs.map((run) => run.host)])].sort();
  const width = Math.max(600, $("timeline").clientWidth - 4);
  const plot = width - LANE.label;
  const x = (at) => LANE.label + Math.max(0, Math.min(plot, ((at - since) / (until - since)) * plot));
  const parts = [];
  let top = LANE.axis;
  const parked = system.parked_accounts || [];
  if (parked.length) {
    const height = LANE.row;
    parts.push(svg("text", { x: 4, y: top + 13, class: "lane-label", text: "parked accounts" }));
    for (const account of parked) {
      const [from, to] = [x(account.parked_at), x(account.parked_until)];
      parts.push(svg("rect", { class: "parked", x: from, y: top, width: Math.max(2, to - from), height },
        svg("title", { text: "account " + account.account + " parked " + localDateTime(account.parked_at) + " until " + localDateTime(account.parked_until) + ": " + account.message })));
      parts.push(svg("text", { x: from + 4, y: top + 13, class: "parked-label", text: account.account + " until " + localDateTime(account.parked_until) }));
    }
    top += height + LANE.gap;
  }
  const laneSummary = [];
  for (const host of hosts) {
    const runs = page.runs.filter((run) => run.host === host);
    const rows = stack(runs, now);
    const height = rows * LANE.row;
    const busy = runs.filter((run) => !run.finished_at).length;
    laneSummary.push(host + ": " + runs.length + " runs" + (busy ? ", " + busy + " running" : runs.length ? "" : ", idle"));
    parts.push(svg("rect", { class: "lane", x: LANE.label, y: top - 2, width: plot, height: height + 4 }));
    parts.push(svg("text", { x: 4, y: top + 13, class: "lane-label", text: host + (runs.length ? "" : " (idle)") }));
    for (const run of runs) {
      const start = run.started_at || run.claimed_at;
      const end = run.finished_at || now;
      const [from, to] = [x(start), x(end)];
      const kind = outcome(run);
      const label = (run.task_key || run.task_id) + " · " + run.step_title;
      parts.push(svg("a", { href: "#task/" + encodeURIComponent(run.task_id), class: "run", dataset: { runId: run.run_id },
        "aria-label": label + ", " + kind + ", on " + host },
        svg("title", { text: label + " (" + run.step_kind + ", round " + run.round + ", attempt " + run.attempt + ")\n" + kind + "\n" +
          localDateTime(start) + " → " + (run.finished_at ? localDateTime(run.finished_at) : "now") + (run.error ? "\n" + run.error : "") }),
        svg("rect", { class: "bar bar-" + kind, x: from, y: top + run.row * LANE.row, width: Math.max(3, to - from), height: LANE.row - 3, rx: 3 }),
        to - from > 60 ? svg("text", { x: from + 4, y: top + run.row * LANE.row + 11, class: "bar-label", text: label.slice(0, Math.floor((to - from - 8) / 6.5)) }) : null));
    }
    top += height + LANE.gap;
  }
  const axis = ticks(since, until, plot).map((at) => svg("g", {},
    svg("line", { x1: x(at), x2: x(at), y1: LANE.axis - 6, y2: top, class: "tick" }),
    svg("text", { x: x(at) + 3, y: 14, class: "tick-label", text: new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: until - since < 1800 ? "2-digit" : undefined }) + (until - since > 86400 ? " " + new Date(at * 1000).toLocaleDateString() : "") })));
  if (!view.end) axis.push(svg("line", { x1: x(now), x2: x(now), y1: LANE.axis - 6, y2: top, class: "now" }));
  $("timeline").replaceChildren(svg("svg", { id: "timeline-svg", dataset: { span: until - since }, width, height: top, viewBox: `0 0 ${width} ${top}`, role: "group", "aria-label": "runs per host, " + laneSummary.join("; ") }, axis, parts));
  $("timeline-range").textContent = localDateTime(since) + " → " + (view.end ? localDateTime(until) : "now") + " · " + page.runs.length + " runs" + (page.truncated ? " (the oldest 5000)" : "");
}

export function mount() {
  const zoom = (direction) => {
    const shown = view.window ?? Math.max(FIT.least, Number($("timeline-svg")?.dataset.span || FIT.most));
    const index = WINDOWS.findIndex((window) => window >= shown);
    view.window = WINDOWS[Math.max(0, Math.min(WINDOWS.length - 1, (index === -1 ? WINDOWS.length - 1 : index) + direction))];
    refresh();
  };
  $("zoom-in").onclick = () => zoom(-1);
  $("zoom-out").onclick = () => zoom(1);
  $("earlier").onclick = () => { view.window ??= FIT.most; view.end = (view.end ?? Math.floor(Date.now() / 1000)) - view.window / 2; refresh(); };
  $("follow-now").onclick = () => { view.end = null; view.window = null; refresh(); };
}
