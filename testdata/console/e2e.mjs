// The console's end-to-end test, in real headless Chromium (Debian's), driven by
// playwright-core; started by crates/fullup-server/tests/browser.rs, which
// runs the service and passes what the script needs in the environment:
//
//   FULLUP_URL            the service, such as http://127.0.0.1:40123
//   FULLUP_ADMIN_TOKEN    its admin token
//   FULLUP_SITE           the site the operator works on (the portal's site)
//   FULLUP_OTHER_SITE     another site, with FULLUP_OTHER_WEBHOOK and FULLUP_OTHER_DELIVERY
//   FULLUP_PORTAL_URL     a portal link of FULLUP_SITE
//   FULLUP_ARTIFACTS      where screenshots go
//   CHROMIUM              the browser (default /usr/bin/chromium)
//
// The script runs its own receiver (a Node HTTP server on 127.0.0.1) whose answer it
// changes mid-run. It exits 0 when every step held, 1 with the failing step otherwise.
// No dialog may open and no injected script may run (window.__xss stays undefined);
// axe-core finds no serious or critical violation on any page.

import { readFileSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env("FULLUP_URL");
const ADMIN_TOKEN = env("FULLUP_ADMIN_TOKEN");
const SITE = env("FULLUP_SITE");
const OTHER_SITE = env("FULLUP_OTHER_SITE");
const OTHER_WEBHOOK = env("FULLUP_OTHER_WEBHOOK");
const OTHER_DELIVERY = env("FULLUP_OTHER_DELIVERY");
const PORTAL_URL = env("FULLUP_PORTAL_URL");
const ARTIFACTS = env("FULLUP_ARTIFACTS");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// What an attacker would write in every field a user or a receiver controls.
const XSS = `<script>window.__xss=1</script>"><img src=x onerror="window.__xss=1"><a href="javascript:window.__xss=1">x</a>`;

const failures = [];
let step = "start";
const log = (message) => console.log(`[e2e] ${message}`);
function check(ok, message) {
  if (!ok) throw new Error(`${step}: ${message}`);
}

// The receiver: answers every delivery with `answer`.
const answer = { status: 200, body: "ok" };
const received = [];
const receiver = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    received.push({ headers: req.headers, body });
    res.writeHead(answer.status, { "content-type": "text/html" });
    res.end(answer.body);
  });
});
await new Promise((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const RECEIVER_URL = `http://127.0.0.1:${receiver.address().port}/hook`;

mkdirSync(ARTIFACTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

/** A fresh context (no cookies) whose pages fail the test on any dialog. */
async function newPage(viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("dialog", async (dialog) => {
    failures.push(`${step}: a ${dialog.type()} dialog opened: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on("pageerror", (error) => failures.push(`${step}: page error: ${error.message}`));
  return page;
}

/** Checks that nothing injected ran, runs axe, and saves a screenshot as `name`. */
async function inspect(page, name) {
  const xss = await page.evaluate(() => window.__xss);
  check(xss === undefined, `an injected script ran on ${page.url()}`);
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(() =>
    window.axe.run(document, { resultTypes: ["violations"] }),
  );
  const serious = results.violations.filter((v) => ["serious", "critical"].includes(v.impact));
  for (const v of serious) {
    failures.push(
      `${name}: axe ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`,
    );
  }
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  log(`${name}: ${page.url()} (axe: ${results.violations.length} violations, ${serious.length} serious or critical)`);
}

/** Reloads `page` until `done()` holds (at most `seconds`). */
async function waitFor(page, what, done, seconds = 20) {
  for (let i = 0; i < seconds * 4; i++) {
    if (await done()) return;
    await page.waitForTimeout(250);
    await page.reload();
  }
  throw new Error(`${step}: ${what} did not happen within ${seconds} s (at ${page.url()})`);
}

/** The state badge's text of the first delivery row, or of the delivery page. */
const firstState = (page) => page.locator(".state").first().innerText();

/** Sends an event of the site through the API (as the platform would). */
async function sendEvent(type, data) {
  const response = await fetch(`${BASE}/v1/sites/${SITE}/events`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ type, data }),
  });
  check(response.status === 202, `the event was not accepted: ${response.status}`);
  return (await response.json()).id;
}

try {
  const page = await newPage();

  step = "sign in with the keyboard";
  await page.goto(`${BASE}/console/`);
  check(page.url().endsWith("/console/sign-in"), `not sent to sign in: ${page.url()}`);
  await inspect(page, "01-sign-in");
  await page.keyboard.press("Tab"); // the skip link
  await page.locator("#token").focus();
  await page.keyboard.type(ADMIN_TOKEN);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${BASE}/console/`);
  await inspect(page, "02-sites");

  step = "open the site";
  await page.locator(`a[href="/console/sites/${SITE}"]`).first().click();
  await page.waitForURL(`${BASE}/console/sites/${SITE}`);

  step = "create a webhook to the test receiver";
  await page.getByRole("link", { name: "Add a webhook" }).click();
  await inspect(page, "03-new-webhook");
  await page.fill("#url", RECEIVER_URL);
  await page.fill("#event_types", "*");
  await page.fill("#description", `Orders ${XSS}`);
  await page.getByRole("button", { name: "Create the webhook" }).click();
  await page.waitForURL(/\/webhooks\/wh_/);
  const webhookUrl = page.url();
  check((await page.locator("h1").innerText()).includes("<script>"), "the description is shown as text");
  await inspect(page, "04-webhook");

  step = "send a test event and see it succeed";
  await page.getByRole("button", { name: "Send a test event" }).click();
  await page.waitForURL(/\/deliveries\?/);
  await waitFor(page, "the test delivery succeeding", async () => (await firstState(page)).includes("succeeded"));
  check(received.some((r) => r.body.includes('"type":"ping"')), "the receiver got no ping");
  await inspect(page, "05-deliveries-test");

  step = "a failing receiver: the attempt's status and body are shown, inert";
  answer.status = 500;
  answer.body = XSS;
  const event = await sendEvent("order.paid", { note: XSS, link: "javascript:window.__xss=1" });
  await page.goto(`${BASE}/console/sites/${SITE}/deliveries?event=${event}`);
  await waitFor(page, "a failed attempt", async () => (await page.locator("tbody td:nth-child(4)").first().innerText()).trim() !== "0");
  await page.locator("tbody a[href*='/deliveries/dlv_']").first().click();
  await page.waitForURL(/\/deliveries\/dlv_/);
  const deliveryUrl = page.url();
  const text = await page.locator("main").innerText();
  check(text.includes("500"), "the response status 500 is not shown");
  check(text.includes("content-type: text/html"), "the response headers are not shown");
  await page.locator("summary", { hasText: "Request headers sent" }).first().click();
  check((await page.locator("main").innerText()).includes("webhook-signature: v1,"), "the request headers are not shown");
  check(text.includes("<script>window.__xss=1</script>"), "the response body is not shown as text");
  check(text.includes('"note": "<script>'), "the event payload is not shown as pretty JSON text");
  check((await page.locator("main a[href^='javascript:']").count()) === 0, "a javascript: link was rendered");
  await inspect(page, "06-delivery-failed");

  step = "retry after the receiver recovers";
  answer.status = 200;
  answer.body = "ok";
  await page.getByRole("button", { name: "Retry now" }).click();
  await page.waitForURL(deliveryUrl);
  await waitFor(page, "the retried delivery succeeding", async () => (await firstState(page)).includes("succeeded"));
  await inspect(page, "07-delivery-retried");

  step = "filter the deliveries by state with the keyboard";
  await page.goto(`${BASE}/console/sites/${SITE}/deliveries`);
  await page.locator("#state").focus();
  await page.keyboard.press("ArrowDown"); // pending
  await page.keyboard.press("ArrowDown"); // succeeded
  await page.locator("#event_type").focus();
  await page.keyboard.press("Enter"); // submits the filter form
  await page.waitForURL(/state=succeeded/);
  const states = await page.locator("tbody .state").allInnerTexts();
  check(states.length >= 2 && states.every((s) => s.includes("succeeded")), `not only succeeded: ${states}`);
  await inspect(page, "08-deliveries-filtered");

  step = "the site's webhooks and their health";
  await page.goto(`${BASE}/console/sites/${SITE}`);
  check((await page.locator("main").innerText()).includes("% of "), "no success ratio");
  await inspect(page, "09-site-webhooks");

  step = "live counters change without reloading the page";
  const ratio = page.locator("[data-counter$='-ratio']").first();
  const before = await ratio.innerText();
  await page.evaluate(() => (window.__notReloaded = true));
  await sendEvent("order.paid", { live: true });
  await ratio.filter({ hasNotText: before }).waitFor({ timeout: 15000 });
  check(await page.evaluate(() => window.__notReloaded === true), "the page was reloaded");
  log(`live counter: "${before}" -> "${await ratio.innerText()}"`);

  step = "recover the webhook's failed deliveries, with progress";
  await page.goto(webhookUrl);
  await page.fill("#since", "2000-01-01T00:00");
  await page.getByRole("button", { name: "Recover", exact: true }).click();
  await page.waitForURL(/\/recover$/);
  check((await page.locator("[data-counter=pending]").innerText()).trim() !== "", "no progress counter");
  await inspect(page, "15-recover");

  step = "the webhook page on a phone";
  const phone = await newPage({ width: 390, height: 844 });
  await phone.context().addCookies(await page.context().cookies());
  await phone.goto(webhookUrl);
  await inspect(phone, "10-webhook-phone");
  await phone.context().close();

  step = "open the portal link";
  const portal = await newPage();
  await portal.goto(PORTAL_URL);
  await inspect(portal, "11-portal-landing");
  await portal.getByRole("button", { name: "Open the portal" }).click();
  await portal.waitForURL(`${BASE}/console/sites/${SITE}`);
  await inspect(portal, "12-portal-site");

  step = "the portal reaches no other site by link";
  for (const path of [`/console/sites/${SITE}`, `/console/sites/${SITE}/deliveries`]) {
    await portal.goto(`${BASE}${path}`);
    const hrefs = await portal.locator("a").evaluateAll((as) => as.map((a) => a.getAttribute("href")));
    for (const id of [OTHER_SITE, OTHER_WEBHOOK, OTHER_DELIVERY]) {
      check(!hrefs.some((h) => h && h.includes(id)), `${path} links to ${id}`);
    }
  }
  await inspect(portal, "13-portal-deliveries");

  step = "the portal reaches no other site by typed URL";
  for (const path of [
    `/console/`,
    `/console/sites/${OTHER_SITE}`,
    `/console/sites/${OTHER_SITE}/deliveries`,
    `/console/sites/${OTHER_SITE}/webhooks/${OTHER_WEBHOOK}`,
    `/console/sites/${SITE}/webhooks/${OTHER_WEBHOOK}`,
    `/console/sites/${OTHER_SITE}/deliveries/${OTHER_DELIVERY}`,
    `/console/sites/${SITE}/deliveries/${OTHER_DELIVERY}`,
  ]) {
    const response = await portal.goto(`${BASE}${path}`);
    if (path === "/console/") {
      check(portal.url() === `${BASE}/console/sites/${SITE}`, `the portal's home is not its site: ${portal.url()}`);
      continue;
    }
    check(response.status() === 404, `${path} answered ${response.status()}, not 404`);
    check(!(await portal.locator("main").innerText()).includes("Orders"), `${path} shows a webhook`);
  }
  await inspect(portal, "14-portal-not-found");

  step = "the portal link opens once";
  const again = await newPage();
  await again.goto(PORTAL_URL);
  await again.getByRole("button", { name: "Open the portal" }).click();
  check((await again.locator("main").innerText()).includes("does not exist"), "a used link opened again");
} catch (error) {
  failures.push(error.message);
} finally {
  await browser.close();
  receiver.close();
}

if (failures.length > 0) {
  console.error(`[e2e] FAILED:\n${failures.map((f) => `  - ${f}`).join("\n")}`);
  process.exit(1);
}
log("every step held");
