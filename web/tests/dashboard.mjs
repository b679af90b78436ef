// Drives the livefeed dashboard in headless Chromium (Debian's, through playwright-core) and
// prints one JSON line with what it saw:
// - the paths listed, the video's frames and the live latency figure (twice, to see it move);
// - the chart's points; the start/stop control (a test pattern started on CONTROL_PATH appears
//   in the list, is recorded — the recording then plays in a <video> — and stopping it removes
//   it from the list);
// - screenshots at desktop (1280×900) and phone (390×844) width, saved in OUT_DIR.
// Usage: node web/tests/dashboard.mjs BASE_URL OUT_DIR [CONTROL_PATH]
import { launchChromium, hardStop } from "./launch.mjs";

const [base, outDir, controlPath = "dashtest"] = process.argv.slice(2);
if (!base || !outDir) {
  console.error("usage: node dashboard.mjs BASE_URL OUT_DIR [CONTROL_PATH]");
  process.exit(2);
}
const stopTimer = hardStop("dashboard.mjs", 150);

const result = { steps: [], consoleErrors: [] };
const step = (name, data = {}) => result.steps.push({ name, ...data });

async function waitFor(page, fn, arg, timeout = 20_000) {
  return page.waitForFunction(fn, arg, { timeout, polling: 200 });
}

let browser;
try {
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (m) => { if (m.type() === "error") result.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => result.consoleErrors.push(String(e)));
  page.on("response", (r) => { if (r.status() >= 400) result.consoleErrors.push(`${r.status()} ${r.request().method()} ${r.url()}`); });
  await page.goto(`${base}/?mode=webrtc`, { waitUntil: "load" });

  // The demo path is listed and selected.
  await waitFor(page, () => document.querySelectorAll("#paths li[data-path]").length > 0);
  result.paths = await page.$$eval("#paths li[data-path]", (lis) => lis.map((li) => ({ name: li.dataset.path, text: li.innerText })));
  step("listed");

  // The video plays and the page's own latency figure updates.
  await waitFor(page, () => { const p = window.livefeedDashboard.players.webrtc; return p && p.stats.measured >= 30; });
  const figure = () => page.$eval("figure[data-kind=webrtc]", (f) => ({ text: f.querySelector(".latency").textContent, updates: Number(f.dataset.updates) }));
  const first = await figure();
  await page.waitForTimeout(2500);
  const second = await figure();
  result.video = await page.evaluate(() => {
    const s = window.livefeedDashboard.players.webrtc.stats;
    const v = document.querySelector("figure[data-kind=webrtc] video");
    return { frames: s.frames, measured: s.measured, p50: s.p50, reported: window.livefeedDashboard.players.webrtc.reporter.sent, width: v.videoWidth };
  });
  result.latencyFigures = [first, second];
  step("playing");

  // The stage breakdown lists the browser's own stage (reported by this page) and the server's.
  await waitFor(page, () => document.querySelector("#stages tr[data-client='browser-webrtc']") !== null
    && document.querySelector("#stages tr[data-client='receiver']") !== null);
  result.stages = await page.$$eval("#stages tbody tr[data-stage]", (rows) => rows.map((r) => ({ stage: r.dataset.stage, client: r.dataset.client, p50: Number(r.children[2].textContent) })));
  step("stages");

  // The chart has points read from the store.
  await waitFor(page, () => (window.livefeedDashboard.chartPoints || 0) > 0 && document.querySelector("#chart canvas") !== null);
  result.chartPoints = await page.evaluate(() => window.livefeedDashboard.chartPoints);
  result.clock = await page.evaluate(() => ({ ...window.livefeedClock, shown: document.getElementById("clock").textContent }));
  step("chart");

  // Screenshots: desktop, then phone width.
  await page.screenshot({ path: `${outDir}/dashboard-desktop.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(800);
  await page.screenshot({ path: `${outDir}/dashboard-phone.png`, fullPage: true });
  result.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.setViewportSize({ width: 1280, height: 900 });
  step("screenshots");

  // Start a test pattern on another path from the form; it appears; stop it; it goes.
  await page.fill("#start-form input[name=path]", controlPath);
  await page.selectOption("#start-form select[name=resolution]", "320x240");
  await page.click("#start-form button[type=submit]");
  await waitFor(page, (p) => window.livefeedDashboard.paths.some((x) => x.name === p && x.publisher && x.test_source), controlPath);
  result.started = await page.evaluate((p) => window.livefeedDashboard.paths.find((x) => x.name === p), controlPath);
  step("started");
  // Record it, see the recording state, stop recording.
  await page.click(`#paths li[data-path='${controlPath}'] button.start-recording`);
  await waitFor(page, (p) => window.livefeedDashboard.paths.some((x) => x.name === p && x.recording), controlPath);
  await page.click(`#paths li[data-path='${controlPath}'] button.stop-recording`);
  await waitFor(page, (p) => window.livefeedDashboard.paths.some((x) => x.name === p && !x.recording), controlPath);
  step("recorded");
  // The recording plays in the browser: a <video> loads the file the API lists.
  result.recordingPlayback = await page.evaluate(async (p) => {
    const list = await (await fetch("/api/v1/recordings")).json();
    const file = list.recordings.find((r) => r.path === p);
    if (!file) return { error: "no recording listed", list };
    const video = document.createElement("video");
    video.muted = true;
    video.src = file.url;
    return await new Promise((done) => {
      video.onloadeddata = () => done({ file: file.file, width: video.videoWidth, height: video.videoHeight, duration: video.duration });
      video.onerror = () => done({ error: `cannot play ${file.url}: ${video.error && video.error.message}` });
      setTimeout(() => done({ error: "timed out loading the recording" }), 10000);
    });
  }, controlPath);
  step("recording plays");
  await page.click(`#paths li[data-path='${controlPath}'] button.stop-source`);
  await waitFor(page, (p) => !window.livefeedDashboard.paths.some((x) => x.name === p && x.publisher), controlPath);
  step("stopped");
  result.controlStatus = await page.$eval("#control-status", (d) => d.textContent);
} catch (e) {
  result.error = String(e);
} finally {
  if (browser) await browser.close();
  clearTimeout(stopTimer);
}
console.log(JSON.stringify(result));
