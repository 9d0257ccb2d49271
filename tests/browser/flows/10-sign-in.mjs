// Signing in as each kind of actor: each lands on its page and sees only its scope; a bad
// token is refused beside the field; signing out ends the session for good, a copy of the
// cookie included; revoking the token ends its sessions.
export const name = "sign-in";

export default async function (ctx) {
  // The sign-in page itself, on a phone.
  const context = await ctx.browser.newContext({ viewport: ctx.phone });
  const anonymous = await context.newPage();
  await anonymous.goto(`${ctx.base}/`);
  await ctx.check(anonymous, "sign-in-phone");
  await anonymous.fill("input[name=token]", "cft_" + "0".repeat(64));
  await anonymous.click("button[type=submit]");
  const error = await anonymous.textContent("#token-error");
  ctx.assert(/unknown or revoked/.test(error), `a bad token's error beside the field: ${error}`);
  ctx.assert(
    (await anonymous.getAttribute("#token", "aria-describedby")) === "token-error",
    "the error is tied to its field",
  );
  await ctx.check(anonymous, "sign-in-refused");
  // A page without a session is 401 with a way to sign in.
  const response = await anonymous.goto(`${ctx.base}/board`);
  ctx.assert(response.status() === 401, `the board without a session: ${response.status()}`);
  await context.close();

  // Each kind of actor lands where it should, and the board holds only its scope.
  const kinds = [
    { who: { role: "community_admin", unit: "tonghui" }, lands: "/board" },
    { who: { role: "grid_worker", unit: "grid-1" }, lands: "/board" },
    { who: { role: "enterprise_liaison" }, lands: "/board" },
    { who: { role: "shop_owner" }, lands: "/board" },
    { who: { role: "resident" }, lands: "/mine" },
  ];
  for (const { who, lands } of kinds) {
    const page = await ctx.signIn(who);
    ctx.assert(new URL(page.url()).pathname === lands, `${who.role} lands on ${page.url()}, not ${lands}`);
    const cookie = (await page.context().cookies()).find((c) => c.name === "cf_session");
    ctx.assert(cookie && cookie.httpOnly && cookie.sameSite === "Strict", `the session cookie: ${JSON.stringify(cookie)}`);
    if (lands === "/board") {
      // Every unit offered by the board's unit filter is within the caller's subtree, as the
      // API lists it for the same token.
      const offered = await page.$$eval("#f-unit option", (o) => o.map((x) => x.value).filter(Boolean));
      const own = ctx.tokens.find((t) => t.role === who.role && (!who.unit || t.unit_id === who.unit)).unit_id;
      ctx.assert(offered.includes(own), `${who.role}: its own unit ${own} is offered: ${offered}`);
      const units = await ctx.api("GET", "/api/v1/units", who);
      const all = units.body.units.map((u) => u.id);
      ctx.assert(offered.every((u) => all.includes(u)), `${who.role}: unknown units offered`);
      if (who.role !== "community_admin") {
        ctx.assert(!offered.includes("tonghui"), `${who.role} is offered the community: ${offered}`);
      }
    }
  }

  // Signing out ends the session: the browser's and any copy of its cookie.
  const admin = await ctx.signIn({ role: "community_admin", unit: "tonghui" });
  await ctx.check(admin, "board-admin");
  const copied = (await admin.context().cookies()).find((c) => c.name === "cf_session");
  await Promise.all([admin.waitForNavigation(), admin.click("form[action='/session/end'] button")]);
  ctx.assert(new URL(admin.url()).pathname === "/", `after signing out: ${admin.url()}`);
  const replay = await fetch(`${ctx.base}/board`, { headers: { cookie: `cf_session=${copied.value}` } });
  ctx.assert(replay.status === 401, `a copy of a signed-out cookie: ${replay.status}`);

  // Revoking the token ends its sessions at the next request.
  const issued = await ctx.api("POST", "/api/v1/tokens", { role: "community_admin", unit: "tonghui" }, {
    actor: "li.grid1",
    role: "grid_worker",
    unit_id: "grid-1",
    name: "browser test tablet",
  });
  ctx.assert(issued.status === 201, `issuing a token: ${issued.status} ${JSON.stringify(issued.body)}`);
  const tablet = await ctx.signIn({ token: issued.body.token });
  ctx.assert(new URL(tablet.url()).pathname === "/board", `the new token signs in: ${tablet.url()}`);
  const revoked = await ctx.api("POST", `/api/v1/tokens/${issued.body.id}/revoke`, { role: "community_admin", unit: "tonghui" }, { reason: "lost" });
  ctx.assert(revoked.status === 200, `revoking: ${revoked.status} ${JSON.stringify(revoked.body)}`);
  const after = await tablet.goto(`${ctx.base}/board`);
  ctx.assert(after.status() === 401, `a revoked token's session: ${after.status()}`);
}
