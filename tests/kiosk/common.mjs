// What the kiosk's browser scripts share (first_screen.mjs, person_flow.mjs,
// operator.mjs): their environment, their checks, the axe-core scan and
// the screenshots.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

// An environment variable the Rust test (`runner`) sets.
export function need(name, runner = "tests/kiosk.rs") {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run this through ${runner}`);
  return v;
}

export function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

// axe-core on the current page: WCAG 2.0/2.1/2.2 A and AA rules and best
// practice; any serious or critical violation fails. Returns axe's result.
export async function axe(page, screen) {
  // Through the DevTools protocol: the page's CSP (rightly) refuses an
  // inline <script>, which is what page.addScriptTag would add.
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(() =>
    window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] },
    }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) {
    console.error(`axe ${screen}: ${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`);
  }
  check(bad.length === 0, `axe-core found ${bad.length} serious or critical violation(s) on ${screen}`);
  return result;
}

// One PNG per screen into $KIOSK_SCREENSHOTS, when it is set.
export async function shot(page, name, { fullPage = true } = {}) {
  const dir = process.env.KIOSK_SCREENSHOTS;
  if (dir) await page.screenshot({ path: join(dir, `${name}.png`), fullPage });
}
