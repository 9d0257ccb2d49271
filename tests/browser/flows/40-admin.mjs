// The administration pages as the community's administrator: every page visited and checked;
// an actor registered, granted a role, and given a token through the pages; a refusal shown
// beside its field; the new token signs in in another browser, and revoking it on its page
// sends that browser back to signing in at its next page load.
export const name = "admin";

const ADMIN = { role: "community_admin", unit: "tonghui" };

/** Submits the form `form` (a selector) on `page` and waits for the answer. */
async function submit(page, form) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.click(`${form} button[type=submit]`),
  ]);
  return response;
}

export default async function (ctx) {
  const admin = await ctx.signIn(ADMIN);
  // The hub, from the navigation; every area from the hub.
  await Promise.all([admin.waitForNavigation(), admin.click("header nav a[href='/admin']")]);
  ctx.assert(new URL(admin.url()).pathname === "/admin", `the navigation's administration: ${admin.url()}`);
  await ctx.check(admin, "admin-hub");
  const areas = await admin.$$eval("ul.admin-areas a", (links) => links.map((a) => a.getAttribute("href")));
  for (const area of ["units", "actors", "roles", "tokens", "workflows", "calendar"]) {
    ctx.assert(areas.includes(`/admin/${area}`), `the hub links ${area}: ${areas}`);
    const response = await admin.goto(`${ctx.base}/admin/${area}`);
    ctx.assert(response.status() === 200, `/admin/${area}: ${response.status()}`);
    await ctx.check(admin, `admin-${area}`);
  }
  // The units' tree on a phone.
  const phone = await ctx.signIn(ADMIN, { viewport: ctx.phone });
  await phone.goto(`${ctx.base}/admin/units`);
  await ctx.check(phone, "admin-units-phone");
  await phone.context().close();

  // A refusal beside its field: a unit id the core refuses.
  await admin.goto(`${ctx.base}/admin/units`);
  await admin.fill("#unit-add-id", "Not An Id");
  await admin.fill("#unit-add-name", "浏览器测试网格 browser grid");
  await admin.selectOption("#unit-add-tier", "grid");
  await admin.selectOption("#unit-add-parent", "tonghui");
  const refused = await submit(admin, "form[action='/admin/units']");
  ctx.assert(refused.status() === 422, `a bad unit id: ${refused.status()}`);
  const error = await admin.textContent("#unit-add-id-error");
  ctx.assert(/id/.test(error), `the error beside the id: ${error}`);
  ctx.assert(
    ((await admin.getAttribute("#unit-add-id", "aria-describedby")) ?? "").includes("unit-add-id-error"),
    "the error is tied to its field",
  );
  ctx.assert((await admin.inputValue("#unit-add-id")) === "Not An Id", "the value sent is kept");
  await ctx.check(admin, "admin-units-refused");

  // Register an actor, grant them a role, issue them a token.
  const actor = "feng.grid3";
  await admin.goto(`${ctx.base}/admin/actors`);
  await admin.fill("#actor-add-id", actor);
  await admin.fill("#actor-add-name", "冯网格员 (grid 3)");
  await admin.selectOption("#actor-add-kind", "person");
  let response = await submit(admin, "form[action='/admin/actors']");
  ctx.assert(response.ok() && new URL(admin.url()).pathname === "/admin/actors", `registering: ${admin.url()}`);
  ctx.assert(await admin.isVisible(`th code:text-is("${actor}")`), `${actor} is listed`);
  await admin.fill("#actor-grant-actor", actor);
  await admin.selectOption("#actor-grant-role", "grid_worker");
  await admin.selectOption("#actor-grant-unit-id", "grid-3");
  response = await submit(admin, "form[action='/admin/actors/grant']");
  ctx.assert(response.ok(), `granting: ${response.status()}`);
  const row = admin.locator("tr", { has: admin.locator(`th code:text-is("${actor}")`) });
  ctx.assert(/grid-3/.test(await row.textContent()), `the grant is listed: ${await row.textContent()}`);
  const actors = await ctx.api("GET", "/api/v1/actors", ADMIN);
  const registered = actors.body.actors.find((a) => a.id === actor);
  ctx.assert(
    registered?.roles.some((r) => r.role === "grid_worker" && r.unit_id === "grid-3"),
    `the API has the grant: ${JSON.stringify(registered)}`,
  );

  const tokenName = "冯网格员的平板 browser flow tablet";
  await admin.goto(`${ctx.base}/admin/tokens`);
  await admin.fill("#token-add-actor", actor);
  await admin.selectOption("#token-add-role", "grid_worker");
  await admin.selectOption("#token-add-unit-id", "grid-3");
  await admin.fill("#token-add-name", tokenName);
  response = await submit(admin, "form[action='/admin/tokens']");
  ctx.assert(response.status() === 201, `issuing: ${response.status()}`);
  const secret = await admin.inputValue("#token-secret");
  ctx.assert(/^cft_[0-9a-f]{64}$/.test(secret), `the secret on the page: ${secret}`);
  ctx.assert(/not shown again/.test(await admin.textContent("main")), "the page says it is shown once");
  ctx.assert(response.headers()["cache-control"] === "no-store", "no cache keeps the secret");
  await ctx.check(admin, "admin-token-issued");

  // The new token signs in, in another browser, through the sign-in form.
  const context = await ctx.browser.newContext({ viewport: ctx.desktop });
  const other = await context.newPage();
  await other.goto(`${ctx.base}/`);
  await other.fill("input[name=token]", secret);
  await Promise.all([other.waitForNavigation(), other.click("button[type=submit]")]);
  ctx.assert(new URL(other.url()).pathname === "/board", `the new token lands on the board: ${other.url()}`);
  ctx.assert(/feng\.grid3/.test(await other.textContent("header")), "signed in as the new actor");

  // The list names it, never its secret; revoking it on its page ends that session at once.
  await admin.goto(`${ctx.base}/admin/tokens`);
  ctx.assert(!(await admin.content()).includes(secret.slice(4)), "the secret is not on the list");
  const tokenRow = admin.locator("tr", { hasText: tokenName });
  await Promise.all([admin.waitForNavigation(), tokenRow.locator("button[type=submit]").click()]);
  ctx.assert(new URL(admin.url()).pathname === "/admin/tokens", `after revoking: ${admin.url()}`);
  ctx.assert(/revoked|已撤销/.test(await admin.locator("tr", { hasText: tokenName }).textContent()), "listed as revoked");
  const after = await other.goto(`${ctx.base}/board`);
  ctx.assert(after.status() === 401, `the revoked token's session: ${after.status()}`);
  ctx.assert(
    await other.isVisible("main a[href='/']"),
    "the revoked session's page leads to signing in",
  );
  await context.close();

  // A calendar year the calendar's parser refuses: 422, the field as in the file beside the
  // table, nothing published.
  await admin.goto(`${ctx.base}/admin/calendar`);
  await admin.fill("#year-add-year", "2031");
  await admin.fill("#year-add-table", 'source = "browser test"\noff = [["2032-01-01", "2032-01-02"]]\n');
  response = await submit(admin, "form[action='/admin/calendar']");
  ctx.assert(response.status() === 422, `a day outside its year: ${response.status()}`);
  ctx.assert(/off\[0\]/.test(await admin.textContent("#year-add-table-error")), "the field as in the file");
  await ctx.check(admin, "admin-calendar-refused");
  const calendar = await ctx.api("GET", "/api/v1/calendar", ADMIN);
  ctx.assert(!calendar.body.years.some((y) => y.year === 2031), "nothing published");
  await admin.context().close();
}
