// The console's first paint (SPEC §18), as a figure, not a test: the time from opening the
// console (token already in the tab) to the board drawn with its cards, on a loopback
// `control-local` holding N tasks (default 2,000: queued, running, review, succeeded, failed,
// blocked in proportion), median of 7 loads, beside the same with an empty board.
//
//   cargo build --release -p control-worker --bin control-local
//   node bench/console-first-paint.mjs [tasks]        (BAA_CHROMIUM, BAA_CONTROL_LOCAL override)

import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const total = Number(process.argv[2] || 2000);
const binary = process.env.BAA_CONTROL_LOCAL || "target/release/control-local";
const chromiumPath = process.env.BAA_CHROMIUM || "/usr/bin/chromium";
const TOKEN = "bench-admin-token";
const SERVICE = "bench-service-token";
const LOADS = 7;

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function plane(dir) {
  const log = path.join(dir, "control.log");
  const child = spawn(binary, ["--listen", "127.0.0.1:0", "--db", path.join(dir, "control.db")], {
    env: { CONTROL_API_BROWSER_ADMIN_TOKEN: TOKEN, BAA_SHARED_TOKEN: SERVICE, PATH: process.env.PATH },
    stdio: ["ignore", "ignore", fs.openSync(log, "a")],
  });
  for (let tries = 0; tries < 200; tries++) {
    const found = fs.readFileSync(log, "utf8").match(/listening on (http:\/\/[^\s]+)/);
    if (found) return { child, base: found[1] };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error("control-local did not start: " + fs.readFileSync(log, "utf8"));
}

async function call(base, method, route, body, token = TOKEN) {
  const response = await fetch(base + route, { method, headers: { authorization: "Bearer " + token, "content-type": "application/json" }, body: body && JSON.stringify(body) });
  const envelope = await response.json();
  if (!envelope.ok) throw new Error(route + ": " + JSON.stringify(envelope));
  return envelope.data;
}

// N queued tasks; the leader claims and plans some, a host runs them to each outcome.
async function fill(base, count) {
  await call(base, "POST", "/v1/controllers/heartbeat", { controller_id: "mini-main", host: "mini", role: "primary", priority: 100, status: "ok" }, SERVICE);
  const { term } = await call(base, "POST", "/v1/leader/acquire", { controller_id: "mini-main", host: "mini", ttl_sec: 3600 }, SERVICE);
  for (let index = 0; index < count; index += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - index) }, (_, offset) => call(base, "POST", "/v1/tasks",
      { repo: "/srv/repo", task_type: "shell", title: "task " + (index + offset), goal: "true", key: "B-" + (index + offset), review: (index + offset) % 10 === 3 })));
  }
  // A fifth of them started and ended: succeeded, failed, in review.
  for (let done = 0; done < count / 5; done += 20) {
    const claimed = await call(base, "POST", "/v1/tasks/claim", { controller_id: "mini-main", host: "mini", term, limit: 20 }, SERVICE);
    for (const task of claimed.tasks) {
      await call(base, "POST", `/v1/tasks/${task.task_id}/plan`, { controller_id: "mini-main", term, planner_provider: "bench", planning_strategy: "bench",
        steps: [{ step_kind: "shell", worker_kind: "shell", title: "run", command: "true" }] }, SERVICE);
    }
    const steps = await call(base, "POST", "/v1/steps/claim", { worker_id: "mini-main", host: "mini", capacity: 20 }, SERVICE);
    for (const [index, granted] of steps.steps.entries()) {
      const route = `/v1/steps/${granted.step.step_id}/` + (index % 4 === 0 ? "fail" : "complete");
      const body = index % 4 === 0 ? { worker_id: "mini-main", run_id: granted.run_id, error: "exit code 1", exit_code: 1 }
        : { worker_id: "mini-main", run_id: granted.run_id, summary: "ok", exit_code: 0 };
      await call(base, "POST", route, body, SERVICE);
    }
  }
}

async function firstPaints(browser, base, cards) {
  const times = [];
  for (let load = 0; load < LOADS; load++) {
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    await context.addInitScript((token) => sessionStorage.setItem("baa-token", token), TOKEN);
    const page = await context.newPage();
    const started = Date.now();
    await page.goto(base + "/#board");
    await page.waitForFunction((cards) => document.querySelectorAll("#board .column").length === 6 && document.querySelectorAll("#board .card").length >= cards, cards, { timeout: 60_000, polling: 10 });
    times.push(Date.now() - started);
    await context.close();
  }
  return times;
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "baa-first-paint-"));
const empty = await plane(fs.mkdtempSync(path.join(dir, "empty-")));
const full = await plane(fs.mkdtempSync(path.join(dir, "full-")));
const browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
try {
  const filled = Date.now();
  await fill(full.base, total);
  const counts = (await call(full.base, "GET", "/v1/system/state")).task_counts;
  console.log(`control plane with ${total} tasks (${Object.entries(counts).map(([status, count]) => count + " " + status).join(", ")}) filled in ${((Date.now() - filled) / 1000).toFixed(1)} s`);
  const none = await firstPaints(browser, empty.base, 0);
  const many = await firstPaints(browser, full.base, 100);
  const shown = await (async () => {
    const context = await browser.newContext();
    await context.addInitScript((token) => sessionStorage.setItem("baa-token", token), TOKEN);
    const page = await context.newPage();
    await page.goto(full.base + "/#board");
    await page.waitForFunction(() => document.querySelectorAll("#board .card").length > 0);
    const result = await page.evaluate(() => document.querySelectorAll("#board .card").length);
    await context.close();
    return result;
  })();
  console.log(`first paint of the board, median of ${LOADS} loads: empty ${median(none)} ms; ${total} tasks ${median(many)} ms (${shown} cards drawn, the newest 100 of each status); ratio ${(median(many) / Math.max(1, median(none))).toFixed(2)}`);
  console.log(`loads: empty [${none.join(", ")}] ms; full [${many.join(", ")}] ms`);
} finally {
  await browser.close();
  empty.child.kill("SIGTERM");
  full.child.kill("SIGTERM");
  fs.rmSync(dir, { recursive: true, force: true });
}
