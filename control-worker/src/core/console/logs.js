// A run's output as people read it (SPEC §18): one line per row with its local time, stdout and
// stderr told apart, ANSI colours rendered (as classes, never as markup), and the runner's own
// events (`worker.log`, JSON lines) as sentences.
"use strict";

import { el } from "./core.js";

const kilobytes = (bytes) => (bytes >= 10240 ? Math.round(bytes / 1024) + " KB" : (bytes || 0) + " B");

// The runner's events (node-agent/src/runner) as sentences.
const SENTENCES = {
  run_prepared: (e) => `Prepared attempt ${e.attempt} of step ${e.step_id} on ${e.host}.`,
  worker_started: (e) => `Started the step's process (pid ${e.pid}) in ${e.worktree}, with ${e.timeout_sec} s to finish.`,
  worker_exited: (e) => `The process ended: ${e.outcome}${e.exit_code !== null && e.exit_code !== undefined ? ", exit code " + e.exit_code : ""}${e.signal ? ", signal " + e.signal : ""}${e.message ? " — " + e.message : ""} (${kilobytes(e.stdout_bytes)} of output, ${kilobytes(e.stderr_bytes)} of errors).`,
  stop_requested: (e) => `Asked the step to stop: ${e.reason}${e.quiet_ms ? ", no progress for " + Math.round(e.quiet_ms / 1000) + " s" : ""}${e.detail ? " (" + e.detail + ")" : ""}.`,
  signal_sent: (e) => `Sent ${e.signal} to process group ${e.process_group}${e.delivered === false ? " (it was gone)" : ""}.`,
  run_not_started: (e) => `No process to run: ${e.reason}.`,
  run_adopted: (e) => `Took the running step over after the agent restarted${e.pid ? " (pid " + e.pid + ")" : ""}.`,
  run_resumed: (e) => `Went on with the step after the agent restarted (it was ${e.phase}).`,
  outside_write_scope: (e) => `Wrote outside its write scope (${(e.write_scope || []).join(", ")}): ${(e.paths || []).join(", ")}.`,
  no_change: (e) => `Changed nothing on ${e.branch}.`,
  committed: (e) => (e.commit ? `Committed ${String(e.commit).slice(0, 12)} on ${e.branch}.` : `Nothing new to commit on ${e.branch}.`),
  commit_failed: (e) => `The commit failed: ${e.error}.`,
  checkpoints_written: (e) => `Wrote ${e.count} checkpoints; ${(e.files_changed ?? 0)} files changed.`,
  log_ship_limit_reached: (e) => `Shipped ${kilobytes(e.limit_bytes)} of output, the most it ships: the rest stays in the run directory.`,
  branch_diff_failed: (e) => `Could not take the branch's diff: ${e.error}.`,
};

export function sentence(line) {
  let event;
  try { event = JSON.parse(line); } catch { return { text: line }; }
  if (!event || typeof event.event !== "string") return { text: line };
  // `run_<outcome>`: what the runner reported to the control plane.
  const reported = /^run_(succeeded|failed|timed_out|canceled|blocked|lost)$/.exec(event.event);
  const say = SENTENCES[event.event] || (reported && ((e) => `Reported the run as ${reported[1].replace("_", " ")}${e.message ? ": " + e.message : ""}.`));
  const rest = Object.entries(event).filter(([key]) => !["at_ms", "event"].includes(key)).map(([key, value]) => key + " " + (typeof value === "string" ? value : JSON.stringify(value)));
  return { text: say ? say(event) : event.event.replaceAll("_", " ") + (rest.length ? ": " + rest.join(", ") : ""), at: event.at_ms ? event.at_ms / 1000 : null };
}

// `text` with its SGR escapes as spans: [{text, classes}] (other escapes are dropped).
export function ansiSpans(text) {
  const spans = [];
  let style = { fg: null, bold: false };
  const pattern = /\x1b\[([0-9;]*)([A-Za-z])/g;
  let last = 0;
  const push = (part) => { if (part) spans.push({ text: part, classes: [style.fg ? "ansi-" + style.fg : "", style.bold ? "ansi-bold" : ""].filter(Boolean).join(" ") }); };
  for (let match; (match = pattern.exec(text));) {
    push(text.slice(last, match.index));
    last = pattern.lastIndex;
    if (match[2] !== "m") continue;
    for (const code of (match[1] || "0").split(";").map(Number)) {
      if (code === 0) style = { fg: null, bold: false };
      else if (code === 1) style.bold = true;
      else if (code === 22) style.bold = false;
      else if (code === 39) style.fg = null;
      else if ((code >= 30 && code <= 37) || (code >= 90 && code <= 97)) style.fg = code;
    }
  }
  push(text.slice(last));
  return spans;
}

const STREAM_LABEL = { stdout: "out", stderr: "err", worker: "runner" };

// A log view over `container`: `append(chunks)` adds the complete lines (a line cut between
// chunks waits for its end), following the bottom while the reader is there.
export function logView(container) {
  const partial = { stdout: "", stderr: "", worker: "" };
  const row = (stream, at, text) => {
    const said = stream === "worker" ? sentence(text) : { text };
    const when = new Date((said.at || at) * 1000).toLocaleTimeString();
    const body = el("span", { class: "log-text" }, stream === "worker" ? said.text : ansiSpans(said.text).map((span) => span.classes ? el("span", { class: span.classes, text: span.text }) : span.text));
    return el("div", { class: "log-line log-" + stream }, el("time", { text: when }), el("span", { class: "log-stream", text: STREAM_LABEL[stream] || stream }), body);
  };
  return {
    reset() { container.replaceChildren(); Object.keys(partial).forEach((key) => { partial[key] = ""; }); },
    append(chunks) {
      const following = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
      const rows = [];
      for (const chunk of chunks) {
        const lines = (partial[chunk.stream] + chunk.text).split("\n");
        partial[chunk.stream] = lines.pop();
        for (const line of lines) rows.push(row(chunk.stream, chunk.created_at, line.replace(/\r$/, "")));
      }
      container.append(...rows);
      if (following) container.scrollTop = container.scrollHeight;
    },
    // What is left in a stream without its newline, once the run has ended.
    flush() {
      const rows = Object.entries(partial).filter(([, text]) => text).map(([stream, text]) => row(stream, Date.now() / 1000, text));
      Object.keys(partial).forEach((key) => { partial[key] = ""; });
      container.append(...rows);
    },
  };
}
