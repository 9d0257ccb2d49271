// The dashboard's end-to-end tests in a real browser: Debian's Chromium, driven by
// playwright-core, against a running civicflow service (started by the suite's test
// `dashboard_browser`, tests/suite/dashboard_browser.rs, which is how they are meant to run:
// `cargo test --test suite dashboard_browser`).
//
//   node run.mjs --base http://127.0.0.1:PORT --tokens DATA/demo-tokens.json --out DIR [--only NAME]
//
// Every flow in flows/*.mjs runs in name order: `export const name = "…"` and a default async
// function of `ctx` (below) that throws on failure. Every page a flow checks with
// `ctx.check` is run through axe-core (a violation of impact serious or critical fails), saved
// as a screenshot, and weighed (every byte it loaded). Results: DIR/metrics.json and
// DIR/screenshots/*.png; the exit status is 1 when any flow failed.

import { readFileSync, mkdirSync, writeFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
for (const required of ["base", "tokens", "out"]) {
  if (!args[required]) {
    console.error(`usage: node run.mjs --base URL --tokens FILE --out DIR [--only NAME]; --${required} is missing`);
    process.exit(2);
  }
}
const base = args.base.replace(/\/$/, "");
const tokens = JSON.parse(readFileSync(args.tokens, "utf8"));
const out = args.out;
mkdirSync(join(out, "screenshots"), { recursive: true });
const axeSource = readFileSync(join(here, "node_modules", "axe-core", "axe.min.js"), "utf8");

// The flags the machine notes give for Chromium here: no GPU, no QUIC, and nothing that
// reaches out to Google's hosts (this machine's network refuses them). Playwright gives the
// browser a fresh, empty profile of its own.
const CHROMIUM = process.env.CIVICFLOW_CHROMIUM || "/usr/bin/chromium";
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

const metrics = [];
const phone = { width: 390, height: 844 };
const desktop = { width: 1280, height: 900 };

/** The demo token of the actor with this role at this unit. */
function token({ role, unit }) {
  const found = tokens.find((t) => t.role === role && (unit === undefined || t.unit_id === unit));
  if (!found) throw new Error(`no demo token for role ${role} at ${unit}`);
  return found.token;
}

/** Fails the flow with `message` unless `condition`. */
function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Every response a page loads, counted: what the page weighs with everything it loads. */
function weigh(page) {
  const state = { bytes: 0, requests: 0, thirdParty: [] };
  page.on("response", async (response) => {
    const url = response.url();
    if (!url.startsWith(base) && !url.startsWith("data:")) state.thirdParty.push(url);
    if (response.headers()["content-type"]?.startsWith("text/event-stream")) return;
    try {
      const body = await response.body();
      state.bytes += body.length;
      state.requests += 1;
    } catch {
      // A redirect or an aborted request has no body.
    }
  });
  return state;
}

/** A page in a fresh browser context, signed in through the real sign-in form. */
async function signIn(who, options = {}) {
  const secret = who.token ?? token(who);
  const context = await browser.newContext({ viewport: options.viewport ?? desktop });
  const page = await context.newPage();
  page.weight = weigh(page);
  page.on("pageerror", (error) => {
    page.scriptErrors = (page.scriptErrors ?? []).concat(String(error));
  });
  page.on("console", (message) => {
    // A CSP refusal is reported on the console: it must never happen.
    if (message.type() === "error") page.consoleErrors = (page.consoleErrors ?? []).concat(message.text());
  });
  await page.goto(`${base}/`);
  await page.fill("input[name=token]", secret);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  assert(
    !page.url().endsWith("/session") && !page.url().endsWith("/"),
    `signing in as ${JSON.stringify(who)} failed at ${page.url()}: ${(await page.content()).slice(0, 2000)}`,
  );
  return page;
}

/** axe-core on the page (no serious or critical violation), a screenshot, its weight. */
async function check(page, shot) {
  await page.waitForLoadState("networkidle").catch(() => {});
  // Through the DevTools protocol: the page's CSP refuses any script tag of ours, as it should.
  await page.evaluate(axeSource);
  const results = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    return await axe.run(document, { resultTypes: ["violations"] });
  });
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  await page.screenshot({ path: join(out, "screenshots", `${shot}.png`), fullPage: true });
  // The weight of this page as a browser loads it the first time: a fresh context, no cache.
  const context = await browser.newContext({ viewport: page.viewportSize() ?? desktop });
  const cookies = await page.context().cookies();
  await context.addCookies(cookies);
  const fresh = await context.newPage();
  const weight = weigh(fresh);
  const reloaded = await fresh.goto(page.url());
  await fresh.waitForLoadState("networkidle").catch(() => {});
  await context.close();
  // A page that answered a form (its URL takes no GET) is not weighed again.
  if (reloaded?.ok()) {
    metrics.push({ name: `page_bytes:${shot}`, value: weight.bytes, unit: "bytes", url: page.url() });
  }
  assert(weight.thirdParty.length === 0, `${shot}: loads from other hosts: ${weight.thirdParty.join(", ")}`);
  assert(!(page.scriptErrors ?? []).length, `${shot}: script errors: ${page.scriptErrors}`);
  assert(
    !(page.consoleErrors ?? []).some((e) => /Content Security Policy/i.test(e)),
    `${shot}: the CSP refused something: ${page.consoleErrors}`,
  );
  assert(
    bad.length === 0,
    `${shot}: axe found ${bad.length} serious or critical violation(s):\n` +
      bad.map((v) => `  ${v.impact} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(" ")).join("; ")}`).join("\n"),
  );
}

/** A call of the JSON API as a demo actor (for a flow's set-up). */
async function api(method, path, who, body) {
  const headers = { authorization: `Bearer ${who.token ?? token(who)}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: kept as text.
  }
  return { status: response.status, body: parsed };
}

const ctx = {
  base,
  tokens,
  token,
  phone,
  desktop,
  browser,
  signIn,
  check,
  api,
  assert,
  metric: (name, value, unit) => metrics.push({ name, value, unit }),
  out,
};

const flows = readdirSync(join(here, "flows"))
  .filter((f) => f.endsWith(".mjs"))
  .sort();
let failed = 0;
for (const file of flows) {
  const flow = await import(pathToFileURL(join(here, "flows", file)).href);
  const name = flow.name ?? file;
  if (args.only && !name.includes(args.only) && !file.includes(args.only)) continue;
  const started = Date.now();
  try {
    await flow.default(ctx);
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed += 1;
    console.log(`FAIL ${name} (${Date.now() - started} ms)\n${error?.stack ?? error}`);
  }
}
await browser.close();
writeFileSync(join(out, "metrics.json"), JSON.stringify(metrics, null, 2));
for (const m of metrics) console.log(`metric ${m.name} = ${m.value} ${m.unit}`);
console.log(failed ? `${failed} flow(s) failed` : `all ${flows.length} flow(s) passed`);
process.exit(failed ? 1 : 0);
