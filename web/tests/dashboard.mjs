// Drives the livefeed dashboard in headless Chromium (Debian's, through playwright-core) and
// prints one JSON line with what it saw:
// - the paths listed, the video's frames and the live latency figure (twice, to see it move);
// - the chart's points; the start/stop control (a test pattern started on CONTROL_PATH appears
//   in the list, is recorded — the recording then plays in a <video> — and stopping it removes
//   it from the list);
// - screenshots at desktop (1280×900) and phone (390×844) width, saved in OUT_DIR; at phone
//   width every header and cell of the stage breakdown is inside its box and the viewport
//   (nothing cut off, nothing hidden to scroll to) and the page does not scroll sideways;
// - the chart draws a hole in the data as a hole: two runs of samples posted to GAP_PATH a
//   minute apart are plotted with a null between them and no line across the gap, and the
//   page's chartData (short holes bridged, long ones broken) on made-up points.
// A failed check ends the script with `error` set (the steps list stops before it).
// Usage: node web/tests/dashboard.mjs BASE_URL OUT_DIR [CONTROL_PATH] [GAP_PATH]
import { launchChromium, hardStop } from "./launch.mjs";

const [base, outDir, controlPath = "dashtest", gapPath = "gaptest"] = process.argv.slice(2);
if (!base || !outDir) {
  console.error("usage: node dashboard.mjs BASE_URL OUT_DIR [CONTROL_PATH] [GAP_PATH]");
  process.exit(2);
}
const stopTimer = hardStop("dashboard.mjs", 150);

const result = { steps: [], consoleErrors: [] };
const step = (name, data = {}) => result.steps.push({ name, ...data });

async function waitFor(page, fn, arg, timeout = 20_000) {
  return page.waitForFunction(fn, arg, { timeout, polling: 200 });
}

function check(ok, what, data) {
  if (!ok) throw new Error(`${what}: ${JSON.stringify(data)}`);
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
  // The stage breakdown fits: every header and cell lies inside the table's box (which hides
  // nothing: its content is no wider than it) and inside the viewport.
  result.phoneStages = await page.evaluate(() => {
    const table = document.getElementById("stages");
    const box = table.parentElement;
    const b = box.getBoundingClientRect();
    const left = Math.max(0, b.left) - 0.5, right = Math.min(window.innerWidth, b.right) + 0.5;
    const cut = [...table.querySelectorAll("th, tbody td")]
      .map((c) => ({ text: c.textContent, r: c.getBoundingClientRect() }))
      .filter(({ r }) => r.left < left || r.right > right)
      .map(({ text, r }) => `${text} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
    return {
      headers: [...table.querySelectorAll("th")].map((c) => c.textContent),
      rows: table.querySelectorAll("tbody tr[data-stage]").length,
      box: [Math.round(b.left), Math.round(b.right)], viewport: window.innerWidth,
      boxScrollWidth: box.scrollWidth, boxClientWidth: box.clientWidth,
      docScrollWidth: document.documentElement.scrollWidth, cut,
    };
  });
  const ps = result.phoneStages;
  check(ps.headers.length === 6 && ps.rows >= 5, "phone: the stage breakdown has its columns and rows", ps);
  check(ps.docScrollWidth <= ps.viewport, "phone: the page does not scroll sideways", ps);
  check(ps.cut.length === 0, "phone: every header and cell of the stage breakdown is visible", ps);
  check(ps.boxScrollWidth <= ps.boxClientWidth, "phone: the stage breakdown needs no sideways scrolling", ps);
  await page.setViewportSize({ width: 1280, height: 900 });
  step("screenshots");

  // Gaps. The page's own function first: a hole of at most 5 buckets in one series is bridged
  // (undefined: uPlot joins across), a longer one is broken (null); where no series has any
  // point for longer, an empty bucket is inserted between the runs, null in every series.
  result.chartDataCases = await page.evaluate(() => {
    const f = window.livefeedDashboard.chartData;
    const pts = (client, secs, p50) => secs.map((s) => ({ stage: "capture_to_ingest", client, bucket_ms: s * 1000, p50 }));
    const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
    const runs = f(pts("a", [...range(0, 4), ...range(60, 64)], 10), 1000);
    const mixed = f([...pts("a", range(0, 20), 10), ...pts("b", [...range(0, 2), ...range(5, 7), ...range(16, 20)], 20)], 1000);
    const b = mixed.data[2];
    return {
      runsXs: runs.data[0],
      runsNullAt: runs.data[1].flatMap((v, i) => (v === null ? [runs.data[0][i]] : [])),
      mixedXs: mixed.data[0].length,
      mixedKeys: mixed.keys,
      aAllNumbers: mixed.data[1].every((v) => typeof v === "number"),
      bBridged: b[3] === undefined && b[4] === undefined,
      bBroken: b.slice(8, 16).every((v) => v === null),
      bValues: b.filter((v) => typeof v === "number").length,
    };
  });
  const cd = result.chartDataCases;
  check(JSON.stringify(cd.runsXs) === JSON.stringify([0, 1, 2, 3, 4, 5, 60, 61, 62, 63, 64]) && JSON.stringify(cd.runsNullAt) === "[5]",
    "chartData: an empty bucket, null, is inserted between two runs", cd);
  check(cd.mixedXs === 21 && cd.aAllNumbers && cd.bBridged && cd.bBroken && cd.bValues === 11,
    "chartData: short holes bridged, long ones broken", cd);
  // Then the real thing: two runs of samples, a minute each and a minute apart, posted to the
  // store for GAP_PATH (a path of their own: the demo's data cannot fall into the gap), charted
  // by a second dashboard page showing that path.
  const runs = await page.evaluate(async (path) => {
    const now = Math.floor(Livefeed.serverNowMs() / 1000) * 1000;
    const run = (from, to, latency) => Array.from({ length: (to - from) / 1000 }, (_, i) => ({
      path, stage: "capture_to_displayed", client: "browser-gaptest", unix_ms: from + i * 1000 + 500, latency_ms: latency + (i % 5),
    }));
    const a = [now - 270_000, now - 210_000], b = [now - 150_000, now - 90_000];
    const resp = await fetch("/api/v1/metrics", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ samples: [...run(...a, 40), ...run(...b, 160)] }),
    });
    return { a, b, status: resp.status, body: await resp.json() };
  }, gapPath);
  check(runs.status === 200 && runs.body.accepted === 120, "gap: the store took the two runs", runs);
  const gapPage = await context.newPage();
  gapPage.on("pageerror", (e) => result.consoleErrors.push(`${gapPath} page: ${e}`));
  await gapPage.goto(`${base}/?path=${gapPath}&mode=none`, { waitUntil: "load" });
  // Wait until the chart shows the series and has drawn it, then look at its data and pixels:
  // bright pixels (the series' stroke; grid lines are dark) in the middle of the first run and
  // across the gap (5 s kept clear of either end: the line's caps and point markers).
  result.chartGap = await (await waitFor(gapPage, ({ a, b }) => {
    const u = window.livefeedDashboard.chart;
    if (!u || u.series.length !== 2 || !u.data[1] || u.data[1].filter((v) => v != null).length < 120) return null;
    const xs = u.data[0], ys = u.data[1];
    const lastA = xs.findLastIndex((x) => x * 1000 < a[1]);
    const firstB = xs.findIndex((x) => x * 1000 >= b[0]);
    const ctx = u.ctx;
    const brightColumns = (fromMs, toMs) => {
      const x0 = Math.ceil(u.valToPos(fromMs / 1000, "x", true)), x1 = Math.floor(u.valToPos(toMs / 1000, "x", true));
      if (x1 <= x0) return { x0, x1, bright: -1 };
      const img = ctx.getImageData(x0, u.bbox.top, x1 - x0, u.bbox.height).data;
      let bright = 0;
      for (let i = 0; i < img.length; i += 4) if (img[i + 3] > 40 && Math.max(img[i], img[i + 1], img[i + 2]) > 100) bright++;
      return { x0, x1, bright };
    };
    const inRun = brightColumns(a[0] + 20_000, a[1] - 20_000);
    if (inRun.bright <= 0) return null; // not drawn yet
    return {
      label: u.series[1].label,
      runsContinuous: xs.every((x, i) => !((x * 1000 >= a[0] && x * 1000 < a[1]) || (x * 1000 >= b[0] && x * 1000 < b[1])) || ys[i] != null),
      between: ys.slice(lastA + 1, firstB).map((v) => (v === undefined ? "undefined" : v)),
      inRun, inGap: brightColumns(a[1] + 5_000, b[0] - 5_000),
    };
  }, runs)).jsonValue();
  await gapPage.close();
  const cg = result.chartGap;
  check(cg.runsContinuous && cg.inRun.bright > 0, "gap: each run is drawn as a line", cg);
  check(cg.between.length > 0 && cg.between.every((v) => v === null), "gap: null between the runs in the plotted data", cg);
  check(cg.inGap.x1 - cg.inGap.x0 > 50 && cg.inGap.bright === 0, "gap: nothing is drawn across the gap", cg);
  step("chart gaps");

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
