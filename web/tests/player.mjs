// Opens a livefeed player page in headless Chromium (Debian's, driven by playwright-core) for
// a while and prints one JSON line with what the page measured (window.livefeedStats).
// Usage: node web/tests/player.mjs URL [SECONDS]
// CHROMIUM overrides the browser path (default /usr/bin/chromium).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, seconds = "8"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node player.mjs URL [SECONDS]");
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), "livefeed-chromium-"));
// Never outlive our caller: a hard stop well after the planned run.
const hardStop = setTimeout(() => { console.error("player.mjs: hard timeout"); process.exit(3); }, (Number(seconds) + 60) * 1000);

let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });
  await page.waitForTimeout(Number(seconds) * 1000);
  const stats = await page.evaluate(() => {
    const s = window.livefeedStats;
    const v = document.querySelector("video");
    return { ...s, latencies: undefined, allLatencies: s.latencies, currentTime: v.currentTime, paused: v.paused, videoWidth: v.videoWidth, videoHeight: v.videoHeight };
  });
  console.log(JSON.stringify({ ...stats, consoleErrors }));
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(hardStop);
}
