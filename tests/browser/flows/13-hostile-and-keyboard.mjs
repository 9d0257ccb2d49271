// What a hostile title does on the board (nothing: it is text), what a spreadsheet would run
// from the CSV (nothing: a formula is defused), the headers a browser gets, and the sign-in
// done with the keyboard alone.
export const name = "hostile-and-keyboard";

export default async function (ctx) {
  const admin = { role: "community_admin", unit: "tonghui" };
  const title = `<script>alert("x")</script>, "quoted"`;
  const formula = `=HYPERLINK("http://evil.test","x")`;
  for (const t of [title, formula]) {
    const answer = await ctx.api("POST", "/api/v1/cases", admin, {
      workflow: "service-request",
      unit_id: "grid-3",
      title: t,
      fields: { category: "other" },
    });
    ctx.assert(answer.status === 201, `opening ${t}: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  const page = await ctx.signIn(admin);
  let dialogs = 0;
  page.on("dialog", async (dialog) => {
    dialogs += 1;
    await dialog.dismiss();
  });
  await page.goto(`${ctx.base}/board?unit=grid-3`);
  const titles = await page.$$eval("tbody tr td:first-child a", (links) => links.map((a) => a.textContent));
  ctx.assert(titles.includes(title), `the hostile title shows as text: ${titles}`);
  ctx.assert(dialogs === 0, "no script ran");
  const csv = await page.evaluate(async () => (await fetch("/board.csv?unit=grid-3")).text());
  ctx.assert(csv.includes(`"'=HYPERLINK(""http://evil.test"",""x"")"`), `the formula is defused: ${csv}`);
  ctx.assert(csv.includes(`"<script>alert(""x"")</script>, ""quoted"""`), `the title is whole in the CSV: ${csv}`);

  // The headers, as the browser got them.
  const response = await page.goto(`${ctx.base}/board`);
  const headers = response.headers();
  ctx.assert(headers["content-security-policy"].includes("script-src 'self'"), `CSP: ${headers["content-security-policy"]}`);
  ctx.assert(headers["x-frame-options"] === "DENY", "never framed");
  ctx.assert(headers["referrer-policy"] === "same-origin", "no referrer to other sites");
  ctx.assert(await page.evaluate(() => document.cookie) === "", "the session cookie is out of scripts' reach");

  // The overdue filter: only rows marked overdue or escalated.
  await page.goto(`${ctx.base}/board?overdue=true`);
  const rows = await page.$$eval("tbody tr", (trs) => trs.map((tr) => tr.textContent));
  ctx.assert(
    rows.every((r) => /逾期|已升级|No open case/.test(r)),
    `the overdue filter shows only overdue or escalated rows: ${rows}`,
  );

  // Signing in with the keyboard alone: the skip link first, then the field, Enter.
  const context = await ctx.browser.newContext();
  const keyboard = await context.newPage();
  await keyboard.goto(`${ctx.base}/`);
  await keyboard.keyboard.press("Tab");
  ctx.assert(
    await keyboard.evaluate(() => document.activeElement.classList.contains("skip")),
    "the first Tab reaches the skip link",
  );
  const skip = await keyboard.evaluate(() => {
    const box = document.activeElement.getBoundingClientRect();
    return box.left >= 0 && box.width > 0;
  });
  ctx.assert(skip, "the focused skip link is on screen");
  let reached = false;
  for (let i = 0; i < 5 && !reached; i++) {
    await keyboard.keyboard.press("Tab");
    reached = await keyboard.evaluate(() => document.activeElement.id === "token");
  }
  ctx.assert(reached, "Tab reaches the token field");
  const outline = await keyboard.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  ctx.assert(outline !== "none", `the focused field shows its focus: ${outline}`);
  await keyboard.keyboard.type(ctx.token(admin));
  await Promise.all([keyboard.waitForNavigation(), keyboard.keyboard.press("Enter")]);
  ctx.assert(new URL(keyboard.url()).pathname === "/board", `Enter signs in: ${keyboard.url()}`);
  await context.close();
}
