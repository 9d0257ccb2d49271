// A case around its whole loop through the pages' forms: a resident files it through the
// new-request form; the community dispatches it, the grid worker signs for it and replies
// (after a refusal shown beside its field), the grid worker's return visit rates it, the
// community closes it. The resident's page, open on the same case all along, shows each step
// live without a reload: the time from a form's submit to the step on the other page is the
// metric `live_update_ms`.
export const name = "case-loop";

/** The resident's demo token (the first resident: 唐阿姨). */
function resident(ctx) {
  const found = ctx.tokens.find((t) => t.role === "resident");
  if (!found) throw new Error("no resident among the demo tokens");
  return { token: found.token };
}

/** The timeline's steps on `page`: each step's heading text. */
async function steps(page) {
  return page.$$eval("#case-live ol.timeline li .step strong", (all) => all.map((s) => s.textContent.trim()));
}

/**
 * Waits until the live stream of `page` is connected and the page is quiet: the stream
 * replays the case's history when it connects, and each event swaps the live section in
 * again (the forms with it), so a form is filled only once that has settled.
 */
export async function settled(page) {
  await page.waitForSelector("#live-status[data-state=open]", { timeout: 10000 });
  await page.evaluate(
    () =>
      new Promise((resolve) => {
        let last = document.getElementById("case-live");
        let quiet = 0;
        const timer = setInterval(() => {
          const now = document.getElementById("case-live");
          if (now === last) {
            quiet += 100;
            if (quiet >= 800) {
              clearInterval(timer);
              resolve();
            }
          } else {
            last = now;
            quiet = 0;
          }
        }, 100);
      }),
  );
}

/**
 * Submits the form `formSelector` on `actor` (a navigation: 303 back to the case) and waits
 * until `watcher`, another page on the same case, shows a new step named `step` without a
 * reload; returns the milliseconds between the submit and the step on the other page.
 */
async function actAndWatch(ctx, actor, formSelector, watcher, step) {
  const before = (await steps(watcher)).length;
  const watcherUrl = watcher.url();
  const started = Date.now();
  const [response] = await Promise.all([
    actor.waitForNavigation(),
    actor.click(`${formSelector} button[type=submit]`),
  ]);
  ctx.assert(response && response.ok(), `${formSelector}: the form answered ${response?.status()}: ${(await actor.content()).slice(0, 3000)}`);
  await watcher.waitForFunction(
    ({ before, step }) => {
      const all = [...document.querySelectorAll("#case-live ol.timeline li .step strong")].map((s) => s.textContent);
      return all.length > before && all.some((text) => text.includes(step));
    },
    { before, step },
    { timeout: 10000 },
  );
  const ms = Date.now() - started;
  ctx.assert(watcher.url() === watcherUrl, `the other page was reloaded: ${watcher.url()}`);
  ctx.metric("live_update_ms", ms, "ms");
  return ms;
}

export default async function (ctx) {
  const admin = { role: "community_admin", unit: "tonghui" };
  const grid1 = { role: "grid_worker", unit: "grid-1" };
  const me = resident(ctx);

  // The resident files the request through the new-request form.
  const home = await ctx.signIn(me);
  await home.goto(`${ctx.base}/cases/new`);
  await ctx.check(home, "new-case-pick");
  await Promise.all([home.waitForNavigation(), home.click("a[href='/cases/new?workflow=service-request']")]);
  const title = "浏览器闭环 楼道灯坏了 the stairwell light is out";
  await home.fill("#nc-title", title);
  await home.fill("#nc-description", "三楼楼道灯坏了一周。The third-floor light has been out for a week.");
  await home.selectOption("#nc-unit-id", "tonghui");
  await home.selectOption("#nc-category", "public_facilities");
  await home.fill("#nc-location", "3 单元三楼");
  await home.fill("#nc-place-address", "新马路 18 号");
  await home.fill("#nc-requester-name", "唐秀英");
  await home.fill("#nc-requester-phone", "13912345678");
  ctx.assert(
    (await home.getAttribute("#nc-category", "required")) !== null,
    "the required category is marked required",
  );
  await ctx.check(home, "new-case");
  await Promise.all([home.waitForNavigation(), home.click("#new-case button[type=submit]")]);
  const match = new URL(home.url()).pathname.match(/^\/cases\/([0-9a-f-]{36})$/);
  ctx.assert(match, `filing lands on the new case's page: ${home.url()}`);
  const id = match[1];
  const casePath = `/cases/${id}`;
  const text = await home.textContent("main");
  ctx.assert(text.includes(title), "the case page shows the title");
  ctx.assert(!text.includes("13912345678") && !text.includes("唐秀英"), "the requester is masked on the page");
  ctx.assert(/139\*+5678/.test(text), `the masked phone is shown: ${text.slice(0, 2000)}`);
  ctx.assert(text.includes("哈希链已校验"), "the chain is verified on the page");
  // The resident's page follows the case live from here on.
  const watcher = home;
  await settled(watcher);

  // The community dispatches it to grid 1.
  const office = await ctx.signIn(admin);
  await office.goto(`${ctx.base}${casePath}`);
  await settled(office);
  await ctx.check(office, "case");
  await office.selectOption("#act-dispatch-unit", "grid-1");
  await office.fill("#act-dispatch-note", "请网格员上门查看 please have a look");
  await actAndWatch(ctx, office, "#act-dispatch", watcher, "派单");

  // The grid worker signs for it.
  const grid = await ctx.signIn(grid1);
  await grid.goto(`${ctx.base}${casePath}`);
  await settled(grid);
  await actAndWatch(ctx, grid, "#act-sign-for", watcher, "签收");

  // A reply without its text is refused, the message beside the field (the browser's own
  // check of `required` is switched off to send it).
  await settled(grid);
  await grid.selectOption("#act-reply-outcome", "resolved");
  const [refused] = await Promise.all([
    grid.waitForNavigation(),
    grid.$eval("#act-reply", (form) => {
      form.noValidate = true;
      form.requestSubmit();
    }),
  ]);
  ctx.assert(refused.status() === 422, `a reply without its text: ${refused.status()}`);
  const error = await grid.textContent("#act-reply-result-error");
  ctx.assert(/result/.test(error), `the refusal names the field: ${error}`);
  ctx.assert(
    (await grid.getAttribute("#act-reply-result", "aria-describedby")) === "act-reply-result-error",
    "the refusal is tied to its field",
  );
  ctx.assert(
    (await grid.inputValue("#act-reply-outcome")) === "resolved",
    "the choice made is kept",
  );
  const caseNow = await ctx.api("GET", `/api/v1/cases/${id}`, grid1);
  ctx.assert(caseNow.body.stage === "in_progress", `a refusal moves nothing: ${caseNow.body.stage}`);
  await grid.goto(`${ctx.base}${casePath}`);
  await settled(grid);
  await grid.selectOption("#act-reply-outcome", "resolved");
  await grid.fill("#act-reply-result", "已更换灯泡 the bulb was replaced");
  await actAndWatch(ctx, grid, "#act-reply", watcher, "答复");

  // The return visit, with the requester's rating.
  await settled(grid);
  await grid.selectOption("#act-return-visit-rating", "5");
  await grid.fill("#act-return-visit-comment", "唐阿姨很满意 very satisfied");
  await actAndWatch(ctx, grid, "#act-return-visit", watcher, "回访");

  // The community closes it.
  await office.goto(`${ctx.base}${casePath}`);
  await settled(office);
  await actAndWatch(ctx, office, "#act-close", watcher, "办结");

  const closed = await ctx.api("GET", `/api/v1/cases/${id}`, admin);
  ctx.assert(closed.body.stage === "closed" && closed.body.rating === 5, `the case closed with 5: ${JSON.stringify(closed.body)}`);
  // The resident's page shows it closed, still without a reload.
  const facts = await watcher.textContent("#case-live dl.facts");
  ctx.assert(/办结/.test(facts) && /5\/5/.test(facts), `the resident's page shows it closed and rated: ${facts}`);
  const timeline = await steps(watcher);
  for (const step of ["受理", "派单", "签收", "答复", "回访", "办结"]) {
    ctx.assert(timeline.some((s) => s.includes(step)), `the timeline shows ${step}: ${timeline}`);
  }
  await ctx.check(watcher, "case-closed");

  // My requests: the resident's request, closed and rated.
  await home.goto(`${ctx.base}/mine`);
  const mine = await home.textContent("main");
  ctx.assert(mine.includes(title) && mine.includes("5/5"), `my requests shows it rated: ${mine.slice(0, 1500)}`);
  await ctx.check(home, "mine");

  // On a phone: the case page fits the width.
  const phone = await ctx.signIn(grid1, { viewport: ctx.phone });
  await phone.goto(`${ctx.base}${casePath}`);
  await settled(phone);
  const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ctx.assert(overflow <= 1, `the case page overflows a phone's width by ${overflow}px`);
  await ctx.check(phone, "case-phone");
  for (const page of [home, office, grid, phone]) await page.context().close();
}
