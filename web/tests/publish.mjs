// Publishes Chromium's fake camera and microphone from livefeed's publish page (WHIP) for a
// while, then prints one JSON line with what the page reports (window.livefeedPublish: state,
// frames drawn, bytes sent, codec, errors) and the page's console errors. A line
// `publish.mjs: STATE` comes first, once the page publishes (or failed).
// Usage: node web/tests/publish.mjs URL [SECONDS]
// URL is a publish page (http://HOST:PORT/PATH/publish); `?autostart=1` is added.
import { launchChromium, hardStop } from "./launch.mjs";

const [url, seconds = "20"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node publish.mjs URL [SECONDS]");
  process.exit(2);
}
const stopTimer = hardStop("publish.mjs", Number(seconds) + 60);

let browser;
try {
  browser = await launchChromium(["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]);
  const context = await browser.newContext({ permissions: ["camera", "microphone"] });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(`${url}${url.includes("?") ? "&" : "?"}autostart=1`, { waitUntil: "load" });
  // Say (one line) when publishing starts (the caller may wait for it), then keep publishing.
  await page.waitForFunction(() => ["publishing", "failed"].includes(window.livefeedPublish.state), null, { timeout: 30000 })
    .catch(() => {});
  const state = await page.evaluate(() => window.livefeedPublish.state);
  console.log(`publish.mjs: ${state}`);
  await page.waitForTimeout(Number(seconds) * 1000);
  const published = await page.evaluate(() => ({ ...window.livefeedPublish }));
  console.log(JSON.stringify({ ...published, consoleErrors }));
} finally {
  if (browser) await browser.close();
  clearTimeout(stopTimer);
}
