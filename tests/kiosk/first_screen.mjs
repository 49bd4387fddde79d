// The kiosk's first screen in Debian's chromium, driven by playwright-core
// (no test runner; tests/kiosk.rs starts `keyward kiosk` and runs this).
//
// Environment (set by tests/kiosk.rs):
//   KIOSK_URL                the start URL keyward kiosk printed (launch token)
//   KIOSK_CHROMIUM           the chromium binary (/usr/bin/chromium)
//   KIOSK_TICKET_FILE        a ticket this station accepts
//   KIOSK_OTHER_TICKET_FILE  a ticket for another station (refused)
//   KIOSK_SUBJECT            whom the good ticket is for
//   KIOSK_SCREENSHOTS        optional: a directory for one PNG per screen
// Exit 0 when every check holds; otherwise the failed check on stderr, exit 1.

import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import { axe as scan, check, need, shot } from "./common.mjs";

// axe-core on the screen, and how many rules passed.
async function axe(page, screen) {
  const result = await scan(page, screen);
  console.log(`axe ${screen}: ${result.passes.length} rules pass, ${result.violations.length} minor/moderate violations`);
}

async function main() {
  const url = need("KIOSK_URL");
  const good = readFileSync(need("KIOSK_TICKET_FILE"), "utf8");
  const other = readFileSync(need("KIOSK_OTHER_TICKET_FILE"), "utf8");
  const subject = need("KIOSK_SUBJECT");
  const origin = new URL(url).origin;

  const browser = await chromium.launch({
    executablePath: need("KIOSK_CHROMIUM"),
    headless: true,
    // As root (the CI container) chromium's sandbox cannot start.
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1024, height: 768 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // The refused ticket's 422 is expected; any other error is not.
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().includes("status of 422")) errors.push(m.text());
    });

    // The start URL trades the token for the cookie and leaves the URL.
    await page.goto(url);
    await page.waitForSelector("body[data-ready='true']");
    check(page.url() === `${origin}/`, `the launch token left the address bar (at ${page.url()})`);
    const cookies = await context.cookies();
    check(cookies.length === 1 && cookies[0].httpOnly && cookies[0].sameSite === "Strict",
      `one HttpOnly SameSite=Strict cookie (${JSON.stringify(cookies.map((c) => [c.name, c.httpOnly, c.sameSite]))})`);
    check(await page.evaluate(() => document.cookie) === "", "the page's script cannot read the session cookie");

    // The first screen, its text from the catalogue, focus in the ticket box.
    const h1 = await page.locator("h1:visible").textContent();
    check(h1 === "Scan or paste your ticket", `first screen heading (${h1})`);
    check(await page.evaluate(() => document.activeElement.id) === "ticket-text",
      "the ticket box has focus (a keyboard-wedge scanner types into it)");
    await shot(page, "01-ticket");
    await axe(page, "ticket screen");

    // A ticket for another station: the station's refusal, in words.
    await page.locator("#ticket-text").fill(other);
    await page.keyboard.press("Enter");
    const err = page.locator("#ticket-error");
    await err.filter({ hasText: "ticket-audience" }).waitFor();
    check(await page.locator("#screen-ticket").isVisible(), "a refused ticket stays on the ticket screen");
    await shot(page, "02-ticket-refused");
    await axe(page, "refused ticket");

    // The good ticket, typed as a scanner would (then Enter): whom it is for.
    await page.locator("#ticket-text").fill("");
    await page.locator("#ticket-text").fill(good.trim());
    await page.keyboard.press("Enter");
    await page.locator("#screen-subject").waitFor({ state: "visible" });
    const who = await page.locator("#subject-name").textContent();
    check(who === subject, `the subject shown (${who}) is the ticket's (${subject})`);
    const pin = await page.locator("#subject-pin").textContent();
    check(pin === "6 to 8 digits", `the profile's PIN rules are shown (${pin})`);
    check(await page.evaluate(() => document.activeElement.id) === "subject-title",
      "focus moves to the new screen's heading");
    await shot(page, "03-subject");
    await axe(page, "subject screen");

    // Keyboard alone: Tab reaches "Not me", Enter goes back.
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement.id) === "subject-back", "Tab reaches the back button");
    await page.keyboard.press("Enter");
    await page.locator("#screen-ticket").waitFor({ state: "visible" });

    check(errors.length === 0, `no script errors on the page (${errors.join(" | ")})`);
    console.log("kiosk first screen: ok");
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
