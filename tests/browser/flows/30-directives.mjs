// Directives through the pages: a community administrator issues one through the form (a
// refused span first, shown beside its field), a grid worker acknowledges and reports their
// part through the directive's page, and the roll-up tree shows it; every page checked, once
// at a phone's width.
export const name = "directives";

export default async function (ctx) {
  const admin = { role: "community_admin", unit: "tonghui" };
  const worker = { role: "grid_worker", unit: "grid-1" };
  const title = "浏览器测试：消防检查 browser test: fire check";

  const page = await ctx.signIn(admin);
  await page.goto(`${ctx.base}/directives`);
  ctx.assert(
    (await page.locator("h1").textContent()).includes("督办指令"),
    `the directives page: ${await page.locator("h1").textContent()}`,
  );
  await ctx.check(page, "directives");

  // The form: a span the service cannot take is refused beside its field, the rest kept.
  await Promise.all([page.waitForNavigation(), page.click("a[href='/directives/new']")]);
  await ctx.check(page, "directive-new");
  await page.fill("#d-title", title);
  await page.selectOption("#d-kind", "staff_training");
  await page.fill("#d-within", "forever");
  await page.fill("#d-body", "检查每一处灭火器 check every extinguisher");
  await Promise.all([page.waitForNavigation(), page.click("form[action='/directives'] button[type=submit]")]);
  ctx.assert(await page.locator("#d-within-error").isVisible(), "the refusal is beside the span");
  ctx.assert(
    (await page.getAttribute("#d-within", "aria-invalid")) === "true" &&
      (await page.getAttribute("#d-within", "aria-describedby")).includes("d-within-error"),
    "the span's field names its error",
  );
  ctx.assert((await page.inputValue("#d-title")) === title, "the title is kept");
  await ctx.check(page, "directive-new-refused");

  // Now with a span it takes: the directive's page, every unit below the community pending.
  await page.fill("#d-within", "3 working days");
  await Promise.all([page.waitForNavigation(), page.click("form[action='/directives'] button[type=submit]")]);
  const match = page.url().match(/\/directives\/([0-9a-f-]{36})$/);
  ctx.assert(match, `issued: landed on ${page.url()}`);
  const id = match[1];
  ctx.assert((await page.locator("h1").textContent()).includes("消防检查"), "the directive's title");
  ctx.assert(
    (await page.locator("li[data-unit='grid-1'] > span.badge.pending").count()) === 1,
    "grid 1 has not acknowledged yet",
  );
  await ctx.check(page, "directive-tree-issued");

  // The grid worker acknowledges, then reports, grid 1's part through the page.
  const grid = await ctx.signIn(worker);
  await grid.goto(`${ctx.base}/directives/${id}`);
  await ctx.check(grid, "directive-grid-worker");
  await grid.fill("#ack-note", "收到，明天检查 received");
  await Promise.all([grid.waitForNavigation(), grid.click("form[action$='/acknowledge'] button[type=submit]")]);
  ctx.assert(grid.url().endsWith(`/directives/${id}`), `back on the directive: ${grid.url()}`);
  ctx.assert(
    (await grid.locator("li[data-unit='grid-1'] > span.badge.acknowledged").count()) === 1,
    "grid 1 acknowledged",
  );
  ctx.assert((await grid.locator("#ack-note").count()) === 0, "no second acknowledgement form");
  await grid.fill("#report-note", "已检查 12 处灭火器 12 extinguishers checked");
  await Promise.all([grid.waitForNavigation(), grid.click("form[action$='/report'] button[type=submit]")]);
  ctx.assert(
    (await grid.locator("li[data-unit='grid-1'] > span.badge.ok").count()) === 1,
    "grid 1 reported",
  );
  ctx.assert((await grid.locator("form[action$='/report']").count()) === 0, "no report form once reported");
  await ctx.check(grid, "directive-grid-worker-reported");

  // The API says so too, and the administrator's tree shows it.
  const answer = await ctx.api("GET", `/api/v1/directives/${id}`, admin);
  ctx.assert(answer.status === 200, `the API: ${answer.status}`);
  const part = answer.body.parts.find((p) => p.unit_id === "grid-1");
  ctx.assert(part.acknowledged && part.reported, `grid 1's part: ${JSON.stringify(part)}`);
  ctx.assert(part.report.includes("12 extinguishers"), `the report: ${part.report}`);
  await page.reload();
  ctx.assert(
    (await page.locator("li[data-unit='grid-1'] > span.badge.ok").count()) === 1,
    "the administrator's tree shows grid 1 reported",
  );
  ctx.assert(
    (await page.locator("li[data-unit='grid-2'] > span.badge.pending").count()) === 1,
    "grid 2 still pending",
  );
  ctx.assert(
    (await page.locator("li[data-unit='grid-1'] li[data-unit='yiwu-heart']").count()) === 1,
    "Yiwu Heart sits under grid 1 in the tree",
  );

  // On a phone: the tree and the list fit the width.
  const phone = await ctx.signIn(admin, { viewport: ctx.phone });
  await phone.goto(`${ctx.base}/directives/${id}`);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ctx.assert(overflow <= 1, `the directive overflows a phone's width by ${overflow}px`);
  await ctx.check(phone, "directive-phone");
}
