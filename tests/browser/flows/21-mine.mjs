// My requests: a resident sees only the requests they filed, follows one to its page and
// rates it once it is replied; another resident sees none of it, in the list or by its URL.
import { settled } from "./20-case-loop.mjs";

export const name = "mine";

export default async function (ctx) {
  const residents = ctx.tokens.filter((t) => t.role === "resident");
  ctx.assert(residents.length >= 2, `two residents among the demo tokens: ${residents.length}`);
  const [a, b] = residents.map((t) => ({ token: t.token }));
  const admin = { role: "community_admin", unit: "tonghui" };
  const grid1 = { role: "grid_worker", unit: "grid-1" };

  // Each files a request (through the API: the form is the case-loop flow's).
  const file = async (who, title) => {
    const answer = await ctx.api("POST", "/api/v1/cases", who, {
      workflow: "service-request",
      unit_id: "tonghui",
      title,
      fields: { category: "neighbourhood" },
    });
    ctx.assert(answer.status === 201, `filing: ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body.id;
  };
  const titleA = "浏览器 我的诉求 甲 noise from the courtyard";
  const titleB = "浏览器 我的诉求 乙 a broken bench";
  const caseA = await file(a, titleA);
  const caseB = await file(b, titleB);
  // A's request is handled up to the reply.
  const act = async (who, body) => {
    const answer = await ctx.api("POST", `/api/v1/cases/${caseA}/actions`, who, body);
    ctx.assert(answer.status === 200, `${body.action}: ${answer.status} ${JSON.stringify(answer.body)}`);
  };
  await act(admin, { action: "dispatch", unit: "grid-1" });
  await act(grid1, { action: "sign_for" });
  await act(grid1, { action: "reply", outcome: "resolved", result: "已协调物业 the property manager was asked" });

  // A lands on their requests: theirs, waiting for their rating; not B's.
  const pageA = await ctx.signIn(a);
  ctx.assert(new URL(pageA.url()).pathname === "/mine", `a resident lands on /mine: ${pageA.url()}`);
  let list = await pageA.textContent("main");
  ctx.assert(list.includes(titleA), "A's request is listed");
  ctx.assert(!list.includes(titleB), "B's request is not on A's list");
  const may = await pageA.$$eval(".badge.waiting", (all) => all.map((b) => b.textContent));
  ctx.assert(may.some((m) => m.includes("评价")), `A may rate it: ${may}`);
  await ctx.check(pageA, "mine-resident");

  // A follows it to its page and rates it.
  await Promise.all([pageA.waitForNavigation(), pageA.click(`a[href='/cases/${caseA}']`)]);
  await settled(pageA);
  await pageA.selectOption("#act-rate-rating", "4");
  await pageA.fill("#act-rate-comment", "处理及时 handled quickly");
  const [rated] = await Promise.all([pageA.waitForNavigation(), pageA.click("#act-rate button[type=submit]")]);
  ctx.assert(rated.ok(), `rating: ${rated.status()}`);
  ctx.assert(new URL(pageA.url()).pathname === `/cases/${caseA}`, `back on the case: ${pageA.url()}`);
  const facts = await pageA.textContent("#case-live dl.facts");
  ctx.assert(/4\/5/.test(facts), `the rating shows: ${facts}`);
  const answer = await ctx.api("GET", `/api/v1/cases/${caseA}`, a);
  ctx.assert(answer.body.rating === 4 && answer.body.stage === "visited", `rated through the page: ${JSON.stringify(answer.body)}`);
  ctx.assert(!(await pageA.$("#act-rate")), "rated once: the form is gone");
  await pageA.goto(`${ctx.base}/mine`);
  list = await pageA.textContent("main");
  ctx.assert(list.includes("4/5"), "my requests shows the rating");

  // B sees only B's request, on a phone; A's case by its URL is not found.
  const pageB = await ctx.signIn(b, { viewport: ctx.phone });
  list = await pageB.textContent("main");
  ctx.assert(list.includes(titleB) && !list.includes(titleA), `B's list holds B's request only: ${list.slice(0, 1500)}`);
  await ctx.check(pageB, "mine-phone");
  const overflow = await pageB.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ctx.assert(overflow <= 1, `my requests overflows a phone's width by ${overflow}px`);
  for (const path of [`/cases/${caseA}`, `/cases/${caseA}/timeline`]) {
    const response = await pageB.goto(`${ctx.base}${path}`);
    ctx.assert(response.status() === 404, `B opens A's ${path}: ${response.status()}`);
    ctx.assert(!(await pageB.textContent("body")).includes(titleA), `B sees A's title at ${path}`);
  }
  // B's own case page: no action of the staff's, and nothing to rate yet.
  await pageB.goto(`${ctx.base}/cases/${caseB}`);
  await settled(pageB);
  ctx.assert(!(await pageB.$("#act-dispatch")), "a resident is not offered the staff's actions");
  ctx.assert(!(await pageB.$("#act-rate")), "nothing to rate before a reply");
  for (const page of [pageA, pageB]) await page.context().close();
}
