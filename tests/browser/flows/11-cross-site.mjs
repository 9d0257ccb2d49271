// A forged cross-site form: a page on another origin (another port of this loopback host,
// which a browser counts as the same site, so the SameSite=Strict cookie still goes with the
// request) posts a form to the dashboard with the victim's session. The service refuses it
// (403, in words) and writes nothing.
import { createServer } from "node:http";

export const name = "cross-site";

export default async function (ctx) {
  const admin = { role: "community_admin", unit: "tonghui" };
  const attacker = createServer((request, response) => {
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    // The forged page: a form that signs the victim out, without its CSRF token.
    response.end(`<!doctype html><html lang="en"><title>prize</title><body>
      <form id="f" method="post" action="${ctx.base}/session/end"><input name="csrf" value="guess"><button>win</button></form>
      </body></html>`);
  });
  await new Promise((resolve) => attacker.listen(0, "127.0.0.1", resolve));
  const port = attacker.address().port;
  try {
    const page = await ctx.signIn(admin);
    await page.goto(`http://127.0.0.1:${port}/`);
    const [response] = await Promise.all([
      page.waitForNavigation(),
      page.click("#f button"),
    ]);
    ctx.assert(response.status() === 403, `the forged form answered ${response.status()}`);
    const text = await page.textContent("main");
    ctx.assert(/cross-site request refused/.test(text), `the refusal says why: ${text}`);
    // Still signed in: the forged sign-out did nothing.
    const board = await page.goto(`${ctx.base}/board`);
    ctx.assert(board.status() === 200, `after the forged form, the board: ${board.status()}`);
  } finally {
    attacker.close();
  }
}
