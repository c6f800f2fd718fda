// Browser scenarios for the portal, in Debian's headless Chromium driven by playwright-core.
// Usage: node browser.mjs <scenario>; reads F7T_PORTAL_URL, F7T_PORTAL_LOGINS ({"alice": "pw", ...}),
// F7T_ARTEFACTS (screenshots go there); prints one JSON line of findings for pytest to check.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "portal", "package.json"));
const { chromium } = require("playwright-core");

const PORTAL = process.env.F7T_PORTAL_URL;
const LOGINS = JSON.parse(process.env.F7T_PORTAL_LOGINS || "{}");
const ART = process.env.F7T_ARTEFACTS || "/tmp/portal-artefacts";
const CHROMIUM = process.env.F7T_CHROMIUM || "/usr/bin/chromium";
const SLOW = 180_000; // a loaded 2-core machine: generous waits, never tight timing
mkdirSync(ART, { recursive: true });

const scenario = process.argv[2];
const found = { scenario };
let shot = 0;

async function snap(page, name) {
  await page.screenshot({ path: join(ART, `${scenario}-${String(++shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}

async function login(page, user, prefix = "") {
  page.setDefaultTimeout(SLOW);
  page.setDefaultNavigationTimeout(SLOW);
  await page.goto(PORTAL);
  await page.getByRole("button", { name: "Sign in" }).waitFor();
  if (prefix) await snap(page, `${prefix}signin`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#username").waitFor();
  if (prefix) await snap(page, `${prefix}issuer-login-form`);
  await page.fill("#username", user);
  await page.fill("#password", LOGINS[user]);
  await page.click('input[type="submit"]');
  await page.getByTestId("user").waitFor({ timeout: SLOW });
  if (!page.url().startsWith(PORTAL)) throw new Error(`not back on the portal: ${page.url()}`);
}

async function tokens(page) {
  return page.evaluate(() => JSON.parse(sessionStorage.getItem("f7t.tokens") || "null"));
}

async function submitJob(page, name, script) {
  await page.getByRole("link", { name: "Submit a job" }).first().click();
  await page.fill("#job-name", name);
  await page.fill("#job-script", script);
  await page.getByRole("button", { name: "Submit" }).click();
  await page.waitForURL(/#\/jobs\/\d+$/, { timeout: SLOW });
  return page.url().split("/").pop();
}

/** Watch the job page's state without reloading; returns the states seen, in order. */
async function statesUntil(page, final) {
  await page.evaluate(() => {
    window.__seen = [];
    window.__notReloaded = true;
    const el = document.querySelector('[data-testid="job-state"]');
    const note = () => { const s = el.textContent; if (window.__seen.at(-1) !== s) window.__seen.push(s); };
    note();
    new MutationObserver(note).observe(el, { childList: true, characterData: true, subtree: true });
  });
  await page.waitForFunction((want) => want.includes(document.querySelector('[data-testid="job-state"]')?.textContent),
    final, { timeout: SLOW });
  return page.evaluate(() => ({ seen: window.__seen, notReloaded: window.__notReloaded === true }));
}

const scenarios = {
  // a real login, systems, a job submitted and followed live to COMPLETED with its output, a job
  // cancelled, the job and task lists, a phone-sized screen, keyboard navigation, logout
  async job(browser) {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await login(page, "alice", "login-");
    await page.getByTestId("accounts").waitFor({ timeout: SLOW });
    await page.locator("text=Partitions on").waitFor({ timeout: SLOW });
    await snap(page, "systems");
    found.systemsText = await page.locator("main").innerText();
    const marker = `portal-${randomBytes(4).toString("hex")}`;
    await page.getByRole("link", { name: "Submit a job" }).first().click();
    await snap(page, "submit-form");
    const jobId = await submitJob(page, marker, `#!/bin/bash\nsleep 8\necho ${marker} says hello\n`);
    const { seen, notReloaded } = await statesUntil(page, ["COMPLETED", "FAILED", "CANCELLED"]);
    await page.getByTestId("job-output").waitFor({ timeout: SLOW });
    await snap(page, "job-completed");
    Object.assign(found, { jobId, marker, seen, notReloaded, output: await page.getByTestId("job-output").innerText(),
      liveNote: await page.getByTestId("live-note").innerText() });

    const longId = await submitJob(page, `${marker}-long`, "#!/bin/bash\nsleep 300\n");
    await page.waitForFunction(() => /PENDING|RUNNING/.test(document.querySelector('[data-testid="job-state"]')?.textContent || ""),
      null, { timeout: SLOW });
    await page.getByRole("button", { name: "Cancel job" }).click();
    const cancelled = await statesUntil(page, ["CANCELLED"]);
    await snap(page, "job-cancelled");
    Object.assign(found, { longId, cancelledSeen: cancelled.seen });

    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.getByTestId("jobs").waitFor({ timeout: SLOW });
    await snap(page, "job-list");
    found.jobList = await page.getByTestId("jobs").innerText();
    await page.getByRole("link", { name: "Tasks" }).click();
    await page.getByTestId("tasks").waitFor({ timeout: SLOW });
    await snap(page, "task-list");
    found.taskList = await page.getByTestId("tasks").innerText();

    // keyboard only: focus the Jobs link by tabbing, open it with Enter
    await page.goto(`${PORTAL}#/systems`);
    await page.getByTestId("user").waitFor();
    let focused = "";
    for (let i = 0; i < 8 && focused !== "Jobs"; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement?.textContent?.trim() || "");
    }
    await page.keyboard.press("Enter");
    await page.getByTestId("jobs").waitFor({ timeout: SLOW });
    found.keyboardReachedJobs = page.url().endsWith("#/jobs");

    // a phone's width: nothing wider than the screen
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${PORTAL}#/jobs/${jobId}`);
    await page.getByTestId("job-output").waitFor({ timeout: SLOW });
    await snap(page, "phone-job");
    found.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    await page.goto(`${PORTAL}#/files`);
    await page.getByTestId("files").waitFor({ timeout: SLOW });
    await snap(page, "phone-files");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor({ timeout: SLOW });
    await snap(page, "signed-out");
    found.afterLogoutUrl = page.url();
    found.tokensAfterLogout = await tokens(page);
  },

  // the file browser: mkdir, a small upload, view, download; a 20 MiB upload through the staged
  // path with its progress bar, downloaded back (staged) with the same SHA-256; rm
  async files(browser) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const page = await context.newPage();
    page.on("dialog", (d) => d.accept());
    await login(page, "alice");
    await page.getByRole("link", { name: "Files" }).click();
    await page.getByTestId("files").waitFor({ timeout: SLOW });
    const folder = `portal-${randomBytes(4).toString("hex")}`;
    await page.fill("#new-dir", folder);
    await page.getByRole("button", { name: "Create" }).click();
    await page.getByRole("button", { name: `Open folder ${folder}` }).click();
    await page.waitForURL(new RegExp(`${folder}$`));
    await page.getByText("This folder is empty.").waitFor({ timeout: SLOW });

    const small = `hello from the portal ${folder}\n`;
    await page.setInputFiles("#upload-file", { name: "small.txt", mimeType: "text/plain", buffer: Buffer.from(small) });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await page.getByTestId("notice").filter({ hasText: "Uploaded small.txt" }).waitFor({ timeout: SLOW });
    await page.getByRole("button", { name: "View small.txt" }).click();
    found.smallView = await page.getByTestId("file-view").innerText();
    await snap(page, "file-view");
    const [smallDl] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Download small.txt" }).click()]);
    found.smallDownload = readFileSync(await smallDl.path(), "utf8");

    const big = randomBytes(20 * 1024 * 1024);
    found.bigSha = createHash("sha256").update(big).digest("hex");
    const bigFile = join(mkdtempSync(join(tmpdir(), "f7t-portal-")), "big.bin");
    writeFileSync(bigFile, big);  // from disk: the browser reads it itself (no 20 MiB over the protocol)
    await page.setInputFiles("#upload-file", bigFile);
    await page.evaluate(() => {  // every progress message shown, in order
      window.__progress = [];
      new MutationObserver(() => {
        const t = document.querySelector(".progress label")?.textContent;
        if (t && window.__progress.at(-1) !== t) window.__progress.push(t);
      }).observe(document.body, { childList: true, characterData: true, subtree: true });
    });
    await page.getByRole("button", { name: "Upload", exact: true }).click();
    await page.locator("progress").waitFor({ timeout: SLOW });
    await snap(page, "staged-upload-progress");
    await page.getByTestId("notice").filter({ hasText: "Uploaded big.bin" }).waitFor({ timeout: SLOW });
    await snap(page, "after-staged-upload");
    found.uploadProgress = await page.evaluate(() => window.__progress);
    found.listing = await page.getByTestId("files").innerText();
    const [bigDl] = await Promise.all([
      page.waitForEvent("download", { timeout: SLOW }),
      page.getByRole("button", { name: "Download big.bin" }).click(),
    ]);
    found.bigDownloadSha = createHash("sha256").update(readFileSync(await bigDl.path())).digest("hex");
    rmSync(dirname(bigFile), { recursive: true, force: true });
    await page.getByRole("button", { name: "Up", exact: true }).click();
    await page.getByRole("button", { name: `Delete ${folder}` }).click();
    await page.getByTestId("notice").filter({ hasText: `Deleted ${folder}` }).waitFor({ timeout: SLOW });
    found.folderGone = !(await page.getByTestId("files").innerText()).includes(folder);
    // a folder that does not exist: said in words
    await page.goto(`${PORTAL}#/files?path=/home/alice/${folder}`);
    await page.locator(".error").waitFor({ timeout: SLOW });
    found.missingFolderError = await page.locator(".error").innerText();
    await snap(page, "error-missing-folder");
  },

  // the access token expires (the portal's client has a short lifetime) and the session goes on
  async expiry(browser) {
    const page = await (await browser.newContext()).newPage();
    await login(page, "alice");
    const first = await tokens(page);
    const gateway = new URL(PORTAL).origin;
    const refused = async () => (await fetch(`${gateway}/status/systems`, {
      headers: { authorization: `Bearer ${first.accessToken}` } })).status === 401;
    const deadline = Date.now() + SLOW;
    while (!(await refused())) {
      if (Date.now() > deadline) throw new Error("the first access token never expired");
      await new Promise((r) => setTimeout(r, 2000));
    }
    found.firstTokenRefused = true;
    await page.getByRole("link", { name: "Jobs", exact: true }).click();
    await page.waitForFunction(() => document.querySelector('[data-testid="jobs"]') || /no jobs/.test(document.body.innerText),
      null, { timeout: SLOW });
    await snap(page, "jobs-after-expiry");
    const second = await tokens(page);
    found.newTokenDiffers = second && second.accessToken !== first.accessToken;
    found.refreshRotated = second && second.refreshToken !== first.refreshToken;
    found.errorsShown = await page.locator(".error").count();
    found.stillSignedIn = await page.getByTestId("user").isVisible();
    // the rotated-away refresh token is dead; after logout the current one is too
    const issuer = JSON.parse(await (await fetch(`${PORTAL}config.json`)).text()).issuer;
    const refresh = async (rt) => (await fetch(`${issuer}/protocol/openid-connect/token`, { method: "POST",
      body: new URLSearchParams({ grant_type: "refresh_token", refresh_token: rt, client_id: "f7t-portal" }) })).status;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("button", { name: "Sign in" }).waitFor({ timeout: SLOW });
    found.refreshAfterLogout = await refresh(second.refreshToken);
  },

  // bob cannot see alice's jobs, in the list or by address
  async isolation(browser) {
    const alice = await (await browser.newContext()).newPage();
    await login(alice, "alice");
    const jobId = await submitJob(alice, "alice-private", "#!/bin/bash\necho private\n");
    await statesUntil(alice, ["COMPLETED", "FAILED", "CANCELLED"]);
    const bob = await (await browser.newContext()).newPage();
    await login(bob, "bob");
    found.bobUser = await bob.getByTestId("user").innerText();
    await bob.getByRole("link", { name: "Jobs", exact: true }).click();
    await bob.waitForFunction(() => document.querySelector('[data-testid="jobs"]') || /no jobs/.test(document.body.innerText),
      null, { timeout: SLOW });
    await snap(bob, "bob-jobs");
    found.aliceJob = jobId;
    found.bobJobsText = await bob.locator("main").innerText();
    await bob.goto(`${PORTAL}#/jobs/${jobId}`);
    await bob.locator(".error").waitFor({ timeout: SLOW });
    found.bobDirectError = await bob.locator(".error").innerText();
    await snap(bob, "bob-alice-job");
  },
};

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
let code = 0;
try {
  await scenarios[scenario](browser);
} catch (e) {
  found.error = String(e && e.stack || e);
  code = 1;
  try {
    for (const ctx of browser.contexts()) for (const p of ctx.pages()) await snap(p, "failure");
  } catch { /* best effort */ }
} finally {
  await browser.close();
}
console.log(JSON.stringify(found));
process.exit(code);
