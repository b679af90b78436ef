// Opens livefeed player pages in headless Chromium (Debian's, driven by playwright-core; a fresh
// temporary profile per run, which Playwright's launch creates and removes) for a while and
// prints one JSON line with what each page measured (window.livefeedStats: per player, "hls"
// and/or "webrtc").
// Usage: node web/tests/player.mjs URL [SECONDS] [PAGES]
// PAGES opens that many viewers of URL at once (one window each). CHROMIUM overrides the browser
// path (default /usr/bin/chromium).
import { launchChromium, hardStop } from "./launch.mjs";

const [url, seconds = "8", pages = "1"] = process.argv.slice(2);
if (!url) {
  console.error("usage: node player.mjs URL [SECONDS] [PAGES]");
  process.exit(2);
}
// Never outlive our caller: a hard stop well after the planned run.
const stopTimer = hardStop("player.mjs", Number(seconds) + 90);

let browser;
try {
  browser = await launchChromium();
  const tabs = [];
  for (let i = 0; i < Number(pages); i++) {
    // A context per viewer: its own window, so no viewer is a throttled background tab.
    const page = await (await browser.newContext()).newPage();
    const consoleErrors = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    await page.goto(url, { waitUntil: "load" });
    tabs.push({ page, consoleErrors });
  }
  await tabs[0].page.waitForTimeout(Number(seconds) * 1000);
  const results = [];
  for (const { page, consoleErrors } of tabs) {
    const players = await page.evaluate(() => {
      const out = {};
      for (const [kind, s] of Object.entries(window.livefeedStats)) {
        const v = document.querySelector(`#${kind} video`);
        out[kind] = { ...s, latencies: undefined, allLatencies: s.latencies, videoWidth: v.videoWidth, videoHeight: v.videoHeight, audioDecodedBytes: v.webkitAudioDecodedByteCount ?? null, muted: v.muted };
      }
      return out;
    });
    // Whether this browser can receive H.265 over WebRTC at all (Chromium offers it only where
    // a platform decoder exists): tests of an H.265 stream expect video or a 406 accordingly.
    const receivesH265 = await page.evaluate(() =>
      RTCRtpReceiver.getCapabilities("video").codecs.some((c) => c.mimeType.toLowerCase() === "video/h265"));
    results.push({ ...players, consoleErrors, receivesH265 });
  }
  console.log(JSON.stringify(Number(pages) === 1 ? results[0] : { pages: results }));
} finally {
  if (browser) await browser.close();
  clearTimeout(stopTimer);
}
