// Browser tests in headless Chromium (Debian's chromium, driven by playwright-core): the admin
// console of the control plane (SPEC §18: the board, a wave drawn as a graph, the fleet
// timeline of two hosts, a readable log, a coloured diff whose line comment reaches the next
// round's feedback file; axe-core finds no serious accessibility violation) and the status page
// of the node agent, against one real `node-agent start --embedded` and a second agent on
// loopback with a scratch git repository. Screenshots go to $BAA_SCREENSHOTS_DIR (default
// target/browser-screenshots).
//
//   node node-agent/tests/browser/ui.mjs      (after `cargo build -p node-agent`)

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const axeSource = fs.readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

const agentBin = process.env.BAA_NODE_AGENT_BIN || "target/debug/node-agent";
const shots = process.env.BAA_SCREENSHOTS_DIR || "target/browser-screenshots";
const chromiumPath = process.env.BAA_CHROMIUM || "/usr/bin/chromium";
const WAIT_MS = 30_000;

async function waitFor(what, check, limitMs = WAIT_MS) {
  const started = Date.now();
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() - started > limitMs) throw new Error("timed out waiting for " + what);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function expectText(page, selector, text) {
  await page.waitForFunction(
    ([selector, text]) => (document.querySelector(selector)?.textContent || "").includes(text),
    [selector, text],
    { timeout: WAIT_MS },
  );
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "baa-browser-"));
const repo = path.join(dir, "repo");
fs.mkdirSync(repo);
const git = (...args) => execFileSync("git", ["-C", repo, ...args], { stdio: "ignore" });
git("init", "-q", "-b", "main");
fs.writeFileSync(path.join(repo, "README.md"), "a scratch repository\n");
git("add", "README.md");
git("-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "initial");
fs.mkdirSync(shots, { recursive: true });

// A stand-in coding agent: a goal about a limit hits the account's usage limit once; any
// other goal makes a first guess, and the fix once its feedback file says what failed. It runs
// in the agent's sandbox, which keeps it out of $HOME: it remembers the limit in a scratch
// folder of its own under /tmp.
const markers = fs.mkdtempSync(path.join(os.tmpdir(), "baa-browser-markers-"));
const agentScript = path.join(dir, "stand-in-agent.sh");
fs.writeFileSync(agentScript, `#!/bin/sh
printf '{"input_tokens": 1500, "output_tokens": 300, "cost_usd": 0.02, "model": "stand-in"}' > "$3"
case "$(cat "$1")" in
  *limit*) if [ ! -e "${markers}/limited" ]; then touch "${markers}/limited"; echo "You've hit your usage limit. Try again in 2 hours."; exit 1; fi
           echo done > limited.txt ;;
  *) if [ -s "$2" ]; then echo fixed > fixed.txt; else echo guess > guess.txt; fi ;;
esac
`);

const root = path.join(dir, "root");
const agentLogPath = path.join(dir, "agent.log");
const agentLog = fs.openSync(agentLogPath, "a");
// Both servers listen on port 0; the agent logs the addresses it bound.
const agent = spawn(
  agentBin,
  ["start", "--embedded", "--control-listen", "127.0.0.1:0", "--local-api", "127.0.0.1:0", "--host", "mini", "--runtime-root", root,
   "--heartbeat-interval-ms", "300", "--step-heartbeat-interval-ms", "500"],
  { env: { HOME: dir, PATH: process.env.PATH, BAA_AGENT_COMMAND: `sh ${agentScript} {goal_file} {feedback_file} {usage_file}` },
    stdio: ["ignore", agentLog, agentLog] },
);
const failures = [];
let browser;
let second;
const logged = (marker) =>
  waitFor("the agent to log " + marker, () => {
    const line = fs.readFileSync(agentLogPath, "utf8").split("\n").find((text) => text.includes(marker));
    return line && line.split(marker)[1].split(/[\s/]/)[0];
  });
try {
  const control = await logged("embedded control plane on http://");
  const status = await logged("status server on http://");
  const tokensFile = path.join(root, "state", "embedded-tokens.env");
  const tokens = await waitFor("the tokens file", () => fs.existsSync(tokensFile) && fs.readFileSync(tokensFile, "utf8"));
  const admin = tokens.split("\n").find((line) => line.startsWith("CONTROL_API_BROWSER_ADMIN_TOKEN=")).split("=")[1].trim();
  await waitFor("the status server", async () => (await fetch(`http://${status}/healthz`).catch(() => null))?.ok);

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.on("pageerror", (error) => failures.push("console page error: " + error.message));
  page.on("console", (message) => { if (message.type() === "error") failures.push("console error: " + message.text()); });

  // The console: enter a token.
  const api = async (method, route, body) => {
    const response = await fetch(`http://${control}${route}`, {
      method, headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined,
    });
    const envelope = await response.json();
    assert.ok(envelope.ok, JSON.stringify(envelope));
    return envelope.data;
  };
  const waitStatus = (taskId, statuses) => waitFor(taskId + " to be " + statuses, async () => statuses.includes((await api("GET", "/v1/tasks/" + taskId)).status));
  // axe-core in the page (evaluated by the browser's debugger, which the page's policy does not
  // govern): no serious or critical violation.
  const accessible = async (what) => {
    await page.evaluate(axeSource);
    const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    const serious = results.violations.filter((violation) => ["serious", "critical"].includes(violation.impact));
    assert.deepEqual(serious.map((violation) => violation.id + ": " + violation.nodes.map((node) => node.target.join(" ")).slice(0, 3).join(", ")), [], what + ": accessibility");
  };

  await page.goto(`http://${control}/`);
  await expectText(page, "#signed-out", "Paste a token");
  await page.fill("#token", admin);
  await page.click("#use-token");
  await page.click("#nav-fleet");
  await expectText(page, "#mode", "running");
  await expectText(page, "#controllers", "mini-main");
  // The agent reports its own version (the crate's) and when it started.
  const crateVersion = fs.readFileSync("Cargo.toml", "utf8").match(/^version = "([^"]+)"/m)[1];
  await expectText(page, "#controllers", crateVersion);
  assert.ok(!(await page.textContent("#controllers")).includes("unknown"), "version and start time are shown");
  await page.screenshot({ path: path.join(shots, "console-fleet.png"), fullPage: true });
  await accessible("the fleet");

  // Pause: a task created meanwhile says why it waits; resume; drain; resume.
  await page.fill("#reason", "browser test");
  await page.click("#pause");
  await expectText(page, "#mode", "paused");
  await expectText(page, "#last-change", "browser test");
  await page.fill("#new-repo", repo);
  await page.fill("#new-title", "waits while paused");
  await page.fill("#new-goal", "echo after-the-pause");
  await page.click("#create");
  await expectText(page, "#task-waiting", "Waiting (paused");
  await page.click("#nav-fleet");
  await page.click("#resume");
  await expectText(page, "#mode", "running");
  await page.click("#drain");
  await expectText(page, "#mode", "draining");
  await page.click("#resume");
  await expectText(page, "#mode", "running");

  // A wave of four cards on this host: W-2 and W-3 need W-1, W-4 merges them.
  const card = async (key, goal, needs, type = "shell") =>
    (await api("POST", "/v1/tasks", { repo, task_type: type, title: "card " + key, goal, key, depends_on: needs })).task_id;
  const w1 = await card("W-1", "echo one > one.txt", []);
  const w2 = await card("W-2", "echo two > two.txt", ["W-1"]);
  const w3 = await card("W-3", "echo three > three.txt", ["W-1"]);
  const w4 = await card("W-4", "merge the wave", ["W-2", "W-3"], "integrate");
  for (const id of [w1, w2, w3, w4]) await waitStatus(id, ["succeeded"]);

  // The board: the cards in their columns, filtered by key prefix and by text.
  await page.click("#nav-board");
  await expectText(page, ".column-succeeded", "W-4");
  await expectText(page, ".column-succeeded h2", "succeeded · ");
  await page.fill("#filter-prefix", "W-");
  await waitFor("four cards for W-", async () => (await page.$$("#board .card")).length === 4);
  await page.fill("#filter-text", "card W-3");
  await waitFor("one card for the text", async () => (await page.$$("#board .card")).length === 1);
  await page.fill("#filter-text", "");
  await page.fill("#filter-prefix", "");
  await page.screenshot({ path: path.join(shots, "console-board.png"), fullPage: true });
  await accessible("the board");

  // The wave as a graph: four cards in three layers, four edges, a click opens the card.
  await page.goto(`http://${control}/#wave/W-4`);
  await expectText(page, "#wave-summary", "wave W-4: 4 cards in 3 layers, 4 succeeded");
  assert.equal((await page.$$("#wave-svg a.node")).length, 4);
  assert.equal((await page.$$("#wave-svg path.edge")).length, 4, "W-1→W-2, W-1→W-3, W-2→W-4, W-3→W-4");
  const layerOf = async (id) => Number(await page.getAttribute(`#wave-svg a.node[data-task-id="${id}"] rect`, "y"));
  const [y1, y2, y3, y4] = [await layerOf(w1), await layerOf(w2), await layerOf(w3), await layerOf(w4)];
  assert.ok(y1 < y2 && y2 === y3 && y3 < y4, "layered: " + [y1, y2, y3, y4]);
  await page.screenshot({ path: path.join(shots, "console-wave.png"), fullPage: true });
  await accessible("the wave");
  await page.click(`#wave-svg a.node[data-task-id="${w2}"]`);
  await expectText(page, "#task-name", "W-2: card W-2");
  await expectText(page, "#task-diff", "two.txt");

  // A second host: the timeline has two lanes with runs on both.
  const serviceToken = tokens.split("\n").find((line) => line.startsWith("BAA_SHARED_TOKEN=")).split("=")[1].trim();
  second = spawn(agentBin,
    ["start", "--control-api-base", `http://${control}`, "--host", "mac", "--node-id", "mac-main", "--local-api", "off",
     "--runtime-root", path.join(dir, "mac"), "--heartbeat-interval-ms", "300", "--step-heartbeat-interval-ms", "500"],
    { env: { HOME: dir, PATH: process.env.PATH, BAA_SHARED_TOKEN: serviceToken }, stdio: ["ignore", agentLog, agentLog] });
  const onMac = (await api("POST", "/v1/tasks", { repo, task_type: "shell", title: "on the mac", goal: "sleep 1; echo mac", constraints: { target_host: "mac" } })).task_id;
  await waitStatus(onMac, ["succeeded"]);
  await page.goto(`http://${control}/#timeline`);
  await waitFor("runs on both lanes", async () => {
    const lanes = await page.$$eval("#timeline-svg .lane-label", (labels) => labels.map((label) => label.textContent));
    const runs = await page.$$eval("#timeline-svg a.run", (bars) => bars.map((bar) => bar.getAttribute("aria-label")));
    return lanes.includes("mac") && lanes.includes("mini") && runs.some((run) => run.endsWith("on mac")) && runs.some((run) => run.endsWith("on mini"));
  });
  await page.screenshot({ path: path.join(shots, "console-timeline.png"), fullPage: true });
  await accessible("the timeline");
  const fitted = await page.textContent("#timeline-range");
  await page.click("#zoom-out");
  await waitFor("a wider window", async () => (await page.textContent("#timeline-range")) !== fitted);
  await page.click("#follow-now");

  // A usage limit parks the account: the fleet lists it, the task says why it waits, the
  // timeline shows the wait, and "Resume now" ends it.
  const limited = (await api("POST", "/v1/tasks", { repo, task_type: "codex", title: "meets a limit", goal: "hit the usage limit", constraints: { target_host: "mini" } })).task_id;
  await page.goto(`http://${control}/#fleet`);
  await expectText(page, "#accounts", "usage limit");
  await page.goto(`http://${control}/#task/${limited}`);
  await expectText(page, "#task-waiting", "Waiting (quota");
  await page.goto(`http://${control}/#timeline`);
  await waitFor("the parked band", async () => (await page.$$("#timeline-svg rect.parked")).length === 1);
  await page.screenshot({ path: path.join(shots, "console-timeline-parked.png"), fullPage: true });
  await page.goto(`http://${control}/#fleet`);
  await page.click(".resume-account");
  await waitStatus(limited, ["succeeded"]);
  await waitFor("the parked accounts to go", async () => page.isHidden("#accounts-section"));

  // Cancel a task that would run for a long time, with a reason.
  const long = (await api("POST", "/v1/tasks", { repo, task_type: "shell", title: "to be canceled", goal: "sleep 300", constraints: { target_host: "mini" } })).task_id;
  await page.goto(`http://${control}/#task/${long}`);
  await expectText(page, "#task-steps", "running");
  await page.fill("#task-reason", "not needed after all");
  await page.click("#cancel-task");
  await expectText(page, "#task-status", "canceled");
  await expectText(page, "#task-waiting", "not needed after all");

  // A readable log: the runner's events as sentences, colours rendered, stderr apart.
  const colourful = (await api("POST", "/v1/tasks", { repo, task_type: "shell", title: "colourful", goal: "printf '\\033[32mgreen ok\\033[0m\\n'; echo oops >&2", constraints: { target_host: "mini" } })).task_id;
  await page.goto(`http://${control}/#task/${colourful}`);
  await expectText(page, "#task-status", "succeeded");
  await expectText(page, "#task-log .ansi-32", "green ok");
  await expectText(page, "#task-log .log-stderr", "oops");
  await expectText(page, "#task-log", "Started the step's process");
  await expectText(page, "#task-log", "The process ended: succeeded");
  await expectText(page, "#task-log", "Reported the run as succeeded");
  assert.ok((await page.$$eval("#task-log .log-worker", (lines) => lines.map((line) => line.textContent).join("\n"))).includes("Nothing new to commit"), "runner lines are marked");
  assert.ok(!(await page.textContent("#task-log")).includes('{"at_ms"'), "no raw JSON lines");
  await page.screenshot({ path: path.join(shots, "console-task-log.png"), fullPage: true });
  await accessible("a task");

  // A coding-agent task for review: its coloured diff; a comment on a line goes with "request
  // changes" to the next round's feedback file.
  const reviewed = (await api("POST", "/v1/tasks", { repo, task_type: "codex", title: "for review", goal: "make a guess", review: true, constraints: { target_host: "mini" } })).task_id;
  await page.goto(`http://${control}/#task/${reviewed}`);
  await expectText(page, "#task-status", "review");
  await expectText(page, "#task-diff .diff-path", "guess.txt");
  await expectText(page, "#task-diff .diff-add", "+guess");
  await page.click('#task-diff button[aria-label="comment on guess.txt line 1"]');
  await page.fill("#task-diff .comment-editor textarea", "say why you guessed");
  await page.click("#task-diff .add-comment");
  await expectText(page, "#task-diff .diff-comment", "say why you guessed");
  await expectText(page, "#comment-list", "guess.txt:1");
  await page.screenshot({ path: path.join(shots, "console-diff-comment.png"), fullPage: true });
  await page.fill("#task-reason", "explain the guess");
  await page.click("#request-changes");
  await waitStatus(reviewed, ["review"]);
  const detail = await api("GET", "/v1/tasks/" + reviewed);
  assert.equal(Math.max(...detail.steps.map((step) => step.round)), 2, "another round ran");
  const feedback = execFileSync("sh", ["-c", `cat ${root}/runs/${reviewed}/*/feedback.md`]).toString();
  assert.ok(feedback.includes("guess.txt:1: say why you guessed") && feedback.includes("explain the guess"), feedback);
  await expectText(page, "#task-diff", "fixed.txt");

  // The status page of the node agent.
  const statusPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  statusPage.on("pageerror", (error) => failures.push("status page error: " + error.message));
  await statusPage.goto(`http://${status}/`);
  await expectText(statusPage, "[data-field=mode]", "running");
  await expectText(statusPage, "[data-field='this node']", "leader");
  await expectText(statusPage, "#recent", reviewed);
  await expectText(statusPage, "body", "mini-main");
  await statusPage.screenshot({ path: path.join(shots, "status-page.png"), fullPage: true });
  // It reloads itself: a new task shows up without any action on the page.
  const created = await fetch(`http://${control}/v1/tasks`, {
    method: "POST",
    headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
    body: JSON.stringify({ repo, task_type: "shell", title: "second", goal: "sleep 1" }),
  }).then((response) => response.json());
  await expectText(statusPage, "body", created.data.task_id);

  assert.deepEqual(failures, []);
  console.log(`browser tests passed; screenshots in ${shots}`);
} catch (error) {
  console.error(error);
  if (failures.length) console.error(failures.join("\n"));
  // What the page showed when it went wrong.
  for (const open of browser ? browser.contexts().flatMap((context) => context.pages()) : []) {
    await open.screenshot({ path: path.join(shots, "failure-" + Date.now() + ".png"), fullPage: true }).catch(() => {});
  }
  console.error(fs.readFileSync(path.join(dir, "agent.log"), "utf8").split("\n").slice(-40).join("\n"));
  process.exitCode = 1;
} finally {
  if (browser) await browser.close();
  if (second) second.kill("SIGTERM");
  agent.kill("SIGTERM");
  await waitFor("the agent to stop", () => agent.exitCode !== null || agent.signalCode !== null, 20_000).catch(() => agent.kill("SIGKILL"));
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(markers, { recursive: true, force: true });
}
