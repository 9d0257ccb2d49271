// The report pages as the community administrator: 三率 as charts drawn on the server (an
// image with an accessible name, and its data table), shop standing, the three lists, the
// overdue and escalation report; every page checked.
export const name = "reports";

export default async function (ctx) {
  const admin = { role: "community_admin", unit: "tonghui" };
  const page = await ctx.signIn(admin);

  // The demo's figures are April's.
  await page.goto(`${ctx.base}/reports?month=2026-04`);
  for (const rate of ["响应率 Response rate", "解决率 Resolution rate", "满意率 Satisfaction rate"]) {
    const chart = page.getByRole("img", { name: new RegExp(rate) });
    ctx.assert((await chart.count()) === 1, `one chart named ${rate}`);
    ctx.assert(await chart.isVisible(), `the ${rate} chart is visible`);
    const box = await chart.boundingBox();
    ctx.assert(box && box.width > 200 && box.height > 50, `the ${rate} chart has a size: ${JSON.stringify(box)}`);
  }
  const bars = await page.locator("svg#rate-response g.bar").count();
  const rows = await page.locator("svg#rate-response + .table-wrap tbody th[scope=row]").count();
  ctx.assert(bars > 0 && bars === rows, `a bar and a table row per unit: ${bars} bars, ${rows} rows`);
  await ctx.check(page, "reports-rates");

  // The month in the URL, through the form.
  await page.fill("#r-month", "2026-05");
  await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
  ctx.assert(page.url().includes("month=2026-05"), `the month is in the URL: ${page.url()}`);

  await page.goto(`${ctx.base}/reports/standing?month=2026-04&quarter=2026Q2`);
  const points = page.getByRole("img", { name: /商铺积分 Shops' points/ });
  ctx.assert((await points.count()) === 1 && (await points.isVisible()), "the points chart");
  await ctx.check(page, "reports-standing");

  await page.goto(`${ctx.base}/reports/lists`);
  ctx.assert((await page.locator("#list-projects").count()) === 1, "the projects list");
  await ctx.check(page, "reports-lists");

  await page.goto(`${ctx.base}/reports/overdue`);
  const items = await page.locator("#items-h ~ .table-wrap tbody tr").count();
  ctx.assert(items > 0, "the demo's escalated case is in the overdue report");
  await ctx.check(page, "reports-overdue");
}
