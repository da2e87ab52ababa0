// MS04-002 in a real browser: Debian's Chromium, headless, driven by playwright-core.
//
// For each scenario it starts `exsim up --config configs/<scenario>.json --workers 1` in a
// temporary folder, then alice and bob, each in a browser context of their own (own cookies), log
// in through the forms login and read their inboxes, alternately, a few rounds.
//   ms04-002-vulnerable (both back-ends NTLM only, policy legacy): bob's page must show alice's
//     mailbox under a red banner at least once;
//   ms04-002-fixed (the same back-ends, policy ms04-002): never, over the same steps.
// It also opens the dashboard and waits for its script to update the counters (the strict CSP
// lets our own script run), and fails on any CSP violation reported by the browser.
// Screenshots go to $EXSIM_SCREENSHOTS (default: <repo>/build/browser-screenshots).
//
// usage: node owa_leak.test.mjs [scenario ...]   (default: both). Exit code 0: passed.
// Environment: EXSIM_BINARY (default <repo>/build/dev/app/exsim), CHROMIUM (default /usr/bin/chromium).

import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const exsim = process.env.EXSIM_BINARY || join(repo, "build/dev/app/exsim");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.EXSIM_SCREENSHOTS || join(repo, "build/browser-screenshots");
const rounds = 3;
const scenarios = process.argv.length > 2 ? process.argv.slice(2) : ["ms04-002-vulnerable", "ms04-002-fixed"];

function fail(message) {
  throw new Error(message);
}

// Starts `exsim up` and waits until it has written EXSIM_PROXY_URL (the last step of start-up).
async function startExsim(scenario, state) {
  const log = [];
  const child = spawn(exsim, ["up", "--config", join(repo, "configs", `${scenario}.json`), "--state-dir", state,
                              "--workers", "1", "--capture", join(state, "capture.pcapng")],
                      { stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => log.push(String(d)));
  child.stderr.on("data", (d) => log.push(String(d)));
  const exited = new Promise((done) => child.on("exit", (code, signal) => done({ code, signal })));
  child.exited = exited;
  child.log = log;
  let ended = null;
  exited.then((e) => { ended = e; });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    if (ended) fail(`exsim up exited (${JSON.stringify(ended)}) before it listened:\n${log.join("")}`);
    const env = await readFile(join(state, "endpoints.env"), "utf8").catch(() => "");
    const url = /^export EXSIM_PROXY_URL=(\S+)$/m.exec(env);
    if (url && /^export EXSIM_POLICY=/m.test(env)) return { child, url: url[1] };
    await sleep(200);
  }
  fail(`exsim up did not write EXSIM_PROXY_URL within 120 s:\n${log.join("")}`);
}

async function stopExsim(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const killed = sleep(15_000).then(() => "timeout");
  if ((await Promise.race([child.exited, killed])) === "timeout") {
    child.kill("SIGKILL");
    await child.exited;
  }
}

// The capture `exsim up --capture` is writing, read by tshark while exsim runs: the narration's
// comments on the back-end responses that crossed users, and the NTLM logins by TCP stream.
async function readCapture(file) {
  await sleep(1_000);  // flushed twice a second
  const tshark = (filter, ...fields) =>
    execFileSync("tshark", ["-r", file, "-Y", filter, "-T", "fields", ...fields.flatMap((f) => ["-e", f])],
                 { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).split("\n").filter((l) => l !== "");
  const crossed = tshark("frame.comment contains \"CROSS-USER: served alice's mailbox to bob\"", "tcp.stream");
  const logins = new Map(tshark("ntlmssp.messagetype == 3", "tcp.stream", "ntlmssp.auth.username")
    .map((l) => l.split("\t")));
  return { crossed, logins };
}

// Logs in through the form; the login lands on the inbox page, which is returned.
async function logIn(page, url, user) {
  await page.goto(`${url}/owa/auth/logon`);
  await page.fill("input[name=username]", user);
  await page.fill("input[name=password]", `${user}-pw`);
  const [landed] = await Promise.all([page.waitForResponse((r) => r.url().endsWith("/owa/inbox")), page.click("#logon")]);
  await page.waitForURL(/\/owa\/inbox$/);
  return landed.status();
}

// Reads the banner of the page shown: whose mailbox the back-end served, and whether it is red.
async function readBanner(page, status) {
  const banner = page.locator("#banner");
  return {
    status,
    mailbox: await banner.getAttribute("data-mailbox"),
    red: (await banner.getAttribute("class")).includes("leak"),
    text: await banner.innerText(),
  };
}

async function runScenario(browser, scenario) {
  const vulnerable = scenario.includes("vulnerable");
  const state = await mkdtemp(join(tmpdir(), "exsim-browser-"));
  const { child, url } = await startExsim(scenario, state);
  const problems = [];
  let leaks = 0;
  try {
    console.log(`${scenario}: exsim up listens on ${url}`);
    const users = {};
    // Each step shows alice her inbox page, then bob his; the first ("login") is the one each login lands on.
    const check = async (step, user, seen) => {
      const shot = join(shots, `${scenario}-${step}-${user}.png`);
      await users[user].screenshot({ path: shot, fullPage: true });
      console.log(`${scenario}: ${step}: ${user}'s inbox page: HTTP ${seen.status}, mailbox ${seen.mailbox}, ` +
                  `banner ${seen.red ? "RED" : "green"} (${shot})`);
      if (seen.status !== 200) problems.push(`${step}: ${user}'s inbox page answered ${seen.status}`);
      const foreign = seen.mailbox !== user;
      if (foreign !== seen.red) problems.push(`${step}: ${user}'s banner colour does not match mailbox ${seen.mailbox}`);
      if (foreign && seen.red && !seen.text.includes("LEAK: this is not your mailbox"))
        problems.push(`${step}: ${user}'s red banner does not say LEAK`);
      if (user === "bob" && seen.mailbox === "alice" && seen.red) ++leaks;
      else if (foreign) problems.push(`${step}: ${user} was served the mailbox of ${seen.mailbox}`);
    };
    for (const user of ["alice", "bob"]) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1100, height: 650 } });
      const page = await context.newPage();
      page.on("console", (m) => {
        if (/Content Security Policy/i.test(m.text())) problems.push(`${user}: CSP violation: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`${user}: page error: ${e.message}`));
      users[user] = page;
      await check("login", user, await readBanner(page, await logIn(page, url, user)));
    }
    const cookies = await users.bob.context().cookies();
    const session = cookies.find((c) => c.name === "exsim_session");
    if (!session || !session.httpOnly || !session.secure || session.sameSite !== "Strict")
      problems.push(`the session cookie is not HttpOnly + Secure + SameSite=Strict: ${JSON.stringify(session)}`);

    for (let round = 1; round <= rounds; ++round) {
      for (const user of ["alice", "bob"]) {
        const res = await users[user].goto(`${url}/owa/inbox`);
        await check(`round${round}`, user, await readBanner(users[user], res.status()));
      }
    }

    // The dashboard: its script (allowed by script-src 'self') fetches the counters.
    const dash = users.bob;
    await dash.goto(`${url}/owa/dashboard`);
    await dash.waitForFunction(() => /^updated /.test(document.getElementById("updated").textContent), null,
                               { timeout: 10_000 });
    const counted = Number(await dash.locator("#cross_user_responses").innerText());
    await dash.screenshot({ path: join(shots, `${scenario}-dashboard.png`), fullPage: true });
    console.log(`${scenario}: dashboard: cross-user responses ${counted}`);
    if (counted !== leaks) problems.push(`the dashboard counts ${counted} cross-user responses, the pages showed ${leaks}`);

    const capture = await readCapture(join(state, "capture.pcapng"));
    await copyFile(join(state, "capture.pcapng"), join(shots, `${scenario}.pcapng`));
    console.log(`${scenario}: capture: ${capture.crossed.length} back-end responses commented CROSS-USER, ` +
                `NTLM logins by stream ${JSON.stringify([...capture.logins])} (${join(shots, `${scenario}.pcapng`)})`);
    if (capture.crossed.length !== leaks)
      problems.push(`the capture comments ${capture.crossed.length} crossings, the pages showed ${leaks}`);
    for (const stream of capture.crossed)
      if (capture.logins.get(stream) !== "alice")
        problems.push(`a crossing on tcp.stream ${stream}, which alice's NTLM login did not open`);

    if (vulnerable && leaks === 0) problems.push("bob never saw alice's mailbox: the demonstration of the bug failed");
    if (!vulnerable && leaks > 0) problems.push(`bob saw alice's mailbox ${leaks} times under the fix`);
  } finally {
    await stopExsim(child);
    if (problems.length) console.error(child.log.join("").split("\n").slice(-40).join("\n"));
    await rm(state, { recursive: true, force: true });
  }
  console.log(`${scenario}: bob was served alice's mailbox ${leaks} of ${rounds + 1} times`);
  return problems.map((p) => `${scenario}: ${p}`);
}

async function main() {
  if (!existsSync(exsim)) fail(`no exsim binary at ${exsim} (build first, or set EXSIM_BINARY)`);
  if (!existsSync(chromiumPath)) fail(`no Chromium at ${chromiumPath} (scripts/bootstrap.sh installs Debian's chromium)`);
  await mkdir(shots, { recursive: true });
  const started = Date.now();
  // --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--headless=new"] });
  const problems = [];
  try {
    for (const scenario of scenarios) problems.push(...await runScenario(browser, scenario));
  } finally {
    await browser.close();
  }
  console.log(`screenshots in ${shots}; ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (problems.length) {
    for (const p of problems) console.error(`FAIL ${p}`);
    process.exit(1);
  }
  console.log("PASS");
}

main().catch((e) => {
  console.error(`FAIL ${e.stack || e}`);
  process.exit(1);
});
