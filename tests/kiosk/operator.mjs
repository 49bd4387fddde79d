// The kiosk's operator view in Debian's chromium, driven by playwright-core
// (no test runner; tests/kiosk_operator.rs starts `keyward kiosk` with an
// operators file and a ledger holding today's enrollments, then runs this).
//
// Environment (set by tests/kiosk_operator.rs):
//   KIOSK_URL            the start URL keyward kiosk printed (launch token)
//   KIOSK_CHROMIUM       the chromium binary (/usr/bin/chromium)
//   KIOSK_OPERATOR       an operator's name in the station's operators file
//   KIOSK_PASSWORD_FILE  a file holding that operator's password
//   KIOSK_SERIAL         the serial of an active key to revoke
//   KIOSK_SUBJECT        whom that key is bound to
//   KIOSK_SCREENSHOTS    optional: a directory for one PNG per screen
// Exit 0 when every check holds; otherwise the failed check on stderr, exit 1.

import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import * as common from "./common.mjs";
import { check } from "./common.mjs";

const need = (name) => common.need(name, "tests/kiosk_operator.rs");

// axe-core on the screen, and how many rules passed.
async function axe(page, screen) {
  const result = await common.axe(page, screen);
  console.log(`axe ${screen}: ${result.passes.length} rules pass, ${result.violations.length} minor/moderate violations`);
}

const shot = (page, name) => common.shot(page, `operator-${name}`);

const focusedId = (page) => page.evaluate(() => document.activeElement && document.activeElement.id);

// Every button, link, input and summary on screen is at least 44 px high
// and wide (WCAG 2.2 2.5.8 asks 24; the kiosk's own rule is 44).
async function targets(page, screen) {
  const small = await page.evaluate(() => {
    const out = [];
    for (const e of document.querySelectorAll("button, a, input, summary, select, textarea")) {
      const r = e.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue; // not shown
      if (e.classList.contains("skip")) continue; // off screen until focused
      if (r.height < 44 || r.width < 44) out.push(`${e.tagName}#${e.id} ${r.width}x${r.height}`);
    }
    return out;
  });
  check(small.length === 0, `targets of at least 44 px on ${screen} (${small.join(", ")})`);
}

async function main() {
  const url = need("KIOSK_URL");
  const name = need("KIOSK_OPERATOR");
  const password = readFileSync(need("KIOSK_PASSWORD_FILE"), "utf8");
  const serial = need("KIOSK_SERIAL");
  const subject = need("KIOSK_SUBJECT");

  const browser = await chromium.launch({
    executablePath: need("KIOSK_CHROMIUM"),
    headless: true,
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // The wrong password's 403 is expected; any other error is not.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().includes("status of 403")) errors.push(m.text());
    });

    await page.goto(url);
    await page.waitForSelector("body[data-ready='true']");

    // The person's page links to the operator view; keyboard reaches it.
    const link = page.locator("a.operator-link");
    check(await link.textContent() === "Operator", "the person's page has an Operator link");
    await link.focus();
    await page.keyboard.press("Enter");
    await page.waitForURL("**/operator");
    await page.waitForSelector("body[data-ready='true']");
    await page.locator("#screen-sign-in").waitFor({ state: "visible" });
    check(await focusedId(page) === "op-name", "focus starts in the operator name box");
    await shot(page, "01-sign-in");
    await axe(page, "operator sign-in");
    await targets(page, "operator sign-in");

    // A wrong password: refused in words, nothing else shown.
    await page.keyboard.type(name);
    await page.keyboard.press("Tab");
    check(await focusedId(page) === "op-password", "Tab goes to the password box");
    await page.keyboard.type("not the password");
    await page.keyboard.press("Enter");
    await page.locator("#sign-in-error").filter({ hasText: "wrong operator name or password" }).waitFor();
    check(await page.locator("#screen-view").isHidden(), "a wrong password shows no operator view");
    await shot(page, "02-sign-in-refused");
    await axe(page, "operator sign-in refused");

    // The right password, typed, Enter.
    await page.locator("#op-password").fill("");
    await page.locator("#op-password").focus();
    await page.keyboard.type(password);
    await page.keyboard.press("Enter");
    await page.locator("#screen-view").waitFor({ state: "visible" });
    check((await page.locator("#op-who").textContent()).includes(name), "the operator's name is shown");
    const cookies = await context.cookies();
    check(cookies.length === 2 && cookies.every((c) => c.httpOnly && c.sameSite === "Strict"),
      "the session and operator cookies are HttpOnly, SameSite=Strict");

    // Today's figures: four charts, each with its table.
    await page.locator("#chart-completion svg rect.bar").first().waitFor();
    for (const id of ["chart-completion", "chart-time", "chart-resets", "chart-exceptions"]) {
      const label = await page.locator(`#${id} svg`).getAttribute("aria-label");
      check(label && label.length > 5, `${id} has a text alternative (${label})`);
      check(await page.locator(`#${id} table tbody tr`).count() >= 1, `${id} has a table`);
    }
    const completion = await page.locator("#chart-completion svg").getAttribute("aria-label");
    check(completion.endsWith("100%"), `today's completion rate (${completion})`);
    // The table opens by keyboard.
    await page.locator("#chart-completion summary").focus();
    await page.keyboard.press("Enter");
    check(await page.locator("#chart-completion table").isVisible(), "Enter opens the chart's table");
    await page.locator("#runs-slots table").first().waitFor();
    await shot(page, "03-figures");
    await axe(page, "operator figures");
    await targets(page, "operator figures");

    // Runs by slot: the bulk slots and the desk.
    const captions = await page.locator("#runs-slots caption").allTextContents();
    check(captions.some((c) => c.startsWith("Slot hub-1")) && captions.some((c) => c.startsWith("Slot hub-2")),
      `runs grouped by slot (${captions.join(" | ")})`);

    // Find by serial, Revoke…, the confirm step, a reason, revoke.
    await page.locator("#find-query").focus();
    await page.keyboard.type(serial);
    await page.keyboard.press("Enter");
    const revokeButton = page.locator("#find-results button");
    await revokeButton.waitFor();
    check(await page.locator("#find-results tbody tr").count() === 1, "one binding for the serial");
    await revokeButton.focus();
    await page.keyboard.press("Enter");
    await page.locator("#confirm").waitFor({ state: "visible" });
    check(await focusedId(page) === "confirm-title", "focus moves to the confirm step");
    check((await page.locator("#confirm-what").textContent()).includes(subject), "the confirm step names the person");
    // No reason chosen: asked for one, nothing revoked.
    await page.locator("#confirm-revoke").click();
    await page.locator("#confirm-error").filter({ hasText: "Choose why" }).waitFor();
    await page.locator("#reason-stolen").check();
    await shot(page, "04-revoke-confirm");
    await axe(page, "operator revoke confirm");
    await targets(page, "operator revoke confirm");
    await page.locator("#confirm-revoke").focus();
    await page.keyboard.press("Enter");
    await page.locator("#revoked").filter({ hasText: "Revoked" }).waitFor();
    const done = await page.locator("#revoked").textContent();
    check(done.includes(serial) && done.includes("Stolen"), `the revocation is confirmed (${done})`);
    check(await page.locator("#replace-next").isVisible(), "the replacement link is offered");
    await shot(page, "05-revoked");
    await axe(page, "operator revoked");

    // Found again: the binding is revoked, no button.
    await page.locator("#find-query").fill(serial);
    await page.locator("#find-submit").click();
    await page.locator("#find-results td", { hasText: "revoked" }).waitFor();
    check(await page.locator("#find-results button").count() === 0, "a revoked binding offers no Revoke");

    // Sign out: back to sign-in, and the API answers 403 from now on.
    await page.locator("#op-sign-out").click();
    await page.locator("#screen-sign-in").waitFor({ state: "visible" });
    const status = await page.evaluate(async () => (await fetch("/api/operator/figures")).status);
    check(status === 403, `after sign-out the operator API is 403 (${status})`);

    check(errors.length === 0, `no script errors on the page (${errors.join(" | ")})`);
    console.log("kiosk operator view: ok");
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
