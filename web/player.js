// livefeed player: plays /PATH/index.m3u8 with hls.js in low-latency mode and measures the
// glass-to-glass latency of every displayed frame from the pixel timecode drawn into it.
//
// Timecode layout (see crates/livefeed-media/src/timecode.rs): 2 rows × 40 blocks across the
// top of the picture; block width B = floor(W / 40), column i spans floor(i·W/40) to
// floor((i+1)·W/40), row r spans r·B to (r+1)·B. 80 bits MSB first: 48-bit Unix ms, 24-bit frame
// number, CRC-8/AUTOSAR of the first 9 bytes. White = 1, black = 0.
"use strict";

const COLUMNS = 40;
const ROWS = 2;

function crc8Autosar(bytes) {
  let crc = 0xff;
  for (const b of bytes) {
    crc ^= b;
    for (let i = 0; i < 8; i++) crc = crc & 0x80 ? ((crc << 1) ^ 0x2f) & 0xff : (crc << 1) & 0xff;
  }
  return crc ^ 0xff;
}

// Reads the timecode from RGBA pixels of the top strip (width × height); null if absent/invalid.
function readTimecode(rgba, width, height) {
  const block = Math.floor(width / COLUMNS);
  if (block < 2 || height < ROWS * block) return null;
  const means = [];
  for (let r = 0; r < ROWS; r++) {
    for (let c = 0; c < COLUMNS; c++) {
      const x0 = Math.floor((c * width) / COLUMNS), x1 = Math.floor(((c + 1) * width) / COLUMNS);
      const y0 = r * block, y1 = (r + 1) * block;
      const tx = Math.floor((x1 - x0) / 4), ty = Math.floor((y1 - y0) / 4);
      let sum = 0, n = 0;
      for (let y = y0 + ty; y < y1 - ty; y++) {
        for (let x = x0 + tx; x < x1 - tx; x++) {
          const i = (y * width + x) * 4;
          sum += 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
          n++;
        }
      }
      means.push(n ? sum / n : 0);
    }
  }
  const lo = Math.min(...means), hi = Math.max(...means);
  if (hi - lo < 64) return null;
  const third = (hi - lo) / 3;
  if (means.some((m) => m > lo + third && m < hi - third)) return null;
  const mid = (lo + hi) / 2;
  const bytes = new Uint8Array(10);
  means.forEach((m, k) => { if (m > mid) bytes[k >> 3] |= 0x80 >> (k & 7); });
  if (crc8Autosar(bytes.subarray(0, 9)) !== bytes[9]) return null;
  let unixMs = 0;
  for (let i = 0; i < 6; i++) unixMs = unixMs * 256 + bytes[i];
  const frame = (bytes[6] << 16) | (bytes[7] << 8) | bytes[8];
  return { unixMs, frame };
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

// What the page measured, per player; read by people (the panels) and by the browser tests.
function newStats() {
  return { frames: 0, measured: 0, latencies: [], lastLatency: null, p50: null, p95: null, fps: null, jitterBufferMs: null, errors: [] };
}
window.livefeedStats = {};

// Measures every frame `video` presents and shows the figures in `panel`.
function watchFrames(video, stats, panel) {
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  const recent = [];
  const onFrame = (_now, meta) => {
    stats.frames++;
    const w = video.videoWidth, h = Math.min(video.videoHeight, ROWS * Math.floor(video.videoWidth / COLUMNS));
    if (w && h) {
      if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
      ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
      const tc = readTimecode(ctx.getImageData(0, 0, w, h).data, w, h);
      if (tc) {
        // When the frame is shown, on the wall clock, minus when it was captured.
        const shownMs = performance.timeOrigin + (meta.expectedDisplayTime || performance.now());
        const latency = shownMs - tc.unixMs;
        stats.measured++;
        stats.lastLatency = latency;
        stats.latencies.push(latency);
        if (stats.latencies.length > 7200) stats.latencies.shift();
        recent.push({ t: performance.now(), latency });
      }
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  const show = (cls, v) => { panel.querySelector(cls).textContent = v == null ? "–" : Math.round(v); };
  setInterval(() => {
    const now = performance.now();
    while (recent.length && now - recent[0].t > 1000) recent.shift();
    const sorted = recent.map((r) => r.latency).sort((a, b) => a - b);
    stats.p50 = percentile(sorted, 50);
    stats.p95 = percentile(sorted, 95);
    stats.fps = recent.length;
    show(".latency", stats.p50);
    show(".p95", stats.p95);
    show(".fps", stats.fps);
    show(".frames", stats.frames);
    const jitter = panel.querySelector(".jitter");
    if (jitter) show(".jitter", stats.jitterBufferMs);
  }, 1000);
}

function playHls(panel, path, stats) {
  const video = panel.querySelector("video"), status = panel.querySelector(".status");
  const url = `/${path}/index.m3u8`;
  video.addEventListener("playing", () => { status.textContent = `playing ${url}`; });
  if (window.Hls && Hls.isSupported()) {
    const hls = new Hls({
      lowLatencyMode: true,
      backBufferLength: 4,
      // Catch up with the live edge by playing faster, and do not step back from the edge
      // after a stall (hls.js's default adds a full second each time).
      maxLiveSyncPlaybackRate: 1.5,
      liveSyncOnStallIncrease: 0,
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      stats.errors.push(`${data.type}: ${data.details}`);
      if (data.fatal) status.textContent = `error: ${data.details}`;
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    // hls.js speeds up only with more than a second buffered, which 100 ms parts never give:
    // a viewer that fell behind (a start at an old keyframe, a stall) jumps to the live-sync
    // position when that is already buffered.
    setInterval(() => {
      const sync = hls.liveSyncPosition, buffered = video.buffered;
      if (sync && hls.latency > hls.targetLatency + 0.1 && buffered.length && sync <= buffered.end(buffered.length - 1)) {
        video.currentTime = sync;
        stats.liveSyncJumps = (stats.liveSyncJumps || 0) + 1;
      }
    }, 1000);
    // hls.js's own view, for diagnosis: its latency estimate, its target and the catch-up rate.
    setInterval(() => {
      stats.hlsLatencyMs = hls.latency * 1000;
      stats.hlsTargetLatencyMs = hls.targetLatency * 1000;
      stats.playbackRate = video.playbackRate;
    }, 1000);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays LL-HLS natively
  } else {
    status.textContent = "this browser cannot play HLS";
    return;
  }
  video.play().catch(() => { status.textContent = "press play"; });
  watchFrames(video, stats, panel);
}

// WHEP: POST our offer (all candidates gathered, no trickle), apply the answer, DELETE on leave.
async function playWebRtc(panel, path, stats) {
  const video = panel.querySelector("video"), status = panel.querySelector(".status");
  const pc = new RTCPeerConnection();
  const transceiver = pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (e) => {
    // The lowest jitter-buffer target the browser allows.
    if ("jitterBufferTarget" in e.receiver) e.receiver.jitterBufferTarget = 0;
    if ("playoutDelayHint" in e.receiver) e.receiver.playoutDelayHint = 0;
    video.srcObject = e.streams[0] || new MediaStream([e.track]);
  };
  pc.onconnectionstatechange = () => { status.textContent = `WebRTC ${pc.connectionState}`; };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((done) => {
    if (pc.iceGatheringState === "complete") return done();
    pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && done();
    setTimeout(done, 2000);
  });
  const resp = await fetch(`/${path}/whep`, { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
  if (resp.status !== 201) {
    status.textContent = `WHEP refused: ${resp.status} ${await resp.text()}`;
    stats.errors.push(status.textContent);
    return;
  }
  const session = resp.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
  window.addEventListener("pagehide", () => { if (session) fetch(session, { method: "DELETE", keepalive: true }); });
  video.play().catch(() => { status.textContent = "press play"; });
  watchFrames(video, stats, panel);
  let last = null;
  setInterval(async () => {
    const report = await transceiver.receiver.getStats();
    report.forEach((r) => {
      if (r.type !== "inbound-rtp" || r.kind !== "video") return;
      if (last && r.jitterBufferEmittedCount > last.jitterBufferEmittedCount) {
        stats.jitterBufferMs = (1000 * (r.jitterBufferDelay - last.jitterBufferDelay)) / (r.jitterBufferEmittedCount - last.jitterBufferEmittedCount);
      }
      stats.framesDropped = r.framesDropped;
      stats.nackCount = r.nackCount;
      last = r;
    });
  }, 1000);
}

function start() {
  const path = document.body.dataset.path;
  const only = new URLSearchParams(location.search).get("play");
  for (const kind of ["webrtc", "hls"]) {
    const panel = document.getElementById(kind);
    if (only && only !== kind) { panel.hidden = true; continue; }
    const stats = (window.livefeedStats[kind] = newStats());
    const run = kind === "hls" ? playHls : playWebRtc;
    Promise.resolve(run(panel, path, stats)).catch((e) => {
      stats.errors.push(String(e));
      panel.querySelector(".status").textContent = `error: ${e}`;
    });
  }
}

if (typeof document !== "undefined" && document.body) start();
if (typeof module !== "undefined") module.exports = { readTimecode, crc8Autosar };
