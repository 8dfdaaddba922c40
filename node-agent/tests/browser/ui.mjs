// Browser tests in headless Chromium (Debian's chromium, driven by playwright-core): the admin
// console of the control plane and the status page of the node agent, against one real
// `node-agent start --embedded` on loopback with a scratch git repository. Screenshots go to
// $BAA_SCREENSHOTS_DIR (default target/browser-screenshots).
//
//   node node-agent/tests/browser/ui.mjs      (after `cargo build -p node-agent`)

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

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
// other goal makes a first guess, and the fix once its feedback file says what failed.
const agentScript = path.join(dir, "stand-in-agent.sh");
fs.writeFileSync(agentScript, `#!/bin/sh
printf '{"input_tokens": 1500, "output_tokens": 300, "cost_usd": 0.02, "model": "stand-in"}' > "$3"
case "$(cat "$1")" in
  *limit*) if [ ! -e "${dir}/limited" ]; then touch "${dir}/limited"; echo "You've hit your usage limit. Try again in 2 hours."; exit 1; fi
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

  // The console: enter a token.
  await page.goto(`http://${control}/`);
  await expectText(page, "#signed-out", "Paste a token");
  await page.fill("#token", admin);
  await page.click("#use-token");
  await expectText(page, "#mode", "running");
  await expectText(page, "#controllers", "mini-main");
  // The agent reports its own version (the crate's) and when it started.
  const crateVersion = fs.readFileSync("Cargo.toml", "utf8").match(/^version = "([^"]+)"/m)[1];
  await expectText(page, "#controllers", crateVersion);
  assert.ok(!(await page.textContent("#controllers")).includes("unknown"), "version and start time are shown");
  await page.screenshot({ path: path.join(shots, "console-signed-in.png"), fullPage: true });

  // Pause → the page shows paused; resume; drain; resume.
  await page.fill("#reason", "browser test");
  await page.click("#pause");
  await expectText(page, "#mode", "paused");
  await expectText(page, "#last-change", "browser test");
  await page.screenshot({ path: path.join(shots, "console-paused.png"), fullPage: true });
  // A task created while paused says why it waits, in the list and in its detail.
  await page.fill("#new-repo", repo);
  await page.fill("#new-title", "waits while paused");
  await page.fill("#new-goal", "echo after-the-pause");
  await page.click("#create");
  await expectText(page, "#tasks", "paused: the fleet is paused");
  await expectText(page, "#detail-reason", "waiting (paused");
  await page.screenshot({ path: path.join(shots, "console-waiting-reason.png"), fullPage: true });
  await page.click("#resume");
  await expectText(page, "#mode", "running");
  await expectText(page, "#detail-status", "succeeded");
  await page.click("#drain");
  await expectText(page, "#mode", "draining");
  await page.click("#resume");
  await expectText(page, "#mode", "running");

  // Create a task and watch it finish, with its logs.
  await page.fill("#new-repo", repo);
  await page.fill("#new-title", "from the browser");
  await page.fill("#new-goal", "echo hello > browser.txt; echo browser-output");
  await page.fill("#new-acceptance", "test -f browser.txt && echo accepted");
  const before = await page.textContent("#created");
  await page.click("#create");
  // The line still names the task created before until this one's answer comes.
  const taskId = await waitFor("the new task's id", async () => {
    const created = await page.textContent("#created");
    return created !== before && created.startsWith("created task_") && created.replace("created ", "").trim();
  });
  await expectText(page, "#detail-id", taskId);
  await expectText(page, "#detail-status", "succeeded");
  await expectText(page, "#logs", "browser-output");
  await expectText(page, "#logs", "accepted");
  await expectText(page, "#steps", "test");
  // The deliverable: the branch, its head commit (the one commit of the task's step) and the
  // file it changed, as the repository itself has them.
  await expectText(page, "#result-branch", "baa/" + taskId);
  const head = execFileSync("git", ["-C", repo, "rev-parse", "baa/" + taskId]).toString().trim();
  await expectText(page, "#result-head", head);
  await expectText(page, "#result-files", "browser.txt");
  await expectText(page, "#result-commits", "1");
  await page.screenshot({ path: path.join(shots, "console-task-succeeded.png"), fullPage: true });

  // A task created for review waits for a person: its report is shown, and approving it
  // makes it succeed.
  await page.fill("#new-title", "to be reviewed");
  await page.fill("#new-goal", "echo reviewed > reviewed.txt");
  await page.fill("#new-acceptance", "");
  await page.check("#new-review");
  await page.click("#create");
  await expectText(page, "#detail-status", "review");
  await expectText(page, "#report", "## files_changed");
  await expectText(page, "#report", "reviewed.txt");
  await expectText(page, "#report", "## next_handoff");
  await page.screenshot({ path: path.join(shots, "console-task-review.png"), fullPage: true });
  await page.fill("#reason", "looks right");
  await page.click("#approve-task");
  await expectText(page, "#detail-status", "succeeded");
  assert.ok(await page.isHidden("#approve-task"), "approved: the buttons go");
  await page.uncheck("#new-review");
  await page.fill("#reason", "");

  // A coding-agent task whose acceptance fails in round 1 and passes in round 2: the rounds in
  // the steps, and the task's diff, step by step.
  await page.selectOption("#new-type", "codex");
  await page.fill("#new-title", "two rounds");
  await page.fill("#new-goal", "make the test pass");
  await page.fill("#new-acceptance", "test -f fixed.txt");
  await page.click("#create");
  await expectText(page, "#detail-goal", "two rounds");
  await expectText(page, "#detail-status", "succeeded");
  // Setup, agent and test in round 1; agent and test in round 2 (the table fills a moment after the status).
  await waitFor("the steps of both rounds", async () =>
    JSON.stringify(await page.$$eval("#steps tbody tr", (rows) => rows.map((row) => row.cells[1].textContent))) ===
      JSON.stringify(["1", "1", "1", "2", "2"]));
  await expectText(page, "#diff", "+guess");
  await expectText(page, "#diff", "+fixed");
  await expectText(page, "#diff", "round 2");
  // Each round's agent wrote its usage file: the task shows the sum.
  await expectText(page, "#detail-usage", "usage: 3000 tokens in, 600 out, $0.0400 over 2 run(s) (stand-in)");
  await page.screenshot({ path: path.join(shots, "console-rounds-and-diff.png"), fullPage: true });

  // A usage limit parks the account: the console lists it, the task says why it waits, and
  // "Resume now" ends the wait.
  await page.fill("#new-title", "meets a limit");
  await page.fill("#new-goal", "hit the usage limit");
  await page.fill("#new-acceptance", "");
  await page.click("#create");
  await expectText(page, "#detail-goal", "meets a limit");
  await expectText(page, "#accounts", "mini");
  await expectText(page, "#accounts", "usage limit");
  await expectText(page, "#detail-reason", "waiting (quota");
  await page.screenshot({ path: path.join(shots, "console-parked-account.png"), fullPage: true });
  await page.click(".resume-account");
  await expectText(page, "#detail-status", "succeeded");
  await waitFor("the parked accounts to go", async () => page.isHidden("#accounts-section"));
  await page.selectOption("#new-type", "shell");

  // Cancel a task that would run for a long time.
  await page.fill("#new-title", "to be canceled");
  await page.fill("#new-goal", "sleep 300");
  await page.fill("#new-acceptance", "");
  await page.click("#create");
  await expectText(page, "#steps", "running");
  await page.fill("#reason", "not needed after all");
  await page.click("#cancel-task");
  await expectText(page, "#detail-status", "canceled");
  await expectText(page, "#detail-reason", "not needed after all");
  await page.screenshot({ path: path.join(shots, "console-task-canceled.png"), fullPage: true });

  // A token that is not valid signs the page out with the control plane's message.
  await page.click("#forget-token");
  await page.fill("#token", "not-a-token");
  await page.click("#use-token");
  await expectText(page, "#error", "unknown_token");
  await expectText(page, "#signed-out", "Paste a token");

  // The status page of the node agent.
  const statusPage = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  statusPage.on("pageerror", (error) => failures.push("status page error: " + error.message));
  await statusPage.goto(`http://${status}/`);
  await expectText(statusPage, "[data-field=mode]", "running");
  await expectText(statusPage, "[data-field='this node']", "leader");
  await expectText(statusPage, "#recent", taskId);
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
  agent.kill("SIGTERM");
  await waitFor("the agent to stop", () => agent.exitCode !== null || agent.signalCode !== null, 20_000).catch(() => agent.kill("SIGKILL"));
  fs.rmSync(dir, { recursive: true, force: true });
}
