// The person's flow in Debian's chromium, driven by playwright-core against
// `keyward kiosk` with a simulated key in a vpcd reader of pcscd (no test
// runner; tests/kiosk.rs starts the kiosk and the key and runs this).
//
// Environment (set by tests/kiosk.rs):
//   KIOSK_URL         the start URL keyward kiosk printed (launch token)
//   KIOSK_CHROMIUM    the chromium binary (/usr/bin/chromium)
//   KIOSK_SCENARIO    success | bad-pin | removed | touch-timeout | replace
//   KIOSK_TICKET_FILE the ticket to scan
//   KIOSK_SUBJECT     whom it is for
//   KIOSK_DEVICE      the simulated key's device id (pcsc:<reader>)
//   KIOSK_SERIAL      its serial
//   KIOSK_PIN         a PIN that keeps the profile's rules
//   KIOSK_SCREENSHOTS optional: a directory for one PNG per screen
// Talks to the Rust test on stdout/stdin: it prints "@need-key" (then the
// test attaches the key) and "@touch-shown" (the removal scenario pulls the
// key), and waits for a line "go" after each. At the end it prints
// "@binding <id>" after a success. Exit 0 when every check holds.

import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import * as common from "./common.mjs";
import { axe, check, need } from "./common.mjs";
const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// Tell the Rust test something happened and wait until it has acted.
async function signal(what) {
  console.log(`@${what}`);
  const line = await stdin.next();
  check(!line.done && line.value.trim() === "go", `the test answered "go" after @${what}`);
}

// The viewport only: the person's screens are one screen high.
const shot = (page, name) => common.shot(page, name, { fullPage: false });

// A screen is shown, its heading has focus, axe-core passes, a screenshot.
async function screen(page, id, name, timeout = 30000) {
  await page.locator(`#screen-${id}`).waitFor({ state: "visible", timeout });
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  const inside = await page.evaluate((s) => document.getElementById(`screen-${s}`).contains(document.activeElement), id);
  check(inside, `focus moved into the ${id} screen (at #${focused})`);
  if (name) await shot(page, name);
  await axe(page, id);
}

async function failedWith(page, codes, name) {
  await screen(page, "failed", name, 90000);
  const code = await page.locator("#failed-code").textContent();
  const detail = await page.locator("#failed-detail").textContent();
  check(codes.some((c) => code.includes(c)), `the failure names ${codes.join(" or ")} (${code}: ${detail})`);
  const what = await page.locator("#failed-what").textContent();
  check(what.length > 20 && !what.startsWith("reason."), `a plain-words sentence from the catalogue (${what})`);
  return code;
}

async function main() {
  const scenario = need("KIOSK_SCENARIO");
  const ticket = readFileSync(need("KIOSK_TICKET_FILE"), "utf8").trim();
  const subject = need("KIOSK_SUBJECT");
  const device = need("KIOSK_DEVICE");
  const serial = need("KIOSK_SERIAL");
  const pin = need("KIOSK_PIN");
  const prefix = scenario === "success" ? "" : `${scenario}-`;

  const browser = await chromium.launch({
    executablePath: need("KIOSK_CHROMIUM"),
    headless: true,
    args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    // Every request the page makes, to check where the PIN went.
    const posts = [];
    page.on("request", (r) => { if (r.method() === "POST") posts.push([r.url(), r.postData() || ""]); });

    await page.goto(need("KIOSK_URL"));
    await page.waitForSelector("body[data-ready='true']");
    // A keyboard-wedge scanner: fast typing into the focused box, then Enter.
    await page.keyboard.type(ticket, { delay: 0 });
    await page.keyboard.press("Enter");
    await screen(page, "subject", scenario === "replace" ? "replace-03-subject" : null);
    check(await page.locator("#subject-name").textContent() === subject, "whom the ticket is for");
    const replacing = await page.locator("#subject-replacing").isVisible();
    check(replacing === (scenario === "replace"), `the confirm screen says which key is replaced (${replacing})`);

    // Keyboard alone: Tab past "Not me" to "continue".
    await page.keyboard.press("Tab");
    await page.keyboard.press("Tab");
    check(await page.evaluate(() => document.activeElement.id) === "subject-next", "Tab reaches continue");
    await page.keyboard.press("Enter");

    // Other keys may be in this machine's readers (other tests): a key
    // that is not ours is put aside with "Use another key", which lists
    // the keys instead of taking the only one.
    const keyScreen = page.locator("#screen-key");
    const insertScreen = page.locator("#screen-insert");
    const mine = page.locator(`button[data-device="${device}"]`);
    const foreign = async () => (await keyScreen.isVisible())
      && (await page.locator("#key-serial").textContent()) !== serial;
    if (scenario === "success") {
      // The key is not here yet: the page waits for it.
      await page.waitForFunction(() => !document.getElementById("screen-insert").hidden
        || !document.getElementById("screen-key").hidden);
      if (await foreign()) await page.locator("#key-back").click();
      await screen(page, "insert", "04-insert");
      await signal("need-key");
    }
    for (let i = 0; i < 600; i++) {
      if (await foreign()) {
        await page.locator("#key-back").click();
      } else if (await keyScreen.isVisible()) {
        break;
      } else if (await mine.isVisible()) {
        await shot(page, "04-insert-choose");
        await mine.focus();
        await page.keyboard.press("Enter");
        break;
      }
      await page.waitForTimeout(100);
    }
    check(!(await insertScreen.isVisible()) || (await keyScreen.isVisible()), "a key was picked");
    await screen(page, "key", scenario === "success" ? "05-key" : null);
    const shownSerial = await page.locator("#key-serial").textContent();
    check(shownSerial === serial, `the key's serial is shown (${shownSerial})`);
    await page.locator("#key-next").click();
    await screen(page, "pin", null);
    check(await page.evaluate(() => document.activeElement.id) === "pin-new", "focus in the PIN box");

    if (scenario === "bad-pin") {
      // Refused as typed: a run, then letters; nothing is sent.
      await page.keyboard.type("123456");
      check(await page.locator("#rule-trivial").getAttribute("data-ok") === "false", "a run breaks the trivial rule");
      await page.locator("#pin-again").fill("123456");
      await page.keyboard.press("Enter");
      await page.locator("#pin-error").filter({ hasText: "cannot be used" }).waitFor();
      await shot(page, "06-pin-refused");
      await axe(page, "pin refused");
      await page.locator("#pin-new").fill("12ab56");
      check(await page.locator("#rule-digits").getAttribute("data-ok") === "false", "letters break digits-only");
      check(await page.locator("#screen-pin").isVisible(), "still on the PIN screen");
      check(!posts.some(([u]) => u.endsWith("/api/enroll")), "no enrollment was started");
      // Forced past the page: the server refuses the PIN itself.
      const forced = await page.evaluate(async ([t, d]) => {
        const r = await fetch("/api/enroll", {
          method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ ticket: t, device: d, pin: "111111" }),
        });
        const start = await r.json();
        if (!r.ok) return { status: r.status, start };
        let after = 0;
        for (;;) {
          const e = await (await fetch(`/api/events?job=${start.job}&after=${after}`)).json();
          for (const ev of e.events) {
            after = ev.seq;
            if (ev.event === "failed" || ev.event === "finished") return { status: r.status, end: ev };
          }
        }
      }, [ticket, device]);
      check(forced.status === 202 && forced.end && forced.end.event === "failed" && forced.end.reason === "policy-pin",
        `the server refuses the forced PIN (${JSON.stringify(forced)})`);
      check(!JSON.stringify(forced).includes("111111"), "the refusal does not echo the PIN");
      console.log("kiosk bad-pin: ok");
      return;
    }

    await page.keyboard.type(pin);
    await page.locator("#pin-again").focus();
    await page.keyboard.type(pin);
    check(await page.locator("#rule-same").getAttribute("data-ok") === "true", "the rules are met as typed");
    if (scenario === "success") {
      await shot(page, "06-pin");
      await axe(page, "pin");
    }
    await page.keyboard.press("Enter");
    // The progress screen shows at once; the key's touch prompt may
    // replace it within a second, so the picture comes first.
    await page.locator("#screen-work").waitFor({ state: "visible" });
    if (scenario === "success") await shot(page, "07-work");
    await axe(page, "work");

    if (scenario === "removed") {
      await screen(page, "touch", null, 60000);
      await signal("touch-shown");
      const code = await failedWith(page, ["device-removed"], "10-removed");
      console.log(`kiosk removed: ${code}`);
      return;
    }
    if (scenario === "touch-timeout") {
      await screen(page, "touch", "08-touch", 60000);
      const left = await page.locator("#touch-countdown").textContent();
      check(/\d+ seconds left/.test(left), `a countdown is shown (${left})`);
      await failedWith(page, ["touch-timeout"], "11-touch-timeout");
      console.log("kiosk touch-timeout: ok");
      return;
    }

    await screen(page, "done", scenario === "replace" ? "replace-09-done" : "09-done", 120000);
    check(await page.locator("#done-subject").textContent() === subject, "success names the subject");
    check(await page.locator("#done-serial").textContent() === serial, "success names the key's serial");
    check((await page.locator("#done-verdict").textContent()).includes("genuine"), "the attestation verdict");
    const binding = await page.locator("#done-binding").textContent();
    check(binding.length > 8, `the binding id is shown (${binding})`);
    if (scenario === "replace") {
      const replaced = await page.locator("#done-replaced").textContent();
      console.log(`@replaced ${replaced}`);
    }
    // The PIN went to /api/enroll only, once.
    const withPin = posts.filter(([, b]) => b.includes(pin));
    check(withPin.length === 1 && withPin[0][0].endsWith("/api/enroll"), `the PIN is posted once, to /api/enroll`);
    check(!(await page.content()).includes(pin), "the PIN is nowhere in the page");
    check(errors.length === 0, `no script errors (${errors.join(" | ")})`);
    console.log(`@binding ${binding}`);
  } finally {
    await browser.close();
    stdin.return && stdin.return();
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(String(e && e.stack ? e.stack : e));
  process.exit(1);
});
