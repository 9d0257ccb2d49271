// The case board: open cases in scope, due first; filters in the URL; pages; the CSV of the
// same selection.
export const name = "board";

export default async function (ctx) {
  const admin = { role: "community_admin", unit: "tonghui" };
  // Open cases of our own at two grids (the demo has none open).
  const opened = [];
  for (const [unit, title] of [
    ["grid-1", "浏览器测试一 browser test one"],
    ["grid-2", "浏览器测试二 browser test two"],
    ["grid-1", "浏览器测试三 browser test three"],
  ]) {
    const answer = await ctx.api("POST", "/api/v1/cases", admin, {
      workflow: "service-request",
      unit_id: unit,
      title,
      fields: { category: "environment" },
    });
    ctx.assert(answer.status === 201, `opening a case: ${answer.status} ${JSON.stringify(answer.body)}`);
    opened.push(answer.body.id);
  }
  const page = await ctx.signIn(admin);
  const titles = await page.$$eval("tbody tr td:first-child", (cells) => cells.map((c) => c.textContent.trim()));
  for (const t of ["浏览器测试一", "浏览器测试二", "浏览器测试三"]) {
    ctx.assert(titles.some((x) => x.startsWith(t)), `the board lists ${t}: ${titles}`);
  }
  // Sorted by deadline: the due times in the page are in order.
  const due = await page.$$eval("tbody time", (times) => times.map((t) => t.getAttribute("datetime")));
  const sorted = [...due].sort((a, b) => Date.parse(a) - Date.parse(b));
  ctx.assert(JSON.stringify(due) === JSON.stringify(sorted), `due first: ${due}`);
  await ctx.check(page, "board");

  // A filter goes in the URL and narrows the rows.
  await page.selectOption("#f-unit", "grid-2");
  await Promise.all([page.waitForNavigation(), page.click("form.filters button[type=submit]")]);
  ctx.assert(page.url().includes("unit=grid-2"), `the filter is in the URL: ${page.url()}`);
  const narrowed = await page.$$eval("tbody tr td:first-child", (cells) => cells.map((c) => c.textContent.trim()));
  ctx.assert(narrowed.length === 1 && narrowed[0].startsWith("浏览器测试二"), `grid-2 only: ${narrowed}`);

  // The CSV is exactly the current selection.
  const csvHref = await page.getAttribute("a[href^='/board.csv']", "href");
  ctx.assert(csvHref.includes("unit=grid-2"), `the CSV link keeps the filters: ${csvHref}`);
  const csv = await page.evaluate(async (href) => (await fetch(href)).text(), csvHref);
  const lines = csv.replace(/^\uFEFF/, "").trim().split("\r\n");
  ctx.assert(lines[0].startsWith("id,title,workflow,stage,lead_unit,due_at"), `the CSV header: ${lines[0]}`);
  ctx.assert(lines.length === 2 && lines[1].includes(opened[1]), `the CSV holds the one selected case: ${lines}`);

  // A grid worker of grid 2 does not see grid 1's cases.
  const grid2 = await ctx.signIn({ role: "grid_worker", unit: "grid-2" });
  const theirs = await grid2.$$eval("tbody tr td:first-child", (cells) => cells.map((c) => c.textContent.trim()));
  ctx.assert(!theirs.some((t) => t.startsWith("浏览器测试一")), `grid-2 sees grid-1's case: ${theirs}`);
  await ctx.check(grid2, "board-grid-worker");
  // On a phone, the board is usable: the table scrolls inside its box, the page does not.
  const phone = await ctx.signIn(admin, { viewport: ctx.phone });
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ctx.assert(overflow <= 1, `the board overflows a phone's width by ${overflow}px`);
  await ctx.check(phone, "board-phone");
}
