// livefeed dashboard: every path with its publisher and readers (live, from the server's
// Server-Sent Events at /api/v1/events), the selected path's video over WebRTC and/or LL-HLS
// with the latency this page measures, the stage breakdown reported by every client, a
// latency-over-time chart read from the metrics store (uPlot), and the controls (start/stop
// the built-in test pattern, disconnect a reader).
//
// window.livefeedDashboard exposes what the page shows, for the browser tests.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { paths: [], latency: [], selected: null, mode: "webrtc", players: {}, chart: null, chartKey: "", events: 0, chartData };
window.livefeedDashboard = state;

const STAGE_ORDER = ["capture_to_encoded", "capture_to_ingest", "server_ingest_to_egress", "capture_to_received", "capture_to_decoded", "capture_to_displayed", "audio_capture_to_received", "av_offset"];
const fmt = (v, digits = 1) => (v == null ? "–" : Number(v).toFixed(digits));

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v != null) e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function uptime(s) {
  if (s == null) return "–";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : m ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

async function control(method, url, body) {
  const status = $("control-status");
  try {
    const resp = await fetch(url, { method, headers: body ? { "Content-Type": "application/json" } : {}, body: body ? JSON.stringify(body) : undefined });
    if (!resp.ok) {
      const text = await resp.text();
      let reason = text;
      try { reason = JSON.parse(text).error; } catch (_) { /* plain text */ }
      status.textContent = `${method} ${url}: ${resp.status} ${reason}`;
      status.className = "error";
      return false;
    }
    status.textContent = `${method} ${url}: ${resp.status}`;
    status.className = "muted";
    return true;
  } catch (e) {
    status.textContent = `${method} ${url}: ${e}`;
    status.className = "error";
    return false;
  }
}

// ---- paths list -------------------------------------------------------------------------

function renderPaths() {
  const list = $("paths");
  list.replaceChildren();
  if (!state.paths.length) list.append(el("li", { class: "muted" }, "no path is being published"));
  for (const p of state.paths) {
    const pub = p.publisher;
    const counts = p.reader_counts || {};
    const li = el("li", { class: p.name === state.selected ? "selected" : "", "data-path": p.name, onclick: () => select(p.name) });
    li.append(el("strong", {}, p.name), " ");
    if (p.test_source) {
      li.append(el("button", { class: "small stop-source", onclick: (e) => { e.stopPropagation(); control("DELETE", `/api/v1/sources/${p.name}`); } }, "stop test pattern"), " ");
    }
    if (p.publisher) {
      li.append(p.recording
        ? el("button", { class: "small stop-recording", title: "stop recording this path", onclick: (e) => { e.stopPropagation(); control("DELETE", `/api/v1/recordings/${p.name}`); } }, "● REC · stop")
        : el("button", { class: "small start-recording", title: "record this path to fragmented MP4 files", onclick: (e) => { e.stopPropagation(); control("POST", `/api/v1/recordings/${p.name}`); } }, "record"));
    }
    li.append(el("div", { class: "muted" }, pub
      ? `${pub.protocol} from ${pub.remote} · ${p.width || "?"}×${p.height || "?"} · ${fmt(pub.fps, 0)} fps · ${fmt(pub.bitrate_bps / 1000, 0)} kbit/s · up ${uptime(pub.uptime_s)}`
      : "no publisher"));
    if (p.pull_source) li.append(pullSourceLine(p.pull_source));
    li.append(el("div", { class: "muted" }, `readers: RTSP ${counts.rtsp || 0} · WebRTC ${counts.webrtc || 0} · LL-HLS ${counts.hls || 0} (${p.hls_requests_per_second || 0} requests/s) · dropped frames ${p.dropped_frames}${p.skipped_after_loss ? ` · skipped after loss ${p.skipped_after_loss}` : ""}${p.keyframe_requests ? ` · keyframes requested ${p.keyframe_requests}` : ""}`));
    // Every track and the outputs that carry it.
    if ((p.tracks || []).length) {
      const tracks = p.tracks.map((t) => `${t.codec}${t.media === "audio" ? ` ${fmt(t.clock_rate / 1000, 1)} kHz` : ""} → ${t.outputs.join(", ")}`);
      li.append(el("div", { class: "muted tracks" }, `tracks: ${tracks.join(" · ")}`));
    }
    const readers = el("ul", { class: "readers" });
    for (const r of p.readers) {
      const item = el("li", {}, `${r.protocol} ${r.remote} `);
      if (r.drops) item.append(`(${r.drops} dropped) `);
      if (r.id != null) item.append(el("button", { class: "small", title: "disconnect this reader", onclick: (e) => { e.stopPropagation(); control("DELETE", `/api/v1/readers/${r.id}`); } }, "disconnect"));
      readers.append(item);
    }
    if (p.readers.length) li.append(readers);
    list.append(li);
  }
}

// A pulled path: where from, its state, why it failed, and where capture times come from.
function pullSourceLine(s) {
  const parts = [`source ${s.url}`, s.on_demand ? `${s.state} (on demand)` : s.state];
  if (s.transport) parts.push(s.transport.toUpperCase());
  if (s.clock) {
    parts.push(s.clock_offset_ms != null && s.clock === "sender reports"
      ? `clock: ${s.clock}, offset ${fmt(s.clock_offset_ms, 1)} ms`
      : `clock: ${s.clock}`);
  }
  const line = el("div", { class: "muted pull-source" }, parts.join(" · "));
  if (s.error) line.append(el("div", { class: "source-error" }, `error: ${s.error}`));
  return line;
}

// ---- the selected path --------------------------------------------------------------------

function select(name) {
  if (state.selected === name) return;
  state.selected = name;
  history.replaceState(null, "", `?path=${encodeURIComponent(name)}&mode=${state.mode}`);
  $("detail-title").textContent = name;
  renderPaths();
  startVideo();
  state.chartKey = "";
  refreshChart();
}

function stopVideo() {
  for (const p of Object.values(state.players)) p.stop();
  state.players = {};
  $("videos").replaceChildren();
}

function startVideo() {
  stopVideo();
  document.querySelectorAll("#modes button").forEach((b) => b.classList.toggle("on", b.dataset.mode === state.mode));
  if (!state.selected || state.mode === "none") return;
  const kinds = state.mode === "both" ? ["webrtc", "hls"] : [state.mode];
  for (const kind of kinds) {
    const video = el("video", { muted: "", autoplay: "", playsinline: "" });
    video.muted = true;
    const caption = el("figcaption", {});
    const status = el("div", { class: "muted" }, "starting…");
    const label = kind === "hls" ? "LL-HLS" : "WebRTC";
    const figure = el("figure", { "data-kind": kind }, video, caption, status);
    $("videos").append(figure);
    const player = Livefeed.startPlayer(kind, video, state.selected, {
      onStatus: (text) => { status.textContent = text; },
      onSecond: (s) => {
        figure.dataset.updates = Number(figure.dataset.updates || 0) + 1;
        caption.replaceChildren(`${label} glass-to-glass `, el("b", { class: "latency" }, s.p50 == null ? "–" : String(Math.round(s.p50))), ` ms (p95 ${s.p95 == null ? "–" : Math.round(s.p95)}) · ${s.fps} fps`);
      },
    });
    state.players[kind] = player;
  }
}

function renderDetail() {
  const p = state.paths.find((x) => x.name === state.selected);
  $("path-figures").textContent = p
    ? `frames in ${p.frames_in} · ${fmt(p.bytes_in / 1e6, 1)} MB in · dropped frames (all readers) ${p.dropped_frames}${p.codec ? ` · ${p.codec}` : ""}`
    : state.selected ? "this path has no publisher now" : "";
  const rows = state.latency
    .filter((l) => l.path === state.selected)
    .sort((a, b) => STAGE_ORDER.indexOf(a.stage) - STAGE_ORDER.indexOf(b.stage) || a.client.localeCompare(b.client));
  const body = $("stages").querySelector("tbody");
  body.replaceChildren(...rows.map((l) => el("tr", { "data-stage": l.stage, "data-client": l.client },
    el("td", {}, l.stage.replaceAll("_", " ")), el("td", {}, l.client),
    el("td", {}, fmt(l.p50)), el("td", {}, fmt(l.p95)), el("td", {}, fmt(l.max)), el("td", {}, String(l.count)))));
  if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "no client has reported in the last 5 s")));
}

// ---- chart ------------------------------------------------------------------------------

// A hole in a series longer than this many buckets is drawn as a hole (a stopped publisher, a
// closed page, a demo run and the next): the line is broken there, not drawn straight across.
// Shorter ones (a bucket a client's once-a-second report missed) are bridged.
const GAP_BUCKETS = 5;

// The store's points ([{bucket_ms, stage, client, p50}], one per bucket with data, `step_ms`
// apart) as uPlot's aligned data: `data[0]` the buckets in seconds, then one array per series
// (`keys`, "stage · client", in stage order). Where a series has no point, its value is
// `undefined` (uPlot joins its neighbours) inside a hole of at most GAP_BUCKETS buckets and
// `null` (uPlot, spanGaps false, breaks the line) in a longer one; and where no series has a
// point for longer than that, an empty bucket is added after the last point before the hole,
// so that every series has a `null` between the two runs. Pure: exposed for the tests.
function chartData(points, stepMs) {
  const series = new Map();
  const buckets = new Set();
  for (const pt of points) {
    const key = `${pt.stage} · ${pt.client}`;
    if (!series.has(key)) series.set(key, new Map());
    series.get(key).set(pt.bucket_ms, pt.p50);
    buckets.add(pt.bucket_ms);
  }
  const maxHole = GAP_BUCKETS * stepMs;
  const sorted = [...buckets].sort((a, b) => a - b);
  const xs = [];
  for (const [i, x] of sorted.entries()) {
    if (i > 0 && x - sorted[i - 1] > maxHole) xs.push(sorted[i - 1] + stepMs);
    xs.push(x);
  }
  const keys = [...series.keys()].sort((a, b) => STAGE_ORDER.indexOf(a.split(" · ")[0]) - STAGE_ORDER.indexOf(b.split(" · ")[0]) || a.localeCompare(b));
  const ys = keys.map((k) => {
    const values = series.get(k);
    const out = xs.map((x) => values.get(x) ?? null);
    // Bridge the short holes: between two points of this series at most maxHole apart.
    let last = -1;
    for (let i = 0; i < xs.length; i++) {
      if (out[i] === null) continue;
      if (last >= 0 && i - last > 1 && xs[i] - xs[last] <= maxHole) out.fill(undefined, last + 1, i);
      last = i;
    }
    return out;
  });
  return { keys, data: [xs.map((x) => x / 1000), ...ys] };
}

async function refreshChart() {
  if (!state.selected) return;
  const [span, step] = $("range").value.split(":").map(Number);
  const until = Math.round(Livefeed.serverNowMs());
  const since = until - span;
  const url = `/api/v1/metrics?path=${encodeURIComponent(state.selected)}&since=${since}&until=${until}&step=${step}`;
  let points;
  try {
    const resp = await fetch(url);
    if (!resp.ok) throw new Error(`${resp.status} ${await resp.text()}`);
    points = (await resp.json()).points;
  } catch (e) {
    $("chart-status").textContent = `cannot read the store: ${e}`;
    return;
  }
  const { keys, data } = chartData(points, step);
  state.chartPoints = points.length;
  $("chart-status").textContent = `${points.length} points · ${keys.length} series`;
  const chartKey = `${state.selected}|${keys.join(",")}`;
  const width = Math.max(280, $("chart").clientWidth);
  if (!state.chart || state.chartKey !== chartKey) {
    if (state.chart) state.chart.destroy();
    $("chart").replaceChildren();
    const palette = ["#7fdbff", "#ffdc00", "#ff851b", "#2ecc40", "#f012be", "#b10dc9", "#39cccc", "#ff4136", "#aaaaaa", "#01ff70"];
    state.chart = new uPlot({
      width, height: 260,
      scales: { y: { distr: 3 } },
      axes: [{ stroke: "#999", grid: { stroke: "#2a2a2a" } }, { stroke: "#999", grid: { stroke: "#2a2a2a" }, label: "ms (log)" }],
      series: [{}, ...keys.map((k, i) => ({ label: k, stroke: palette[i % palette.length], width: 1.5, spanGaps: false }))],
    }, data, $("chart"));
    state.chartKey = chartKey;
  } else {
    state.chart.setData(data);
  }
}

// ---- wiring -----------------------------------------------------------------------------

function connectEvents() {
  const source = new EventSource("/api/v1/events");
  source.addEventListener("open", () => { $("conn").textContent = "live"; });
  source.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; });
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    state.events++;
    state.paths = s.paths;
    state.latency = s.latency;
    $("conn").textContent = `live · ${new Date(s.time_unix_ms).toLocaleTimeString()}`;
    // By default the first path with a publisher (a pulled camera that cannot connect has none).
    if (!state.selected && state.paths.length) select((state.paths.find((p) => p.publisher) || state.paths[0]).name);
    renderPaths();
    renderDetail();
  });
}

function wireControls() {
  document.querySelectorAll("#modes button").forEach((b) => b.addEventListener("click", () => {
    state.mode = b.dataset.mode;
    history.replaceState(null, "", `?path=${encodeURIComponent(state.selected || "")}&mode=${state.mode}`);
    startVideo();
  }));
  $("range").addEventListener("change", () => { state.chartKey = ""; refreshChart(); });
  $("start-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    const [width, height] = f.get("resolution").split("x").map(Number);
    const path = String(f.get("path")).replace(/^\/+|\/+$/g, "");
    const ok = await control("POST", `/api/v1/sources/${path}`, { width, height, fps: Number(f.get("fps")), bitrate_kbps: Number(f.get("bitrate")) });
    if (ok) setTimeout(() => select(path), 1500);
  });
}

async function main() {
  const params = new URLSearchParams(location.search);
  if (["webrtc", "hls", "both", "none"].includes(params.get("mode"))) state.mode = params.get("mode");
  wireControls();
  try {
    const clock = await Livefeed.syncClock();
    $("clock").textContent = `${clock.offsetMs >= 0 ? "+" : ""}${clock.offsetMs.toFixed(1)} ± ${clock.uncertaintyMs.toFixed(1)} ms`;
  } catch (e) {
    $("clock").textContent = `unknown (${e})`;
  }
  if (params.get("path")) select(params.get("path"));
  connectEvents();
  setInterval(refreshChart, 2000);
  window.addEventListener("resize", () => state.chart && state.chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: 260 }));
}

main();
