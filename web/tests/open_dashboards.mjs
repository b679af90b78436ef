// Keeps PAGES dashboards open in headless Chromium (Debian's, through playwright-core; one
// window each, not throttled) for SECONDS and prints one JSON line: per page, the state events
// it received, whether its video measured frames, and console errors. For bench/dashboard_cpu.sh.
// Usage: node web/tests/open_dashboards.mjs URL SECONDS PAGES
import { launchChromium, hardStop } from "./launch.mjs";

const [url, seconds = "30", pages = "10"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node open_dashboards.mjs URL SECONDS PAGES");
  process.exit(2);
}
const stopTimer = hardStop("open_dashboards.mjs", Number(seconds) + 120);
let browser;
try {
  browser = await launchChromium();
  const tabs = [];
  for (let i = 0; i < Number(pages); i++) {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: "load" });
    tabs.push({ page, errors });
  }
  // Tell the caller when every page is open (the measurement window starts then).
  console.error(`open: ${tabs.length} pages`);
  await tabs[0].page.waitForTimeout(Number(seconds) * 1000);
  const out = [];
  for (const { page, errors } of tabs) {
    out.push(await page.evaluate(() => {
      const d = window.livefeedDashboard;
      const players = Object.fromEntries(Object.entries(d.players).map(([k, p]) => [k, { frames: p.stats.frames, p50: p.stats.p50 }]));
      return { events: d.events, chartPoints: d.chartPoints || 0, players };
    }).then((r) => ({ ...r, errors })));
  }
  console.log(JSON.stringify({ pages: out }));
} finally {
  if (browser) await browser.close();
  clearTimeout(stopTimer);
}
