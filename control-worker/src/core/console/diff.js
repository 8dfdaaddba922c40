// The branch's whole diff (SPEC §18), coloured per file with old and new line numbers, each file
// collapsible; a reviewer clicks a new line's number to comment on it, and the comments go with
// a reject ("request changes") to the agent's next round as `path:line: comment`.
"use strict";

import { el } from "./core.js";

const MOST_LINES = 6000;

// A unified diff → [{path, added, removed, lines: [{kind, old, new, text}]}].
export function parse(patch) {
  const files = [];
  let file = null;
  let oldLine = 0;
  let newLine = 0;
  for (const text of patch.split("\n")) {
    if (text.startsWith("diff --git ")) {
      const path = text.replace(/^diff --git a\/.* b\//, "");
      file = { path, added: 0, removed: 0, lines: [] };
      files.push(file);
      continue;
    }
    if (!file) continue;
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(text);
    if (hunk) {
      [oldLine, newLine] = [Number(hunk[1]), Number(hunk[2])];
      file.lines.push({ kind: "hunk", text });
    } else if (text.startsWith("+++ ") || text.startsWith("--- ") || /^(index|new file|deleted file|similarity|rename|old mode|new mode|Binary)/.test(text)) {
      if (text.startsWith("+++ b/")) file.path = text.slice(6);
      file.lines.push({ kind: "meta", text });
    } else if (text.startsWith("+")) {
      file.added++;
      file.lines.push({ kind: "add", new: newLine++, text: text.slice(1) });
    } else if (text.startsWith("-")) {
      file.removed++;
      file.lines.push({ kind: "del", old: oldLine++, text: text.slice(1) });
    } else if (text.startsWith(" ")) {
      file.lines.push({ kind: "ctx", old: oldLine++, new: newLine++, text: text.slice(1) });
    } else if (text) {
      file.lines.push({ kind: "meta", text });
    }
  }
  return files;
}

// Draws `patch` into `container`; `comments` is the review's list, `changed()` redraws it.
export function render(container, patch, comments, changed) {
  const files = parse(patch);
  let budget = MOST_LINES;
  const commentBox = (path, line, after) => {
    const text = el("textarea", { rows: 2, cols: 60, "aria-label": "comment on " + path + " line " + line });
    const box = el("tr", { class: "comment-editor" }, el("td", { colspan: 3 },
      text,
      el("button", { type: "button", class: "add-comment", text: "Add comment", onclick: () => {
        if (!text.value.trim()) return;
        comments.push({ path, line, comment: text.value.trim() });
        box.remove();
        changed();
      } }),
      el("button", { type: "button", text: "Cancel", onclick: () => box.remove() })));
    after.after(box);
    text.focus();
  };
  container.replaceChildren(...files.map((file) => {
    const rows = [];
    for (const line of file.lines) {
      if (budget-- <= 0) break;
      if (line.kind === "meta") continue;
      const number = line.new !== undefined
        ? el("button", { type: "button", class: "line-number", title: "comment on line " + line.new, "aria-label": "comment on " + file.path + " line " + line.new,
            text: String(line.new), onclick: (event) => commentBox(file.path, line.new, event.target.closest("tr")) })
        : "";
      rows.push(el("tr", { class: "diff-" + line.kind },
        el("td", { class: "old", text: line.old ?? "" }),
        el("td", { class: "new" }, line.kind === "hunk" ? "" : number),
        el("td", { class: "code", text: (line.kind === "add" ? "+" : line.kind === "del" ? "-" : line.kind === "ctx" ? " " : "") + line.text })));
      for (const comment of comments.filter((c) => c.path === file.path && c.line === line.new && line.new !== undefined)) {
        rows.push(el("tr", { class: "diff-comment" }, el("td", { colspan: 3, text: "comment: " + comment.comment })));
      }
    }
    return el("details", { class: "diff-file", open: true },
      el("summary", {}, el("span", { class: "diff-path", text: file.path }), el("span", { class: "diff-stat" }, el("span", { class: "added", text: "+" + file.added }), " ", el("span", { class: "removed", text: "−" + file.removed }))),
      el("table", { class: "diff" }, el("tbody", {}, rows)));
  }));
  if (budget < 0) container.append(el("p", { class: "muted", text: "The diff is longer than " + MOST_LINES + " lines: the rest is on the branch." }));
}
